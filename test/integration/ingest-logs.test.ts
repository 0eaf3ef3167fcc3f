// Log tailing end to end on real files: nginx and JSON-lines page views, multi-line entries, PII masked everywhere
// (stored events, dead letters, the node's own log output), the bad-input corpus, rotation, truncation and restarts.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { appendFile, mkdtemp, rename, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { startTestNode, type TestNode } from "../support/node.ts";
import { waitFor } from "../harness.ts";
import { captureOutput, recordDeadLetters, servicesWithDeadLetters, type DeadLetterLog, type OutputCapture } from "./ingest-sources.support.ts";
import type { TailStatus } from "../../models/contract/index.ts";

interface View { counters: { pageViews: number } }
interface JournalEntry { event: { data: { url: string; referrer?: string } } }

const PII = ["jane.doe@example.com", "jane.doe%40example.com", "+49 170 1234567", "%2B49%20170%201234567", "4111 1111 1111 1111", "4111111111111111", "(555) 123-4567", "max@mustermann.de"];

function nginx(target: string, opts: { status?: number; method?: string; referrer?: string; cookie?: string; second?: number } = {}): string {
	const sec = String(opts.second ?? 0).padStart(2, "0");
	const cookie = opts.cookie === undefined ? "" : ` "${opts.cookie}"`;
	return `198.51.100.7 - - [01/Mar/2026:10:00:${sec} +0000] "${opts.method ?? "GET"} ${target} HTTP/1.1" ${opts.status ?? 200} 1234 "${opts.referrer ?? "-"}" "Mozilla/5.0"${cookie}\n`;
}

const json = (obj: Record<string, unknown>) => `${JSON.stringify(obj)}\n`;

