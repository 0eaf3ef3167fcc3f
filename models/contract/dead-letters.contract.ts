// Dead letters: the one record type (what a source records, what the store keeps, what the API lists), the reason
// codes, and the deadLetters actions.
import type { ValidationCode } from "../cloud-event.validator.ts";
import type { TelemetryRejection } from "../telemetry.schema.ts";
import { action, type Validated } from "./contract.ts";

/** Short source names: the subject `crm.dlq.<source>` and the `source` label of the metrics. */
export const SOURCE_NAME = { type: "string", min: 1, max: 32, pattern: /^[a-z][a-z0-9_-]*$/ } as const;
const DEAD_LETTER_ID = { type: "string", min: 1, max: 64, pattern: /^[A-Za-z0-9_-]+$/ } as const;
const LIMIT = { type: "number", integer: true, min: 1, max: 500, optional: true, convert: true } as const;

/**
 * Why an input became a dead letter, as a short code of bounded variety (stored as `reasonCode`, and the
 * `reason` label of crm_dead_letters_total); the reason text beside it may quote the input.
 */
export type DeadLetterCode =
	// The envelope and its payload (models/cloud-event.validator.ts), wherever the input came from.
	| ValidationCode
	// The transports
	| "invalid_json" | "invalid_encoding" | "subject_mismatch" | "max_deliveries"
	// The customer actor refused the event (a client error other than a validation failure)
	| "rejected"
	// MQTT readings (models/telemetry.schema.ts) and device bindings
	| TelemetryRejection | "unbound_device" | "binding_mismatch"
	// Rows of the ERP and of dropped files, log entries
	| "invalid_row" | "unreadable_row" | "malformed_entry";

/** `deadLetters.record`: what a source records. */
export const RECORD_PARAMS = {
	source: SOURCE_NAME,
	/** Human-readable reason (it may quote the input; it is masked and cut before it is stored). */
	reason: { type: "string" },
	/** The original input: a string or JSON (cut to DEAD_LETTERS_MAX_PAYLOAD_BYTES). */
	payload: { type: "any", optional: true },
	/** Action that re-processes `{ payload }` on retry. */
	retryAction: { type: "string", optional: true, min: 1, max: 128, pattern: /^[A-Za-z0-9_.-]+$/ },
	/** The short code (a DeadLetterCode from the sources); without one, it is derived from the reason's shape. */
	reasonCode: { type: "string", optional: true, max: 64 },
	/** NATS origin: a retry republishes the payload to `subject` (a crm.events.* subject) with a new msg id. */
	subject: { type: "string", optional: true, max: 512 },
	msgId: { type: "string", optional: true, max: 512 },
	/** "base64" when `payload` is the base64 of bytes that were not UTF-8. */
	payloadEncoding: { type: "enum", values: ["base64"], optional: true },
	/** Recording the same key again keeps the first dead letter (redelivered or re-read input). */
	dedupKey: { type: "string", optional: true, max: 512 }
} as const;

export type RecordParams = Validated<typeof RECORD_PARAMS>;

/** A dead letter as stored and listed. */
export type DeadLetter = Omit<RecordParams, "dedupKey" | "reasonCode" | "payload"> & {
	/** Opaque: the CRM_DLQ sequence, or the NeDB document id. */
	id: string;
	reasonCode: string;
	payload: unknown;
	/** The payload is a prefix of the input's text: it cannot be retried. */
	truncated?: boolean;
	/** RFC 3339. */
	recordedAt: string;
};

/** A dead letter before the store gives it an id. */
export type DeadLetterRecord = Omit<DeadLetter, "id">;

export interface RetryResult {
	id: string;
	retried: true;
	via: "action" | "republish";
}

export const LIST_PARAMS = { source: { ...SOURCE_NAME, optional: true }, limit: LIMIT } as const;
export const ID_PARAMS = { id: DEAD_LETTER_ID } as const;

export const DeadLetters = {
	service: "deadLetters",
	record: action<RecordParams, DeadLetter>("deadLetters.record"),
	list: action<Validated<typeof LIST_PARAMS>, DeadLetter[]>("deadLetters.list"),
	get: action<Validated<typeof ID_PARAMS>, DeadLetter>("deadLetters.get"),
	retry: action<Validated<typeof ID_PARAMS>, RetryResult>("deadLetters.retry")
} as const;
