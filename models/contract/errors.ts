// The error catalogue: every error type a service answers with, its HTTP status and whether a caller should try
// again. Errors cross the wire as plain objects, so callers match on `type` (STYLE), and `isRetryable` is the one
// retry rule of the system: the broker's retry policy, the event sink and the NATS consumer all ask it.
import type { ValidationCode } from "../cloud-event.validator.ts";

export interface ErrorSpec {
	/** HTTP status the API answers with; also the Moleculer error's `code`. */
	readonly status: number;
	/** True: a transient failure (store down, ownership moved); the same call may succeed later. */
	readonly retryable: boolean;
	readonly meaning: string;
}

export const ERRORS = {
	// The customer actors (customers.*)
	INVALID_EVENT: { status: 422, retryable: false, meaning: "the event does not validate (data: { index?, code, reason })" },
	CUSTOMER_NOT_FOUND: { status: 404, retryable: false, meaning: "no customer with this id has been seen" },
	VERSION_CONFLICT: { status: 503, retryable: true, meaning: "another node wrote the customer (lost compare-and-set); re-routed" },
	STORE_UNAVAILABLE: { status: 503, retryable: true, meaning: "the actor store (or the webhook idempotency store) cannot be reached" },
	HOST_STOPPED: { status: 503, retryable: true, meaning: "the node hosting the customer is stopping" },
	NOT_OWNER: { status: 503, retryable: true, meaning: "this node no longer owns the customer" },
	INVALID_MERGE: { status: 400, retryable: false, meaning: "a customer merged into itself, or into a customer that was merged into it" },
	CUSTOMER_MERGED: { status: 409, retryable: false, meaning: "the customer to merge was already merged into another one (data: { mergedInto })" },
	MERGE_IN_PROGRESS: { status: 409, retryable: false, meaning: "one of the customers is the survivor of another merge that has not finished (data: { mergingFrom }); try again" },
	MERGE_REDIRECT_LOOP: { status: 500, retryable: false, meaning: "following merge aliases did not end (a store inconsistency)" },
	// The HTTP API
	INVALID_EVENTS: { status: 400, retryable: false, meaning: "one or more events of a batch do not validate (data: { errors: [{ index, reason }] })" },
	INVALID_JSON: { status: 400, retryable: false, meaning: "the request body is not JSON" },
	INVALID_ENCODING: { status: 400, retryable: false, meaning: "the request body is not valid UTF-8" },
	UNSUPPORTED_CHARSET: { status: 415, retryable: false, meaning: "the request body declares a charset other than UTF-8" },
	CREDENTIAL_IN_URL: { status: 400, retryable: false, meaning: "an API key was put in the URL" },
	INVALID_STREAM_PARAMS: { status: 400, retryable: false, meaning: "a change stream's customer id, riskAbove or Last-Event-ID is malformed" },
	// Signed webhooks
	WEBHOOKS_DISABLED: { status: 503, retryable: false, meaning: "WEBHOOK_SECRET is not set" },
	INVALID_SIGNATURE: { status: 401, retryable: false, meaning: "bad X-Crm-Signature, or X-Crm-Timestamp too far from the server clock" },
	INVALID_IDEMPOTENCY_KEY: { status: 400, retryable: false, meaning: "Idempotency-Key is not 1..255 printable ASCII characters" },
	IDEMPOTENCY_IN_FLIGHT: { status: 409, retryable: false, meaning: "a request with this Idempotency-Key is still being processed" },
	IDEMPOTENCY_KEY_REUSED: { status: 422, retryable: false, meaning: "this Idempotency-Key was used for a different body" },
	BODY_TOO_LARGE: { status: 413, retryable: false, meaning: "the webhook body exceeds WEBHOOK_MAX_BODY_BYTES" },
	// Dead letters and the sources' retry actions
	DEAD_LETTER_NOT_FOUND: { status: 404, retryable: false, meaning: "no dead letter with this id" },
	DEAD_LETTERS_UNAVAILABLE: { status: 503, retryable: true, meaning: "the dead-letter store cannot be reached" },
	DEAD_LETTER_TRUNCATED: { status: 409, retryable: false, meaning: "the dead letter kept only part of its payload" },
	DEAD_LETTER_NOT_RETRYABLE: { status: 409, retryable: false, meaning: "the dead letter has no retry action (or came from NATS without NATS_URL)" },
	DEAD_LETTER_RETRY_FAILED: { status: 502, retryable: false, meaning: "the source's retry action failed again; the dead letter stays" },
	INVALID_PAYLOAD: { status: 422, retryable: false, meaning: "a dead letter's payload cannot be re-processed as it is" },
	INVALID_ROW: { status: 422, retryable: false, meaning: "a re-processed ERP or file row is still invalid" },
	INVALID_ENTRY: { status: 422, retryable: false, meaning: "a re-processed log entry is still invalid" },
	INVALID_TELEMETRY: { status: 422, retryable: false, meaning: "a re-processed MQTT reading is still invalid" },
	FILES_OFF: { status: 503, retryable: false, meaning: "file drops are off (FILES_INBOX=off)" },
	ERP_SYNC_OFF: { status: 503, retryable: false, meaning: "ERP sync is off (ERP_DATABASE_URL is not set)" },
	SOURCE_OFF: { status: 503, retryable: false, meaning: "the source is switched off by its configuration" },
	// Entities
	TICKET_NOT_FOUND: { status: 404, retryable: false, meaning: "no ticket with this id" },
	TICKET_EXISTS: { status: 409, retryable: false, meaning: "a ticket with this id exists for another customer" },
	AGENT_NOT_FOUND: { status: 404, retryable: false, meaning: "no agent with this id" },
	AGENT_EXISTS: { status: 409, retryable: false, meaning: "an agent with this id exists" },
	DEVICE_NOT_FOUND: { status: 404, retryable: false, meaning: "the device is not bound" },
	OPPORTUNITY_NOT_FOUND: { status: 404, retryable: false, meaning: "no opportunity with this id" },
	// Automation
	RULES_INVALID: { status: 422, retryable: false, meaning: "a rule file does not compile; the previous rules stay in force" },
	INVALID_FILTER: { status: 400, retryable: false, meaning: "a process filter the engine cannot apply" },
	PROCESS_NOT_FOUND: { status: 404, retryable: false, meaning: "no such process definition or instance" },
	TASK_NOT_FOUND: { status: 404, retryable: false, meaning: "no such user task" },
	WORKFLOWS_STOPPING: { status: 503, retryable: false, meaning: "the workflow engine is stopping" }
} as const satisfies Record<string, ErrorSpec>;

