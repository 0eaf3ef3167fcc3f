// The kept acknowledgement floor of ingest-nats against a real nats-server -js and redis-server. A nats-server that
// comes back with consumer state older than the acknowledgements it confirmed (nats-server 2.9, found by
// `npm run chaos`) is stood in for by a kept floor above the server's own: deliveries at or below it are
// acknowledged again and not applied, the rest are applied in order; a floor kept for another consumer is ignored.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, type JetStreamClient, type JetStreamManager, type KV, type NatsConnection } from "nats";
import { waitFor } from "../harness.ts";
import { startTestNode, type TestNode } from "../support/node.ts";
import { ACK_FLOOR_BUCKET, EVENTS_STREAM } from "../../edge/jetstream.intake.ts";
import { appliedIds, pageView, publish, startPausableNats, startPausableRedis, type PausableServer } from "./ingest-nats.support.ts";

const DURABLE = "crm-ingest";
const FLOOR_KEY = `${EVENTS_STREAM}.${DURABLE}`;

void describe("ingest-nats: the kept acknowledgement floor", () => {
	let nats: PausableServer;
	let redis: PausableServer;
	let nc: NatsConnection;
	let js: JetStreamClient;
	let jsm: JetStreamManager;
	let kv: KV;
	let node: TestNode | null = null;

	const startNode = async () => {
		node = await startTestNode({
			NATS_URL: nats.url, REDIS_URL: redis.url, SERVICES: "customers,api,deadLetters,ingest-nats",
			INGEST_NATS_ACK_WAIT_MS: "2000", INGEST_NATS_LEASE_TTL_MS: "3000"
		});
		const n = node;
		await waitFor(async () => (await n.broker.call<{ leaderships: number }>("ingest-nats.stats")).leaderships > 0, { message: "ingest-nats never led" });
		return n;
	};
	const stopNode = async () => {
		await node?.stop();
		node = null;
	};
	const settled = () => waitFor(async () => {
		const info = await jsm.consumers.info(EVENTS_STREAM, DURABLE);
		return info.num_pending === 0 && info.num_ack_pending === 0;
	}, { timeoutMs: 20_000, message: "messages left unacknowledged" });

	before(async () => {
		[nats, redis] = await Promise.all([startPausableNats(), startPausableRedis()]);
		nc = await connect({ servers: nats.url });
		js = nc.jetstream();
		jsm = await nc.jetstreamManager();
		kv = await js.views.kv(ACK_FLOOR_BUCKET, { history: 1 });
	});

	after(async () => {
		await stopNode();
		await nc?.close();
		await Promise.all([nats?.stop(), redis?.stop()]);
	});

	void it("keeps the consumer's floor while leading, and skips what lies at or below a kept floor the server forgot", async () => {
		const first = await startNode();
		for (let n = 0; n < 3; n++) await publish(js, pageView("floor-a", n));
		await waitFor(async () => (await appliedIds(first.broker, "floor-a")).length === 3, { message: "floor-a not applied" });
		await settled();
		// The leader keeps the floor the server reports (stream sequence 3) in the bucket.
		await waitFor(async () => {
			const entry = await kv.get(FLOOR_KEY);
			return entry !== null && (JSON.parse(entry.string()) as { streamSeq: number }).streamSeq === 3;
		}, { message: "the floor was never kept" });
		await stopNode();

		// Ten events arrive while no node runs (stream sequences 4..13). Then the kept floor says 8 were acknowledged,
		// as if the server had come back with state from before their acks.
		for (let n = 0; n < 10; n++) await publish(js, pageView("floor-b", n));
		const info = await jsm.consumers.info(EVENTS_STREAM, DURABLE);
		assert.equal(info.ack_floor.stream_seq, 3);
		await kv.put(FLOOR_KEY, JSON.stringify({ consumerCreated: info.created, streamSeq: 8 }));

		const second = await startNode();
		const expected = [5, 6, 7, 8, 9].map(n => `floor-b-${n}`);
		await waitFor(async () => (await appliedIds(second.broker, "floor-b")).length >= expected.length, { message: "floor-b not applied" });
		await settled();
		assert.deepEqual(await appliedIds(second.broker, "floor-b"), expected, "sequences 4..8 acknowledged again, not applied; 9..13 applied in order");
		assert.equal((await second.broker.call<{ alreadyAcked: number }>("ingest-nats.stats")).alreadyAcked, 5);
		await stopNode();
	});

	void it("ignores a floor kept for another consumer (one deleted and created again)", async () => {
		await kv.put(FLOOR_KEY, JSON.stringify({ consumerCreated: "2001-01-01T00:00:00Z", streamSeq: 1_000_000 }));
		const n = await startNode();
		for (let i = 0; i < 3; i++) await publish(js, pageView("floor-c", i));
		await waitFor(async () => (await appliedIds(n.broker, "floor-c")).length === 3, { message: "floor-c not applied" });
		assert.equal((await n.broker.call<{ alreadyAcked: number }>("ingest-nats.stats")).alreadyAcked, 0);
		// The leader replaces the foreign floor with its consumer's own.
		const info = await jsm.consumers.info(EVENTS_STREAM, DURABLE);
		await waitFor(async () => {
			const entry = await kv.get(FLOOR_KEY);
			return entry !== null && (JSON.parse(entry.string()) as { consumerCreated: string }).consumerCreated === info.created;
		}, { message: "the foreign floor was never replaced" });
	});
});
