// Webhook mappers: CloudEvents pass through, a provider payload is mapped, and what cannot be mapped says why.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mapWebhookBody } from "../../../models/webhook-mappers.ts";
import { validateEvents } from "../../../models/cloud-event.validator.ts";

const delivery = (over: Record<string, unknown> = {}, order: Record<string, unknown> = {}) => ({
	id: "evt_1001", topic: "orders/updated", created_at: "2026-03-01T10:00:00Z",
	order: { id: 1001, customer_id: "cust-42", status: "cancelled", previous_status: "paid", total_price: "129.90", currency: "EUR", ...order },
	...over
});

describe("mapWebhookBody", () => {
	it("maps a shop order delivery to crm.order.status_changed that validates", () => {
		const r = mapWebhookBody("shop", delivery());
		assert.ok(r.ok);
		assert.deepEqual(r.events, {
			specversion: "1.0", id: "evt_1001", source: "/webhooks/shop", type: "crm.order.status_changed", subject: "cust-42",
			time: "2026-03-01T10:00:00Z", data: { orderId: "1001", newStatus: "CANCELLED", oldStatus: "PAID", amount: 129.9, currency: "EUR" }
		});
		assert.equal(validateEvents(r.events).ok, true);
	});

	it("maps a batch of deliveries, keeping it a batch", () => {
		const r = mapWebhookBody("shop", [delivery(), delivery({ id: "evt_1002" }, { status: "paid", previous_status: undefined })]);
		assert.ok(r.ok);
		assert.equal((r.events as unknown[]).length, 2);
		assert.equal(validateEvents(r.events).ok, true);
	});

	it("passes CloudEvents through untouched, for any source", () => {
		const event = { specversion: "1.0", id: "x" };
		for (const source of ["shop", "crm-partner"]) {
			const r = mapWebhookBody(source, [event]);
			assert.ok(r.ok);
			assert.equal((r.events as unknown[])[0], event);
		}
	});

	const bad: Array<[string, unknown, number, RegExp]> = [
		["an unmapped topic", delivery({ topic: "customers/create" }), 0, /topic "customers\/create" is not mapped/],
		["an unknown status", delivery({}, { status: "lost-in-space" }), 0, /status "lost-in-space" is not mapped/],
		["no order", delivery({ order: undefined }), 0, /no order object/],
		["a prototype key", JSON.parse('{"id":"e","topic":"orders/updated","order":{"__proto__":{"admin":true}}}'), 0, /body\.order has forbidden key "__proto__"/],
		["a bad item in a batch", [delivery(), delivery({ topic: "x" })], 1, /not mapped/]
	];
	for (const [name, body, index, reason] of bad) {
		it(`reports ${name} with index and reason`, () => {
			const r = mapWebhookBody("shop", body);
			assert.equal(r.ok, false);
			const errors = (r as { errors: { index: number; reason: string }[] }).errors;
			assert.equal(errors.length, 1);
			assert.equal(errors[0].index, index);
			assert.match(errors[0].reason, reason);
		});
	}

	it("leaves a mapped event with a wrong field to the validator", () => {
		const r = mapWebhookBody("shop", delivery({}, { customer_id: undefined }));
		assert.ok(r.ok);
		const v = validateEvents(r.events);
		assert.equal(v.ok, false);
		assert.match(JSON.stringify(v), /subject/);
	});
});
