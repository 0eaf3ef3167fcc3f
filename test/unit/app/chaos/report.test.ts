// The report table: counts and recovery times per fault kind, the totals, and the seed to replay a failure.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { buildReport, median, renderReport } from "../../../../app/chaos/report.ts";
import { check } from "../../../../app/chaos/checker.ts";

describe("chaos report", () => {
	const verdict = check([{ customerId: "a", source: "http", key: "k1", seq: 1, acked: true }], []);
	const faults = [
		{ index: 0, kind: "sigkill" as const, node: "node-1", detail: "node-1", startedMs: 9_000, recoveryMs: 4_000 },
		{ index: 1, kind: "sigkill" as const, node: "node-2", detail: "node-2", startedMs: 30_000, recoveryMs: 2_000 },
		{ index: 2, kind: "partition" as const, node: "node-3", detail: "node-3 nats hold", startedMs: 50_000, recoveryMs: null }
	];
	const report = buildReport({ seed: 42, nodes: 3, minutes: 1, loadMs: 60_000, faults, verdict, rejected: 0, notes: [] });

	it("counts the lost event and the unrecovered fault as violations and names the seed", () => {
		assert.equal(report.violations, 2);
		const text = renderReport(report);
		assert.match(text, /\| sigkill \| 2 \| 2 \| 3\.0 s \| 4\.0 s \|/);
		assert.match(text, /\| partition \| 1 \| 0 \| – \| – \|/);
		assert.match(text, /\| \*\*lost\*\* \(acknowledged, not applied\) \| 1 \|/);
		assert.match(text, /FAILED: 2 violations .*seed=42/);
	});

	it("median of odd and even counts", () => {
		assert.equal(median([3, 1, 2]), 2);
		assert.equal(median([4, 1, 2, 3]), 2.5);
		assert.equal(median([]), null);
	});
});
