// Loads churn model artifacts from files, and the one named by CHURN_MODEL for the actor host: "off" disables the
// factor; a missing or incompatible artifact fails the start with the model loader's message (never scores with
// garbage). The model itself (ml/model.ts) is pure: it runs in the actor's turn.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { ChurnModelError, createChurnScorer, modelFromArtifact, type ChurnModel } from "./model.ts";
import type { ChurnScorer } from "../actors/customer-actor.types.ts";

interface Logger { info(...args: unknown[]): void }

/** Reads and validates an artifact file. */
export function loadChurnModel(path: string): ChurnModel {
	let text: string;
	try {
		text = readFileSync(path, "utf8");
	} catch (err) {
		const code = (err as NodeJS.ErrnoException).code;
		throw new ChurnModelError("MODEL_NOT_FOUND", path, code === "ENOENT" ? "file not found (train one with ml/train.cli.ts)" : `cannot read: ${(err as Error).message}`, { cause: err });
	}
	let json: unknown;
	try {
		json = JSON.parse(text);
	} catch (err) {
		throw new ChurnModelError("MODEL_INVALID", path, `not valid JSON: ${(err as Error).message}`, { cause: err });
	}
	return modelFromArtifact(json, path);
}

export function loadChurnScorer(modelPath: string, logger?: Logger): ChurnScorer | null {
	if (modelPath === "off") {
		logger?.info("churn model: off (CHURN_MODEL=off), factor churn.model disabled");
		return null;
	}
	const model = loadChurnModel(modelPath);
	logger?.info(`churn model: ${modelPath} loaded`);
	const scorer: ChurnScorer = createChurnScorer(model);
	// The score lineage names the exact artifact: its file, when it was trained and the hash of its bytes.
	scorer.model = {
		kind: "model",
		artifact: basename(modelPath),
		trainedAt: model.artifact.createdAt,
		sha256: createHash("sha256").update(readFileSync(modelPath)).digest("hex")
	};
	return scorer;
}
