// Signed webhooks end to end: HMAC and clock window (401), 503 without a secret, idempotent replays on the embedded
// store and on Redis, concurrent duplicates, the shop mapper, and a bad-input corpus that is dead-lettered.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startRedis, type ServerHandle } from "../harness.ts";
import { cloudEvent, startTestNode, type TestNode } from "../support/node.ts";
import { deadLetterSink, edgeServices, postWebhook, type DeadLetterSink } from "../support/edge.ts";
import { Redis } from "ioredis";

const SECRET = "whsec-test-0123456789abcdef";
const cancel = (customerId: string, orderId: string, over: Record<string, unknown> = {}) =>
	cloudEvent("crm.order.status_changed", customerId, { orderId, newStatus: "CANCELLED" }, over);

async function customer(node: TestNode, id: string): Promise<{ status: number; body: any }> {
	return node.api(`/api/v1/customers/${id}`);
}

describe("webhooks on the embedded store", () => {
	let node: TestNode;
	let dead: DeadLetterSink;
	before(async () => {
		node = await startTestNode({ SERVICES: edgeServices("ingest-webhook"), WEBHOOK_SECRET: SECRET, WEBHOOK_MAX_BODY_BYTES: String(256 * 1024) });
		dead = await deadLetterSink(node.broker);
	});
	after(async () => {
		await node?.stop();
	});

	it("applies a signed event without a bearer key, answering 202 only after it is persisted", async () => {
		const res = await postWebhook(node.baseUrl, "partner", JSON.stringify(cancel("wh-c1", "o-1")), { secret: SECRET });
		assert.equal(res.status, 202, JSON.stringify(res.body));
		assert.deepEqual(res.body, { accepted: 1, duplicates: 0 });
		// Read right after the 202: the change must already be there.
		const read = await customer(node, "wh-c1");
		assert.equal(read.status, 200);
		assert.equal(read.body.risk.score, 10);
	});

	it("a replay with the same Idempotency-Key gets the same response and applies nothing", async () => {
		const body = JSON.stringify([cancel("wh-idem", "o-1"), cancel("wh-idem", "o-2")]);
		const first = await postWebhook(node.baseUrl, "partner", body, { secret: SECRET, idempotencyKey: "delivery-42" });
		assert.equal(first.status, 202);
		assert.deepEqual(first.body, { accepted: 2, duplicates: 0 });
		const version = (await customer(node, "wh-idem")).body.version;
		// A replay later in the window is signed again (a new timestamp) but is the same delivery.
		const replay = await postWebhook(node.baseUrl, "partner", body, { secret: SECRET, idempotencyKey: "delivery-42", timestamp: Math.floor(Date.now() / 1000) + 1 });
		assert.equal(replay.status, 202);
		assert.deepEqual(replay.body, first.body, "the stored response, not { accepted: 0, duplicates: 2 }");
		assert.equal(replay.headers.get("idempotent-replayed"), "true");
		assert.equal((await customer(node, "wh-idem")).body.version, version);
		assert.equal((await customer(node, "wh-idem")).body.risk.score, 20);

		const reused = await postWebhook(node.baseUrl, "partner", JSON.stringify(cancel("wh-idem", "o-3")), { secret: SECRET, idempotencyKey: "delivery-42" });
		assert.equal(reused.status, 422);
		assert.equal(reused.body.error.type, "IDEMPOTENCY_KEY_REUSED");
		const sameKeyOtherSource = await postWebhook(node.baseUrl, "other", JSON.stringify(cancel("wh-idem2", "o-1")), { secret: SECRET, idempotencyKey: "delivery-42" });
		assert.equal(sameKeyOtherSource.status, 202, "keys are scoped per webhook source");
	});

	it("concurrent deliveries with one key: one is applied, the others wait their turn (409) or get its answer", async () => {
		const body = JSON.stringify(cancel("wh-race", "o-1"));
		const results = await Promise.all(Array.from({ length: 8 }, () => postWebhook(node.baseUrl, "partner", body, { secret: SECRET, idempotencyKey: "race-1" })));
		const statuses = results.map(r => r.status);
		assert.ok(statuses.every(s => s === 202 || s === 409), statuses.join(","));
		assert.ok(statuses.includes(202));
		for (const r of results) {
			if (r.status === 202) assert.deepEqual(r.body, { accepted: 1, duplicates: 0 });
			else assert.equal(r.body.error.type, "IDEMPOTENCY_IN_FLIGHT");
		}
		const read = await customer(node, "wh-race");
		assert.equal(read.body.version, 1);
	});

	it("without a key, the event ids make a redelivery a no-op", async () => {
		const body = JSON.stringify(cancel("wh-nokey", "o-1"));
		assert.deepEqual((await postWebhook(node.baseUrl, "partner", body, { secret: SECRET })).body, { accepted: 1, duplicates: 0 });
		assert.deepEqual((await postWebhook(node.baseUrl, "partner", body, { secret: SECRET })).body, { accepted: 0, duplicates: 1 });
	});

	it("maps a shop order webhook to crm.order.status_changed", async () => {
		const delivery = { id: "evt_9001", topic: "orders/updated", created_at: new Date().toISOString(), order: { id: 9001, customer_id: "wh-shop", status: "cancelled", total_price: "10.00", currency: "EUR" } };
		const res = await postWebhook(node.baseUrl, "shop", JSON.stringify(delivery), { secret: SECRET });
		assert.equal(res.status, 202, JSON.stringify(res.body));
		const journal = await node.api("/api/v1/customers/wh-shop/events?limit=5");
		assert.equal(journal.body[0].event.type, "crm.order.status_changed");
		assert.equal(journal.body[0].event.data.newStatus, "CANCELLED");
		assert.equal((await customer(node, "wh-shop")).body.risk.score, 10);
	});

	it("refuses unauthenticated requests with 401 and dead-letters none of them", async () => {
		const body = JSON.stringify(cancel("wh-unauth", "o-1"));
		const now = Math.floor(Date.now() / 1000);
		const before = (await dead.list("webhook")).length;
		const cases: Array<[string, Parameters<typeof postWebhook>[3], RegExp]> = [
			["a wrong secret", { secret: "not-the-secret-0123456789" }, /does not match/],
			["a stale timestamp", { secret: SECRET, timestamp: now - 301 }, /away from the server clock/],
			["a timestamp from the future", { secret: SECRET, timestamp: now + 400 }, /away from the server clock/],
			["no signature", { secret: SECRET, signature: "" }, /missing X-Crm-Signature/],
			["a malformed signature", { secret: SECRET, signature: "sha256=xyz" }, /sha256=<64 hex/],
			["no timestamp", { secret: SECRET, headers: { "x-crm-timestamp": "" } }, /missing X-Crm-Timestamp/]
		];
		for (const [name, opts, reason] of cases) {
			const res = await postWebhook(node.baseUrl, "partner", body, opts);
			assert.equal(res.status, 401, name);
			assert.equal(res.body.error.type, "INVALID_SIGNATURE", name);
			assert.match(res.body.error.message, reason, name);
		}
		// Signed, then altered in transit.
		const ts = Math.floor(Date.now() / 1000);
		const { signWebhook } = await import("../../models/webhook-signature.ts");
		const tampered = await postWebhook(node.baseUrl, "partner", body.replace("CANCELLED", "PAID"), { secret: SECRET, timestamp: ts, signature: signWebhook(SECRET, ts, body) });
		assert.equal(tampered.status, 401);
		assert.equal((await customer(node, "wh-unauth")).status, 404);
		assert.equal((await dead.list("webhook")).length, before);
	});

	it("dead-letters every bad input with its reason, answers 400, keeps running and loses nothing valid", async () => {
		const base = cancel("wh-bad", "o-1");
		const corpus: Array<[string, string, RegExp]> = [
			["malformed JSON", "{\"specversion\": \"1.0\",", /body is not valid JSON/],
			["wrong types", JSON.stringify({ ...base, data: { orderId: 7, newStatus: "CANCELLED" } }), /data\.orderId/],
			["unknown type", JSON.stringify({ ...base, type: "crm.spaceship.launched" }), /unknown event type/],
			["missing customer id", JSON.stringify({ ...base, subject: undefined }), /missing required attribute "subject"/],
			["prototype-polluting keys", `{"specversion":"1.0","id":"pp-1","source":"/t","type":"crm.page.viewed","subject":"wh-bad","time":"2026-01-01T00:00:00Z","data":{"url":"/","__proto__":{"admin":true}}}`, /__proto__/],
			["oversize data", JSON.stringify({ ...base, data: { orderId: "o-big", newStatus: "CANCELLED", note: "x".repeat(70_000) } }), /exceeds 64 KiB/],
			["one bad event in a batch", JSON.stringify([cancel("wh-bad", "o-2"), { ...cancel("wh-bad", "o-3"), time: "yesterday" }]), /\[1\]:? attribute "time"/],
			["a shop payload that cannot be mapped", JSON.stringify({ id: "evt_1", topic: "orders/updated", order: { id: 1, customer_id: "wh-bad", status: "teleported" } }), /status "teleported" is not mapped/]
		];
		const valid: string[] = [];
		for (const [i, [name, body, reason]] of corpus.entries()) {
			const source = name.startsWith("a shop") ? "shop" : "partner";
			const res = await postWebhook(node.baseUrl, source, body, { secret: SECRET });
			assert.equal(res.status, 400, `${name}: ${JSON.stringify(res.body)}`);
			assert.ok(Array.isArray(res.body.errors) && res.body.errors.length > 0, name);
			assert.match(res.body.errors.map((e: { index: number; reason: string }) => `[${e.index}] ${e.reason}`).join("; "), reason, name);
			const letter = (await dead.list("webhook")).find(l => {
				const kept = l.payload as { body: string; truncatedFrom?: number };
				return kept.body === body || (kept.truncatedFrom === body.length && body.startsWith(kept.body));
			});
			assert.ok(letter, `${name}: dead-lettered`);
			assert.match(letter.reason, reason, `${name}: dead letter reason`);
			const kept = letter.payload as { body: string; truncatedFrom?: number };
			if (body.length <= 64 * 1024) assert.ok(kept.body === body && kept.truncatedFrom === undefined, `${name}: the dead letter keeps the original body`);
			else assert.ok(kept.truncatedFrom === body.length && kept.body.length === 64 * 1024 && body.startsWith(kept.body), `${name}: a huge body is kept truncated, and says so`);
			assert.equal(letter.retryAction, "ingest-webhook.reprocess");
			// A valid delivery between the bad ones is applied: the service keeps running.
			const ok = cancel("wh-good", `ok-${i}`);
			valid.push(ok.id);
			assert.equal((await postWebhook(node.baseUrl, "partner", JSON.stringify(ok), { secret: SECRET })).status, 202, `${name}: next valid one`);
		}
		assert.equal((await customer(node, "wh-bad")).status, 404, "nothing of a rejected batch is applied");
		const journal = await node.api(`/api/v1/customers/wh-good/events?limit=100`);
		assert.deepEqual(journal.body.map((e: { event: { id: string } }) => e.event.id).reverse(), valid);

		const tooBig = await postWebhook(node.baseUrl, "partner", JSON.stringify({ pad: "x".repeat(300 * 1024) }), { secret: SECRET });
		assert.equal(tooBig.status, 413, "a body over WEBHOOK_MAX_BODY_BYTES is refused before it is read whole");
		assert.equal(tooBig.body.error.type, "BODY_TOO_LARGE");
	});

	it("a rejected delivery replayed with its Idempotency-Key gets the same 400 and is not dead-lettered twice", async () => {
		const body = JSON.stringify({ ...cancel("wh-bad2", "o-1"), type: "crm.nope.nope" });
		const first = await postWebhook(node.baseUrl, "partner", body, { secret: SECRET, idempotencyKey: "bad-1" });
		const count = (await dead.list("webhook")).length;
		const again = await postWebhook(node.baseUrl, "partner", body, { secret: SECRET, idempotencyKey: "bad-1" });
		assert.equal(first.status, 400);
		assert.deepEqual(again.body, first.body);
		assert.equal((await dead.list("webhook")).length, count);
	});

	it("a dead letter can be re-processed through its retry action once the cause is fixed", async () => {
		const body = JSON.stringify(cancel("wh-retry", "o-1"));
		const out = await node.broker.call<{ accepted: number }, unknown>("ingest-webhook.reprocess", { payload: { source: "partner", body } });
		assert.equal(out.accepted, 1);
		await assert.rejects(node.broker.call("ingest-webhook.reprocess", { payload: { source: "partner", body: "{" } }), /not valid JSON/);
	});
});

