// `npm run bench:ingest`: ingestion throughput and latency against real servers started by the test harness. First
// the ceiling — raw JetStream publish+ack and durable consume on this machine — then end to end through ingest-nats
// (publish → actor persisted → ack) on the Redis and the embedded store, each printed with its ratio to the ceiling.
// Publishers and the ack watcher run in worker threads (as separate applications would), the node in the main thread.
// Rows come from SCENARIOS: a source adds its own (MQTT, webhooks) by appending a scenario that returns rows.
// Usage: node bench/ingest.bench.ts [--events 100000] [--customers 2000] [--window 1000] [--latency-seconds 4]
//        [--stores redis,nedb] [--fsync everysec|always]   (Redis appendfsync; JetStream does not fsync each message either)
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { AckPolicy, connect, headers, nanos, type JetStreamClient } from "nats";
import { Redis } from "ioredis";
import type { ServiceBroker } from "moleculer";
import { loadConfig } from "../config/index.ts";
import { createNode } from "../app/create-node.ts";
import { call, IngestNats } from "../models/contract/index.ts";
import { freePort, startNats, startRedis, waitFor, type ServerHandle } from "../test/harness.ts";

const { values: args } = parseArgs({
	args: isMainThread ? process.argv.slice(2) : [],
	options: {
		events: { type: "string", default: "100000" },
		customers: { type: "string", default: "2000" },
		window: { type: "string", default: "1000" },
		"latency-seconds": { type: "string", default: "4" },
		stores: { type: "string", default: "redis,nedb" },
		fsync: { type: "string", default: "everysec" }
	}
});
const EVENTS = Number(args.events);
const CUSTOMERS = Number(args.customers);
const WINDOW = Number(args.window);
const LATENCY_SECONDS = Number(args["latency-seconds"]);
const STORES = args.stores.split(",").map(s => s.trim()).filter(Boolean);

/** One line of the table. `events / seconds` is the rate; latencies are per event. */
export interface Row {
	name: string;
	events: number;
	seconds: number;
	latenciesMs: number[];
	note: string;
	/** The row (by name) this one is compared with: its rate as a share of that row's. */
	vs?: string;
}

export interface Scenario {
	name: string;
	run(): Promise<Row[]>;
}

/** Wall-clock milliseconds comparable across threads (performance.now() has a per-thread origin). */
const now = () => performance.timeOrigin + performance.now();
/** Publishers and the node's own connections alike: no Error built per request for async stack traces. */
const CLIENT = { noAsyncTraces: true };
const RAW_WINNER = "JetStream publish+ack (raw)";
/** Events per second of the light-load latency row. */
const LIGHT_RATE = 1000;

function percentile(sorted: number[], p: number): number {
	if (sorted.length === 0) return NaN;
	return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// ---- publisher (worker thread) ----------------------------------------------------------------------------------

interface PublishJob {
	kind: "publish";
	url: string;
	subject: string;
	events: number;
	customers: number;
	run: string;
	/** Burst: at most this many publishes awaiting their PubAck. */
	window: number;
	/** Paced: events per second (0 = burst). */
	rate: number;
}

interface PublishResult {
	/** Stream sequence → wall-clock ms when its publish was sent. */
	sentAt: Array<[number, number]>;
	/** Publish → PubAck, ms. */
	pubAckMs: number[];
	startedAt: number;
	endedAt: number;
}

/** A realistic small CloudEvent (about 300 bytes); consecutive events go to different customers. */
function eventBody(i: number, customers: number, run: string): { data: Uint8Array; msgId: string } {
	const id = `${run}-${i}`;
	const e = {
		specversion: "1.0", id, source: "/bench/nats", type: "crm.page.viewed", subject: `bench-${i % customers}`,
		time: new Date(Date.UTC(2026, 0, 1) + i).toISOString(), data: { url: `/products/${i % 97}`, sessionId: `s-${i % 5000}` }
	};
	return { data: new TextEncoder().encode(JSON.stringify(e)), msgId: `${e.source}/${id}` };
}

async function publishJob(job: PublishJob): Promise<PublishResult> {
	const nc = await connect({ servers: job.url, ...CLIENT });
	const js: JetStreamClient = nc.jetstream();
	const sentAt: Array<[number, number]> = [];
	const pubAckMs: number[] = [];
	let inFlight = 0;
	let wake: (() => void) | null = null;
	const pending: Promise<void>[] = [];
	const send = (i: number) => {
		const body = eventBody(i, job.customers, job.run);
		const h = headers();
		h.set("Nats-Msg-Id", body.msgId);
		const t = now();
		inFlight++;
		pending.push(js.publish(job.subject, body.data, { headers: h }).then(ack => {
			sentAt.push([ack.seq, t]);
			pubAckMs.push(now() - t);
			inFlight--;
			const w = wake;
			wake = null;
			w?.();
		}));
	};
	const startedAt = now();
	if (job.rate === 0) {
		for (let i = 0; i < job.events; i++) {
			while (inFlight >= job.window) await new Promise<void>(resolve => (wake = resolve));
			send(i);
		}
	} else {
		const tickMs = 10;
		const perTick = Math.max(1, Math.round((job.rate * tickMs) / 1000));
		for (let i = 0; i < job.events; i += perTick) {
			const wait = startedAt + (i / perTick) * tickMs - now();
			if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait));
			for (let k = i; k < Math.min(job.events, i + perTick); k++) send(k);
		}
	}
	await Promise.all(pending);
	const endedAt = now();
	await nc.close();
	return { sentAt, pubAckMs, startedAt, endedAt };
}

