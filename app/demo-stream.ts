// The demo's own parts (`npm run demo`, bin/demo.ts): a progress bar for terminals and logs, and a seeded stream of
// realistic customer events (orders, cancellations, interactions, failed payments, tickets, telemetry, page views)
// in which the customers the data set marks as churners get the worse side of every draw.
import type { RawCloudEvent } from "../models/cloud-event.ts";
import { mulberry32 } from "../ml/split.ts";

// ---- progress ------------------------------------------------------------------------------------------------

/** A progress bar: redrawn in place on a terminal, one line per 10 % otherwise (logs, CI). */
export class Progress {
	private readonly label: string;
	private readonly tty: boolean;
	private readonly out: NodeJS.WriteStream;
	private lastDecile = -1;
	private lastDraw = 0;
	private done = false;

	constructor(label: string, out: NodeJS.WriteStream = process.stdout) {
		this.label = label;
		this.out = out;
		this.tty = out.isTTY === true;
	}

	update(fraction: number, detail: string, force = false): void {
		if (this.done) return;
		const f = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0));
		const pct = Math.floor(f * 100);
		if (this.tty) {
			const now = Date.now();
			if (!force && now - this.lastDraw < 100 && f < 1) return;
			this.lastDraw = now;
			const width = 28;
			const full = Math.round(f * width);
			const bar = `${"█".repeat(full)}${"░".repeat(width - full)}`;
			this.out.write(`\r\x1b[2K  ${this.label.padEnd(7)} \x1b[36m${bar}\x1b[0m ${String(pct).padStart(3)}%  ${detail}`);
		} else {
			const decile = Math.floor(pct / 10);
			if (decile > this.lastDecile) {
				this.lastDecile = decile;
				this.out.write(`${this.label}: ${decile * 10}% ${detail}\n`);
			}
		}
	}

	finish(detail: string): void {
		if (this.done) return;
		this.update(1, detail, true);
		this.done = true;
		this.out.write(this.tty ? "\n" : `${this.label}: done, ${detail}\n`);
	}
}

// ---- a seeded stream of realistic events ---------------------------------------------------------------------


interface DemoCustomer {
	id: string;
	/** From the data set's Churn column: these customers get the worse side of every draw. */
	churner: boolean;
	openOrders: Array<{ id: string; status: "CREATED" | "PAID" | "SHIPPED" }>;
	openTickets: string[];
}

/** An event of the demo stream, as a producer builds it (validated by the node that takes it). */
export type DemoEvent = RawCloudEvent;

type Kind = "view" | "order" | "cancel" | "interaction" | "paymentFailed" | "ticketOpen" | "ticketResolve" | "telemetry";
const WEIGHTS: Record<"churner" | "loyal", Record<Kind, number>> = {
	churner: { view: 18, order: 20, cancel: 10, interaction: 16, paymentFailed: 8, ticketOpen: 9, ticketResolve: 3, telemetry: 16 },
	loyal: { view: 25, order: 30, cancel: 2, interaction: 14, paymentFailed: 2, ticketOpen: 4, ticketResolve: 7, telemetry: 16 }
};
const CATEGORIES = ["NETWORK", "BILLING", "TECHNICAL", "ACCOUNT"];
const CHANNELS = ["email", "phone", "chat", "social"];
const NEGATIVE_TEXTS = ["The connection keeps dropping and nobody calls back.", "Billed twice again this month, this is unacceptable.", "Thinking about switching provider, the service is terrible."];
const POSITIVE_TEXTS = ["Thanks, the new plan works great!", "Support fixed it quickly, very happy.", "Love the faster internet, great job."];
const NEUTRAL_TEXTS = ["Asked about the roaming options.", "Wanted to know when the bill is due.", "Changed the billing address."];

/**
 * Customers active at any one time: `rate × ACTIVE_SECONDS_PER_EVENT` of them, so each gets an event every ~8 s
 * whatever the rate (their risk visibly moves within minutes); one is swapped for another every ROTATE_EVERY events,
 * as real traffic drifts.
 */
const ACTIVE_SECONDS_PER_EVENT = 8;
const ROTATE_EVERY = 25;

export class DemoStream {
	private readonly rand: () => number;
	private readonly churners: DemoCustomer[];
	private readonly loyal: DemoCustomer[];
	private readonly active: DemoCustomer[] = [];
	private readonly run: string;
	private seq = 0;

	constructor(customers: Array<{ id: string; churner: boolean }>, seed: number, run: string, rate = 50) {
		this.rand = mulberry32(seed);
		const all = customers.map(c => ({ ...c, openOrders: [], openTickets: [] }));
		this.churners = all.filter(c => c.churner);
		this.loyal = all.filter(c => !c.churner);
		this.run = run;
		const size = Math.min(all.length, Math.max(100, Math.round(rate * ACTIVE_SECONDS_PER_EVENT)));
		for (let i = 0; i < size; i++) this.active.push(this.draw());
	}

	/** A customer for the active set: churners drawn more often than their 27 % share of the data. */
	private draw(): DemoCustomer {
		const pool = this.churners.length > 0 && (this.loyal.length === 0 || this.rand() < 0.45) ? this.churners : this.loyal;
		return this.pick(pool);
	}

