// Payload (`data`) schema of each CloudEvent type: one declarative table that both validates the payload and
// yields its TypeScript type, so the two cannot drift apart (STYLE: derive the types from the validator).
import type { CloudEvent, EventType } from "./cloud-event.ts";
import type { ProfileValue } from "./customer-state.ts";
import { TICKET_PRIORITIES } from "./entities/ticket.entity.ts";

export const ORDER_STATUSES = ["CREATED", "PAID", "SHIPPED", "DELIVERED", "CANCELLED", "RETURNED"] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];
export const INTERACTION_CHANNELS = ["email", "phone", "chat", "meeting", "social"] as const;
export type InteractionChannel = (typeof INTERACTION_CHANNELS)[number];
export const INTERACTION_DIRECTIONS = ["inbound", "outbound"] as const;
export type InteractionDirection = (typeof INTERACTION_DIRECTIONS)[number];

/** Own keys that could reach an object's prototype when copied or merged; rejected everywhere in input. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

/** Keys of the free-form maps (`profile`, `metrics`). */
export const MAP_KEY_PATTERN = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const CURRENCY_PATTERN = /^[A-Z]{3}$/;
// Deliberately loose: one @, no spaces, a dot in the domain. Real validation is a confirmation mail.
const EMAIL_PATTERN = /^[^\s@]+@[^\s@.]+(?:\.[^\s@.]+)+$/;
const PHONE_PATTERN = /^[0-9 +()-]{1,32}$/;
const DIGIT_PATTERN = /[0-9]/;

/**
 * A failed check. `reason` is a predicate ("must be …") the caller prefixes with the field's path; `subpath`
 * names where below that field it failed (".email"). Only ever allocated on the failure path.
 */
export class Invalid {
	readonly reason: string;
	readonly subpath: string;
	/** Set when the failure is a forbidden (prototype) key: reported with its own code. */
	readonly forbiddenKey: boolean;
	constructor(reason: string, subpath = "", forbiddenKey = false) {
		this.reason = reason;
		this.subpath = subpath;
		this.forbiddenKey = forbiddenKey;
	}

	/** The same failure one level further up: `subpath` is prefixed with the step taken. */
	under(step: string): Invalid {
		return new Invalid(this.reason, step + this.subpath, this.forbiddenKey);
	}
}

/** A JSON Schema (draft 2020-12) fragment: what each check publishes about itself (see models/published-schemas.ts). */
export type JsonSchema = { readonly [keyword: string]: unknown };

/**
 * Checks one value (never `undefined`) and returns it, possibly as a fresh copy, or an `Invalid`. Each check
 * carries the JSON Schema of what it accepts, so the published schemas come from this table and cannot drift.
 */
export type Check<T> = ((value: unknown) => T | Invalid) & { readonly schema: JsonSchema };

function described<T>(check: (value: unknown) => T | Invalid, schema: JsonSchema): Check<T> {
	return Object.assign(check, { schema });
}

interface Field<T, O extends boolean> {
	readonly optional: O;
	readonly check: Check<T>;
}

type Shape = Record<string, Field<unknown, boolean>>;
type Simplify<T> = { [K in keyof T]: T[K] } & {};
type FieldType<F> = F extends Field<infer T, boolean> ? T : never;
/** The payload type a shape describes: required fields as is, optional ones with `?`. */
export type Infer<S extends Shape> = Simplify<
	{ -readonly [K in keyof S as S[K]["optional"] extends true ? never : K]: FieldType<S[K]> } &
	{ -readonly [K in keyof S as S[K]["optional"] extends true ? K : never]?: FieldType<S[K]> }
>;

export type DataResult<T> = { ok: true; data: T } | { ok: false; reason: string };
/** Validates an event's `data`; carries the JSON Schema of what it accepts. */
export type DataValidator<T> = ((data: unknown) => DataResult<T>) & { readonly schema: JsonSchema };

export function isPlainObject(value: unknown): value is Record<string, unknown> {
	if (typeof value !== "object" || value === null) return false;
	const proto = Object.getPrototypeOf(value);
	return proto === Object.prototype || proto === null;
}

/** Keeps reasons short even when an attacker sends a megabyte-long key. */
export function showKey(key: string): string {
	return key.length > 64 ? `${key.slice(0, 64)}…` : key;
}

function required<T>(check: Check<T>): Field<T, false> {
	return { optional: false, check };
}

function optional<T>(check: Check<T>): Field<T, true> {
	return { optional: true, check };
}

function str(min: number, max: number): Check<string> {
	const reason = min > 0 ? `must be a string of ${min}..${max} characters` : `must be a string of at most ${max} characters`;
	return described(
		value => typeof value === "string" && value.length >= min && value.length <= max ? value : new Invalid(reason),
		{ type: "string", ...(min > 0 ? { minLength: min } : {}), maxLength: max }
	);
}

