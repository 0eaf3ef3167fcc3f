// The edge every source delivers through: validate once (a typed { code, reason } on failure), deliver to the
// customer actors under the one retry rule (`isRetryable`), record dead letters of the one record type, count every
// input item with one metric. Per-customer order is the caller's, with the one primitive (lib/keyed.queue.ts). A
// source keeps only what is its own: reading a file, tailing a log, an MQTT session, a cursor.
import type { ServiceBroker } from "moleculer";
import type { CloudEvent } from "../models/cloud-event.ts";
import { validateEvent, validateEvents, type BatchValidation } from "../models/cloud-event.validator.ts";
import type { KnownCloudEvent } from "../models/event-data.schemas.ts";
import {
	call, Customers, DeadLetters, isClientError, isRetryable, type ActionCaller, type CallOptions, type DeadLetterCode, type HandleResult,
	type InvalidEventData, type ItemOutcome, type RecordParams, type Tally
} from "../models/contract/index.ts";
import { M } from "../metrics/catalogue.ts";
import { withRetries } from "../lib/retry.ts";

export type DeliveryOutcome = "applied" | "duplicate";
export type { ItemOutcome, Tally };

export type Validation = { ok: true; event: KnownCloudEvent } | { ok: false; code: DeadLetterCode; reason: string };

/** The actor refused the event for good (invalid for it): dead-letter it, retrying cannot help. */
export class DeliveryRejected extends Error {
	override name = "DeliveryRejected";
	readonly code: DeadLetterCode;
	constructor(message: string, code: DeadLetterCode, options?: { cause?: unknown }) {
		super(message, options);
		this.code = code;
	}
}

/** Retries ran out on a transient failure (store down, no customers node), or the source is stopping: it keeps its input. */
export class DeliveryUnavailable extends Error {
	override name = "DeliveryUnavailable";
}

/** What a failed call to the actors means. */
export type Refusal =
	/** Transient (store or network down, a lost compare-and-set, a timeout): the same call may succeed later. */
	| { kind: "retry"; reason: string }
	/** The event itself is unacceptable: dead-letter it with this code. */
	| { kind: "rejected"; code: DeadLetterCode; reason: string }
	/** Neither: a failure no retry rule knows (a bug on one input). */
	| { kind: "fault"; reason: string };

function errorText(err: unknown): string {
	return err instanceof Error ? err.message : String((err as { message?: unknown } | null)?.message ?? err);
}

/** The one rule for a failed call to `customers.handle`: retry what is retryable, dead-letter what the actor refused. */
export function classifyFailure(err: unknown): Refusal {
	if (isRetryable(err)) return { kind: "retry", reason: errorText(err) };
	if ((err as { type?: unknown } | null)?.type === "INVALID_EVENT") {
		const data = (err as { data?: Partial<InvalidEventData> }).data;
		return { kind: "rejected", code: data?.code ?? "invalid_event", reason: `rejected by the customer actor: ${data?.reason ?? errorText(err)}` };
	}
	if (isClientError(err)) return { kind: "rejected", code: "rejected", reason: `rejected by the customer actor: ${errorText(err)}` };
	return { kind: "fault", reason: errorText(err) };
}

export interface DeliverOptions {
	/** The calling source's service name (`ingest-files`): the metrics middleware counts events per source by it. */
	caller?: string;
	signal?: AbortSignal;
	/** Attempts on top of the broker's own retry policy (default 4; Infinity: until delivered or `signal`). */
	attempts?: number;
	firstDelayMs?: number;
	maxDelayMs?: number;
	onRetry?(err: unknown, attempt: number): void;
}

/**
 * Sends one validated event to `customers.handle`. Resolves when the owning actor has persisted it (or recognised
 * a duplicate); throws DeliveryRejected when the actor refused it (or it failed in a way no retry helps),
 * DeliveryUnavailable when retries ran out.
 */
