// The customer reducer: every event type, the seed cancel rule, LWW profile, decay reminders, dedup window,
// purity (deep-frozen inputs) and when the churn model runs.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { CloudEvent, EventType, Json } from "../../../models/cloud-event.ts";
import type { CustomerState } from "../../../models/customer-state.ts";
import type { KnownCloudEvent } from "../../../models/event-data.schemas.ts";
import type { CustomerMessage, ReduceContext, ReduceResult } from "../../../actors/customer-actor.types.ts";
import { emptyCustomerState, LIMITS, reduce, REMINDER_RISK_DECAY, sharingEmpties } from "../../../actors/customer.reducer.ts";

const T0 = Date.parse("2025-03-01T10:00:00.000Z");
const MIN = 60_000;
const DECAY_AFTER = 7 * 24 * 60 * MIN;

function ctx(over: Partial<ReduceContext> = {}): ReduceContext {
	return { now: T0, risk: { decayAfterMs: DECAY_AFTER, decayKeep: 0.5, churnWeight: 30 }, dedupWindow: 64, ...over };
}

let seq = 0;
function ev(type: EventType, data: Record<string, Json>, opts: { id?: string; at?: number; source?: string } = {}): CustomerMessage {
	const event: CloudEvent = {
		specversion: "1.0",
		id: opts.id ?? `e-${++seq}`,
		source: opts.source ?? "test",
		type,
		subject: "c1",
		time: new Date(opts.at ?? T0).toISOString(),
		data
	};
	// The reducer gets validated events; these tests build them directly, payload shapes included.
	return { kind: "event", event: event as KnownCloudEvent };
}

const reminder = (name = REMINDER_RISK_DECAY): CustomerMessage => ({ kind: "reminder", name });

const cancel = (orderId: string, opts: { id?: string; at?: number } = {}) =>
	ev("crm.order.status_changed", { orderId, newStatus: "CANCELLED" }, opts);

function deepFreeze<T>(value: T): T {
	if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
		Object.freeze(value);
		for (const v of Object.values(value)) deepFreeze(v);
	}
	return value;
}

/** Applies messages in order to a deep-frozen state each time (so any mutation throws); returns every result. */
function run(msgs: CustomerMessage[], c: ReduceContext = ctx(), start: CustomerState = emptyCustomerState("c1")): ReduceResult[] {
	const results: ReduceResult[] = [];
	let state = start;
	for (const msg of msgs) {
		const r = reduce(deepFreeze(state), deepFreeze(msg), c);
		results.push(r);
		state = r.state;
	}
	return results;
}

const last = (msgs: CustomerMessage[], c?: ReduceContext) => run(msgs, c).at(-1)!.state;

void describe("emptyCustomerState", () => {
	void it("starts at version 0 with no facts and a zero score", () => {
		const s = emptyCustomerState("c9");
		assert.equal(s.id, "c9");
		assert.equal(s.version, 0);
		assert.deepEqual(s.risk, { score: 0, factors: {} });
		assert.equal(s.churnProbability, null);
		assert.equal(s.lastSentiment, null);
		assert.ok(Object.values(s.counters).every(v => v === 0));
	});
	void it("stays small with busy collections: under 3 KB of JSON with 16 orders, 20 tickets, 32 metrics, 62 dedup keys", () => {
		const msgs: CustomerMessage[] = [];
		for (let i = 0; i < 40; i++) msgs.push(ev("crm.order.status_changed", { orderId: `order-${i}`, newStatus: "SHIPPED" }));
		for (let i = 0; i < 20; i++) msgs.push(ev("crm.ticket.opened", { ticketId: `ticket-${i}`, priority: "LOW", category: "c" }));
		const metrics: Record<string, number> = {};
		for (let i = 0; i < 32; i++) metrics[`m${i}`] = i;
		msgs.push(ev("crm.device.telemetry", { deviceId: "d", metrics }));
		msgs.push(ev("crm.customer.updated", { profile: { name: "Ada Lovelace", email: "ada@example.com", plan: "pro" } }));
		// JSON size is a proxy for heap size (measured: about 2.5 KB); the 16-digit dedup keys are about 40 % of it.
		const bytes = JSON.stringify(last(msgs)).length;
		assert.ok(bytes < 3000, `state JSON is ${bytes} bytes`);
	});
});

