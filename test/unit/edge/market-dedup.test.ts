// Market signals: the content key the Bloom filter sees, the de-duplicator's in-flight rules, and how the reducer
// keeps the latest signal compactly.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { CloudEvent } from "../../../models/cloud-event.ts";
import type { MarketSignalData } from "../../../models/event-data.schemas.ts";
import { validateEvent } from "../../../models/cloud-event.validator.ts";
import { MarketDeduplicator, marketContentKey } from "../../../edge/market-dedup.ts";
import { emptyCustomerState, reduce } from "../../../actors/customer.reducer.ts";
import type { ReduceContext } from "../../../actors/customer-actor.types.ts";

type Signal = CloudEvent<"crm.market.signal", MarketSignalData>;

function signal(over: Partial<Signal> = {}, data: Partial<MarketSignalData> = {}): Signal {
	return {
		specversion: "1.0", id: "m-1", source: "/scraper/acme", type: "crm.market.signal", subject: "cust-1",
		time: "2026-03-02T10:00:00Z",
		data: { competitor: "Acme", product: "fibre-100", price: 29.99, currency: "EUR", ...data },
		...over
	};
}

void describe("marketContentKey", () => {
	const base = marketContentKey(signal());
	const cases: Array<[string, Signal, boolean]> = [
		["another envelope id and source, same observation", signal({ id: "m-2", source: "/scraper/mirror" }), true],
		["later the same UTC day", signal({ time: "2026-03-02T23:59:59Z" }), true],
		["same instant written with an offset", signal({ time: "2026-03-02T12:00:00+02:00" }), true],
		["the next day", signal({ time: "2026-03-03T00:00:00Z" }), false],
		["another price", signal({}, { price: 30 }), false],
		["another customer", signal({ subject: "cust-2" }), false],
		["another competitor", signal({}, { competitor: "Acme2" }), false],
		["a segment", signal({}, { segment: "smb" }), false],
		["fields shifted between competitor and product", signal({}, { competitor: "Acmefibre-100", product: "" }), false]
	];
	for (const [name, other, same] of cases) {
		void it(`${same ? "same" : "different"} key: ${name}`, () => {
			assert.equal(marketContentKey(other) === base, same);
		});
	}

	void it("is computed from a validated event as the ingest service has it", () => {
		const v = validateEvent(signal());
		assert.ok(v.ok);
		assert.equal(marketContentKey(v.event as Signal), base);
	});
});

void describe("MarketDeduplicator", () => {
	void it("treats content as duplicate while in flight and once applied, not after it was abandoned", () => {
		const d = new MarketDeduplicator(1000, 0.001);
		assert.equal(d.isDuplicate("a"), false);
		assert.equal(d.isDuplicate("a"), true, "in flight");
		d.applied("a");
		assert.equal(d.isDuplicate("a"), true, "applied");
		assert.equal(d.isDuplicate("b"), false);
		d.abandoned("b");
		assert.equal(d.isDuplicate("b"), false, "a dead-lettered record does not block a fixed re-send");
	});
});

void describe("reducer: crm.market.signal", () => {
	const ctx: ReduceContext = { now: 0, risk: { decayAfterMs: 1e9, decayKeep: 0.5, churnWeight: 30 }, dedupWindow: 64 };
	const apply = (events: Signal[]) => {
		let state = emptyCustomerState("cust-1");
		for (const event of events) state = reduce(state, { kind: "event", event }, ctx).state;
		return state;
	};

	void it("counts signals and keeps the latest by event time", () => {
		const s = apply([
			signal({ id: "1", time: "2026-03-02T10:00:00Z" }, { price: 10 }),
			signal({ id: "2", time: "2026-03-04T10:00:00Z" }, { price: 12, competitor: "Beta" }),
			signal({ id: "3", time: "2026-03-03T10:00:00Z" }, { price: 11 })
		]);
		assert.deepEqual(s.market, {
			signals: 3,
			lastSignalAt: Date.parse("2026-03-04T10:00:00Z"),
			latest: { competitor: "Beta", product: "fibre-100", price: 12, currency: "EUR" }
		});
		assert.equal(s.version, 3);
		assert.equal(s.risk.score, 0, "a market signal is information, not risk");
	});

	void it("ignores a redelivered signal (same source and id)", () => {
		const s = apply([signal({ id: "1" }), signal({ id: "1" })]);
		assert.equal(s.market?.signals, 1);
		assert.equal(s.version, 1);
	});
});
