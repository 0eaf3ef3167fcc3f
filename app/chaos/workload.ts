// The chaos run's publishers: customers split over four sources (JetStream, POST /api/v1/events, signed webhooks,
// MQTT), each customer written by one publisher over one source, one event at a time: the next is sent only once
// the previous one is acknowledged (JetStream PubAck, HTTP 202, webhook 202, MQTT: the broker's PUBACK and then the
// reading seen applied — the broker hands a device's readings to different nodes of a shared subscription, so its
// PUBACK alone does not order them). A failed send is retried with the same event (same id) until it is acked.
import { connect as natsConnect, type JetStreamClient, type NatsConnection } from "nats";
import mqtt, { type MqttClient } from "mqtt";
import type { RawCloudEvent } from "../../models/cloud-event.ts";
import { eventKey } from "../../models/cloud-event.ts";
import { signWebhook } from "../../models/webhook-signature.ts";
import { SOURCES, type Published, type SourceKind } from "./checker.ts";
import { CHAOS_API_KEY, CHAOS_WEBHOOK_SECRET, type ChaosNode } from "./cluster.ts";

/** An acknowledgement, for the recovery measurement: which customer, when its (last) attempt started, when acked. */
export interface Ack {
	source: SourceKind;
	customerId: string;
	attemptAt: number;
	ackedAt: number;
}

export interface WorkloadOptions {
	runId: string;
	customersPerSource: number;
	/** Events per second over all sources. */
	ratePerSecond: number;
	natsUrl: string;
	mqttUrl: string;
	/** The nodes a client may send to (the ones whose process runs; a paused one is among them: clients cannot tell). */
	nodes(): ChaosNode[];
	log(line: string): void;
}

const SEND_TIMEOUT_MS = 8_000;
const RETRY_PAUSE_MS = 250;
const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

/** The k-th event of a customer (k from 1): a mix of the kinds that move counters, profile and risk. */
export function chaosEvent(runId: string, customerId: string, k: number, timeMs: number): RawCloudEvent {
	const base = { specversion: "1.0" as const, id: `${runId}-${customerId}-${k}`, source: "/chaos", subject: customerId, time: new Date(timeMs).toISOString() };
	switch (k % 5) {
		case 0: return { ...base, type: "crm.customer.updated", data: { profile: { name: `Chaos ${customerId}`, visits: k } } };
		case 1: return { ...base, type: "crm.order.status_changed", data: { orderId: `o-${k}`, newStatus: k % 3 === 0 ? "CANCELLED" : "PAID", amount: 10 + (k % 50), currency: "EUR" } };
		case 2: return { ...base, type: "crm.interaction.logged", data: { interactionId: `int-${k}`, channel: "email", sentiment: ((k % 7) - 3) / 3 } };
		case 3: return { ...base, type: "crm.payment.failed", data: { paymentId: `pay-${k}`, amount: 5 + (k % 20) } };
		default: return { ...base, type: "crm.ticket.opened", data: { ticketId: `t-${k}`, priority: k % 4 === 0 ? "HIGH" : "LOW", category: "billing" } };
	}
}

/** The k-th MQTT reading of a device: its ts (and so its event id `<device>@<ts>`) grows with k. */
export function chaosReading(customerId: string, k: number, startMs: number): { ts: number; payload: string } {
	const ts = startMs + k;
	return { ts, payload: JSON.stringify({ customerId, ts, metrics: { stepCount: k, temperatureC: 15 + (k % 10) } }) };
}

/** A pacer shared by one source's customers: at most `perSecond` sends start per second. */
class Pacer {
	private readonly intervalMs: number;
	private nextAt = Date.now();
	constructor(perSecond: number) {
		this.intervalMs = 1000 / perSecond;
	}
	async take(): Promise<void> {
		const now = Date.now();
		const at = Math.max(now, this.nextAt);
		this.nextAt = at + this.intervalMs;
		if (at > now) await sleep(at - now);
	}
}

export class Workload {
	readonly published: Published[] = [];
	readonly acks: Ack[] = [];
	/** Answers that refused a valid event (4xx other than a retryable 409): a bug, reported as a violation. */
	readonly rejections: string[] = [];
	retries = 0;
	private readonly opts: WorkloadOptions;
	private nc: NatsConnection | null = null;
	private js: JetStreamClient | null = null;
	private mq: MqttClient | null = null;
	private stopping = false;
	private hardStopAt = Infinity;
	private loops: Promise<void>[] = [];
	private nextNode = 0;
	private readonly startMs = Date.now();

	constructor(opts: WorkloadOptions) {
		this.opts = opts;
	}

	customers(source: SourceKind): string[] {
		return Array.from({ length: this.opts.customersPerSource }, (_, i) => `chaos-${this.opts.runId}-${source}-${i}`);
	}

	async start(): Promise<void> {
		this.nc = await natsConnect({ servers: this.opts.natsUrl, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 250, name: "chaos-publisher" });
		this.js = this.nc.jetstream();
		this.mq = await mqtt.connectAsync(this.opts.mqttUrl, { clientId: `chaos-pub-${this.opts.runId}`, reconnectPeriod: 250, connectTimeout: 5_000 });
		this.mq.on("error", () => {
			// Reconnects on its own; sends time out and are retried meanwhile.
		});
		const perSource = this.opts.ratePerSecond / SOURCES.length;
		for (const source of SOURCES) {
			const pacer = new Pacer(perSource);
			for (const customerId of this.customers(source)) this.loops.push(this.customerLoop(source, customerId, pacer));
		}
	}

