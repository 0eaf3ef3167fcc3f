// The change hub against an in-memory source: replay then live without gap or duplicate, a live item that skips a
// version makes the client re-read, store-wide clients attach to the tailer only once caught up, the bound cuts a
// client that does not read, and SSE framing.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import type { IncomingMessage, ServerResponse } from "node:http";
import { ChangeHub, parseVersionId, type ChangeSource } from "../../../services/streams/change-streams.ts";
import { SseStream } from "../../../runtime/sse.ts";
import { FEED_END, FEED_START, type FeedItem, type FeedPage } from "../../../models/change-record.ts";
import type { ChangeView } from "../../../models/contract/index.ts";
import { waitFor } from "../../../lib/processes.ts";

/** A response that records what is written; `stuck` makes it hold everything (a client that does not read). */
class FakeResponse extends Writable {
	text = "";
	stuck = false;
	headers: Record<string, unknown> = {};
	constructor() {
		super({ highWaterMark: 16 });
	}
	writeHead(_status: number, headers: Record<string, unknown>): this {
		this.headers = headers;
		return this;
	}
	override _write(chunk: Buffer, _enc: string, done: () => void): void {
		this.text += chunk.toString();
		if (!this.stuck) done();
	}
}

function open(maxBufferedBytes = 1 << 20): { res: FakeResponse; stream: SseStream } {
	const res = new FakeResponse();
	const req = { socket: { setNoDelay() {} } } as unknown as IncomingMessage;
	const stream = new SseStream(req, res as unknown as ServerResponse, { maxBufferedBytes, heartbeatMs: 60_000, retryMs: 1000 });
	return { res, stream };
}

/** Change events of a recorded stream as `id` list. */
function ids(text: string): string[] {
	return [...text.matchAll(/^id: (.+)\nevent: change\n/gm)].map(m => m[1]);
}

/** A store: one feed, journals per customer; `feedDelay` holds feed reads (to race the tailer against a client). */
class FakeSource implements ChangeSource {
	feedItems: FeedItem[] = [];
	/** Items the live tailer sees late (as a lost signal would). */
	hideFromFeed = new Set<string>();
	append(customerId: string): FeedItem {
		const version = this.feedItems.filter(i => i.customerId === customerId).length + 1;
		const item: FeedItem = {
			cursor: String(this.feedItems.length + 1), customerId, version, riskScore: version, appliedAt: 1_700_000_000_000 + version,
			change: { version, cause: { event: { source: "/t", id: `${customerId}-${version}`, type: "crm.page.viewed" } }, fields: ["counters"] }
		};
		this.feedItems.push(item);
		return item;
	}
	async changesSince(customerId: string, afterVersion: number, limit: number): Promise<ChangeView[]> {
		return this.feedItems.filter(i => i.customerId === customerId && i.version > afterVersion).slice(0, limit)
			.map(i => ({ customerId, version: i.version, appliedAt: new Date(i.appliedAt).toISOString(), riskScore: i.riskScore, change: i.change }));
	}
	async feed(cursor: string, limit: number): Promise<FeedPage> {
		if (cursor === FEED_END) return { items: [], cursor: this.feedItems.at(-1)?.cursor ?? FEED_START, trimmed: false };
		const items = this.feedItems.filter(i => Number(i.cursor) > Number(cursor) && !this.hideFromFeed.has(i.cursor)).slice(0, limit);
		return { items, cursor: items.at(-1)?.cursor ?? cursor, trimmed: false };
	}
	async version(customerId: string): Promise<number> {
		return this.feedItems.filter(i => i.customerId === customerId).length;
	}
}

void describe("ChangeHub", () => {
	void it("replays a customer's changes after Last-Event-ID, then follows live ones, each once and in order", async () => {
		const source = new FakeSource();
		for (let i = 0; i < 3; i++) source.append("a");
		const hub = new ChangeHub({ source, pageSize: 2 });
		const { res, stream } = open();
		await hub.openCustomer("a", 1, stream);
		assert.deepEqual(ids(res.text), ["2", "3"]);
		source.append("b");
		source.append("a");
		hub.wake();
		await waitFor(() => ids(res.text).length === 3, { timeoutMs: 2000, message: "live change" });
		hub.wake();
		await new Promise(r => setTimeout(r, 20));
		assert.deepEqual(ids(res.text), ["2", "3", "4"]);
		assert.match(res.text, /^retry: 1000\n\nevent: ready\ndata: \{"customerId":"a","version":1\}\n\n/);
		hub.stop();
	});

	void it("re-reads the journal when a live item skips a version (a change the tailer missed)", async () => {
		const source = new FakeSource();
		const hub = new ChangeHub({ source });
		const { res, stream } = open();
		await hub.openCustomer("a", null, stream);
		const missed = source.append("a");
		source.hideFromFeed.add(missed.cursor);
		source.append("a");
		hub.wake();
		await waitFor(() => ids(res.text).length === 2, { timeoutMs: 2000, message: "both versions" });
		assert.deepEqual(ids(res.text), ["1", "2"]);
		hub.stop();
	});

	void it("a store-wide client resumes from its cursor, filters by riskAbove and gets no duplicate once attached", async () => {
		const source = new FakeSource();
		for (let i = 0; i < 5; i++) source.append(i % 2 === 0 ? "a" : "b");
		const hub = new ChangeHub({ source, pageSize: 2 });
		const { res, stream } = open();
		await hub.openFeed("2", 1, stream);
		// riskScore = version here: only versions above 1 pass (a@2 is cursor 3, b@2 cursor 4, a@3 cursor 5).
		assert.deepEqual(ids(res.text), ["3", "4", "5"]);
		source.append("a");
		hub.wake();
		hub.wake();
		await waitFor(() => ids(res.text).length === 4, { timeoutMs: 2000, message: "live" });
		await new Promise(r => setTimeout(r, 20));
		assert.deepEqual(ids(res.text), ["3", "4", "5", "6"]);
		hub.stop();
	});

	void it("cuts a client that leaves more than its bound unread, with the reason, and keeps the others", async () => {
		const source = new FakeSource();
		const hub = new ChangeHub({ source, pageSize: 5 });
		const slow = open(2000);
		const fast = open(2000);
		await hub.openFeed(null, null, slow.stream);
		await hub.openFeed(null, null, fast.stream);
		slow.res.stuck = true;
		for (let i = 0; i < 40; i++) source.append(`c${i}`);
		hub.wake();
		await waitFor(() => slow.stream.isClosed, { timeoutMs: 2000, message: "the slow client is cut" });
		await waitFor(() => ids(fast.res.text).length === 40, { timeoutMs: 2000, message: "the fast one gets all" });
		assert.equal(hub.clients, 1);
		assert.equal(fast.stream.isClosed, false);
		hub.stop();
	});

	void it("reads the version from either id form", () => {
		assert.equal(parseVersionId("7"), 7);
		assert.equal(parseVersionId("cust-1:7"), 7);
		assert.equal(parseVersionId(undefined), null);
		assert.equal(parseVersionId("x"), null);
	});
});
