// ingest-nats against a real nats-server -js and redis-server: events published per §9 land exactly once, bad input
// of every kind is dead-lettered with its reason while the service keeps going, market records are de-duplicated by
// content, dead letters are listed/inspected/retried over HTTP, and redis and nats restarts mid-stream lose nothing.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Context } from "moleculer";
import { connect, type JetStreamClient, type JetStreamManager, type NatsConnection } from "nats";
import { freePort, probeTcp, waitFor } from "../harness.ts";
import { startTestNode, type TestNode } from "../support/node.ts";
import { deadLettersReplText } from "../../services/dead-letters.service.ts";
import {
	appliedIds, pageView, publish, publishSurely, startPausableNats, startPausableRedis, subjectOf, waitForApplied,
	type PausableServer, type TestEvent
} from "./ingest-nats.support.ts";

interface DeadLetterView {
	id: string;
	source: string;
	reason: string;
	reasonCode: string;
	payload: unknown;
	payloadEncoding?: string;
	truncated?: boolean;
	subject?: string;
	msgId?: string;
}

function metricValue(text: string, name: string, labels: Record<string, string>): number {
	for (const line of text.split("\n")) {
		if (!line.startsWith(`${name}{`)) continue;
		if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(" ") + 1));
	}
	return 0;
}

