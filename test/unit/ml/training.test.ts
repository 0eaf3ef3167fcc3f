// Training on a small synthetic sample: determinism under a seed, artifact round-trip through a file, load errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseMapping, vectorize, recordFromRow } from "../../../ml/features.ts";
import { ChurnModelError, modelFromArtifact } from "../../../ml/model.ts";
import { loadChurnModel } from "../../../ml/churn-scorer.ts";
import type { ChurnModelArtifact, TrainingOptions } from "../../../ml/model.ts";
import { mulberry32 } from "../../../ml/split.ts";
import { DEFAULT_TRAINING, evaluateOnTestSplit, prepareData, trainChurnModel } from "../../../ml/training.ts";
import type { TrainingData } from "../../../ml/training.ts";

const mapping = parseMapping({
	format: "crm-actors.churn-mapping", version: 1, name: "synthetic", id: "id",
	label: { column: "churned", positive: ["1"], negative: ["0"] },
	features: [
		{ column: "plan", field: "plan", type: "categorical" },
		{ column: "months", field: "tenureMonths", type: "numeric" },
		{ column: "autopay", field: "autopay", type: "boolean", trueValues: ["Y"], falseValues: ["N"] }
	]
});

/** 200 customers: short tenure, the "basic" plan and no autopay raise the churn odds; a few tenures are blank. */
function syntheticData(): TrainingData {
	const rand = mulberry32(2024);
	const plans = ["basic", "pro", "max"];
	const rows: string[][] = [];
	for (let i = 0; i < 200; i++) {
		const plan = plans[Math.floor(rand() * 3)];
		const months = Math.floor(rand() * 60);
		const autopay = rand() < 0.5;
		const logit = 1.5 - months / 12 + (plan === "basic" ? 1.2 : 0) - (autopay ? 1 : 0);
		const churned = rand() < 1 / (1 + Math.exp(-logit)) ? "1" : "0";
		rows.push([`c${i}`, plan, i % 25 === 0 ? "" : String(months), autopay ? "Y" : "N", churned]);
	}
	return { header: ["id", "plan", "months", "autopay", "churned"], rows, sha256: "synthetic", path: "synthetic.csv" };
}

const options: TrainingOptions = { ...DEFAULT_TRAINING, hiddenLayers: [3], learningRate: 0.1, iterations: 60, checkEvery: 10, patience: 3 };
const fixedClock = (): Date => new Date("2025-01-01T00:00:00Z");

void test("same data and seed → identical weights, threshold and metrics; another seed → other weights", () => {
	const data = syntheticData();
	const a = trainChurnModel(data, mapping, options, undefined, fixedClock);
	const b = trainChurnModel(data, mapping, options, undefined, fixedClock);
	assert.deepEqual(b.network, a.network);
	assert.equal(b.threshold, a.threshold);
	assert.deepEqual(b.metrics, a.metrics);
	const c = trainChurnModel(data, mapping, { ...options, seed: 7 }, undefined, fixedClock);
	assert.notDeepEqual(c.network.layers, a.network.layers);
});

void test("training learns the planted signal, reports progress, and restores Math.random", () => {
	const original = Math.random;
	const progress: number[] = [];
	const artifact = trainChurnModel(syntheticData(), mapping, options, p => progress.push(p.iteration), fixedClock);
	assert.equal(Math.random, original);
	assert.deepEqual(progress.slice(0, 2), [10, 20]);
	assert.ok(artifact.training.bestIteration <= artifact.training.iterationsRun);
	assert.ok(artifact.metrics.validation.rocAuc > 0.75, `validation ROC AUC ${artifact.metrics.validation.rocAuc}`);
	assert.deepEqual(artifact.featureSpec.names, ["plan=basic", "plan=max", "plan=pro", "tenureMonths", "tenureMonths:missing", "autopay"]);
	assert.equal(artifact.rows, 200);
	assert.equal(artifact.createdAt, "2025-01-01T00:00:00.000Z");
});

