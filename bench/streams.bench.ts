// `npm run bench:streams`: one node with N open change streams (one per customer) while events are POSTed at a fixed
// rate; prints the end-to-end latency from the POST's 202 (and from sending it) to the change's delivery on its SSE
// stream, p50/p99, and the node's heap per open stream. The node runs in this thread (its heap is what is measured,
// after a GC); the SSE clients and the POSTer run in a worker thread, whose heap is its own.
// Usage: node --expose-gc bench/streams.bench.ts [--clients 1000] [--rate 1000] [--seconds 10] [--store redis|memory|nedb] [--json]
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import type { ServiceBroker } from "moleculer";
import { loadConfig } from "../config/index.ts";
import { createNode } from "../app/create-node.ts";
import { freePort, startRedis, waitFor, type ServerHandle } from "../test/harness.ts";
import { connectSse, type SseClient } from "../test/support/sse.ts";

const API_KEY = "bench-key-0123456789abcdef";

interface WorkerInput { baseUrl: string; clients: number; rate: number; seconds: number }
type ToWorker = { go: true } | { stop: true };
type FromWorker =
	| { open: number }
	| { done: true; sent: number; acked: number; delivered: number; ackToDelivery: number[]; sendToDelivery: number[]; beforeAck: number; cut: number; failedPosts: number };

function percentile(sorted: number[], p: number): number {
	if (sorted.length === 0) return NaN;
	return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const round = (v: number, d = 1) => Math.round(v * 10 ** d) / 10 ** d;

async function clientSide(input: WorkerInput): Promise<void> {
	const port = parentPort;
	if (port === null) throw new Error("not a worker");
	const customers = Array.from({ length: input.clients }, (_, i) => `sse-${i}`);
	// Per event id: when it was sent and when its 202 came; when its change arrived.
	const sentAt = new Map<string, number>();
	const ackedAt = new Map<string, number>();
	const deliveredAt = new Map<string, number>();
	let cut = 0;
	const streams: SseClient[] = [];
	for (let i = 0; i < customers.length; i += 100) {
		streams.push(...await Promise.all(customers.slice(i, i + 100).map(id => connectSse(`${input.baseUrl}/api/v1/customers/${id}/stream`, {
			apiKey: API_KEY, keepEvents: false,
			onEvent: e => {
				if (e.event === "change") deliveredAt.set(String(e.data.change.cause.event.id), e.at);
				else if (e.event === "error") cut++;
			}
		}))));
	}
	const bad = streams.filter(s => s.status !== 200).length;
	if (bad > 0) throw new Error(`${bad} streams did not open`);
	port.postMessage({ open: streams.length } satisfies FromWorker);
	await new Promise<void>(resolve => port.once("message", (m: ToWorker) => "go" in m && resolve()));

	let seq = 0;
	let failedPosts = 0;
	const inflight = new Set<Promise<void>>();
	const post = (customerId: string) => {
		const id = `bench-${++seq}`;
		const event = {
			specversion: "1.0", id, source: "/bench", type: "crm.page.viewed", subject: customerId, time: new Date().toISOString(),
			data: { url: `/p/${seq}` }
		};
		sentAt.set(id, performance.now());
		const p = fetch(`${input.baseUrl}/api/v1/events`, {
			method: "POST", headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" }, body: JSON.stringify(event)
		}).then(async res => {
			await res.arrayBuffer();
			if (res.status === 202) ackedAt.set(id, performance.now());
			else failedPosts++;
		}, () => {
			failedPosts++;
		}).finally(() => inflight.delete(p));
		inflight.add(p);
	};
	// Paced: every 10 ms, the events due by now (rate/s), round-robin over the customers.
	const total = input.rate * input.seconds;
	const start = performance.now();
	let next = 0;
	await new Promise<void>(resolve => {
		const tick = setInterval(() => {
			const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * input.rate));
			while (next < due) post(customers[next++ % customers.length]);
			if (next >= total) {
				clearInterval(tick);
				resolve();
			}
		}, 10);
	});
	await Promise.all(inflight);
	await waitFor(() => deliveredAt.size >= ackedAt.size, { timeoutMs: 30_000, message: "every acknowledged change delivered" }).catch(() => undefined);
	const ackToDelivery: number[] = [];
	const sendToDelivery: number[] = [];
	let beforeAck = 0;
	for (const [id, at] of deliveredAt) {
		const acked = ackedAt.get(id);
		const sent = sentAt.get(id);
		if (sent !== undefined) sendToDelivery.push(at - sent);
		if (acked === undefined) continue;
		// The stream may deliver a change before the POST's answer is read: counted, and as 0 ms.
		if (at < acked) beforeAck++;
		ackToDelivery.push(Math.max(0, at - acked));
	}
	for (const s of streams) s.close();
	port.postMessage({ done: true, sent: next, acked: ackedAt.size, delivered: deliveredAt.size, ackToDelivery, sendToDelivery, beforeAck, cut, failedPosts } satisfies FromWorker);
}

