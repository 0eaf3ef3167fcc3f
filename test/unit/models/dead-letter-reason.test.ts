// Reason codes of dead letters (their metric label): explicit codes pass, user input inside reasons is blanked, the
// number of labels is capped.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { LabelBudget, reasonLabel } from "../../../models/dead-letter-reason.ts";
import { validateEvent } from "../../../models/cloud-event.validator.ts";

void describe("reasonLabel", () => {
	const cases: Array<[string, string | undefined, string]> = [
		["anything", "invalid_json", "invalid_json"],
		["anything", "max_deliveries", "max_deliveries"],
		['unknown event type "crm.spaceship.launched"', undefined, 'unknown event type ""'],
		['unknown event type "crm.rocket.launched"', undefined, 'unknown event type ""'],
		["data.orderId must be a string of 1..128 characters", undefined, "_ must be a string of _ characters"],
		["unknown field data.evil_field", undefined, "unknown field _"],
		["message of 300001 bytes exceeds 262144", undefined, "message of _ bytes exceeds _"],
		['subject "crm.events.order.created" does not match type "crm.page.viewed"', undefined, 'subject "" does not match type ""'],
		["Device Is Not Bound", "Not A Code!", "device is not bound"],
		["", undefined, "unspecified"],
		["x".repeat(500), undefined, "x".repeat(64)]
	];
	for (const [reason, code, label] of cases) {
		void it(`${JSON.stringify(reason.slice(0, 40))}${code ? ` (${code})` : ""} -> ${JSON.stringify(label.slice(0, 40))}`, () => {
			assert.equal(reasonLabel(reason, code), label);
		});
	}

	void it("gives the validator's reasons for many different bad inputs only a few labels", () => {
		const labels = new Set<string>();
		for (let i = 0; i < 200; i++) {
			const r = validateEvent({
				specversion: "1.0", id: `e${i}`, source: "/x", subject: `c${i}`, time: "2026-01-01T00:00:00Z",
				type: i % 2 === 0 ? `crm.thing${i}.done` : "crm.page.viewed",
				data: i % 2 === 0 ? {} : { url: "/", [`field${i}x`]: 1 }
			});
			assert.equal(r.ok, false);
			if (!r.ok) labels.add(reasonLabel(r.reason));
		}
		assert.deepEqual([...labels].sort(), ['unknown event type ""', "unknown field _"]);
	});
});

void describe("LabelBudget", () => {
	void it("passes known labels and folds new ones into 'other' beyond the cap", () => {
		const b = new LabelBudget(2);
		assert.equal(b.admit("a"), "a");
		assert.equal(b.admit("b"), "b");
		assert.equal(b.admit("c"), "other");
		assert.equal(b.admit("a"), "a");
	});
});
