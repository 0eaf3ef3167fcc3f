// Customer merges on real node processes (NATS + Redis) while events flow for both ids of every pair and the owner
// of one side of many pairs is SIGKILLed mid-merge (survivor side for some pairs, merged side for others). A client
// that retries with the same payloads (events and merge requests) runs until every call is answered. Afterwards
// every survivor holds every event of both ids exactly once, each merge happened once, and the old ids read and
// write the survivor.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { ServiceBroker } from "moleculer";
import { startNats, startRedis, waitFor, type ServerHandle } from "../harness.ts";
import { loadConfig } from "../../config/index.ts";
import { brokerOptions } from "../../moleculer.config.ts";
import { ownerOf } from "../../actors/sharding.ts";
import { RetryingClient, runPool, startNodeProcess, type NodeProcess } from "./node-processes.ts";

const NODES = ["node-1", "node-2", "node-3"];
const VICTIM = "node-3";
/** Pairs per kind: the victim owns the survivor, the victim owns the merged customer, the victim owns neither. */
const PAIRS_PER_KIND = 24;
/** Events per id: both windows of a pair fit in the survivor's merged dedup window (32 newest of each). */
const EVENTS_PER_ID = 10;
const NODE_ENV = { CLUSTER_HEARTBEAT_INTERVAL_S: "1", CLUSTER_HEARTBEAT_TIMEOUT_S: "3", CHURN_MODEL: "off" };

interface Pair { a: string; b: string; kind: "victim-survivor" | "victim-merged" | "elsewhere" }