export async function deliverEvent(broker: ServiceBroker, event: CloudEvent, opts: DeliverOptions = {}): Promise<DeliveryOutcome> {
	try {
		const r = await withRetries(() => call(broker, Customers.handle, { customerId: event.subject, event }, opts.caller ? { caller: opts.caller } : {}), {
			attempts: opts.attempts ?? 4, baseMs: opts.firstDelayMs ?? 500, maxMs: opts.maxDelayMs ?? 10_000, retryIf: isRetryable, signal: opts.signal, onRetry: opts.onRetry
		});
		return r.applied ? "applied" : "duplicate";
	} catch (err) {
		const refusal = classifyFailure(err);
		if (refusal.kind === "retry") throw new DeliveryUnavailable(refusal.reason, { cause: err });
		throw new DeliveryRejected(refusal.kind === "rejected" ? refusal.reason : `rejected by the customer actor: ${refusal.reason}`, refusal.kind === "rejected" ? refusal.code : "rejected", { cause: err });
	}
}

/**
 * One event of a source run: delivered (its outcome to `onOutcome`) or, when the actor refuses it, dead-lettered
 * through `deadLetter` with the reason and its code. Resolves with the DeliveryUnavailable that should stop the run
 * (neither delivery nor dead letter possible), or null; any other error is thrown.
 */
export async function deliverOrDeadLetter(
	broker: ServiceBroker,
	event: CloudEvent,
	opts: DeliverOptions,
	onOutcome: (outcome: DeliveryOutcome) => void,
	deadLetter: (reason: string, code: DeadLetterCode) => Promise<void>
): Promise<DeliveryUnavailable | null> {
	try {
		onOutcome(await deliverEvent(broker, event, opts));
		return null;
	} catch (err) {
		try {
			if (!(err instanceof DeliveryRejected)) throw err;
			await deadLetter(err.message, err.code);
			return null;
		} catch (e) {
			if (e instanceof DeliveryUnavailable) return e;
			throw e;
		}
	}
}

/** A dead letter as a source hands it in: its own source name and retry action are added by the sink. */
export type Letter = Omit<RecordParams, "source" | "retryAction" | "reasonCode"> & {
	code: DeadLetterCode;
	/** Another source name than the sink's (NATS market records are dead-lettered as `market`). */
	source?: string;
};

export interface EventSinkOptions {
	broker: ServiceBroker;
	/** Short source name: the dead letters' `source` (crm.dlq.<source>) and the `source` label of its metrics. */
	source: string;
	/** The calling service's name (`ingest-files`), so the metrics middleware counts its events under `source`. */
	caller: string;
	/** Action that re-processes a dead letter's payload (deadLetters.retry calls it with `{ payload }`). */
	retryAction?: string;
	/** Options of every call this sink makes (a timeout, no broker-level retries when the source retries itself). */
	callOptions?: Omit<CallOptions, "caller">;
}

export class EventSink {
	readonly source: string;
	readonly caller: string;
	private readonly broker: ServiceBroker;
	private readonly retryAction?: string;
	private readonly callOptions: CallOptions;

	constructor(opts: EventSinkOptions) {
		this.broker = opts.broker;
		this.source = opts.source;
		this.caller = opts.caller;
		this.retryAction = opts.retryAction;
		this.callOptions = { ...opts.callOptions, caller: opts.caller };
	}

	/** The envelope validator, once: the event as the actors will see it, or why it is not one. */
	validate(raw: unknown, now?: number): Validation {
		return validateEvent(raw, now === undefined ? {} : { now });
	}

	/** One event or a batch of up to 1000, all validated: any invalid, and the errors say which and why. */
	validateBatch(raw: unknown): BatchValidation {
		return validateEvents(raw);
	}

	/** Delivers one event under the retry rule (see deliverEvent) and counts its outcome. */
	async deliver(event: CloudEvent, opts: Omit<DeliverOptions, "caller"> = {}): Promise<DeliveryOutcome> {
		const outcome = await deliverEvent(this.broker, event, { ...opts, caller: this.caller });
		this.count(outcome);
		return outcome;
	}

