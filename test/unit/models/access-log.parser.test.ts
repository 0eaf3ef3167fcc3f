// Click-stream log parsing: multi-line merging, nginx combined lines, JSON lines, and which entries are page views.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { EntryMerger, interpretEntry, parseTimeLocal, type LogEntry, type LogFormat } from "../../../models/access-log.parser.ts";

const opts = { customerParam: "cid" };
const entry = (text: string): LogEntry => ({ text, start: 0, end: text.length });

function merge(format: LogFormat, lines: string[], max = {}): LogEntry[] {
	const m = new EntryMerger(format, max);
	const out: LogEntry[] = [];
	let pos = 0;
	for (const l of lines) {
		out.push(...m.push(l, pos, pos + l.length + 1));
		pos += l.length + 1;
	}
	return [...out, ...m.flush()];
}

describe("EntryMerger", () => {
	it("joins pretty-printed JSON and stack traces to their entry, with byte offsets", () => {
		const entries = merge("json", ["{\"a\":1}", "{", "  \"b\": 2", "}", "{\"c\":3}", "    at f (x.js:1:1)", "    at g (y.js:2:2)"]);
		assert.deepEqual(entries.map(e => e.text), ["{\"a\":1}", "{\n  \"b\": 2\n}", "{\"c\":3}\n    at f (x.js:1:1)\n    at g (y.js:2:2)"]);
		assert.deepEqual(entries.map(e => [e.start, e.end]), [[0, 8], [8, 21], [21, 69]]);
	});

	it("keeps the open entry until the next start or a flush, and says where it starts", () => {
		const m = new EntryMerger("nginx");
		assert.deepEqual(m.push("1.2.3.4 - - [01/Jan/2026:00:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"ua\"", 0, 80), []);
		assert.equal(m.pendingStart, 0);
		assert.equal(m.push("1.2.3.4 - - [01/Jan/2026:00:00:01 +0000] \"GET /b HTTP/1.1\" 200 1 \"-\" \"ua\"", 80, 160).length, 1);
		assert.equal(m.pendingStart, 80);
		assert.equal(m.flush().length, 1);
		assert.equal(m.pendingStart, undefined);
	});

	it("marks an entry over the size or line limit as oversize, and still ends it at the next start", () => {
		const entries = merge("json", ["{\"x\":", ...Array(10).fill("  1234567890"), "{\"ok\":1}"], { maxEntryChars: 50 });
		assert.equal(entries.length, 2);
		assert.equal(entries[0].oversize, true);
		assert.equal(entries[1].text, "{\"ok\":1}");
		assert.equal(interpretEntry("json", entries[0], opts).kind, "malformed");
	});
});

describe("nginx combined lines", () => {
	const line = (target: string, status = 200, method = "GET", extra = "") =>
		`203.0.113.9 - - [10/Oct/2026:13:55:36 -0700] "${method} ${target} HTTP/1.1" ${status} 512 "https://example.com/from" "Mozilla/5.0"${extra}`;
	const table: Array<[string, string, unknown]> = [
		["cid query parameter", line("/pricing?plan=pro&cid=cust-42"), { kind: "view", customerId: "cust-42", url: "/pricing?plan=pro&cid=cust-42", timeMs: Date.UTC(2026, 9, 10, 20, 55, 36), referrer: "https://example.com/from" }],
		["cid cookie in a trailing field", line("/home", 200, "GET", " \"session=abc; cid=cust-7\""), { kind: "view", customerId: "cust-7", url: "/home", timeMs: Date.UTC(2026, 9, 10, 20, 55, 36), referrer: "https://example.com/from" }],
		["anonymous", line("/home"), { kind: "skip", reason: "anonymous" }],
		["static asset", line("/app.js?cid=c1"), { kind: "skip", reason: "static asset" }],
		["error status", line("/x?cid=c1", 404), { kind: "skip", reason: "error status" }],
		["not a GET", line("/x?cid=c1", 200, "POST"), { kind: "skip", reason: "not a GET request" }],
		["invalid customer id", line("/x?cid=%3Cscript%3E"), { kind: "malformed", reason: "customer id is not valid (1..128 letters, digits or ._:@-)" }],
		["garbage", "this is not an access log line", { kind: "malformed", reason: "not an nginx combined-format line" }]
	];
	for (const [name, text, expected] of table) it(name, () => assert.deepEqual(interpretEntry("nginx", entry(text), opts), expected));

	it("parses $time_local with its offset", () => {
		assert.equal(parseTimeLocal("01/Jan/2026:00:30:00 +0100"), Date.UTC(2025, 11, 31, 23, 30));
		assert.ok(Number.isNaN(parseTimeLocal("31/Feb/2026:00:00:00 +0000")));
	});
});

