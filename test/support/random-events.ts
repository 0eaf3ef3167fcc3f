// Seeded random customer histories for property tests: every event type with valid data, event times out of order, redeliveries of earlier events (duplicates), and reminders between them.
import { mulberry32 } from "../../ml/split.ts";
import type { CustomerMessage } from "../../actors/customer-actor.types.ts";
import { REMINDER_RISK_DECAY } from "../../actors/customer.reducer.ts";
import type { CloudEvent, EventType } from "../../models/cloud-event.ts";
import type { KnownCloudEvent } from "../../models/event-data.schemas.ts";
import { known } from "./known-event.ts";

const T0 = Date.UTC(2026, 0, 1);
const DAY = 24 * 3600_000;

export interface TimedMessage {
	msg: CustomerMessage;
	/** The host's clock when it is applied (ms). */
	now: number;
}

/** `length` messages for customer `id`; the same seed gives the same history. */
export function randomHistory(seed: number, id: string, length: number, opts: { reminders?: boolean } = {}): TimedMessage[] {
	const rnd = mulberry32(seed);
	const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
	const out: TimedMessage[] = [];
	const sent: KnownCloudEvent[] = [];
	let now = T0;
	for (let i = 0; i < length; i++) {
		now += Math.floor(rnd() * 3 * DAY);
		const roll = rnd();
		if (opts.reminders !== false && roll < 0.05) {
			out.push({ msg: { kind: "reminder", name: REMINDER_RISK_DECAY }, now });
			continue;
		}
		if (roll < 0.12 && sent.length > 0) {
			// A redelivery: same source and id, so the dedup window must recognise it (also across snapshot + replay).
			out.push({ msg: { kind: "event", event: pick(sent) }, now });
			continue;
		}
		const type = pick(TYPES);
		// Event time near the clock, often late: events arrive out of order.
		const time = new Date(now - Math.floor(rnd() * 5 * DAY)).toISOString();
		const event = known({
			specversion: "1.0", id: `${id}-${i}`, source: pick(["/erp", "/web", "/crm"]), type, subject: id,
			time, data: dataFor(type, i, rnd, pick) as CloudEvent["data"]
		});
		sent.push(event);
		out.push({ msg: { kind: "event", event }, now });
	}
	return out;
}

const TYPES: readonly EventType[] = [
	"crm.customer.updated", "crm.order.status_changed", "crm.payment.failed", "crm.interaction.logged", "crm.ticket.opened",
	"crm.ticket.resolved", "crm.device.telemetry", "crm.page.viewed", "crm.market.signal"
];

function dataFor(type: EventType, i: number, rnd: () => number, pick: <T>(xs: readonly T[]) => T): Record<string, unknown> {
	const order = `o-${Math.floor(rnd() * 6)}`;
	const ticket = `t-${Math.floor(rnd() * 4)}`;
	switch (type) {
		case "crm.customer.updated":
			return { profile: { name: `Name ${i}`, contract: pick(["Month-to-month", "One year", "Two year"]), tenureMonths: Math.floor(rnd() * 72), monthlyCharges: Math.round(rnd() * 10000) / 100 } };
		case "crm.order.status_changed":
			return { orderId: order, newStatus: pick(["CREATED", "PAID", "SHIPPED", "DELIVERED", "CANCELLED", "RETURNED"]), amount: Math.round(rnd() * 500) };
		case "crm.payment.failed":
			return { paymentId: `p-${i}`, amount: Math.round(rnd() * 200) };
		case "crm.interaction.logged":
			return { interactionId: `i-${i}`, channel: pick(["email", "phone", "chat"]), sentiment: Math.round((rnd() * 2 - 1) * 100) / 100 };
		case "crm.ticket.opened":
			return { ticketId: ticket, priority: pick(["LOW", "MEDIUM", "HIGH", "CRITICAL"]), category: pick(["BILLING", "TECHNICAL"]) };
		case "crm.ticket.resolved":
			return { ticketId: ticket };
		case "crm.device.telemetry":
			return { deviceId: `d-${Math.floor(rnd() * 2)}`, metrics: { temp: Math.round(rnd() * 80), battery: Math.round(rnd() * 100) } };
		case "crm.page.viewed":
			return { url: `/products/${Math.floor(rnd() * 20)}` };
		case "crm.market.signal":
			return { competitor: pick(["acme", "globex"]), product: "fiber", price: Math.round(rnd() * 10000) / 100, currency: "EUR" };
	}
}
