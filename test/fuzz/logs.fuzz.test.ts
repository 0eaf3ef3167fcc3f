// Fuzzing click-stream log ingestion: hostile JSON-lines and nginx lines appended to real tailed files end as dead
// letters with a reason (or are skipped as not being page views), every entry is accounted for, the tail keeps going
// (a valid line after them is applied) and no customer changes. Beside it, a fast-check property on the entry →
// event step (in-process): it never throws, whatever the text, and what it lets through is a valid event.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { appendFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import fc from "fast-check";
import { startTestNode, type TestNode } from "../support/node.ts";
import { waitFor } from "../harness.ts";
import { recordDeadLetters, servicesWithDeadLetters, type DeadLetterLog } from "../integration/ingest-sources.support.ts";
import { prepareEntry } from "../../edge/log-tail.engine.ts";
import type { TailStatus } from "../../models/contract/index.ts";
import { validateEvent } from "../../models/cloud-event.validator.ts";
import { FORBIDDEN, INVALID_UTF8, assertNoCustomerChanged, customerSnapshot, fcParams, nestedText, seedBanner } from "./fuzz.support.ts";

const VICTIM = "fz-log-victim";

function nginx(target: string, opts: { time?: string; status?: string; method?: string; cookie?: string } = {}): string {
	return `203.0.113.9 - - [${opts.time ?? "01/Mar/2026:10:00:00 +0000"}] "${opts.method ?? "GET"} ${target} HTTP/1.1" ${opts.status ?? "200"} 512 "-" "fuzz"${opts.cookie === undefined ? "" : ` "${opts.cookie}"`}`;
}

const json = (obj: Record<string, unknown>) => JSON.stringify(obj);
const view = (over: Record<string, unknown> = {}) => json({ time: "2026-03-01T10:00:00Z", customerId: VICTIM, url: "/ok", ...over });