void describe("each event type", () => {
	const cases: { type: EventType; data: Record<string, Json>; expect: (s: CustomerState) => void }[] = [
		{
			type: "crm.customer.updated", data: { profile: { name: "Ada", plan: "pro" } },
			expect: s => {
				assert.deepEqual(s.profile, { name: "Ada", plan: "pro" });
				assert.deepEqual(s.profileTimes, { name: T0 + 5 * MIN, plan: T0 + 5 * MIN });
			}
		},
		{
			type: "crm.order.status_changed", data: { orderId: "o1", newStatus: "PAID" },
			expect: s => {
				assert.deepEqual(s.orderStatus, { o1: "PAID" });
				assert.equal(s.counters.orders, 1);
				assert.equal(s.counters.cancelledOrders, 0);
				assert.equal(s.risk.score, 0);
			}
		},
		{
			type: "crm.payment.failed", data: { paymentId: "p1", amount: 30 },
			expect: s => {
				assert.equal(s.counters.failedPayments, 1);
				assert.deepEqual(s.risk, { score: 8, factors: { "payment.failed": 8 } });
			}
		},
		{
			type: "crm.interaction.logged", data: { interactionId: "i1", channel: "phone", sentiment: -0.8 },
			expect: s => {
				assert.equal(s.lastSentiment, -0.8);
				assert.equal(s.counters.interactions, 1);
				assert.equal(s.counters.negativeInteractions, 1);
				assert.deepEqual(s.risk.factors, { "interaction.negative": 5 });
			}
		},
		{
			type: "crm.interaction.logged", data: { interactionId: "i1", channel: "phone", sentiment: 0.7 },
			expect: s => {
				assert.equal(s.lastSentiment, 0.7);
				assert.equal(s.counters.negativeInteractions, 0);
				assert.deepEqual(s.risk, { score: 0, factors: { "interaction.positive": -3 } });
			}
		},
		{
			type: "crm.interaction.logged", data: { interactionId: "i1", channel: "email" },
			expect: s => {
				assert.equal(s.lastSentiment, null);
				assert.equal(s.counters.interactions, 1);
			}
		},
		{
			type: "crm.ticket.opened", data: { ticketId: "t1", priority: "CRITICAL", category: "outage" },
			expect: s => {
				assert.deepEqual(s.openTicketIds, ["t1"]);
				assert.equal(s.counters.openTickets, 1);
				assert.equal(s.counters.ticketsOpened, 1);
				assert.deepEqual(s.risk.factors, { "ticket.high_priority": 4 });
			}
		},
		{
			type: "crm.ticket.resolved", data: { ticketId: "unknown" },
			expect: s => {
				assert.deepEqual(s.openTicketIds, []);
				assert.equal(s.counters.openTickets, 0);
			}
		},
		{
			type: "crm.device.telemetry", data: { deviceId: "d1", metrics: { signalDbm: -71, dataGb: 3.5 } },
			expect: s => {
				assert.deepEqual(s.telemetry, { signalDbm: -71, dataGb: 3.5 });
				assert.equal(s.counters.telemetryReadings, 1);
			}
		},
		{
			type: "crm.page.viewed", data: { url: "/cancel-subscription" },
			expect: s => {
				assert.equal(s.counters.pageViews, 1);
				assert.equal(s.risk.score, 0);
			}
		}
	];
	for (const c of cases) {
		void it(`${c.type} ${JSON.stringify(c.data)}`, () => {
			const at = T0 + 5 * MIN;
			const [r] = run([ev(c.type, c.data, { at })]);
			assert.equal(r.applied, true);
			assert.equal(r.state.version, 1);
			assert.equal(r.state.createdAt, at);
			assert.equal(r.state.lastActivityAt, at);
			assert.equal(r.state.recentEventKeys.length, 1);
			assert.deepEqual(r.effects[0], { type: "customer.created", payload: { customerId: "c1" } });
			c.expect(r.state);
		});
	}

	void it("customer.created only on the first event; createdAt stays, lastActivityAt is the latest event time", () => {
		const rs = run([
			ev("crm.page.viewed", { url: "/" }, { at: T0 + 10 * MIN }),
			ev("crm.page.viewed", { url: "/" }, { at: T0 }),
			ev("crm.page.viewed", { url: "/" }, { at: T0 + 20 * MIN })
		]);
		assert.deepEqual(rs.map(r => r.effects.filter(e => e.type === "customer.created").length), [1, 0, 0]);
		assert.deepEqual(rs.map(r => [r.state.version, r.state.createdAt, r.state.lastActivityAt]), [
			[1, T0 + 10 * MIN, T0 + 10 * MIN],
			[2, T0 + 10 * MIN, T0 + 10 * MIN],
			[3, T0 + 10 * MIN, T0 + 20 * MIN]
		]);
	});

	void it("tickets: re-opening an open ticket changes nothing, tickets.open counts those above 2, resolve recomputes", () => {
		const open = (id: string, priority = "LOW") => ev("crm.ticket.opened", { ticketId: id, priority, category: "c" });
		const rs = run([
			open("t1", "HIGH"), open("t1", "HIGH"), open("t2"), open("t3"), open("t4"),
			ev("crm.ticket.resolved", { ticketId: "t2" }), ev("crm.ticket.resolved", { ticketId: "t2" })
		]);
		const view = rs.map(r => [r.state.counters.openTickets, r.state.counters.ticketsOpened, r.state.risk.factors["tickets.open"] ?? 0]);
		assert.deepEqual(view, [[1, 1, 0], [1, 1, 0], [2, 2, 0], [3, 3, 5], [4, 4, 10], [3, 4, 5], [3, 4, 5]]);
		assert.deepEqual(rs.at(-1)!.state.openTicketIds, ["t1", "t3", "t4"]);
		assert.equal(rs.at(-1)!.state.risk.factors["ticket.high_priority"], 4);
	});

	void it(`open ticket ids stay bounded to ${LIMITS.openTicketIds}, oldest first out`, () => {
		const msgs = Array.from({ length: LIMITS.openTicketIds + 5 }, (_, i) => ev("crm.ticket.opened", { ticketId: `t${i}`, priority: "LOW", category: "c" }));
		const s = last(msgs);
		assert.equal(s.openTicketIds.length, LIMITS.openTicketIds);
		assert.equal(s.openTicketIds[0], "t5");
		assert.equal(s.counters.openTickets, LIMITS.openTicketIds);
		assert.equal(s.counters.ticketsOpened, LIMITS.openTicketIds + 5);
	});

	void it(`order statuses stay bounded to the ${LIMITS.orderStatus} most recently updated orders`, () => {
		const msgs = Array.from({ length: 20 }, (_, i) => ev("crm.order.status_changed", { orderId: `o${i}`, newStatus: "PAID" }));
		// o4 is updated after o5 was created, so when o20 arrives o5 is the least recently updated and goes.
		msgs.push(ev("crm.order.status_changed", { orderId: "o4", newStatus: "SHIPPED" }));
		msgs.push(ev("crm.order.status_changed", { orderId: "o20", newStatus: "PAID" }));
		const s = last(msgs);
		assert.equal(Object.keys(s.orderStatus).length, LIMITS.orderStatus);
		assert.deepEqual(Object.keys(s.orderStatus), [...Array.from({ length: 14 }, (_, i) => `o${i + 6}`), "o4", "o20"]);
		assert.equal(s.orderStatus.o4, "SHIPPED");
		assert.equal(s.counters.orders, 21);
	});

	void it(`telemetry keeps the latest value per metric and at most ${LIMITS.telemetryKeys} metrics`, () => {
		const first: Record<string, number> = {};
		for (let i = 0; i < LIMITS.telemetryKeys; i++) first[`m${i}`] = i;
		const s = last([
			ev("crm.device.telemetry", { deviceId: "d", metrics: first }),
			ev("crm.device.telemetry", { deviceId: "d", metrics: { m0: 100, extra: 1 } })
		]);
		assert.equal(Object.keys(s.telemetry).length, LIMITS.telemetryKeys);
		assert.equal(s.telemetry.m0, 100);
		assert.equal(s.telemetry.extra, undefined);
		assert.equal(s.counters.telemetryReadings, 2);
	});
});

