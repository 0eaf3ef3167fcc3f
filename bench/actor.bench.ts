// `npm run bench:actor`: the actor host against each store, beside the seed's stateless read-modify-write pattern
// on the same workload and store; plus memory per active actor, activation from a snapshot and reducer costs.
// Two workloads with the same number of events: "spread" (many customers, few events each) and "hot" (20× fewer
// customers with 20× more events each, as click-streams and sessions produce).
// Usage: node --expose-gc bench/actor.bench.ts [--customers 10000] [--events 10] [--inflight 1000] [--stores memory,nedb,redis]
//   [--workloads spread,hot] [--runs 3] [--actor-only] [--json]   (--json: also one `BENCH {...}` line per row and per
//   reducer measurement; --actor-only: only the host's runs, e.g. under node --cpu-prof)
// Each store and workload: an untimed warm-up on a fifth of the customers, then `--runs` timed runs of each pattern on
// a fresh store (nedb, the slow embedded store: one), the median reported.
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { ActorHost } from "../actors/host/actor-host.ts";
import type { ActorStore } from "../actors/host/actor-store.ts";
import { createActorStore } from "../adapters/store-factory.ts";
import { journalReplay } from "../actors/host/replay.ts";
import { emptyCustomerState, reduce } from "../actors/customer.reducer.ts";
import type { ChurnScorer, ReduceContext } from "../actors/customer-actor.types.ts";
import type { KnownCloudEvent as CloudEvent } from "../models/event-data.schemas.ts";
import type { CustomerState } from "../models/customer-state.ts";
import { eventKey } from "../models/cloud-event.ts";
import { loadChurnScorer } from "../ml/churn-scorer.ts";
import { loadRiskRules } from "../services/rules/risk-rules.ts";
import type { RiskRulesFn } from "../actors/risk-rules.ts";
import { startRedis, type ServerHandle } from "../test/harness.ts";
import { emptyRedis } from "./redis-reset.ts";

const { values: args } = parseArgs({
	options: {
		customers: { type: "string", default: "10000" },
		events: { type: "string", default: "10" },
		inflight: { type: "string", default: "1000" },
		stores: { type: "string", default: process.env.MONGO_URL ? "memory,nedb,redis,mongo" : "memory,nedb,redis" },
		fsync: { type: "string", default: "everysec" },
		workloads: { type: "string", default: "spread,hot" },
		runs: { type: "string", default: "3" },
		// Only the actor host's runs (no reducer-only measurements, no stateless runs): for profiling it.
		"actor-only": { type: "boolean", default: false },
		json: { type: "boolean", default: false }
	}
});
const CUSTOMERS = Number(args.customers);
const EVENTS = Number(args.events);
const ALL_WORKLOADS = [
	{ name: "spread", customers: CUSTOMERS, events: EVENTS },
	{ name: "hot", customers: Math.max(1, Math.round(CUSTOMERS / 20)), events: EVENTS * 20 }
];
const wanted = String(args.workloads).split(",").map(w => w.trim()).filter(w => w !== "");
for (const w of wanted) if (!ALL_WORKLOADS.some(wl => wl.name === w)) throw new Error(`--workloads: unknown workload "${w}" (known: ${ALL_WORKLOADS.map(wl => wl.name).join(", ")})`);
const WORKLOADS = ALL_WORKLOADS.filter(wl => wanted.includes(wl.name));
const INFLIGHT = Number(args.inflight);
const RUNS = Math.max(1, Number(args.runs));

const churnScorer: ChurnScorer | null = loadChurnScorer("ml/models/churn-telco.json");
const settings = { risk: { decayAfterMs: 30 * 24 * 3600_000, decayKeep: 0.5, churnWeight: 30 }, dedupWindow: 64 };
// The node's default: rules/risk.nools compiled into a table the actor evaluates in its turn.
const riskTable = loadRiskRules("rules/risk.nools", "table");
const ctxWith = (scorer: ChurnScorer | null, riskRules: RiskRulesFn = riskTable.evaluate) => (now: number): ReduceContext =>
	({ now, ...settings, churnScorer: scorer ?? undefined, riskRules });

