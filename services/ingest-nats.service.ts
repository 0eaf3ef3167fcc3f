// ingest-nats: CloudEvents published to JetStream (stream CRM_EVENTS, subject crm.events.<entity>.<verb>, header
// Nats-Msg-Id) applied by the customer actors in publish order, exactly once; unreadable or unknown input goes to the
// dead letters with its reason; scraped market records are de-duplicated by content with a Bloom filter first.
import { randomUUID } from "node:crypto";
import type { Context, Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import {
	AckPolicy,
	DeliverPolicy,
	DiscardPolicy,
	RetentionPolicy,
	StorageType,
	nanos,
	type JetStreamManager,
	type JsMsg,
	type NatsConnection
} from "nats";
import type { Config } from "../config/index.ts";
import type { IngestNatsConfig } from "../config/ingest.config.ts";
import { validateEvent } from "../models/cloud-event.validator.ts";
import { EVENT_TYPES, type CloudEvent } from "../models/cloud-event.ts";
import type { MarketSignalData } from "../models/event-data.schemas.ts";
import { MarketDeduplicator, marketContentKey } from "../actors/market-dedup.ts";
import { call, Customers, DeadLetters, IngestNats, type HandleResult, type IngestNatsStats } from "../models/contract/index.ts";
import { connectNats, isNotFound } from "../mixins/nats-connection.ts";
import { M } from "../mixins/metrics.mixin.ts";
import { OrderedJetStreamConsumer, type Failure, type Prepared } from "../mixins/ordered-jetstream.consumer.ts";

export const EVENTS_STREAM = "CRM_EVENTS";
export const EVENTS_SUBJECT_PREFIX = "crm.events.";
export const MARKET_SUBJECT_PREFIX = "crm.events.market.";
export const LEASE_BUCKET = "crm_ingest_leases";
const MESSAGES_METRIC = "crm_ingest_nats_messages_total";
const LEADER_METRIC = "crm_ingest_nats_leader";
const LAG_EVERY_MS = 5_000;
const KNOWN_TYPES: ReadonlySet<string> = new Set(EVENT_TYPES);
/** The validator's customer-id rule (models/cloud-event.validator.ts): enough to route by. */
const CUSTOMER_ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

/** The subject an event of this type is published on: crm.order.status_changed -> crm.events.order.status_changed. */
export function subjectForType(type: string): string {
	return EVENTS_SUBJECT_PREFIX + type.slice("crm.".length);
}

/** Input that can never be applied: dead-lettered at once with `code` as its metric reason. */
class InvalidInput extends Error {
	override name = "InvalidInput";
	readonly code: string;
	constructor(message: string, code: string) {
		super(message);
		this.code = code;
	}
}

function codeForValidation(reason: string): string {
	if (reason.startsWith("unknown event type")) return "unknown_type";
	if (reason === 'missing required attribute "subject"' || reason.startsWith('attribute "subject"')) return "missing_customer";
	if (reason.includes("exceeds 64 KiB")) return "oversize";
	if (reason.includes("forbidden key")) return "forbidden_key";
	return "invalid_event";
}

interface IngestNatsVars {
	nc: NatsConnection | null;
	consumer: OrderedJetStreamConsumer | null;
	market: MarketDeduplicator;
	counts: { duplicates: number; marketDuplicates: number };
	lagTimer: NodeJS.Timeout | null;
}

interface IngestNatsMethods {
	count(outcome: string): void;
	deadLetter(m: JsMsg, reason: string, code: string): Promise<void>;
	handleMany(customerId: string, events: unknown[]): Promise<void>;
	reportLag(): Promise<void>;
}

type IngestNatsService = Service & IngestNatsVars & IngestNatsMethods;

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodePayload(data: Uint8Array): { payload: string; payloadEncoding?: "base64" } {
	try {
		return { payload: utf8.decode(data) };
	} catch {
		return { payload: Buffer.from(data).toString("base64"), payloadEncoding: "base64" };
	}
}

/** Creates CRM_EVENTS when missing; an existing stream gets this configuration's retention and dedup window. */
async function ensureEventsStream(jsm: JetStreamManager, cfg: IngestNatsConfig): Promise<void> {
	const wanted = { max_age: nanos(cfg.streamMaxAgeMs), duplicate_window: nanos(cfg.duplicateWindowMs) };
	try {
		const info = await jsm.streams.info(EVENTS_STREAM);
		if (info.config.max_age !== wanted.max_age || info.config.duplicate_window !== wanted.duplicate_window) {
			await jsm.streams.update(EVENTS_STREAM, wanted);
		}
		return;
	} catch (err) {
		if (!isNotFound(err)) throw err;
	}
	try {
		await jsm.streams.add({
			name: EVENTS_STREAM,
			subjects: [`${EVENTS_SUBJECT_PREFIX}>`],
			storage: StorageType.File,
			retention: RetentionPolicy.Limits,
			discard: DiscardPolicy.Old,
			...wanted,
			description: "crm-actors customer events: CloudEvents JSON on crm.events.<entity>.<verb>, Nats-Msg-Id <source>/<id>"
		});
	} catch (err) {
		// Another node created it first.
		await jsm.streams.info(EVENTS_STREAM).catch(() => {
			throw err;
		});
	}
}

/** The shared durable pull consumer; max_deliver stays unlimited because dead-lettering is ours (never a silent drop). */
async function ensureConsumer(jsm: JetStreamManager, cfg: IngestNatsConfig): Promise<void> {
	const wanted = { ack_wait: nanos(cfg.ackWaitMs), max_ack_pending: cfg.maxAckPending, max_deliver: -1 };
	try {
		const info = await jsm.consumers.info(EVENTS_STREAM, cfg.durable);
		const c = info.config;
		if (c.ack_wait !== wanted.ack_wait || c.max_ack_pending !== wanted.max_ack_pending || c.max_deliver !== -1) {
			await jsm.consumers.update(EVENTS_STREAM, cfg.durable, wanted);
		}
		return;
	} catch (err) {
		if (!isNotFound(err)) throw err;
	}
	try {
		await jsm.consumers.add(EVENTS_STREAM, {
			durable_name: cfg.durable,
			ack_policy: AckPolicy.Explicit,
			deliver_policy: DeliverPolicy.All,
			filter_subject: `${EVENTS_SUBJECT_PREFIX}>`,
			...wanted
		});
	} catch (err) {
		await jsm.consumers.info(EVENTS_STREAM, cfg.durable).catch(() => {
			throw err;
		});
	}
}

export function createIngestNatsService(config: Config): ServiceSchema {
	const cfg = config.ingest.nats;
	// After a crash, the messages of a customer that were applied but whose acks did not reach the server come
	// again; the actor recognises them while they are within its dedup window, so batch + unconfirmed acks stay in it.
	const maxBatch = Math.max(1, Math.min(500, Math.floor(config.actor.dedupWindow / 2)));
	const maxUnconfirmedAcks = Math.max(1, Math.min(256, Math.floor(config.actor.dedupWindow / 4)));

	function prepare(this: IngestNatsService, m: JsMsg): Prepared {
		const invalid = (reason: string, code: string): Prepared => ({ key: null, run: () => Promise.reject(new InvalidInput(reason, code)) });
		if (m.data.length > cfg.maxMessageBytes) return invalid(`message of ${m.data.length} bytes exceeds the limit of ${cfg.maxMessageBytes} bytes`, "oversize");
		let text: string;
		try {
			text = utf8.decode(m.data);
		} catch {
			return invalid("payload is not valid UTF-8", "invalid_encoding");
		}
		let raw: unknown;
		try {
			raw = JSON.parse(text);
		} catch (err) {
			return invalid(`malformed JSON: ${(err as Error).message}`, "invalid_json");
		}
		// The customers service validates every event it applies; here only what routing needs is checked (a known type
		// on its subject, a customer id). Anything odd, and market records (whose content is keyed), get the full check
		// now; a payload the customers service rejects comes back as INVALID_EVENT with the same reason.
		const head = raw as { type?: unknown; subject?: unknown } | null;
		const quick = typeof head === "object" && head !== null && !Array.isArray(head) && typeof head.type === "string" &&
			KNOWN_TYPES.has(head.type) && head.type !== "crm.market.signal" && typeof head.subject === "string" && CUSTOMER_ID.test(head.subject);
		let event: CloudEvent;
		if (quick) {
			event = raw as CloudEvent;
		} else {
			const v = validateEvent(raw);
			if (!v.ok) return invalid(v.reason, codeForValidation(v.reason));
			event = v.event;
		}
		const expected = subjectForType(event.type);
		if (m.subject !== expected) {
			return invalid(`subject "${m.subject}" does not match event type "${event.type}" (expected "${expected}")`, "subject_mismatch");
		}
		const customerId = event.subject;
		const handle = async (): Promise<HandleResult> => {
			const r = await call(this.broker, Customers.handle, { customerId, event }, { retries: 0, timeout: cfg.handleTimeoutMs, caller: IngestNats.service });
			if (!r.applied) this.counts.duplicates++;
			this.count(r.applied ? "applied" : "duplicate");
			return r;
		};
		if (event.type !== "crm.market.signal") return { key: customerId, run: async () => void (await handle()), batch: event };

		const contentKey = marketContentKey(event as CloudEvent<"crm.market.signal", MarketSignalData>);
		if (this.market.isDuplicate(contentKey)) {
			return {
				key: customerId,
				run: async () => {
					this.counts.marketDuplicates++;
					this.count("market_duplicate");
				}
			};
		}
		return {
			key: customerId,
			run: async () => {
				await handle();
				this.market.applied(contentKey);
			},
			release: () => this.market.abandoned(contentKey)
		};
	}

	function classify(err: unknown): Failure {
		if (err instanceof InvalidInput) return { kind: "dead", reason: err.message, code: err.code };
		const e = err as { retryable?: boolean; code?: unknown; message?: string; type?: string };
		const message = e?.message ?? String(err);
		if (e?.retryable === true) return { kind: "retry" };
		if (e?.type === "INVALID_EVENT") {
			const reason = (err as { data?: { reason?: unknown } }).data?.reason;
			const text = typeof reason === "string" ? reason : message;
			return { kind: "dead", reason: text, code: codeForValidation(text) };
		}
		if (typeof e?.code === "number" && e.code >= 400 && e.code < 500) {
			return { kind: "dead", reason: `customers.handle rejected it: ${message}`, code: "rejected" };
		}
		return { kind: "attempt", reason: message };
	}

	const schema: ServiceSchema<ServiceSettingSchema, IngestNatsMethods, IngestNatsVars> = {
		name: IngestNats.service,
		actions: {
			stats: {
				visibility: "public",
				handler(this: IngestNatsService, _ctx: Context): IngestNatsStats | null {
					if (!this.consumer) return null;
					return { nodeID: this.broker.nodeID, ...this.consumer.stats, ...this.counts };
				}
			}
		},
		methods: {
			count(this: IngestNatsService, outcome: string) {
				if (this.broker.isMetricsEnabled()) this.broker.metrics.increment(MESSAGES_METRIC, { outcome });
			},
			async deadLetter(this: IngestNatsService, m: JsMsg, reason: string, code: string): Promise<void> {
				const source = m.subject.startsWith(MARKET_SUBJECT_PREFIX) ? "market" : "nats";
				const msgId = m.headers?.get("Nats-Msg-Id") || undefined;
				await call(this.broker, DeadLetters.record, {
					source, reason, reasonCode: code, ...decodePayload(m.data), subject: m.subject, msgId,
					// A redelivery of the same message must not make a second dead letter.
					dedupKey: `nats/${EVENTS_STREAM}/${m.seq}`
				}, { retries: 0, timeout: cfg.handleTimeoutMs, caller: IngestNats.service });
				this.count("dead_lettered");
			},
			/** One customer's consecutive events in one call: applied in order, persisted together. */
			async handleMany(this: IngestNatsService, customerId: string, events: unknown[]): Promise<void> {
				const results = await call(this.broker, Customers.handleMany, { customerId, events: events as CloudEvent[] }, { retries: 0, timeout: cfg.handleTimeoutMs, caller: IngestNats.service });
				for (const r of results) {
					if (!r.applied) this.counts.duplicates++;
					this.count(r.applied ? "applied" : "duplicate");
				}
			},
			async reportLag(this: IngestNatsService) {
				if (!this.nc || !this.consumer?.stats.leading || !this.broker.isMetricsEnabled()) return;
				try {
					const jsm = await this.nc.jetstreamManager();
					const info = await jsm.consumers.info(EVENTS_STREAM, cfg.durable);
					this.broker.metrics.set(M.jetstreamLag, info.num_pending + info.num_ack_pending);
				} catch {
					// Lag is best effort; the next round tries again.
				}
			}
		},
		created(this: IngestNatsService) {
			this.nc = null;
			this.consumer = null;
			this.lagTimer = null;
			this.counts = { duplicates: 0, marketDuplicates: 0 };
			this.market = new MarketDeduplicator(config.ingest.market.expectedItems, config.ingest.market.falsePositiveRate);
			if (this.broker.isMetricsEnabled()) {
				const m = this.broker.metrics;
				if (!m.getMetric(MESSAGES_METRIC)) m.register({ name: MESSAGES_METRIC, type: "counter", labelNames: ["outcome"], description: "JetStream messages by outcome: applied, duplicate, market_duplicate, dead_lettered" });
				// The lag gauge is defined with the other crm_* series (mixins/metrics.mixin.ts); registered here if missing.
				if (!m.getMetric(M.jetstreamLag)) m.register({ name: M.jetstreamLag, type: "gauge", description: "Messages of CRM_EVENTS not yet acknowledged by the ingest consumer" });
				if (!m.getMetric(LEADER_METRIC)) m.register({ name: LEADER_METRIC, type: "gauge", description: "1 while this node is the one pulling from CRM_EVENTS" });
			}
		},
		async started(this: IngestNatsService) {
			if (!config.natsUrl) {
				this.logger.warn("NATS_URL is not set: NATS/JetStream ingestion (ingest-nats) is OFF on this node");
				return;
			}
			this.nc = await connectNats(config.natsUrl, `crm ingest-nats ${this.broker.nodeID}`);
			const jsm = await this.nc.jetstreamManager();
			await ensureEventsStream(jsm, cfg);
			await ensureConsumer(jsm, cfg);
			this.consumer = new OrderedJetStreamConsumer({
				nc: this.nc,
				stream: EVENTS_STREAM,
				durable: cfg.durable,
				holder: `${this.broker.nodeID}/${randomUUID()}`,
				leaseBucket: LEASE_BUCKET,
				leaseTtlMs: cfg.leaseTtlMs,
				ackWaitMs: cfg.ackWaitMs,
				pullBatch: cfg.pullBatch,
				maxDeliver: cfg.maxDeliver,
				retryBaseMs: cfg.retryBaseMs,
				retryMaxMs: cfg.retryMaxMs,
				maxUnconfirmedAcks,
				prepare: m => prepare.call(this, m),
				runBatch: (customerId, events) => this.handleMany(customerId, events),
				maxBatch,
				classify,
				deadLetter: (m, reason, code) => this.deadLetter(m, reason, code),
				ready: () => this.broker.registry.getServiceList({ onlyAvailable: true }).some((s: { name: string }) => s.name === Customers.service),
				onLeadership: leading => {
					if (this.broker.isMetricsEnabled()) this.broker.metrics.set(LEADER_METRIC, leading ? 1 : 0);
				},
				logger: this.logger
			});
			await this.consumer.start();
			this.lagTimer = setInterval(() => void this.reportLag(), LAG_EVERY_MS);
			this.lagTimer.unref();
			if (maxBatch + maxUnconfirmedAcks > config.actor.dedupWindow) {
				this.logger.warn(`ACTOR_DEDUP_WINDOW=${config.actor.dedupWindow} is too small for ingest-nats: after a crash a redelivered event may be applied twice (use at least 4)`);
			}
			this.logger.info(`ingest-nats: ${EVENTS_STREAM} on ${EVENTS_SUBJECT_PREFIX}>, durable consumer "${cfg.durable}"`);
		},
		async stopped(this: IngestNatsService) {
			if (this.lagTimer) clearInterval(this.lagTimer);
			await this.consumer?.stop(cfg.handleTimeoutMs);
			this.consumer = null;
			if (this.nc) await this.nc.drain().catch(() => this.nc?.close());
			this.nc = null;
		}
	};
	return schema as unknown as ServiceSchema;
}