	/** Stops sending new events; what is in flight is retried until acked or `drainMs` has passed. */
	async stop(drainMs: number): Promise<void> {
		this.stopping = true;
		this.hardStopAt = Date.now() + drainMs;
		await Promise.all(this.loops);
		await this.nc?.close().catch(() => undefined);
		await this.mq?.endAsync(true).catch(() => undefined);
	}

	private giveUp(): boolean {
		return Date.now() >= this.hardStopAt;
	}

	private pickNode(): ChaosNode | null {
		const nodes = this.opts.nodes();
		if (nodes.length === 0) return null;
		this.nextNode = (this.nextNode + 1) % nodes.length;
		return nodes[this.nextNode];
	}

	private async customerLoop(source: SourceKind, customerId: string, pacer: Pacer): Promise<void> {
		for (let seq = 1; !this.stopping; seq++) {
			await pacer.take();
			if (this.stopping) return;
			const event = source === "mqtt" ? null : chaosEvent(this.opts.runId, customerId, seq, Date.now());
			const reading = source === "mqtt" ? chaosReading(customerId, seq, this.startMs) : null;
			const device = `dev-${customerId}`;
			const key = event ? eventKey(event) : `/devices/${device}/${device}@${reading?.ts}`;
			const record: Published = { customerId, source, key, seq, acked: false };
			this.published.push(record);
			for (let attempt = 1; ; attempt++) {
				const attemptAt = Date.now();
				const outcome = event ? await this.send(source, event) : await this.sendReading(device, record, reading?.payload ?? "");
				if (outcome === "acked") {
					record.acked = true;
					this.acks.push({ source, customerId, attemptAt, ackedAt: Date.now() });
					break;
				}
				if (outcome === "rejected" || this.giveUp()) return;
				this.retries++;
				await sleep(Math.min(RETRY_PAUSE_MS * attempt, 2_000));
			}
		}
	}

	private async send(source: SourceKind, event: RawCloudEvent): Promise<"acked" | "retry" | "rejected"> {
		if (source === "jetstream") {
			try {
				await this.js?.publish(`crm.events.${event.type.slice("crm.".length)}`, JSON.stringify(event), { msgID: eventKey(event), timeout: SEND_TIMEOUT_MS });
				return "acked";
			} catch {
				return "retry";
			}
		}
		const node = this.pickNode();
		if (!node) return "retry";
		const body = JSON.stringify(event);
		const headers: Record<string, string> = { "content-type": "application/json" };
		let url: string;
		if (source === "http") {
			url = `${node.baseUrl}/api/v1/events`;
			headers.authorization = `Bearer ${CHAOS_API_KEY}`;
		} else {
			url = `${node.baseUrl}/webhooks/chaos`;
			const ts = Math.floor(Date.now() / 1000);
			headers["x-crm-timestamp"] = String(ts);
			headers["x-crm-signature"] = signWebhook(CHAOS_WEBHOOK_SECRET, ts, body);
			headers["idempotency-key"] = event.id;
		}
		try {
			const res = await fetch(url, { method: "POST", headers, body, signal: AbortSignal.timeout(SEND_TIMEOUT_MS) });
			const text = await res.text();
			if (res.status === 202) return "acked";
			if (res.status >= 500 || res.status === 409 || res.status === 404) return "retry";
			this.rejections.push(`${source} ${event.id} → ${res.status} ${text.slice(0, 200)}`);
			this.opts.log(`REJECTED ${source} ${event.id}: ${res.status} ${text.slice(0, 200)}`);
			return "rejected";
		} catch {
			return "retry";
		}
	}

	/**
	 * Publishes a reading (QoS 1): the broker's PUBACK is the acknowledgement the checker holds the system to. Then
	 * waits until the customer's version shows it applied before the next one goes out (publish order); a reading
	 * not applied within a minute is published again (the same reading: the actor de-duplicates it).
	 */
	private async sendReading(device: string, record: Published, payload: string): Promise<"acked" | "retry"> {
		const mq = this.mq;
		if (!mq) return "retry";
		try {
			await withTimeout(mq.publishAsync(`crm/devices/${device}/telemetry`, payload, { qos: 1 }), SEND_TIMEOUT_MS);
		} catch {
			return "retry";
		}
		record.acked = true;
		const deadline = Date.now() + 60_000;
		while (Date.now() < deadline && !this.giveUp()) {
			if ((await this.versionOf(record.customerId)) >= record.seq) return "acked";
			await sleep(200);
		}
		return "retry";
	}

	/** The customer's version as a node serves it (0: not yet, or no answer). */
	async versionOf(customerId: string): Promise<number> {
		const node = this.pickNode();
		if (!node) return 0;
		try {
			const res = await fetch(`${node.baseUrl}/api/v1/customers/${customerId}`, { headers: { authorization: `Bearer ${CHAOS_API_KEY}` }, signal: AbortSignal.timeout(3_000) });
			const body = (await res.json()) as { version?: number };
			return res.status === 200 && typeof body.version === "number" ? body.version : 0;
		} catch {
			return 0;
		}
	}
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
	let timer: NodeJS.Timeout | undefined;
	return Promise.race([p, new Promise<T>((_, reject) => {
		timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
	})]).finally(() => clearTimeout(timer));
}
