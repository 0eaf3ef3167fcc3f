// MQTT device telemetry (ARCHITECTURE §9): topic and payload parsing, declared metric ranges, the device binding
// policy, and the conversion of a plausible reading into a `crm.device.telemetry` CloudEvent. Pure.
import type { CloudEvent } from "./cloud-event.ts";
import { eventTimeMs, validateEvent } from "./cloud-event.validator.ts";
import { FORBIDDEN_KEYS, MAP_KEY_PATTERN, isPlainObject, showKey, type KnownCloudEvent } from "./event-data.schemas.ts";

export const TELEMETRY_TOPIC_PREFIX = "crm/devices/";
export const TELEMETRY_TOPIC_FILTER = "crm/devices/+/telemetry";
export const TELEMETRY_TYPE = "crm.device.telemetry";
export const MAX_METRICS = 32;
/** Readings stamped before this are a device whose clock was never set, or one that sends seconds, not ms. */
export const EARLIEST_TS_MS = Date.UTC(2000, 0, 1);

const TOPIC = /^crm\/devices\/([^/]+)\/telemetry$/;
const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;
const CUSTOMER_ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;
const PAYLOAD_KEYS: ReadonlySet<string> = new Set(["customerId", "ts", "metrics"]);
/** Undeclared metrics with these suffixes are counters: they only ever count up from zero. */
const COUNTER_SUFFIX = /(?:Count|Total)$/;

export interface MetricRange {
	min: number;
	max: number;
	/** A counter: negative is impossible, and the reason says so. */
	counter?: boolean;
}

const COUNTER: MetricRange = { min: 0, max: Number.MAX_SAFE_INTEGER, counter: true };

/**
 * Physically possible values of the metrics devices are known to send. A reading outside them is a broken sensor
 * or a forged message, never data. Undeclared metrics are accepted as any finite number (counters by suffix: ≥ 0).
 */
export const DECLARED_METRICS: Readonly<Record<string, MetricRange>> = {
	batteryPct: { min: 0, max: 100 },
	batteryV: { min: 0, max: 60 },
	temperatureC: { min: -90, max: 150 },
	humidityPct: { min: 0, max: 100 },
	pressureHpa: { min: 300, max: 1100 },
	signalDbm: { min: -150, max: 0 },
	heartRateBpm: { min: 20, max: 300 },
	speedKmh: { min: 0, max: 500 },
	latitude: { min: -90, max: 90 },
	longitude: { min: -180, max: 180 },
	co2Ppm: { min: 0, max: 100_000 },
	powerW: { min: 0, max: 10_000_000 },
	energyKwh: COUNTER,
	uptimeS: COUNTER,
	usageMinutes: COUNTER,
	dataUsedMb: COUNTER,
	stepCount: COUNTER,
	errorCount: COUNTER
};

/**
 * The JSON Schema of a payload parseTelemetry accepts (published in the AsyncAPI document): built from the same
 * patterns, bounds and declared ranges it checks. Not expressible here: "at most maxFutureMs ahead of now".
 */
export const TELEMETRY_PAYLOAD_SCHEMA = {
	type: "object",
	required: ["customerId", "ts", "metrics"],
	additionalProperties: false,
	properties: {
		customerId: { type: "string", pattern: CUSTOMER_ID.source },
		ts: {
			anyOf: [
				{ type: "integer", minimum: EARLIEST_TS_MS, description: "Milliseconds since the Unix epoch, from 2000-01-01." },
				{ type: "string", format: "date-time", maxLength: 64, description: "RFC 3339 with a time zone offset, from 2000-01-01." }
			]
		},
		metrics: {
			type: "object",
			minProperties: 1,
			maxProperties: MAX_METRICS,
			propertyNames: { pattern: MAP_KEY_PATTERN.source, not: { enum: [...FORBIDDEN_KEYS] } },
			properties: Object.fromEntries(Object.entries(DECLARED_METRICS).map(([name, r]) => [name, { type: "number", minimum: r.min, maximum: r.max }])),
			additionalProperties: { type: "number", description: "Undeclared metrics: any finite number; names ending in Count or Total are counters (≥ 0)." }
		}
	}
} as const;

