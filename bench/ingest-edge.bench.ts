// Edge ingestion benchmark: events/s and p50/p99 latency from a device's MQTT publish (mosquitto, and the embedded
// aedes broker) and from a signed webhook POST to the actor-persisted acknowledgement, on one in-process node.
// Usage: node bench/ingest-edge.bench.ts [--readings 5000] [--devices 500] [--inflight 200] [--requests 2000]
//        [--concurrency 32] [--batch 100] [--batch-events 20000] [--store nedb|memory]
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import type { ServiceBroker } from "moleculer";
import { loadConfig } from "../config/index.ts";
import { createNode } from "../app/create-node.ts";
import { signWebhook } from "../models/webhook-signature.ts";
import { freePort, startMosquitto, startRedis, waitFor, type ServerHandle } from "../test/harness.ts";
import mqtt from "mqtt";

const { values: args } = parseArgs({
	options: {
		readings: { type: "string", default: "5000" },
		devices: { type: "string", default: "500" },
		inflight: { type: "string", default: "200" },
		requests: { type: "string", default: "2000" },
		concurrency: { type: "string", default: "32" },
		batch: { type: "string", default: "100" },
		"batch-events": { type: "string", default: "20000" },
		store: { type: "string", default: "nedb" }
	}
});
const READINGS = Number(args.readings);
const DEVICES = Number(args.devices);
const INFLIGHT = Number(args.inflight);
const REQUESTS = Number(args.requests);
const CONCURRENCY = Number(args.concurrency);
const BATCH = Number(args.batch);
const BATCH_EVENTS = Number(args["batch-events"]);
const SECRET = "bench-webhook-secret-0123456789";

interface Row {
	name: string;
	events: number;
	seconds: number;
	latenciesMs: number[];
	note: string;
}

