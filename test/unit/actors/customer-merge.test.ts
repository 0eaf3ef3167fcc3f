// The merge steps and the merge rule (actors/customer-merge.ts): table tests of the protocol's answers, and property
// tests over random histories (fast-check): deterministic, inputs untouched, the survivor's facts never lost, counters
// added up, both dedup windows kept, every step applied once.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { emptyCustomerState, reduce } from "../../../actors/customer.reducer.ts";
import { mergeStates, mergeWindows } from "../../../actors/customer-merge.ts";
import type { CustomerMessage, ReduceContext } from "../../../actors/customer-actor.types.ts";
import type { CustomerState } from "../../../models/customer-state.ts";
import { randomHistory } from "../../support/random-events.ts";
import { known } from "../../support/known-event.ts";

const ctx = (now = Date.UTC(2026, 5, 1)): ReduceContext => ({
	now, dedupWindow: 64, risk: { decayAfterMs: 30 * 86_400_000, decayKeep: 0.5, churnWeight: 30 }
});

function history(seed: number, id: string, length: number): CustomerState {
	let state = emptyCustomerState(id);
	for (const { msg, now } of randomHistory(seed, id, length)) {
		// The history's events name their own subject; the reducer does not look at it.
		state = reduce(state, msg, ctx(now)).state;
	}
	return state;
}

function step(state: CustomerState, msg: CustomerMessage) {
	return reduce(state, msg, ctx());
}

function deepFreeze<T>(o: T): T {
	if (o !== null && typeof o === "object" && !Object.isFrozen(o)) {
		Object.freeze(o);
		for (const v of Object.values(o)) deepFreeze(v);
	}
	return o;
}

/** The full protocol on two states: intent on A, seal on B, absorb of the sealed B on A. */
function mergeByProtocol(a: CustomerState, b: CustomerState) {
	const intent = step(a, { kind: "merge.intent", from: b.id });
	const seal = step(b, { kind: "merge.seal", into: a.id });
	const absorb = step(intent.state, { kind: "merge.absorb", from: b.id, absorbed: seal.state });
	return { intent, seal, absorb };
}

const page = (id: string, n: number) => known({
	specversion: "1.0", id: `pv-${id}-${n}`, source: "/test", type: "crm.page.viewed", subject: id,
	time: new Date(Date.UTC(2026, 0, 1, 0, n)).toISOString(), data: { url: `/p/${n}` }
});

describe("merge steps", () => {
	const A = history(1, "A", 30);
	const B = history(2, "B", 30);

	it("intent, seal and absorb each apply once; repeats answer 'already' and change nothing", () => {
		const { intent, seal, absorb } = mergeByProtocol(A, B);
		assert.deepEqual([intent.applied, intent.merge?.status, intent.state.mergingFrom, intent.state.version], [true, "done", "B", A.version + 1]);
		assert.deepEqual([seal.applied, seal.state.mergedInto, seal.state.risk.score, seal.state.sealedRisk], [true, "A", 0, B.risk]);
		assert.deepEqual(seal.state.reminders, {}, "a sealed customer gets no more reminders");
		assert.deepEqual([absorb.applied, absorb.state.aliases, absorb.state.mergingFrom], [true, ["B"], undefined]);
		assert.equal(absorb.effects[0].type, "customer.merged");

		const again = step(absorb.state, { kind: "merge.absorb", from: "B", absorbed: seal.state });
		assert.deepEqual([again.applied, again.merge?.status, again.state], [false, "already", absorb.state]);
		const sealAgain = step(seal.state, { kind: "merge.seal", into: "A" });
		assert.deepEqual([sealAgain.applied, sealAgain.merge?.status], [false, "already"]);
		const intentAgain = step(absorb.state, { kind: "merge.intent", from: "B" });
		assert.deepEqual([intentAgain.applied, intentAgain.merge?.status], [false, "already"]);
		const intentRepeat = step(intent.state, { kind: "merge.intent", from: "B" });
		assert.deepEqual([intentRepeat.applied, intentRepeat.merge?.status], [false, "done"], "a pending intent stands: the merge goes on");
	});

	it("refuses what the protocol rules out", () => {
		const { intent, seal, absorb } = mergeByProtocol(A, B);
		const table: Array<[string, CustomerState, CustomerMessage, string]> = [
			["intent on an unknown customer", emptyCustomerState("X"), { kind: "merge.intent", from: "B" }, "CUSTOMER_NOT_FOUND"],
			["intent on a sealed customer", seal.state, { kind: "merge.intent", from: "C" }, "CUSTOMER_MERGED"],
			["intent from itself", A, { kind: "merge.intent", from: "A" }, "INVALID_MERGE"],
			["a second merge while one is under way", intent.state, { kind: "merge.intent", from: "C" }, "MERGE_IN_PROGRESS"],
			["seal of an unknown customer", emptyCustomerState("X"), { kind: "merge.seal", into: "A" }, "CUSTOMER_NOT_FOUND"],
			["seal into another survivor", seal.state, { kind: "merge.seal", into: "C" }, "CUSTOMER_MERGED"],
			["seal of a survivor with a merge under way", intent.state, { kind: "merge.seal", into: "C" }, "MERGE_IN_PROGRESS"],
			["seal into one of its aliases (a cycle)", absorb.state, { kind: "merge.seal", into: "B" }, "INVALID_MERGE"],
			["seal into itself", A, { kind: "merge.seal", into: "A" }, "INVALID_MERGE"],
			["absorb of a customer not sealed", intent.state, { kind: "merge.absorb", from: "B", absorbed: B }, "NOT_SEALED"],
			["absorb into a sealed customer", seal.state, { kind: "merge.absorb", from: "C", absorbed: seal.state }, "CUSTOMER_MERGED"]
		];
		for (const [name, state, msg, code] of table) {
			const out = step(state, msg);
			assert.deepEqual([out.applied, out.merge?.status, out.merge?.code, out.state], [false, "refused", code, state], name);
		}
	});

	it("abort withdraws only its own intent", () => {
		const { intent } = mergeByProtocol(A, B);
		const other = step(intent.state, { kind: "merge.abort", from: "C" });
		assert.deepEqual([other.applied, other.state.mergingFrom], [false, "B"]);
		const aborted = step(intent.state, { kind: "merge.abort", from: "B" });
		assert.deepEqual([aborted.applied, aborted.state.mergingFrom, aborted.state.version], [true, undefined, intent.state.version + 1]);
	});

	it("a redelivery of an event the merged customer applied is a duplicate on the survivor", () => {
		let b = emptyCustomerState("B");
		for (let n = 0; n < 10; n++) b = reduce(b, { kind: "event", event: page("B", n) }, ctx()).state;
		const { absorb } = mergeByProtocol(A, b);
		for (let n = 0; n < 10; n++) {
			assert.equal(reduce(absorb.state, { kind: "event", event: page("B", n) }, ctx()).applied, false, `event ${n}`);
		}
		assert.equal(reduce(absorb.state, { kind: "event", event: page("B", 10) }, ctx()).applied, true);
	});
});