export interface TelemetryOptions {
	/** Our clock, ms since epoch. */
	now: number;
	/** How far ahead of `now` a reading may be stamped (device clocks drift). */
	maxFutureMs: number;
	maxPayloadBytes: number;
	/** Ranges that extend or override DECLARED_METRICS. */
	ranges?: Readonly<Record<string, MetricRange>>;
}

export type TelemetryResult =
	| { ok: true; deviceId: string; customerId: string; tsMs: number; event: KnownCloudEvent }
	| { ok: false; reason: string; code: TelemetryRejection; deviceId?: string };

/** Why a reading was refused, as a short code (a metric label: the reason text quotes the input). */
export type TelemetryRejection =
	| "bad_topic" | "oversize" | "not_utf8" | "invalid_json" | "bad_shape" | "forbidden_key" | "missing_customer" | "bad_ts"
	| "future_ts" | "bad_metrics" | "impossible_reading" | "invalid_event";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The device id of a telemetry topic, or undefined when the topic is not one. */
export function deviceIdFromTopic(topic: string): string | undefined {
	const m = TOPIC.exec(topic);
	return m !== null && DEVICE_ID.test(m[1]) ? m[1] : undefined;
}

/** The dedup id of a reading: a redelivered or re-sent reading of a device at the same instant is the same event. */
export function telemetryEventId(deviceId: string, tsMs: number): string {
	return `${deviceId}@${tsMs}`;
}

export function telemetrySource(deviceId: string): string {
	return `/devices/${deviceId}`;
}

function rangeOf(name: string, ranges: Readonly<Record<string, MetricRange>> | undefined): MetricRange | undefined {
	if (ranges !== undefined && Object.hasOwn(ranges, name)) return ranges[name];
	if (Object.hasOwn(DECLARED_METRICS, name)) return DECLARED_METRICS[name];
	return COUNTER_SUFFIX.test(name) ? COUNTER : undefined;
}

/** Why a metric value is impossible, or undefined when it is plausible. */
export function checkMetric(name: string, value: number, ranges?: Readonly<Record<string, MetricRange>>): string | undefined {
	const range = rangeOf(name, ranges);
	if (range === undefined) return undefined;
	if (range.counter === true && value < 0) return `metric ${name} is a counter and cannot be negative (got ${value})`;
	if (value < range.min || value > range.max) return `metric ${name} = ${value} is outside its declared range ${range.min}..${range.max}`;
	return undefined;
}

function parseTs(ts: unknown): number | string {
	if (typeof ts === "number") {
		return Number.isInteger(ts) && ts >= 0 ? ts : "ts must be an integer number of milliseconds since the Unix epoch, or an RFC 3339 string";
	}
	if (typeof ts === "string") {
		const ms = ts.length <= 64 ? eventTimeMs({ time: ts } as CloudEvent) : NaN;
		return Number.isNaN(ms) ? "ts must be an RFC 3339 date-time with a time zone offset, or milliseconds since the Unix epoch" : ms;
	}
	return ts === undefined || ts === null ? "missing ts" : "ts must be an integer number of milliseconds since the Unix epoch, or an RFC 3339 string";
}

/**
 * Parses one MQTT message into a telemetry CloudEvent, or says why it is unacceptable: not a telemetry topic,
 * not JSON, wrong shape, prototype keys, or a physically impossible reading (future timestamp, negative counter,
 * value outside its declared range).
 */