async function main(): Promise<void> {
	const { values: args } = parseArgs({
		options: {
			clients: { type: "string", default: "1000" },
			rate: { type: "string", default: "1000" },
			seconds: { type: "string", default: "10" },
			store: { type: "string", default: "redis" },
			json: { type: "boolean", default: false }
		}
	});
	const gc = (globalThis as { gc?: () => void }).gc;
	if (!gc) throw new Error("run with --expose-gc (npm run bench:streams does)");
	const clients = Number(args.clients);
	const rate = Number(args.rate);
	const seconds = Number(args.seconds);
	const dir = await mkdtemp(path.join(tmpdir(), "crm-bench-streams-"));
	let redis: ServerHandle | null = null;
	let broker: ServiceBroker | null = null;
	try {
		const env: Record<string, string> = {
			DATA_DIR: dir, PORT: String(await freePort()), HOST: "127.0.0.1", API_KEYS: API_KEY, LOG_LEVEL: "warn", CHURN_MODEL: "off",
			SERVICES: "customers,api", ACTOR_STORE: String(args.store)
		};
		if (args.store === "redis") {
			redis = await startRedis();
			env.REDIS_URL = redis.url;
		}
		const config = loadConfig(env);
		broker = await createNode(config);
		await broker.start();
		const baseUrl = `http://127.0.0.1:${config.port}`;
		const heap = () => {
			gc();
			gc();
			return process.memoryUsage().heapUsed;
		};
		const heapBefore = heap();
		const worker = new Worker(new URL(import.meta.url), { workerData: { baseUrl, clients, rate, seconds } satisfies WorkerInput });
		const messages: FromWorker[] = [];
		const waiters: Array<() => void> = [];
		worker.on("message", (m: FromWorker) => {
			messages.push(m);
			for (const w of waiters.splice(0)) w();
		});
		let failed: Error | null = null;
		worker.on("error", err => {
			failed = err;
			for (const w of waiters.splice(0)) w();
		});
		const next = async (): Promise<FromWorker> => {
			while (messages.length === 0) {
				if (failed) throw failed;
				await new Promise<void>(resolve => waiters.push(resolve));
			}
			return messages.shift() as FromWorker;
		};
		const opened = await next();
		if (!("open" in opened)) throw new Error("unexpected message");
		await waitFor(async () => ((await broker?.call("api.streamStats")) as { clients: number }).clients >= clients, { timeoutMs: 30_000, message: "streams registered" });
		const heapOpen = heap();
		worker.postMessage({ go: true } satisfies ToWorker);
		const done = await next();
		if (!("done" in done)) throw new Error("unexpected message");
		await worker.terminate();
		const ack = [...done.ackToDelivery].sort((a, b) => a - b);
		const send = [...done.sendToDelivery].sort((a, b) => a - b);
		const result = {
			bench: "streams", store: args.store, clients, rate, seconds,
			sent: done.sent, acked: done.acked, delivered: done.delivered, failedPosts: done.failedPosts, cut: done.cut,
			ackToDeliveryMs: { p50: round(percentile(ack, 50)), p99: round(percentile(ack, 99)), max: round(ack.at(-1) ?? NaN) },
			sendToDeliveryMs: { p50: round(percentile(send, 50)), p99: round(percentile(send, 99)), max: round(send.at(-1) ?? NaN) },
			deliveredBeforeAck: done.beforeAck,
			heapPerStreamBytes: Math.round((heapOpen - heapBefore) / clients)
		};
		console.log(`change streams, one node (${args.store} store): ${clients} open streams, ${rate} events/s for ${seconds} s`);
		console.log(`  events sent ${result.sent}, 202 ${result.acked}, delivered on their stream ${result.delivered}, clients cut ${result.cut}`);
		console.log(`  POST 202 → SSE delivery: p50 ${result.ackToDeliveryMs.p50} ms, p99 ${result.ackToDeliveryMs.p99} ms (max ${result.ackToDeliveryMs.max}; ${result.deliveredBeforeAck} delivered before their 202 was read, counted as 0)`);
		console.log(`  POST sent → SSE delivery: p50 ${result.sendToDeliveryMs.p50} ms, p99 ${result.sendToDeliveryMs.p99} ms`);
		console.log(`  node heap per open stream: ${result.heapPerStreamBytes} B (after GC; the clients run in a worker thread with a heap of their own)`);
		if (args.json) console.log(`BENCH ${JSON.stringify(result)}`);
	} finally {
		await broker?.stop();
		await redis?.stop();
		await rm(dir, { recursive: true, force: true });
	}
}

if (isMainThread) await main();
else await clientSide(workerData as WorkerInput);
