// The HTTP contract end to end on embedded defaults (NeDB store under a temp DATA_DIR).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { cloudEvent, startTestNode, type TestNode } from "../support/node.ts";

const cancel = (customerId: string, orderId: string, over: Record<string, unknown> = {}) =>
	cloudEvent("crm.order.status_changed", customerId, { orderId, newStatus: "CANCELLED" }, over);

describe("HTTP API on embedded defaults", () => {
	let node: TestNode;
	before(async () => {
		node = await startTestNode();
	});
	after(async () => {
		await node?.stop();
	});

	it("answers health probes without a key", async () => {
		for (const p of ["/health/live", "/health/ready"]) {
			const res = await fetch(node.baseUrl + p);
			assert.equal(res.status, 200, p);
		}
	});

	it("rejects API calls without a valid bearer key", async () => {
		const none = await node.api("/api/v1/customers/c-1", { headers: { authorization: "" } });
		assert.equal(none.status, 401);
		const wrong = await node.api("/api/v1/customers/c-1", { headers: { authorization: "Bearer not-the-key-at-all-xx" } });
		assert.equal(wrong.status, 401);
	});

	it("a cancelled order raises risk by 10, and posting it again changes nothing", async () => {
		const event = cancel("cust-seed", "o-1");
		const first = await node.api("/api/v1/events", { method: "POST", json: event });
		assert.equal(first.status, 202);
		assert.deepEqual(first.body, { accepted: 1, duplicates: 0 });
		const read1 = await node.api("/api/v1/customers/cust-seed");
		assert.equal(read1.status, 200);
		assert.equal(read1.body.risk.score, 10);
		assert.equal(read1.body.risk.factors["order.cancelled"], 10);
		assert.equal(read1.body.version, 1);

		const again = await node.api("/api/v1/events", { method: "POST", json: event });
		assert.equal(again.status, 202);
		assert.deepEqual(again.body, { accepted: 0, duplicates: 1 });
		const read2 = await node.api("/api/v1/customers/cust-seed");
		assert.equal(read2.body.risk.score, 10);
		assert.equal(read2.body.version, 1);
	});

	it("a batch with one invalid event is rejected whole with its index and reason", async () => {
		const batch = [cancel("cust-batch-a", "o-1"), { ...cancel("cust-batch-b", "o-2"), subject: undefined }, cancel("cust-batch-c", "o-3")];
		const res = await node.api("/api/v1/events", { method: "POST", json: batch });
		assert.equal(res.status, 400);
		assert.equal(res.body.errors.length, 1);
		assert.equal(res.body.errors[0].index, 1);
		assert.match(res.body.errors[0].reason, /subject/);
		for (const id of ["cust-batch-a", "cust-batch-c"]) {
			const read = await node.api(`/api/v1/customers/${id}`);
			assert.equal(read.status, 404, `${id} must not exist`);
		}
	});

	it("bad input gets a 400 with the reason", async () => {
		const cases: Array<[string, RequestInit & { json?: unknown }, RegExp]> = [
			["malformed JSON", { method: "POST", body: "{not json", headers: { "content-type": "application/json" } }, /./],
			["unknown type", { method: "POST", json: cloudEvent("crm.spaceship.launched", "c-x", {}) }, /unknown event type/],
			["wrong data type", { method: "POST", json: cloudEvent("crm.order.status_changed", "c-x", { orderId: 5, newStatus: "CANCELLED" }) }, /orderId/],
			["prototype pollution", { method: "POST", body: '{"specversion":"1.0","id":"p1","source":"/t","type":"crm.page.viewed","subject":"c-x","time":"2026-01-01T00:00:00Z","data":{"url":"/","__proto__":{"admin":true}}}', headers: { "content-type": "application/json" } }, /__proto__/]
		];
		for (const [name, init, reason] of cases) {
			const res = await node.api("/api/v1/events", init);
			assert.equal(res.status, 400, name);
			const text = JSON.stringify(res.body);
			assert.match(text, reason, name);
		}
		assert.equal((await node.api("/api/v1/customers/c-x")).status, 404);
	});

	it("unknown customer is 404; journal is newest first; risk listing is ordered", async () => {
		assert.equal((await node.api("/api/v1/customers/nobody-here")).status, 404);
		const events = [cancel("cust-j", "o-1"), cancel("cust-j", "o-2"), cloudEvent("crm.page.viewed", "cust-j", { url: "/pricing" })];
		const post = await node.api("/api/v1/events", { method: "POST", json: events });
		assert.deepEqual(post.body, { accepted: 3, duplicates: 0 });
		const journal = await node.api("/api/v1/customers/cust-j/events?limit=2");
		assert.equal(journal.status, 200);
		assert.deepEqual(journal.body.map((e: { event: { id: string } }) => e.event.id), [events[2].id, events[1].id]);
		const list = await node.api("/api/v1/customers?riskAbove=15&limit=10");
		assert.equal(list.status, 200);
		assert.ok(list.body.length >= 1);
		assert.equal(list.body[0].id, "cust-j");
		assert.equal(list.body[0].score, 20);
		for (const row of list.body) assert.ok(row.score > 15);
	});

	it("passivation then reactivation keeps state", async () => {
		const event = cancel("cust-p", "o-1");
		await node.api("/api/v1/events", { method: "POST", json: event });
		const passivated = await node.broker.call<{ passivated: boolean }, { customerId: string }>("customers.passivate", { customerId: "cust-p" });
		assert.equal(passivated.passivated, true);
		const read = await node.api("/api/v1/customers/cust-p");
		assert.equal(read.body.risk.score, 10);
		const redelivered = await node.api("/api/v1/events", { method: "POST", json: event });
		assert.deepEqual(redelivered.body, { accepted: 0, duplicates: 1 }, "idempotency survives passivation");
		const dup = await node.api("/api/v1/events", { method: "POST", json: cancel("cust-p", "o-1", { id: "never-reused" }) });
		assert.deepEqual(dup.body, { accepted: 1, duplicates: 0 }, "a distinct event for an already-cancelled order is applied but adds no risk");
		assert.equal((await node.api("/api/v1/customers/cust-p")).body.risk.score, 10);
	});
});

describe("restart", () => {
	it("keeps state and idempotency across a node restart", async () => {
		const first = await startTestNode();
		const event = cancel("cust-r", "o-1");
		await first.api("/api/v1/events", { method: "POST", json: event });
		await first.stop({ keepData: true });
		const second = await startTestNode({}, first.dataDir);
		try {
			const read = await second.api("/api/v1/customers/cust-r");
			assert.equal(read.status, 200);
			assert.equal(read.body.risk.score, 10);
			const again = await second.api("/api/v1/events", { method: "POST", json: event });
			assert.deepEqual(again.body, { accepted: 0, duplicates: 1 });
		} finally {
			await second.stop();
			const { rm } = await import("node:fs/promises");
			await rm(first.dataDir, { recursive: true, force: true });
		}
	});
});