describe("fuzz: log lines", () => {
	let dir: string;
	let jsonLog: string;
	let nginxLog: string;
	let node: TestNode;
	let dl: DeadLetterLog;
	let baseline: Map<string, string>;
	let sentinels = 0;

	const status = async (name: string) => (await node.broker.call<{ sources: TailStatus[] }, unknown>("ingestLogs.status", {})).sources.find(s => s.name === name) as TailStatus;
	const accounted = (s: TailStatus) => s.tally.applied + s.tally.duplicate + s.tally.deadLettered + s.tally.skipped;

	/**
	 * Appends `lines` (one entry each) then a valid sentinel line for a customer of its own, waits until the sentinel is
	 * applied, and returns what the tail did with the lines: every one is dead-lettered, skipped or applied.
	 */
	async function feed(file: string, lines: Array<string | Buffer>): Promise<{ deadLettered: number; skipped: number; applied: number; reasons: string[] }> {
		const name = path.basename(file);
		// A local call hands back the live tally object: copy what it says now.
		const tallyBefore = { ...(await status(name)).tally };
		const countedBefore = tallyBefore.applied + tallyBefore.duplicate + tallyBefore.deadLettered + tallyBefore.skipped;
		const lettersBefore = (await dl.of("logs")).length;
		const sentinel = `fz-log-sentinel-${++sentinels}`;
		const sentinelLine = file === nginxLog ? nginx(`/sentinel?cid=${sentinel}`) : json({ time: "2026-03-01T10:00:00Z", customerId: sentinel, url: "/sentinel" });
		await appendFile(file, Buffer.concat([...lines.map(l => Buffer.concat([Buffer.isBuffer(l) ? l : Buffer.from(l), Buffer.from("\n")])), Buffer.from(`${sentinelLine}\n`)]));
		await waitFor(async () => node.broker.call("customers.get", { customerId: sentinel }).then(() => true, () => false), { timeoutMs: 15_000, message: `${name}: the sentinel after the hostile lines was applied (the tail is not stuck)` });
		await waitFor(async () => accounted(await status(name)) >= countedBefore + lines.length + 1, { message: `${name}: every line accounted for` });
		const after = { tally: { ...(await status(name)).tally } };
		assert.equal(accounted(after as TailStatus), countedBefore + lines.length + 1, `${name}: one outcome per line`);
		const letters = (await dl.of("logs")).slice(lettersBefore);
		return {
			deadLettered: after.tally.deadLettered - tallyBefore.deadLettered,
			skipped: after.tally.skipped - tallyBefore.skipped,
			applied: after.tally.applied - tallyBefore.applied - 1,
			reasons: letters.map(l => l.reason)
		};
	}

	before(async () => {
		console.log(seedBanner("test/fuzz/logs.fuzz.test.ts"));
		dir = await mkdtemp(path.join(tmpdir(), "crm-fuzz-logs-"));
		jsonLog = path.join(dir, "clicks.jsonl");
		nginxLog = path.join(dir, "access.log");
		await writeFile(jsonLog, "");
		await writeFile(nginxLog, "");
		node = await startTestNode({
			SERVICES: servicesWithDeadLetters("customers,ingest-logs"), ACTOR_STORE: "memory", LOGS_SOURCES: `json:${jsonLog},nginx:${nginxLog}`,
			LOGS_POLL_MS: "50", LOGS_MULTILINE_FLUSH_MS: "100"
		});
		dl = await recordDeadLetters(node.broker);
		await feed(jsonLog, [view()]);
		baseline = await customerSnapshot(node.broker);
	});

	after(async () => {
		await node?.stop();
		await rm(dir, { recursive: true, force: true });
	});

	it("dead-letters hostile JSON lines, one each, and keeps tailing", async () => {
		const lines: Array<[string, string | Buffer, RegExp]> = [
			["truncated JSON", view().slice(0, 30), /not valid JSON/],
			["epoch 1e20 as time (no Date holds it)", view({ time: 1e20 }), /time is not/],
			["epoch -1e20 as time", view({ time: -1e20 }), /time is not/],
			["epoch 9e15 ms as time", view({ time: 9e15 }), /time is not/],
			["1e999 as time (Infinity)", view({ time: 1 }).replace("\"time\":1", "\"time\":1e999"), /time is not/],
			["a time in 2999", view({ time: "2999-01-01T00:00:00Z" }), /future/],
			["a time before 1970", view({ time: "1969-12-31T23:59:59Z" }), /before 1970/],
			["epoch -1 s", view({ time: -1 }), /before 1970/],
			["time as an object", view({ time: { $date: 1 } }), /time is not/],
			["customerId as an object", view({ customerId: { id: VICTIM } }), /customerId must be a string/],
			["customer id with path traversal", view({ customerId: "../../etc/passwd" }), /customer id is not valid/],
			["customer id __proto__", view({ customerId: "__proto__" }), /customer id is not valid/],
			["url as a number", view({ url: 42 }), /url must be a string/],
			["url as an array", view({ url: ["/a"] }), /url must be a string/],
			["url of 3000 characters", view({ url: `/${"u".repeat(3000)}` }), /data\.url/],
			["nested 40 deep", view({ extra: JSON.parse(nestedText(40)) }), /nested deeper than 32/],
			["nested 2000 deep", view().replace("\"url\"", `"extra":${nestedText(2000)},"url"`), /nested deeper than 32/],
			["100000 numbers (over the line limit)", view({ extra: Array.from({ length: 100_000 }, (_, i) => i) }), /size limit/]
		];
		for (const key of FORBIDDEN) {
			lines.push([`${key} at the top`, view().replace("{", `{"${key}":{"x":1},`), new RegExp(`forbidden key "${key}"`)]);
			lines.push([`${key} at depth 3`, view().replace("{", `{"a":{"b":{"${key}":1}},`), new RegExp(`forbidden key "${key}"`)]);
			lines.push([`${key} at depth 30`, view().replace("{", `{"deep":${nestedText(29, `{"${key}":1}`)},`), new RegExp(`forbidden key "${key}"`)]);
		}
		for (const [name, bad] of INVALID_UTF8) {
			const text = view({ url: "/utf8-here" });
			const at = text.indexOf("utf8-here");
			lines.push([`${name} in the url`, Buffer.concat([Buffer.from(text.slice(0, at)), bad, Buffer.from(text.slice(at))]), /not valid UTF-8/]);
		}
		const out = await feed(jsonLog, lines.map(([, l]) => l));
		assert.equal(out.applied, 0, "none applied");
		assert.equal(out.deadLettered, lines.length, `every hostile line dead-lettered (${out.skipped} skipped)`);
		for (const [name, , reason] of lines) assert.ok(out.reasons.some(r => reason.test(r)), `${name}: ${reason} in ${JSON.stringify(out.reasons)}`);
		assert.equal(({} as Record<string, unknown>).x, undefined);
		await assertNoCustomerChanged(node.broker, new Map([...baseline, ...[...(await customerSnapshot(node.broker))].filter(([id]) => id.startsWith("fz-log-sentinel"))]), "JSON lines");
	});

	it("dead-letters hostile nginx lines, one each, and keeps tailing", async () => {
		const lines: Array<[string, string, RegExp]> = [
			["not an access log line", "GET / HTTP/1.1 200", /not an nginx/],
			["truncated line", nginx(`/t?cid=${VICTIM}`).slice(0, 50), /not an nginx/],
			["31 February", nginx(`/x?cid=${VICTIM}`, { time: "31/Feb/2026:10:00:00 +0000" }), /not an nginx/],
			["month Foo", nginx(`/x?cid=${VICTIM}`, { time: "01/Foo/2026:10:00:00 +0000" }), /not an nginx/],
			["year 0000", nginx(`/x?cid=${VICTIM}`, { time: "01/Jan/0000:10:00:00 +0000" }), /before 1970/],
			["year 1969", nginx(`/x?cid=${VICTIM}`, { time: "31/Dec/1969:23:59:59 +0000" }), /before 1970/],
			["year 2999", nginx(`/x?cid=${VICTIM}`, { time: "01/Jan/2999:10:00:00 +0000" }), /future/],
			["hour 25", nginx(`/x?cid=${VICTIM}`, { time: "01/Mar/2026:25:00:00 +0000" }), /not an nginx/],
			["cid with path traversal", nginx("/x?cid=..%2F..%2Fetc%2Fpasswd"), /customer id is not valid/],
			["cid __proto__", nginx("/x?cid=__proto__"), /customer id is not valid/],
			["cid in a cookie with a space", nginx("/x", { cookie: "cid=a b" }), /customer id is not valid/],
			["a 3000-character target", nginx(`/${"y".repeat(3000)}?cid=${VICTIM}`), /data\.url/],
			["status 9999", nginx(`/x?cid=${VICTIM}`, { status: "9999" }), /not an nginx/]
		];
		const out = await feed(nginxLog, lines.map(([, l]) => l));
		assert.equal(out.applied, 0, "none applied");
		assert.equal(out.deadLettered, lines.length, `every hostile line dead-lettered (${out.skipped} skipped)`);
		for (const [name, , reason] of lines) assert.ok(out.reasons.some(r => reason.test(r)), `${name}: ${reason} in ${JSON.stringify(out.reasons)}`);
	});

	it("property: random JSON lines are each applied, skipped or dead-lettered — never lost, never stuck", async () => {
		const hostileValue = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constantFrom(1e20, -1, 0.5, "2026-03-01T10:00:00Z", "1969-01-01T00:00:00Z", "", VICTIM, "__proto__"));
		const entry = fc.record({
			time: hostileValue, customerId: fc.oneof(fc.constant(VICTIM), hostileValue), url: fc.oneof(fc.constant("/p"), hostileValue),
			type: hostileValue, sessionId: hostileValue
		}, { requiredKeys: [] });
		const lines = fc.sample(fc.oneof(entry.map(e => json(e)), fc.string({ maxLength: 80 }).map(s => `{${s.replace(/\n/g, " ")}`)), { seed: fcParams(1).seed, numRuns: 150 });
		const snapshot = await customerSnapshot(node.broker);
		const out = await feed(jsonLog, lines);
		// What the step in-process says about the same lines: applied, skipped or dead-lettered, each exactly once.
		let expectApplied = 0;
		for (const text of lines) if (prepareEntry({ name: "clicks.jsonl", format: "json" }, { text, start: 0, end: 0 }, 1, "cid").kind === "event") expectApplied++;
		assert.equal(out.applied + out.deadLettered + out.skipped, lines.length);
		assert.ok(out.applied <= expectApplied, `${out.applied} applied, at most ${expectApplied} expected (duplicates count separately)`);
		if (expectApplied === 0) await assertNoCustomerChanged(node.broker, new Map([...snapshot, ...[...(await customerSnapshot(node.broker))].filter(([id]) => id.startsWith("fz-log-sentinel"))]), "random lines");
		baseline = await customerSnapshot(node.broker);
	});

	it("property (in-process): the entry → event step never throws, and what it lets through is a valid event", () => {
		const source = { name: "clicks.jsonl", format: "json" as const };
		const nginxSource = { name: "access.log", format: "nginx" as const };
		const num = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(1e20, -1e20, 8.64e15, 8.64e15 + 1, Number.MAX_VALUE, -0));
		const jsonEntry = fc.record({ time: fc.oneof(num, fc.string(), fc.jsonValue({ maxDepth: 2 })), customerId: fc.oneof(fc.constant("c-1"), fc.string(), num), url: fc.oneof(fc.constant("/x"), fc.string(), num) }, { requiredKeys: [] })
			.map(o => JSON.stringify(o).replace(/null/g, "1e999"));
		const nginxEntry = fc.tuple(fc.integer({ min: 0, max: 40 }), fc.constantFrom("Jan", "Feb", "Foo", "Dec"), fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 0, max: 30 }), fc.string({ maxLength: 30 }), fc.integer({ min: 100, max: 999 }))
			.map(([d, m, y, h, cid, st]) => nginx(`/p?cid=${encodeURIComponent(cid)}`, { time: `${String(d).padStart(2, "0")}/${m}/${String(y).padStart(4, "0")}:${String(h).padStart(2, "0")}:00:00 +0000`, status: String(st) }));
		fc.assert(fc.property(fc.oneof(jsonEntry, fc.string(), nginxEntry), fc.boolean(), (text, asNginx) => {
			const prepared = prepareEntry(asNginx ? nginxSource : source, { text, start: 0, end: 0 }, 1, "cid");
			if (prepared.kind === "event") {
				const again = validateEvent(prepared.event);
				assert.ok(again.ok, `let through an invalid event: ${JSON.stringify(prepared.event)}`);
			} else {
				assert.ok(prepared.reason.length > 0);
			}
		}), fcParams(2000));
	});
});
