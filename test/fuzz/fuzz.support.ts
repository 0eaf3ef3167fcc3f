// Shared by the fuzz suites: the seed every property runs with (printed, and replayed with FUZZ_SEED), a hostile-input
// corpus that every source feeds through its own transport, a watch over the customers that no bad input may change,
// and a raw HTTP client for requests fetch() refuses to send (CR/LF in header values).
import assert from "node:assert/strict";
import { connect } from "node:net";
import type { Parameters as FcParameters } from "fast-check";
import type { ServiceBroker } from "moleculer";

/**
 * One seed per test process: FUZZ_SEED replays a failure, otherwise a fresh one each run (printed at the start of
 * each suite, and fast-check's failure message repeats it with the shrunk counterexample's path).
 */
export const FUZZ_SEED: number = (() => {
	const raw = process.env.FUZZ_SEED;
	if (raw !== undefined && raw !== "") {
		const n = Number(raw);
		if (!Number.isSafeInteger(n)) throw new Error(`FUZZ_SEED must be an integer, got "${raw}"`);
		return n | 0;
	}
	return (Math.random() * 2 ** 31) | 0;
})();

/** FUZZ_RUNS scales every property's run count (e.g. FUZZ_RUNS=10 for a long local session). */
const RUNS_SCALE = (() => {
	const n = Number(process.env.FUZZ_RUNS ?? "1");
	return Number.isFinite(n) && n > 0 ? n : 1;
})();

/**
 * fast-check parameters: the process seed, a modest run count, and the counterexample printed on failure. Runs and
 * shrinking stop after `timeLimitMs` (counted as a failure), so a property that fails over HTTP reports in seconds
 * instead of shrinking for minutes.
 */
export function fcParams<T>(numRuns: number, timeLimitMs = 20_000): FcParameters<T> {
	return {
		seed: FUZZ_SEED, numRuns: Math.max(1, Math.round(numRuns * RUNS_SCALE)), verbose: 1,
		interruptAfterTimeLimit: timeLimitMs * RUNS_SCALE, markInterruptAsFailure: true, maxSkipsPerRun: 10
	};
}

/** The line each fuzz file prints first, so any failure in its output can be replayed. */
export function seedBanner(file: string): string {
	return `fuzz seed ${FUZZ_SEED} — replay with: FUZZ_SEED=${FUZZ_SEED} node --test ${file}`;
}

export const FORBIDDEN = ["__proto__", "constructor", "prototype"] as const;

/** JSON text of `value` with the member `"<key>": <inner>` added to the object at `path` (created where missing). */
export function withKeyAt(value: Record<string, unknown>, path: readonly string[], key: string, inner: unknown = { polluted: true }): string {
	const marker = "__FUZZ_MARKER__";
	const copy = structuredClone(value);
	let at: Record<string, unknown> = copy;
	for (const p of path) {
		const next = at[p];
		if (typeof next !== "object" || next === null || Array.isArray(next)) at[p] = {};
		at = at[p] as Record<string, unknown>;
	}
	// JSON.stringify drops nothing named __proto__ when it is an own key, but an object literal would set the
	// prototype instead: splice the member into the text.
	at[marker] = 0;
	const text = JSON.stringify(copy);
	return text.replace(`"${marker}":0`, `${JSON.stringify(key)}:${JSON.stringify(inner)}`);
}

/** Every object path of a JSON value (the root included), for "at every depth". */
export function objectPaths(value: unknown, prefix: string[] = []): string[][] {
	if (typeof value !== "object" || value === null || Array.isArray(value)) return [];
	const out: string[][] = [prefix];
	for (const [k, v] of Object.entries(value)) out.push(...objectPaths(v, [...prefix, k]));
	return out;
}

/** `{"a":{"a":…1…}}` nested `depth` levels, as text (no recursion: JSON.stringify would overflow the stack first). */
export function nestedText(depth: number, leaf = "1", key = "a"): string {
	return `{"${key}":`.repeat(depth) + leaf + "}".repeat(depth);
}

export function nestedArrayText(depth: number): string {
	return "[".repeat(depth) + "]".repeat(depth);
}

/** Byte sequences that are not UTF-8: a lone continuation byte, an overlong "/", a surrogate half, 0xFF, a cut sequence. */
export const INVALID_UTF8: ReadonlyArray<[string, Buffer]> = [
	["lone continuation byte", Buffer.from([0x80])],
	["overlong encoding of '/'", Buffer.from([0xc0, 0xaf])],
	["encoded UTF-16 surrogate", Buffer.from([0xed, 0xa0, 0x80])],
	["0xFF byte", Buffer.from([0xff])],
	["truncated 3-byte sequence", Buffer.from([0xe2, 0x82])],
	["code point above U+10FFFF", Buffer.from([0xf4, 0x90, 0x80, 0x80])]
];

