// Validates untrusted input as a CloudEvents 1.0 envelope of a known type (ARCHITECTURE §3) and returns a clean copy.
// Runs on every ingested event: patterns are compiled once, and the data size is counted while walking, not stringified.
import { EVENT_TYPES } from "./cloud-event.ts";
import type { CloudEvent, EventType } from "./cloud-event.ts";
import { FORBIDDEN_KEYS, Invalid, isPlainObject, showKey, validateEventData } from "./event-data.schemas.ts";
import type { KnownCloudEvent } from "./event-data.schemas.ts";

export const MAX_DATA_BYTES = 65536;
/** Levels of objects/arrays, counting the event itself as level 1 (so `data` is level 2). */
export const MAX_DEPTH = 16;
export const MAX_BATCH = 1000;
export const MAX_FUTURE_MS = 24 * 60 * 60 * 1000;
/** Event times before the Unix epoch are placeholders ("0001-01-01") or clocks never set, not CRM history. */
export const EARLIEST_TIME_MS = 0;

export interface ValidateOptions {
	/** The clock (ms since epoch) that bounds how far in the future `time` may be; defaults to `Date.now()`. */
	now?: number;
}

/** Why an input is not a valid event, as a short code of bounded variety (dead-letter reason codes, metric labels). */
export type ValidationCode = "invalid_event" | "unknown_type" | "missing_customer" | "oversize" | "forbidden_key";

export type EventValidation = { ok: true; event: KnownCloudEvent } | { ok: false; code: ValidationCode; reason: string };
export type BatchValidation = { ok: true; events: KnownCloudEvent[] } | { ok: false; errors: { index: number; reason: string }[] };

const KNOWN_TYPES: ReadonlySet<string> = new Set(EVENT_TYPES);
/** The envelope's attributes; others must be extension attributes (EXTENSION_NAME). */
export const ENVELOPE_ATTRIBUTES = ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"] as const;
const KNOWN_ATTRIBUTES: ReadonlySet<string> = new Set(ENVELOPE_ATTRIBUTES);
export const EXTENSION_NAME = /^[a-z0-9]{1,20}$/;
export const MAX_ID_LENGTH = 256;
// A URI-reference has no whitespace or control characters; anything finer is the producer's business.
export const SOURCE_PATTERN = /^[^\s\p{Cc}]{1,512}$/u;
export const SUBJECT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;
// RFC 3339 date-time; the offset is mandatory. Bounded fraction so the string stays short.
export const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

/** Size exceeded: carries no path because the reason is always about `data` as a whole. */
const OVERSIZE = new Invalid("exceeds 64 KiB");

/**
 * Walks one JSON value: rejects prototype keys, nesting beyond MAX_DEPTH and non-JSON values (functions,
 * NaN, class instances, cycles — those hit the depth limit), and returns the UTF-8 byte length of its
 * JSON.stringify text, giving up with OVERSIZE as soon as that passes `limit`. `undefined` object
 * properties count as absent, as JSON.stringify has them.
 */
function walk(value: unknown, level: number, limit: number): number | Invalid {
	switch (typeof value) {
		case "string": return value.length > limit ? OVERSIZE : jsonStringBytes(value); // ≥ 1 byte per code unit
		case "number": return Number.isFinite(value) ? String(value).length : new Invalid("must be a finite number");
		case "boolean": return value ? 4 : 5;
		case "object": break;
		default: return new Invalid("is not a JSON value");
	}
	if (value === null) return 4;
	if (level > MAX_DEPTH) return new Invalid(`is nested deeper than ${MAX_DEPTH} levels`);
	if (Array.isArray(value)) {
		let bytes = value.length > 0 ? value.length + 1 : 2; // brackets and commas
		for (let i = 0; i < value.length; i++) {
			const r = walk(value[i], level + 1, limit);
			if (r instanceof Invalid) return r === OVERSIZE ? r : r.under(`[${i}]`);
			bytes += r;
			if (bytes > limit) return OVERSIZE;
		}
		return bytes;
	}
	if (!isPlainObject(value)) return new Invalid("is not a JSON value");
	let bytes = 1; // "{"; each member adds its comma or the closing "}"
	let members = 0;
	for (const key of Object.keys(value)) {
		if (FORBIDDEN_KEYS.has(key)) return new Invalid(`has forbidden key "${key}"`, "", true);
		const v = value[key];
		if (v === undefined) continue;
		const r = walk(v, level + 1, limit);
		if (r instanceof Invalid) return r === OVERSIZE ? r : r.under(`.${showKey(key)}`);
		bytes += jsonStringBytes(key) + 2 + r; // "key" : value ,|}
		members++;
		if (bytes > limit) return OVERSIZE;
	}
	return members > 0 ? bytes : 2;
}