interface WatchJob {
	kind: "watch";
	url: string;
	/** Acks of stream sequences above this one are recorded... */
	afterSeq: number;
	/** ...until this many were seen. */
	expect: number;
}

interface FloorJob {
	kind: "floor";
	url: string;
	/** Resolves with the wall-clock ms at which the consumer's ack floor reached this stream sequence. */
	seq: number;
}

/**
 * For the throughput run: watching every ack would double the acks nats-server delivers (a cost the raw run does
 * not pay), so this only polls the consumer's ack floor every 10 ms.
 */
async function floorJob(job: FloorJob): Promise<number> {
	const nc = await connect({ servers: job.url, ...CLIENT });
	const jsm = await nc.jetstreamManager();
	parentPort?.postMessage("ready");
	for (;;) {
		const info = await jsm.consumers.info("CRM_EVENTS", "crm-ingest");
		if (info.ack_floor.stream_seq >= job.seq) break;
		await new Promise(resolve => setTimeout(resolve, 10));
	}
	const at = now();
	await nc.close();
	return at;
}

/** Stream sequence → wall-clock ms when the ingest ack for it went over the wire. */
type AckTimes = Array<[number, number]>;

/**
 * Watches the ingest consumer's acknowledgements on the wire ($JS.ACK.<stream>.<consumer>.…, whose 6th token is the
 * stream sequence): the moment an event's ack leaves the node is when it was persisted and acknowledged. Runs in
 * its own thread so the node's thread does only the node's work. Posts "ready" once subscribed, then the times.
 */
async function watchJob(job: WatchJob): Promise<AckTimes> {
	const nc = await connect({ servers: job.url, ...CLIENT });
	const ackedAt = new Map<number, number>();
	const sub = nc.subscribe("$JS.ACK.CRM_EVENTS.crm-ingest.>");
	await nc.flush();
	parentPort?.postMessage("ready");
	for await (const m of sub) {
		const sseq = Number(m.subject.split(".")[5]);
		if (sseq > job.afterSeq && !ackedAt.has(sseq)) ackedAt.set(sseq, now());
		if (ackedAt.size >= job.expect) break;
	}
	await nc.close();
	return [...ackedAt];
}

function inWorker<T>(job: PublishJob | WatchJob | FloorJob, onReady?: () => void): Promise<T> {
	return new Promise((resolve, reject) => {
		const worker = new Worker(new URL(import.meta.url), { workerData: job });
		worker.on("message", (r: T | "ready") => {
			if (r === "ready") onReady?.();
			else resolve(r);
		});
		worker.once("error", reject);
		worker.once("exit", code => {
			if (code !== 0) reject(new Error(`${job.kind} worker exited with ${code}`));
		});
	});
}

const publishInWorker = (job: Omit<PublishJob, "kind">) => inWorker<PublishResult>({ kind: "publish", ...job });

function floorInWorker(job: Omit<FloorJob, "kind">): Promise<{ done: Promise<number> }> {
	return new Promise((resolve, reject) => {
		const done = inWorker<number>({ kind: "floor", ...job }, () => resolve({ done }));
		done.catch(reject);
	});
}