function matching(pattern: RegExp, reason: string, format?: string): Check<string> {
	return described(
		value => typeof value === "string" && pattern.test(value) ? value : new Invalid(reason),
		{ type: "string", pattern: pattern.source, ...(format ? { format } : {}) }
	);
}

function oneOf<const V extends readonly string[]>(values: V): Check<V[number]> {
	const allowed: ReadonlySet<unknown> = new Set(values);
	const reason = `must be one of ${values.join(", ")}`;
	return described(value => allowed.has(value) ? value as V[number] : new Invalid(reason), { type: "string", enum: [...values] });
}

function num(min: number, max: number, reason: string): Check<number> {
	// The comparisons are false for NaN; ±Infinity is excluded by isFinite (JSON has neither).
	return described(
		value => typeof value === "number" && Number.isFinite(value) && value >= min && value <= max ? value : new Invalid(reason),
		{ type: "number", ...(Number.isFinite(min) ? { minimum: min } : {}), ...(Number.isFinite(max) ? { maximum: max } : {}) }
	);
}

/** The check, or null (which the profile reads as "clear this field"). */
function orNull<T>(check: Check<T>): Check<T | null> {
	return described(value => (value === null ? null : check(value)), { anyOf: [check.schema, { type: "null" }] });
}

const currency = matching(CURRENCY_PATTERN, "must be a 3-letter upper-case currency code (ISO 4217, e.g. EUR)");
const id128 = str(1, 128);

/** A free-form map with bounded size and key shape: values checked by `value`, or by `known[key]` for those keys. */
function map<T>(minKeys: number, maxKeys: number, valueCheck: Check<T>, known: Readonly<Record<string, Check<T>>> = {}): Check<Record<string, T>> {
	const notMap = new Invalid(`must be an object with ${minKeys}..${maxKeys} fields`);
	const knownChecks: ReadonlyMap<string, Check<T>> = new Map(Object.entries(known));
	const entry = (key: string, v: unknown): T | Invalid => (knownChecks.get(key) ?? valueCheck)(v);
	const schema: JsonSchema = {
		type: "object", minProperties: minKeys, maxProperties: maxKeys,
		propertyNames: { pattern: MAP_KEY_PATTERN.source, not: { enum: [...FORBIDDEN_KEYS] } },
		...(knownChecks.size > 0 ? { properties: Object.fromEntries([...knownChecks].map(([k, c]) => [k, c.schema])) } : {}),
		additionalProperties: valueCheck.schema
	};
	return described(mapValue, schema);
	function mapValue(value: unknown): Record<string, T> | Invalid {
		if (!isPlainObject(value)) return notMap;
		const out: Record<string, T> = {};
		let count = 0;
		for (const key of Object.keys(value)) {
			const v = value[key];
			if (v === undefined) continue; // absent, as JSON.stringify would have it
			if (!MAP_KEY_PATTERN.test(key) || FORBIDDEN_KEYS.has(key)) {
				return new Invalid(`has an invalid field name "${showKey(key)}" (a letter, then letters, digits or _; at most 64)`);
			}
			if (++count > maxKeys) return notMap;
			const r = entry(key, v);
			if (r instanceof Invalid) return r.under(`.${key}`);
			out[key] = r;
		}
		return count < minKeys ? notMap : out;
	}
}

/** A payload object with exactly these fields: unknown ones are rejected, not dropped, so typos surface. */
function object<S extends Shape>(shape: S): DataValidator<Infer<S>> {
	const names = Object.keys(shape);
	const fields = names.map(name => shape[name]);
	const known: ReadonlySet<string> = new Set(names);
	const schema: JsonSchema = {
		type: "object",
		properties: Object.fromEntries(names.map((n, i) => [n, fields[i].check.schema])),
		required: names.filter((_, i) => !fields[i].optional),
		additionalProperties: false
	};
	return described(data => {
		if (!isPlainObject(data)) return { ok: false, reason: "data must be a JSON object" };
		for (const key of Object.keys(data)) {
			if (!known.has(key) && data[key] !== undefined) return { ok: false, reason: `unknown field data.${showKey(key)}` };
		}
		const out: Record<string, unknown> = {};
		for (let i = 0; i < names.length; i++) {
			const name = names[i];
			const value = data[name];
			if (value === undefined) {
				if (!fields[i].optional) return { ok: false, reason: `missing required field data.${name}` };
				continue;
			}
			const r = fields[i].check(value);
			if (r instanceof Invalid) return { ok: false, reason: `data.${name}${r.subpath} ${r.reason}` };
			out[name] = r;
		}
		return { ok: true, data: out as Infer<S> };
	}, schema) as DataValidator<Infer<S>>;
}