describe("customer merge on a cluster under SIGKILL of either owner", () => {
	let nats: ServerHandle;
	let redis: ServerHandle;
	let observer: ServiceBroker;
	const nodes = new Map<string, NodeProcess>();

	before(async () => {
		[nats, redis] = await Promise.all([startNats(), startRedis()]);
		const env = { TRANSPORTER: nats.url, REDIS_URL: redis.url, ...NODE_ENV };
		for (const n of await Promise.all(NODES.map(id => startNodeProcess(id, env)))) nodes.set(n.nodeId, n);
		observer = new ServiceBroker(brokerOptions(loadConfig({ ...env, NODE_ID: "merge-observer", LOG_LEVEL: "error" })));
		await observer.start();
		await waitFor(async () => {
			const stats = await Promise.all(NODES.map(nodeID => observer.call<{ members: string[] }, Record<string, never>>("customers.nodeStats", {}, { nodeID, retries: 0, timeout: 5000 })));
			return stats.every(s => s.members.join(",") === NODES.join(","));
		}, { timeoutMs: 15_000, message: "3 nodes see each other" });
	});

	after(async () => {
		await observer?.stop();
		await Promise.all([...nodes.values()].map(n => n.kill("SIGTERM")));
		await Promise.all([nats?.stop(), redis?.stop()]);
	});

	it("a merge cut by a SIGKILL after its intent, or after its seal, is completed by the next event or read", { timeout: 90_000 }, async () => {
		const env = { TRANSPORTER: nats.url, REDIS_URL: redis.url, ...NODE_ENV };
		const victim = await startNodeProcess("node-4", env);
		const all = [...NODES, "node-4"];
		await waitFor(async () => {
			const s = await observer.call<{ members: string[] }, Record<string, never>>("customers.nodeStats", {}, { nodeID: "node-4", retries: 0, timeout: 5000 });
			return s.members.join(",") === all.join(",");
		}, { timeoutMs: 15_000, message: "node-4 joined" });
		const run = `cut${Date.now().toString(36)}`;
		/** Ids owned by `owner` (or by anyone but the victim when `owner` is null). */
		const ids = (prefix: string, owner: string | null, n: number) => {
			const out: string[] = [];
			for (let i = 0; out.length < n; i++) {
				const id = `${prefix}-${run}-${i}`;
				const o = ownerOf(id, all);
				if (owner === null ? o !== "node-4" : o === owner) out.push(id);
			}
			return out;
		};
		const client = new RetryingClient(NODES.map(n => nodes.get(n) as NodeProcess).filter(n => n.alive()));
		const view = (id: string) => ({ specversion: "1.0", id: `${id}-${Math.random().toString(36).slice(2)}`, source: "/cut", type: "crm.page.viewed", subject: id, time: new Date().toISOString(), data: { url: "/" } });
		const post = async (id: string) => assert.equal((await client.call("/api/v1/events", { method: "POST", json: view(id) })).status, 202);
		const stepOn = (params: Record<string, string>) => observer.call<{ merge?: { status: string } }, unknown>("customers.mergeStep", params);
		// 1: intent persisted on a survivor the victim owns, nothing else. 2: intent (survivor elsewhere) and seal of a
		// merged customer the victim owns. 3: intent on the victim's survivor and seal elsewhere.
		const [a1, a3] = ids("cut-a", "node-4", 2);
		const [a2, b1, b3] = ids("cut-b", null, 3);
		const [b2] = ids("cut-c", "node-4", 1);
		const cases = [{ a: a1, b: b1, seal: false }, { a: a2, b: b2, seal: true }, { a: a3, b: b3, seal: true }];
		for (const { a, b, seal } of cases) {
			await post(a);
			await post(b);
			assert.equal((await stepOn({ customerId: a, step: "intent", from: b })).merge?.status, "done");
			if (seal) assert.equal((await stepOn({ customerId: b, step: "seal", into: a })).merge?.status, "done");
		}
		await victim.kill("SIGKILL");
		// Case 1 and 3: the next event for the survivor activates it on its new owner, which completes the merge.
		await post(a1);
		await post(a3);
		// Case 2: the next event for the sealed customer goes to the survivor, which absorbs it first.
		await post(b2);
		for (const { a, b } of cases) {
			await waitFor(async () => (await client.call(`/api/v1/customers/${a}`)).body.aliases?.join() === b, { timeoutMs: 20_000, message: `${b} merged into ${a}` });
			const v = (await client.call(`/api/v1/customers/${a}`)).body;
			assert.equal(v.mergingFrom, undefined);
			assert.equal(v.counters.pageViews, 3, `${a}: both ids' events (two of one, one of the other), each once`);
			assert.equal((await client.call(`/api/v1/customers/${b}`)).body.resolvedFrom, b);
		}
	});

	it("loses no event, applies none twice and merges once", { timeout: 180_000 }, async t => {
		const run = Date.now().toString(36);
		const pairs: Pair[] = [];
		const want = { "victim-survivor": 0, "victim-merged": 0, elsewhere: 0 };
		for (let i = 0; pairs.length < 3 * PAIRS_PER_KIND; i++) {
			const a = `ma-${run}-${i}`;
			const b = `mb-${run}-${i}`;
			const oa = ownerOf(a, NODES);
			const ob = ownerOf(b, NODES);
			if (oa === ob) continue;
			const kind = oa === VICTIM ? "victim-survivor" : ob === VICTIM ? "victim-merged" : "elsewhere";
			if (want[kind] >= PAIRS_PER_KIND) continue;
			want[kind]++;
			pairs.push({ a, b, kind });
		}
		const t0 = Date.now() - 600_000;
		const events = new Map<string, object[]>();
		for (const [p, { a, b }] of pairs.entries()) {
			for (const id of [a, b]) {
				events.set(id, Array.from({ length: EVENTS_PER_ID }, (_, k) => ({
					specversion: "1.0", id: `${id}-${k}`, source: "/merge-test", type: "crm.page.viewed", subject: id,
					time: new Date(t0 + p * 100 + k * 1000 + (id === b ? 500 : 0)).toISOString(), data: { url: `/p/${k}` }
				})));
			}
		}
		// Entry through the nodes that stay: a call's retry then means a failure inside the cluster, not a dead entry.
		const client = new RetryingClient(NODES.filter(n => n !== VICTIM).map(n => nodes.get(n) as NodeProcess));
		let sent = 0;
		const sendAll = (id: string) => (async () => {
			for (const e of events.get(id) as object[]) {
				const res = await client.call("/api/v1/events", { method: "POST", json: e }, 90_000);
				assert.equal(res.status, 202, JSON.stringify(res.body));
				sent++;
			}
		})();

		// First events so both customers exist, then the rest flows while the merges run and the victim dies.
		await runPool(pairs.length, 16, async i => {
			for (const id of [pairs[i].a, pairs[i].b]) {
				const first = (events.get(id) as object[])[0];
				assert.equal((await client.call("/api/v1/events", { method: "POST", json: first })).status, 202);
			}
		});
		for (const id of events.keys()) events.set(id, (events.get(id) as object[]).slice(1));
		let mergesAnswered = 0;
		let mergeRetries = 0;
		const flows = runPool(pairs.length * 2, 48, async i => sendAll(i % 2 === 0 ? pairs[i >> 1].a : pairs[i >> 1].b));
		const merges = runPool(pairs.length, 24, async i => {
			const { a, b } = pairs[i];
			const res = await client.call(`/api/v1/customers/${a}/merge`, { method: "POST", json: { from: b } }, 90_000);
			assert.equal(res.status, 200, `merge ${b} into ${a}: ${JSON.stringify(res.body)}`);
			assert.equal(res.body.survivor, a);
			mergeRetries += res.attempts - 1;
			mergesAnswered++;
		});
		// The kill lands while merges are under way (a few answered, most not).
		await waitFor(() => mergesAnswered >= 3, { timeoutMs: 60_000, intervalMs: 1, message: "first merges answered" });
		const answeredAtKill = mergesAnswered;
		await (nodes.get(VICTIM) as NodeProcess).kill("SIGKILL");
		await Promise.all([flows, merges]);
		t.diagnostic(`killed ${VICTIM} with ${answeredAtKill}/${pairs.length} merges answered; ${mergeRetries} merge requests retried, ${client.retries} calls retried in all; ${sent} events acknowledged`);
		assert.ok(answeredAtKill < pairs.length, "the kill happened mid-merge");

		for (const { a, b, kind } of pairs) {
			const view = (await client.call(`/api/v1/customers/${a}`)).body;
			assert.equal(view.counters.pageViews, 2 * EVENTS_PER_ID, `${kind} ${a}: every event of both ids counted once`);
			assert.deepEqual(view.aliases, [b], `${kind} ${a}: merged once`);
			assert.equal(view.mergingFrom, undefined);
			const viaB = (await client.call(`/api/v1/customers/${b}`)).body;
			assert.deepEqual([viaB.id, viaB.resolvedFrom, viaB.version], [a, b, view.version], `${kind}: ${b} reads the survivor`);
			const journal = (await client.call(`/api/v1/customers/${a}/events?limit=1000`)).body as Array<{ event: { id: string } }>;
			const ids = journal.map(j => j.event.id);
			assert.equal(ids.length, 2 * EVENTS_PER_ID, `${kind} ${a}: each event journaled once`);
			assert.equal(new Set(ids).size, ids.length);
		}
		// Every event once more, through the old ids too: all duplicates, nothing changes.
		for (const { a, b } of pairs.slice(0, 12)) {
			const again = [a, b].flatMap(id => (events.get(id) as object[]).slice(-5));
			const res = await client.call("/api/v1/events", { method: "POST", json: again });
			assert.deepEqual(res.body, { accepted: 0, duplicates: again.length });
			assert.equal((await client.call(`/api/v1/customers/${a}`)).body.counters.pageViews, 2 * EVENTS_PER_ID);
		}
	});
});
