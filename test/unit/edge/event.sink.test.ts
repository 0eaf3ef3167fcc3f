// deliverOrDeadLetter against a real in-process broker whose customers service answers as the test needs.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Errors, ServiceBroker } from "moleculer";
import { deliverOrDeadLetter, DeliveryUnavailable, type DeliveryOutcome } from "../../../edge/event.sink.ts";
import type { KnownCloudEvent } from "../../../models/event-data.schemas.ts";

const event = (subject: string) => ({
	specversion: "1.0", id: `e-${subject}`, source: "/test", type: "crm.page.viewed", subject, time: "2026-01-01T00:00:00Z", data: { url: "/" }
}) as KnownCloudEvent;

describe("deliverOrDeadLetter", () => {
	const broker = new ServiceBroker({ logger: false });
	before(async () => {
		broker.createService({
			name: "customers",
			actions: {
				handle(ctx) {
					const id = (ctx.params as { customerId: string }).customerId;
					if (id === "refused") throw new Errors.MoleculerClientError("subject is not a customer", 422, "INVALID_EVENT");
					return { applied: id !== "seen", version: 1, riskScore: 0 };
				}
			}
		});
		await broker.start();
	});
	after(() => broker.stop());

	it("reports the outcome of a delivered event and dead-letters nothing", async () => {
		const outcomes: DeliveryOutcome[] = [];
		const reasons: string[] = [];
		for (const id of ["new", "seen"]) {
			assert.equal(await deliverOrDeadLetter(broker, event(id), {}, o => outcomes.push(o), async r => { reasons.push(r); }), null);
		}
		assert.deepEqual(outcomes, ["applied", "duplicate"]);
		assert.deepEqual(reasons, []);
	});

	it("dead-letters an event the actor refuses, with the actor's reason", async () => {
		const reasons: string[] = [];
		const stop = await deliverOrDeadLetter(broker, event("refused"), {}, () => assert.fail("no outcome"), async r => { reasons.push(r); });
		assert.equal(stop, null);
		assert.deepEqual(reasons, ["rejected by the customer actor: subject is not a customer"]);
	});

	it("returns the unavailability that stops the run when the dead letter cannot be recorded", async () => {
		const down = new DeliveryUnavailable("dead letters down");
		const stop = await deliverOrDeadLetter(broker, event("refused"), {}, () => undefined, async () => { throw down; });
		assert.equal(stop, down);
	});

	it("throws what is neither a refusal nor an outage", async () => {
		await assert.rejects(
			deliverOrDeadLetter(broker, event("refused"), {}, () => undefined, async () => { throw new TypeError("bug in the source"); }),
			TypeError
		);
	});
});