/** Starts an ack watcher and resolves (with its result promise) once it listens. */
function watchInWorker(job: Omit<WatchJob, "kind">): Promise<{ done: Promise<Map<number, number>> }> {
	return new Promise((resolve, reject) => {
		const done = inWorker<AckTimes>({ kind: "watch", ...job }, () => resolve({ done: done.then(times => new Map(times)) }));
		done.catch(reject);
	});
}

// ---- scenarios (main thread) --------------------------------------------------------------------------------------

const rawScenario: Scenario = {
	name: "raw JetStream",
	async run() {
		const nats = await startNats();
		const nc = await connect({ servers: nats.url, ...CLIENT });
		try {
			const jsm = await nc.jetstreamManager();
			await jsm.streams.add({ name: "BENCH_RAW", subjects: ["bench.raw.>"] });
			const pub = await publishInWorker({ url: nats.url, subject: "bench.raw.events", events: EVENTS, customers: CUSTOMERS, run: "raw", window: WINDOW, rate: 0 });
			const publishRow: Row = {
				name: RAW_WINNER, events: EVENTS, seconds: (pub.endedAt - pub.startedAt) / 1000, latenciesMs: pub.pubAckMs,
				note: `${WINDOW} publishes in flight; latency publish → PubAck`
			};
			// A durable pull consumer reading and acknowledging all of it.
			await jsm.consumers.add("BENCH_RAW", { durable_name: "bench", ack_policy: AckPolicy.Explicit, max_ack_pending: 10_000, ack_wait: nanos(30_000) });
			const consumer = await nc.jetstream().consumers.get("BENCH_RAW", "bench");
			const t0 = now();
			const messages = await consumer.consume({ max_messages: 512 });
			let n = 0;
			// Leaving the loop stops the consumer (awaiting close() after that would never resolve).
			for await (const m of messages) {
				m.ack();
				if (++n >= EVENTS) break;
			}
			const consumeRow: Row = { name: "JetStream durable consume+ack (raw)", events: n, seconds: (now() - t0) / 1000, latenciesMs: [], note: "pull batch 512" };
			return [publishRow, consumeRow];
		} finally {
			await nc.close();
			await nats.stop();
		}
	}
};

interface BenchNode {
	broker: ServiceBroker;
	stop(): Promise<void>;
}

async function startBenchNode(env: Record<string, string>): Promise<BenchNode> {
	const dir = await mkdtemp(path.join(tmpdir(), "crm-bench-ingest-"));
	const config = loadConfig({ DATA_DIR: dir, PORT: String(await freePort()), LOG_LEVEL: "warn", CHURN_MODEL: "off", SERVICES: "customers,deadLetters,ingest-nats", ...env });
	const broker = await createNode(config);
	await broker.start();
	return {
		broker,
		async stop() {
			await broker.stop();
			await rm(dir, { recursive: true, force: true });
		}
	};
}

