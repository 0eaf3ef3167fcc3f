// What every pull source does with one normalised event: hand it to the owning actor (retrying what is retryable),
// or record a dead letter with the reason; plus the per-source metric. Shared by ingest-erp, -files and -logs.
import type { ServiceBroker } from "moleculer";
import type { KnownCloudEvent } from "../models/event-data.schemas.ts";
import { call, Customers, DeadLetters, isRetryable, type ItemOutcome, type RecordParams, type Tally } from "../models/contract/index.ts";

export type DeliveryOutcome = "applied" | "duplicate";
export type { ItemOutcome, Tally };

/** The actor refused the event for good (invalid for it): dead-letter it, retrying cannot help. */
export class DeliveryRejected extends Error {
	override name = "DeliveryRejected";
}

/** Retries ran out on a transient failure (store down, no customers node): the source must keep the input. */
export class DeliveryUnavailable extends Error {
	override name = "DeliveryUnavailable";
}

function errorText(err: unknown): string {
	return err instanceof Error ? err.message : String(err);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
	return new Promise(resolve => {
		const timer = setTimeout(done, ms);
		function done() {
			clearTimeout(timer);
			signal?.removeEventListener("abort", done);
			resolve();
		}
		signal?.addEventListener("abort", done, { once: true });
	});
}

export interface DeliverOptions {
	/** The calling source's service name (`ingest-files`): the metrics middleware counts events per source by it. */
	caller?: string;
	signal?: AbortSignal;
	/** Attempts on top of the broker's own retry policy; each waits twice as long as the one before. */
	attempts?: number;
	firstDelayMs?: number;
}

/**
 * Sends one validated event to `customers.handle`. Resolves when the owning actor has persisted it (or recognised
 * a duplicate); throws DeliveryRejected for a non-retryable refusal, DeliveryUnavailable when retries ran out.
 */
export async function deliverEvent(broker: ServiceBroker, event: KnownCloudEvent, opts: DeliverOptions = {}): Promise<DeliveryOutcome> {
	const attempts = opts.attempts ?? 4;
	let delay = opts.firstDelayMs ?? 500;
	for (let attempt = 1; ; attempt++) {
		try {
			const r = await call(broker, Customers.handle, { customerId: event.subject, event }, opts.caller ? { caller: opts.caller } : {});
			return r.applied ? "applied" : "duplicate";
		} catch (err) {
			if (!isRetryable(err)) throw new DeliveryRejected(errorText(err), { cause: err });
			if (attempt >= attempts || opts.signal?.aborted) throw new DeliveryUnavailable(errorText(err), { cause: err });
			await sleep(delay, opts.signal);
			delay = Math.min(delay * 2, 10_000);
		}
	}
}

/**
 * One event of a source run: delivered (its outcome to `onOutcome`) or, when the actor refuses it, dead-lettered.
 * Resolves with the DeliveryUnavailable that should stop the run (neither delivery nor dead letter possible), or
 * null; any other error is thrown.
 */
export async function deliverOrDeadLetter(
	broker: ServiceBroker,
	event: KnownCloudEvent,
	opts: DeliverOptions,
	onOutcome: (outcome: DeliveryOutcome) => void,
	deadLetter: (reason: string) => Promise<void>
): Promise<DeliveryUnavailable | null> {
	try {
		onOutcome(await deliverEvent(broker, event, opts));
		return null;
	} catch (err) {
		try {
			if (!(err instanceof DeliveryRejected)) throw err;
			await deadLetter(`rejected by the customer actor: ${err.message}`);
			return null;
		} catch (e) {
			if (e instanceof DeliveryUnavailable) return e;
			throw e;
		}
	}
}

/** Records a dead letter through the dead-letters service; throws DeliveryUnavailable when it cannot (the caller keeps the input). */
export async function recordDeadLetter(broker: ServiceBroker, dl: RecordParams): Promise<void> {
	try {
		await call(broker, DeadLetters.record, dl, { caller: `ingest-${dl.source}` });
	} catch (err) {
		throw new DeliveryUnavailable(`dead letter not recorded (${errorText(err)})`, { cause: err });
	}
}

export const SOURCE_ITEMS_METRIC = "crm_source_items_total";

/** Counts one input item of a source by outcome; a no-op when metrics are off. */
export function countItem(broker: ServiceBroker, source: string, outcome: ItemOutcome, by = 1): void {
	if (!broker.isMetricsEnabled()) return;
	if (!broker.metrics.getMetric(SOURCE_ITEMS_METRIC)) {
		broker.metrics.register({ name: SOURCE_ITEMS_METRIC, type: "counter", labelNames: ["source", "outcome"], description: "Input items of the pull sources (ERP rows, file rows, log entries) by outcome" });
	}
	broker.metrics.increment(SOURCE_ITEMS_METRIC, { source, outcome }, by);
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