describe("ingest-logs: tailing click-stream logs", () => {
	let dir: string;
	let access: string;
	let clicks: string;
	let node: TestNode;
	let dl: DeadLetterLog;
	let output: OutputCapture;
	const env = () => ({
		SERVICES: servicesWithDeadLetters("customers,ingest-logs"), LOGS_SOURCES: `nginx:${access},json:${clicks}`,
		LOGS_POLL_MS: "50", LOGS_MULTILINE_FLUSH_MS: "150", LOG_LEVEL: "info"
	});

	before(async () => {
		dir = await mkdtemp(path.join(tmpdir(), "crm-logs-"));
		access = path.join(dir, "access.log");
		clicks = path.join(dir, "clicks.jsonl");
		await writeFile(access, "");
		await writeFile(clicks, "");
		output = captureOutput();
		node = await startTestNode(env());
		dl = await recordDeadLetters(node.broker);
	});
	after(async () => {
		output?.stop();
		await node?.stop();
		await rm(dir, { recursive: true, force: true });
	});

	const status = async (name: string) => (await node.broker.call<{ sources: TailStatus[] }, unknown>("ingestLogs.status", {})).sources.find(s => s.name === name) as TailStatus;
	const pageViews = async (id: string) => node.broker.call<View, unknown>("customers.get", { customerId: id }).then(c => c.counters.pageViews, () => 0);
	const journal = (id: string) => node.broker.call<JournalEntry[], unknown>("customers.journal", { customerId: id, limit: 100 });
	const untilViews = (id: string, n: number) => waitFor(async () => (await pageViews(id)) === n, { message: `${id} has ${n} page views` });

	it("nginx: page views of identified customers (cid parameter or cookie); anonymous, assets, errors and POSTs are counted and skipped", async () => {
		await appendFile(access, [
			nginx("/pricing?cid=l-1", { second: 1 }),
			nginx("/plans?x=1&cid=l-1", { second: 2, referrer: "https://www.example.org/" }),
			nginx("/home", { second: 3, cookie: "theme=dark; cid=l-2" }),
			nginx("/home", { second: 4 }),
			nginx("/static/app.css?cid=l-1", { second: 5 }),
			nginx("/missing?cid=l-1", { second: 6, status: 404 }),
			nginx("/login?cid=l-1", { second: 7, method: "POST" })
		].join(""));
		await untilViews("l-1", 2);
		await untilViews("l-2", 1);
		// The last line is an entry of its own once the file has been quiet for LOGS_MULTILINE_FLUSH_MS.
		await waitFor(async () => (await status("access.log")).skipped["not a GET request"] === 1, { message: "the POST line counted" });
		const s = await status("access.log");
		assert.deepEqual(s.skipped, { anonymous: 1, "static asset": 1, "error status": 1, "not a GET request": 1 });
		assert.equal(s.tally.deadLettered, 0);
		const urls = (await journal("l-1")).map(e => e.event.data.url).sort();
		assert.deepEqual(urls, ["/plans?x=1&cid=l-1", "/pricing?cid=l-1"]);
	});

	it("JSON lines: pretty-printed entries and stack traces are merged into one entry each", async () => {
		await appendFile(clicks, [
			json({ time: "2026-03-01T10:00:00Z", customerId: "l-3", url: "/a" }),
			"{\n  \"time\": \"2026-03-01T10:00:01Z\",\n  \"customerId\": \"l-3\",\n  \"url\": \"/pretty\"\n}\n",
			json({ time: "2026-03-01T10:00:02Z", customerId: "l-3", url: "/crashed" }).trimEnd() + "\nError: boom\n    at render (app.js:10:5)\n    at main (app.js:1:1)\n",
			json({ time: "2026-03-01T10:00:03Z", type: "click", customerId: "l-3", url: "/button" }),
			json({ time: "2026-03-01T10:00:04Z", customerId: "l-3", url: "/last" })
		].join(""));
		await untilViews("l-3", 4);
		assert.deepEqual((await journal("l-3")).map(e => e.event.data.url).sort(), ["/a", "/crashed", "/last", "/pretty"]);
		const s = await status("clicks.jsonl");
		assert.equal(s.skipped["not a page view"], 1);
		assert.equal(s.tally.deadLettered, 0, "the stack trace is part of its entry, not a malformed line");
	});

	it("masks PII before anything is stored or logged: events, dead letters and the node's log output", async () => {
		const dlBefore = (await dl.of("logs")).length;
		await appendFile(access, [
			nginx("/account?cid=l-pii&email=jane.doe%40example.com&phone=%2B49%20170%201234567", { second: 10, referrer: "https://mail.example/?to=jane.doe@example.com" }),
			nginx("/pay?cid=l-pii&note=4111%201111%201111%201111", { second: 11, referrer: "https://shop.example/card/4111111111111111" }),
			`garbage line from max@mustermann.de, call (555) 123-4567, card 4111 1111 1111 1111\n`
		].join(""));
		await appendFile(clicks, json({ time: "2026-03-01T10:00:20Z", customerId: "l-pii", url: "/contact?mail=jane.doe@example.com", referrer: "tel:+49 170 1234567", sessionId: "jane.doe@example.com" }));
		// A malformed JSON entry full of PII: dead-lettered, masked.
		await appendFile(clicks, "{\"customerId\": \"l-pii\", \"email\": \"jane.doe@example.com\", \"phone\": \"+49 170 1234567\",\n");
		await appendFile(clicks, json({ time: "2026-03-01T10:00:21Z", customerId: "l-pii", url: "/after" }));
		await untilViews("l-pii", 4);
		await waitFor(async () => (await dl.of("logs")).length >= dlBefore + 2, { message: "dead letters of the malformed lines" });
		const stored = JSON.stringify(await journal("l-pii"));
		const letters = JSON.stringify((await dl.of("logs")).slice(dlBefore));
		const logged = output.text();
		assert.ok(logged.length > 0, "the logger output is captured");
		for (const pii of PII) {
			assert.ok(!stored.includes(pii), `stored events contain ${pii}`);
			assert.ok(!letters.includes(pii), `dead letters contain ${pii}`);
			assert.ok(!logged.includes(pii), `logs contain ${pii}`);
		}
		assert.match(stored, /\[email\]/);
		assert.match(stored, /\[phone\]/);
		assert.match(stored, /\[card\]/);
		assert.match(letters, /\[email\]/);
		assert.match(stored, /cid=l-pii/, "what is not personal stays readable");
	});

	it("dead-letters each bad entry with its reason; every valid entry around them is kept", async () => {
		const dlBefore = (await dl.of("logs")).length;
		const viewsBefore = await pageViews("l-bad");
		await appendFile(clicks, [
			json({ time: "2026-03-01T11:00:00Z", customerId: "l-bad", url: "/ok-1" }),
			"{\"customerId\": \"l-bad\", \"url\": \n",
			json({ time: "2026-03-01T11:00:01Z", customerId: { id: "l-bad" }, url: "/x" }),
			json({ time: "2026-03-01T11:00:02Z", customerId: "l-bad", url: 42 }),
			json({ time: "not a time", customerId: "l-bad", url: "/x" }),
			"{\"time\":\"2026-03-01T11:00:03Z\",\"customerId\":\"l-bad\",\"url\":\"/x\",\"__proto__\":{\"polluted\":true}}\n",
			json({ time: "2026-03-01T11:00:04Z", customerId: "bad id!", url: "/x" }),
			json({ time: "2026-03-01T11:00:05Z", customerId: "l-bad", url: `/${"x".repeat(70_000)}` }),
			json({ time: "2026-03-01T11:00:06Z", url: "/anonymous" }),
			json({ time: "2026-03-01T11:00:07Z", customerId: "l-bad", url: "/ok-2" })
		].join(""));
		await appendFile(access, `not an access log line\n${nginx(`/${"y".repeat(3000)}?cid=l-bad`, { second: 30 })}${nginx("/ok-3?cid=l-bad", { second: 31 })}`);
		await untilViews("l-bad", viewsBefore + 3);
		await waitFor(async () => (await dl.of("logs")).length >= dlBefore + 9, { message: "9 dead letters" });
		const reasons = (await dl.of("logs")).slice(dlBefore).map(l => l.reason);
		const expected: Array<[string, RegExp]> = [
			["malformed JSON", /not valid JSON/],
			["wrong type of customerId", /customerId must be a string/],
			["wrong type of url", /url must be a string/],
			["bad time", /time is not a date-time/],
			["prototype key", /forbidden key "__proto__"/],
			["invalid customer id", /customer id is not valid/],
			["oversize entry", /exceeds the size limit/],
			["not nginx", /not an nginx combined-format line/],
			["url too long for the event", /data\.url must be a string of 1\.\.2048/]
		];
		for (const [what, re] of expected) assert.ok(reasons.some(r => re.test(r)), `${what}: ${JSON.stringify(reasons)}`);
		assert.equal(({} as Record<string, unknown>).polluted, undefined);
		const urls = (await journal("l-bad")).map(e => e.event.data.url);
		for (const u of ["/ok-1", "/ok-2", "/ok-3?cid=l-bad"]) assert.ok(urls.includes(u), u);
	});

	it("follows rename rotation (lines the old writer still appends included) and copytruncate, each line once", async () => {
		await appendFile(access, nginx("/before-rotation?cid=l-rot", { second: 40 }));
		await untilViews("l-rot", 1);
		await rename(access, `${access}.1`);
		await appendFile(`${access}.1`, nginx("/late-write-to-old-file?cid=l-rot", { second: 41 }));
		await writeFile(access, nginx("/new-file-1?cid=l-rot", { second: 42 }) + nginx("/new-file-2?cid=l-rot", { second: 43 }));
		await untilViews("l-rot", 4);

		await appendFile(clicks, json({ time: "2026-03-01T12:00:00Z", customerId: "l-trunc", url: "/t1" }));
		await untilViews("l-trunc", 1);
		await truncate(clicks, 0);
		await appendFile(clicks, json({ time: "2026-03-01T12:00:01Z", customerId: "l-trunc", url: "/after-truncate" }));
		await untilViews("l-trunc", 2);
		const urls = (await journal("l-rot")).map(e => e.event.data.url).sort();
		assert.deepEqual(urls, ["/before-rotation?cid=l-rot", "/late-write-to-old-file?cid=l-rot", "/new-file-1?cid=l-rot", "/new-file-2?cid=l-rot"]);
	});

	it("a restart resumes at the stored offsets: lines written while stopped (and a rotation) arrive once, nothing is re-sent", async () => {
		await appendFile(access, nginx("/pre-stop?cid=l-restart", { second: 50 }));
		await untilViews("l-restart", 1);
		await node.stop({ keepData: true });
		await appendFile(access, nginx("/while-stopped?cid=l-restart", { second: 51 }));
		await rename(access, `${access}.2`);
		await writeFile(access, nginx("/new-after-rotation?cid=l-restart", { second: 52 }));
		await appendFile(clicks, json({ time: "2026-03-01T13:00:00Z", customerId: "l-restart", url: "/json-while-stopped" }));
		node = await startTestNode(env(), node.dataDir);
		dl = await recordDeadLetters(node.broker);
		await untilViews("l-restart", 4);
		await waitFor(async () => (await status("access.log")).tally.applied === 2, { message: "two nginx views after restart" });
		for (const name of ["access.log", "clicks.jsonl"]) {
			const s = await status(name);
			assert.equal(s.tally.duplicate, 0, `${name}: nothing re-sent`);
			assert.equal(s.tally.deadLettered, 0, `${name}: no earlier bad line read again`);
		}
		assert.equal((await status("clicks.jsonl")).tally.applied, 1);
	});
});
