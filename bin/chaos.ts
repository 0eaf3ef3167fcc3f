// `npm run chaos -- --nodes 3 --minutes N --seed S [--json] [--rate R] [--keep]`: a local cluster under a seeded
// workload and seeded faults, then a checker over every customer's journal and state (app/chaos/, docs/operations.md
// "Proving it"). Exit 1 on any violation; the seed replays the run.
import { parseArgs } from "node:util";
import { runChaos } from "../app/chaos/run.ts";
import { renderReport } from "../app/chaos/report.ts";
import { FAULT_KINDS, type FaultKind } from "../app/chaos/schedule.ts";

function usage(message: string): never {
	console.error(message);
	console.error("usage: npm run chaos -- [--nodes 3] [--minutes 10] [--seed S] [--rate 40] [--customers 25] [--faults kind,…] [--json] [--keep]");
	console.error(`fault kinds: ${FAULT_KINDS.join(", ")}`);
	process.exit(2);
}

function intArg(name: string, value: string | undefined, min: number, max: number, fallback: number): number {
	if (value === undefined) return fallback;
	const n = Number(value);
	if (!Number.isFinite(n) || n < min || n > max) usage(`--${name} must be a number from ${min} to ${max}, got "${value}"`);
	return n;
}

let args;
try {
	args = parseArgs({
		options: {
			nodes: { type: "string" }, minutes: { type: "string" }, seed: { type: "string" }, rate: { type: "string" },
			customers: { type: "string" }, faults: { type: "string" }, json: { type: "boolean", default: false }, keep: { type: "boolean", default: false }
		}
	});
} catch (err) {
	usage((err as Error).message);
}
const v = args.values;
const seed = Math.trunc(intArg("seed", v.seed, 0, 2 ** 31 - 1, Math.floor(Math.random() * 2 ** 31)));
const faultKinds = (v.faults ?? "").split(",").map(k => k.trim()).filter(Boolean);
for (const k of faultKinds) if (!(FAULT_KINDS as readonly string[]).includes(k)) usage(`--faults: unknown kind "${k}"`);
const options = {
	nodes: Math.trunc(intArg("nodes", v.nodes, 2, 8, 3)),
	minutes: intArg("minutes", v.minutes, 0.5, 24 * 60, 10),
	seed,
	ratePerSecond: intArg("rate", v.rate, 1, 5000, 40),
	customersPerSource: Math.trunc(intArg("customers", v.customers, 1, 5000, 25)),
	faultKinds: faultKinds as FaultKind[],
	keep: v.keep,
	log: (line: string) => console.error(line)
};

// Ctrl-C: the runner's children are killed with it (lib/processes.ts); print the seed so the run can be repeated.
process.once("SIGINT", () => {
	console.error(`interrupted (seed=${seed})`);
	process.exit(130);
});

try {
	const report = await runChaos(options);
	console.log(v.json ? JSON.stringify(report, null, 2) : renderReport(report));
	if (v.json) console.error(report.violations === 0 ? `OK: no violations (seed=${seed})` : `FAILED: ${report.violations} violations (seed=${seed})`);
	process.exit(report.violations === 0 ? 0 : 1);
} catch (err) {
	console.error(err instanceof Error ? err.stack : err);
	console.error(`the chaos run could not complete (seed=${seed})`);
	process.exit(1);
}
