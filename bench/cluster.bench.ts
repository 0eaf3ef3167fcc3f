// `npm run bench:cluster`: real node processes over NATS + Redis on this machine. Events/s and latency through
// the HTTP API at 1, 2 and 3 nodes; time to rebalance after a join; time from a SIGKILL until every customer of
// the killed node answers again; and the share of customers that move on join/leave for our rendezvous hashing
// and for Moleculer's stock Shard strategy, computed in the same run.
// Usage: node bench/cluster.bench.ts [--customers 2000] [--events 5] [--concurrency 64] [--batch 100]
import { cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { ServiceBroker, Strategies } from "moleculer";
import type { Context, Endpoint } from "moleculer";
import { ownerOf } from "../actors/sharding.ts";
import { loadConfig } from "../config/index.ts";
import { brokerOptions } from "../moleculer.config.ts";
import { startNats, startRedis, waitFor } from "../test/harness.ts";
import { RetryingClient, percentile, runPool, startNodeProcess, type NodeProcess } from "../test/cluster/node-processes.ts";
import { workloadEvent, type RawEvent } from "../test/cluster/workload.ts";

const { values: args } = parseArgs({
	options: {
		customers: { type: "string", default: "2000" },
		events: { type: "string", default: "5" },
		concurrency: { type: "string", default: "64" },
		batch: { type: "string", default: "100" },
		keys: { type: "string", default: "20000" }
	}
});
const CUSTOMERS = Number(args.customers);
const EVENTS = Number(args.events);
const CONCURRENCY = Number(args.concurrency);
const BATCH = Number(args.batch);
const KEYS = Number(args.keys);

const rows: Array<[string, string]> = [];
function report(name: string, value: string): void {
	rows.push([name, value]);
	console.error(`  ${name}: ${value}`);
}

// ---- Movement: ours vs Moleculer's Shard, over the same keys and node ids ----------------------------------------

function shardOwners(keys: string[], nodeIds: string[]): string[] {
	const fakeBroker = { localBus: { on() {} } };
	const strategy = new Strategies.Shard({} as never, fakeBroker as never, { shardKey: "customerId" });
	const list = nodeIds.map(id => ({ id })) as unknown as Endpoint[];
	return keys.map(customerId => strategy.select(list, { params: { customerId } } as unknown as Context).id);
}

function moved(before: string[], after: string[]): number {
	let n = 0;
	for (let i = 0; i < before.length; i++) if (before[i] !== after[i]) n++;
	return n / before.length;
}

function movement(): void {
	const keys = Array.from({ length: KEYS }, (_, i) => `cust-${i}`);
	const ids = (n: number) => Array.from({ length: n }, (_, i) => `node-${i + 1}`);
	const ours = (nodes: string[]) => keys.map(k => ownerOf(k, nodes) as string);
	for (const n of [3, 5, 10]) {
		const base = ids(n);
		const joined = ids(n + 1);
		// Leave: a node from the middle, as a crash would pick it (not always the last one).
		const left = base.filter((_, i) => i !== Math.floor(n / 2));
		report(`moved on join ${n}->${n + 1} (ideal ${(100 / (n + 1)).toFixed(1)}%)`,
			`rendezvous ${(moved(ours(base), ours(joined)) * 100).toFixed(1)}% | Moleculer Shard ${(moved(shardOwners(keys, base), shardOwners(keys, joined)) * 100).toFixed(1)}%`);
		report(`moved on leave ${n}->${n - 1} (ideal ${(100 / n).toFixed(1)}%)`,
			`rendezvous ${(moved(ours(base), ours(left)) * 100).toFixed(1)}% | Moleculer Shard ${(moved(shardOwners(keys, base), shardOwners(keys, left)) * 100).toFixed(1)}%`);
	}
}

// ---- Cluster runs -----------------------------------------------------------------------------------------------

interface Stats { nodeID: string; members: string[]; strayActors: number; active: number; released: number; conflicts: number }

async function main(): Promise<void> {
	const loadBefore = loadavg();
	console.error(`cluster benchmark on ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), Node ${process.version}`);
	console.error("movement of 20,000 keys:");
	movement();

	const [nats, redis] = await Promise.all([startNats(), startRedis()]);
	const env = { TRANSPORTER: nats.url, REDIS_URL: redis.url, CHURN_MODEL: "off", LOG_LEVEL: "error" };
	const config = loadConfig(env);
	report("failure detection settings", `heartbeat every ${config.cluster.heartbeatIntervalS} s, node out after ${config.cluster.heartbeatTimeoutS} s, checked every ${config.cluster.heartbeatCheckMs} ms`);
	const observer = new ServiceBroker(brokerOptions(loadConfig({ ...env, NODE_ID: "bench-observer" })));
	await observer.start();
	const nodes: NodeProcess[] = [];
	const statsOf = (nodeID: string) => observer.call<Stats, Record<string, never>>("customers.nodeStats", {}, { nodeID, retries: 0, timeout: 5000 });
	const settled = async (ids: string[]) => (await Promise.all(ids.map(statsOf))).every(s => s.members.join(",") === [...ids].sort().join(",") && s.strayActors === 0);
	const runId = `b${Date.now().toString(36)}`;
	const t0 = Date.now() - 3600_000;

	try {
		console.error("throughput through the HTTP API (each customer's events in order):");
		for (const n of [1, 2, 3]) {
			nodes.push(await startNodeProcess(`node-${n}`, env));
			await waitFor(() => settled(nodes.map(x => x.nodeId)), { timeoutMs: 20_000, message: `${n} nodes agree` });
			const client = new RetryingClient(nodes);
			const prefix = `${runId}-n${n}`;
			// Warm-up: activation paths, JIT, connections.
			await runPool(200, CONCURRENCY, async i => void (await client.call("/api/v1/events", { method: "POST", json: workloadEvent(prefix, `w-${prefix}-${i}`, i, 0, t0) })));

			// One event per request: each customer's next event only after the previous one's 202.
			const latencies: number[] = [];
			let start = performance.now();
			await runPool(CUSTOMERS, CONCURRENCY, async i => {
				const id = `s-${prefix}-${i}`;
				for (let k = 0; k < EVENTS; k++) {
					const t = performance.now();
					const res = await client.call("/api/v1/events", { method: "POST", json: workloadEvent(prefix, id, i, k, t0 + k) });
					if (res.status !== 202) throw new Error(`unexpected ${res.status}`);
					latencies.push(performance.now() - t);
				}
			});
			let seconds = (performance.now() - start) / 1000;
			report(`${n} node${n > 1 ? "s" : " "}: 1 event/request`, `${Math.round((CUSTOMERS * EVENTS) / seconds)} events/s, p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms (${CUSTOMERS * EVENTS} events, ${CONCURRENCY} in flight)`);

			// Batches: BATCH events per request (BATCH/EVENTS customers), as a bulk source would send them.
			const perBatch = Math.max(1, Math.floor(BATCH / EVENTS));
			const batches = Math.ceil(CUSTOMERS / perBatch);
			const batchLatencies: number[] = [];
			start = performance.now();
			await runPool(batches, Math.max(4, Math.floor(CONCURRENCY / 8)), async b => {
				const events: RawEvent[] = [];
				for (let i = b * perBatch; i < Math.min(CUSTOMERS, (b + 1) * perBatch); i++) {
					for (let k = 0; k < EVENTS; k++) events.push(workloadEvent(prefix, `b-${prefix}-${i}`, i, k, t0 + k));
				}
				const t = performance.now();
				const res = await client.call("/api/v1/events", { method: "POST", json: events });
				if (res.status !== 202) throw new Error(`unexpected ${res.status}`);
				batchLatencies.push(performance.now() - t);
			});
			seconds = (performance.now() - start) / 1000;
			report(`${n} node${n > 1 ? "s" : " "}: ${perBatch * EVENTS} events/request`, `${Math.round((CUSTOMERS * EVENTS) / seconds)} events/s, p50 ${percentile(batchLatencies, 50).toFixed(1)} ms, p99 ${percentile(batchLatencies, 99).toFixed(1)} ms per request`);
		}

		console.error("join: a 4th node while the others hold active actors:");
		const before = await Promise.all(nodes.map(x => statsOf(x.nodeId)));
		const activeBefore = before.reduce((s, x) => s + x.active, 0);
		const releasedBefore = before.reduce((s, x) => s + x.released, 0);
		const spawnAt = performance.now();
		nodes.push(await startNodeProcess("node-4", env));
		const readyAt = performance.now();
		let visibleAt = 0;
		await waitFor(async () => {
			const agree = (await Promise.all(nodes.map(x => statsOf(x.nodeId)))).every(s => s.members.length === 4);
			if (agree && visibleAt === 0) visibleAt = performance.now();
			return agree && (await settled(nodes.map(x => x.nodeId)));
		}, { timeoutMs: 30_000, intervalMs: 10, message: "4 nodes settled" });
		const settledAt = performance.now();
		const after = await Promise.all(nodes.slice(0, 3).map(x => statsOf(x.nodeId)));
		const released = after.reduce((s, x) => s + x.released, 0) - releasedBefore;
		report("join: process start -> API ready", `${Math.round(readyAt - spawnAt)} ms`);
		report("join: API ready -> all 4 agree and moved actors released", `${Math.round(settledAt - readyAt)} ms (members agreed after ${Math.round(visibleAt - readyAt)} ms)`);
		report("join: actors released by the old owners", `${released} of ${activeBefore} active (${((released / Math.max(1, activeBefore)) * 100).toFixed(1)}%, ideal 25%)`);

		console.error("crash: SIGKILL one node, then a write to each of its customers through the survivors:");
		const members = nodes.map(x => x.nodeId);
		const victim = nodes[1];
		const victimCustomers: string[] = [];
		for (let i = 0; i < CUSTOMERS && victimCustomers.length < 500; i++) {
			const id = `s-${runId}-n3-${i}`;
			if (ownerOf(id, members) === victim.nodeId) victimCustomers.push(id);
		}
		let detectedAt = 0;
		observer.localBus.on("$node.disconnected", (p: { node: { id: string } }) => {
			if (p.node.id === victim.nodeId && detectedAt === 0) detectedAt = performance.now();
		});
		const survivors = nodes.filter(x => x !== victim);
		const client = new RetryingClient(survivors);
		const killedAt = performance.now();
		await victim.kill("SIGKILL");
		const answered: number[] = [];
		await Promise.all(victimCustomers.map(async (id, j) => {
			const res = await client.call("/api/v1/events", { method: "POST", json: workloadEvent(`${runId}-kill`, id, j, 1, t0 + 100) });
			if (res.status !== 202) throw new Error(`unexpected ${res.status}`);
			answered.push(performance.now() - killedAt);
		}));
		report("crash: SIGKILL -> observer notices", `${Math.round(detectedAt - killedAt)} ms`);
		report(`crash: SIGKILL -> all ${victimCustomers.length} of its customers answer again`, `${Math.round(Math.max(...answered))} ms (p50 ${Math.round(percentile(answered, 50))} ms); client retries: ${client.retries}`);
		const conflicts = (await Promise.all(survivors.map(x => statsOf(x.nodeId)))).reduce((s, x) => s + x.conflicts, 0);
		report("CAS conflicts resolved by re-routing (whole run, survivors)", String(conflicts));
	} finally {
		await observer.stop();
		await Promise.all(nodes.map(x => x.kill("SIGTERM")));
		await Promise.all([nats.stop(), redis.stop()]);
	}

	const width = Math.max(...rows.map(r => r[0].length));
	console.log(`\ncluster benchmark — ${cpus().length} cores, ${CUSTOMERS} customers x ${EVENTS} events per level; every node, NATS, Redis (appendfsync always) and the client on this machine`);
	console.log(`load average before ${loadBefore.map(l => l.toFixed(1)).join(" ")}, after ${loadavg().map(l => l.toFixed(1)).join(" ")} (other work on the machine skews the numbers)`);
	for (const [name, value] of rows) console.log(`${name.padEnd(width)}  ${value}`);
}

main().catch(err => {
	console.error(err instanceof Error ? err.stack : err);
	process.exit(1);
});
