// The one-minute chaos run of npm test: `bin/chaos.ts --nodes 3 --minutes 1` as a child process with a fixed seed
// (its schedule: a nats-server restart and a SIGKILLed node). It must exit 0 with a report of zero violations,
// acknowledged events from every source and the faults it planned carried out and recovered from. That the checker
// can fail is shown by test/unit/app/chaos/checker.test.ts.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { spawn } from "node:child_process";
import type { RunReport } from "../../app/chaos/report.ts";
import { planFaults } from "../../app/chaos/schedule.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const SEED = 7;

describe("npm run chaos (one minute)", { timeout: 300_000 }, () => {
	it("runs green: faults injected and recovered, every acknowledged event applied once, in order, states replay", { timeout: 300_000 }, async () => {
		let stdout = "";
		let stderr = "";
		// Progress lines go to stderr, the JSON report to stdout. The runner kills its own children when it exits.
		const child = spawn(process.execPath, ["bin/chaos.ts", "--nodes", "3", "--minutes", "1", "--seed", String(SEED), "--json"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
		child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
		child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
		const code = await new Promise<number | null>(resolve => child.once("exit", c => resolve(c)));
		assert.equal(code, 0, `chaos run failed (seed=${SEED}):\n${stderr}\n${stdout.slice(-4000)}`);
		const report = JSON.parse(stdout) as RunReport;
		assert.equal(report.seed, SEED);
		assert.equal(report.violations, 0);
		const v = report.verdict;
		assert.deepEqual([v.lost, v.duplicates, v.outOfOrder, v.replayMismatches, v.unexpected], [0, 0, 0, 0, 0]);
		assert.ok(v.acknowledged > 500, `acknowledged ${v.acknowledged}`);
		for (const [source, counts] of Object.entries(v.perSource)) assert.ok(counts.acknowledged > 0, `${source} acknowledged nothing`);
		const planned = planFaults({ seed: SEED, durationMs: 60_000 }).map(f => f.kind);
		assert.ok(planned.length >= 2, "the schedule holds faults");
		assert.deepEqual(report.faults.map(f => f.kind), planned, "every planned fault was carried out");
		assert.ok(report.faults.every(f => f.recoveryMs !== null), "and recovered from");
	});
});