function percentile(sorted: number[], p: number): number {
	if (sorted.length === 0) return NaN;
	return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

interface BenchNode {
	broker: ServiceBroker;
	baseUrl: string;
	stop(): Promise<void>;
}

async function startNode(env: Record<string, string>): Promise<BenchNode> {
	const dir = await mkdtemp(path.join(tmpdir(), "crm-bench-edge-"));
	const port = await freePort();
	const config = loadConfig({
		DATA_DIR: dir, PORT: String(port), LOG_LEVEL: "warn", CHURN_MODEL: "off", ACTOR_STORE: args.store,
		SERVICES: "customers,api,ingest-mqtt,ingest-webhook,devices", MQTT_UNBOUND_DEVICES: "accept", WEBHOOK_SECRET: SECRET, ...env
	});
	const broker = await createNode(config);
	await broker.start();
	return {
		broker,
		baseUrl: `http://127.0.0.1:${port}`,
		async stop() {
			await broker.stop();
			await rm(dir, { recursive: true, force: true });
		}
	};
}

/**
 * Publishes READINGS readings over DEVICES devices, INFLIGHT at a time; a reading's latency ends when `persisted`
 * resolves for it (after the broker's PUBACK to the device).
 */
async function publishAll(url: string, persisted: (key: string) => Promise<void>, run: string): Promise<{ latencies: number[]; seconds: number }> {
	const publisher = await mqtt.connectAsync(url, { clientId: `bench-pub-${process.pid}-${run}`, clean: true });
	const latencies: number[] = [];
	const t0 = Date.now() - 3600_000;
	const begin = performance.now();
	let next = 0;
	const worker = async () => {
		for (;;) {
			const i = next++;
			if (i >= READINGS) return;
			const device = `bench-${run}-d${i % DEVICES}`;
			const ts = t0 + i;
			const key = `${device}@${ts}`;
			const sentAt = performance.now();
			const payload = JSON.stringify({ customerId: `bench-${run}-c${i % DEVICES}`, ts, metrics: { temperatureC: 20 + (i % 10), batteryPct: 90, energyKwh: i } });
			await publisher.publishAsync(`crm/devices/${device}/telemetry`, payload, { qos: 1 });
			await persisted(key);
			latencies.push(performance.now() - sentAt);
		}
	};
	await Promise.all(Array.from({ length: INFLIGHT }, worker));
	const seconds = (performance.now() - begin) / 1000;
	await publisher.endAsync();
	return { latencies, seconds };
}

/** Wraps the ingest pipeline so the bench learns when each reading is persisted (the moment our PUBACK may go). */
function persistenceProbe(broker: ServiceBroker): (key: string) => Promise<void> {
	const svc = broker.getLocalService("ingest-mqtt") as unknown as { pipeline: { submit(topic: string, payload: Uint8Array): Promise<unknown> } };
	const waiting = new Map<string, () => void>();
	const done = new Set<string>();
	const original = svc.pipeline.submit.bind(svc.pipeline);
	svc.pipeline.submit = (topic, payload) => {
		const device = topic.split("/")[2];
		const ts = (JSON.parse(Buffer.from(payload).toString("utf8")) as { ts: number }).ts;
		const key = `${device}@${ts}`;
		return original(topic, payload).then(r => {
			const wake = waiting.get(key);
			if (wake) {
				waiting.delete(key);
				wake();
			} else done.add(key);
			return r;
		});
	};
	return key => {
		if (done.delete(key)) return Promise.resolve();
		return new Promise(resolve => waiting.set(key, resolve));
	};
}

async function benchMosquitto(): Promise<Row> {
	const mosquitto = await startMosquitto();
	const node = await startNode({ MQTT_URL: mosquitto.url, NODE_ID: "bench-edge", MQTT_MAX_INFLIGHT: String(Math.max(INFLIGHT, 100)) });
	try {
		await waitFor(() => (node.broker.getLocalService("ingest-mqtt") as unknown as { subscribed: boolean }).subscribed, { message: "subscribed" });
		const persisted = persistenceProbe(node.broker);
		const r = await publishAll(mosquitto.url, persisted, "mq");
		return { name: "MQTT via mosquitto (QoS 1, MQTT 5)", events: READINGS, seconds: r.seconds, latenciesMs: r.latencies, note: `publish → persisted (our PUBACK); ${DEVICES} devices, ${INFLIGHT} in flight` };
	} finally {
		await node.stop();
		await mosquitto.stop();
	}
}

async function benchAedes(): Promise<Row> {
	const port = await freePort();
	const node = await startNode({ MQTT_PORT: String(port) });
	try {
		// The embedded broker answers the device only after persistence, so the device's PUBACK is the ack.
		const r = await publishAll(`mqtt://127.0.0.1:${port}`, () => Promise.resolve(), "ae");
		return { name: "MQTT via embedded aedes (QoS 1, 3.1.1)", events: READINGS, seconds: r.seconds, latenciesMs: r.latencies, note: `publish → device PUBACK (= persisted); ${DEVICES} devices, ${INFLIGHT} in flight` };
	} finally {
		await node.stop();
	}
}

/** `plain` posts to /api/v1/events instead (no signature, no idempotency key): the baseline the webhook adds to. */
async function benchWebhooks(batch: number, requests: number, redisUrl?: string, plain = false): Promise<Row> {
	const node = await startNode(redisUrl ? { REDIS_URL: redisUrl, ACTOR_STORE: args.store } : {});
	try {
		const latencies: number[] = [];
		let next = 0;
		const customers = DEVICES;
		const t0 = Date.UTC(2026, 0, 1);
		const begin = performance.now();
		const worker = async () => {
			for (;;) {
				const i = next++;
				if (i >= requests) return;
				const events = Array.from({ length: batch }, (_, k) => {
					const n = i * batch + k;
					return { specversion: "1.0", id: `wh-${batch}-${n}`, source: "/bench", type: "crm.page.viewed", subject: `bench-wh${batch}-c${n % customers}`, time: new Date(t0 + n).toISOString(), data: { url: `/p/${n % 50}` } };
				});
				const body = JSON.stringify(batch === 1 ? events[0] : events);
				const ts = Math.floor(Date.now() / 1000);
				const sentAt = performance.now();
				const res = plain
					? await fetch(`${node.baseUrl}/api/v1/events`, { method: "POST", headers: { "content-type": "application/json" }, body })
					: await fetch(`${node.baseUrl}/webhooks/bench`, {
						method: "POST",
						headers: { "content-type": "application/json", "x-crm-timestamp": String(ts), "x-crm-signature": signWebhook(SECRET, ts, body), "idempotency-key": `bench-${batch}-${i}` },
						body
					});
				await res.arrayBuffer();
				if (res.status !== 202) throw new Error(`${plain ? "/api/v1/events" : "webhook"} answered ${res.status}`);
				latencies.push(performance.now() - sentAt);
			}
		};
		await Promise.all(Array.from({ length: CONCURRENCY }, worker));
		const seconds = (performance.now() - begin) / 1000;
		const kind = redisUrl ? "Redis" : "NeDB";
		const name = plain ? `baseline: POST /api/v1/events, ${batch} event/request` : `webhooks, ${batch} event${batch === 1 ? "" : "s"}/request (keys in ${kind})`;
		return { name, events: requests * batch, seconds, latenciesMs: latencies, note: `POST → 202 (= persisted); ${CONCURRENCY} concurrent requests, latency per request` };
	} finally {
		await node.stop();
	}
}

function print(rows: Row[]): void {
	console.log(`\nedge ingestion — ${cpus().length} cores, actor store ${args.store}, Node ${process.version}`);
	console.log("| source | events | events/s | p50 ms | p99 ms | measured |");
	console.log("|---|---:|---:|---:|---:|---|");
	for (const r of rows) {
		const sorted = [...r.latenciesMs].sort((a, b) => a - b);
		console.log(`| ${r.name} | ${r.events} | ${Math.round(r.events / r.seconds)} | ${percentile(sorted, 50).toFixed(1)} | ${percentile(sorted, 99).toFixed(1)} | ${r.note} |`);
	}
}

const rows: Row[] = [];
rows.push(await benchMosquitto());
rows.push(await benchAedes());
rows.push(await benchWebhooks(1, REQUESTS, undefined, true));
rows.push(await benchWebhooks(1, REQUESTS));
rows.push(await benchWebhooks(BATCH, Math.ceil(BATCH_EVENTS / BATCH)));
let redis: ServerHandle | undefined;
try {
	redis = await startRedis();
	rows.push(await benchWebhooks(1, REQUESTS, redis.url));
} finally {
	await redis?.stop();
}
print(rows);
