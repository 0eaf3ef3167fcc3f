// The risk model: rule table per event, score from factors, factor bounds, inactivity decay and the derived factors.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { EventType, Json } from "../../../models/cloud-event.ts";
import {
	applyRiskRules,
	churnPoints,
	decayFactors,
	hasDecayableFactor,
	isDecayable,
	openTicketsPoints,
	RISK_RULES,
	scoreOf,
	setFactor
} from "../../../actors/risk.ts";
import type { Factors } from "../../../actors/risk.ts";

void describe("applyRiskRules: the default table", () => {
	const cases: { name: string; type: EventType; data: Record<string, Json>; before?: Factors; after: Factors }[] = [
		{ name: "seed rule: an order cancelled adds 10", type: "crm.order.status_changed", data: { orderId: "o1", newStatus: "CANCELLED" }, after: { "order.cancelled": 10 } },
		{ name: "cancels accumulate", type: "crm.order.status_changed", data: { orderId: "o2", newStatus: "CANCELLED" }, before: { "order.cancelled": 10 }, after: { "order.cancelled": 20 } },
		{ name: "other order statuses add nothing", type: "crm.order.status_changed", data: { orderId: "o1", newStatus: "SHIPPED" }, after: {} },
		{ name: "a failed payment adds 8", type: "crm.payment.failed", data: { paymentId: "p1", amount: 10 }, after: { "payment.failed": 8 } },
		{ name: "sentiment -0.5 is negative: +5", type: "crm.interaction.logged", data: { interactionId: "i", channel: "chat", sentiment: -0.5 }, after: { "interaction.negative": 5 } },
		{ name: "sentiment -0.49 is neutral", type: "crm.interaction.logged", data: { interactionId: "i", channel: "chat", sentiment: -0.49 }, after: {} },
		{ name: "sentiment 0.5 is positive: -3", type: "crm.interaction.logged", data: { interactionId: "i", channel: "chat", sentiment: 0.5 }, after: { "interaction.positive": -3 } },
		{ name: "no sentiment: nothing", type: "crm.interaction.logged", data: { interactionId: "i", channel: "chat" }, after: {} },
		{ name: "a HIGH ticket adds 4", type: "crm.ticket.opened", data: { ticketId: "t", priority: "HIGH", category: "c" }, after: { "ticket.high_priority": 4 } },
		{ name: "a CRITICAL ticket adds 4", type: "crm.ticket.opened", data: { ticketId: "t", priority: "CRITICAL", category: "c" }, after: { "ticket.high_priority": 4 } },
		{ name: "a MEDIUM ticket adds nothing", type: "crm.ticket.opened", data: { ticketId: "t", priority: "MEDIUM", category: "c" }, after: {} },
		{ name: "page views add nothing", type: "crm.page.viewed", data: { url: "/pricing" }, after: {} },
		{ name: "an event factor is capped at 100", type: "crm.order.status_changed", data: { orderId: "o", newStatus: "CANCELLED" }, before: { "order.cancelled": 95 }, after: { "order.cancelled": 100 } },
		{ name: "a negative factor stops at -20", type: "crm.interaction.logged", data: { interactionId: "i", channel: "chat", sentiment: 0.9 }, before: { "interaction.positive": -19 }, after: { "interaction.positive": -20 } },
		{ name: "other factors are kept", type: "crm.payment.failed", data: { paymentId: "p", amount: 1 }, before: { "churn.model": 7.5 }, after: { "churn.model": 7.5, "payment.failed": 8 } }
	];
	for (const c of cases) {
		void it(c.name, () => {
			const before = Object.freeze({ ...c.before });
			assert.deepEqual(applyRiskRules(before, c.type, c.data), c.after);
		});
	}

	void it("returns the same object when no rule fires (cheap change detection)", () => {
		const before = { "order.cancelled": 10 };
		assert.equal(applyRiskRules(before, "crm.page.viewed", { url: "/" }), before);
	});

	void it("takes a replacement table", () => {
		const rules = [{ id: "pv", type: "crm.page.viewed" as const, factor: "pages", points: 1 }];
		assert.deepEqual(applyRiskRules({}, "crm.page.viewed", { url: "/" }, undefined, rules), { pages: 1 });
		assert.ok(RISK_RULES.length > 0);
	});
});

