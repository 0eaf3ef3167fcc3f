// A deterministic multi-customer workload for cluster tests and the cluster benchmark, and its reference result:
// each customer's events applied once, in order, by the pure reducer with the nodes' own settings.
import type { Config } from "../../config/index.ts";
import { emptyCustomerState, reduce } from "../../actors/customer.reducer.ts";
import type { ReduceContext } from "../../actors/customer-actor.types.ts";
import type { CustomerState } from "../../models/customer-state.ts";
import type { RawCloudEvent } from "../../models/cloud-event.ts";
import { validateEvent } from "../../models/cloud-event.validator.ts";
import { toCustomerView } from "../../models/contract/index.ts";

export type RawEvent = RawCloudEvent;

/** The k-th event of customer number i: a mix of every kind that changes counters, profile and risk. */
export function workloadEvent(runId: string, customerId: string, i: number, k: number, timeMs: number): RawEvent {
	const base = { specversion: "1.0" as const, id: `${runId}-${customerId}-${k}`, source: "/cluster-test", subject: customerId, time: new Date(timeMs).toISOString() };
	switch (k % 5) {
		case 0:
			return { ...base, type: "crm.customer.updated", data: { profile: { name: `Customer ${i}`, tier: ["gold", "silver", "bronze"][i % 3], visits: k } } };
		case 1:
			return { ...base, type: "crm.order.status_changed", data: { orderId: `o-${i}-${k}`, newStatus: i % 2 === 0 ? "CANCELLED" : "PAID", amount: 10 + (i % 50), currency: "EUR" } };
		case 2:
			return { ...base, type: "crm.interaction.logged", data: { interactionId: `int-${i}-${k}`, channel: "email", sentiment: ((i % 7) - 3) / 3 } };
		case 3:
			return i % 3 === 0
				? { ...base, type: "crm.payment.failed", data: { paymentId: `pay-${i}-${k}`, amount: 5 + (i % 20) } }
				: { ...base, type: "crm.page.viewed", data: { url: `/products/${i % 17}` } };
		default:
			return { ...base, type: "crm.ticket.opened", data: { ticketId: `t-${i}-${k}`, priority: i % 4 === 0 ? "HIGH" : "LOW", category: "billing" } };
	}
}

/** The reduce context the nodes build from `config` (clock irrelevant: events carry their own time). */
export function referenceContext(config: Config): ReduceContext {
	const a = config.actor;
	return { now: Date.now(), risk: { decayAfterMs: a.riskDecayAfterMs, decayKeep: a.riskDecayKeep, churnWeight: a.churnWeight }, dedupWindow: a.dedupWindow };
}

/** The state a customer must end in: its events applied once, in order, by the pure reducer. */
export function referenceState(customerId: string, events: RawEvent[], ctx: ReduceContext): CustomerState {
	let state = emptyCustomerState(customerId);
	for (const raw of events) {
		const v = validateEvent(raw);
		if (!v.ok) throw new Error(`workload event ${raw.id} is invalid: ${v.reason}`);
		state = reduce(state, { kind: "event", event: v.event }, ctx).state;
	}
	return state;
}

/** What GET /api/v1/customers/:id must answer for that state (as JSON, so Dates and undefined compare equal). */
export function expectedView(state: CustomerState): unknown {
	return JSON.parse(JSON.stringify(toCustomerView(state)));
}

/** Resolves `take()` calls at most `perSecond` times a second, in order: keeps a load running long enough to overlap churn. */
export class Pacer {
	private readonly intervalMs: number;
	private nextAt = performance.now();

	constructor(perSecond: number) {
		this.intervalMs = 1000 / perSecond;
	}

	async take(): Promise<void> {
		const now = performance.now();
		const at = Math.max(now, this.nextAt);
		this.nextAt = at + this.intervalMs;
		if (at > now) await new Promise(resolve => setTimeout(resolve, at - now));
	}
}
