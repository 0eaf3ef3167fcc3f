// `npm run bench:memory`: 10⁶ customers through one node whose active actors are capped to fit 256 MB of heap
// (maxActiveBytes = budget), against the hot rate of a working set that fits; Redis store (event-sourced: journal +
// snapshots, replayed on activation). Two workloads with customers × 2 events each: "round-robin" (every customer
// once per round, the worst case for a cache) and "zipf" (the customer of each event drawn from a Zipf(s) law over
// the customers, seeded: a few customers get most events, as real traffic does; each customer's events stay in order).
// Heap peak = the largest process heapUsed seen during a run (sampled every 50 ms and every 65 536 events).
// Each workload runs in a process of its own on a fresh host and an empty Redis, started as an operator would start a
// node with ACTOR_MAX_MEMORY_MB = the budget: V8's heap limit (--max-old-space-size) at twice the budget
// (docs/actors.md). The hot run goes first and again last; the others are measured against the mean of the two.
// Usage: node bench/memory-cap.bench.ts [--customers 1000000] [--hot 100000] [--budget-mb 256] [--heap-limit-mb 2×budget]
//   [--inflight 1000] [--zipf-s 1.1] [--seed 42] [--workloads round-robin,zipf] [--json]
//   (--json: also one `BENCH {...}` line per workload)
import { spawn } from "node:child_process";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { ActorHost } from "../actors/host/actor-host.ts";
import { RedisActorStore } from "../adapters/redis.store.ts";
import { journalReplay } from "../actors/host/replay.ts";
import type { ReduceContext } from "../actors/customer-actor.types.ts";
import type { KnownCloudEvent as CloudEvent } from "../models/event-data.schemas.ts";
import { mulberry32 } from "../ml/split.ts";
import { startRedis } from "../test/harness.ts";
import { emptyRedis } from "./redis-reset.ts";

