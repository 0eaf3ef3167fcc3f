// rules/risk.nools: every rule fires on its event and not on a near miss; the derived table and a real nools
// session give the same factors; the shipped file agrees with the built-in table; deltas and actions are checked.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import type { EventType, Json } from "../../../models/cloud-event.ts";
import { applyRiskRules, type Factors } from "../../../actors/risk.ts";
import { applyDeltas, parseRiskAction, pinnedEventType, type FiredRule } from "../../../actors/risk-rules.ts";
import { loadRiskRules, type RiskRuleSet } from "../../../services/rules/risk-rules.ts";
import { parseCondition } from "../../../services/rules/nools-loader.ts";

const FILE = path.resolve("rules/risk.nools");

interface Case { rule: string; fires: boolean; type: EventType; data: Record<string, Json>; before?: Factors; after: Factors }

// One case where each rule fires and one where it must not (a near miss of the same event type).
const CASES: Case[] = [
	{ rule: "OrderCancelled", fires: true, type: "crm.order.status_changed", data: { orderId: "o1", newStatus: "CANCELLED" }, after: { "order.cancelled": 10 } },
	{ rule: "OrderCancelled", fires: false, type: "crm.order.status_changed", data: { orderId: "o1", newStatus: "RETURNED" }, after: {} },
	{ rule: "PaymentFailed", fires: true, type: "crm.payment.failed", data: { paymentId: "p1", amount: 10 }, before: { "payment.failed": 8 }, after: { "payment.failed": 16 } },
	{ rule: "PaymentFailed", fires: false, type: "crm.order.status_changed", data: { orderId: "o1", newStatus: "PAID" }, after: {} },
	{ rule: "NegativeInteraction", fires: true, type: "crm.interaction.logged", data: { interactionId: "i", channel: "chat", sentiment: -0.5 }, after: { "interaction.negative": 5 } },
	{ rule: "NegativeInteraction", fires: false, type: "crm.interaction.logged", data: { interactionId: "i", channel: "chat", sentiment: -0.49 }, after: {} },
	{ rule: "PositiveInteraction", fires: true, type: "crm.interaction.logged", data: { interactionId: "i", channel: "chat", sentiment: 0.5 }, after: { "interaction.positive": -3 } },
	{ rule: "PositiveInteraction", fires: false, type: "crm.interaction.logged", data: { interactionId: "i", channel: "chat" }, after: {} },
	{ rule: "HighPriorityTicket", fires: true, type: "crm.ticket.opened", data: { ticketId: "t", priority: "CRITICAL", category: "X" }, after: { "ticket.high_priority": 4 } },
	{ rule: "HighPriorityTicket", fires: false, type: "crm.ticket.opened", data: { ticketId: "t", priority: "MEDIUM", category: "X" }, after: {} }
];

for (const engine of ["table", "nools"] as const) {
	void describe(`rules/risk.nools on the ${engine} engine`, () => {
		const set: RiskRuleSet = loadRiskRules(FILE, engine);
		after(() => set.dispose());

		void it("has the five rules of the file, with their lines", () => {
			assert.deepEqual(set.rules.map(r => r.name), ["OrderCancelled", "PaymentFailed", "NegativeInteraction", "PositiveInteraction", "HighPriorityTicket"]);
			for (const r of set.rules) assert.ok(r.line > 1, r.name);
		});

		for (const c of CASES) {
			void it(`${c.rule} ${c.fires ? "fires" : "does not fire"} for ${c.type} ${JSON.stringify(c.data)}`, () => {
				const before = Object.freeze({ "churn.model": 3, ...c.before });
				const result = set.evaluate(before, c.type, c.data);
				assert.deepEqual(result, { "churn.model": 3, ...c.after });
				if (!c.fires) assert.equal(result, before, "no rule fired: the same object comes back");
			});
		}

		void it("agrees with the built-in table of actors/risk.ts on every case", () => {
			for (const c of CASES) assert.deepEqual(set.evaluate({ ...c.before }, c.type, c.data), applyRiskRules({ ...c.before }, c.type, c.data), c.rule);
		});

		void it("keeps factors within bounds", () => {
			assert.deepEqual(set.evaluate({ "order.cancelled": 95 }, "crm.order.status_changed", { orderId: "o", newStatus: "CANCELLED" }), { "order.cancelled": 100 });
		});
	});
}

