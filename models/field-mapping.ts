// Source rows (ERP table rows, CSV records) → customer id, event time and typed fields: the mapping format, its
// validation, and the type coercion every tabular source shares. Rows are Maps, so a `__proto__` column is just a key.
import type { ProfileValue } from "./customer-state.ts";
import { FORBIDDEN_KEYS, MAP_KEY_PATTERN } from "./event-data.schemas.ts";

export const FIELD_TYPES = ["string", "number", "integer", "boolean", "date", "datetime"] as const;
export type FieldType = (typeof FIELD_TYPES)[number];

export interface FieldRule {
	column: string;
	/** Profile field (customer updates) or payload field (other event types). */
	field: string;
	type: FieldType;
	/** A row without this column's value is dead-lettered instead of clearing the field. */
	required: boolean;
	/** Boolean spellings, compared case-insensitively after trimming. */
	trueValues: string[];
	falseValues: string[];
	/** Longest accepted string (strings only); longer values fail the row rather than being cut. */
	maxLength: number;
	/** Numbers only: keep the magnitude (bank statements book returned debits as negative amounts). */
	absolute: boolean;
}

export interface RowMapping {
	id: { column: string; prefix: string };
	/** Column holding the row's change time; without it the source supplies one (file time, updated_at). */
	time?: { column: string };
	fields: FieldRule[];
	/** Columns not named in `fields` (nor id/time/excluded) become string fields of their own name. */
	passthrough: boolean;
	/** Cell texts meaning "no value" (after trimming); a null value clears the profile field. */
	nullValues: string[];
	/** Decimal separator of numeric texts; with "," a "." or space groups thousands (1.234,56). */
	decimal: "." | ",";
}

export const DEFAULT_NULL_VALUES = ["", "NULL", "null", "N/A", "n/a", "#N/A", "NaN"];
export const DEFAULT_TRUE_VALUES = ["true", "t", "yes", "y", "1", "on"];
export const DEFAULT_FALSE_VALUES = ["false", "f", "no", "n", "0", "off"];
export const DEFAULT_MAX_LENGTH = 512;
/** Customer ids as the envelope accepts them as `subject`. */
export const CUSTOMER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

export class MappingConfigError extends Error {
	readonly problems: string[];
	constructor(where: string, problems: string[]) {
		super(`invalid field mapping ${where}: ${problems.join("; ")}`);
		this.name = "MappingConfigError";
		this.problems = problems;
	}
}