/** End to end through ingest-nats on one store: a burst for throughput, then latency at a light rate and at half of it. */
function e2eScenario(store: string): Scenario {
	return {
		name: `ingest-nats e2e (${store})`,
		async run() {
			const servers: ServerHandle[] = [await startNats()];
			const nats = servers[0];
			const env: Record<string, string> = { NATS_URL: nats.url, ACTOR_STORE: store, ...(process.env.BENCH_ENV ? JSON.parse(process.env.BENCH_ENV) : {}) };
			if (store === "redis") {
				const redis = await startRedis();
				servers.push(redis);
				env.REDIS_URL = redis.url;
				const r = new Redis(redis.url);
				await r.config("SET", "appendfsync", String(args.fsync));
				r.disconnect();
			}
			const node = await startBenchNode(env);
			try {
				await waitFor(async () => (await call(node.broker, IngestNats.stats, {}))?.leading === true, { timeoutMs: 15_000 });
				const latencyOf = (r: PublishResult, acks: Map<number, number>) => r.sentAt.map(([s, at]) => (acks.get(s) ?? NaN) - at).filter(Number.isFinite);
				const subject = "crm.events.page.viewed";

				const floor = await floorInWorker({ url: nats.url, seq: EVENTS });
				const cpu0 = process.threadCpuUsage();
				const burst = await publishInWorker({ url: nats.url, subject, events: EVENTS, customers: CUSTOMERS, run: `tp-${store}`, window: WINDOW, rate: 0 });
				const allAcked = await floor.done;
				const cpu = process.threadCpuUsage(cpu0);
				// The node's own thread (publisher and watcher have theirs): CPU per event, steadier than a rate on a busy machine.
				const cpuPerEvent = (cpu.user + cpu.system) / EVENTS;
				const st = await call(node.broker, IngestNats.stats, {});
				const seconds = (allAcked - burst.startedAt) / 1000;
				const throughput: Row = {
					name: `NATS → actor persisted → ack (${store})`, events: EVENTS, seconds, latenciesMs: [],
					note: `${CUSTOMERS} customers, burst; node thread ${fmt(cpuPerEvent)} µs CPU/event; ${fmt((100 * (st?.batchedMessages ?? 0)) / EVENTS)}% in per-customer batches`,
					vs: RAW_WINNER
				};

				// Latency, open loop: at a light fixed rate, and at half the measured throughput.
				const rows: Row[] = [throughput];
				let afterSeq = EVENTS;
				for (const rate of [LIGHT_RATE, Math.max(LIGHT_RATE, Math.floor(EVENTS / seconds / 2))]) {
					const total = Math.min(EVENTS, Math.ceil(rate * LATENCY_SECONDS));
					const pacedAcks = await watchInWorker({ url: nats.url, afterSeq, expect: total });
					const paced = await publishInWorker({ url: nats.url, subject, events: total, customers: CUSTOMERS, run: `lat-${rate}-${store}`, window: WINDOW, rate });
					rows.push({
						name: `  at ${fmt(rate)} events/s (${store})`, events: total, seconds: (paced.endedAt - paced.startedAt) / 1000,
						latenciesMs: latencyOf(paced, await pacedAcks.done), note: rate === LIGHT_RATE ? "open loop, light load" : "open loop at half the throughput"
					});
					afterSeq += total;
				}
				return rows;
			} finally {
				await node.stop();
				for (const s of servers) await s.stop();
			}
		}
	};
}

/** In table order. MQTT and webhook rows: append a Scenario returning Rows (`vs`: the raw row they compare with). */
export const SCENARIOS: Scenario[] = [rawScenario, ...STORES.map(e2eScenario)];

function fmt(n: number, digits = 0): string {
	return Number.isFinite(n) ? n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }) : "-";
}

function print(rows: Row[]): void {
	const rate = (r: Row) => r.events / r.seconds;
	const byName = new Map(rows.map(r => [r.name, r]));
	const header = ["scenario", "events", "events/s", "p50 ms", "p99 ms", "vs raw", "note"];
	const lines = rows.map(r => {
		const sorted = [...r.latenciesMs].sort((a, b) => a - b);
		const ceiling = r.vs ? byName.get(r.vs) : undefined;
		return [
			r.name, fmt(r.events), fmt(rate(r)), fmt(percentile(sorted, 50), 1), fmt(percentile(sorted, 99), 1),
			ceiling ? `${fmt((100 * rate(r)) / rate(ceiling))}%` : "", r.note
		];
	});
	const widths = header.map((h, i) => Math.max(h.length, ...lines.map(l => l[i].length)));
	const row = (cells: string[]) => cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
	console.log(row(header));
	console.log(widths.map(w => "-".repeat(w)).join("  "));
	for (const l of lines) console.log(row(l));
}

async function main(): Promise<void> {
	console.log(`ingest bench: ${EVENTS} events over ${CUSTOMERS} customers, ${WINDOW} publishes in flight, redis appendfsync ${args.fsync}; ` +
		`${cpus().length} cores (${cpus()[0]?.model ?? "?"}), node ${process.version}`);
	const rows: Row[] = [];
	for (const s of SCENARIOS) {
		process.stdout.write(`running ${s.name}…\n`);
		const got = await s.run();
		for (const r of got) process.stdout.write(`  ${r.name.trim()}: ${fmt(r.events / r.seconds)} events/s\n`);
		rows.push(...got);
	}
	console.log();
	print(rows);
}

if (!isMainThread) {
	const job = workerData as PublishJob | WatchJob;
	(job.kind === "publish" ? publishJob(job) : job.kind === "watch" ? watchJob(job) : floorJob(job)).then(r => parentPort?.postMessage(r), (err: unknown) => {
		throw err;
	});
} else if (import.meta.main) {
	main().then(() => process.exit(0), err => {
		console.error(err);
		process.exit(1);
	});
}