	/**
	 * deliverOrDeadLetter for this source: `letter` makes the dead letter of a refused event; `onOutcome` is told
	 * what became of the event once it is settled (the reason too when it was dead-lettered). Counted.
	 */
	deliverOrDeadLetter(
		event: CloudEvent,
		opts: Omit<DeliverOptions, "caller">,
		letter: (reason: string, code: DeadLetterCode) => Letter,
		onOutcome: (outcome: DeliveryOutcome | "dead_lettered", reason?: string) => void
	): Promise<DeliveryUnavailable | null> {
		return deliverOrDeadLetter(this.broker, event, { ...opts, caller: this.caller }, outcome => {
			this.count(outcome);
			onOutcome(outcome);
		}, async (reason, code) => {
			await this.deadLetter(letter(reason, code));
			onOutcome("dead_lettered", reason);
		});
	}

	/**
	 * One call with one customer's events, no retries of its own (`handle` for one, `handleMany` for a run, applied in
	 * order and persisted together); counts the outcomes. Through `via` (a request's context) when given, so the
	 * call continues its trace. Rejects with what the actors answered: see classifyFailure.
	 */
	async apply(customerId: string, events: CloudEvent[], via: ActionCaller = this.broker): Promise<HandleResult[]> {
		const opts = via === this.broker ? this.callOptions : undefined;
		const results = events.length === 1
			? [await call(via, Customers.handle, { customerId, event: events[0] }, opts)]
			: await call(via, Customers.handleMany, { customerId, events }, opts);
		let applied = 0;
		for (const r of results) if (r.applied) applied++;
		if (applied > 0) this.count("applied", applied);
		if (results.length > applied) this.count("duplicate", results.length - applied);
		return results;
	}

	/**
	 * Validated events of many customers: one call per customer (its events in order), customers in parallel;
	 * resolves once every change is persisted.
	 */
	async applyAll(events: CloudEvent[], via?: ActionCaller): Promise<{ accepted: number; duplicates: number }> {
		const results = await Promise.all([...groupBySubject(events)].map(([customerId, list]) => this.apply(customerId, list, via)));
		let accepted = 0;
		let duplicates = 0;
		for (const list of results) for (const r of list) {
			if (r.applied) accepted++;
			else duplicates++;
		}
		return { accepted, duplicates };
	}

	/**
	 * Records a dead letter (deduplicated by `dedupKey`) and counts it; throws DeliveryUnavailable when it cannot be
	 * recorded (the source then keeps its input).
	 */
	async deadLetter(letter: Letter): Promise<void> {
		const { code, source, ...rest } = letter;
		const record: RecordParams = { ...rest, source: source ?? this.source, reasonCode: code, ...(this.retryAction ? { retryAction: this.retryAction } : {}) };
		try {
			await call(this.broker, DeadLetters.record, record, this.callOptions);
		} catch (err) {
			throw new DeliveryUnavailable(`dead letter not recorded (${errorText(err)})`, { cause: err });
		}
		this.count("dead_lettered");
	}

	/** Counts input items of this source by outcome (crm_source_items_total); a no-op when metrics are off. */
	count(outcome: ItemOutcome | "market_duplicate", by = 1): void {
		const broker = this.broker;
		if (!broker.isMetricsEnabled()) return;
		if (!broker.metrics.getMetric(M.sourceItems)) {
			broker.metrics.register({ name: M.sourceItems, type: "counter", labelNames: ["source", "outcome"], description: "Input items of every source by outcome" });
		}
		broker.metrics.increment(M.sourceItems, { source: this.source, outcome }, by);
	}
}

export function groupBySubject(events: CloudEvent[]): Map<string, CloudEvent[]> {
	const groups = new Map<string, CloudEvent[]>();
	for (const e of events) {
		const list = groups.get(e.subject);
		if (list) list.push(e);
		else groups.set(e.subject, [e]);
	}
	return groups;
}

export function newTally(): Tally {
	return { applied: 0, duplicate: 0, deadLettered: 0, skipped: 0 };
}

export function addToTally(t: Tally, outcome: ItemOutcome): void {
	if (outcome === "applied") t.applied++;
	else if (outcome === "duplicate") t.duplicate++;
	else if (outcome === "dead_lettered") t.deadLettered++;
	else t.skipped++;
}