const PROFILE = { contract: "Month-to-month", tenureMonths: 5, monthlyCharges: 80.5, totalCharges: 402.5, internetService: "Fiber optic", paymentMethod: "Electronic check", paperlessBilling: true, seniorCitizen: false, partner: false, dependents: false, phoneService: true, multipleLines: "No", onlineSecurity: "No", onlineBackup: "No", deviceProtection: "No", techSupport: "No", streamingTV: "Yes", streamingMovies: "No", gender: "Female" };

/** A realistic mix: mostly page views and interactions, some orders, cancellations, payments and tickets. */
function workload(customers: number, perCustomer: number): CloudEvent[][] {
	const all: CloudEvent[][] = [];
	const t0 = Date.UTC(2026, 5, 1);
	for (let c = 0; c < customers; c++) {
		const id = `bench-${c}`;
		const list: CloudEvent[] = [];
		for (let k = 0; k < perCustomer; k++) {
			const r = (c * 31 + k * 17) % 20;
			const base = { specversion: "1.0" as const, id: `${id}-${k}`, source: "/bench", subject: id, time: new Date(t0 + c * 1000 + k).toISOString() };
			let e: CloudEvent;
			if (k === 0) e = { ...base, type: "crm.customer.updated", data: { profile: { ...PROFILE, name: `Customer ${c}` } } };
			else if (r < 9) e = { ...base, type: "crm.page.viewed", data: { url: `/products/${r}` } };
			else if (r < 13) e = { ...base, type: "crm.interaction.logged", data: { interactionId: `i-${k}`, channel: "email", sentiment: (r - 11) / 2 } };
			else if (r < 16) e = { ...base, type: "crm.order.status_changed", data: { orderId: `o-${k}`, newStatus: "PAID", amount: 40 } };
			else if (r < 18) e = { ...base, type: "crm.order.status_changed", data: { orderId: `o-${k - 1}`, newStatus: "CANCELLED" } };
			else if (r < 19) e = { ...base, type: "crm.payment.failed", data: { paymentId: `p-${k}`, amount: 40 } };
			else e = { ...base, type: "crm.ticket.opened", data: { ticketId: `t-${k}`, priority: "HIGH", category: "TECHNICAL" } };
			list.push(e);
		}
		all.push(list);
	}
	return all;
}

function percentile(sorted: Float64Array, p: number): number {
	return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

interface RunResult { eventsPerSec: number; p50Ms: number; p99Ms: number }

/** Round-robin over customers so consecutive sends hit different actors; the mailbox keeps each customer's order. */
function arrivalOrder(events: CloudEvent[][]): CloudEvent[] {
	const order: CloudEvent[] = [];
	const longest = Math.max(...events.map(l => l.length));
	for (let k = 0; k < longest; k++) for (const list of events) if (list[k]) order.push(list[k]);
	return order;
}

/** Runs `send` over every event with at most `inflight` outstanding; a customer's events go in order. */
async function drive(events: CloudEvent[][], inflight: number, send: (e: CloudEvent) => Promise<unknown>, perCustomerSequential: boolean): Promise<RunResult> {
	const total = events.reduce((n, l) => n + l.length, 0);
	const latencies = new Float64Array(total);
	let done = 0;
	const start = performance.now();
	if (perCustomerSequential) {
		// One chain per customer, `inflight` chains at a time.
		let next = 0;
		const worker = async () => {
			while (next < events.length) {
				const list = events[next++];
				for (const e of list) {
					const t = performance.now();
					await send(e);
					latencies[done++] = performance.now() - t;
				}
			}
		};
		await Promise.all(Array.from({ length: Math.min(inflight, events.length) }, worker));
	} else {
		const order = arrivalOrder(events);
		let next = 0;
		const worker = async () => {
			while (next < order.length) {
				const e = order[next++];
				const t = performance.now();
				await send(e);
				latencies[done++] = performance.now() - t;
			}
		};
		await Promise.all(Array.from({ length: inflight }, worker));
	}
	const secs = (performance.now() - start) / 1000;
	latencies.sort();
	return { eventsPerSec: total / secs, p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99) };
}

async function makeStore(kind: string, redisUrl: string, dir: string): Promise<ActorStore> {
	const store = createActorStore({ kind: kind as "memory", dataDir: dir, redisUrl, mongoUrl: process.env.MONGO_URL, journalMax: 1000, replay: journalReplay(ctxWith(churnScorer)) });
	await store.connect();
	return store;
}