/** `text` with `bad` spliced in at a string position that lies inside a JSON string value (so only the bytes are wrong). */
export function spliceIntoString(text: string, needle: string, bad: Buffer): Buffer {
	const at = text.indexOf(needle);
	assert.ok(at >= 0, `needle ${needle} not in ${text}`);
	const cut = at + needle.length - 1; // before the closing quote
	return Buffer.concat([Buffer.from(text.slice(0, cut)), bad, Buffer.from(text.slice(cut))]);
}

/** Times every transport must refuse as an event time: far future, before 1970, impossible dates, no offset, not a string. */
export function hostileTimes(nowMs = Date.now()): Array<[string, unknown]> {
	return [
		["25 h in the future", new Date(nowMs + 25 * 3600_000).toISOString()],
		["year 9999", "9999-12-31T23:59:59Z"],
		["expanded year", "+275760-09-13T00:00:00Z"],
		["year 0001 (a placeholder date)", "0001-01-01T00:00:00Z"],
		["one second before 1970", "1969-12-31T23:59:59Z"],
		["year 0000", "0000-01-01T00:00:00Z"],
		["February 30", "2026-02-30T10:00:00Z"],
		["month 13", "2026-13-01T10:00:00Z"],
		["hour 24", "2026-01-01T24:00:00Z"],
		["offset +24:00", "2026-01-01T10:00:00+24:00"],
		["no offset", "2026-01-01T10:00:00"],
		["date only", "2026-01-01"],
		["ten fraction digits", "2026-01-01T10:00:00.1234567890Z"],
		["unix seconds as a number", 1_767_225_600],
		["unix seconds as a string", "1767225600"],
		["NaN as a string", "NaN"],
		["empty", ""],
		["an array", ["2026-01-01T10:00:00Z"]],
		["an object", { $date: "2026-01-01T10:00:00Z" }]
	];
}

/** Numbers in the forms a JSON transport can carry that are not finite numbers, or not numbers at all. */
export const NON_NUMBERS: ReadonlyArray<[string, string]> = [
	["1e999 (parses to Infinity)", "1e999"],
	["-1e999 (parses to -Infinity)", "-1e999"],
	["a number as a string", "\"42\""],
	["\"NaN\"", "\"NaN\""],
	["\"Infinity\"", "\"Infinity\""],
	["null", "null"],
	["true", "true"],
	["an array", "[1]"],
	["an object", "{\"value\":1}"]
];

export interface CustomerView {
	version: number;
	risk: { score: number };
}

/**
 * What every customer looks like now: id → version and risk score. Any applied event bumps its customer's version,
 * and a new customer is a new key, so two equal snapshots mean no input changed any customer.
 */
export async function customerSnapshot(broker: ServiceBroker): Promise<Map<string, string>> {
	const rows = await broker.call<Array<{ id: string }>, unknown>("customers.listByRisk", { riskAbove: -1, limit: 1000 });
	assert.ok(rows.length < 1000, "the snapshot sees every customer");
	const out = new Map<string, string>();
	for (const { id } of rows) {
		const c = await broker.call<CustomerView, unknown>("customers.get", { customerId: id });
		out.set(id, `v${c.version} risk ${c.risk.score}`);
	}
	return out;
}

export async function assertNoCustomerChanged(broker: ServiceBroker, before: Map<string, string>, what: string): Promise<void> {
	const after = await customerSnapshot(broker);
	assert.deepEqual(Object.fromEntries(after), Object.fromEntries(before), `${what}: a bad input changed a customer`);
}

export interface RawResponse {
	status: number;
	head: string;
	body: string;
}

/**
 * Sends bytes as they are to 127.0.0.1:port and reads the answer: for requests fetch() refuses to build (CR or LF
 * inside a header value). Resolves with status 0 when the server closes without an answer.
 */
export function rawHttp(port: number, request: string | Buffer, timeoutMs = 5000): Promise<RawResponse> {
	return new Promise((resolve, reject) => {
		const socket = connect({ port, host: "127.0.0.1" });
		const chunks: Buffer[] = [];
		const timer = setTimeout(() => {
			socket.destroy();
			reject(new Error(`no answer from port ${port} within ${timeoutMs} ms`));
		}, timeoutMs);
		socket.on("data", c => chunks.push(c));
		socket.on("error", () => undefined);
		socket.on("close", () => {
			clearTimeout(timer);
			const text = Buffer.concat(chunks).toString("latin1");
			const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
			const split = text.indexOf("\r\n\r\n");
			resolve({ status: m ? Number(m[1]) : 0, head: split === -1 ? text : text.slice(0, split), body: split === -1 ? "" : text.slice(split + 4) });
		});
		socket.write(request);
		socket.end();
	});
}

/** A complete HTTP/1.1 request; `headers` are written verbatim, so they may carry CR/LF. */
export function rawRequest(method: string, path: string, headers: string[], body: string | Buffer = ""): Buffer {
	const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body);
	const head = [`${method} ${path} HTTP/1.1`, "Host: 127.0.0.1", "Connection: close", ...headers, `Content-Length: ${bytes.length}`, "", ""].join("\r\n");
	return Buffer.concat([Buffer.from(head, "latin1"), bytes]);
}
