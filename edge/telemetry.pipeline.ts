// The telemetry pipeline of ingest-mqtt, whatever the MQTT session (external broker or embedded): parse a reading
// into `crm.device.telemetry`, check the device's binding, deliver it through the source's sink, or dead-letter it
// with its reason. A reading is settled — and may be acknowledged (QoS 1 PUBACK) — only once its actor persisted it
// or its dead letter is recorded.
import { createHash } from "node:crypto";
import type { Logger, ServiceBroker } from "moleculer";
import type { EdgeConfig } from "../config/edge.config.ts";
import { checkBinding, deviceIdFromTopic, parseTelemetry } from "../models/telemetry.schema.ts";
import { call, Devices, type DeadLetterCode, type MqttDeadLetterPayload, type MqttOutcome } from "../models/contract/index.ts";
import { KeyedQueue } from "../lib/keyed.queue.ts";
import { withRetries } from "../lib/retry.ts";
import { contractError } from "../runtime/contract-error.ts";
import { DeliveryRejected, type EventSink } from "./event.sink.ts";

/** The most of a payload a dead letter keeps: enough to see what was sent, bounded against a flood of junk. */
const DEAD_LETTER_PAYLOAD_BYTES = 64 * 1024;
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;
const WARN_EVERY_MS = 10_000;

/** Thrown to whoever waits on a reading when the service stops first: it must stay unacknowledged. */
export class StoppingError extends Error {
	override name = "StoppingError";
}

class InvalidReading extends Error {
	override name = "InvalidReading";
}

export function toDeadLetterPayload(topic: string, payload: Uint8Array): MqttDeadLetterPayload {
	const kept = payload.byteLength > DEAD_LETTER_PAYLOAD_BYTES ? payload.subarray(0, DEAD_LETTER_PAYLOAD_BYTES) : payload;
	const out: MqttDeadLetterPayload = { topic };
	try {
		out.payload = new TextDecoder("utf-8", { fatal: true }).decode(kept);
	} catch {
		out.payloadBase64 = Buffer.from(kept).toString("base64");
	}
	if (kept !== payload) out.truncatedFrom = payload.byteLength;
	return out;
}

interface PipelineDeps {
	sink: EventSink;
	/** Where device bindings are looked up (devices.lookup). */
	broker: ServiceBroker;
	logger: Logger;
	edge: EdgeConfig;
}

/**
 * Readings of one device run one after the other (the keyed queue) so they reach the actor in the order they
 * arrived; transient failures are retried here with backoff, holding that device's later readings back, until the
 * service stops.
 */
export class TelemetryPipeline {
	private readonly sink: EventSink;
	private readonly broker: ServiceBroker;
	private readonly logger: Logger;
	private readonly edge: EdgeConfig;
	private readonly devices = new KeyedQueue();
	private readonly bindings = new Map<string, { customerId: string | null; until: number }>();
	private readonly lastWarn = new Map<string, number>();
	private readonly stopping = new AbortController();

	constructor(deps: PipelineDeps) {
		this.sink = deps.sink;
		this.broker = deps.broker;
		this.logger = deps.logger;
		this.edge = deps.edge;
	}

	/** Readings accepted but not yet settled; the sessions bound it. */
	get pending(): number {
		return this.devices.size;
	}

	/** Resolves once the reading may be acknowledged; rejects (StoppingError) when it must not be. */
	submit(topic: string, payload: Uint8Array): Promise<MqttOutcome> {
		return this.devices.run(deviceIdFromTopic(topic) ?? `topic:${topic}`, () => this.process(topic, payload, true));
	}

	/** Re-processes a dead letter's payload; throws instead of dead-lettering it again. */
	async reprocess(p: MqttDeadLetterPayload): Promise<MqttOutcome> {
		const bytes = p.payloadBase64 !== undefined ? Buffer.from(p.payloadBase64, "base64") : Buffer.from(p.payload ?? "", "utf8");
		try {
			return await this.process(p.topic, bytes, false);
		} catch (err) {
			if (err instanceof InvalidReading) throw contractError("INVALID_TELEMETRY", err.message, { reason: err.message });
			throw err;
		}
	}

