// Loads the churn model named by CHURN_MODEL for the actor host: "off" disables the factor; a missing or
// incompatible artifact fails the start with the model loader's message (never scores with garbage).
import { createChurnScorer, loadChurnModel } from "./model.ts";
import type { ChurnScorer } from "../actors/customer-actor.types.ts";

interface Logger { info(...args: unknown[]): void }

export function loadChurnScorer(modelPath: string, logger?: Logger): ChurnScorer | null {
	if (modelPath === "off") {
		logger?.info("churn model: off (CHURN_MODEL=off), factor churn.model disabled");
		return null;
	}
	const model = loadChurnModel(modelPath);
	logger?.info(`churn model: ${modelPath} loaded`);
	return createChurnScorer(model);
}