void describe("scoreOf", () => {
	const cases: [string, Factors, number][] = [
		["no factors", {}, 0],
		["a sum", { "order.cancelled": 10, "payment.failed": 8 }, 18],
		["rounded half up", { a: 2.5 }, 3],
		["rounded down", { a: 2.49 }, 2],
		["never below 0", { "interaction.positive": -20 }, 0],
		["negative factors offset positive ones", { "order.cancelled": 10, "interaction.positive": -3 }, 7],
		["capped at 100", { "order.cancelled": 100, "payment.failed": 40 }, 100]
	];
	for (const [name, factors, score] of cases) void it(name, () => assert.equal(scoreOf(factors), score));
});

void describe("setFactor", () => {
	void it("clamps to [-20, 100], rounds to 2 decimals, and removes a factor set to 0", () => {
		assert.deepEqual(setFactor({}, "x", 250), { x: 100 });
		assert.deepEqual(setFactor({}, "x", -50), { x: -20 });
		assert.deepEqual(setFactor({}, "x", 1.23456), { x: 1.23 });
		assert.deepEqual(setFactor({ x: 5, y: 1 }, "x", 0), { y: 1 });
	});
	void it("returns the same object when the value does not change", () => {
		const f = { x: 5 };
		assert.equal(setFactor(f, "x", 5), f);
		assert.equal(setFactor(f, "y", 0), f);
	});
});

void describe("derived factors", () => {
	const tickets: [number, number][] = [[0, 0], [2, 0], [3, 5], [4, 10], [10, 40]];
	for (const [open, points] of tickets) void it(`${open} open tickets -> ${points} points`, () => assert.equal(openTicketsPoints(open), points));

	const churn: [number, number, number][] = [[0, 30, 0], [0.5, 30, 15], [0.123, 30, 3.7], [1, 25, 25], [0.333, 10, 3.3]];
	for (const [p, weight, points] of churn) {
		void it(`churn ${p} x weight ${weight} -> ${points}`, () => assert.equal(churnPoints(p, weight), points));
	}

	void it("only event-driven factors are decayable", () => {
		assert.equal(isDecayable("order.cancelled"), true);
		assert.equal(isDecayable("churn.model"), false);
		assert.equal(isDecayable("tickets.open"), false);
		assert.equal(hasDecayableFactor({ "churn.model": 9, "tickets.open": 5 }), false);
		assert.equal(hasDecayableFactor({ "churn.model": 9, "interaction.positive": -3 }), true);
	});
});

void describe("decayFactors", () => {
	const cases: [string, Factors, number, Factors][] = [
		["halves event-driven factors", { "order.cancelled": 20, "payment.failed": 8 }, 0.5, { "order.cancelled": 10, "payment.failed": 4 }],
		["rounds to 2 decimals", { "order.cancelled": 10 }, 0.333, { "order.cancelled": 3.33 }],
		["negative factors decay towards 0", { "interaction.positive": -3 }, 0.5, { "interaction.positive": -1.5 }],
		["drops factors under 0.5 in absolute value", { a: 0.9, b: -0.9, c: 1 }, 0.5, { c: 0.5 }],
		["keeps churn.model and tickets.open as they are", { "churn.model": 12.5, "tickets.open": 5, a: 4 }, 0.5, { "churn.model": 12.5, "tickets.open": 5, a: 2 }],
		["keep 0 clears every event-driven factor", { a: 50, "churn.model": 3 }, 0, { "churn.model": 3 }]
	];
	for (const [name, factors, keep, expected] of cases) {
		void it(name, () => assert.deepEqual(decayFactors(Object.freeze({ ...factors }), keep), expected));
	}
});
