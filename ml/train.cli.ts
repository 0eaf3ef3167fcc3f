// Training CLI: node ml/train.cli.ts --data <csv> --mapping <json> [--out <artifact.json>] [--seed N] [--iterations N]
// [--hidden 4,4] [--learning-rate 0.05] [--momentum 0.1] [--patience N]. Progress goes to stderr, the summary to stdout.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { readCsv } from "./csv.ts";
import { parseMapping } from "./features.ts";
import { formatMetrics } from "./metrics.ts";
import { DEFAULT_TRAINING, trainChurnModel } from "./training.ts";
import type { TrainingOptions } from "./model.ts";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function usage(problem: string): never {
	process.stderr.write(`${problem}\nusage: node ml/train.cli.ts --data <csv> --mapping <json> [--out ml/models/churn-telco.json] [--seed ${DEFAULT_TRAINING.seed}]` +
		` [--iterations ${DEFAULT_TRAINING.iterations}] [--hidden ${DEFAULT_TRAINING.hiddenLayers.join(",")}] [--learning-rate ${DEFAULT_TRAINING.learningRate}]` +
		` [--momentum ${DEFAULT_TRAINING.momentum}] [--patience ${DEFAULT_TRAINING.patience}] [--check-every ${DEFAULT_TRAINING.checkEvery}]\n`);
	process.exit(2);
}

function numberOption(name: string, raw: string | undefined, fallback: number, check: (n: number) => boolean): number {
	if (raw === undefined) return fallback;
	const n = Number(raw);
	if (raw.trim() === "" || !check(n)) usage(`--${name}: invalid value ${JSON.stringify(raw)}`);
	return n;
}

/** Paths inside the repository are stored relative to it, so the artifact does not carry this machine's layout. */
export function repoRelative(path: string): string {
	const rel = relative(REPO_ROOT, resolve(path));
	return rel.startsWith("..") || isAbsolute(rel) ? resolve(path) : rel;
}

async function main(): Promise<void> {
	let values;
	try {
		({ values } = parseArgs({
			options: {
				data: { type: "string" }, mapping: { type: "string" }, out: { type: "string" }, seed: { type: "string" },
				iterations: { type: "string" }, hidden: { type: "string" }, "learning-rate": { type: "string" },
				momentum: { type: "string" }, patience: { type: "string" }, "check-every": { type: "string" }
			}
		}));
	} catch (err) {
		usage((err as Error).message);
	}
	if (!values.data) usage("--data is required");
	if (!values.mapping) usage("--mapping is required");
	const out = values.out ?? "ml/models/churn-telco.json";
	const int = (n: number): boolean => Number.isInteger(n) && n >= 1;
	const unit = (n: number): boolean => n > 0 && n < 1;
	const hidden = values.hidden === undefined ? DEFAULT_TRAINING.hiddenLayers : values.hidden.split(",").map(Number);
	if (!hidden.every(int)) usage(`--hidden: expected layer sizes like 4 or 8,4, got ${JSON.stringify(values.hidden)}`);
	const options: TrainingOptions = {
		...DEFAULT_TRAINING,
		seed: numberOption("seed", values.seed, DEFAULT_TRAINING.seed, n => Number.isInteger(n) && n >= 0 && n < 2 ** 32),
		iterations: numberOption("iterations", values.iterations, DEFAULT_TRAINING.iterations, int),
		hiddenLayers: hidden,
		learningRate: numberOption("learning-rate", values["learning-rate"], DEFAULT_TRAINING.learningRate, unit),
		momentum: numberOption("momentum", values.momentum, DEFAULT_TRAINING.momentum, unit),
		patience: numberOption("patience", values.patience, DEFAULT_TRAINING.patience, int),
		checkEvery: numberOption("check-every", values["check-every"], DEFAULT_TRAINING.checkEvery, int)
	};

	const mapping = parseMapping(JSON.parse(readFileSync(values.mapping, "utf8")), values.mapping);
	const table = await readCsv(values.data);
	process.stderr.write(`training on ${values.data}: ${table.rows.length} rows, sha256 ${table.sha256.slice(0, 12)}…, ` +
		`hidden ${options.hiddenLayers.join(",")}, learning rate ${options.learningRate}, up to ${options.iterations} passes, seed ${options.seed}\n`);
	const artifact = trainChurnModel({ ...table, path: repoRelative(values.data) }, mapping, options, p => {
		process.stderr.write(`  pass ${String(p.iteration).padStart(5)}  train MSE ${p.trainError.toFixed(5)}  ` +
			`validation log loss ${p.validationLogLoss.toFixed(5)} ROC AUC ${p.validationRocAuc.toFixed(4)}${p.best ? " *" : "  "}  ` +
			`${(p.elapsedMs / 1000).toFixed(1)} s\n`);
	});
	mkdirSync(dirname(out), { recursive: true });
	writeFileSync(out, JSON.stringify(artifact, null, "\t") + "\n");
	const t = artifact.training;
	process.stdout.write(`kept the weights of pass ${t.bestIteration} of ${t.iterationsRun} (best validation log loss); ` +
		`${artifact.featureSpec.names.length} inputs; trained in ${(t.durationMs / 1000).toFixed(1)} s\n` +
		`${formatMetrics("validation", artifact.metrics.validation)}\n${formatMetrics("test", artifact.metrics.test)}\n` +
		`wrote ${out}\n`);
}

main().catch((err: unknown) => {
	process.stderr.write(`training failed: ${err instanceof Error ? err.message : String(err)}\n`);
	process.exit(1);
});
