// Payload schemas per event type: one valid example each, the boundaries, and a corpus of bad payloads with reasons.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { EVENT_TYPES } from "../../../models/cloud-event.ts";
import type { EventType } from "../../../models/cloud-event.ts";
import { validateEventData } from "../../../models/event-data.schemas.ts";
import type { EventDataMap } from "../../../models/event-data.schemas.ts";

const VALID: { [T in EventType]: EventDataMap[T] } = {
	"crm.customer.updated": {
		profile: {
			email: "ada@example.com", phone: "+44 (20) 7946-0958", name: "Ada Lovelace",
			contract: "Month-to-month", tenureMonths: 14, monthlyCharges: 70.35, paperlessBilling: true, paymentMethod: null
		}
	},
	"crm.order.status_changed": { orderId: "o-1", newStatus: "CANCELLED", oldStatus: "PAID", amount: 99.5, currency: "EUR" },
	"crm.payment.failed": { paymentId: "p-1", amount: 0, currency: "USD", reason: "card declined" },
	"crm.interaction.logged": { interactionId: "i-1", channel: "chat", sentiment: -0.4, text: "Still broken.", direction: "inbound" },
	"crm.ticket.opened": { ticketId: "t-1", priority: "HIGH", category: "billing", subject: "Double charge" },
	"crm.ticket.resolved": { ticketId: "t-1" },
	"crm.device.telemetry": { deviceId: "router-7", metrics: { latencyMs: 42, packetLoss: 0.01, temperature: -3 } },
	"crm.page.viewed": { url: "https://shop.example.com/cancel", sessionId: "s-1", referrer: "" },
	"crm.market.signal": { competitor: "Acme Telecom", product: "fibre-500", price: 39.5, currency: "EUR", segment: "consumer", url: "https://acme.example/fibre" }
};

function keys(n: number, value: (i: number) => unknown): Record<string, unknown> {
	return Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, value(i)]));
}

