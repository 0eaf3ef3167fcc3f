// `npm run bench:merge`: customer merges on one node (memory store and Redis): merges per second, and the latency of
// events for both ids of the pairs being merged while the merges run (beside the same event load with no merge).
// Usage: node bench/merge.bench.ts [--pairs 1000] [--events 10] [--concurrency 16] [--event-concurrency 32]
//   [--stores memory,redis] [--json]   (--json: also one `BENCH {...}` line per store)
// Calls go through the broker (customers.merge, customers.handle: the actor path without HTTP).
import { parseArgs } from "node:util";
import type { ServiceBroker } from "moleculer";
import { startRedis, type ServerHandle } from "../test/harness.ts";
import { startTestNode, type TestNode } from "../test/support/node.ts";

const { values: args } = parseArgs({
	options: {
		pairs: { type: "string", default: "1000" },
		events: { type: "string", default: "10" },
		concurrency: { type: "string", default: "16" },
		"event-concurrency": { type: "string", default: "32" },
		stores: { type: "string", default: "memory,redis" },
		json: { type: "boolean", default: false }
	}
});
const PAIRS = Number(args.pairs);
const EVENTS = Number(args.events);
const CONCURRENCY = Number(args.concurrency);
const EVENT_CONCURRENCY = Number(args["event-concurrency"]);

let seq = 0;
const T0 = Date.now() - 3600_000;
function pageView(customerId: string) {
	seq++;
	return {
		specversion: "1.0", id: `bench-${seq}`, source: "/bench", type: "crm.page.viewed", subject: customerId,
		time: new Date(T0 + seq).toISOString(), data: { url: `/p/${seq % 50}` }
	};
}

function percentile(samples: number[], p: number): number {
	if (samples.length === 0) return NaN;
	const sorted = [...samples].sort((a, b) => a - b);
	return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function pool(count: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
	let next = 0;
	await Promise.all(Array.from({ length: Math.min(concurrency, count) }, async () => {
		while (next < count) await work(next++);
	}));
}

/** Events for the ids of `ids()` (picked round-robin) until `running()` is false; latencies in ms. */
async function eventLoad(broker: ServiceBroker, ids: () => string[], running: () => boolean): Promise<number[]> {
	const latencies: number[] = [];
	let turn = 0;
	await Promise.all(Array.from({ length: EVENT_CONCURRENCY }, async () => {
		while (running()) {
			const list = ids();
			if (list.length === 0) {
				await new Promise(resolve => setImmediate(resolve));
				continue;
			}
			const id = list[turn++ % list.length];
			const t = performance.now();
			await broker.call("customers.handle", { customerId: id, event: pageView(id) });
			latencies.push(performance.now() - t);
		}
	}));
	return latencies;
}

async function benchStore(store: string): Promise<Record<string, unknown>> {
	let redis: ServerHandle | undefined;
	const env: Record<string, string> = { ACTOR_STORE: store, LOG_LEVEL: "error" };
	if (store === "redis") {
		redis = await startRedis();
		env.REDIS_URL = redis.url;
	}
	let node: TestNode | undefined;
	try {
		node = await startTestNode(env);
		const broker = node.broker;
		const pairs = Array.from({ length: PAIRS }, (_, i) => ({ a: `bench-a-${i}`, b: `bench-b-${i}` }));
		await pool(PAIRS * 2, 64, async i => {
			const id = i % 2 === 0 ? pairs[i >> 1].a : pairs[i >> 1].b;
			await broker.call("customers.handleMany", { customerId: id, events: Array.from({ length: EVENTS }, () => pageView(id)) });
		});

		// The same event load without merges, on the same ids (baseline), for as long as the merges will take about.
		let baselineRunning = true;
		const baselineIds = pairs.slice(0, CONCURRENCY).flatMap(p => [p.a, p.b]);
		const baselineLoad = eventLoad(broker, () => baselineIds, () => baselineRunning);
		await new Promise(resolve => setTimeout(resolve, 2000));
		baselineRunning = false;
		const baseline = await baselineLoad;

		// Merges CONCURRENCY at a time; events go to both ids of every pair being merged right now.
		const inMerge = new Set<number>();
		let merging = true;
		const during = eventLoad(broker, () => [...inMerge].flatMap(i => [pairs[i].a, pairs[i].b]), () => merging);
		const mergeLatencies: number[] = [];
		const t0 = performance.now();
		await pool(PAIRS, CONCURRENCY, async i => {
			inMerge.add(i);
			const t = performance.now();
			const res = await broker.call<{ merged: boolean }, unknown>("customers.merge", { customerId: pairs[i].a, from: pairs[i].b });
			mergeLatencies.push(performance.now() - t);
			inMerge.delete(i);
			if (!res.merged) throw new Error(`pair ${i} was not merged`);
		});
		const seconds = (performance.now() - t0) / 1000;
		merging = false;
		const latencies = await during;

		// Every merge once, every event counted: the survivor's page views = both ids' events.
		const check = await broker.call<{ counters: { pageViews: number }; aliases?: string[] }, unknown>("customers.get", { customerId: pairs[0].a });
		if (check.aliases?.join() !== pairs[0].b) throw new Error("pair 0: aliases wrong");
		return {
			store, pairs: PAIRS, eventsPerId: EVENTS, concurrency: CONCURRENCY,
			mergesPerSecond: Math.round(PAIRS / seconds),
			mergeP50Ms: round(percentile(mergeLatencies, 50)), mergeP99Ms: round(percentile(mergeLatencies, 99)),
			eventsDuringMerges: latencies.length,
			eventP50Ms: round(percentile(latencies, 50)), eventP99Ms: round(percentile(latencies, 99)),
			baselineEventP50Ms: round(percentile(baseline, 50)), baselineEventP99Ms: round(percentile(baseline, 99))
		};
	} finally {
		await node?.stop();
		await redis?.stop();
	}
}

function round(v: number): number {
	return Math.round(v * 100) / 100;
}

const rows: Array<Record<string, unknown>> = [];
for (const store of String(args.stores).split(",").map(s => s.trim()).filter(Boolean)) {
	const row = await benchStore(store);
	rows.push(row);
	if (args.json) console.log(`BENCH ${JSON.stringify({ bench: "merge", ...row })}`);
}
console.log("\nstore   merges/s   merge p50/p99 ms   events during merges   event p50/p99 ms   no merge: event p50/p99 ms");
for (const r of rows) {
	console.log(`${String(r.store).padEnd(7)} ${String(r.mergesPerSecond).padStart(8)}   ${`${r.mergeP50Ms} / ${r.mergeP99Ms}`.padStart(16)}   ${String(r.eventsDuringMerges).padStart(20)}   ${`${r.eventP50Ms} / ${r.eventP99Ms}`.padStart(16)}   ${`${r.baselineEventP50Ms} / ${r.baselineEventP99Ms}`.padStart(26)}`);
}