void describe("seed rule: a cancelled order adds 10", () => {
	void it("cancel +10; same event again: duplicate; another cancel of the same order: no change; another order: +10", () => {
		const first = cancel("A", { id: "evt-1" });
		const rs = run([first, first, cancel("A", { id: "evt-2" }), cancel("B", { id: "evt-3" })]);
		const view = rs.map(r => ({
			applied: r.applied,
			score: r.state.risk.score,
			cancelled: r.state.counters.cancelledOrders,
			orders: r.state.counters.orders,
			risk: r.effects.filter(e => e.type === "customer.risk.changed").map(e => e.payload)
		}));
		assert.deepEqual(view, [
			{ applied: true, score: 10, cancelled: 1, orders: 1, risk: [{ customerId: "c1", oldScore: 0, newScore: 10, factors: { "order.cancelled": 10 }, cause: "test/evt-1" }] },
			{ applied: false, score: 10, cancelled: 1, orders: 1, risk: [] },
			{ applied: true, score: 10, cancelled: 1, orders: 1, risk: [] },
			{ applied: true, score: 20, cancelled: 2, orders: 2, risk: [{ customerId: "c1", oldScore: 10, newScore: 20, factors: { "order.cancelled": 20 }, cause: "test/evt-3" }] }
		]);
		assert.equal(rs[1].state, rs[0].state, "a duplicate returns the very same state object");
		assert.equal(rs[1].effects.length, 0);
		assert.equal(rs[2].state.version, 2, "the second cancel event is applied (version) but adds no risk");
	});

	void it("a re-cancel after the order came back to life counts again", () => {
		const s = last([cancel("A"), ev("crm.order.status_changed", { orderId: "A", newStatus: "PAID" }), cancel("A")]);
		assert.equal(s.risk.score, 20);
		assert.equal(s.counters.cancelledOrders, 2);
		assert.equal(s.counters.orders, 1);
	});

	void it("the score is capped at 100", () => {
		const msgs = Array.from({ length: 12 }, (_, i) => cancel(`o${i}`));
		msgs.push(ev("crm.payment.failed", { paymentId: "p", amount: 1 }));
		const rs = run(msgs);
		assert.deepEqual(rs.map(r => r.state.risk.score), [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 100, 100, 100]);
		assert.equal(rs.at(-1)!.state.risk.factors["order.cancelled"], 100);
		// Capped scores do not move, so nothing is announced.
		assert.deepEqual(rs.slice(10).map(r => r.effects.length), [0, 0, 0]);
	});
});

