// The pure parts of the metrics module: source naming, bounded reason labels, the rolling window, the risk
// histogram and the memory estimate.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { METRIC_DEFINITIONS } from "../../../metrics/catalogue.ts";
import { estimateActorMemory, sourceOfCaller } from "../../../metrics/metrics.middleware.ts";
import { NodeMetrics, RATE_BUCKET_MS, RATE_BUCKETS, riskHistogram } from "../../../metrics/node-metrics.service.ts";
import { reasonLabel } from "../../../models/dead-letter-reason.ts";
import { emptyCustomerState } from "../../../actors/customer.reducer.ts";

describe("metric definitions", () => {
	it("follow Prometheus conventions: crm_ prefix, counters end in _total, durations in _seconds", () => {
		const names = new Set<string>();
		for (const d of METRIC_DEFINITIONS) {
			assert.match(d.name, /^crm_[a-z_]+$/, d.name);
			assert.equal(d.type === "counter", d.name.endsWith("_total"), `${d.name}: _total iff counter`);
			if (/duration/.test(d.name)) assert.ok(d.name.endsWith("_seconds"), d.name);
			if (d.type === "histogram") assert.ok(d.buckets && d.buckets.length > 0, d.name);
			assert.ok(!names.has(d.name), `duplicate ${d.name}`);
			names.add(d.name);
		}
	});
});

describe("sourceOfCaller", () => {
	const cases: Array<[string | null | undefined, string]> = [
		["ingest-nats", "nats"],
		["ingest-mqtt", "mqtt"],
		["v2.ingest-webhook", "webhook"],
		["api", "api"],
		["devices", "devices"],
		[null, "direct"],
		[undefined, "direct"],
		["", "direct"]
	];
	for (const [caller, source] of cases) it(`${String(caller)} → ${source}`, () => assert.equal(sourceOfCaller(caller), source));
});

describe("reasonLabel", () => {
	it("maps reasons that differ only in quoted input or numbers to one label", () => {
		assert.equal(reasonLabel('unknown event type "crm.a.b"'), reasonLabel('unknown event type "crm.zzz"'));
		assert.equal(reasonLabel("data over 65536 bytes"), reasonLabel("data over 70000 bytes"));
		assert.notEqual(reasonLabel("invalid JSON"), reasonLabel("missing subject"));
	});
	it("cuts long reasons and names missing ones", () => {
		assert.ok(reasonLabel("x".repeat(500)).length <= 80);
		assert.equal(reasonLabel(undefined), "unspecified");
		assert.equal(reasonLabel("   "), "unspecified");
	});
});

describe("NodeMetrics", () => {
	it("counts per source and keeps a rolling window of 10-s buckets", () => {
		let now = 1_000_000_000_000;
		const m = new NodeMetrics(() => now);
		m.received("api", 3);
		m.settled("api", 2, 1);
		now += RATE_BUCKET_MS;
		m.received("nats", 5);
		m.received("api", 1);
		m.failed("api", 1);
		assert.deepEqual(m.bySource.get("api"), { received: 4, applied: 2, duplicates: 1, failed: 1 });
		const w = m.window();
		assert.equal(w.length, RATE_BUCKETS);
		assert.deepEqual(w[w.length - 1].received, { nats: 5, api: 1 });
		assert.deepEqual(w[w.length - 2].received, { api: 3 });
		assert.deepEqual(w[0].received, {});
		// Past the window the old buckets are gone; the totals stay.
		now += RATE_BUCKETS * RATE_BUCKET_MS;
		assert.ok(m.window().every(b => Object.keys(b.received).length === 0));
		assert.equal(m.bySource.get("nats")?.received, 5);
	});

	it("bounds the dead-letter reasons per source, counting the rest as other", () => {
		const m = new NodeMetrics(() => 0);
		for (let i = 0; i < 100; i++) m.deadLetter("nats", `reason kind ${String.fromCharCode(65 + (i % 60))}${String.fromCharCode(65 + Math.floor(i / 60))}`);
		const reasons = m.deadLetters.get("nats");
		assert.ok(reasons);
		assert.equal(reasons.size, 41);
		assert.equal([...reasons.values()].reduce((a, b) => a + b, 0), 100);
		assert.equal(reasons.get("other"), 60);
	});
});

describe("riskHistogram", () => {
	it("puts scores into ten buckets, 100 in the last", () => {
		assert.deepEqual(riskHistogram([0, 9.9, 10, 55, 99, 100]), [2, 1, 0, 0, 0, 1, 0, 0, 0, 2]);
	});
});

describe("estimateActorMemory", () => {
	it("scales the sampled serialized size by the number of active actors", () => {
		const states = new Map(Array.from({ length: 500 }, (_, i) => [`c-${i}`, emptyCustomerState(`c-${i}`)]));
		const host = { activeIds: () => [...states.keys()], peek: (id: string) => states.get(id) ?? null };
		const one = JSON.stringify(emptyCustomerState("c-1")).length;
		const estimate = estimateActorMemory(host);
		assert.ok(estimate >= 500 * one && estimate <= 500 * (one + 200), `estimate ${estimate} for 500 × ${one} bytes`);
		assert.equal(estimateActorMemory({ activeIds: () => [], peek: () => null }), 0);
	});
});
