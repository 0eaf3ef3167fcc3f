// `npm run bench:memory`: 10⁶ customers through one node whose active actors are capped to fit 256 MB
// (ACTOR_MAX_ACTIVE = 256 MB / 2 KB per actor), against the hot rate of a working set that fits; Redis store.
// Usage: node --expose-gc bench/memory-cap.bench.ts [--customers 1000000] [--hot 100000] [--budget-mb 256]
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { ActorHost } from "../actors/host/actor-host.ts";
import { RedisActorStore } from "../actors/host/redis.store.ts";
import type { ReduceContext } from "../actors/customer-actor.types.ts";
import type { CloudEvent } from "../models/cloud-event.ts";
import { startRedis } from "../test/harness.ts";

const { values: args } = parseArgs({
	options: {
		customers: { type: "string", default: "1000000" },
		hot: { type: "string", default: "100000" },
		"budget-mb": { type: "string", default: "256" },
		inflight: { type: "string", default: "1000" }
	}
});
const BYTES_PER_ACTOR = 2048;
const CAP = Math.floor((Number(args["budget-mb"]) * 1024 * 1024) / BYTES_PER_ACTOR);
const INFLIGHT = Number(args.inflight);
const ctx = (now: number): ReduceContext => ({ now, risk: { decayAfterMs: 30 * 24 * 3600_000, decayKeep: 0.5, churnWeight: 30 }, dedupWindow: 64 });

function eventFor(c: number, k: number): CloudEvent {
	const id = `m-${c}`;
	const base = { specversion: "1.0" as const, id: `${id}-${k}`, source: "/bench", subject: id, time: new Date(Date.UTC(2026, 5, 1) + k * 1000).toISOString() };
	return k === 0
		? { ...base, type: "crm.customer.updated", data: { profile: { name: `Customer ${c}`, contract: "Month-to-month", tenureMonths: c % 72, monthlyCharges: 20 + (c % 90) } } }
		: k % 2 === 1
			? { ...base, type: "crm.page.viewed", data: { url: `/p/${k}` } }
			: { ...base, type: "crm.order.status_changed", data: { orderId: `o-${k}`, newStatus: "CANCELLED" } };
}

/** Events k = 0..rounds-1 for customers 0..n-1, round by round: each round touches every customer once. */
async function run(host: ActorHost, n: number, rounds: number, onProgress?: () => void): Promise<{ rate: number; peakHeap: number }> {
	let next = 0;
	const total = n * rounds;
	let peakHeap = 0;
	const start = performance.now();
	const worker = async () => {
		while (next < total) {
			const i = next++;
			const e = eventFor(i % n, Math.floor(i / n));
			await host.tell(e.subject, { kind: "event", event: e });
			if ((i & 0xffff) === 0) {
				peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
				onProgress?.();
			}
		}
	};
	await Promise.all(Array.from({ length: INFLIGHT }, worker));
	return { rate: total / ((performance.now() - start) / 1000), peakHeap };
}

function heapUsed(): number {
	const gc = (globalThis as { gc?: () => void }).gc;
	if (gc) { gc(); gc(); }
	return process.memoryUsage().heapUsed;
}

async function main(): Promise<void> {
	const redis = await startRedis();
	const admin = new Redis(redis.url);
	await admin.config("SET", "appendfsync", "everysec");
	const customers = Number(args.customers);
	const hotN = Math.min(Number(args.hot), CAP);
	console.log(`memory-cap benchmark — ${cpus().length} cores, node ${process.version}; cap ${CAP.toLocaleString("en-US")} active actors (${args["budget-mb"]} MB / ${BYTES_PER_ACTOR} B); redis appendfsync everysec`);
	const baseHeap = heapUsed();
	const make = async () => {
		const store = new RedisActorStore({ url: redis.url, journalMax: 100 });
		await store.connect();
		const host = new ActorHost({ store, reduceContext: ctx, idleTimeoutMs: 3600_000, maxActiveActors: CAP, commitMaxBatch: 1000, commitIntervalMs: 0, reminderPollMs: 3600_000 });
		host.start();
		return { store, host };
	};
	// Hot: a working set that fits under the cap, every event to an active actor after the first round.
	let { store, host } = await make();
	await run(host, hotN, 1);
	const hot = await run(host, hotN, 4);
	await host.stop();
	await store.close();
	await admin.flushall();
	// 10⁶ customers, two rounds: the cap evicts least-recently-used actors, so round two reactivates from Redis.
	({ store, host } = await make());
	let lastLog = performance.now();
	const big = await run(host, customers, 2, () => {
		if (performance.now() - lastLog > 10_000) {
			lastLog = performance.now();
			console.log(`  … ${host.stats.applied.toLocaleString("en-US")} applied, ${host.stats.active.toLocaleString("en-US")} active, heap ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(0)} MB`);
		}
	});
	host.compactIdle();
	const actorHeap = heapUsed() - baseHeap;
	const stats = { ...host.stats };
	const stored = await store.count();
	await host.stop();
	await store.close();
	admin.disconnect();
	await redis.stop();
	const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MB`;
	console.log(`hot   : ${hotN.toLocaleString("en-US")} customers × 4 events, all active: ${Math.round(hot.rate).toLocaleString("en-US")} events/s`);
	console.log(`cap   : ${customers.toLocaleString("en-US")} customers × 2 events under the cap: ${Math.round(big.rate).toLocaleString("en-US")} events/s = ${((100 * big.rate) / hot.rate).toFixed(0)}% of hot`);
	console.log(`        active at the end ${stats.active.toLocaleString("en-US")} (cap ${CAP.toLocaleString("en-US")}), activations ${stats.activations.toLocaleString("en-US")}, passivations ${stats.passivations.toLocaleString("en-US")}, customers stored ${stored.toLocaleString("en-US")}`);
	console.log(`        heap held by the host after the run ${mb(actorHeap)} (${Math.round(actorHeap / Math.max(1, stats.active))} B per active actor); peak heap during the run ${mb(big.peakHeap)}`);
}

main().catch(err => {
	console.error(err);
	process.exit(1);
});