export function parseTelemetry(topic: string, payload: Uint8Array, opts: TelemetryOptions): TelemetryResult {
	const deviceId = deviceIdFromTopic(topic);
	if (deviceId === undefined) return { ok: false, code: "bad_topic", reason: `topic "${showKey(topic)}" is not crm/devices/<deviceId>/telemetry with a device id of 1..128 letters, digits or ._:@-` };
	const fail = (code: TelemetryRejection, reason: string): TelemetryResult => ({ ok: false, code, reason, deviceId });
	if (payload.byteLength > opts.maxPayloadBytes) return fail("oversize", `payload of ${payload.byteLength} bytes exceeds ${opts.maxPayloadBytes} bytes`);
	let text: string;
	try {
		text = utf8.decode(payload);
	} catch {
		return fail("not_utf8", "payload is not UTF-8 text");
	}
	let body: unknown;
	try {
		body = JSON.parse(text);
	} catch (err) {
		return fail("invalid_json", `payload is not valid JSON: ${(err as Error).message}`);
	}
	if (!isPlainObject(body)) return fail("bad_shape", "payload must be a JSON object { customerId, ts, metrics }");
	for (const key of Object.keys(body)) {
		if (FORBIDDEN_KEYS.has(key)) return fail("forbidden_key", `payload has forbidden key "${key}"`);
		if (!PAYLOAD_KEYS.has(key)) return fail("bad_shape", `payload has unknown field "${showKey(key)}" (expected customerId, ts, metrics)`);
	}
	const { customerId, ts, metrics } = body;
	if (customerId === undefined || customerId === null || customerId === "") return fail("missing_customer", "missing customerId");
	if (typeof customerId !== "string" || !CUSTOMER_ID.test(customerId)) return fail("missing_customer", "customerId must be a customer id of 1..128 letters, digits or ._:@- starting with a letter or digit");
	const tsMs = parseTs(ts);
	if (typeof tsMs === "string") return fail("bad_ts", tsMs);
	if (tsMs < EARLIEST_TS_MS) return fail("bad_ts", `ts ${tsMs} is before 2000-01-01: the device clock is not set, or it sends seconds instead of milliseconds`);
	if (tsMs > opts.now + opts.maxFutureMs) return fail("future_ts", `ts is ${Math.round((tsMs - opts.now) / 1000)} s in the future (at most ${Math.round(opts.maxFutureMs / 1000)} s allowed)`);
	if (metrics === undefined || metrics === null) return fail("bad_metrics", "missing metrics");
	if (!isPlainObject(metrics)) return fail("bad_metrics", "metrics must be an object of metric name → number");
	const names = Object.keys(metrics);
	if (names.length === 0 || names.length > MAX_METRICS) return fail("bad_metrics", `metrics must have 1..${MAX_METRICS} entries, got ${names.length}`);
	const clean: Record<string, number> = {};
	for (const name of names) {
		if (FORBIDDEN_KEYS.has(name)) return fail("forbidden_key", `metrics has forbidden key "${name}"`);
		if (!MAP_KEY_PATTERN.test(name)) return fail("bad_metrics", `metric name "${showKey(name)}" must be a letter, then letters, digits or _ (at most 64)`);
		const value = metrics[name];
		if (typeof value !== "number" || !Number.isFinite(value)) return fail("bad_metrics", `metric ${name} must be a finite number`);
		const impossible = checkMetric(name, value, opts.ranges);
		if (impossible !== undefined) return fail("impossible_reading", impossible);
		clean[name] = value;
	}
	const event = {
		specversion: "1.0",
		id: telemetryEventId(deviceId, tsMs),
		source: telemetrySource(deviceId),
		type: TELEMETRY_TYPE,
		subject: customerId,
		time: new Date(tsMs).toISOString(),
		datacontenttype: "application/json",
		data: { deviceId, metrics: clean }
	};
	// The envelope validator has the last word, so telemetry can never reach an actor in a shape no other source could.
	const checked = validateEvent(event, { now: opts.now });
	if (!checked.ok) return fail("invalid_event", checked.reason);
	return { ok: true, deviceId, customerId, tsMs, event: checked.event };
}

/**
 * The binding policy. A bound device speaks only for its customer: a payload naming another customer is forged or
 * misconfigured. An unbound device is accepted or rejected by configuration ("reject" is the default).
 */
export function checkBinding(deviceId: string, customerId: string, boundTo: string | null, unbound: "reject" | "accept"): string | undefined {
	if (boundTo === null) return unbound === "accept" ? undefined : `device ${deviceId} is not bound to a customer (bind it with POST /api/v1/devices, then retry the dead letter)`;
	if (boundTo !== customerId) return `device ${deviceId} is bound to customer ${boundTo}, but the reading names customer ${customerId}`;
	return undefined;
}