export type ErrorType = keyof typeof ERRORS;

/** `data` of an INVALID_EVENT error: which event of a call, and why, as a typed code and a text. */
export interface InvalidEventData {
	index?: number;
	code: ValidationCode;
	reason: string;
}

const RETRYABLE_TYPES: ReadonlySet<string> = new Set(Object.entries(ERRORS).filter(([, spec]) => spec.retryable).map(([type]) => type));

/**
 * The retry rule: an error marked retryable (Moleculer's own retryable errors: timeouts, no endpoint for the
 * service) or of a retryable type of the catalogue. Everything else will fail the same way again.
 */
export function isRetryable(err: unknown): boolean {
	if (typeof err !== "object" || err === null) return false;
	const e = err as { retryable?: unknown; type?: unknown };
	return e.retryable === true || (typeof e.type === "string" && RETRYABLE_TYPES.has(e.type));
}

/** The catalogue's type of an error, when it is one of ours. */
export function errorTypeOf(err: unknown): ErrorType | undefined {
	const type = (err as { type?: unknown } | null)?.type;
	return typeof type === "string" && Object.hasOwn(ERRORS, type) ? (type as ErrorType) : undefined;
}

/** A caller's mistake (4xx): the same input fails again, whoever retries it. */
export function isClientError(err: unknown): boolean {
	const code = (err as { code?: unknown } | null)?.code;
	return typeof code === "number" && code >= 400 && code < 500;
}