describe("merge rule (properties over random histories)", () => {
	const pair = fc.record({ sa: fc.integer({ min: 1, max: 1e6 }), sb: fc.integer({ min: 1, max: 1e6 }), la: fc.integer({ min: 1, max: 80 }), lb: fc.integer({ min: 1, max: 80 }) });
	const sealed = (b: CustomerState, into: string) => step(b, { kind: "merge.seal", into }).state;

	it("is deterministic and leaves its inputs untouched", () => {
		fc.assert(fc.property(pair, ({ sa, sb, la, lb }) => {
			const a = deepFreeze(history(sa, "A", la));
			const b = deepFreeze(sealed(history(sb, "B", lb), "A"));
			assert.deepEqual(mergeStates(a, b, ctx()), mergeStates(a, b, ctx()));
		}), { numRuns: 60 });
	});

	it("never loses a fact of the survivor; the absorbed one's counters are added", () => {
		fc.assert(fc.property(pair, ({ sa, sb, la, lb }) => {
			const a = history(sa, "A", la);
			const b = sealed(history(sb, "B", lb), "A");
			const m = mergeStates(a, b, ctx());
			assert.equal(m.id, "A");
			assert.equal(m.version, a.version + 1);
			assert.deepEqual(m.aliases, ["B"]);
			for (const [field, time] of Object.entries(a.profileTimes)) {
				const bTime = b.profileTimes[field];
				if (bTime !== undefined && bTime > time) {
					assert.equal(m.profileTimes[field], bTime);
					assert.equal(m.profile[field], b.profile[field]);
				} else {
					assert.equal(m.profileTimes[field], time, field);
					assert.equal(m.profile[field], a.profile[field], field);
				}
			}
			for (const name of ["cancelledOrders", "failedPayments", "interactions", "negativeInteractions", "ticketsOpened", "pageViews", "telemetryReadings"] as const) {
				assert.equal(m.counters[name], a.counters[name] + b.counters[name], name);
			}
			assert.ok(m.counters.orders >= Math.max(a.counters.orders, b.counters.orders));
			assert.equal(m.counters.openTickets, m.openTicketIds.length);
			for (const id of a.openTicketIds) if (a.openTicketIds.length + b.openTicketIds.length <= 50) assert.ok(m.openTicketIds.includes(id));
			for (const [id, status] of Object.entries(a.orderStatus)) assert.equal(m.orderStatus[id], status, `order ${id}`);
			for (const [name, value] of Object.entries(a.telemetry)) assert.equal(m.telemetry[name], value);
			assert.equal(m.createdAt, Math.min(a.createdAt, b.createdAt));
			assert.equal(m.lastActivityAt, Math.max(a.lastActivityAt, b.lastActivityAt));
			assert.ok(m.risk.score >= 0 && m.risk.score <= 100);
			assert.equal(m.mergedInto, undefined);
		}), { numRuns: 100 });
	});

	it("keeps the newest keys of both dedup windows", () => {
		fc.assert(fc.property(fc.uniqueArray(fc.integer(), { maxLength: 64 }), fc.uniqueArray(fc.integer(), { maxLength: 64 }), (a, b) => {
			const m = mergeWindows(a, b, 64);
			assert.ok(m.length <= 64);
			assert.equal(new Set(m).size, m.length, "no key twice");
			for (const k of a.slice(-32)) assert.ok(m.includes(k));
			for (const k of b.slice(-32)) assert.ok(m.includes(k));
			if (new Set([...a, ...b]).size <= 64) for (const k of [...a, ...b]) assert.ok(m.includes(k));
			// Oldest first, as the reducer keeps it: the survivor's newest key is among the last two.
			if (a.length > 0) assert.ok(m.slice(-2).includes(a[a.length - 1]));
		}), { numRuns: 300 });
	});
});
