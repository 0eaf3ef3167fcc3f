// Training pipeline shared by the CLI and the tests: CSV rows → records (via the mapping) → stratified split → feature
// spec fitted on the training rows → brain.js network with early stopping on validation → artifact with metrics.
import brain from "brain.js";
import type { INeuralNetworkJSON } from "brain.js";
import { checkMappingColumns, checkRecord, fitFeatureSpec, labelOf, recordFromRow, vectorize } from "./features.ts";
import type { ChurnMapping, FeatureRecord, FeatureSpec } from "./features.ts";
import { evaluate, logLoss, maxF1Threshold, rocAuc } from "./metrics.ts";
import { ARTIFACT_FORMAT, ARTIFACT_VERSION, modelFromArtifact } from "./model.ts";
import type { ChurnModel, ChurnModelArtifact, TrainingOptions } from "./model.ts";
import { DEFAULT_FRACTIONS, mulberry32, stratifiedSplit } from "./split.ts";
import type { Split } from "./split.ts";

export const DEFAULT_TRAINING: TrainingOptions = {
	seed: 42,
	split: DEFAULT_FRACTIONS,
	hiddenLayers: [4],
	learningRate: 0.01,
	momentum: 0.1,
	iterations: 500,
	checkEvery: 10,
	patience: 5
};

export interface TrainingData {
	header: string[];
	rows: string[][];
	sha256: string;
	/** How the artifact names the data file. */
	path: string;
}

export interface TrainingProgress {
	iteration: number;
	/** brain.js's mean squared error over the last pass. */
	trainError: number;
	validationLogLoss: number;
	validationRocAuc: number;
	/** This check improved on every earlier one (its weights are kept). */
	best: boolean;
	elapsedMs: number;
}

export interface PreparedData {
	records: FeatureRecord[];
	labels: Uint8Array;
	split: Split;
}

/** Maps and checks every row, then splits: the part of training that ml:eval repeats to find the test rows again. */
export function prepareData(data: TrainingData, mapping: ChurnMapping, seed: number, fractions = DEFAULT_FRACTIONS): PreparedData {
	checkMappingColumns(mapping, data.header, data.path);
	const labelIndex = data.header.indexOf(mapping.label.column);
	const idIndex = mapping.id ? data.header.indexOf(mapping.id) : -1;
	const records: FeatureRecord[] = [];
	const labels = new Uint8Array(data.rows.length);
	data.rows.forEach((row, i) => {
		const where = `${data.path} data row ${i + 1}${idIndex >= 0 ? ` (${mapping.id} ${row[idIndex]})` : ""}`;
		const record = recordFromRow(mapping, data.header, row);
		const problem = checkRecord(mapping, record);
		if (problem) throw new Error(`${where}: ${problem}`);
		try {
			labels[i] = labelOf(mapping, row[labelIndex]);
		} catch (err) {
			throw new Error(`${where}: ${(err as Error).message}`, { cause: err });
		}
		records.push(record);
	});
	const positives = labels.reduce((s, v) => s + v, 0);
	if (positives === 0 || positives === labels.length) {
		throw new Error(`${data.path}: the label column "${mapping.label.column}" has only one class (${positives} positives of ${labels.length} rows)`);
	}
	return { records, labels, split: stratifiedSplit(labels, seed, fractions) };
}

/**
 * brain.js draws its initial weights from Math.random, which cannot be seeded; training swaps in a seeded PRNG for
 * its duration so the same data and seed give the same weights. Safe because train() is synchronous: nothing else
 * runs on this thread while it is swapped.
 */
export function withSeededMathRandom<T>(seed: number, fn: () => T): T {
	const original = Math.random;
	Math.random = mulberry32(seed);
	try {
		return fn();
	} finally {
		Math.random = original;
	}
}

function scoreRows(model: ChurnModel, vectors: number[][], rows: number[]): number[] {
	return rows.map(i => model.predict(vectors[i]));
}

function pick<T>(items: ArrayLike<T>, rows: number[]): T[] {
	return rows.map(i => items[i]);
}

