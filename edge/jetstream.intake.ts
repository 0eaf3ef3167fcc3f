// The JetStream intake of ingest-nats: what the ordered consumer (adapters/ordered-jetstream.consumer.ts) does with a
// delivered message — read it, check what routing needs (the actor's service validates the rest), key it by customer,
// de-duplicate market records by content, apply it through the source's sink — how a failure is classified, and how
// a message becomes a dead letter. Also the stream and the durable consumer it creates when they are missing.
import {
	AckPolicy,
	DeliverPolicy,
	DiscardPolicy,
	RetentionPolicy,
	StorageType,
	nanos,
	type JetStreamManager,
	type JsMsg
} from "nats";
import type { IngestNatsConfig } from "../config/ingest.config.ts";
import { EVENT_TYPES, type CloudEvent } from "../models/cloud-event.ts";
import { EVENTS_SUBJECT_PREFIX, subjectForType, type DeadLetterCode } from "../models/contract/index.ts";
import type { MarketSignalData } from "../models/event-data.schemas.ts";
import { marketContentKey, type MarketDeduplicator } from "./market-dedup.ts";
import { ensureJetStream } from "../adapters/nats.connection.ts";
import type { Failure, Prepared } from "../adapters/ordered-jetstream.consumer.ts";
import { classifyFailure, type EventSink } from "./event.sink.ts";

export const EVENTS_STREAM = "CRM_EVENTS";
export const MARKET_SUBJECT_PREFIX = "crm.events.market.";
export const LEASE_BUCKET = "crm_ingest_leases";
/** Where the consumer keeps its highest acknowledgement floor (adapters/jetstream.ack-floor.ts). */
export const ACK_FLOOR_BUCKET = "crm_ingest_floors";
const KNOWN_TYPES: ReadonlySet<string> = new Set(EVENT_TYPES);
/** The validator's customer-id rule (models/cloud-event.validator.ts): enough to route by. */
const CUSTOMER_ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