void describe("profile: last writer wins per field by event time", () => {
	const upd = (profile: Record<string, Json>, at: number, id?: string) => ev("crm.customer.updated", { profile }, { at, id });
	const cases: { name: string; msgs: CustomerMessage[]; profile: Record<string, Json>; times: Record<string, number> }[] = [
		{
			name: "newer then older: the older value is ignored per field",
			msgs: [upd({ email: "new@x.io", name: "Ada" }, T0 + 2), upd({ email: "old@x.io", plan: "basic" }, T0 + 1)],
			profile: { email: "new@x.io", name: "Ada", plan: "basic" },
			times: { email: T0 + 2, name: T0 + 2, plan: T0 + 1 }
		},
		{
			name: "older then newer: the newer value wins",
			msgs: [upd({ email: "old@x.io" }, T0 + 1), upd({ email: "new@x.io" }, T0 + 2)],
			profile: { email: "new@x.io" },
			times: { email: T0 + 2 }
		},
		{
			name: "null clears a field and keeps its time",
			msgs: [upd({ email: "a@x.io", name: "Ada" }, T0 + 1), upd({ email: null }, T0 + 2)],
			profile: { name: "Ada" },
			times: { email: T0 + 2, name: T0 + 1 }
		},
		{
			name: "an older set does not resurrect a cleared field",
			msgs: [upd({ email: null }, T0 + 2), upd({ email: "old@x.io" }, T0 + 1)],
			profile: {},
			times: { email: T0 + 2 }
		},
		{
			name: "a newer set after a clear brings it back",
			msgs: [upd({ email: null }, T0 + 2), upd({ email: "new@x.io" }, T0 + 3)],
			profile: { email: "new@x.io" },
			times: { email: T0 + 3 }
		}
	];
	for (const c of cases) {
		void it(c.name, () => {
			const s = last(c.msgs);
			assert.deepEqual(s.profile, c.profile);
			assert.deepEqual(s.profileTimes, c.times);
		});
	}

	void it("equal times resolve the same way whatever the arrival order (replays converge)", () => {
		const a = upd({ email: "a@x.io", tier: 1 }, T0, "a");
		const b = upd({ email: "b@x.io", tier: null }, T0, "b");
		const c = upd({ email: null, tier: 2 }, T0, "c");
		const orders = [[a, b, c], [a, c, b], [b, a, c], [b, c, a], [c, a, b], [c, b, a]];
		const results = orders.map(msgs => {
			const s = last(msgs);
			return { profile: s.profile, times: s.profileTimes };
		});
		for (const r of results) assert.deepEqual(r, results[0]);
		assert.deepEqual(results[0].profile, { email: "b@x.io", tier: 2 });
	});
});

