// `npm run bench:memory`: 10⁶ customers through one node whose active actors are capped to fit 256 MB of heap
// (maxActiveBytes = budget), against the hot rate of a working set that fits; Redis store (event-sourced: journal +
// snapshots, replayed on activation). Two workloads with customers × 2 events each: "round-robin" (every customer
// once per round, the worst case for a cache) and "zipf" (the customer of each event drawn from a Zipf(s) law over
// the customers, seeded: a few customers get most events, as real traffic does; each customer's events stay in order).
// Heap peak = the largest process heapUsed seen during a run (sampled every 50 ms and every 65 536 events).
// Usage: node --expose-gc bench/memory-cap.bench.ts [--customers 1000000] [--hot 100000] [--budget-mb 256]
//   [--inflight 1000] [--zipf-s 1.1] [--seed 42] [--workloads round-robin,zipf] [--json]
//   (the hot run always goes first: it is what the others are measured against; --json: also one `BENCH {...}` line
//   per workload)
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { ActorHost } from "../actors/host/actor-host.ts";
import { RedisActorStore } from "../actors/host/redis.store.ts";
import { journalReplay } from "../actors/host/replay.ts";
import type { ReduceContext } from "../actors/customer-actor.types.ts";
import type { CloudEvent } from "../models/cloud-event.ts";
import { mulberry32 } from "../ml/split.ts";
import { startRedis } from "../test/harness.ts";

const { values: args } = parseArgs({
	options: {
		customers: { type: "string", default: "1000000" },
		hot: { type: "string", default: "100000" },
		"budget-mb": { type: "string", default: "256" },
		inflight: { type: "string", default: "1000" },
		"zipf-s": { type: "string", default: "1.1" },
		seed: { type: "string", default: "42" },
		workloads: { type: "string", default: "round-robin,zipf" },
		json: { type: "boolean", default: false }
	}
});
const BUDGET_MB = Number(args["budget-mb"]);
const BUDGET_BYTES = BUDGET_MB * 2 ** 20;
/** The host's starting estimate of one active actor's heap: sizes the hot working set so that it fits the budget. */
const BYTES_PER_ACTOR = 2048;
const INFLIGHT = Number(args.inflight);
const ZIPF_S = Number(args["zipf-s"]);
const SEED = Number(args.seed);
const HEAP_SAMPLE_MS = 50;
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

interface RunResult { events: number; rate: number; peakHeap: number }

/**
 * Sends event i = 0..total-1 (eventAt(i), called in order of i: a customer's events are told in order and its
 * mailbox keeps that order) with at most INFLIGHT outstanding.
 */
async function run(host: ActorHost, total: number, eventAt: (i: number) => CloudEvent, onProgress?: () => void): Promise<RunResult> {
	let next = 0;
	let peakHeap = process.memoryUsage().heapUsed;
	const sample = () => { peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed); };
	const sampler = setInterval(sample, HEAP_SAMPLE_MS);
	sampler.unref();
	const start = performance.now();
	const worker = async () => {
		while (next < total) {
			const i = next++;
			const e = eventAt(i);
			await host.tell(e.subject, { kind: "event", event: e });
			if ((i & 0xffff) === 0) {
				sample();
				onProgress?.();
			}
		}
	};
	try {
		await Promise.all(Array.from({ length: INFLIGHT }, worker));
	} finally {
		clearInterval(sampler);
	}
	sample();
	return { events: total, rate: total / ((performance.now() - start) / 1000), peakHeap };
}

/** Events k = 0..rounds-1 for customers 0..n-1, round by round: each round touches every customer once. */
const roundRobin = (n: number) => (i: number) => eventFor(i % n, Math.floor(i / n));

/**
 * `total` customers drawn from Zipf(s) over 0..n-1 (customer c has weight 1/(c+1)^s), seeded; computed before the
 * run so that the draws cost nothing during it. Returns the customer of each event and the share of the top one.
 */
function zipfCustomers(n: number, total: number, s: number, seed: number): { picks: Uint32Array; topShare: number; distinct: number } {
	const cdf = new Float64Array(n);
	let sum = 0;
	for (let c = 0; c < n; c++) {
		sum += 1 / Math.pow(c + 1, s);
		cdf[c] = sum;
	}
	for (let c = 0; c < n; c++) cdf[c] /= sum;
	cdf[n - 1] = 1;
	const random = mulberry32(seed);
	const picks = new Uint32Array(total);
	const seen = new Uint8Array(n);
	let distinct = 0;
	for (let i = 0; i < total; i++) {
		// The first c with cdf[c] > u.
		const u = random();
		let lo = 0;
		let hi = n - 1;
		while (lo < hi) {
			const mid = (lo + hi) >>> 1;
			if (cdf[mid] > u) hi = mid;
			else lo = mid + 1;
		}
		picks[i] = lo;
		if (seen[lo] === 0) { seen[lo] = 1; distinct++; }
	}
	return { picks, topShare: cdf[0], distinct };
}