void describe("validateEventData", () => {
	void it("has a valid example for every event type", () => {
		assert.deepEqual(Object.keys(VALID).sort(), [...EVENT_TYPES].sort());
	});

	for (const type of EVENT_TYPES) {
		void it(`accepts a valid ${type} payload and returns a fresh copy of it`, () => {
			const input = structuredClone(VALID[type]);
			const r = validateEventData(type, input);
			assert.ok(r.ok, r.ok ? "" : r.reason);
			assert.deepEqual(r.data, VALID[type]);
			assert.notEqual(r.data, input);
		});
	}

	void it("accepts the minimal payload of each type (optional fields left out)", () => {
		const minimal: [EventType, unknown][] = [
			["crm.order.status_changed", { orderId: "o", newStatus: "CREATED" }],
			["crm.payment.failed", { paymentId: "p", amount: 12 }],
			["crm.interaction.logged", { interactionId: "i", channel: "email" }],
			["crm.ticket.opened", { ticketId: "t", priority: "LOW", category: "x" }],
			["crm.page.viewed", { url: "/" }]
		];
		for (const [type, data] of minimal) {
			const r = validateEventData(type, data);
			assert.ok(r.ok, `${type}: ${r.ok ? "" : r.reason}`);
		}
	});

	void it("treats undefined fields as absent and leaves them out of the copy", () => {
		const r = validateEventData("crm.order.status_changed", { orderId: "o", newStatus: "PAID", oldStatus: undefined, extra: undefined });
		assert.ok(r.ok);
		assert.deepEqual(Object.keys(r.data), ["orderId", "newStatus"]);
	});

	void it("keeps null profile values, which clear the field", () => {
		const r = validateEventData("crm.customer.updated", { profile: { email: null, tenureMonths: null } });
		assert.ok(r.ok);
		assert.deepEqual(r.data.profile, { email: null, tenureMonths: null });
	});

	const accepted: [string, EventType, unknown][] = [
		["64 profile fields", "crm.customer.updated", { profile: keys(64, i => i) }],
		["a 64-character field name", "crm.customer.updated", { profile: { ["a".repeat(64)]: 1 } }],
		["a 512-character profile string", "crm.customer.updated", { profile: { note: "x".repeat(512) } }],
		["32 metrics", "crm.device.telemetry", { deviceId: "d", metrics: keys(32, i => i / 3) }],
		["sentiment -1", "crm.interaction.logged", { interactionId: "i", channel: "phone", sentiment: -1 }],
		["sentiment 1", "crm.interaction.logged", { interactionId: "i", channel: "phone", sentiment: 1 }],
		["a 128-character order id", "crm.order.status_changed", { orderId: "o".repeat(128), newStatus: "PAID" }],
		["a 4096-character text", "crm.interaction.logged", { interactionId: "i", channel: "social", text: "t".repeat(4096) }],
		["a 2048-character url", "crm.page.viewed", { url: "u".repeat(2048) }],
		["a plain phone number", "crm.customer.updated", { profile: { phone: "0123456789" } }]
	];
	for (const [name, type, data] of accepted) {
		void it(`accepts ${name}`, () => {
			const r = validateEventData(type, data);
			assert.ok(r.ok, r.ok ? "" : r.reason);
		});
	}

	const rejected: [string, EventType, unknown, string][] = [
		["data that is not an object", "crm.ticket.resolved", ["t-1"], "data must be a JSON object"],
		["an unknown field", "crm.ticket.resolved", { ticketId: "t", x: 1 }, "unknown field data.x"],
		["a misspelt field", "crm.order.status_changed", { orderId: "o", newStatus: "PAID", ammount: 3 }, "unknown field data.ammount"],
		["a missing required field", "crm.order.status_changed", { newStatus: "PAID" }, "missing required field data.orderId"],
		["an unknown order status", "crm.order.status_changed", { orderId: "o", newStatus: "LOST" },
			"data.newStatus must be one of CREATED, PAID, SHIPPED, DELIVERED, CANCELLED, RETURNED"],
		["a lower-case order status", "crm.order.status_changed", { orderId: "o", newStatus: "paid" }, "data.newStatus must be one of"],
		["a bad old status", "crm.order.status_changed", { orderId: "o", newStatus: "PAID", oldStatus: 3 }, "data.oldStatus must be one of"],
		["an empty order id", "crm.order.status_changed", { orderId: "", newStatus: "PAID" }, "data.orderId must be a string of 1..128"],
		["a 129-character order id", "crm.order.status_changed", { orderId: "o".repeat(129), newStatus: "PAID" }, "data.orderId must be a string of 1..128"],
		["a numeric order id", "crm.order.status_changed", { orderId: 7, newStatus: "PAID" }, "data.orderId must be a string"],
		["a negative amount", "crm.order.status_changed", { orderId: "o", newStatus: "PAID", amount: -0.01 }, "data.amount must be a finite number >= 0"],
		["an infinite amount", "crm.payment.failed", { paymentId: "p", amount: Infinity }, "data.amount must be a finite number"],
		["a NaN amount", "crm.payment.failed", { paymentId: "p", amount: NaN }, "data.amount must be a finite number"],
		["an amount as a string", "crm.payment.failed", { paymentId: "p", amount: "12" }, "data.amount must be a finite number"],
		["a lower-case currency", "crm.order.status_changed", { orderId: "o", newStatus: "PAID", currency: "eur" }, "data.currency must be a 3-letter"],
		["a 4-letter currency", "crm.payment.failed", { paymentId: "p", amount: 1, currency: "EURO" }, "data.currency must be a 3-letter"],
		["a 257-character reason", "crm.payment.failed", { paymentId: "p", amount: 1, reason: "r".repeat(257) }, "data.reason must be a string of at most 256"],
		["a missing amount", "crm.payment.failed", { paymentId: "p" }, "missing required field data.amount"],
		["an unknown channel", "crm.interaction.logged", { interactionId: "i", channel: "fax" }, "data.channel must be one of email, phone, chat, meeting, social"],
		["sentiment above 1", "crm.interaction.logged", { interactionId: "i", channel: "chat", sentiment: 1.0001 }, "data.sentiment must be a number from -1 to 1"],
		["sentiment below -1", "crm.interaction.logged", { interactionId: "i", channel: "chat", sentiment: -2 }, "data.sentiment must be a number from -1 to 1"],
		["a 4097-character text", "crm.interaction.logged", { interactionId: "i", channel: "chat", text: "t".repeat(4097) }, "data.text must be a string of at most 4096"],
		["an unknown direction", "crm.interaction.logged", { interactionId: "i", channel: "chat", direction: "sideways" }, "data.direction must be one of inbound, outbound"],
		["an unknown priority", "crm.ticket.opened", { ticketId: "t", priority: "URGENT", category: "c" }, "data.priority must be one of LOW, MEDIUM, HIGH, CRITICAL"],
		["an empty category", "crm.ticket.opened", { ticketId: "t", priority: "LOW", category: "" }, "data.category must be a string of 1..64"],
		["a 65-character category", "crm.ticket.opened", { ticketId: "t", priority: "LOW", category: "c".repeat(65) }, "data.category must be a string of 1..64"],
		["a 257-character subject", "crm.ticket.opened", { ticketId: "t", priority: "LOW", category: "c", subject: "s".repeat(257) }, "data.subject must be a string of at most 256"],
		["a missing ticket id", "crm.ticket.resolved", {}, "missing required field data.ticketId"],
		["an empty profile", "crm.customer.updated", { profile: {} }, "data.profile must be an object with 1..64 fields"],
		["a profile of only undefined fields", "crm.customer.updated", { profile: { a: undefined } }, "data.profile must be an object with 1..64 fields"],
		["65 profile fields", "crm.customer.updated", { profile: keys(65, i => i) }, "data.profile must be an object with 1..64 fields"],
		["a profile that is an array", "crm.customer.updated", { profile: [1] }, "data.profile must be an object"],
		["a profile field name starting with a digit", "crm.customer.updated", { profile: { "1st": 1 } }, `data.profile has an invalid field name "1st"`],
		["a profile field name with a dash", "crm.customer.updated", { profile: { "first-name": "A" } }, `data.profile has an invalid field name "first-name"`],
		["a 65-character field name", "crm.customer.updated", { profile: { ["a".repeat(65)]: 1 } }, "data.profile has an invalid field name"],
		["a profile field named constructor", "crm.customer.updated", { profile: { constructor: "x" } }, `data.profile has an invalid field name "constructor"`],
		["a nested profile value", "crm.customer.updated", { profile: { address: { city: "x" } } }, "data.profile.address must be a string, number, boolean or null"],
		["an array profile value", "crm.customer.updated", { profile: { tags: ["a"] } }, "data.profile.tags must be a string, number, boolean or null"],
		["a 513-character profile string", "crm.customer.updated", { profile: { note: "x".repeat(513) } }, "data.profile.note must be a string of at most 512"],
		["a NaN profile number", "crm.customer.updated", { profile: { tenureMonths: NaN } }, "data.profile.tenureMonths must be a finite number"],
		["an invalid email", "crm.customer.updated", { profile: { email: "ada at example.com" } }, "data.profile.email must be an email address"],
		["an email without a domain dot", "crm.customer.updated", { profile: { email: "ada@localhost" } }, "data.profile.email must be an email address"],
		["a numeric email", "crm.customer.updated", { profile: { email: 42 } }, "data.profile.email must be an email address"],
		["a phone with letters", "crm.customer.updated", { profile: { phone: "call me" } }, "data.profile.phone must be a phone number"],
		["a phone without digits", "crm.customer.updated", { profile: { phone: "+()" } }, "data.profile.phone must be a phone number"],
		["a 33-character phone", "crm.customer.updated", { profile: { phone: "1".repeat(33) } }, "data.profile.phone must be a phone number"],
		["a numeric name", "crm.customer.updated", { profile: { name: 7 } }, "data.profile.name must be a string"],
		["no metrics", "crm.device.telemetry", { deviceId: "d", metrics: {} }, "data.metrics must be an object with 1..32 fields"],
		["33 metrics", "crm.device.telemetry", { deviceId: "d", metrics: keys(33, i => i) }, "data.metrics must be an object with 1..32 fields"],
		["a string metric", "crm.device.telemetry", { deviceId: "d", metrics: { temp: "20" } }, "data.metrics.temp must be a finite number"],
		["a null metric", "crm.device.telemetry", { deviceId: "d", metrics: { temp: null } }, "data.metrics.temp must be a finite number"],
		["an infinite metric", "crm.device.telemetry", { deviceId: "d", metrics: { temp: -Infinity } }, "data.metrics.temp must be a finite number"],
		["a bad metric name", "crm.device.telemetry", { deviceId: "d", metrics: { "cpu.load": 1 } }, `data.metrics has an invalid field name "cpu.load"`],
		["a missing device id", "crm.device.telemetry", { metrics: { a: 1 } }, "missing required field data.deviceId"],
		["an empty url", "crm.page.viewed", { url: "" }, "data.url must be a string of 1..2048"],
		["a 2049-character url", "crm.page.viewed", { url: "u".repeat(2049) }, "data.url must be a string of 1..2048"],
		["a 129-character session id", "crm.page.viewed", { url: "/", sessionId: "s".repeat(129) }, "data.sessionId must be a string of 1..128"],
		["a 2049-character referrer", "crm.page.viewed", { url: "/", referrer: "r".repeat(2049) }, "data.referrer must be a string of at most 2048"]
	];
	for (const [name, type, data, reason] of rejected) {
		void it(`rejects ${name}`, () => {
			const r = validateEventData(type, data);
			assert.equal(r.ok, false, `${name} was accepted`);
			assert.ok(!r.ok && r.reason.includes(reason), `reason "${r.ok ? "" : r.reason}" lacks "${reason}"`);
		});
	}

	void it("shortens an attacker's huge field name in the reason", () => {
		const r = validateEventData("crm.ticket.resolved", { ticketId: "t", ["x".repeat(100_000)]: 1 });
		assert.ok(!r.ok);
		assert.ok(r.reason.length < 100, r.reason);
	});
});