	forgetBinding(deviceId: string): void {
		this.bindings.delete(deviceId);
	}

	stop(): void {
		this.stopping.abort();
	}

	private async process(topic: string, payload: Uint8Array, deadLetter: boolean): Promise<MqttOutcome> {
		const reject = async (code: DeadLetterCode, reason: string): Promise<MqttOutcome> => {
			if (!deadLetter) throw new InvalidReading(reason);
			// A redelivery of the same message (its PUBACK was lost) keeps one dead letter.
			const dedupKey = `mqtt/${createHash("sha256").update(topic).update("\n").update(payload).digest("hex")}`;
			// A dead letter must not be skipped: recorded whatever it takes, until the service stops.
			await this.retrying("dead letter", () => this.sink.deadLetter({ code, reason, payload: toDeadLetterPayload(topic, payload), dedupKey }));
			return "dead_lettered";
		};
		const parsed = parseTelemetry(topic, payload, {
			now: Date.now(), maxFutureMs: this.edge.telemetry.maxFutureMs, maxPayloadBytes: this.edge.mqtt.maxPayloadBytes, ranges: this.edge.telemetry.ranges
		});
		if (!parsed.ok) return reject(parsed.code, parsed.reason);
		const boundTo = await this.retrying("device binding lookup", () => this.boundCustomer(parsed.deviceId));
		const unbound = checkBinding(parsed.deviceId, parsed.customerId, boundTo, this.edge.mqtt.unboundDevices);
		if (unbound !== undefined) return reject(boundTo === null ? "unbound_device" : "binding_mismatch", unbound);
		this.throwIfStopping("delivery");
		try {
			return await this.sink.deliver(parsed.event, {
				attempts: Infinity, firstDelayMs: RETRY_MIN_MS, maxDelayMs: RETRY_MAX_MS, signal: this.stopping.signal,
				onRetry: (err, attempt) => this.warnThrottled("delivery", `mqtt: delivery failed (attempt ${attempt}), retrying: ${(err as Error).message}`)
			});
		} catch (err) {
			if (err instanceof DeliveryRejected) return reject(err.code, err.message);
			this.throwIfStopping("delivery");
			throw err;
		}
	}

	private async boundCustomer(deviceId: string): Promise<string | null> {
		const cached = this.bindings.get(deviceId);
		const now = Date.now();
		if (cached !== undefined && cached.until > now) return cached.customerId;
		const { customerId } = await call(this.broker, Devices.lookup, { deviceId }, { caller: this.sink.caller });
		this.bindings.set(deviceId, { customerId, until: now + this.edge.mqtt.bindingCacheMs });
		if (this.bindings.size > 100_000) this.bindings.delete(this.bindings.keys().next().value as string);
		return customerId;
	}

	/** Runs `fn` until it succeeds, whatever fails (a binding we cannot read must not be skipped either), until the service stops. */
	private async retrying<T>(what: string, fn: () => Promise<T>): Promise<T> {
		this.throwIfStopping(what);
		try {
			return await withRetries(fn, {
				attempts: Infinity, baseMs: RETRY_MIN_MS, maxMs: RETRY_MAX_MS, retryIf: () => true, signal: this.stopping.signal,
				onRetry: (err, attempt) => this.warnThrottled(what, `mqtt: ${what} failed (attempt ${attempt}), retrying: ${(err as Error).message}`)
			});
		} catch (err) {
			this.throwIfStopping(what);
			throw err;
		}
	}

	private throwIfStopping(what: string): void {
		if (this.stopping.signal.aborted) throw new StoppingError(`${what}: ingest-mqtt is stopping`);
	}

	warnThrottled(key: string, message: string): void {
		const now = Date.now();
		if ((this.lastWarn.get(key) ?? 0) + WARN_EVERY_MS > now) return;
		this.lastWarn.set(key, now);
		this.logger.warn(message);
	}
}