/** Empties the store of a kind before a run. */
async function flushStore(kind: string, redisUrl: string, dir: string): Promise<void> {
	if (kind === "redis") {
		const r = new Redis(redisUrl);
		await emptyRedis(r);
		r.disconnect();
	} else if (kind === "nedb") {
		await rm(dir, { recursive: true, force: true });
	}
}

function heapUsed(): number {
	const gc = (globalThis as { gc?: () => void }).gc;
	if (gc) { gc(); gc(); }
	return process.memoryUsage().heapUsed;
}

/** µs per event of the reducer alone, each customer's events in a row (its state stays hot in the CPU cache). */
function reducerCost(events: CloudEvent[][], scorer: ChurnScorer | null, riskRules?: RiskRulesFn): number {
	const ctx = ctxWith(scorer, riskRules)(Date.now());
	const start = performance.now();
	let n = 0;
	for (const list of events) {
		let s = emptyCustomerState(list[0].subject);
		for (const e of list) { s = reduce(s, { kind: "event", event: e }, ctx).state; n++; }
	}
	return ((performance.now() - start) * 1000) / n;
}

/**
 * µs per event of the reducer alone in the order the host gets the events (round-robin over the customers, every
 * state kept in a map): the same domain work with the host's memory access pattern and object lifetimes.
 */
function reducerCostInArrivalOrder(events: CloudEvent[][], scorer: ChurnScorer | null): number {
	const ctx = ctxWith(scorer)(Date.now());
	const order = arrivalOrder(events);
	const states = new Map<string, CustomerState>();
	const start = performance.now();
	for (const e of order) states.set(e.subject, reduce(states.get(e.subject) ?? emptyCustomerState(e.subject), { kind: "event", event: e }, ctx).state);
	return ((performance.now() - start) * 1000) / order.length;
}