void describe("inactivity decay through the risk.decay reminder", () => {
	void it("schedules after activity, decays only when due, reschedules while decayable factors remain", () => {
		const c = (now: number) => ctx({ now });
		let s = last([cancel("A", { at: T0 })]);
		assert.deepEqual(s.reminders, { [REMINDER_RISK_DECAY]: T0 + DECAY_AFTER });

		// Activity moves the due time.
		s = reduce(s, ev("crm.page.viewed", { url: "/" }, { at: T0 + 60 * MIN }), c(T0)).state;
		const due = T0 + 60 * MIN + DECAY_AFTER;
		assert.equal(s.reminders[REMINDER_RISK_DECAY], due);

		// Too early (e.g. delivered late for the old due time): nothing to change.
		const early = reduce(deepFreeze(s), reminder(), c(due - 1));
		assert.equal(early.applied, false);
		assert.equal(early.state, s);

		const steps: [number, number, number | undefined][] = [];
		let now = due;
		for (let i = 0; i < 6; i++) {
			const r = reduce(deepFreeze(s), reminder(), c(now));
			// A second delivery at the same instant must not decay twice.
			assert.equal(reduce(deepFreeze(r.state), reminder(), c(now)).state, r.state);
			if (r.state.risk.score !== s.risk.score) {
				assert.deepEqual(r.effects, [{
					type: "customer.risk.changed",
					payload: { customerId: "c1", oldScore: s.risk.score, newScore: r.state.risk.score, factors: r.state.risk.factors, cause: "reminder:risk.decay" }
				}]);
			}
			s = r.state;
			steps.push([s.risk.factors["order.cancelled"] ?? 0, s.risk.score, s.reminders[REMINDER_RISK_DECAY]]);
			now += DECAY_AFTER;
		}
		assert.deepEqual(steps, [
			[5, 5, due + DECAY_AFTER],
			[2.5, 3, due + 2 * DECAY_AFTER],
			[1.25, 1, due + 3 * DECAY_AFTER],
			[0.63, 1, due + 4 * DECAY_AFTER],
			[0, 0, undefined],
			[0, 0, undefined]
		]);
	});

	void it("keeps derived factors and drops the reminder once only they remain", () => {
		const open = (id: string) => ev("crm.ticket.opened", { ticketId: id, priority: "LOW", category: "c" });
		let s = last([open("t1"), open("t2"), open("t3")]);
		assert.deepEqual(s.risk.factors, { "tickets.open": 5 });
		assert.deepEqual(s.reminders, {}, "nothing decayable, no reminder");

		s = reduce(s, ev("crm.payment.failed", { paymentId: "p", amount: 1 }, { at: T0 }), ctx()).state;
		for (let i = 1; i <= 5; i++) s = reduce(s, reminder(), ctx({ now: T0 + i * DECAY_AFTER })).state;
		assert.deepEqual(s.risk.factors, { "tickets.open": 5 });
		assert.deepEqual(s.reminders, {});
	});

	void it("an old out-of-order event does not pull a scheduled decay step forward", () => {
		let s = last([cancel("A", { at: T0 })]);
		s = reduce(s, reminder(), ctx({ now: T0 + DECAY_AFTER + 5 })).state;
		assert.equal(s.reminders[REMINDER_RISK_DECAY], T0 + 2 * DECAY_AFTER + 5);
		s = reduce(s, ev("crm.payment.failed", { paymentId: "p", amount: 1 }, { at: T0 - MIN }), ctx()).state;
		assert.equal(s.reminders[REMINDER_RISK_DECAY], T0 + 2 * DECAY_AFTER + 5);
	});

	void it("unknown reminders change nothing", () => {
		const s = last([cancel("A")]);
		const r = reduce(deepFreeze(s), reminder("nope"), ctx({ now: T0 + 10 * DECAY_AFTER }));
		assert.equal(r.state, s);
		assert.equal(r.applied, false);
		assert.deepEqual(r.effects, []);
	});
});