const profileString = str(0, 512);
const profileValue: Check<ProfileValue | null> = described(value => {
	switch (typeof value) {
		case "string": return profileString(value);
		case "number": return Number.isFinite(value) ? value : new Invalid("must be a finite number");
		case "boolean": return value;
		default: return value === null ? null : new Invalid("must be a string, number, boolean or null");
	}
}, { anyOf: [profileString.schema, { type: "number" }, { type: "boolean" }, { type: "null" }] });
const email = matching(EMAIL_PATTERN, "must be an email address", "email");
const phone: Check<string> = described(
	value => typeof value === "string" && PHONE_PATTERN.test(value) && DIGIT_PATTERN.test(value)
		? value
		: new Invalid("must be a phone number of at most 32 digits, spaces and +-()"),
	{ type: "string", allOf: [{ pattern: PHONE_PATTERN.source }, { pattern: DIGIT_PATTERN.source }] }
);
const name = str(0, 512);
// Typed checks for the profile fields other parts rely on; null always means "clear the field".
const KNOWN_PROFILE_FIELDS = { email: orNull(email), phone: orNull(phone), name: orNull(name) };

const metricValue = num(-Infinity, Infinity, "must be a finite number");

const SCHEMAS = {
	"crm.customer.updated": object({
		profile: required(map<ProfileValue | null>(1, 64, profileValue, KNOWN_PROFILE_FIELDS))
	}),
	"crm.order.status_changed": object({
		orderId: required(id128),
		newStatus: required(oneOf(ORDER_STATUSES)),
		oldStatus: optional(oneOf(ORDER_STATUSES)),
		amount: optional(num(0, Infinity, "must be a finite number >= 0")),
		currency: optional(currency)
	}),
	"crm.payment.failed": object({
		paymentId: required(id128),
		amount: required(num(0, Infinity, "must be a finite number >= 0")),
		currency: optional(currency),
		reason: optional(str(0, 256))
	}),
	"crm.interaction.logged": object({
		interactionId: required(id128),
		channel: required(oneOf(INTERACTION_CHANNELS)),
		sentiment: optional(num(-1, 1, "must be a number from -1 to 1")),
		text: optional(str(0, 4096)),
		direction: optional(oneOf(INTERACTION_DIRECTIONS))
	}),
	"crm.ticket.opened": object({
		ticketId: required(id128),
		priority: required(oneOf(TICKET_PRIORITIES)),
		category: required(str(1, 64)),
		subject: optional(str(0, 256))
	}),
	"crm.ticket.resolved": object({
		ticketId: required(id128)
	}),
	"crm.device.telemetry": object({
		deviceId: required(id128),
		metrics: required(map(1, 32, metricValue))
	}),
	"crm.page.viewed": object({
		url: required(str(1, 2048)),
		sessionId: optional(id128),
		referrer: optional(str(0, 2048))
	}),
	// A scraped competitor price observation relevant to the customer (its segment, its products).
	"crm.market.signal": object({
		competitor: required(str(1, 128)),
		product: required(str(1, 128)),
		price: required(num(0, Infinity, "must be a finite number >= 0")),
		currency: required(currency),
		segment: optional(str(1, 64)),
		url: optional(str(1, 2048))
	})
} satisfies Record<EventType, DataValidator<unknown>>;

type Validated<V> = V extends DataValidator<infer T> ? T : never;

/** The payload type of each event type. */
export type EventDataMap = { [T in EventType]: Validated<(typeof SCHEMAS)[T]> };

export type CustomerUpdatedData = EventDataMap["crm.customer.updated"];
export type OrderStatusChangedData = EventDataMap["crm.order.status_changed"];
export type PaymentFailedData = EventDataMap["crm.payment.failed"];
export type InteractionLoggedData = EventDataMap["crm.interaction.logged"];
export type TicketOpenedData = EventDataMap["crm.ticket.opened"];
export type TicketResolvedData = EventDataMap["crm.ticket.resolved"];
export type DeviceTelemetryData = EventDataMap["crm.device.telemetry"];
export type PageViewedData = EventDataMap["crm.page.viewed"];
export type MarketSignalData = EventDataMap["crm.market.signal"];

/** A validated event whose `data` type follows from its `type`: narrow with `if (e.type === "crm.…")`. */
export type KnownCloudEvent = { [T in EventType]: CloudEvent<T, EventDataMap[T]> }[EventType];

export const DATA_SCHEMAS: { readonly [T in EventType]: DataValidator<EventDataMap[T]> } = SCHEMAS;

/**
 * Validates the payload of an event of a known type and returns a fresh copy holding only the schema's fields.
 * Does not look for deep nesting or prototype keys outside the maps: `validateEvent` does that for the whole input.
 */
export function validateEventData<T extends EventType>(type: T, data: unknown): DataResult<EventDataMap[T]> {
	return DATA_SCHEMAS[type](data);
}