function median(xs: number[]): number {
	const sorted = [...xs].sort((a, b) => a - b);
	const mid = sorted.length >> 1;
	return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The run of the median rate among runs. */
function medianRun(runs: RunResult[]): RunResult {
	const m = median(runs.map(r => r.eventsPerSec));
	return runs.reduce((best, r) => (Math.abs(r.eventsPerSec - m) < Math.abs(best.eventsPerSec - m) ? r : best));
}

function newHost(store: ActorStore): ActorHost {
	return new ActorHost({
		store, reduceContext: ctxWith(churnScorer), idleTimeoutMs: 3600_000, maxActiveActors: 10_000_000,
		commitMaxBatch: 1000, commitIntervalMs: 0, reminderPollMs: 3600_000
	});
}

/** The actor host on a fresh store: every event told, 1000 in flight, round-robin over the customers. */
async function runActors(kind: string, redisUrl: string, dir: string, events: CloudEvent[][], measureMemory: boolean) {
	await flushStore(kind, redisUrl, dir);
	const store = await makeStore(kind, redisUrl, dir);
	const host = newHost(store);
	const run = await drive(events, INFLIGHT, e => host.tell(e.subject, { kind: "event", event: e }), false);
	let bytesPerActor: number | null = null;
	let activation: RunResult | null = null;
	if (measureMemory) {
		// Memory per active actor: heap with every actor active minus heap with all passivated. The memory store keeps
		// the host's states by reference, so passivating frees only the wrapper there: no number for it.
		const active = host.stats.active;
		const heapActive = heapUsed();
		for (const id of host.activeIds()) host.passivate(id);
		await host.drain();
		const heapIdle = heapUsed();
		if (kind !== "memory") bytesPerActor = (heapActive - heapIdle) / active;
		// Activation from the store (snapshot + journal tail): load every customer again.
		const ids = events.map(l => l[0].subject);
		activation = await drive(ids.map(id => [{ subject: id } as CloudEvent]), INFLIGHT, e => host.get(e.subject), false);
	}
	await host.stop();
	await store.close();
	return { run, bytesPerActor, activation };
}

/** The seed's stateless pattern on a fresh store: per event read, apply, write back (CAS), awaited; 1000 in flight. */
async function runStateless(kind: string, redisUrl: string, dir: string, events: CloudEvent[][]): Promise<RunResult> {
	await flushStore(kind, redisUrl, dir);
	const store = await makeStore(kind, redisUrl, dir);
	const ctx = ctxWith(churnScorer);
	const run = await drive(events, INFLIGHT, async e => {
		const before = (await store.load(e.subject)) ?? emptyCustomerState(e.subject);
		const now = Date.now();
		const out = reduce(before, { kind: "event", event: e }, ctx(now));
		if (!out.applied) return;
		const [res] = await store.saveBatch([{ id: e.subject, expectedVersion: before.version, state: out.state, journal: [{ customerId: e.subject, version: out.state.version, key: eventKey(e), appliedAt: now, riskScore: out.state.risk.score, event: e }] }]);
		if (!res.ok) throw new Error("unexpected conflict in the stateless run");
	}, true);
	await store.close();
	return run;
}

async function main(): Promise<void> {
	const kinds = String(args.stores).split(",");
	let redis: ServerHandle | null = null;
	if (kinds.includes("redis")) {
		redis = await startRedis();
		const r = new Redis(redis.url);
		await r.config("SET", "appendfsync", String(args.fsync));
		r.disconnect();
	}
	const redisUrl = redis?.url ?? "";
	console.log(`crm-actors actor benchmark — ${cpus().length} cores, node ${process.version}, ${CUSTOMERS * EVENTS} events per run, ${INFLIGHT} in flight, redis appendfsync ${args.fsync}; ` +
		`median of ${RUNS} runs after a warm-up (nedb: 1 run)`);
	if (args["actor-only"]) {
		for (const wl of WORKLOADS) {
			const events = workload(wl.customers, wl.events);
			for (const kind of kinds) {
				const dir = await mkdtemp(path.join(tmpdir(), `crm-bench-${kind}-`));
				try {
					await runActors(kind, redisUrl, dir, events.slice(0, Math.max(1, Math.floor(events.length / 5))), false);
					const rates: number[] = [];
					for (let r = 0; r < RUNS; r++) rates.push((await runActors(kind, redisUrl, dir, events, false)).run.eventsPerSec);
					console.log(`${wl.name} ${kind}: actor host ${rates.map(fmt).join(", ")} events/s`);
				} finally {
					await rm(dir, { recursive: true, force: true });
				}
			}
		}
		await redis?.stop();
		return;
	}
	const spread = workload(CUSTOMERS, EVENTS);
	const session = loadRiskRules("rules/risk.nools", "nools");
	reducerCost(spread, churnScorer);
	const reducerUs = { table: reducerCost(spread, null), churn: reducerCost(spread, churnScorer), nools: reducerCost(spread, churnScorer, session.evaluate) };
	console.log(`reducer alone, spread (µs/event): ${reducerUs.table.toFixed(2)} with risk.nools as a table, no churn model; ` +
		`${reducerUs.churn.toFixed(2)} with the churn model (scored on relevant events only); ` +
		`${reducerUs.nools.toFixed(2)} with risk.nools on a nools session (RISK_RULES_ENGINE=nools)`);
	session.dispose();
	const jsonLines: string[] = [];
	for (const [variant, us] of Object.entries(reducerUs)) {
		jsonLines.push(JSON.stringify({ bench: "actor", workload: "reducer", variant, usPerEvent: round(us, 3), eventsPerSec: Math.round(1e6 / us) }));
	}
	const rows: string[][] = [];
	const reducerNotes: string[] = [];
	for (const wl of WORKLOADS) {
		const events = workload(wl.customers, wl.events);
		// The host runs with the churn model and risk.nools as a table: the same reducer alone is its ceiling.
		reducerCost(events, churnScorer);
		const seqUs = median([0, 1, 2].map(() => reducerCost(events, churnScorer)));
		const arrivalUs = median([0, 1, 2].map(() => reducerCostInArrivalOrder(events, churnScorer)));
		reducerNotes.push(`${wl.name}: ${fmt(1e6 / seqUs)} events/s customer by customer, ${fmt(1e6 / arrivalUs)} in arrival order`);
		jsonLines.push(JSON.stringify({ bench: "actor", workload: wl.name, store: "reducer-only", usPerEvent: round(seqUs, 3), eventsPerSec: Math.round(1e6 / seqUs), arrivalOrderUsPerEvent: round(arrivalUs, 3), arrivalOrderEventsPerSec: Math.round(1e6 / arrivalUs) }));
		// Warm-up: the first fifth of the customers through each path, untimed, so that no timed run pays for the JIT.
		const warm = events.slice(0, Math.max(1, Math.floor(events.length / 5)));
		for (const kind of kinds) {
			const dir = await mkdtemp(path.join(tmpdir(), `crm-bench-${kind}-`));
			try {
				await runActors(kind, redisUrl, dir, warm, false);
				await runStateless(kind, redisUrl, dir, warm);
				const runs = kind === "nedb" ? 1 : RUNS;
				const actorRuns: RunResult[] = [];
				const statelessRuns: RunResult[] = [];
				let bytesPerActor: number | null = null;
				let activation: RunResult | null = null;
				for (let r = 0; r < runs; r++) {
					const a = await runActors(kind, redisUrl, dir, events, r === 0);
					actorRuns.push(a.run);
					if (r === 0) ({ bytesPerActor, activation } = a);
					statelessRuns.push(await runStateless(kind, redisUrl, dir, events));
				}
				const actor = medianRun(actorRuns);
				const stateless = medianRun(statelessRuns);
				const act = activation as RunResult;
				const ratio = actor.eventsPerSec / stateless.eventsPerSec;
				const reducerShare = kind === "memory" ? actor.eventsPerSec * seqUs / 1e6 : null;
				const arrivalShare = kind === "memory" ? actor.eventsPerSec * arrivalUs / 1e6 : null;
				rows.push([
					`${wl.name} ${wl.customers}×${wl.events}`, kind, fmt(actor.eventsPerSec), fmt2(actor.p50Ms), fmt2(actor.p99Ms), fmt(stateless.eventsPerSec), fmt2(stateless.p50Ms), fmt2(stateless.p99Ms),
					`${ratio.toFixed(1)}×`, reducerShare === null ? "—" : `${(100 * reducerShare).toFixed(0)}% / ${(100 * (arrivalShare as number)).toFixed(0)}%`,
					bytesPerActor === null ? "—" : fmt(bytesPerActor), fmt(act.eventsPerSec), fmt2(act.p50Ms)
				]);
				jsonLines.push(JSON.stringify({
					bench: "actor", workload: wl.name, customers: wl.customers, eventsPerCustomer: wl.events, store: kind, runs,
					actorEventsPerSec: Math.round(actor.eventsPerSec), statelessEventsPerSec: Math.round(stateless.eventsPerSec), ratio: round(ratio, 2),
					bytesPerActor: bytesPerActor === null ? null : Math.round(bytesPerActor),
					p50Ms: round(actor.p50Ms, 3), p99Ms: round(actor.p99Ms, 3), statelessP50Ms: round(stateless.p50Ms, 3), statelessP99Ms: round(stateless.p99Ms, 3),
					actorRuns: actorRuns.map(r => Math.round(r.eventsPerSec)), statelessRuns: statelessRuns.map(r => Math.round(r.eventsPerSec)),
					activationsPerSec: Math.round(act.eventsPerSec), activationP50Ms: round(act.p50Ms, 3),
					reducerShare: reducerShare === null ? null : round(reducerShare, 3), reducerShareArrivalOrder: arrivalShare === null ? null : round(arrivalShare, 3)
				}));
			} finally {
				await rm(dir, { recursive: true, force: true });
			}
		}
	}
	await redis?.stop();
	const header = ["workload", "store", "actor ev/s", "p50 ms", "p99 ms", "stateless ev/s", "p50 ms", "p99 ms", "ratio", "of reducer", "B/actor", "activations/s", "act p50 ms"];
	const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => r[i].length)));
	const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join("  ");
	console.log(line(header));
	for (const r of rows) console.log(line(r));
	console.log("latency = from tell/request to persisted; B/actor = heap of active actors / count (run with --expose-gc for a clean number)");
	console.log(`reducer alone with the churn model, per workload: ${reducerNotes.join("; ")}`);
	console.log("of reducer = memory-store host rate / that reducer-only rate: customer by customer (target ≥ 50%) / in arrival order");
	if (kinds.includes("memory")) console.log("B/actor — for memory: that store keeps the host's states by reference, so passivating frees only the wrapper and the difference measures nothing");
	if (args.json) for (const l of jsonLines) console.log(`BENCH ${l}`);
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const fmt2 = (n: number) => n.toFixed(2);
const round = (n: number, digits: number) => Number(n.toFixed(digits));

main().catch(err => {
	console.error(err);
	process.exit(1);
});
