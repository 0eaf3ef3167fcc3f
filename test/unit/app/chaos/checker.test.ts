// The chaos checker must see each kind of violation it exists for: a lost, a duplicated, an out-of-order event, a
// state that is not the replay of its journal, an event nobody published — and pass a clean run.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { check, violationCount, type CustomerReading, type Published } from "../../../../app/chaos/checker.ts";

const pub = (customerId: string, seq: number, acked = true, source: Published["source"] = "http"): Published =>
	({ customerId, source, key: `/chaos/${customerId}-${seq}`, seq, acked });
const reading = (customerId: string, seqs: number[], state: unknown = { v: seqs.length }, replayed: unknown = { v: seqs.length }): CustomerReading =>
	({ customerId, journal: seqs.map((s, i) => ({ version: i + 1, key: `/chaos/${customerId}-${s}` })), complete: true, state, replayed });

describe("chaos checker", () => {
	it("passes a run where every acknowledged event is applied once, in order, and states replay", () => {
		const published = [pub("a", 1), pub("a", 2), pub("a", 3, false), pub("b", 1, true, "mqtt"), pub("b", 1, true, "mqtt")];
		const v = check(published, [reading("a", [1, 2]), reading("b", [1])]);
		assert.equal(violationCount(v), 0, JSON.stringify(v.violations));
		assert.deepEqual([v.acknowledged, v.applied, v.appliedUnacked, v.customers], [3, 3, 0, 2]);
		assert.deepEqual(v.perSource.mqtt, { acknowledged: 1, applied: 1 });
	});

	it("counts an event applied although its publisher never saw the ack, without calling it a violation", () => {
		const v = check([pub("a", 1), pub("a", 2, false)], [reading("a", [1, 2])]);
		assert.deepEqual([violationCount(v), v.appliedUnacked], [0, 1]);
	});

	it("reports a lost, a duplicate, an out-of-order event, a replay mismatch and a stranger, each as what it is", () => {
		const published = [1, 2, 3, 4].flatMap(s => [pub("lost", s), pub("dup", s), pub("order", s), pub("replay", s), pub("stranger", s)]);
		const v = check(published, [
			reading("lost", [1, 2, 4]),
			reading("dup", [1, 2, 2, 3, 4]),
			reading("order", [1, 3, 2, 4]),
			reading("replay", [1, 2, 3, 4], { risk: 10 }, { risk: 20 }),
			{ ...reading("stranger", [1, 2, 3, 4]), journal: [...reading("stranger", [1, 2, 3, 4]).journal, { version: 5, key: "/elsewhere/x" }] }
		]);
		assert.deepEqual([v.lost, v.duplicates, v.outOfOrder, v.replayMismatches, v.unexpected], [1, 1, 1, 1, 1]);
		assert.equal(violationCount(v), 5);
		const kinds = new Map(v.violations.map(x => [x.customerId, x.kind]));
		assert.deepEqual(Object.fromEntries(kinds), { lost: "lost", dup: "duplicate", order: "out-of-order", replay: "replay-mismatch", stranger: "unexpected" });
		assert.match(v.violations.find(x => x.kind === "lost")?.detail ?? "", /lost-3 \(seq 3, http\) was acknowledged/);
	});

	it("counts every acknowledged event of a customer that was never written as lost, and a journal that does not replay", () => {
		const v = check([pub("gone", 1), pub("gone", 2), pub("broken", 1)], [{ ...reading("broken", [1]), replayError: "journal entry v2 does not follow state v0" }]);
		assert.deepEqual([v.lost, v.replayMismatches], [2, 1]);
	});
});