/** Event i of the Zipf run: its customer's own next event number, so each customer's events go k = 0, 1, 2, … */
function zipfEvents(picks: Uint32Array, n: number): (i: number) => CloudEvent {
	const nextK = new Uint32Array(n);
	return i => {
		const c = picks[i];
		return eventFor(c, nextK[c]++);
	};
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
	const hotN = Math.min(Number(args.hot), Math.floor(BUDGET_BYTES / BYTES_PER_ACTOR));
	const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MB`;
	const int = (n: number) => Math.round(n).toLocaleString("en-US");
	console.log(`memory-cap benchmark — ${cpus().length} cores, node ${process.version}; cap ${BUDGET_MB} MB of active actors (maxActiveBytes), redis appendfsync everysec, event-sourced`);
	const baseHeap = heapUsed();
	const make = async () => {
		const store = new RedisActorStore({ url: redis.url, journalMax: 100, replay: journalReplay(ctx) });
		await store.connect();
		const host = new ActorHost({
			store, reduceContext: ctx, idleTimeoutMs: 3600_000, maxActiveActors: 10_000_000, maxActiveBytes: BUDGET_BYTES,
			commitMaxBatch: 1000, commitIntervalMs: 0, reminderPollMs: 3600_000
		});
		host.start();
		return { store, host };
	};
	let lastLog = performance.now();
	const progress = (host: ActorHost) => () => {
		if (performance.now() - lastLog > 10_000) {
			lastLog = performance.now();
			console.log(`  … ${int(host.stats.applied)} applied, ${int(host.stats.active)} active, heap ${mb(process.memoryUsage().heapUsed)}`);
		}
	};
	/** One workload on a fresh host and an empty Redis; the host's state afterwards. */
	const measure = async (total: number, eventAt: (i: number) => CloudEvent) => {
		await admin.flushall();
		heapUsed();
		const { store, host } = await make();
		lastLog = performance.now();
		const result = await run(host, total, eventAt, progress(host));
		const held = heapUsed() - baseHeap;
		const stats = { ...host.stats };
		const stored = await store.count();
		await host.stop();
		await store.close();
		return { ...result, held, stats, stored };
	};

	// Hot: a working set that fits under the cap, every event to an active actor after the first round (not timed).
	const hot = await (async () => {
		await admin.flushall();
		heapUsed();
		const { store, host } = await make();
		await run(host, hotN, roundRobin(hotN));
		const timed = await run(host, hotN * 4, i => eventFor(i % hotN, 1 + Math.floor(i / hotN)));
		await host.stop();
		await store.close();
		return timed;
	})();
	// 10⁶ customers, two rounds: the cap evicts actors, so round two reactivates from Redis.
	const total = customers * 2;
	const wanted = String(args.workloads).split(",").map(w => w.trim()).filter(w => w !== "");
	for (const w of wanted) if (w !== "round-robin" && w !== "zipf") throw new Error(`--workloads: unknown workload "${w}" (known: round-robin, zipf)`);
	const big = wanted.includes("round-robin") ? await measure(total, roundRobin(customers)) : null;
	// The same number of events, Zipf-skewed customers.
	const zipf = zipfCustomers(customers, wanted.includes("zipf") ? total : 0, ZIPF_S, SEED);
	const skewed = wanted.includes("zipf") ? await measure(total, zipfEvents(zipf.picks, customers)) : null;
	admin.disconnect();
	await redis.stop();

	const pct = (r: number) => `${((100 * r) / hot.rate).toFixed(0)}% of hot`;
	const peak = (b: number) => `heap peak ${mb(b)} (${(b / BUDGET_BYTES).toFixed(2)}× the ${BUDGET_MB} MB cap)`;
	console.log(`hot        : ${int(hotN)} customers × 4 events, all active: ${int(hot.rate)} events/s; ${peak(hot.peakHeap)}`);
	for (const [name, r, what] of [["round-robin", big, `${int(customers)} customers × 2 events`], ["zipf", skewed, `${int(total)} events over ${int(customers)} customers, Zipf(${ZIPF_S}) (top customer ${(100 * zipf.topShare).toFixed(1)}% of events, ${int(zipf.distinct)} customers touched)`]] as const) {
		if (r === null) continue;
		console.log(`${name.padEnd(11)}: ${what} under the cap: ${int(r.rate)} events/s = ${pct(r.rate)}; ${peak(r.peakHeap)}`);
		console.log(`             active at the end ${int(r.stats.active)}, activations ${int(r.stats.activations)}, passivations ${int(r.stats.passivations)}, customers stored ${int(r.stored)}; ` +
			`heap held by the host after the run ${mb(r.held)} (${Math.round(r.held / Math.max(1, r.stats.active))} B per active actor)`);
	}
	console.log(`target: heap peak ≤ 2× the cap = ${mb(2 * BUDGET_BYTES)} (the peak includes the process's own heap, ${mb(baseHeap)} before the runs)`);
	if (args.json) {
		const heapPeakMb = (b: number) => Number((b / 2 ** 20).toFixed(1));
		const row = (workload: string, r: RunResult, extra: Record<string, unknown>) => console.log(`BENCH ${JSON.stringify({
			bench: "memory", workload, customers: extra.customers, events: r.events, eventsPerSec: Math.round(r.rate), hotEventsPerSec: Math.round(hot.rate),
			ratio: Number((r.rate / hot.rate).toFixed(3)), heapPeakMb: heapPeakMb(r.peakHeap), capMb: BUDGET_MB, ...extra
		})}`);
		row("hot", hot, { customers: hotN });
		for (const [workload, r, extra] of [["round-robin", big, {}], ["zipf", skewed, { zipfS: ZIPF_S, seed: SEED, topShare: Number(zipf.topShare.toFixed(4)), customersTouched: zipf.distinct }]] as const) {
			if (r === null) continue;
			row(workload, r, {
				customers, ...extra, activeAtEnd: r.stats.active, activations: r.stats.activations, passivations: r.stats.passivations,
				customersStored: r.stored, heldMb: heapPeakMb(r.held)
			});
		}
	}
}

main().catch(err => {
	console.error(err);
	process.exit(1);
});
