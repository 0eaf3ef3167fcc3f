// The churn-model artifact: its type, validation at load (a missing or incompatible file fails with the path and the
// problem, never scores with garbage), and the synchronous scorer the customer actor calls in its turn.
import brain from "brain.js";
import type { INeuralNetworkJSON } from "brain.js";
import type { ChurnScorer } from "../actors/customer-actor.types.ts";
import type { CustomerState } from "../models/customer-state.ts";
import { featureCount, parseFeatureSpec, parseMapping, stateValuesReader, valuesCoverage, vectorizeInto, vectorizeValues } from "./features.ts";
import type { ChurnMapping, FeatureSpec } from "./features.ts";
import type { Metrics } from "./metrics.ts";
import type { SplitFractions } from "./split.ts";

export const ARTIFACT_FORMAT = "crm-actors.churn-model";
export const ARTIFACT_VERSION = 1;

export interface TrainingOptions {
	seed: number;
	split: SplitFractions;
	hiddenLayers: number[];
	learningRate: number;
	momentum: number;
	/** Upper bound on passes over the training rows. */
	iterations: number;
	/** Passes between validation checks (and progress lines). */
	checkEvery: number;
	/** Stop after this many checks without a better validation log loss. */
	patience: number;
}

export interface ChurnModelArtifact {
	format: typeof ARTIFACT_FORMAT;
	version: typeof ARTIFACT_VERSION;
	createdAt: string;
	/** The training CSV, relative to the repository root when it lives inside it. */
	dataPath: string;
	dataSha256: string;
	rows: number;
	mapping: ChurnMapping;
	featureSpec: FeatureSpec;
	training: TrainingOptions & { iterationsRun: number; bestIteration: number; durationMs: number };
	network: INeuralNetworkJSON;
	threshold: number;
	thresholdRule: "max-f1-on-validation";
	metrics: { validation: Metrics; test: Metrics };
}

export interface ChurnModel {
	artifact: ChurnModelArtifact;
	/** Where it was loaded from, for messages. */
	source: string;
	/** Probability 0–1 for an input vector (featureSpec.names order). */
	predict(vector: ArrayLike<number>): number;
}

export type ChurnModelErrorCode = "MODEL_NOT_FOUND" | "MODEL_INVALID" | "MODEL_INCOMPATIBLE";

export class ChurnModelError extends Error {
	readonly code: ChurnModelErrorCode;
	readonly path: string;
	constructor(code: ChurnModelErrorCode, path: string, problem: string, options?: { cause?: unknown }) {
		super(`churn model ${path}: ${problem}`, options);
		this.name = "ChurnModelError";
		this.code = code;
		this.path = path;
	}
}

function isObject(v: unknown): v is Record<string, unknown> {
	return typeof v === "object" && v !== null && !Array.isArray(v);
}

function allWeightsFinite(network: INeuralNetworkJSON): boolean {
	for (const layer of network.layers.slice(1) as Record<string, { bias: unknown; weights: Record<string, unknown> }>[]) {
		for (const node of Object.values(layer)) {
			if (!isObject(node) || !Number.isFinite(node.bias) || !isObject(node.weights)) return false;
			if (!Object.values(node.weights).every(w => Number.isFinite(w))) return false;
		}
	}
	return true;
}

function clamp01(p: number): number {
	if (!Number.isFinite(p)) throw new Error(`churn model produced ${p}`);
	return p < 0 ? 0 : p > 1 ? 1 : p;
}