/** Input that can never be applied: dead-lettered at once with its code. */
class InvalidInput extends Error {
	override name = "InvalidInput";
	readonly code: DeadLetterCode;
	constructor(message: string, code: DeadLetterCode) {
		super(message);
		this.code = code;
	}
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodePayload(data: Uint8Array): { payload: string; payloadEncoding?: "base64" } {
	try {
		return { payload: utf8.decode(data) };
	} catch {
		return { payload: Buffer.from(data).toString("base64"), payloadEncoding: "base64" };
	}
}

export interface IntakeCounts {
	duplicates: number;
	marketDuplicates: number;
}

export interface JetStreamIntake {
	prepare(m: JsMsg): Prepared;
	/** One customer's consecutive events in one call: applied in order, persisted together. */
	runBatch(customerId: string, events: unknown[]): Promise<void>;
	classify(err: unknown): Failure;
	deadLetter(m: JsMsg, reason: string, code: DeadLetterCode): Promise<void>;
}

export function jetStreamIntake(deps: { sink: EventSink; cfg: IngestNatsConfig; market: MarketDeduplicator; counts: IntakeCounts }): JetStreamIntake {
	const { sink, cfg, market, counts } = deps;
	const applied = (results: Array<{ applied: boolean }>) => {
		for (const r of results) if (!r.applied) counts.duplicates++;
	};
	const handle = async (customerId: string, event: CloudEvent): Promise<void> => applied(await sink.apply(customerId, [event]));

	function prepare(m: JsMsg): Prepared {
		const invalid = (reason: string, code: DeadLetterCode): Prepared => ({ key: null, run: () => Promise.reject(new InvalidInput(reason, code)) });
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
		// on its subject, a customer id). Anything odd, and market records (whose content is keyed), are validated in
		// full now; a payload the customers service refuses comes back as INVALID_EVENT with the validator's code.
		const head = raw as { type?: unknown; subject?: unknown } | null;
		const quick = typeof head === "object" && head !== null && !Array.isArray(head) && typeof head.type === "string" &&
			KNOWN_TYPES.has(head.type) && head.type !== "crm.market.signal" && typeof head.subject === "string" && CUSTOMER_ID.test(head.subject);
		let event: CloudEvent;
		if (quick) {
			event = raw as CloudEvent;
		} else {
			const v = sink.validate(raw);
			if (!v.ok) return invalid(v.reason, v.code);
			event = v.event;
		}
		const expected = subjectForType(event.type);
		if (m.subject !== expected) {
			return invalid(`subject "${m.subject}" does not match event type "${event.type}" (expected "${expected}")`, "subject_mismatch");
		}
		const customerId = event.subject;
		if (event.type !== "crm.market.signal") return { key: customerId, run: () => handle(customerId, event), batch: event };

		const contentKey = marketContentKey(event as CloudEvent<"crm.market.signal", MarketSignalData>);
		if (market.isDuplicate(contentKey)) {
			return {
				key: customerId,
				run: async () => {
					counts.marketDuplicates++;
					sink.count("market_duplicate");
				}
			};
		}
		return {
			key: customerId,
			run: async () => {
				await handle(customerId, event);
				market.applied(contentKey);
			},
			release: () => market.abandoned(contentKey)
		};
	}

	return {
		prepare,
		async runBatch(customerId, events) {
			applied(await sink.apply(customerId, events as CloudEvent[]));
		},
		classify(err: unknown): Failure {
			if (err instanceof InvalidInput) return { kind: "dead", reason: err.message, code: err.code };
			const refusal = classifyFailure(err);
			if (refusal.kind === "retry") return { kind: "retry" };
			if (refusal.kind === "rejected") return { kind: "dead", reason: refusal.reason, code: refusal.code };
			return { kind: "attempt", reason: refusal.reason };
		},
		async deadLetter(m, reason, code) {
			await sink.deadLetter({
				code, reason, ...decodePayload(m.data), subject: m.subject, msgId: m.headers?.get("Nats-Msg-Id") || undefined,
				...(m.subject.startsWith(MARKET_SUBJECT_PREFIX) ? { source: "market" } : {}),
				// A redelivery of the same message must not make a second dead letter.
				dedupKey: `nats/${EVENTS_STREAM}/${m.seq}`
			});
		}
	};
}

/** Creates CRM_EVENTS when missing; an existing stream gets this configuration's retention and dedup window. */
export async function ensureEventsStream(jsm: JetStreamManager, cfg: IngestNatsConfig): Promise<void> {
	const wanted = { max_age: nanos(cfg.streamMaxAgeMs), duplicate_window: nanos(cfg.duplicateWindowMs) };
	await ensureJetStream({
		read: () => jsm.streams.info(EVENTS_STREAM),
		differs: info => info.config.max_age !== wanted.max_age || info.config.duplicate_window !== wanted.duplicate_window,
		update: () => jsm.streams.update(EVENTS_STREAM, wanted),
		add: () => jsm.streams.add({
			name: EVENTS_STREAM,
			subjects: [`${EVENTS_SUBJECT_PREFIX}>`],
			storage: StorageType.File,
			retention: RetentionPolicy.Limits,
			discard: DiscardPolicy.Old,
			...wanted,
			description: "crm-actors customer events: CloudEvents JSON on crm.events.<entity>.<verb>, Nats-Msg-Id <source>/<id>"
		})
	});
}

/** The shared durable pull consumer; max_deliver stays unlimited because dead-lettering is ours (never a silent drop). */
export async function ensureConsumer(jsm: JetStreamManager, cfg: IngestNatsConfig): Promise<void> {
	const wanted = { ack_wait: nanos(cfg.ackWaitMs), max_ack_pending: cfg.maxAckPending, max_deliver: -1 };
	await ensureJetStream({
		read: () => jsm.consumers.info(EVENTS_STREAM, cfg.durable),
		differs: ({ config: c }) => c.ack_wait !== wanted.ack_wait || c.max_ack_pending !== wanted.max_ack_pending || c.max_deliver !== -1,
		update: () => jsm.consumers.update(EVENTS_STREAM, cfg.durable, wanted),
		add: () => jsm.consumers.add(EVENTS_STREAM, {
			durable_name: cfg.durable,
			ack_policy: AckPolicy.Explicit,
			deliver_policy: DeliverPolicy.All,
			filter_subject: `${EVENTS_SUBJECT_PREFIX}>`,
			...wanted
		})
	});
}