export function trainChurnModel(
	data: TrainingData,
	mapping: ChurnMapping,
	options: TrainingOptions = DEFAULT_TRAINING,
	onProgress?: (p: TrainingProgress) => void,
	now: () => Date = () => new Date()
): ChurnModelArtifact {
	const started = performance.now();
	const { records, labels, split } = prepareData(data, mapping, options.seed, options.split);
	const featureSpec: FeatureSpec = fitFeatureSpec(pick(records, split.train), mapping);
	const vectors = records.map(r => vectorize(featureSpec, r));
	const trainSet = split.train.map(i => ({ input: vectors[i], output: [labels[i]] }));
	const validationInputs = pick(vectors, split.validation);
	const validationLabels = pick(labels, split.validation);

	const net = new brain.NeuralNetwork({ hiddenLayers: options.hiddenLayers, activation: "sigmoid" });
	const trainOpts = {
		iterations: options.checkEvery, learningRate: options.learningRate, momentum: options.momentum,
		// brain.js stops below errorThresh; churn never gets near 1e-9, so the iteration count and patience decide.
		errorThresh: 1e-9, log: false
	};
	let best: { json: INeuralNetworkJSON; loss: number; iteration: number } | null = null;
	let iteration = 0;
	let sinceBest = 0;
	withSeededMathRandom(options.seed + 1, () => {
		while (iteration < options.iterations && sinceBest < options.patience) {
			const chunk = Math.min(options.checkEvery, options.iterations - iteration);
			// Repeated train() calls continue from the current weights (and momentum): one chunk = `chunk` passes.
			const status = net.train(trainSet, { ...trainOpts, iterations: chunk });
			iteration += chunk;
			const scores = validationInputs.map(v => (net.run(v) as number[])[0]);
			const loss = logLoss(scores, validationLabels);
			const improved = best === null || loss < best.loss;
			if (improved) {
				best = { json: JSON.parse(JSON.stringify(net.toJSON())) as INeuralNetworkJSON, loss, iteration };
				sinceBest = 0;
			} else {
				sinceBest++;
			}
			onProgress?.({
				iteration, trainError: status.error, validationLogLoss: loss, validationRocAuc: rocAuc(scores, validationLabels),
				best: improved, elapsedMs: performance.now() - started
			});
		}
	});
	if (best === null) throw new Error("training ran no iterations");
	const kept = best as { json: INeuralNetworkJSON; iteration: number };

	const artifact: ChurnModelArtifact = {
		format: ARTIFACT_FORMAT,
		version: ARTIFACT_VERSION,
		createdAt: now().toISOString(),
		dataPath: data.path,
		dataSha256: data.sha256,
		rows: data.rows.length,
		mapping,
		featureSpec,
		training: { ...options, iterationsRun: iteration, bestIteration: kept.iteration, durationMs: 0 },
		network: kept.json,
		threshold: 0.5,
		thresholdRule: "max-f1-on-validation",
		metrics: { validation: evaluate([], [], 0.5), test: evaluate([], [], 0.5) }
	};
	// Metrics come from the artifact as it will be loaded (compiled from its JSON), the path ml:eval and the actor use.
	const model = modelFromArtifact(artifact, "(training)");
	const validationScores = scoreRows(model, vectors, split.validation);
	artifact.threshold = maxF1Threshold(validationScores, validationLabels);
	artifact.metrics = {
		validation: evaluate(validationScores, validationLabels, artifact.threshold),
		test: evaluate(scoreRows(model, vectors, split.test), pick(labels, split.test), artifact.threshold)
	};
	artifact.training.durationMs = Math.round(performance.now() - started);
	return artifact;
}

/** Test-split metrics of a model on data, re-split with the artifact's seed: what ml:eval prints. */
export function evaluateOnTestSplit(model: ChurnModel, data: TrainingData): ReturnType<typeof evaluate> {
	const { artifact } = model;
	const { records, labels, split } = prepareData(data, artifact.mapping, artifact.training.seed, artifact.training.split);
	const scores = split.test.map(i => model.predict(vectorize(artifact.featureSpec, records[i])));
	return evaluate(scores, pick(labels, split.test), artifact.threshold);
}