/** UTF-8 length of JSON.stringify(s), escapes included (lone surrogates become \uXXXX, as in ES2019+). */
export function jsonStringBytes(s: string): number {
	let bytes = 2;
	for (let i = 0; i < s.length; i++) {
		const c = s.charCodeAt(i);
		if (c < 0x80) {
			if (c >= 0x20) bytes += c === 0x22 || c === 0x5c ? 2 : 1;
			else bytes += c === 0x08 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d ? 2 : 6;
		} else if (c < 0x800) bytes += 2;
		else if (c >= 0xd800 && c <= 0xdbff) {
			const next = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
			if (next >= 0xdc00 && next <= 0xdfff) {
				bytes += 4;
				i++;
			} else bytes += 6;
		} else if (c >= 0xdc00 && c <= 0xdfff) bytes += 6;
		else bytes += 3;
	}
	return bytes;
}

/** UTF-8 length of JSON.stringify(value), or -1 when it is not plain JSON data. For tests and metrics. */
export function jsonByteLength(value: unknown): number {
	const r = walk(value, 1, Infinity);
	return r instanceof Invalid ? -1 : r;
}

function daysFromCivil(y: number, m: number, d: number): number {
	// Howard Hinnant's algorithm: exact for any proleptic Gregorian year, unlike Date.UTC's 0..99 → 19xx quirk.
	y -= m <= 2 ? 1 : 0;
	const era = Math.floor(y / 400);
	const yoe = y - era * 400;
	const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
	const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
	return era * 146097 + doe - 719468;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Milliseconds since epoch of an RFC 3339 date-time with offset, or NaN when it is not one. */
function parseRfc3339(time: string): number {
	const m = RFC3339.exec(time);
	if (m === null) return NaN;
	const year = +m[1], month = +m[2], day = +m[3], hour = +m[4], minute = +m[5], second = +m[6];
	const leap = month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
	if (month < 1 || month > 12 || day < 1 || day > DAYS_IN_MONTH[month - 1] + (leap ? 1 : 0)) return NaN;
	// Second 60 is a leap second (RFC 3339 §5.7); it lands on the next minute's :00.
	if (hour > 23 || minute > 59 || second > 60) return NaN;
	let offsetMin = 0;
	if (m[8] !== undefined) {
		const oh = +m[9], om = +m[10];
		if (oh > 23 || om > 59) return NaN;
		offsetMin = (m[8] === "-" ? -1 : 1) * (oh * 60 + om);
	}
	const ms = m[7] === undefined ? 0 : +`${m[7]}00`.slice(0, 3); // truncated to ms, as Date.parse does
	return ((daysFromCivil(year, month, day) * 24 + hour) * 60 + minute - offsetMin) * 60000 + second * 1000 + ms;
}

/** Event time in ms since epoch; NaN only for an event that did not pass `validateEvent`. */
export function eventTimeMs(event: CloudEvent): number {
	return parseRfc3339(event.time);
}

type Failure = { ok: false; code: ValidationCode; reason: string };

function fail(reason: string, code: ValidationCode = "invalid_event"): Failure {
	return { ok: false, code, reason };
}

function missing(name: string): Failure {
	return fail(`missing required attribute "${name}"`, name === "subject" ? "missing_customer" : "invalid_event");
}

/**
 * Validates one CloudEvent. Attributes that are `null` count as absent. The event returned is a fresh copy
 * with only the known attributes (extension attributes are checked, then dropped) and a schema-checked `data`.
 */
export function validateEvent(input: unknown, opts: ValidateOptions = {}): EventValidation {
	if (!isPlainObject(input)) return fail("event must be a JSON object");
	let dataBytes = 0;
	for (const key of Object.keys(input)) {
		if (FORBIDDEN_KEYS.has(key)) return fail(`event has forbidden key "${key}"`, "forbidden_key");
		const value = input[key];
		if (typeof value !== "object" || value === null) continue;
		const isData = key === "data";
		const r = walk(value, 2, isData ? MAX_DATA_BYTES : Infinity);
		if (r === OVERSIZE) return fail("data exceeds 64 KiB", "oversize");
		if (r instanceof Invalid) return fail(`${isData ? "data" : showKey(key)}${r.subpath} ${r.reason}`, r.forbiddenKey ? "forbidden_key" : "invalid_event");
		if (isData) dataBytes = r;
	}
	// walk() only bails once it passes the limit; the last member can still land above it.
	if (dataBytes > MAX_DATA_BYTES) return fail("data exceeds 64 KiB", "oversize");

	const { specversion, id, source, type, subject, time, datacontenttype, data } = input;
	if (specversion == null) return missing("specversion");
	if (specversion !== "1.0") return fail(`attribute "specversion" must be "1.0"`);
	if (id == null) return missing("id");
	if (typeof id !== "string" || id.length < 1 || id.length > MAX_ID_LENGTH) return fail(`attribute "id" must be a string of 1..${MAX_ID_LENGTH} characters`);
	if (source == null) return missing("source");
	if (typeof source !== "string" || !SOURCE_PATTERN.test(source)) {
		return fail(`attribute "source" must be a URI-reference of 1..512 characters without spaces or control characters`);
	}
	if (type == null) return missing("type");
	if (typeof type !== "string") return fail(`attribute "type" must be a string`);
	if (!KNOWN_TYPES.has(type)) return fail(`unknown event type "${showKey(type)}"`, "unknown_type");
	if (subject == null) return missing("subject");
	if (typeof subject !== "string" || !SUBJECT_PATTERN.test(subject)) {
		return fail(`attribute "subject" must be a customer id of 1..128 letters, digits or ._:@- starting with a letter or digit`, "missing_customer");
	}
	if (time == null) return missing("time");
	const timeMs = typeof time === "string" ? parseRfc3339(time) : NaN;
	if (Number.isNaN(timeMs)) return fail(`attribute "time" must be an RFC 3339 date-time with a time zone offset`);
	if (timeMs > (opts.now ?? Date.now()) + MAX_FUTURE_MS) return fail(`attribute "time" is more than 24 h in the future`);
	if (timeMs < EARLIEST_TIME_MS) return fail(`attribute "time" is before 1970-01-01T00:00:00Z (a placeholder date or a clock that was never set)`);
	if (datacontenttype != null && datacontenttype !== "application/json") {
		return fail(`attribute "datacontenttype" must be "application/json"`);
	}
	if (data == null) return missing("data");
	if (!isPlainObject(data)) return fail(`attribute "data" must be a JSON object`);
	for (const key of Object.keys(input)) {
		if (KNOWN_ATTRIBUTES.has(key)) continue;
		if (!EXTENSION_NAME.test(key)) return fail(`unknown attribute "${showKey(key)}"`);
		const value = input[key];
		const t = typeof value;
		if (value != null && t !== "string" && t !== "boolean" && !(t === "number" && Number.isFinite(value))) {
			return fail(`extension attribute "${key}" must be a string, number or boolean`);
		}
	}

	const checked = validateEventData(type as EventType, data);
	if (!checked.ok) return fail(checked.reason);
	const event = {
		specversion: "1.0",
		id,
		source,
		type,
		subject,
		time,
		...(datacontenttype != null ? { datacontenttype } : {}),
		data: checked.data
	} as KnownCloudEvent;
	return { ok: true, event };
}

/**
 * Validates one event or a batch of 1..MAX_BATCH events, all of them: the result lists every invalid event
 * with its index (0 for a single event), or `index: -1` when the batch itself is unacceptable.
 */
export function validateEvents(input: unknown, opts: ValidateOptions = {}): BatchValidation {
	const now = opts.now ?? Date.now();
	if (!Array.isArray(input)) {
		const r = validateEvent(input, { now });
		return r.ok ? { ok: true, events: [r.event] } : { ok: false, errors: [{ index: 0, reason: r.reason }] };
	}
	if (input.length === 0) return { ok: false, errors: [{ index: -1, reason: "batch is empty" }] };
	if (input.length > MAX_BATCH) return { ok: false, errors: [{ index: -1, reason: `batch exceeds ${MAX_BATCH} events` }] };
	const events: KnownCloudEvent[] = [];
	const errors: { index: number; reason: string }[] = [];
	for (let i = 0; i < input.length; i++) {
		const r = validateEvent(input[i], { now });
		if (r.ok) events.push(r.event);
		else errors.push({ index: i, reason: r.reason });
	}
	return errors.length > 0 ? { ok: false, errors } : { ok: true, events };
}
