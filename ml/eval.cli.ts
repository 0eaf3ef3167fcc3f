// Evaluation CLI: node ml/eval.cli.ts [--model ml/models/churn-telco.json] [--data <csv>]. Re-splits the data with the
// artifact's seed, scores the test rows through the loaded artifact, and checks the result against its stored metrics.
import { dirname, isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual, parseArgs } from "node:util";
import { readCsv } from "./csv.ts";
import { formatMetrics } from "./metrics.ts";
import { loadChurnModel } from "./churn-scorer.ts";
import { evaluateOnTestSplit } from "./training.ts";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

async function main(): Promise<number> {
	let values;
	try {
		({ values } = parseArgs({ options: { model: { type: "string" }, data: { type: "string" } } }));
	} catch (err) {
		process.stderr.write(`${(err as Error).message}\nusage: node ml/eval.cli.ts [--model ml/models/churn-telco.json] [--data <csv>]\n`);
		return 2;
	}
	const model = loadChurnModel(values.model ?? "ml/models/churn-telco.json");
	const { artifact } = model;
	// The artifact stores a repository-relative path; resolve it from the repository, wherever we are run from.
	const dataPath = values.data ?? (isAbsolute(artifact.dataPath) ? artifact.dataPath : resolve(REPO_ROOT, artifact.dataPath));
	const table = await readCsv(dataPath);
	const sameData = table.sha256 === artifact.dataSha256;
	process.stdout.write(`model ${model.source}: trained ${artifact.createdAt} on ${artifact.dataPath} (${artifact.rows} rows), ` +
		`seed ${artifact.training.seed}, ${artifact.featureSpec.names.length} inputs, hidden ${artifact.training.hiddenLayers.join(",")}\n` +
		`data ${dataPath}: ${table.rows.length} rows, sha256 ${table.sha256}${sameData ? " (the training data)" : " (NOT the training data)"}\n`);
	const metrics = evaluateOnTestSplit(model, { ...table, path: dataPath });
	process.stdout.write(`${formatMetrics(`test split (threshold ${artifact.thresholdRule})`, metrics)}\n`);
	if (!sameData) {
		process.stdout.write("the data differs from the training data: these metrics are not comparable with the stored ones\n");
		return 0;
	}
	if (!isDeepStrictEqual(JSON.parse(JSON.stringify(metrics)), artifact.metrics.test)) {
		process.stderr.write(`test metrics differ from those stored in the artifact:\n${formatMetrics("stored", artifact.metrics.test)}\n`);
		return 1;
	}
	process.stdout.write("matches the test metrics stored in the artifact\n");
	return 0;
}

main().then(code => process.exit(code), (err: unknown) => {
	process.stderr.write(`evaluation failed: ${err instanceof Error ? err.message : String(err)}\n`);
	process.exit(1);
});