void describe("ingest-nats (JetStream) with the Redis store", () => {
	let nats: PausableServer;
	let redis: PausableServer;
	let node: TestNode;
	let nc: NatsConnection;
	let js: JetStreamClient;
	let jsm: JetStreamManager;
	let metricsUrl: string;
	const probeCalls: unknown[] = [];

	const stats = () => node.broker.call<{ applied: number; delivered: number; duplicates: number; marketDuplicates: number; deadLettered: number; retries: number; fences: number; leaderships: number }>("ingest-nats.stats");
	const deadLetters = async (query = "source=nats&limit=200"): Promise<DeadLetterView[]> => {
		const res = await node.api(`/api/v1/dead-letters?${query}`);
		assert.equal(res.status, 200, JSON.stringify(res.body));
		return res.body as DeadLetterView[];
	};

	before(async () => {
		[nats, redis] = await Promise.all([startPausableNats(), startPausableRedis()]);
		const metricsPort = await freePort();
		metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
		node = await startTestNode({
			NATS_URL: nats.url, REDIS_URL: redis.url, METRICS_PORT: String(metricsPort),
			SERVICES: "customers,api,deadLetters,ingest-nats",
			INGEST_NATS_ACK_WAIT_MS: "2000", INGEST_NATS_LEASE_TTL_MS: "3000", INGEST_NATS_HANDLE_TIMEOUT_MS: "1500",
			INGEST_NATS_RETRY_MAX_MS: "300"
		});
		// A stand-in for a source's re-processing action, to retry a dead letter through its retryAction.
		node.broker.createService({
			name: "dlqProbe",
			actions: { reprocess: { visibility: "public", handler: (ctx: Context<{ payload: unknown }>) => void probeCalls.push(ctx.params.payload) } }
		});
		nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
		js = nc.jetstream();
		jsm = await nc.jetstreamManager();
		await waitFor(async () => (await stats()).leaderships > 0, { message: "ingest-nats never started leading" });
		// The API publishes services' REST actions once it has seen them.
		await waitFor(async () => (await node.api("/api/v1/dead-letters?limit=1")).status === 200, { message: "dead-letter routes never appeared" });
	});

	after(async () => {
		await nc?.close();
		await node?.stop();
		await Promise.all([nats?.stop(), redis?.stop()]);
	});

	void it("creates CRM_EVENTS and applies an event once despite a re-publish and a copy under another msg id", async () => {
		const info = await jsm.streams.info("CRM_EVENTS");
		assert.deepEqual(info.config.subjects, ["crm.events.>"]);
		const event = pageView("once-1", 1);
		const first = await publish(js, event);
		const again = await publish(js, event);
		assert.equal(first.duplicate, false);
		assert.equal(again.duplicate, true, "JetStream drops the same Nats-Msg-Id within its window");
		const copy = await publish(js, event, { msgId: `${event.source}/${event.id}#copy` });
		assert.equal(copy.duplicate, false, "a different msg id is a new stream message");

		const before = (await stats()).duplicates;
		await waitFor(async () => (await stats()).duplicates > before, { message: "the copy never reached the actor" });
		assert.deepEqual(await appliedIds(node.broker, "once-1"), ["once-1-1"]);
		const customer = await node.api("/api/v1/customers/once-1");
		assert.equal(customer.body.version, 1);
		assert.equal(customer.body.counters.pageViews, 1);
	});

	void it("dead-letters every kind of bad input with its reason and keeps applying good input", async () => {
		const good = pageView("bad-corpus", 1);
		const withData = (over: Record<string, unknown>) => JSON.stringify({ ...pageView("bad-corpus", 99), ...over });
		const corpus: Array<{ name: string; subject: string; body: string | Uint8Array; code: string; reason: RegExp }> = [
			{ name: "malformed JSON", subject: subjectOf("crm.page.viewed"), body: '{"specversion":"1.0",', code: "invalid_json", reason: /^malformed JSON/ },
			{ name: "not UTF-8", subject: subjectOf("crm.page.viewed"), body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), code: "invalid_encoding", reason: /UTF-8/ },
			{ name: "not an object", subject: subjectOf("crm.page.viewed"), body: "[1,2,3]", code: "invalid_event", reason: /must be a JSON object/ },
			{ name: "wrong type of a field", subject: subjectOf("crm.order.status_changed"), body: withData({ type: "crm.order.status_changed", data: { orderId: 42, newStatus: "PAID" } }), code: "invalid_event", reason: /data\.orderId/ },
			{ name: "oversize message", subject: subjectOf("crm.page.viewed"), body: withData({ data: { url: "x".repeat(300_000) } }), code: "oversize", reason: /exceeds the limit of 262144 bytes/ },
			{ name: "data over 64 KiB", subject: subjectOf("crm.page.viewed"), body: withData({ data: { url: "/", referrer: "r".repeat(70_000) } }), code: "oversize", reason: /64 KiB/ },
			{ name: "unknown type", subject: "crm.events.spaceship.launched", body: withData({ type: "crm.spaceship.launched" }), code: "unknown_type", reason: /unknown event type "crm\.spaceship\.launched"/ },
			{ name: "subject/type mismatch", subject: subjectOf("crm.order.status_changed"), body: withData({}), code: "subject_mismatch", reason: /does not match event type "crm\.page\.viewed"/ },
			{ name: "missing customer id", subject: subjectOf("crm.page.viewed"), body: withData({ subject: undefined }), code: "missing_customer", reason: /"subject"/ },
			{ name: "__proto__ key", subject: subjectOf("crm.page.viewed"), body: '{"specversion":"1.0","id":"p1","source":"/t","type":"crm.page.viewed","subject":"bad-corpus","time":"2026-01-01T00:00:00Z","data":{"url":"/","__proto__":{"admin":true}}}', code: "forbidden_key", reason: /__proto__/ },
			{ name: "constructor key at the top", subject: subjectOf("crm.page.viewed"), body: withData({ constructor: { prototype: {} } }), code: "forbidden_key", reason: /constructor/ }
		];
		for (const [i, c] of corpus.entries()) await publish(js, c.body, { subject: c.subject, msgId: `corpus/${i}` });
		await publish(js, good);

		await waitFor(async () => (await appliedIds(node.broker, "bad-corpus")).length === 1, { message: "the good event after the corpus was not applied" });
		let letters: DeadLetterView[] = [];
		await waitFor(async () => {
			letters = (await deadLetters()).filter(d => d.msgId?.startsWith("corpus/"));
			return letters.length >= corpus.length;
		}, { message: "not every bad input was dead-lettered" });
		assert.equal(letters.length, corpus.length, "one dead letter per bad input");
		for (const [i, c] of corpus.entries()) {
			const dl = letters.find(d => d.msgId === `corpus/${i}`);
			assert.ok(dl, `${c.name}: no dead letter`);
			assert.equal(dl.reasonCode, c.code, `${c.name}: ${dl.reason}`);
			assert.match(dl.reason, c.reason, c.name);
			assert.equal(dl.subject, c.subject, c.name);
			if (typeof c.body === "string" && c.body.length < 100_000) assert.equal(dl.payload, c.body, `${c.name}: the original payload is kept`);
		}
		const binary = letters.find(d => d.msgId === "corpus/1");
		assert.equal(binary?.payloadEncoding, "base64");
		assert.equal(binary?.payload, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]).toString("base64"));
		assert.deepEqual(await appliedIds(node.broker, "bad-corpus"), ["bad-corpus-1"], "nothing from the corpus was applied");

		const metrics = await (await fetch(metricsUrl)).text();
		assert.equal(metricValue(metrics, "crm_dead_letters_total", { source: "nats", reason: "invalid_json" }), 1, "dead letters are counted per source and reason");
		assert.equal(metricValue(metrics, "crm_dead_letters_total", { source: "nats", reason: "forbidden_key" }), 2);
		assert.ok((await stats()).deadLettered >= corpus.length);
	});

	void it("drops a market record whose content was applied already (Bloom filter), acks it, and counts it", async () => {
		const signal = (id: string, price: number, time = "2026-03-02T10:00:00Z") => ({
			specversion: "1.0", id, source: "/scraper/acme", type: "crm.market.signal", subject: "market-1", time,
			data: { competitor: "Acme", product: "fibre-100", price, currency: "EUR" }
		});
		const before = (await stats()).marketDuplicates;
		await publish(js, signal("m-1", 29.99));
		await publish(js, signal("m-2", 29.99, "2026-03-02T18:00:00Z"));
		await publish(js, signal("m-3", 24.99));
		await publish(js, signal("m-4", 24.99, "2026-03-03T10:00:00Z"));
		// A market record on a subject its type does not match is still a dead letter, under source "market".
		await publish(js, signal("m-5", 1), { subject: "crm.events.market.price" });

		await waitFor(async () => (await appliedIds(node.broker, "market-1")).length >= 3, { message: "market signals not applied" });
		await waitFor(async () => (await stats()).marketDuplicates === before + 1, { message: "the duplicate was not counted" });
		assert.deepEqual(await appliedIds(node.broker, "market-1"), ["m-1", "m-3", "m-4"]);
		const market = await deadLetters("source=market");
		assert.equal(market.length, 1);
		assert.equal(market[0].reasonCode, "subject_mismatch");
		const consumer = await jsm.consumers.info("CRM_EVENTS", "crm-ingest");
		await waitFor(async () => (await jsm.consumers.info("CRM_EVENTS", "crm-ingest")).num_ack_pending === 0, { message: "the duplicate was not acknowledged" });
		assert.ok(consumer.delivered.stream_seq >= consumer.ack_floor.stream_seq);
	});

	void it("lists, inspects and retries dead letters over HTTP (republish and retry action), and from the REPL", async () => {
		// A NATS dead letter whose event is fine now (say customers were rejecting it): retry republishes it.
		const event = pageView("dlq-retry", 1);
		const recorded = await node.broker.call<DeadLetterView, unknown>("deadLetters.record", {
			source: "nats", reason: "customers.handle rejected it: temporarily read-only", payload: JSON.stringify(event),
			subject: subjectOf(event.type), msgId: `${event.source}/${event.id}`
		});
		const shown = await node.api(`/api/v1/dead-letters/${recorded.id}`);
		assert.equal(shown.status, 200);
		assert.equal(shown.body.reason, "customers.handle rejected it: temporarily read-only");
		assert.equal(shown.body.payload, JSON.stringify(event));
		assert.equal((await node.api("/api/v1/dead-letters/999999")).status, 404);
		assert.equal((await node.api("/api/v1/dead-letters?limit=0")).status, 400);

		const retried = await node.api(`/api/v1/dead-letters/${recorded.id}/retry`, { method: "POST" });
		assert.equal(retried.status, 200, JSON.stringify(retried.body));
		assert.deepEqual(retried.body, { id: recorded.id, retried: true, via: "republish" });
		await waitFor(async () => (await appliedIds(node.broker, "dlq-retry")).length === 1, { message: "the retried event was not applied" });
		assert.equal((await node.api(`/api/v1/dead-letters/${recorded.id}`)).status, 404, "a retried dead letter is removed");
		// Retrying the same event again is harmless: the actor knows it by source + id.
		const twice = await node.broker.call<DeadLetterView, unknown>("deadLetters.record", {
			source: "nats", reason: "again", payload: JSON.stringify(event), subject: subjectOf(event.type)
		});
		const before = (await stats()).duplicates;
		assert.equal((await node.api(`/api/v1/dead-letters/${twice.id}/retry`, { method: "POST" })).status, 200);
		await waitFor(async () => (await stats()).duplicates > before);
		assert.deepEqual(await appliedIds(node.broker, "dlq-retry"), ["dlq-retry-1"]);

		// Another source's dead letter is retried through its retryAction with { payload }.
		const webhook = await node.broker.call<DeadLetterView, unknown>("deadLetters.record", {
			source: "webhook", reason: "mapper failed", payload: { raw: { a: 1 } }, retryAction: "dlqProbe.reprocess"
		});
		const listed = await deadLetters("source=webhook&limit=5");
		assert.deepEqual(listed.map(d => d.id), [webhook.id]);
		assert.equal((await node.api(`/api/v1/dead-letters/${webhook.id}/retry`, { method: "POST" })).body.via, "action");
		assert.deepEqual(probeCalls, [{ raw: { a: 1 } }]);

		// Newest first, and without a key no access.
		const a = await node.broker.call<DeadLetterView, unknown>("deadLetters.record", { source: "erp", reason: "first", payload: "x" });
		const b = await node.broker.call<DeadLetterView, unknown>("deadLetters.record", { source: "erp", reason: "second", payload: "y" });
		assert.deepEqual((await deadLetters("source=erp")).map(d => d.id), [b.id, a.id]);
		assert.equal((await node.api("/api/v1/dead-letters", { headers: { authorization: "" } })).status, 401);

		// The REPL command shows the same dead letters.
		assert.match(await deadLettersReplText(node.broker, { verb: "show", id: a.id }), /"reason": "first"/);
		const listing = await deadLettersReplText(node.broker, { verb: "list", options: { source: "erp" } });
		assert.deepEqual(listing.split("\n").map(l => l.split("  ")[0]), [b.id, a.id]);
		assert.match(await deadLettersReplText(node.broker, { verb: "retry", id: a.id }), /^error: .*no retry action/);
	});

	void it("retries in place while redis is down, then applies every event exactly once and in order", async () => {
		const expected = new Map<string, string[]>();
		const events: TestEvent[] = [];
		for (let n = 0; n < 20; n++) for (let c = 0; c < 10; c++) {
			const e = pageView(`redis-down-${c}`, n);
			events.push(e);
			expected.set(e.subject as string, [...(expected.get(e.subject as string) ?? []), e.id]);
		}
		const retriesBefore = (await stats()).retries;
		const dlqBefore = (await deadLetters("limit=500")).length;
		const half = events.length / 2;
		for (const e of events.slice(0, half)) await publish(js, e);
		// Down for longer than a handle call may take: the calls time out and are retried in place. The second half
		// is published only once redis is really down, so those events meet the outage.
		const bounce = redis.bounce(2500);
		await waitFor(async () => !(await probeTcp(redis.port)), { timeoutMs: 5000, intervalMs: 20, message: "redis-server did not go down" });
		for (const e of events.slice(half)) await publish(js, e);
		await bounce;
		await waitForApplied(node.broker, expected, 30_000);
		for (const [id, ids] of expected) assert.deepEqual(await appliedIds(node.broker, id), ids, id);
		assert.ok((await stats()).retries > retriesBefore, "the outage caused retries");
		assert.equal((await deadLetters("limit=500")).length, dlqBefore, "nothing was dead-lettered");
	});

	void it("restarting nats-server and redis-server mid-stream: ingestion resumes by itself, each event applied once", async () => {
		const customers = 12;
		const perCustomer = 25;
		const expected = new Map<string, string[]>();
		for (let c = 0; c < customers; c++) expected.set(`restart-${c}`, Array.from({ length: perCustomer }, (_, n) => `restart-${c}-${n}`));
		const dlqBefore = (await deadLetters("limit=500")).length;
		const fencesBefore = (await stats()).fences;
		let published = 0;
		// One publisher per customer, each in order; a publish that fails while NATS is down is retried (same msg id).
		const publishers = [...expected.keys()].map(async id => {
			for (let n = 0; n < perCustomer; n++) {
				await publishSurely(js, pageView(id, n));
				published++;
				await new Promise(resolve => setTimeout(resolve, 15));
			}
		});
		await waitFor(() => published >= 80, { message: "publishing did not start" });
		await nats.bounce(2000);
		await waitFor(() => published >= 200, { timeoutMs: 30_000, message: "publishing did not resume after the nats restart" });
		await redis.bounce(1000);
		await Promise.all(publishers);
		await waitForApplied(node.broker, expected, 45_000);
		for (const [id, ids] of expected) assert.deepEqual(await appliedIds(node.broker, id), ids, id);
		assert.equal((await deadLetters("limit=500")).length, dlqBefore, "nothing was dead-lettered");
		const s = await stats();
		assert.ok(s.fences > fencesBefore, "the nats outage outlasted the lease margin, so the leader fenced and took over again");
		await waitFor(async () => {
			const info = await jsm.consumers.info("CRM_EVENTS", "crm-ingest");
			return info.num_pending === 0 && info.num_ack_pending === 0;
		}, { timeoutMs: 15_000, message: "messages left unacknowledged" });
	});
});
