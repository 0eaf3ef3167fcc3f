// Real node processes on real NATS + Redis: thousands of customers written through the API of every node by a
// client that retries with the same event ids, while a 4th node joins and another is SIGKILLed. Afterwards every
// customer equals the pure reducer's result, nothing acknowledged is missing or doubled, every node can read it.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { ServiceBroker } from "moleculer";
import { startNats, startRedis, waitFor, type ServerHandle } from "../harness.ts";
import { loadConfig } from "../../config/index.ts";
import { brokerOptions } from "../../moleculer.config.ts";
import { ownerOf } from "../../actors/sharding.ts";
import { CLUSTER_COMMANDS } from "../../app/repl-commands.ts";
import { RetryingClient, apiCall, runPool, startNodeProcess, type NodeProcess } from "./node-processes.ts";
import { Pacer, expectedView, referenceContext, referenceState, workloadEvent, type RawEvent } from "./workload.ts";

const CUSTOMERS = 2000;
const EVENTS_PER_CUSTOMER = 4;
/** Paced so the join and the crash happen while events are still flowing (about 20 s of load). */
const EVENTS_PER_SECOND = 400;
const CONCURRENCY = 64;
/** Customers of the node that gets killed, each sent one more event right after the kill. */
const PROBES = 30;
/** Customers of the killed node whose decay reminder comes due a few seconds after the kill. */
const REMINDER_CUSTOMERS = 10;
const REMINDER_DUE_AFTER_KILL_MS = 4000;
const RECOVERY_BOUND_MS = 10_000;

const NODE_ENV = {
	CLUSTER_HEARTBEAT_INTERVAL_S: "1",
	CLUSTER_HEARTBEAT_TIMEOUT_S: "3",
	ACTOR_REMINDER_POLL_MS: "300",
	CHURN_MODEL: "off"
};

interface NodeStatsAnswer {
	nodeID: string;
	members: string[];
	strayActors: number;
	conflicts: number;
	released: number;
	active: number;
}

