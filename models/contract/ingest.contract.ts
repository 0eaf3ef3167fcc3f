// The sources (ingest-* services): their actions — above all the retry actions deadLetters.retry calls with a dead
// letter's payload — and the shapes of those payloads, reports and statuses.
import type { LogFormat } from "../access-log.parser.ts";
import { action } from "./contract.ts";

/** The outcome of one input item of a source. */
export type ItemOutcome = "applied" | "duplicate" | "dead_lettered" | "skipped";

/** Running totals of a source run (a sync, a file, a batch of log lines). */
export interface Tally {
	applied: number;
	duplicate: number;
	deadLettered: number;
	skipped: number;
}

/** What a retry action answers when the payload was re-processed. */
export interface RetryOutcome {
	outcome: ItemOutcome;
}

/** The params every retry action takes: the dead letter's payload. */
export interface RetryParams<P> {
	payload: P;
}

// ---- files -----------------------------------------------------------------------------------------------------

/** A dead-lettered CSV row: everything needed to re-process it (header and fields as arrays: no column name becomes a key). */
export interface RowPayload {
	kind: string;
	file: string;
	sha256: string;
	row: number;
	line: number;
	/** Event time for rows whose kind has no time column: the file's modification time. */
	time: string;
	header: string[];
	fields: string[];
}

export interface FileReport {
	file: string;
	kind: string | null;
	/** processed: rows handled (some may be dead-lettered); duplicate: same content imported before; failed: see reason; interrupted: node stopping, file left in the inbox. */
	status: "processed" | "duplicate" | "failed" | "interrupted";
	reason?: string;
	sha256?: string;
	bytes?: number;
	encoding?: string;
	detectedBy?: string;
	startedAt: string;
	finishedAt?: string;
	rows: Tally & { total: number };
	/** Header columns that could not become profile fields (passthrough), e.g. `__proto__` or names with spaces. */
	ignoredColumns: string[];
	problems: Array<{ row: number; line: number; reason: string }>;
	problemsOmitted: number;
	movedTo?: string;
}

export interface FilesStatus {
	enabled: boolean;
	inbox: string | null;
	kinds: string[];
	current: FileReport | null;
	recent: FileReport[];
}

export const IngestFiles = {
	service: "ingestFiles",
	scan: action<Record<string, never>, { inbox: string; recent: FileReport[] }>("ingestFiles.scan"),
	importFile: action<{ path: string; kind?: string }, FileReport>("ingestFiles.importFile"),
	retryRow: action<RetryParams<RowPayload>, RetryOutcome>("ingestFiles.retryRow"),
	status: action<Record<string, never>, FilesStatus>("ingestFiles.status")
} as const;

// ---- ERP -------------------------------------------------------------------------------------------------------

/** The sync position: the last row fully handled, in (updated_at, key) order. `updatedAt` is PostgreSQL's own text. */
export interface ErpWatermark {
	updatedAt: string;
	key: string;
	at: string;
}

export interface SyncSummary {
	trigger: "cron" | "action" | "start";
	full: boolean;
	startedAt: string;
	finishedAt?: string;
	rows: number;
	batches: number;
	tally: Tally;
	/** Customer ids that more than one row mapped to in this run (the later row by updated_at wins). */
	conflicts: number;
	watermarkBefore: ErpWatermark | null;
	watermarkAfter: ErpWatermark | null;
	/** Set when the run stopped early; the watermark stays at the last fully handled batch. */
	error?: string;
	skipped?: string;
}

/** A dead-lettered ERP row: columns and values as arrays, so no column name becomes an object key. */
export interface ErpRowPayload {
	table: string;
	key: string;
	updatedAt: string;
	columns: string[];
	values: unknown[];
}

export type ErpStatus =
	| { enabled: false }
	| { enabled: true; running: SyncSummary | null; lastRun: SyncSummary | null; nextRunAt: string | null; watermark: ErpWatermark | null };

export const IngestErp = {
	service: "ingestErp",
	sync: action<{ full?: boolean }, SyncSummary>("ingestErp.sync"),
	status: action<Record<string, never>, ErpStatus>("ingestErp.status"),
	retryRow: action<RetryParams<ErpRowPayload>, RetryOutcome>("ingestErp.retryRow")
} as const;

// ---- logs ------------------------------------------------------------------------------------------------------