void describe("dedup window", () => {
	void it("remembers the last dedupWindow event keys, oldest evicted first", () => {
		const c = ctx({ dedupWindow: 3 });
		const e = [1, 2, 3, 4].map(i => ev("crm.page.viewed", { url: "/" }, { id: `k${i}` }));
		const rs = run([...e, e[3], e[1], e[0], e[0]], c);
		assert.deepEqual(rs.map(r => r.applied), [true, true, true, true, false, false, true, false]);
		assert.deepEqual(rs.map(r => r.state.recentEventKeys.length), [1, 2, 3, 3, 3, 3, 3, 3]);
		assert.equal(rs.at(-1)!.state.counters.pageViews, 5);
	});

	void it("the key is source + id: the same id from another source is a different event", () => {
		const rs = run([
			ev("crm.payment.failed", { paymentId: "p", amount: 1 }, { id: "1", source: "erp" }),
			ev("crm.payment.failed", { paymentId: "p", amount: 1 }, { id: "1", source: "webhook" })
		]);
		assert.deepEqual(rs.map(r => r.applied), [true, true]);
		assert.equal(rs[1].state.risk.score, 16);
	});
});

void describe("purity", () => {
	const all: CustomerMessage[] = [
		ev("crm.customer.updated", { profile: { name: "Ada", email: "a@x.io" } }),
		cancel("A"),
		ev("crm.payment.failed", { paymentId: "p", amount: 1 }),
		ev("crm.interaction.logged", { interactionId: "i", channel: "chat", sentiment: -0.9 }),
		ev("crm.ticket.opened", { ticketId: "t1", priority: "HIGH", category: "c" }),
		ev("crm.ticket.opened", { ticketId: "t2", priority: "LOW", category: "c" }),
		ev("crm.ticket.opened", { ticketId: "t3", priority: "LOW", category: "c" }),
		ev("crm.ticket.resolved", { ticketId: "t1" }),
		ev("crm.device.telemetry", { deviceId: "d", metrics: { a: 1 } }),
		ev("crm.page.viewed", { url: "/" }),
		ev("crm.customer.updated", { profile: { name: null } }),
		reminder(),
		reminder("x")
	];

	void it("never mutates its input (deep-frozen) and leaves it deep-equal to before", () => {
		let state = emptyCustomerState("c1");
		const scorer = (s: CustomerState) => (s.counters.failedPayments > 0 ? 0.4 : 0.1);
		for (const msg of all) {
			const snapshot = structuredClone(state);
			const c = ctx({ now: T0 + 30 * DECAY_AFTER, churnScorer: scorer });
			const r = reduce(deepFreeze(state), deepFreeze(msg), c);
			assert.deepEqual(state, snapshot);
			state = r.state;
		}
		assert.equal(state.counters.openTickets, 2);
	});

	void it("is deterministic: the same messages give deep-equal states and effects", () => {
		const scorer = (s: CustomerState) => s.counters.orders / 10;
		const a = run(all, ctx({ churnScorer: scorer }));
		const b = run(all, ctx({ churnScorer: scorer }));
		assert.deepEqual(a, b);
	});
});