describe("cluster under churn: join + SIGKILL while a retrying client writes through every node", () => {
	let nats: ServerHandle;
	let redis: ServerHandle;
	let observer: ServiceBroker;
	const nodes = new Map<string, NodeProcess>();
	let env: Record<string, string>;

	async function statsOf(nodeID: string): Promise<NodeStatsAnswer> {
		return observer.call<NodeStatsAnswer, Record<string, never>>("customers.nodeStats", {}, { nodeID, retries: 0, timeout: 5000 });
	}

	/** Every live node sees exactly `ids` as members and holds no actor it does not own. */
	async function settled(ids: string[]): Promise<boolean> {
		const all = await Promise.all(ids.map(statsOf));
		return all.every(s => s.members.join(",") === [...ids].sort().join(",") && s.strayActors === 0);
	}

	before(async () => {
		[nats, redis] = await Promise.all([startNats(), startRedis()]);
		env = { TRANSPORTER: nats.url, REDIS_URL: redis.url, ...NODE_ENV };
		const started = await Promise.all(["node-1", "node-2", "node-3"].map(id => startNodeProcess(id, env)));
		for (const n of started) nodes.set(n.nodeId, n);
		observer = new ServiceBroker(brokerOptions(loadConfig({ ...env, NODE_ID: "test-observer", LOG_LEVEL: "error" })));
		await observer.start();
		await waitFor(() => settled(["node-1", "node-2", "node-3"]), { timeoutMs: 15_000, message: "3 nodes see each other" });
	});

	after(async () => {
		await observer?.stop();
		await Promise.all([...nodes.values()].map(n => n.kill("SIGTERM")));
		await Promise.all([nats?.stop(), redis?.stop()]);
	});

	it("keeps every acknowledged event exactly once, in order, on every node", { timeout: 120_000 }, async t => {
		const config = loadConfig(env);
		const ctx = referenceContext(config);
		const runId = `run${Date.now().toString(36)}`;
		const t0 = Date.now() - 3600_000;
		const plan = new Map<string, RawEvent[]>();
		for (let i = 0; i < CUSTOMERS; i++) {
			const id = `c-${i}`;
			plan.set(id, Array.from({ length: EVENTS_PER_CUSTOMER }, (_, k) => workloadEvent(runId, id, i, k, t0 + i * 10 + k)));
		}
		const total = CUSTOMERS * EVENTS_PER_CUSTOMER;
		const client = new RetryingClient([...nodes.values()]);
		let acked = 0;
		/** First attempts answered "duplicate": only possible when an internal retry re-sent an event the killed node had persisted. */
		let firstAttemptDuplicates = 0;
		let killed = false;
		let duplicatesBeforeKill = 0;
		const pacer = new Pacer(EVENTS_PER_SECOND);

		async function send(event: RawEvent, c: RetryingClient): Promise<void> {
			const res = await c.call("/api/v1/events", { method: "POST", json: event });
			assert.equal(res.status, 202, `event ${event.id}: ${JSON.stringify(res.body)}`);
			assert.equal(res.body.accepted + res.body.duplicates, 1, `event ${event.id}: ${JSON.stringify(res.body)}`);
			// A duplicate on a first attempt means an earlier try was applied but its answer was lost: Moleculer retried
			// a call whose owner died after persisting. Without a crash that cannot happen.
			if (res.attempts === 1 && res.body.duplicates === 1) {
				firstAttemptDuplicates++;
				if (!killed) duplicatesBeforeKill++;
			}
		}

		const load = runPool(CUSTOMERS, CONCURRENCY, async i => {
			// One customer's events strictly one after the other: the next is sent once the previous is acknowledged.
			for (const event of plan.get(`c-${i}`) as RawEvent[]) {
				await pacer.take();
				await send(event, client);
				acked++;
			}
		});

		const churn = (async () => {
			await waitFor(() => acked >= total * 0.2, { timeoutMs: 60_000, message: "20% acknowledged" });
			const joinedAt = acked;
			const node4 = await startNodeProcess("node-4", env);
			nodes.set(node4.nodeId, node4);
			client.setNodes([...nodes.values()]);
			await waitFor(() => settled(["node-1", "node-2", "node-3", "node-4"]), { timeoutMs: 15_000, message: "node-4 joined everywhere" });
			t.diagnostic(`node-4 joined with ${joinedAt}/${total} acknowledged, settled at ${acked}`);
			await waitFor(() => acked >= total * 0.5, { timeoutMs: 60_000, message: "50% acknowledged" });

			// Customers the victim owns now, created just before the kill: probes (answer again?) and reminders (taken over?).
			const members = ["node-1", "node-2", "node-3", "node-4"];
			const victimIds = (prefix: string, n: number) => {
				const ids: string[] = [];
				for (let j = 0; ids.length < n; j++) if (ownerOf(`${prefix}-${runId}-${j}`, members) === "node-2") ids.push(`${prefix}-${runId}-${j}`);
				return ids;
			};
			const probes = victimIds("p", PROBES);
			const reminderIds = victimIds("r", REMINDER_CUSTOMERS);
			const setupClient = new RetryingClient([...nodes.values()]);
			for (const [j, id] of probes.entries()) {
				const first = workloadEvent(runId, id, j, 0, t0 + j);
				plan.set(id, [first]);
				await send(first, setupClient);
			}
			const decayAfterMs = config.actor.riskDecayAfterMs;
			const dueAt = Date.now() + REMINDER_DUE_AFTER_KILL_MS;
			await Promise.all(reminderIds.map((id, j) => send({
				specversion: "1.0", id: `${runId}-${id}-0`, source: "/cluster-test", type: "crm.order.status_changed", subject: id,
				time: new Date(dueAt - decayAfterMs).toISOString(), data: { orderId: `o-${j}`, newStatus: "CANCELLED" }
			}, setupClient)));

			const killedAt = Date.now();
			killed = true;
			await (nodes.get("node-2") as NodeProcess).kill("SIGKILL");
			const ackedAtKill = acked;
			assert.ok(killedAt < dueAt, "the victim was killed before its reminders came due");
			client.setNodes([...nodes.values()].filter(n => n.alive()));

			// Each probe customer gets its second event right after the kill; how long until all are acknowledged?
			const recovery: number[] = [];
			const probeClient = new RetryingClient([...nodes.values()].filter(n => n.alive()));
			await Promise.all(probes.map(async (id, j) => {
				const second = workloadEvent(runId, id, j, 1, t0 + j + 1);
				(plan.get(id) as RawEvent[]).push(second);
				await send(second, probeClient);
				recovery.push(Date.now() - killedAt);
			}));
			const slowest = Math.max(...recovery);
			t.diagnostic(`SIGKILL node-2 at ${ackedAtKill}/${total} acknowledged; all ${PROBES} of its probed customers answered again after ${slowest} ms`);
			assert.ok(ackedAtKill < total, "the kill happened under load");
			assert.ok(slowest <= RECOVERY_BOUND_MS, `the killed node's customers answered again after ${slowest} ms (bound ${RECOVERY_BOUND_MS})`);
			return reminderIds;
		})();

		const [, reminderIds] = await Promise.all([load, churn]);
		assert.equal(acked, total, "every event was acknowledged");
		assert.equal(duplicatesBeforeKill, 0, "before the crash no first attempt was answered as a duplicate");
		t.diagnostic(`client retried ${client.retries} calls; ${firstAttemptDuplicates} events persisted by the killed node were answered as duplicates after Moleculer's retry`);

		const alive = [...nodes.values()].filter(n => n.alive());
		assert.deepEqual(alive.map(n => n.nodeId).sort(), ["node-1", "node-3", "node-4"]);
		await waitFor(() => settled(alive.map(n => n.nodeId)), { timeoutMs: 15_000, message: "survivors agree and hold only their own actors" });

		// Every customer, read from every live node, equals its events applied once, in order, by the pure reducer.
		const ids = [...plan.keys()];
		const mismatches: string[] = [];
		await runPool(ids.length, CONCURRENCY, async i => {
			const id = ids[i];
			const events = plan.get(id) as RawEvent[];
			const expected = expectedView(referenceState(id, events, ctx));
			for (const node of alive) {
				const res = await apiCall(node.baseUrl, `/api/v1/customers/${id}`);
				if (res.status !== 200) mismatches.push(`${id} on ${node.nodeId}: ${res.status} ${JSON.stringify(res.body)}`);
				else {
					try {
						assert.deepEqual(res.body, expected);
					} catch {
						mismatches.push(`${id} on ${node.nodeId}: got version ${res.body.version}, expected ${events.length}: ${JSON.stringify(res.body)}`);
					}
				}
			}
			// The journal lists each event once, newest first: nothing doubled, nothing missing, order kept.
			const journal = await apiCall(alive[i % alive.length].baseUrl, `/api/v1/customers/${id}/events?limit=100`);
			const journalIds = (journal.body as Array<{ event: { id: string } }>).map(e => e.event.id);
			if (journalIds.join(",") !== events.map(e => e.id).reverse().join(",")) mismatches.push(`${id} journal: ${journalIds.join(",")}`);
		});
		assert.deepEqual(mismatches.slice(0, 10), [], `${mismatches.length} customers differ from the reference`);

		// The killed node's reminders were delivered by the new owners, exactly once (one decay step, one version).
		await waitFor(async () => {
			const reads = await Promise.all(reminderIds.map(id => apiCall(alive[0].baseUrl, `/api/v1/customers/${id}`)));
			return reads.every(r => r.status === 200 && r.body.version === 2 && r.body.risk.factors["order.cancelled"] === 5);
		}, { timeoutMs: 15_000, message: "reminders of the killed node decayed each customer once" });

		const stats = await Promise.all(alive.map(n => statsOf(n.nodeId)));
		t.diagnostic(`CAS conflicts resolved by re-routing: ${stats.map(s => `${s.nodeID} ${s.conflicts}`).join(", ")}; released on membership changes: ${stats.map(s => `${s.nodeID} ${s.released}`).join(", ")}`);
		const shards = await (CLUSTER_COMMANDS.find(c => c.command === "shards") as (typeof CLUSTER_COMMANDS)[number]).run(observer, { options: {} });
		assert.match(shards, /all 3 nodes agree/);
		for (const n of alive) assert.match(shards, new RegExp(`^${n.nodeId} `, "m"));
		assert.doesNotMatch(shards, /node-2/);
	});
});