/** A dead-lettered log entry, PII already masked. */
export interface LogEntryPayload {
	source: string;
	format: LogFormat;
	ino: number;
	offset: number;
	text: string;
}

export interface TailStatus {
	name: string;
	format: LogFormat;
	path: string;
	offset: number;
	ino: number;
	tally: Tally;
	/** Skipped entries by reason (anonymous, static asset, …). */
	skipped: Record<string, number>;
	lastError: string | null;
}

export const IngestLogs = {
	service: "ingestLogs",
	status: action<Record<string, never>, { enabled: boolean; sources: TailStatus[] }>("ingestLogs.status"),
	poll: action<Record<string, never>, { sources: TailStatus[] }>("ingestLogs.poll"),
	retryEntry: action<RetryParams<LogEntryPayload>, RetryOutcome>("ingestLogs.retryEntry")
} as const;

// ---- MQTT ------------------------------------------------------------------------------------------------------

/** The original input as a dead letter keeps it, and as `ingest-mqtt.reprocess` takes it back. */
export interface MqttDeadLetterPayload {
	topic: string;
	/** The payload as text when it is UTF-8, else as base64. */
	payload?: string;
	payloadBase64?: string;
	/** Set when only the first bytes were kept. */
	truncatedFrom?: number;
}

export type MqttOutcome = "applied" | "duplicate" | "dead_lettered";

export const IngestMqtt = {
	service: "ingest-mqtt",
	reprocess: action<RetryParams<MqttDeadLetterPayload>, { outcome: MqttOutcome }>("ingest-mqtt.reprocess")
} as const;

// ---- webhooks --------------------------------------------------------------------------------------------------

export interface ReceiveParams {
	/** The `:source` of the URL. */
	source: string;
	/** The raw request body as text (already authenticated by its signature); base64 when it is not UTF-8. */
	body: string;
	bodyEncoding?: "base64";
	idempotencyKey?: string;
}

/** An HTTP answer as the idempotency store keeps it for replays. */
export interface StoredResponse {
	status: number;
	body: unknown;
}

export interface WebhookResponse extends StoredResponse {
	headers?: Record<string, string>;
}

/** A webhook body as a dead letter keeps it, and as `ingest-webhook.reprocess` takes it back. */
export interface WebhookDeadLetterPayload {
	source: string;
	body: string;
	/** The body was not UTF-8: `body` holds its bytes as base64. */
	bodyEncoding?: "base64";
	truncatedFrom?: number;
}

export const IngestWebhook = {
	service: "ingest-webhook",
	receive: action<ReceiveParams, WebhookResponse>("ingest-webhook.receive"),
	reprocess: action<RetryParams<WebhookDeadLetterPayload>, { accepted: number; duplicates: number }>("ingest-webhook.reprocess")
} as const;

// ---- NATS ------------------------------------------------------------------------------------------------------

/** Events are published on `crm.events.<entity>.<verb>` (ARCHITECTURE §9). */
export const EVENTS_SUBJECT_PREFIX = "crm.events.";

/** The subject an event of this type is published on: crm.order.status_changed -> crm.events.order.status_changed. */
export function subjectForType(type: string): string {
	return EVENTS_SUBJECT_PREFIX + type.replace(/^crm\./, "");
}

/** The ordered JetStream consumer's figures (adapters/ordered-jetstream.consumer.ts). */
export interface JetStreamConsumerStats {
	leading: boolean;
	epoch: number;
	delivered: number;
	applied: number;
	deadLettered: number;
	retries: number;
	/** Runs of one customer's consecutive messages applied together, and the messages in them. */
	batches: number;
	batchedMessages: number;
	redeliveries: number;
	barriers: number;
	leaderships: number;
	fences: number;
	held: number;
	inFlight: number;
	unconfirmedAcks: number;
	/** Deliveries at or below the kept acknowledgement floor: acknowledged again, not applied (adapters/jetstream.ack-floor.ts). */
	alreadyAcked: number;
}

export interface IngestNatsStats extends JetStreamConsumerStats {
	nodeID: string;
	/** Events the actors already knew (redelivered or re-published), and market records the Bloom filter dropped. */
	duplicates: number;
	marketDuplicates: number;
}

export const IngestNats = {
	service: "ingest-nats",
	stats: action<Record<string, never>, IngestNatsStats | null>("ingest-nats.stats")
} as const;