void describe("the table and a nools session agree on mixed events", () => {
	const table = loadRiskRules(FILE, "table");
	const session = loadRiskRules(FILE, "nools");
	after(() => {
		table.dispose();
		session.dispose();
	});
	void it("same factors after the same 200 events", () => {
		const statuses = ["CANCELLED", "PAID", "SHIPPED"];
		let a: Factors = {};
		let b: Factors = {};
		for (let i = 0; i < 200; i++) {
			const type = (["crm.order.status_changed", "crm.payment.failed", "crm.interaction.logged", "crm.ticket.opened"] as const)[i % 4];
			const data: Record<string, Json> = { orderId: `o${i}`, newStatus: statuses[i % 3], sentiment: ((i % 7) - 3) / 3, priority: i % 5 === 0 ? "HIGH" : "LOW" };
			a = table.evaluate(a, type, data);
			b = session.evaluate(b, type, data);
		}
		assert.deepEqual(a, b);
		assert.ok(Object.keys(a).length >= 4, "several rules fired");
	});
});

void describe("parseRiskAction", () => {
	const ok: [string, { factor: string; points: number }[]][] = [
		["addPoints('order.cancelled', 10);", [{ factor: "order.cancelled", points: 10 }]],
		['addPoints("a", -3); addPoints(\'b\', 2.5)', [{ factor: "a", points: -3 }, { factor: "b", points: 2.5 }]],
		["// why\n addPoints('x', 1);", [{ factor: "x", points: 1 }]]
	];
	for (const [action, deltas] of ok) void it(`accepts ${JSON.stringify(action)}`, () => assert.deepEqual(parseRiskAction(action), deltas));
	const bad: [string, RegExp][] = [
		["", /empty/],
		["console.log('x');", /only addPoints/],
		["addPoints('x', 0);", /does nothing/],
		["addPoints(factor, 3);", /only addPoints/],
		["addPoints('bad name', 3);", /invalid factor name/]
	];
	for (const [action, reason] of bad) {
		void it(`rejects ${JSON.stringify(action)}`, () => {
			const r = parseRiskAction(action);
			assert.ok(!Array.isArray(r));
			assert.match(r.error, reason);
		});
	}
});

void describe("applyDeltas", () => {
	void it("sums per factor before clamping, so the order of rules does not matter", () => {
		const d1 = [{ factor: "f", points: 30 }, { factor: "f", points: -20 }];
		const d2 = [d1[1], d1[0]];
		assert.deepEqual(applyDeltas({ f: 90 }, d1), { f: 100 });
		assert.deepEqual(applyDeltas({ f: 90 }, d2), { f: 100 });
	});
	void it("returns the input itself when nothing changes", () => {
		const f = { a: 1 };
		assert.equal(applyDeltas(f, []), f);
	});
});

void describe("pinnedEventType", () => {
	const cases: [string, string | undefined][] = [
		["e.type == 'crm.payment.failed'", "crm.payment.failed"],
		["e.data.x > 1 && e.type === 'crm.x'", "crm.x"],
		["'crm.y' == e.type && (e.data.a != null)", "crm.y"],
		["e.type == 'crm.a' || e.data.x == 1", undefined],
		["e.data.type == 'crm.a'", undefined]
	];
	for (const [condition, type] of cases) void it(`${condition} -> ${type}`, () => assert.equal(pinnedEventType(parseCondition(condition), "e"), type));
});

void describe("risk rules report the rules that fired (score lineage)", () => {
	for (const engine of ["table", "nools"] as const) {
		void it(`${engine}: names the rule file and the rule with its points`, () => {
			const set = loadRiskRules("rules/risk.nools", engine);
			try {
				const fired: FiredRule[] = [];
				const out = set.evaluate({}, "crm.order.status_changed", { orderId: "1", newStatus: "CANCELLED" }, fired);
				assert.deepEqual(out, { "order.cancelled": 10 });
				assert.deepEqual(fired, [{ file: "rules/risk.nools", rule: "OrderCancelled", factor: "order.cancelled", points: 10 }]);
				const none: FiredRule[] = [];
				set.evaluate({}, "crm.page.viewed", { url: "/" }, none);
				assert.deepEqual(none, []);
			} finally {
				set.dispose();
			}
		});
	}
});