void describe("churn model", () => {
	const cases: [EventType, Record<string, Json>, number][] = [
		["crm.customer.updated", { profile: { plan: "pro" } }, 1],
		["crm.order.status_changed", { orderId: "o", newStatus: "PAID" }, 1],
		["crm.payment.failed", { paymentId: "p", amount: 1 }, 1],
		["crm.interaction.logged", { interactionId: "i", channel: "chat" }, 1],
		["crm.ticket.opened", { ticketId: "t", priority: "LOW", category: "c" }, 1],
		["crm.ticket.resolved", { ticketId: "t" }, 1],
		["crm.device.telemetry", { deviceId: "d", metrics: { a: 1 } }, 0],
		["crm.page.viewed", { url: "/" }, 0]
	];
	for (const [type, data, calls] of cases) {
		void it(`${type}: scorer called ${calls} time(s); a duplicate: never`, () => {
			let n = 0;
			const c = ctx({ churnScorer: () => { n++; return 0.5; } });
			const msg = ev(type, data);
			const rs = run([msg, msg], c);
			assert.equal(n, calls);
			assert.equal(rs[1].applied, false);
			assert.equal(rs[0].state.churnProbability, calls ? 0.5 : null);
			assert.equal(rs[0].state.risk.factors["churn.model"], calls ? 15 : undefined);
		});
	}

	void it("the scorer sees the event's facts, and its factor moves the score", () => {
		const seen: number[] = [];
		const scorer = (s: CustomerState) => {
			seen.push(s.counters.failedPayments);
			return Math.min(1, s.counters.failedPayments * 0.2);
		};
		const pay = () => ev("crm.payment.failed", { paymentId: "p", amount: 1 });
		const rs = run([pay(), pay()], ctx({ churnScorer: scorer }));
		assert.deepEqual(seen, [1, 2]);
		assert.deepEqual(rs.map(r => r.state.risk.factors), [
			{ "payment.failed": 8, "churn.model": 6 },
			{ "payment.failed": 16, "churn.model": 12 }
		]);
		assert.deepEqual(rs.map(r => r.state.risk.score), [14, 28]);
	});

	void it("a scorer returning NaN keeps the previous estimate instead of poisoning the score", () => {
		const s = last([ev("crm.payment.failed", { paymentId: "p", amount: 1 })], ctx({ churnScorer: () => NaN }));
		assert.equal(s.churnProbability, null);
		assert.equal(s.risk.score, 8);
	});
});

void describe("interaction effect", () => {
	void it("an applied interaction emits customer.interaction.logged with its data; a duplicate or another event type does not", () => {
		const talk = ev("crm.interaction.logged", { interactionId: "i7", channel: "email", text: "Very unhappy with the invoice" }, { id: "talk", at: T0 + MIN });
		const rs = run([ev("crm.page.viewed", { url: "/" }), talk, talk]);
		const logged = rs.map(r => r.effects.filter(e => e.type === "customer.interaction.logged").map(e => e.payload));
		assert.deepEqual(logged, [[], [{
			interactionId: "i7", channel: "email", text: "Very unhappy with the invoice",
			customerId: "c1", time: new Date(T0 + MIN).toISOString(), cause: "test/talk"
		}], []]);
	});
});

void describe("shared empty collections", () => {
	void it("new states share frozen empty collections, and a state read from a store shares them again", () => {
		const a = emptyCustomerState("a");
		const b = emptyCustomerState("b");
		assert.equal(a.orderStatus, b.orderStatus);
		assert.ok(Object.isFrozen(a.orderStatus) && Object.isFrozen(a.recentEventKeys) && Object.isFrozen(a.counters));
		// Every event type writes through copies: applying them all to a state whose collections are frozen throws nothing.
		let s = a;
		for (const m of [
			ev("crm.customer.updated", { profile: { plan: "gold" } }), cancel("o1"), ev("crm.payment.failed", { paymentId: "p1", amount: 5 }),
			ev("crm.interaction.logged", { interactionId: "i1", channel: "email", sentiment: -1 }), ev("crm.ticket.opened", { ticketId: "t1", priority: "HIGH", category: "X" }),
			ev("crm.ticket.resolved", { ticketId: "t1" }), ev("crm.device.telemetry", { deviceId: "d1", metrics: { temp: 1 } }), ev("crm.page.viewed", { url: "/" }),
			reminder()
		]) s = reduce(s, m, ctx()).state;
		assert.equal(b.counters.orders, 0, "the shared counters did not move");
		const loaded = JSON.parse(JSON.stringify(b)) as CustomerState;
		const shared = sharingEmpties(loaded);
		assert.equal(shared.orderStatus, a.orderStatus);
		assert.equal(shared.risk, a.risk);
		assert.deepEqual(shared, loaded, "the same state");
		assert.equal(JSON.stringify(shared), JSON.stringify(loaded));
		const withOrder = sharingEmpties(JSON.parse(JSON.stringify(s)) as CustomerState);
		assert.notEqual(withOrder.orderStatus, a.orderStatus, "a collection with entries keeps its own object");
		assert.deepEqual(withOrder, JSON.parse(JSON.stringify(s)));
	});
});