	private pick<T>(list: readonly T[]): T {
		return list[Math.floor(this.rand() * list.length)];
	}

	private kind(c: DemoCustomer): Kind {
		const w = WEIGHTS[c.churner ? "churner" : "loyal"];
		const total = Object.values(w).reduce((a, b) => a + b, 0);
		let r = this.rand() * total;
		for (const [k, v] of Object.entries(w) as Array<[Kind, number]>) {
			r -= v;
			if (r < 0) return k;
		}
		return "view";
	}

	/** The next event: a customer of the active set and what happens to them. */
	next(): DemoEvent {
		const n = ++this.seq;
		if (n % ROTATE_EVERY === 0) this.active[Math.floor(this.rand() * this.active.length)] = this.draw();
		const c = this.pick(this.active);
		const base = { specversion: "1.0" as const, id: `demo-${this.run}-${n}`, subject: c.id, time: new Date().toISOString() };
		const money = () => Math.round((10 + this.rand() * 140) * 100) / 100;
		switch (this.kind(c)) {
			case "order": {
				const open = c.openOrders.find(o => o.status !== "CREATED" || this.rand() < 0.7);
				if (open) {
					const next = open.status === "CREATED" ? "PAID" : open.status === "PAID" ? "SHIPPED" : "DELIVERED";
					const oldStatus = open.status;
					if (next === "DELIVERED") c.openOrders.splice(c.openOrders.indexOf(open), 1);
					else open.status = next;
					return { ...base, source: "/shop/orders", type: "crm.order.status_changed", data: { orderId: open.id, oldStatus, newStatus: next } };
				}
				const orderId = `o-${this.run}-${n}`;
				if (c.openOrders.length < 5) c.openOrders.push({ id: orderId, status: "CREATED" });
				return { ...base, source: "/shop/orders", type: "crm.order.status_changed", data: { orderId, newStatus: "CREATED", amount: money(), currency: "EUR" } };
			}
			case "cancel": {
				const open = c.openOrders.find(o => o.status !== "SHIPPED");
				if (open) c.openOrders.splice(c.openOrders.indexOf(open), 1);
				return {
					...base, source: "/shop/orders", type: "crm.order.status_changed",
					data: { orderId: open?.id ?? `o-${this.run}-${n}`, oldStatus: open?.status ?? "CREATED", newStatus: "CANCELLED", amount: money(), currency: "EUR" }
				};
			}
			case "interaction": {
				const mean = c.churner ? -0.45 : 0.35;
				const sentiment = Math.round(Math.max(-1, Math.min(1, mean + (this.rand() - 0.5) * 1.2)) * 100) / 100;
				const text = this.pick(sentiment <= -0.3 ? NEGATIVE_TEXTS : sentiment >= 0.3 ? POSITIVE_TEXTS : NEUTRAL_TEXTS);
				return {
					...base, source: "/crm/interactions", type: "crm.interaction.logged",
					data: { interactionId: `i-${this.run}-${n}`, channel: this.pick(CHANNELS), direction: this.rand() < 0.7 ? "inbound" : "outbound", sentiment, text }
				};
			}
			case "paymentFailed":
				return { ...base, source: "/billing/payments", type: "crm.payment.failed", data: { paymentId: `p-${this.run}-${n}`, amount: money(), currency: "EUR", reason: this.pick(["insufficient_funds", "card_expired", "do_not_honor"]) } };
			case "ticketOpen": {
				const ticketId = `t-${this.run}-${n}`;
				if (c.openTickets.length < 8) c.openTickets.push(ticketId);
				const priority = this.pick(c.churner ? ["MEDIUM", "HIGH", "HIGH", "CRITICAL"] : ["LOW", "LOW", "MEDIUM", "HIGH"]);
				const category = this.pick(CATEGORIES);
				return { ...base, source: "/support/tickets", type: "crm.ticket.opened", data: { ticketId, priority, category, subject: `${category.toLowerCase()} issue` } };
			}
			case "ticketResolve": {
				const ticketId = c.openTickets.shift();
				if (ticketId) return { ...base, source: "/support/tickets", type: "crm.ticket.resolved", data: { ticketId } };
				return { ...base, source: "/web", type: "crm.page.viewed", data: { url: "/support/faq", sessionId: `s-${c.id}` } };
			}
			case "telemetry": {
				const signal = Math.round(c.churner ? -95 - this.rand() * 20 : -60 - this.rand() * 30);
				const dropped = Math.floor(this.rand() * (c.churner ? 6 : 2));
				return {
					...base, source: "/devices", type: "crm.device.telemetry",
					data: { deviceId: `router-${c.id}`, metrics: { signalDbm: signal, droppedCalls: dropped, dataUsageMb: Math.round(this.rand() * 900) } }
				};
			}
			default:
				return { ...base, source: "/web", type: "crm.page.viewed", data: { url: this.pick(["/plans", "/account", "/billing", "/offers/upgrade", "/cancel-contract"]), sessionId: `s-${c.id}` } };
		}
	}
}