describe("JSON lines", () => {
	const table: Array<[string, string, unknown]> = [
		["page view", "{\"time\":\"2026-01-01T00:00:00Z\",\"customerId\":\"c-1\",\"url\":\"/a\",\"sessionId\":\"s1\",\"referrer\":\"/b\"}", { kind: "view", customerId: "c-1", url: "/a", timeMs: Date.UTC(2026, 0, 1), referrer: "/b", sessionId: "s1" }],
		["epoch seconds and customer_id number", "{\"ts\":1767225600,\"customer_id\":42,\"path\":\"/p\"}", { kind: "view", customerId: "42", url: "/p", timeMs: 1767225600000 }],
		["with a stack trace after it", "{\"time\":\"2026-01-01T00:00:00Z\",\"cid\":\"c-2\",\"url\":\"/e\"}\n    at boom (x.js:1:1)", { kind: "view", customerId: "c-2", url: "/e", timeMs: Date.UTC(2026, 0, 1) }],
		["another event type", "{\"type\":\"click\",\"customerId\":\"c-1\",\"url\":\"/a\",\"time\":\"2026-01-01T00:00:00Z\"}", { kind: "skip", reason: "not a page view" }],
		["anonymous", "{\"url\":\"/a\",\"time\":\"2026-01-01T00:00:00Z\"}", { kind: "skip", reason: "anonymous" }],
		["malformed JSON", "{\"customerId\":\"c-1\",\"url\":", { kind: "malformed", reason: "not valid JSON" }],
		["not an object", "[1,2]", { kind: "malformed", reason: "JSON entry is not an object" }],
		["wrong type of customerId", "{\"customerId\":{\"id\":1},\"url\":\"/a\",\"time\":\"2026-01-01T00:00:00Z\"}", { kind: "malformed", reason: "customerId must be a string" }],
		["wrong type of url", "{\"customerId\":\"c\",\"url\":5,\"time\":\"2026-01-01T00:00:00Z\"}", { kind: "malformed", reason: "url must be a string" }],
		["prototype key", "{\"customerId\":\"c\",\"url\":\"/a\",\"time\":\"2026-01-01T00:00:00Z\",\"__proto__\":{\"admin\":true}}", { kind: "malformed", reason: "JSON entry has forbidden key \"__proto__\"" }],
		["no time", "{\"customerId\":\"c\",\"url\":\"/a\"}", { kind: "malformed", reason: "no time field (time, timestamp, ts or @timestamp)" }],
		["an epoch no Date can hold", "{\"customerId\":\"c\",\"url\":\"/a\",\"ts\":1e20}", { kind: "malformed", reason: "time is not a date-time or epoch number" }],
		["a negative epoch no Date can hold", "{\"customerId\":\"c\",\"url\":\"/a\",\"ts\":-8640000000000.001}", { kind: "malformed", reason: "time is not a date-time or epoch number" }],
		["nested deeper than the scan looks", `{"customerId":"c","url":"/a","time":"2026-01-01T00:00:00Z","x":${"[".repeat(40)}${"]".repeat(40)}}`, { kind: "malformed", reason: "JSON entry is nested deeper than 32 levels" }]
	];
	for (const [name, text, expected] of table) it(name, () => assert.deepEqual(interpretEntry("json", entry(text), opts), expected));

	it("an entry with a line that was not UTF-8 is malformed, whatever its lossy text says", () => {
		const m = new EntryMerger("json");
		const text = "{\"time\":\"2026-01-01T00:00:00Z\",\"customerId\":\"c-1\",\"url\":\"/\ufffd\"}";
		const [e] = [...m.push(text, 0, text.length + 1, true), ...m.flush()];
		assert.equal(e.notUtf8, true);
		assert.deepEqual(interpretEntry("json", e, opts), { kind: "malformed", reason: "entry is not valid UTF-8" });
	});
});

describe("nginx entries", () => {
	it("a line that is not a request line is an entry of its own, never swallowed by the one before", () => {
		const ok = "1.2.3.4 - - [01/Jan/2026:00:00:00 +0000] \"GET /?cid=c1 HTTP/1.1\" 200 1 \"-\" \"ua\"";
		const entries = merge("nginx", [ok, "garbage after it", "  indented continuation"]);
		assert.deepEqual(entries.map(e => e.text), [ok, "garbage after it\n  indented continuation"]);
		assert.equal(interpretEntry("nginx", entries[1], opts).kind, "malformed");
	});
});
