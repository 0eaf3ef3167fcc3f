// Per-customer publish order with ingest-nats on two nodes: interleaved events of 200 customers, published
// concurrently, are applied in each customer's publish order and exactly once — also when the node pulling them
// (a separate process) is SIGKILLed in the middle and the other node takes the stream over.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, type NatsConnection } from "nats";
import { startNats, startRedis, waitFor, type ServerHandle } from "../harness.ts";
import { startTestNode, type TestNode } from "../support/node.ts";
import { startNodeProcess, type NodeProcess } from "../cluster/node-processes.ts";
import { LEASE_BUCKET } from "../../edge/jetstream.intake.ts";
import { appliedIds, pageView, publish } from "./ingest-nats.support.ts";

const CUSTOMERS = 200;
const EVENTS_PER_CUSTOMER = 25;
const PUBLISHERS = 4;

interface Stats { nodeID: string; leading: boolean; applied: number; leaderships: number; barriers: number; deadLettered: number }

void describe("ingest-nats order across nodes and a leader crash", () => {
	let nats: ServerHandle;
	let redis: ServerHandle;
	let a: NodeProcess;
	let b: TestNode;
	let nc: NatsConnection;
	let env: Record<string, string>;

	before(async () => {
		[nats, redis] = await Promise.all([startNats(), startRedis()]);
		env = {
			TRANSPORTER: nats.url, NATS_URL: nats.url, REDIS_URL: redis.url,
			// Ack-wait longer than the lease: the stand-by takes over while the dead node's messages are still pending
			// at the server, the case the barrier is for (with a shorter ack-wait they would be redelivered already).
			INGEST_NATS_ACK_WAIT_MS: "4000", INGEST_NATS_LEASE_TTL_MS: "3000", INGEST_NATS_HANDLE_TIMEOUT_MS: "2000",
			INGEST_NATS_RETRY_MAX_MS: "500"
		};
		nc = await connect({ servers: nats.url });
	});

	after(async () => {
		await a?.kill("SIGKILL");
		await b?.stop();
		await nc?.close();
		await Promise.all([nats?.stop(), redis?.stop()]);
	});

	void it("applies each customer's events in publish order, exactly once, while the pulling node dies mid-stream", async t => {
		// Node A (a process) starts first and takes the lease; node B (in this process) waits as a stand-by.
		a = await startNodeProcess("order-a", { ...env, SERVICES: "customers,api,deadLetters,ingest-nats" });
		const kv = await nc.jetstream().views.kv(LEASE_BUCKET);
		await waitFor(async () => {
			const entry = await kv.get("CRM_EVENTS.crm-ingest");
			return entry?.operation === "PUT" && entry.json<{ holder: string }>().holder.startsWith("order-a/");
		}, { message: "node A never took the lease" });
		b = await startTestNode({ ...env, NODE_ID: "order-b", SERVICES: "customers,api,deadLetters,ingest-nats" });
		const statsOf = (nodeID: string) => b.broker.call<Stats, unknown>("ingest-nats.stats", {}, { nodeID, timeout: 1000 });
		// Both nodes host customers, so A's calls go to B for about half of them.
		await waitFor(async () => (await statsOf("order-a")).leading, { message: "B does not see A leading" });

		const expected = new Map<string, string[]>();
		for (let c = 0; c < CUSTOMERS; c++) expected.set(`ord-${c}`, Array.from({ length: EVENTS_PER_CUSTOMER }, (_, n) => `ord-${c}-${n}`));
		// Interleaved: round n publishes event n of every customer; each publisher owns a quarter of the customers and
		// sends on its own connection, all four at once. One connection keeps its own publish order.
		const connections = await Promise.all(Array.from({ length: PUBLISHERS }, () => connect({ servers: nats.url })));
		const publishRounds = (from: number, to: number, pauseMs: number) => Promise.all(connections.map(async (conn, p) => {
			const js = conn.jetstream();
			const acks: Promise<unknown>[] = [];
			for (let n = from; n < to; n++) {
				for (let c = p; c < CUSTOMERS; c += PUBLISHERS) acks.push(publish(js, pageView(`ord-${c}`, n)));
				// Let the stream be consumed while it is being published.
				if (n % 3 === 2) {
					await Promise.all(acks.splice(0));
					await new Promise(resolve => setTimeout(resolve, pauseMs));
				}
			}
			await Promise.all(acks);
		}));

		// The first 60% of the rounds, paced so A works through them as they come; A is killed at a moment it holds
		// unacknowledged messages, and the rest is published after.
		const splitRound = Math.floor(EVENTS_PER_CUSTOMER * 0.6);
		const firstPart = publishRounds(0, splitRound, 40);
		const jsm = await nc.jetstreamManager();
		let appliedByA = 0;
		let pendingAtKill = 0;
		await waitFor(async () => {
			const info = await jsm.consumers.info("CRM_EVENTS", "crm-ingest");
			pendingAtKill = info.num_ack_pending;
			return pendingAtKill > 0 && info.ack_floor.stream_seq >= CUSTOMERS * 2;
		}, { timeoutMs: 30_000, intervalMs: 2, message: "A never held unacknowledged messages while it worked" }).catch(() => undefined);
		await a.kill("SIGKILL");
		appliedByA = (await jsm.consumers.info("CRM_EVENTS", "crm-ingest")).ack_floor.stream_seq;
		await firstPart;
		await publishRounds(splitRound, EVENTS_PER_CUSTOMER, 0);
		await Promise.all(connections.map(c => c.close()));
		const total = CUSTOMERS * EVENTS_PER_CUSTOMER;

		// B takes over (lease expiry, then the barrier for A's unacknowledged messages) and finishes the stream.
		await waitFor(async () => {
			const info = await jsm.consumers.info("CRM_EVENTS", "crm-ingest");
			return info.num_pending === 0 && info.num_ack_pending === 0;
		}, { timeoutMs: 45_000, intervalMs: 200, message: "the stream was not consumed to the end after the crash" });

		const wrong: string[] = [];
		for (const [id, ids] of expected) {
			const applied = await appliedIds(b.broker, id);
			if (JSON.stringify(applied) !== JSON.stringify(ids)) wrong.push(`${id}: ${applied.join(",")}`);
		}
		assert.deepEqual(wrong, [], "customers whose applied events differ from their publish order");
		const sb = await statsOf("order-b");
		assert.ok(sb.leading && sb.leaderships === 1, "B took the stream over");
		assert.ok(sb.applied >= total - splitRound * CUSTOMERS, "B applied at least what was published after the crash");
		assert.equal(sb.deadLettered, 0);
		t.diagnostic(`A had acknowledged up to ${appliedByA} and held ${pendingAtKill} unacknowledged when SIGKILLed; B applied ${sb.applied} after ${sb.barriers} barrier(s)`);
	});
});
