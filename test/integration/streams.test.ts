// Change streams and score lineage over HTTP on one node: every persisted change in order with its SSE id, resume with
// Last-Event-ID without gap or duplicate (also across a node restart on the same NeDB files), the store-wide stream
// with riskAbove, authentication, a slow client cut with a reason, and the risk history with its lineage.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { API_KEY, cloudEvent, startTestNode, type TestNode } from "../support/node.ts";
import { changes, connectSse, type SseClient } from "../support/sse.ts";
import { waitFor } from "../../lib/processes.ts";

const cancel = (customerId: string, orderId: string) => cloudEvent("crm.order.status_changed", customerId, { orderId, newStatus: "CANCELLED" });
const view = (customerId: string) => cloudEvent("crm.page.viewed", customerId, { url: "/pricing" });

async function post(node: TestNode, events: unknown[]): Promise<void> {
	const res = await node.api("/api/v1/events", { method: "POST", json: events });
	assert.equal(res.status, 202, JSON.stringify(res.body));
}

const versions = (client: SseClient) => changes(client.events).map(c => c.version as number);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("change streams and risk history on one node (NeDB)", () => {
	let dir: string;
	let node: TestNode;
	const open: SseClient[] = [];
	const sse = async (pathname: string, lastEventId?: string) => {
		const c = await connectSse(node.baseUrl + pathname, { apiKey: API_KEY, lastEventId });
		open.push(c);
		return c;
	};
	before(async () => {
		dir = await mkdtemp(path.join(tmpdir(), "crm-streams-"));
		node = await startTestNode({}, dir);
	});
	after(async () => {
		for (const c of open) c.close();
		await node?.stop();
		await rm(dir, { recursive: true, force: true });
	});

	it("refuses a stream without the bearer key, and malformed resume ids", async () => {
		const none = await connectSse(`${node.baseUrl}/api/v1/customers/s-1/stream`);
		assert.equal(none.status, 401);
		const bad = await connectSse(`${node.baseUrl}/api/v1/customers/s-1/stream`, { apiKey: API_KEY, lastEventId: "yesterday" });
		assert.equal(bad.status, 400);
		const badFeed = await connectSse(`${node.baseUrl}/api/v1/stream?riskAbove=abc`, { apiKey: API_KEY });
		assert.equal(badFeed.status, 400);
	});

	it("streams every change of a customer in order, each with its version as id and the risk change with lineage", async () => {
		const client = await sse("/api/v1/customers/s-1/stream");
		assert.equal(client.status, 200);
		assert.match(client.contentType ?? "", /^text\/event-stream/);
		await client.until(es => es.some(e => e.event === "ready"), 5000, "ready");
		await post(node, [view("s-1"), cancel("s-1", "o-1"), view("s-1")]);
		await client.until(es => changes(es).length >= 3, 5000, "three changes");
		assert.deepEqual(versions(client), [1, 2, 3]);
		assert.deepEqual(client.events.filter(e => e.event === "change").map(e => e.id), ["1", "2", "3"]);
		const cancelled = changes(client.events)[1];
		assert.deepEqual(cancelled.change.risk, {
			old: 0, new: 10,
			lineage: [{ factor: "order.cancelled", delta: 10, cause: { kind: "rule", file: "rules/risk.nools", rule: "OrderCancelled" } }]
		});
		assert.equal(cancelled.change.cause.event.type, "crm.order.status_changed");
		assert.ok(cancelled.change.fields.includes("orderStatus"));
	});

	it("resumes after Last-Event-ID with everything missed and then live changes, no gap, no duplicate", async () => {
		const first = await sse("/api/v1/customers/s-2/stream");
		await first.until(es => es.some(e => e.event === "ready"), 5000, "ready");
		await post(node, [view("s-2"), view("s-2")]);
		await first.until(es => changes(es).length >= 2, 5000, "two changes");
		first.close();
		const resumeFrom = first.lastEventId ?? "";
		assert.equal(resumeFrom, "2");
		await post(node, [cancel("s-2", "o-1"), view("s-2"), view("s-2")]);
		const again = await sse("/api/v1/customers/s-2/stream", resumeFrom);
		await again.until(es => changes(es).length >= 3, 5000, "the missed changes");
		await post(node, [view("s-2")]);
		await again.until(es => changes(es).length >= 4, 5000, "the live change");
		assert.deepEqual(versions(again), [3, 4, 5, 6]);
	});

	it("streams the store-wide feed filtered by riskAbove, resumable by its cursor", async () => {
		const feed = await sse("/api/v1/stream?riskAbove=5");
		await feed.until(es => es.some(e => e.event === "ready"), 5000, "ready");
		await post(node, [view("w-1"), cancel("w-2", "o-1"), view("w-2"), view("w-1")]);
		await feed.until(es => changes(es).length >= 2, 5000, "two changes above 5");
		assert.deepEqual(changes(feed.events).map(c => `${c.customerId}@${c.version}`), ["w-2@1", "w-2@2"]);
		const cursor = feed.lastEventId ?? "";
		feed.close();
		await post(node, [cancel("w-3", "o-1"), view("w-1")]);
		const resumed = await sse("/api/v1/stream?riskAbove=5", cursor);
		await resumed.until(es => changes(es).length >= 1, 5000, "the missed change");
		assert.deepEqual(changes(resumed.events).map(c => `${c.customerId}@${c.version}`), ["w-3@1"]);
		const all = await sse("/api/v1/stream", "0");
		await all.until(es => changes(es).some(c => c.customerId === "w-3"), 5000, "the whole feed");
		const ids = all.events.filter(e => e.event === "change").map(e => Number(e.id));
		assert.deepEqual(ids, [...ids].sort((a, b) => a - b), "cursors in order");
		assert.equal(new Set(ids).size, ids.length, "no duplicate");
	});

	it("lists the risk history with its lineage, newest first, and keeps it across passivation", async () => {
		await post(node, [cancel("r-1", "o-1"), view("r-1"), cancel("r-1", "o-2")]);
		await node.broker.call("customers.passivate", { customerId: "r-1" });
		const res = await node.api("/api/v1/customers/r-1/risk/history?limit=5");
		assert.equal(res.status, 200, JSON.stringify(res.body));
		assert.deepEqual(res.body.map((h: { version: number; oldScore: number; newScore: number }) => [h.version, h.oldScore, h.newScore]), [[3, 10, 20], [1, 0, 10]]);
		assert.equal(res.body[0].event.source, "/test");
		assert.deepEqual(res.body[0].lineage, [{ factor: "order.cancelled", delta: 10, cause: { kind: "rule", file: "rules/risk.nools", rule: "OrderCancelled" } }]);
		assert.equal((await node.api("/api/v1/customers/nobody/risk/history")).status, 404);
	});

	it("resumes across a restart of the node on the same files", async () => {
		const before = await sse("/api/v1/customers/s-9/stream");
		await before.until(es => es.some(e => e.event === "ready"), 5000, "ready");
		await post(node, [view("s-9"), cancel("s-9", "o-1")]);
		await before.until(es => changes(es).length >= 2, 5000, "two changes");
		const last = before.lastEventId ?? "";
		await node.stop({ keepData: true });
		await before.until(() => before.ended, 5000, "the stream ends with the node");
		node = await startTestNode({}, dir);
		await post(node, [view("s-9")]);
		const after = await sse("/api/v1/customers/s-9/stream", last);
		await post(node, [view("s-9")]);
		await after.until(es => changes(es).length >= 2, 5000, "missed and live");
		assert.deepEqual([...versions(before), ...versions(after)], range(1, 4));
	});
});

