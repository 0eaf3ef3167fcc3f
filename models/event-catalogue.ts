// What each event type is for, what it does to the customer, and one valid example: the prose and examples of the
// published catalogue (docs/events.md, the OpenAPI and AsyncAPI documents). The fields come from the validator
// table (models/event-data.schemas.ts) and the risk effects from the rule file, never from here; a test validates
// every example against the generated schemas and posts it to a node.
import type { CloudEvent, EventType } from "./cloud-event.ts";

export interface EventTypeDoc {
	/** One line: what happened. */
	summary: string;
	/** What the customer actor does with it (state, derived risk factors, emitted events). */
	effect: string;
	/** Its NATS subject: `crm.events.<entity>.<verb>`. */
	subject: string;
	example: CloudEvent;
}

const TIME = "2026-11-24T10:00:00Z";

function example(type: EventType, id: string, source: string, data: CloudEvent["data"]): CloudEvent {
	return { specversion: "1.0", id, source, type, subject: "cust-42", time: TIME, data };
}

/** `crm.<entity>.<verb>` → `crm.events.<entity>.<verb>` (ARCHITECTURE §3). */
export function natsSubjectOf(type: EventType): string {
	return `crm.events.${type.slice("crm.".length)}`;
}

const DOCS: Record<EventType, Omit<EventTypeDoc, "subject">> = {
	"crm.customer.updated": {
		summary: "Profile fields of the customer changed (CRM form, ERP sync, CSV import).",
		effect: "Each field is written last-writer-wins by event time (a `null` clears it); `email`, `phone` and `name` are checked. The churn model re-scores the customer.",
		example: example("crm.customer.updated", "upd-7781", "/crm/forms", { profile: { name: "Ada Lovelace", email: "ada@example.com", contract: "Month-to-month", tenureMonths: 5 } })
	},
	"crm.order.status_changed": {
		summary: "An order of the customer moved to a new status.",
		effect: "Tracks the latest status of the 16 most recently updated orders and counts orders and cancellations; a status the order already has changes nothing (a second cancellation counts once). The churn model re-scores the customer.",
		example: example("crm.order.status_changed", "ord-1001-cancel", "/shop/orders", { orderId: "1001", newStatus: "CANCELLED", amount: 129.9, currency: "EUR" })
	},
	"crm.payment.failed": {
		summary: "A payment of the customer failed.",
		effect: "Counts failed payments. The churn model re-scores the customer.",
		example: example("crm.payment.failed", "pay-553-f1", "/billing", { paymentId: "553", amount: 49.99, currency: "EUR", reason: "card declined" })
	},
	"crm.interaction.logged": {
		summary: "An e-mail, call, chat, meeting or social exchange with the customer, with its sentiment (-1..1) when known.",
		effect: "Counts interactions (and negative ones: sentiment ≤ -0.5) and keeps the latest sentiment; emits `customer.interaction.logged` (opportunities follow the customer's mood). The churn model re-scores the customer.",
		example: example("crm.interaction.logged", "int-9001", "/support/mail", { interactionId: "9001", channel: "email", sentiment: -0.7, direction: "inbound", text: "Third outage this month." })
	},
	"crm.ticket.opened": {
		summary: "A support ticket was opened for the customer.",
		effect: "Tracks the ticket as open (up to 50 open ids) and counts it; re-opening an open ticket changes nothing. Factor `tickets.open`: 5 points per open ticket above 2. The rules service routes the ticket to an agent. The churn model re-scores the customer.",
		example: example("crm.ticket.opened", "tkt-311-open", "/support/desk", { ticketId: "311", priority: "HIGH", category: "NETWORK", subject: "No connection since this morning" })
	},
	"crm.ticket.resolved": {
		summary: "A support ticket of the customer was resolved.",
		effect: "The ticket is no longer open; factor `tickets.open` is recomputed. A ticket that is not open changes nothing. The churn model re-scores the customer.",
		example: example("crm.ticket.resolved", "tkt-311-done", "/support/desk", { ticketId: "311" })
	},
	"crm.device.telemetry": {
		summary: "A reading from one of the customer's devices (usually arrives over MQTT and is converted to this event).",
		effect: "Keeps the latest value of each metric (at most 32 metric names) and counts readings. No risk effect.",
		example: example("crm.device.telemetry", "dev-router-7-1764000000000", "/devices/router-7", { deviceId: "router-7", metrics: { signalDbm: -71, uptimeS: 86400 } })
	},
	"crm.page.viewed": {
		summary: "The customer viewed a page (click-stream).",
		effect: "Counts page views. No risk effect, and the churn model is not re-run (too frequent to be worth it).",
		example: example("crm.page.viewed", "pv-5f1e2a", "/web/shop", { url: "/plans/fiber-1000", sessionId: "s-77", referrer: "https://search.example/" })
	},
	"crm.market.signal": {
		summary: "A competitor price observation relevant to the customer (its segment, its products).",
		effect: "Keeps the number of signals and the latest one by event time. Over NATS, the same observation (customer, competitor, product, price, currency, segment, UTC day) published again under another id is dropped as a duplicate. No risk effect.",
		example: example("crm.market.signal", "mkt-2026-11-24-acme-fiber", "/market/scraper", { competitor: "Acme Telecom", product: "Fiber 1000", price: 39.9, currency: "EUR", segment: "residential" })
	}
};

/** The catalogue entry of every event type, in EVENT_TYPES order. */
export function eventTypeDocs(): Record<EventType, EventTypeDoc> {
	const out = {} as Record<EventType, EventTypeDoc>;
	for (const type of Object.keys(DOCS) as EventType[]) out[type] = { ...DOCS[type], subject: natsSubjectOf(type) };
	return out;
}
