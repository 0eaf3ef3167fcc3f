// Click-stream log entries: merging of multi-line entries (pretty-printed JSON, stack traces), parsing of JSON-lines
// and nginx "combined" lines, and the rule deciding which entries are page views of an identified customer.
import { FORBIDDEN_KEYS, isPlainObject } from "./event-data.schemas.ts";
import { CUSTOMER_ID_PATTERN, parseDateTimeText } from "./field-mapping.ts";

export const LOG_FORMATS = ["json", "nginx"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LogEntry {
	text: string;
	/** Byte offset of the entry's first line in the file, and just past its last line end. */
	start: number;
	end: number;
	/** Set when the entry was cut at the size limit: it is dead-lettered, never parsed. */
	oversize?: boolean;
	/** Set when a line of the entry was not UTF-8 (`text` is its lossy decoding): dead-lettered, never parsed. */
	notUtf8?: boolean;
}

export interface MergerOptions {
	maxEntryChars?: number;
	maxLines?: number;
}

export const DEFAULT_MAX_ENTRY_CHARS = 64 * 1024;
export const DEFAULT_MAX_LINES = 500;

const NGINX_START = /^\S+ \S+ \S+ \[/;

/** Does this line begin a new entry? */
export function startsEntry(format: LogFormat, line: string): boolean {
	return format === "json" ? line.startsWith("{") : NGINX_START.test(line);
}

/**
 * Can this line continue the open entry? JSON: any line not starting with "{" (pretty-printed JSON, a stack trace
 * after the entry). nginx writes one line per request: only an indented line continues; anything else is an entry
 * of its own (and, if it is not a request line, malformed — never silently swallowed).
 */
export function continuesEntry(format: LogFormat, line: string): boolean {
	return format === "json" ? !line.startsWith("{") : /^\s/.test(line);
}

/**
 * Groups lines into entries: a line that starts an entry closes the previous one. The last entry stays open until
 * the next start line or `flush()` (the caller flushes when the file has been quiet for a while).
 */
export class EntryMerger {
	private readonly format: LogFormat;
	private readonly maxEntryChars: number;
	private readonly maxLines: number;
	private pending: { lines: string[]; chars: number; start: number; end: number; oversize: boolean; notUtf8: boolean } | null = null;

	constructor(format: LogFormat, opts: MergerOptions = {}) {
		this.format = format;
		this.maxEntryChars = opts.maxEntryChars ?? DEFAULT_MAX_ENTRY_CHARS;
		this.maxLines = opts.maxLines ?? DEFAULT_MAX_LINES;
	}

	/** Byte offset where the open entry starts (the safe resume point), or undefined when none is open. */
	get pendingStart(): number | undefined {
		return this.pending?.start;
	}

	/** Adds one line (without its line end) spanning bytes [start, end); returns the entries it completes. */
	push(line: string, start: number, end: number, notUtf8 = false): LogEntry[] {
		const out: LogEntry[] = [];
		const p = this.pending;
		// A continuation needs an open entry; one arriving without any is an entry of its own (and malformed).
		if (p === null || startsEntry(this.format, line) || !continuesEntry(this.format, line)) {
			if (p !== null) out.push(this.close());
			this.pending = { lines: [line], chars: line.length, start, end, oversize: line.length > this.maxEntryChars, notUtf8 };
			if (this.pending.oversize) this.pending.lines = [line.slice(0, this.maxEntryChars)];
			return out;
		}
		p.end = end;
		p.notUtf8 ||= notUtf8;
		if (p.oversize) return out;
		p.chars += line.length + 1;
		if (p.chars > this.maxEntryChars || p.lines.length >= this.maxLines) {
			p.oversize = true;
			return out;
		}
		p.lines.push(line);
		return out;
	}

	/** Closes the open entry, if any. */
	flush(): LogEntry[] {
		return this.pending === null ? [] : [this.close()];
	}

	private close(): LogEntry {
		const p = this.pending as NonNullable<typeof this.pending>;
		this.pending = null;
		return { text: p.lines.join("\n"), start: p.start, end: p.end, ...(p.oversize ? { oversize: true } : {}), ...(p.notUtf8 ? { notUtf8: true } : {}) };
	}
}

export interface PageView {
	kind: "view";
	customerId: string;
	url: string;
	timeMs: number;
	referrer?: string;
	sessionId?: string;
}

export type LogOutcome =
	| PageView
	/** Not a page view of an identified customer: counted, not dead-lettered. */
	| { kind: "skip"; reason: string }
	/** Cannot be read: dead-lettered with the reason. */
	| { kind: "malformed"; reason: string };

export interface InterpretOptions {
	/** Query parameter and cookie naming the customer in nginx lines. */
	customerParam: string;
}

const MONTHS: Record<string, number> = { Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11 };
// $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
// and optionally more quoted fields, the first of which may be "$http_cookie".
const QUOTED = String.raw`"((?:[^"\\]|\\.)*)"`;
const NGINX_COMBINED = new RegExp(String.raw`^(\S+) \S+ (\S+) \[([^\]]+)\] ${QUOTED} (\d{3}) (\d+|-) ${QUOTED} ${QUOTED}(?: ${QUOTED})?`);
const TIME_LOCAL = /^(\d{2})\/([A-Z][a-z]{2})\/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/;
const STATIC_ASSET = /\.(?:css|js|mjs|map|png|jpe?g|gif|svg|ico|webp|avif|woff2?|ttf|eot|otf|mp4|webm|txt|xml)$/i;
const PAGE_VIEW_TYPES: ReadonlySet<string> = new Set(["page_view", "pageview", "page.viewed", "crm.page.viewed", "view", "page"]);

export interface NginxLine {
	remoteAddr: string;
	timeMs: number;
	method: string;
	target: string;
	status: number;
	referrer: string;
	userAgent: string;
	cookie?: string;
}

/** `10/Oct/2026:13:55:36 -0700` → ms since epoch, or NaN. */
export function parseTimeLocal(s: string): number {
	const m = TIME_LOCAL.exec(s);
	if (!m || MONTHS[m[2]] === undefined) return NaN;
	const offsetMin = (m[7] === "-" ? -1 : 1) * (Number(m[8]) * 60 + Number(m[9]));
	const ms = Date.UTC(+m[3], MONTHS[m[2]], +m[1], +m[4], +m[5], +m[6]);
	const check = new Date(Date.UTC(+m[3], MONTHS[m[2]], +m[1]));
	if (check.getUTCDate() !== +m[1] || +m[4] > 23 || +m[5] > 59 || +m[6] > 60) return NaN;
	return ms - offsetMin * 60_000;
}

/** Parses an nginx "combined" line (extra trailing fields allowed), or returns null. */
export function parseNginxLine(line: string): NginxLine | null {
	const m = NGINX_COMBINED.exec(line);
	if (!m) return null;
	const timeMs = parseTimeLocal(m[3]);
	if (!Number.isFinite(timeMs)) return null;
	const request = m[4].split(" ");
	return {
		remoteAddr: m[1],
		timeMs,
		method: request.length >= 2 ? request[0] : "",
		target: request.length >= 2 ? request[1] : m[4],
		status: Number(m[5]),
		referrer: m[7] === "-" ? "" : m[7],
		userAgent: m[8],
		...(m[9] !== undefined && m[9] !== "-" ? { cookie: m[9] } : {})
	};
}

function queryParam(target: string, name: string): string | undefined {
	const q = target.indexOf("?");
	if (q === -1) return undefined;
	for (const pair of target.slice(q + 1).split("#")[0].split("&")) {
		const eq = pair.indexOf("=");
		if (eq === -1 || pair.slice(0, eq) !== name) continue;
		try {
			return decodeURIComponent(pair.slice(eq + 1).replace(/\+/g, " "));
		} catch {
			return pair.slice(eq + 1);
		}
	}
	return undefined;
}

function cookieValue(cookie: string | undefined, name: string): string | undefined {
	if (!cookie) return undefined;
	for (const part of cookie.split(";")) {
		const eq = part.indexOf("=");
		if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
	}
	return undefined;
}

function pathOf(target: string): string {
	return target.split(/[?#]/)[0];
}

function checkCustomerId(raw: string): string | { kind: "malformed"; reason: string } {
	const id = raw.trim();
	return CUSTOMER_ID_PATTERN.test(id) ? id : { kind: "malformed", reason: "customer id is not valid (1..128 letters, digits or ._:@-)" };
}

function interpretNginx(text: string, opts: InterpretOptions): LogOutcome {
	// Continuation lines of an nginx entry carry nothing we use; the first line is the request.
	const line = parseNginxLine(text.split("\n")[0]);
	if (line === null) return { kind: "malformed", reason: "not an nginx combined-format line" };
	const rawId = queryParam(line.target, opts.customerParam) ?? cookieValue(line.cookie, opts.customerParam);
	if (line.method !== "GET") return { kind: "skip", reason: "not a GET request" };
	if (line.status >= 400) return { kind: "skip", reason: "error status" };
	if (STATIC_ASSET.test(pathOf(line.target))) return { kind: "skip", reason: "static asset" };
	if (rawId === undefined || rawId.trim() === "") return { kind: "skip", reason: "anonymous" };
	const id = checkCustomerId(rawId);
	if (typeof id !== "string") return id;
	return { kind: "view", customerId: id, url: line.target, timeMs: line.timeMs, ...(line.referrer ? { referrer: line.referrer } : {}) };
}

function firstKey(obj: Record<string, unknown>, keys: readonly string[]): unknown {
	for (const k of keys) if (Object.hasOwn(obj, k) && obj[k] !== null && obj[k] !== undefined) return obj[k];
	return undefined;
}

const MAX_JSON_DEPTH = 32;

/** Why a parsed JSON value cannot be an entry — a forbidden key anywhere, or nesting too deep to look through — or undefined. */
function unsafeJson(value: unknown, depth: number): string | undefined {
	if (typeof value !== "object" || value === null) return undefined;
	// Deeper than we look is refused, not waved through: a prototype key could hide below.
	if (depth > MAX_JSON_DEPTH) return `JSON entry is nested deeper than ${MAX_JSON_DEPTH} levels`;
	if (Array.isArray(value)) {
		for (const v of value) {
			const r = unsafeJson(v, depth + 1);
			if (r !== undefined) return r;
		}
		return undefined;
	}
	for (const k of Object.keys(value)) {
		if (FORBIDDEN_KEYS.has(k)) return `JSON entry has forbidden key "${k}"`;
		const r = unsafeJson((value as Record<string, unknown>)[k], depth + 1);
		if (r !== undefined) return r;
	}
	return undefined;
}

function parseJsonEntry(text: string): { ok: true; obj: Record<string, unknown> } | { ok: false; reason: string } {
	let parsed: unknown;
	try {
		parsed = JSON.parse(text);
	} catch {
		// A JSON line followed by a stack trace: the first line alone is the entry, the rest its trace.
		const nl = text.indexOf("\n");
		try {
			if (nl === -1) throw new Error("single line");
			parsed = JSON.parse(text.slice(0, nl));
		} catch {
			return { ok: false, reason: "not valid JSON" };
		}
	}
	if (!isPlainObject(parsed)) return { ok: false, reason: "JSON entry is not an object" };
	const bad = unsafeJson(parsed, 0);
	if (bad !== undefined) return { ok: false, reason: bad };
	return { ok: true, obj: parsed };
}

/** Largest distance from the epoch a JS Date can hold (±100,000,000 days); beyond it `new Date(ms)` is invalid. */
const MAX_DATE_MS = 8.64e15;

function jsonTime(raw: unknown): number {
	if (typeof raw === "number" && Number.isFinite(raw)) {
		const ms = raw < 1e12 ? raw * 1000 : raw;
		// An epoch number no Date can hold (1e20) would make the event's time throw, wedging the tail on this line.
		return Math.abs(ms) <= MAX_DATE_MS ? ms : NaN;
	}
	if (typeof raw === "string") return parseDateTimeText(raw.trim());
	return NaN;
}

function optionalText(obj: Record<string, unknown>, keys: readonly string[], name: string): string | undefined | { kind: "malformed"; reason: string } {
	const v = firstKey(obj, keys);
	if (v === undefined || v === "") return undefined;
	return typeof v === "string" ? v : { kind: "malformed", reason: `${name} must be a string` };
}

function interpretJson(text: string): LogOutcome {
	const parsed = parseJsonEntry(text);
	if (!parsed.ok) return { kind: "malformed", reason: parsed.reason };
	const obj = parsed.obj;
	const type = firstKey(obj, ["type", "event"]);
	if (type !== undefined && !(typeof type === "string" && PAGE_VIEW_TYPES.has(type.toLowerCase()))) return { kind: "skip", reason: "not a page view" };
	const rawId = firstKey(obj, ["customerId", "customer_id", "cid"]);
	if (rawId === undefined || rawId === "") return { kind: "skip", reason: "anonymous" };
	if (typeof rawId !== "string" && typeof rawId !== "number") return { kind: "malformed", reason: "customerId must be a string" };
	const id = checkCustomerId(String(rawId));
	if (typeof id !== "string") return id;
	const url = optionalText(obj, ["url", "path", "page"], "url");
	if (typeof url === "object") return url;
	if (url === undefined) return { kind: "skip", reason: "no url" };
	const rawTime = firstKey(obj, ["time", "timestamp", "ts", "@timestamp"]);
	if (rawTime === undefined) return { kind: "malformed", reason: "no time field (time, timestamp, ts or @timestamp)" };
	const timeMs = jsonTime(rawTime);
	if (!Number.isFinite(timeMs)) return { kind: "malformed", reason: "time is not a date-time or epoch number" };
	const referrer = optionalText(obj, ["referrer", "referer"], "referrer");
	if (typeof referrer === "object") return referrer;
	const sessionId = optionalText(obj, ["sessionId", "session_id", "sid"], "sessionId");
	if (typeof sessionId === "object") return sessionId;
	return { kind: "view", customerId: id, url, timeMs, ...(referrer ? { referrer } : {}), ...(sessionId ? { sessionId } : {}) };
}

/** What one (merged) entry is: a page view of an identified customer, something to skip, or malformed input. */
export function interpretEntry(format: LogFormat, entry: LogEntry, opts: InterpretOptions): LogOutcome {
	if (entry.oversize) return { kind: "malformed", reason: "entry exceeds the size limit" };
	if (entry.notUtf8) return { kind: "malformed", reason: "entry is not valid UTF-8" };
	return format === "json" ? interpretJson(entry.text) : interpretNginx(entry.text, opts);
}