const { values: args } = parseArgs({
	options: {
		customers: { type: "string", default: "1000000" },
		hot: { type: "string", default: "100000" },
		"budget-mb": { type: "string", default: "256" },
		inflight: { type: "string", default: "1000" },
		"zipf-s": { type: "string", default: "1.1" },
		seed: { type: "string", default: "42" },
		workloads: { type: "string", default: "round-robin,zipf" },
		"heap-limit-mb": { type: "string" },
		json: { type: "boolean", default: false },
		// Internal: run one workload in this process against this Redis and print its result.
		child: { type: "string" },
		"redis-url": { type: "string" }
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
const HEAP_LIMIT_MB = args["heap-limit-mb"] === undefined ? 2 * BUDGET_MB : Number(args["heap-limit-mb"]);
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

/** What a child process reports for its workload. */
interface ChildResult extends RunResult {
	workload: string;
	customers: number;
	/** After the run: host stats, customers stored, heap the host held (bytes; round-robin and zipf only). */
	stats?: { active: number; activations: number; passivations: number };
	stored?: number;
	held?: number;
	zipf?: { topShare: number; distinct: number };
}

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

function makeHost(url: string) {
	const store = new RedisActorStore({ url, journalMax: 100, replay: journalReplay(ctx) });
	const host = new ActorHost({
		store, reduceContext: ctx, idleTimeoutMs: 3600_000, maxActiveActors: 10_000_000, maxActiveBytes: BUDGET_BYTES,
		commitMaxBatch: 1000, commitIntervalMs: 0, reminderPollMs: 3600_000
	});
	return { store, host };
}

/** One workload in this process (the child side); Redis is flushed by the parent before. */
async function runChild(workload: string, url: string): Promise<ChildResult> {
	const customers = Number(args.customers);
	const hotN = Math.min(Number(args.hot), Math.floor(BUDGET_BYTES / BYTES_PER_ACTOR));
	const baseHeap = heapUsed();
	const { store, host } = makeHost(url);
	await store.connect();
	host.start();
	const int = (n: number) => Math.round(n).toLocaleString("en-US");
	let lastLog = performance.now();
	const progress = () => {
		if (performance.now() - lastLog > 10_000) {
			lastLog = performance.now();
			console.error(`  … ${workload}: ${int(host.stats.applied)} applied, ${int(host.stats.active)} active, heap ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(0)} MB`);
		}
	};
	try {
		if (workload === "hot") {
			// A working set that fits under the cap, every event to an active actor after the first round (not timed).
			await run(host, hotN, roundRobin(hotN));
			const timed = await run(host, hotN * 4, i => eventFor(i % hotN, 1 + Math.floor(i / hotN)), progress);
			return { workload, customers: hotN, ...timed };
		}
		const total = customers * 2;
		let result: RunResult;
		let zipf: ChildResult["zipf"];
		if (workload === "round-robin") {
			// 10⁶ customers, two rounds: the cap evicts actors, so round two reactivates from Redis.
			result = await run(host, total, roundRobin(customers), progress);
		} else {
			// The same number of events, Zipf-skewed customers.
			const picks = zipfCustomers(customers, total, ZIPF_S, SEED);
			zipf = { topShare: picks.topShare, distinct: picks.distinct };
			result = await run(host, total, zipfEvents(picks.picks, customers), progress);
		}
		const held = heapUsed() - baseHeap;
		return { workload, customers, ...result, stats: { ...host.stats }, stored: await store.count(), held, zipf };
	} finally {
		await host.stop();
		await store.close();
	}
}

/** Runs one workload in a child process with the heap limit an operator would set; returns what it reports. */
function spawnChild(workload: string, url: string): Promise<ChildResult> {
	const argv = [
		"--expose-gc", `--max-old-space-size=${HEAP_LIMIT_MB}`, process.argv[1],
		"--child", workload, "--redis-url", url, "--customers", String(args.customers), "--hot", String(args.hot),
		"--budget-mb", String(BUDGET_MB), "--inflight", String(INFLIGHT), "--zipf-s", String(ZIPF_S), "--seed", String(SEED)
	];
	return new Promise((resolve, reject) => {
		const child = spawn(process.execPath, argv, { stdio: ["ignore", "pipe", "inherit"] });
		let out = "";
		child.stdout.setEncoding("utf8");
		child.stdout.on("data", (chunk: string) => (out += chunk));
		child.once("error", reject);
		child.once("exit", code => {
			const line = out.split("\n").find(l => l.startsWith("RESULT "));
			if (code !== 0 || line === undefined) reject(new Error(`the ${workload} run exited with ${code}${out ? `: ${out.slice(-2000)}` : ""}`));
			else resolve(JSON.parse(line.slice("RESULT ".length)) as ChildResult);
		});
	});
}

async function main(): Promise<void> {
	if (args.child !== undefined) {
		const result = await runChild(args.child, String(args["redis-url"]));
		console.log(`RESULT ${JSON.stringify(result)}`);
		return;
	}
	const wanted = String(args.workloads).split(",").map(w => w.trim()).filter(w => w !== "");
	for (const w of wanted) if (w !== "round-robin" && w !== "zipf") throw new Error(`--workloads: unknown workload "${w}" (known: round-robin, zipf)`);
	const redis = await startRedis();
	const admin = new Redis(redis.url);
	await admin.config("SET", "appendfsync", "everysec");
	const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MB`;
	const int = (n: number) => Math.round(n).toLocaleString("en-US");
	console.log(`memory-cap benchmark — ${cpus().length} cores, node ${process.version}; cap ${BUDGET_MB} MB of active actors (maxActiveBytes), ` +
		`V8 heap limit ${HEAP_LIMIT_MB} MB (--max-old-space-size), redis appendfsync everysec, event-sourced; one process per run`);
	const results: ChildResult[] = [];
	for (const workload of ["hot", ...wanted, "hot"]) {
		await emptyRedis(admin);
		results.push(await spawnChild(workload, redis.url));
	}
	admin.disconnect();
	await redis.stop();

	const [hotFirst, hotLast] = [results[0], results[results.length - 1]];
	const hotRate = (hotFirst.rate + hotLast.rate) / 2;
	const pct = (r: number) => `${((100 * r) / hotRate).toFixed(0)}% of hot`;
	const peak = (b: number) => `heap peak ${mb(b)} (${(b / BUDGET_BYTES).toFixed(2)}× the ${BUDGET_MB} MB cap)`;
	console.log(`hot        : ${int(hotFirst.customers)} customers × 4 events, all active: ${int(hotRate)} events/s (first ${int(hotFirst.rate)}, last ${int(hotLast.rate)}); ${peak(Math.max(hotFirst.peakHeap, hotLast.peakHeap))}`);
	for (const r of results.slice(1, -1)) {
		const what = r.workload === "round-robin"
			? `${int(r.customers)} customers × 2 events`
			: `${int(r.events)} events over ${int(r.customers)} customers, Zipf(${ZIPF_S}) (top customer ${(100 * (r.zipf?.topShare ?? 0)).toFixed(1)}% of events, ${int(r.zipf?.distinct ?? 0)} customers touched)`;
		const stats = r.stats as NonNullable<ChildResult["stats"]>;
		console.log(`${r.workload.padEnd(11)}: ${what} under the cap: ${int(r.rate)} events/s = ${pct(r.rate)}; ${peak(r.peakHeap)}`);
		console.log(`             active at the end ${int(stats.active)}, activations ${int(stats.activations)}, passivations ${int(stats.passivations)}, customers stored ${int(r.stored ?? 0)}; ` +
			`heap held by the host after the run ${mb(r.held ?? 0)} (${Math.round((r.held ?? 0) / Math.max(1, stats.active))} B per active actor)`);
	}
	console.log(`target: heap peak ≤ 2× the cap = ${mb(2 * BUDGET_BYTES)} (the peak includes the process's own heap)`);
	if (args.json) {
		const heapPeakMb = (b: number) => Number((b / 2 ** 20).toFixed(1));
		const row = (r: ChildResult, extra: Record<string, unknown>) => console.log(`BENCH ${JSON.stringify({
			bench: "memory", workload: r.workload, customers: r.customers, events: r.events, eventsPerSec: Math.round(r.rate), hotEventsPerSec: Math.round(hotRate),
			ratio: Number((r.rate / hotRate).toFixed(3)), heapPeakMb: heapPeakMb(r.peakHeap), capMb: BUDGET_MB, heapLimitMb: HEAP_LIMIT_MB, ...extra
		})}`);
		row({ ...hotFirst, rate: hotRate, peakHeap: Math.max(hotFirst.peakHeap, hotLast.peakHeap) }, { firstEventsPerSec: Math.round(hotFirst.rate), lastEventsPerSec: Math.round(hotLast.rate) });
		for (const r of results.slice(1, -1)) {
			const stats = r.stats as NonNullable<ChildResult["stats"]>;
			row(r, {
				...(r.zipf ? { zipfS: ZIPF_S, seed: SEED, topShare: Number(r.zipf.topShare.toFixed(4)), customersTouched: r.zipf.distinct } : {}),
				activeAtEnd: stats.active, activations: stats.activations, passivations: stats.passivations,
				customersStored: r.stored, heldMb: heapPeakMb(r.held ?? 0)
			});
		}
	}
}

main().catch(err => {
	console.error(err);
	process.exit(1);
});