function isObject(v: unknown): v is Record<string, unknown> {
	return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isStringArray(v: unknown): v is string[] {
	return Array.isArray(v) && v.every(x => typeof x === "string");
}

function checkKeys(obj: Record<string, unknown>, allowed: readonly string[], where: string, problems: string[]): void {
	for (const k of Object.keys(obj)) if (!allowed.includes(k)) problems.push(`${where}: unknown key "${k}" (allowed: ${allowed.join(", ")})`);
}

function isColumn(v: unknown): v is string {
	return typeof v === "string" && v.length > 0 && v.length <= 256;
}

/**
 * Validates a mapping JSON:
 * `{ id: { column, prefix? }, time?: { column }, fields?: [{ column, field, type, required?, trueValues?, falseValues?,
 * maxLength?, absolute? }], passthrough?, nullValues?, decimal? }`. Throws a MappingConfigError listing every problem.
 */
export function parseRowMapping(json: unknown, where: string): RowMapping {
	const problems: string[] = [];
	if (!isObject(json)) throw new MappingConfigError(where, ["must be a JSON object"]);
	checkKeys(json, ["id", "time", "fields", "passthrough", "nullValues", "decimal"], "mapping", problems);
	const id = json.id;
	let idColumn = "";
	let prefix = "";
	if (!isObject(id) || !isColumn(id.column)) problems.push(`id: must be { "column": "<customer id column>", "prefix"?: "…" }`);
	else {
		checkKeys(id, ["column", "prefix"], "id", problems);
		idColumn = id.column;
		if (id.prefix !== undefined) {
			if (typeof id.prefix !== "string" || (id.prefix !== "" && !CUSTOMER_ID_PATTERN.test(id.prefix))) problems.push("id.prefix: must be a string of letters, digits or ._:@-");
			else prefix = id.prefix;
		}
	}
	let time: RowMapping["time"];
	if (json.time !== undefined) {
		if (!isObject(json.time) || !isColumn(json.time.column)) problems.push(`time: must be { "column": "<change time column>" }`);
		else {
			checkKeys(json.time, ["column"], "time", problems);
			time = { column: json.time.column };
		}
	}
	const nullValues = json.nullValues === undefined ? DEFAULT_NULL_VALUES : json.nullValues;
	if (!isStringArray(nullValues)) problems.push("nullValues: must be an array of strings");
	const decimal = json.decimal ?? ".";
	if (decimal !== "." && decimal !== ",") problems.push(`decimal: must be "." or ","`);
	if (json.passthrough !== undefined && typeof json.passthrough !== "boolean") problems.push("passthrough: must be true or false");
	const fields: FieldRule[] = [];
	if (json.fields !== undefined && !Array.isArray(json.fields)) problems.push("fields: must be an array");
	const seen = new Set<string>();
	for (const [i, f] of (Array.isArray(json.fields) ? json.fields : []).entries()) {
		const at = `fields[${i}]`;
		if (!isObject(f)) {
			problems.push(`${at}: must be an object`);
			continue;
		}
		checkKeys(f, ["column", "field", "type", "required", "trueValues", "falseValues", "maxLength", "absolute"], at, problems);
		if (!isColumn(f.column)) problems.push(`${at}.column: must be a column name`);
		if (typeof f.field !== "string" || !MAP_KEY_PATTERN.test(f.field) || FORBIDDEN_KEYS.has(f.field)) {
			problems.push(`${at}.field: must be a field name (a letter, then letters, digits or _; at most 64), got ${JSON.stringify(f.field)}`);
		} else if (seen.has(f.field)) problems.push(`${at}.field: "${f.field}" is mapped twice`);
		else seen.add(f.field);
		if (!(FIELD_TYPES as readonly unknown[]).includes(f.type)) problems.push(`${at}.type: must be one of ${FIELD_TYPES.join(", ")}, got ${JSON.stringify(f.type)}`);
		for (const k of ["trueValues", "falseValues"] as const) {
			if (f[k] !== undefined && (!isStringArray(f[k]) || f[k].length === 0)) problems.push(`${at}.${k}: must be a non-empty array of strings`);
		}
		if (f.maxLength !== undefined && !(Number.isInteger(f.maxLength) && (f.maxLength as number) >= 1 && (f.maxLength as number) <= 4096)) {
			problems.push(`${at}.maxLength: must be an integer 1..4096`);
		}
		for (const k of ["required", "absolute"] as const) if (f[k] !== undefined && typeof f[k] !== "boolean") problems.push(`${at}.${k}: must be true or false`);
		fields.push({
			column: f.column as string,
			field: f.field as string,
			type: f.type as FieldType,
			required: f.required === true,
			trueValues: ((f.trueValues as string[] | undefined) ?? DEFAULT_TRUE_VALUES).map(v => v.trim().toLowerCase()),
			falseValues: ((f.falseValues as string[] | undefined) ?? DEFAULT_FALSE_VALUES).map(v => v.trim().toLowerCase()),
			maxLength: (f.maxLength as number | undefined) ?? DEFAULT_MAX_LENGTH,
			absolute: f.absolute === true
		});
	}
	if (fields.length === 0 && json.passthrough !== true) problems.push("maps nothing: give fields, or passthrough: true");
	if (problems.length > 0) throw new MappingConfigError(where, problems);
	return {
		id: { column: idColumn, prefix },
		...(time ? { time } : {}),
		fields,
		passthrough: json.passthrough === true,
		nullValues: (nullValues as string[]).map(v => v.trim()),
		decimal: decimal as "." | ","
	};
}

/** A feature of the churn model's mapping (ml/features.ts), as far as the import needs it. */
export interface ChurnFeatureLike {
	type: "numeric" | "boolean" | "categorical";
	column: string;
	field: string;
	trueValues?: string[];
	falseValues?: string[];
	missing?: { values?: string[] };
}

/**
 * Field rules that store each churn-model feature column under the profile field the model reads, typed the way its
 * feature extraction parses it; the model's "missing" spellings are added to `nullValues` (a cleared field is a
 * missing feature). Counter features (`$counters.x`) come from events, not files, and are left out.
 */
export function fieldsFromChurnFeatures(features: ChurnFeatureLike[]): { fields: FieldRule[]; nullValues: string[] } {
	const fields: FieldRule[] = [];
	const nullValues = new Set(DEFAULT_NULL_VALUES);
	for (const f of features) {
		if (f.field.startsWith("$")) continue;
		for (const v of f.missing?.values ?? []) nullValues.add(v.trim());
		fields.push({
			column: f.column,
			field: f.field,
			type: f.type === "numeric" ? "number" : f.type === "boolean" ? "boolean" : "string",
			required: false,
			trueValues: (f.trueValues ?? DEFAULT_TRUE_VALUES).map(v => v.trim().toLowerCase()),
			falseValues: (f.falseValues ?? DEFAULT_FALSE_VALUES).map(v => v.trim().toLowerCase()),
			maxLength: DEFAULT_MAX_LENGTH,
			absolute: false
		});
	}
	return { fields, nullValues: [...nullValues] };
}

/** A failed coercion; `reason` names the column and (shortened) value. */
export class CoercionError {
	readonly reason: string;
	constructor(reason: string) {
		this.reason = reason;
	}
}

/** Shortens a value for a reason text. */
export function showValue(v: unknown): string {
	let s: string;
	if (typeof v === "string") s = v;
	else if (v instanceof Date) s = Number.isNaN(v.getTime()) ? "Invalid Date" : v.toISOString();
	else if (typeof v === "bigint") s = `${v}`;
	else {
		try {
			s = JSON.stringify(v) ?? String(v);
		} catch {
			s = String(v);
		}
	}
	return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
}

const NUMBER_TEXT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DOTTED_DATE = /^(\d{1,2})\.(\d{1,2})\.(\d{4})$/;
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

function nullish(raw: unknown, mapping: Pick<RowMapping, "nullValues">): boolean {
	if (raw === null || raw === undefined) return true;
	return typeof raw === "string" && mapping.nullValues.includes(raw.trim());
}

function validDay(y: number, m: number, d: number): boolean {
	const t = new Date(Date.UTC(y, m - 1, d));
	return t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 && t.getUTCDate() === d;
}

/** Milliseconds since epoch of a date or date-time text (no offset = UTC), or NaN. */
export function parseDateTimeText(s: string): number {
	let m = ISO_DATE.exec(s);
	if (m) return validDay(+m[1], +m[2], +m[3]) ? Date.UTC(+m[1], +m[2] - 1, +m[3]) : NaN;
	m = DOTTED_DATE.exec(s);
	if (m) return validDay(+m[3], +m[2], +m[1]) ? Date.UTC(+m[3], +m[2] - 1, +m[1]) : NaN;
	m = DATE_TIME.exec(s);
	if (!m) return NaN;
	const [y, mo, d, h, mi, sec] = [+m[1], +m[2], +m[3], +m[4], +m[5], m[6] === undefined ? 0 : +m[6]];
	if (!validDay(y, mo, d) || h > 23 || mi > 59 || sec > 59) return NaN;
	const ms = m[7] === undefined ? 0 : +`${m[7]}00`.slice(0, 3);
	let offsetMin = 0;
	const off = m[8];
	if (off !== undefined && off !== "Z" && off !== "z") {
		const digits = off.slice(1).replace(":", "");
		const oh = +digits.slice(0, 2);
		const om = digits.length > 2 ? +digits.slice(2) : 0;
		if (oh > 23 || om > 59) return NaN;
		offsetMin = (off[0] === "-" ? -1 : 1) * (oh * 60 + om);
	}
	return Date.UTC(y, mo - 1, d, h, mi, sec, ms) - offsetMin * 60_000;
}

function parseNumberText(s: string, decimal: "." | ","): number {
	let t = s.replace(/[\s\u00a0]/g, "");
	if (decimal === ",") t = t.replace(/\.(?=\d{3}(\D|$))/g, "").replace(",", ".");
	return NUMBER_TEXT.test(t) ? Number(t) : NaN;
}

/** Coerces one raw value (a CSV text or a database value) to the rule's type; null = no value. */
export function coerceValue(raw: unknown, rule: FieldRule, mapping: Pick<RowMapping, "nullValues" | "decimal">): ProfileValue | null | CoercionError {
	if (nullish(raw, mapping)) return null;
	const bad = (what: string) => new CoercionError(`column "${rule.column}": ${showValue(raw)} is not ${what}`);
	const text = typeof raw === "string" ? raw.trim() : undefined;
	switch (rule.type) {
		case "string": {
			let s: string;
			if (text !== undefined) s = text;
			else if (typeof raw === "number" || typeof raw === "boolean" || typeof raw === "bigint") s = String(raw);
			else if (raw instanceof Date && !Number.isNaN(raw.getTime())) s = raw.toISOString();
			else return bad("a text");
			if (s.length > rule.maxLength) return new CoercionError(`column "${rule.column}": value is longer than ${rule.maxLength} characters (${s.length})`);
			return s;
		}
		case "number":
		case "integer": {
			let n: number;
			if (typeof raw === "number") n = raw;
			else if (typeof raw === "bigint") n = Number(raw);
			else if (text !== undefined) n = parseNumberText(text, mapping.decimal);
			else return bad("a number");
			if (!Number.isFinite(n)) return bad("a number");
			if (rule.type === "integer" && !Number.isSafeInteger(n)) return bad("an integer");
			return rule.absolute ? Math.abs(n) : n;
		}
		case "boolean": {
			if (typeof raw === "boolean") return raw;
			if (raw === 1 || raw === 0) return raw === 1;
			if (text === undefined) return bad("a boolean");
			const t = text.toLowerCase();
			if (rule.trueValues.includes(t)) return true;
			if (rule.falseValues.includes(t)) return false;
			return bad(`a boolean (${rule.trueValues.join("/")} or ${rule.falseValues.join("/")})`);
		}
		case "date":
		case "datetime": {
			let ms: number;
			if (raw instanceof Date) ms = raw.getTime();
			else if (text !== undefined) ms = parseDateTimeText(text);
			else return bad(rule.type === "date" ? "a date" : "a date-time");
			if (!Number.isFinite(ms)) return bad(rule.type === "date" ? "a date (YYYY-MM-DD or DD.MM.YYYY)" : "a date-time (RFC 3339 or YYYY-MM-DD HH:MM:SS)");
			const iso = new Date(ms).toISOString();
			return rule.type === "date" ? iso.slice(0, 10) : iso;
		}
	}
}

export type MappedRow =
	| { ok: true; customerId: string; values: Record<string, ProfileValue | null>; timeMs?: number; ignoredColumns: string[] }
	| { ok: false; reason: string };

export interface MapRowOptions {
	/** Columns never passed through (the source's own bookkeeping: primary key, updated_at). */
	exclude?: ReadonlySet<string>;
}

function passthroughValue(raw: unknown, mapping: RowMapping): ProfileValue | null | undefined {
	if (nullish(raw, mapping)) return null;
	if (typeof raw === "string") return raw.trim();
	if (typeof raw === "boolean") return raw;
	if (typeof raw === "number") return Number.isFinite(raw) ? raw : undefined;
	if (typeof raw === "bigint") return Number.isSafeInteger(Number(raw)) ? Number(raw) : String(raw);
	if (raw instanceof Date) return Number.isNaN(raw.getTime()) ? undefined : raw.toISOString();
	return undefined;
}

/**
 * Maps one row. Fails (for a dead letter) on a missing or malformed customer id, a value that does not coerce, or a
 * missing required value; passthrough columns that cannot be field names (`__proto__`, `first name`) or values that
 * are not scalars are skipped and listed in `ignoredColumns`.
 */
export function mapRow(mapping: RowMapping, row: ReadonlyMap<string, unknown>, opts: MapRowOptions = {}): MappedRow {
	const rawId = row.get(mapping.id.column);
	const idText = typeof rawId === "string" ? rawId.trim() : typeof rawId === "number" || typeof rawId === "bigint" ? String(rawId) : undefined;
	if (rawId === undefined || rawId === null || idText === "" || (idText !== undefined && mapping.nullValues.includes(idText))) {
		return { ok: false, reason: `missing customer id (column "${mapping.id.column}" is empty)` };
	}
	if (idText === undefined) return { ok: false, reason: `customer id in column "${mapping.id.column}" is not a text or number` };
	const customerId = mapping.id.prefix + idText;
	if (!CUSTOMER_ID_PATTERN.test(customerId)) {
		return { ok: false, reason: `customer id ${showValue(customerId)} is not valid (1..128 letters, digits or ._:@-, starting with a letter or digit)` };
	}
	let timeMs: number | undefined;
	if (mapping.time) {
		const rawTime = row.get(mapping.time.column);
		if (nullish(rawTime, mapping)) return { ok: false, reason: `missing change time (column "${mapping.time.column}" is empty)` };
		const t = rawTime instanceof Date ? rawTime.getTime() : typeof rawTime === "string" ? parseDateTimeText(rawTime.trim()) : NaN;
		if (!Number.isFinite(t)) return { ok: false, reason: `column "${mapping.time.column}": ${showValue(rawTime)} is not a date-time` };
		timeMs = t;
	}
	const values: Record<string, ProfileValue | null> = Object.create(null) as Record<string, ProfileValue | null>;
	const used = new Set<string>([mapping.id.column]);
	if (mapping.time) used.add(mapping.time.column);
	for (const rule of mapping.fields) {
		used.add(rule.column);
		if (!row.has(rule.column)) {
			if (rule.required) return { ok: false, reason: `missing required column "${rule.column}"` };
			continue;
		}
		const v = coerceValue(row.get(rule.column), rule, mapping);
		if (v instanceof CoercionError) return { ok: false, reason: v.reason };
		if (v === null && rule.required) return { ok: false, reason: `missing required value in column "${rule.column}"` };
		values[rule.field] = v;
	}
	const ignoredColumns: string[] = [];
	if (mapping.passthrough) {
		for (const [column, raw] of row) {
			if (used.has(column) || opts.exclude?.has(column)) continue;
			if (!MAP_KEY_PATTERN.test(column) || FORBIDDEN_KEYS.has(column)) {
				ignoredColumns.push(column);
				continue;
			}
			const v = passthroughValue(raw, mapping);
			if (v === undefined) {
				ignoredColumns.push(column);
				continue;
			}
			if (typeof v === "string" && v.length > DEFAULT_MAX_LENGTH) {
				return { ok: false, reason: `column "${column}": value is longer than ${DEFAULT_MAX_LENGTH} characters (${v.length})` };
			}
			values[column] = v;
		}
	}
	// A plain object from here on: the validator and JSON expect one, and no forbidden key can be in it.
	return { ok: true, customerId, values: { ...values }, ...(timeMs !== undefined ? { timeMs } : {}), ignoredColumns };
}

/** A short stable text for a mapping, so an event id can change when the mapping does (a full resync re-applies). */
export function mappingFingerprint(mapping: RowMapping): string {
	return JSON.stringify(mapping);
}