describe("a change stream client that does not read (memory store)", () => {
	let node: TestNode;
	before(async () => {
		node = await startTestNode({ ACTOR_STORE: "memory", STREAM_MAX_BUFFERED_BYTES: "65536" });
	});
	after(async () => {
		await node?.stop();
	});

	it("is cut with an error event naming the reason, while a client that reads gets everything", async () => {
		// A raw socket that never reads: once the kernel's buffers are full, the server's own send buffer passes the
		// bound (64 KB here) and the client is cut. About 7 MB of changes get past the kernel's buffers.
		const net = await import("node:net");
		const url = new URL(node.baseUrl);
		const socket = net.connect(Number(url.port), url.hostname);
		socket.pause();
		socket.write(`GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${API_KEY}\r\nAccept: text/event-stream\r\n\r\n`);
		const watcher = await connectSse(`${node.baseUrl}/api/v1/stream`, { apiKey: API_KEY, keepEvents: false, onEvent: e => {
			if (e.event === "change") received++;
		} });
		let received = 0;
		await waitFor(async () => ((await node.broker.call("api.streamStats")) as { clients: number }).clients === 2, { timeoutMs: 5000, message: "both connected" });
		const total = 30_000;
		for (let i = 0; i < total / 1000; i++) {
			await post(node, Array.from({ length: 1000 }, (_, j) => cloudEvent("crm.customer.updated", `slow-${j}`, { profile: { step: i } })));
		}
		await waitFor(() => received >= total, { timeoutMs: 30_000, message: `the reading client got all ${total} changes` });
		const { clients } = await node.broker.call("api.streamStats") as { clients: number };
		assert.equal(clients, 1, "the slow client was cut; the one reading was not");
		watcher.close();
		socket.resume();
		const text = await new Promise<string>(resolve => {
			let all = "";
			socket.on("data", d => (all += d.toString()));
			socket.on("end", () => resolve(all));
			socket.on("close", () => resolve(all));
		});
		assert.match(text, /event: error\ndata: \{"reason":"slow consumer"/);
	});
});