/** Validates an artifact object and compiles its network; throws ChurnModelError naming `source` and the problem. */
export function modelFromArtifact(json: unknown, source: string): ChurnModel {
	const invalid = (problem: string, cause?: unknown): ChurnModelError => new ChurnModelError("MODEL_INVALID", source, problem, { cause });
	const incompatible = (problem: string): ChurnModelError => new ChurnModelError("MODEL_INCOMPATIBLE", source, problem);
	if (!isObject(json)) throw invalid("not a JSON object");
	if (json.format !== ARTIFACT_FORMAT) throw incompatible(`format is ${JSON.stringify(json.format)}, expected "${ARTIFACT_FORMAT}"`);
	if (json.version !== ARTIFACT_VERSION) throw incompatible(`version ${JSON.stringify(json.version)} is not supported (this build reads version ${ARTIFACT_VERSION})`);
	let spec: FeatureSpec;
	try {
		parseMapping(json.mapping, `in ${source}`);
		spec = parseFeatureSpec(json.featureSpec);
	} catch (err) {
		throw invalid((err as Error).message, err);
	}
	const threshold = json.threshold;
	if (typeof threshold !== "number" || !(threshold >= 0 && threshold <= 1)) throw invalid(`threshold must be a number in 0..1, got ${JSON.stringify(threshold)}`);
	const network = json.network;
	if (!isObject(network) || !Array.isArray(network.sizes) || !Array.isArray(network.layers) || network.layers.length !== network.sizes.length) {
		throw invalid("network is not a brain.js NeuralNetwork JSON (sizes/layers)");
	}
	const net = network as unknown as INeuralNetworkJSON;
	const inputs = featureCount(spec);
	if (net.sizes[0] !== inputs) throw incompatible(`network takes ${String(net.sizes[0])} inputs but the feature spec produces ${inputs}`);
	if (net.sizes[net.sizes.length - 1] !== 1) throw incompatible(`network has ${String(net.sizes[net.sizes.length - 1])} outputs, expected 1 (the churn probability)`);
	// Only a sigmoid output is a probability; other activations would need calibration this format does not carry.
	if (net.activation !== "sigmoid") throw incompatible(`network activation is ${JSON.stringify(net.activation)}, expected "sigmoid"`);
	if (!allWeightsFinite(net)) throw invalid("network has a missing or non-finite weight or bias");
	let run: (input: ArrayLike<number>) => number[];
	let probe: number;
	const vector = new Float64Array(inputs);
	try {
		// A copy: fromJSON adopts the object and writes defaults into its trainOpts (timeout: Infinity → null in JSON).
		const nn = new brain.NeuralNetwork().fromJSON(structuredClone(net));
		// toFunction() inlines the weights into one expression: several times faster than run() per call.
		run = (nn as unknown as { toFunction(): (input: ArrayLike<number>) => number[] }).toFunction();
		vectorizeInto(spec, {}, vector);
		probe = run(vector)[0];
		const reference = (nn.run(Array.from(vector)) as number[])[0];
		if (!Number.isFinite(probe) || Math.abs(probe - reference) > 1e-6) throw new Error(`compiled network gives ${probe}, run() gives ${reference}`);
	} catch (err) {
		throw invalid(`network is not runnable: ${(err as Error).message}`, err);
	}
	return {
		artifact: json as unknown as ChurnModelArtifact,
		source,
		predict: v => clamp01(run(v)[0])
	};
}

export interface ChurnScorerOptions {
	/**
	 * Share (0–1) of the model's fields that must be present in the profile; below it the scorer returns NaN, which the
	 * reducer treats as "no estimate" (it keeps the previous one). Default 0.5: a customer we know almost nothing
	 * about would otherwise get the probability of an all-imputed, made-up customer.
	 */
	minCoverage?: number;
}

/**
 * The actor-side scorer: reads the model's fields from the live state (profile fields, `$counters.*`), vectorizes them
 * with the same code as training, and runs the network. Synchronous and allocation-light: it reuses one values array
 * and one input buffer, which is safe because a call never yields.
 */
export function createChurnScorer(model: ChurnModel, options: ChurnScorerOptions = {}): ChurnScorer {
	const spec = model.artifact.featureSpec;
	const minCoverage = options.minCoverage ?? 0.5;
	const vector = new Float64Array(spec.names.length);
	const values: unknown[] = new Array(spec.fields.length).fill(undefined);
	const read = stateValuesReader(spec);
	return (state: CustomerState): number => {
		read(state, values);
		if (minCoverage > 0 && valuesCoverage(spec, values) < minCoverage) return NaN;
		vectorizeValues(spec, values, vector);
		return model.predict(vector);
	};
}