void test("a bad cell or a one-class label fails with the row, the id and the column", () => {
	const data = syntheticData();
	data.rows[4][2] = "ten";
	assert.throws(() => prepareData(data, mapping, 1), /synthetic\.csv data row 5 \(id c4\): column "months": "ten" is not a number/);
	const oneClass = syntheticData();
	for (const r of oneClass.rows) r[4] = "0";
	assert.throws(() => prepareData(oneClass, mapping, 1), /the label column "churned" has only one class/);
	const badLabel = syntheticData();
	badLabel.rows[0][4] = "yes";
	assert.throws(() => prepareData(badLabel, mapping, 1), /data row 1 \(id c0\): label column "churned": "yes" is neither positive/);
});

function withTempDir(fn: (dir: string) => void): void {
	const dir = mkdtempSync(join(tmpdir(), "churn-model-test-"));
	try {
		fn(dir);
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
}

void test("an artifact written to a file loads back and scores and evaluates exactly as at training", () => {
	const data = syntheticData();
	const artifact = trainChurnModel(data, mapping, options, undefined, fixedClock);
	withTempDir(dir => {
		const path = join(dir, "model.json");
		writeFileSync(path, JSON.stringify(artifact));
		const loaded = loadChurnModel(path);
		const inMemory = modelFromArtifact(structuredClone(artifact), "memory");
		for (const row of data.rows.slice(0, 20)) {
			const v = vectorize(artifact.featureSpec, recordFromRow(mapping, data.header, row));
			const p = loaded.predict(v);
			assert.ok(p >= 0 && p <= 1);
			assert.equal(p, inMemory.predict(v));
		}
		assert.deepEqual(JSON.parse(JSON.stringify(evaluateOnTestSplit(loaded, data))), artifact.metrics.test);
	});
});

void test("a missing, unreadable or incompatible artifact fails with its path, a code and the problem", () => {
	const artifact = trainChurnModel(syntheticData(), mapping, options, undefined, fixedClock);
	const mutate = (fn: (a: Record<string, any>) => void): ChurnModelArtifact => {
		const copy = structuredClone(artifact) as unknown as Record<string, any>;
		fn(copy);
		return copy as unknown as ChurnModelArtifact;
	};
	withTempDir(dir => {
		const cases: { name: string; content?: string; code: string; message: RegExp }[] = [
			{ name: "absent.json", code: "MODEL_NOT_FOUND", message: /absent\.json: file not found/ },
			{ name: "garbage.json", content: "{ not json", code: "MODEL_INVALID", message: /garbage\.json: not valid JSON/ },
			{ name: "format.json", content: JSON.stringify({ ...artifact, format: "something-else" }), code: "MODEL_INCOMPATIBLE", message: /format is "something-else"/ },
			{ name: "version.json", content: JSON.stringify({ ...artifact, version: 2 }), code: "MODEL_INCOMPATIBLE", message: /version 2 is not supported/ },
			{
				name: "count.json", code: "MODEL_INCOMPATIBLE", message: /network takes 6 inputs but the feature spec produces 5/,
				content: JSON.stringify(mutate(a => {
					a.featureSpec.fields.pop();
					a.featureSpec.names.pop();
				}))
			},
			{ name: "weight.json", code: "MODEL_INVALID", message: /non-finite weight/, content: JSON.stringify(mutate(a => { a.network.layers[1]["0"].weights["2"] = null; })) },
			{ name: "spec.json", code: "MODEL_INVALID", message: /featureSpec fields\[1\]\.center: must be a finite number/, content: JSON.stringify(mutate(a => { a.featureSpec.fields[1].center = "x"; })) },
			{ name: "relu.json", code: "MODEL_INCOMPATIBLE", message: /activation is "relu"/, content: JSON.stringify(mutate(a => { a.network.activation = "relu"; })) }
		];
		for (const c of cases) {
			const path = join(dir, c.name);
			if (c.content !== undefined) writeFileSync(path, c.content);
			assert.throws(() => loadChurnModel(path), (err: unknown) => {
				assert.ok(err instanceof ChurnModelError, c.name);
				assert.equal(err.code, c.code, c.name);
				assert.ok(err.message.startsWith(`churn model ${path}: `), err.message);
				assert.match(err.message, c.message);
				return true;
			});
		}
	});
});
