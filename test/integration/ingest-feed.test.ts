// The HTTP event feed (the worked example of a source that is one file plus a config section): pages read from a
// cursor kept durably, events applied in page order per customer, invalid ones dead-lettered with the validator's
// code and retried through the source's own action, and a restart resuming where the cursor stands.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { startTestNode, cloudEvent, type TestNode } from "../support/node.ts";
import { freePort } from "../harness.ts";
import { recordDeadLetters, servicesWithDeadLetters, type DeadLetterLog } from "./ingest-sources.support.ts";

interface Poll { pages: number; tally: { applied: number; duplicate: number; deadLettered: number }; cursor: string | null; error?: string }
interface JournalEntry { event: { id: string } }

const page = (customer: string, n: number) => cloudEvent("crm.page.viewed", customer, { url: `/p/${n}` }, { id: `feed-${customer}-${n}`, source: "/feed" });

describe("ingest-feed: an HTTP feed of CloudEvents", () => {
	let server: Server;
	let dir: string;
	let node: TestNode;
	let dl: DeadLetterLog;
	const requests: Array<string | null> = [];
	const pages = new Map<string | null, { events: unknown[]; next: string | null }>();
	let env: Record<string, string>;

	before(async () => {
		pages.set(null, {
			events: [page("feed-a", 1), page("feed-b", 1), page("feed-a", 2), { ...page("feed-a", 9), type: "crm.spaceship.launched" }, page("feed-a", 3)],
			next: "p1"
		});
		pages.set("p1", { events: [page("feed-b", 2), cloudEvent("crm.page.viewed", "feed-b", { url: "" }, { id: "feed-bad-url", source: "/feed" })], next: "p2" });
		pages.set("p2", { events: [], next: "p2" });
		server = createServer((req, res) => {
			const cursor = new URL(req.url ?? "/", "http://x").searchParams.get("cursor");
			requests.push(cursor);
			const body = pages.get(cursor);
			res.writeHead(body ? 200 : 404, { "content-type": "application/json" });
			res.end(JSON.stringify(body ?? { error: "no such cursor" }));
		});
		const port = await freePort();
		await new Promise<void>(resolve => server.listen(port, "127.0.0.1", resolve));
		dir = await mkdtemp(path.join(tmpdir(), "crm-feed-"));
		// A long poll interval: the test polls on its own.
		env = { SERVICES: servicesWithDeadLetters("customers,ingest-feed"), FEED_URL: `http://127.0.0.1:${port}/events`, FEED_POLL_MS: "3600000" };
		node = await startTestNode(env, dir);
		dl = await recordDeadLetters(node.broker);
	});
	after(async () => {
		await node?.stop({ keepData: true });
		await new Promise<void>(resolve => server.close(() => resolve()));
		await rm(dir, { recursive: true, force: true });
	});

	const poll = () => node.broker.call<Poll, unknown>("ingest-feed.poll", {});
	const journal = async (id: string) => (await node.broker.call<JournalEntry[], unknown>("customers.journal", { customerId: id, limit: 50 })).map(e => e.event.id).reverse();

	it("reads every page up to the end, applies each customer's events in page order and dead-letters the invalid ones", async () => {
		const p = await poll();
		assert.equal(p.error, undefined);
		assert.equal(p.cursor, "p2");
		assert.deepEqual(await journal("feed-a"), ["feed-feed-a-1", "feed-feed-a-2", "feed-feed-a-3"]);
		assert.deepEqual(await journal("feed-b"), ["feed-feed-b-1", "feed-feed-b-2"]);
		const letters = await dl.of("feed");
		assert.equal(letters.length, 2);
		assert.match(letters[0].reason, /unknown event type/);
		assert.match(letters[1].reason, /data\.url/);
		assert.ok(letters.every(l => l.retryAction === "ingest-feed.retryEvent"), "dead letters name the source's retry action");
		if (dl.real) {
			const codes = (await node.broker.call<Array<{ reasonCode: string }>, unknown>("deadLetters.list", { source: "feed" })).map(l => l.reasonCode).sort();
			assert.deepEqual(codes, ["invalid_event", "unknown_type"]);
		}
	});

	it("a dead letter retried while still invalid stays one, with the reason", async () => {
		const [bad] = await dl.of("feed");
		await assert.rejects(node.broker.call("ingest-feed.retryEvent", { payload: bad.payload }), /still invalid: unknown event type/);
	});

	it("keeps its cursor: a poll (and a restarted node) starts where the last page ended, and re-read events are duplicates", async () => {
		requests.length = 0;
		await poll();
		assert.deepEqual(requests, ["p2"]);
		await node.stop({ keepData: true });
		requests.length = 0;
		node = await startTestNode(env, dir);
		const p = await poll();
		assert.equal(requests[0], "p2", "the restarted node resumed from the stored cursor");
		assert.equal(p.tally.applied, 0);
		// The first page served again (a feed that rewinds) changes nothing: every event is a duplicate for its actor.
		pages.set("p2", { ...pages.get(null)!, next: "p3" } as { events: unknown[]; next: string | null });
		pages.set("p3", { events: [], next: "p3" });
		const again = await poll();
		assert.equal(again.tally.applied, 0);
		assert.equal(again.tally.duplicate, 4);
		assert.deepEqual(await journal("feed-a"), ["feed-feed-a-1", "feed-feed-a-2", "feed-feed-a-3"]);
	});
});