describe("webhooks without WEBHOOK_SECRET", () => {
	it("refuse every request with 503, signed or not", async () => {
		const node = await startTestNode({ SERVICES: edgeServices("ingest-webhook") });
		try {
			const res = await postWebhook(node.baseUrl, "partner", JSON.stringify(cancel("wh-nosecret", "o-1")), { secret: "any-secret-0123456789" });
			assert.equal(res.status, 503);
			assert.equal(res.body.error.type, "WEBHOOKS_DISABLED");
			assert.equal((await customer(node, "wh-nosecret")).status, 404);
		} finally {
			await node.stop();
		}
	});
});

describe("webhook idempotency keys in Redis", () => {
	let redis: ServerHandle;
	let node: TestNode;
	before(async () => {
		redis = await startRedis();
		node = await startTestNode({ SERVICES: edgeServices("ingest-webhook"), WEBHOOK_SECRET: SECRET, REDIS_URL: redis.url, WEBHOOK_IDEMPOTENCY_TTL_S: "3600" });
	});
	after(async () => {
		await node?.stop();
		await redis?.stop();
	});

	it("keeps the key and its response in Redis with a TTL; a replay is answered from it", async () => {
		const body = JSON.stringify(cancel("wh-redis", "o-1"));
		const first = await postWebhook(node.baseUrl, "partner", body, { secret: SECRET, idempotencyKey: "r-1" });
		assert.equal(first.status, 202);
		const client = new Redis(redis.url);
		try {
			const raw = await client.get("crm:webhook:idem:partner:r-1");
			assert.ok(raw !== null);
			assert.equal(JSON.parse(raw).state, "done");
			const ttl = await client.pttl("crm:webhook:idem:partner:r-1");
			assert.ok(ttl > 3500_000 && ttl <= 3600_000, `ttl ${ttl}`);
		} finally {
			client.disconnect();
		}
		const replay = await postWebhook(node.baseUrl, "partner", body, { secret: SECRET, idempotencyKey: "r-1" });
		assert.deepEqual(replay.body, first.body);
		assert.equal(replay.headers.get("idempotent-replayed"), "true");
		assert.equal((await customer(node, "wh-redis")).body.version, 1);
	});
});