void describe("change record and score lineage", () => {
	const open = (ticketId: string) => ev("crm.ticket.opened", { ticketId, priority: "LOW", category: "billing" });

	void it("names the event, the changed fields and, for a cancelled order, the rule with its delta", () => {
		const [r] = run([cancel("o-1", { id: "c-1" })]);
		assert.ok(r.change);
		assert.equal(r.change.version, 1);
		assert.deepEqual(r.change.cause, { event: { source: "test", id: "c-1", type: "crm.order.status_changed" } });
		assert.deepEqual(r.change.fields, ["createdAt", "lastActivityAt", "counters", "orderStatus", "risk", "reminders"]);
		assert.deepEqual(r.change.risk, {
			old: 0, new: 10,
			lineage: [{ factor: "order.cancelled", delta: 10, cause: { kind: "rule", file: "actors/risk.ts", rule: "order-cancelled" } }]
		});
	});

	void it("has no risk part when no factor moves, and no record for a duplicate", () => {
		const [view, dup] = run([ev("crm.page.viewed", { url: "/" }, { id: "p-1" }), ev("crm.page.viewed", { url: "/" }, { id: "p-1" })]);
		assert.equal(view.change?.risk, undefined);
		assert.deepEqual(view.change?.fields, ["createdAt", "lastActivityAt", "counters"]);
		assert.equal(dup.change, null);
	});

	void it("names the rule file and rule of the rules it was given, and the churn model artifact", () => {
		const riskRules: ReduceContext["riskRules"] = (factors, _type, _data, fired) => {
			fired?.push({ file: "rules/risk.nools", rule: "PaymentFailed", factor: "payment.failed", points: 8 });
			return { ...factors, "payment.failed": (factors["payment.failed"] ?? 0) + 8 };
		};
		const churnScorer = Object.assign(() => 0.5, { model: { kind: "model" as const, artifact: "churn-telco.json", trainedAt: "2025-01-01T00:00:00.000Z", sha256: "ab".repeat(32) } });
		const [r] = run([ev("crm.payment.failed", { paymentId: "p", amount: 5, currency: "EUR" })], ctx({ riskRules, churnScorer }));
		assert.deepEqual(r.change?.risk?.lineage, [
			{ factor: "payment.failed", delta: 8, cause: { kind: "rule", file: "rules/risk.nools", rule: "PaymentFailed" } },
			{ factor: "churn.model", delta: 15, cause: churnScorer.model }
		]);
		assert.deepEqual([r.change?.risk?.old, r.change?.risk?.new], [0, 23]);
	});

	void it("attributes the open-tickets factor to the number of open tickets", () => {
		const results = run([open("t1"), open("t2"), open("t3")]);
		const lineage = results[2].change?.risk?.lineage;
		assert.deepEqual(lineage, [{ factor: "tickets.open", delta: 5, cause: { kind: "tickets.open", openTickets: 3 } }]);
	});

	void it("attributes a decay step to its reminder, with negative deltas", () => {
		const results = run([cancel("o-1"), reminder()], ctx({ now: T0 + DECAY_AFTER + 1 }));
		const decay = results[1].change;
		assert.deepEqual(decay?.cause, { reminder: REMINDER_RISK_DECAY });
		assert.deepEqual(decay?.risk, { old: 10, new: 5, lineage: [{ factor: "order.cancelled", delta: -5, cause: { kind: "decay", reminder: REMINDER_RISK_DECAY } }] });
		assert.equal(decay?.version, 2);
	});
});
