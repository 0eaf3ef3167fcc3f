// MQTT ingest against a real mosquitto (MQTT 5, shared subscription, persistent session): our PUBACK waits for
// persistence, device bindings, a bad-input corpus, load split between two nodes, and a broker restart mid-stream.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Errors } from "moleculer";
import type { MqttClient } from "mqtt";
import { startMosquitto, waitFor, type ServerHandle } from "../harness.ts";
import { startTestNode, type TestNode } from "../support/node.ts";
import { connectPublisher, deadLetterSink, edgeServices, reading, restReady, topicOf, type DeadLetterSink } from "../support/edge.ts";

interface IngestInternals {
	client: MqttClient | null;
	subscribed: boolean;
	pipeline: { pending: number };
}

const ingestOf = (node: TestNode) => node.broker.getLocalService("ingest-mqtt") as unknown as IngestInternals;

/** Resolves once the node's MQTT client is subscribed (a message published before would find no subscriber). */
async function subscribed(node: TestNode): Promise<void> {
	await waitFor(() => ingestOf(node).subscribed, { message: "ingest-mqtt subscribed", timeoutMs: 10_000 });
}

async function telemetryCount(node: TestNode, customerId: string): Promise<number> {
	const c = await node.api(`/api/v1/customers/${customerId}`);
	return c.status === 404 ? 0 : c.body.counters.telemetryReadings as number;
}

describe("MQTT ingest from mosquitto", () => {
	let mosquitto: ServerHandle;
	let node: TestNode;
	let dead: DeadLetterSink;
	let device: MqttClient;
	before(async () => {
		mosquitto = await startMosquitto();
		// A shared subscription, as in a cluster.
		node = await startTestNode({ SERVICES: edgeServices("ingest-mqtt"), MQTT_URL: mosquitto.url, NODE_ID: "mqtt-a", MQTT_SHARE_GROUP: "crm-ingest" });
		await subscribed(node);
		await restReady(node, "/api/v1/devices");
		dead = await deadLetterSink(node.broker);
		device = await connectPublisher(mosquitto.url);
	});
	after(async () => {
		await device?.endAsync();
		await node?.stop();
		await mosquitto?.stop();
	});

	it("binds devices over the API and applies their readings; our PUBACK goes out only after persistence", async () => {
		const bind = await node.api("/api/v1/devices", { method: "POST", json: { deviceId: "m-d1", customerId: "m-c1" } });
		assert.equal(bind.status, 200, JSON.stringify(bind.body));
		assert.equal((await node.api("/api/v1/devices/m-d1")).body.customerId, "m-c1");
		const client = ingestOf(node).client;
		assert.ok(client);
		const log: string[] = [];
		client.on("packetsend", packet => {
			if (packet.cmd === "puback") log.push("PUBACK sent");
		});
		const real = node.broker.call.bind(node.broker);
		let failures = 2;
		(node.broker as { call: unknown }).call = (action: string, params: unknown, opts: unknown) => {
			if (action !== "customers.handle") return real(action, params, opts as never);
			if (failures-- > 0) {
				log.push("handle failed");
				return Promise.reject(new Errors.MoleculerRetryableError("injected store outage", 503, "STORE_UNAVAILABLE"));
			}
			return real(action, params, opts as never).then(r => (log.push("handle persisted"), r));
		};
		try {
			await device.publishAsync(topicOf("m-d1"), reading("m-c1", Date.now() - 1000, { temperatureC: 19.5 }), { qos: 1 });
			await waitFor(() => log.includes("PUBACK sent"), { message: "our PUBACK" });
			assert.deepEqual(log, ["handle failed", "handle failed", "handle persisted", "PUBACK sent"]);
		} finally {
			(node.broker as { call: unknown }).call = real;
		}
		const c = await node.api("/api/v1/customers/m-c1");
		assert.equal(c.body.telemetry.temperatureC, 19.5);
	});

	it("dead-letters a bad-input corpus with reasons, keeps running and applies every valid reading", async () => {
		await node.api("/api/v1/devices", { method: "POST", json: { deviceId: "m-good", customerId: "m-c2" } });
		await node.api("/api/v1/devices", { method: "POST", json: { deviceId: "m-bad", customerId: "m-c2" } });
		const now = Date.now();
		const corpus: Array<[string, string, string | Buffer, RegExp]> = [
			["malformed JSON", topicOf("m-bad"), "{\"customerId\": \"m-c2\", ", /not valid JSON/],
			["wrong types", topicOf("m-bad"), JSON.stringify({ customerId: "m-c2", ts: "soon", metrics: { temperatureC: "hot" } }), /ts must be/],
			["metric of the wrong type", topicOf("m-bad"), JSON.stringify({ customerId: "m-c2", ts: now, metrics: { temperatureC: "hot" } }), /temperatureC must be a finite number/],
			["oversize", topicOf("m-bad"), JSON.stringify({ customerId: "m-c2", ts: now, metrics: { a: 1 }, pad: "x".repeat(40_000) }), /exceeds 16384 bytes/],
			["unknown field", topicOf("m-bad"), JSON.stringify({ customerId: "m-c2", ts: now, metrics: { a: 1 }, type: "crm.spaceship.launched" }), /unknown field "type"/],
			["missing customer id", topicOf("m-bad"), JSON.stringify({ ts: now, metrics: { a: 1 } }), /missing customerId/],
			["prototype-polluting keys", topicOf("m-bad"), '{"customerId":"m-c2","ts":1780000000000,"metrics":{"a":1},"__proto__":{"polluted":true}}', /forbidden key "__proto__"/],
			["negative counter", topicOf("m-bad"), reading("m-c2", now - 5, { stepCount: -12 }), /stepCount is a counter and cannot be negative/],
			["timestamp far in the future", topicOf("m-bad"), reading("m-c2", now + 24 * 3600_000), /in the future/],
			["value out of declared range", topicOf("m-bad"), reading("m-c2", now - 6, { heartRateBpm: 900 }), /heartRateBpm = 900 is outside its declared range/],
			["device bound to another customer", topicOf("m-bad"), reading("m-other", now - 7), /bound to customer m-c2, but the reading names customer m-other/],
			["unbound device (policy: reject)", topicOf("m-stranger"), reading("m-c2", now - 8), /m-stranger is not bound/]
		];
		const before = (await dead.list("mqtt")).length;
		let ts = now - 60_000;
		for (const [, topic, payload] of corpus) {
			await device.publishAsync(topic, payload, { qos: 1 });
			await device.publishAsync(topicOf("m-good"), reading("m-c2", ts++), { qos: 1 });
		}
		await waitFor(async () => (await dead.list("mqtt")).length === before + corpus.length && await telemetryCount(node, "m-c2") === corpus.length, { message: "every bad reading dead-lettered, every good one applied" });
		// Devices are processed concurrently, so dead letters are matched to their input, not by position.
		const letters = (await dead.list("mqtt")).slice(before);
		for (const [name, topic, payload, reason] of corpus) {
			const letter = letters.find(l => {
				const kept = l.payload as { topic: string; payload?: string };
				return kept.topic === topic && kept.payload === payload.toString();
			});
			assert.ok(letter, `${name}: a dead letter keeps the original topic and payload`);
			assert.match(letter.reason, reason, name);
			assert.equal(letter.retryAction, "ingest-mqtt.reprocess");
		}
		assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined);
		assert.equal((await node.api("/api/v1/customers/m-other")).status, 404);
	});

	it("a dead-lettered reading of an unbound device is applied by its retry action once the device is bound", async () => {
		const ts = Date.now() - 2000;
		const before = (await dead.list("mqtt")).length;
		await device.publishAsync(topicOf("m-late"), reading("m-c3", ts, { batteryPct: 12 }), { qos: 1 });
		await waitFor(async () => (await dead.list("mqtt")).length === before + 1, { message: "dead letter for the unbound device" });
		const letter = (await dead.list("mqtt")).at(-1);
		assert.ok(letter);
		await assert.rejects(node.broker.call("ingest-mqtt.reprocess", { payload: letter.payload }), /not bound/);
		await node.api("/api/v1/devices", { method: "POST", json: { deviceId: "m-late", customerId: "m-c3" } });
		// The binding change is broadcast, so the cached "unbound" answer is gone at once.
		const out = await node.broker.call<{ outcome: string }, unknown>("ingest-mqtt.reprocess", { payload: letter.payload });
		assert.equal(out.outcome, "applied");
		assert.equal((await node.api("/api/v1/customers/m-c3")).body.telemetry.batteryPct, 12);
		// The device's next reading flows straight in.
		await device.publishAsync(topicOf("m-late"), reading("m-c3", ts + 1000, { batteryPct: 11 }), { qos: 1 });
		await waitFor(async () => await telemetryCount(node, "m-c3") === 2, { message: "next reading applied" });
	});

	it("keeps each device's readings in publish order", async () => {
		await node.api("/api/v1/devices", { method: "POST", json: { deviceId: "m-ord", customerId: "m-c4" } });
		const t0 = Date.now() - 100_000;
		const n = 60;
		await Promise.all(Array.from({ length: n }, (_, i) => device.publishAsync(topicOf("m-ord"), reading("m-c4", t0 + i, { uptimeS: i }), { qos: 1 })));
		await waitFor(async () => await telemetryCount(node, "m-c4") === n, { message: "all ordered readings applied" });
		const journal = await node.api(`/api/v1/customers/m-c4/events?limit=${n}`);
		const applied = journal.body.map((e: { event: { data: { metrics: { uptimeS: number } } } }) => e.event.data.metrics.uptimeS).reverse();
		assert.deepEqual(applied, Array.from({ length: n }, (_, i) => i));
	});
});

describe("MQTT shared subscription over two nodes", () => {
	let mosquitto: ServerHandle;
	let a: TestNode;
	let b: TestNode;
	before(async () => {
		mosquitto = await startMosquitto();
		const env = { MQTT_URL: mosquitto.url, MQTT_UNBOUND_DEVICES: "accept", MQTT_SHARE_GROUP: "split" };
		a = await startTestNode({ SERVICES: edgeServices("ingest-mqtt"), ...env, NODE_ID: "split-a" });
		b = await startTestNode({ SERVICES: edgeServices("ingest-mqtt"), ...env, NODE_ID: "split-b" });
		await Promise.all([subscribed(a), subscribed(b)]);
	});
	after(async () => {
		await a?.stop();
		await b?.stop();
		await mosquitto?.stop();
	});

	it("splits the readings between the nodes, each applied by exactly one of them", async () => {
		const device = await connectPublisher(mosquitto.url);
		const n = 40;
		try {
			const ts = Date.now() - 10_000;
			await Promise.all(Array.from({ length: n }, (_, i) => device.publishAsync(topicOf(`split-d${i}`), reading(`split-c${i}`, ts), { qos: 1 })));
		} finally {
			await device.endAsync();
		}
		// Two single-node test nodes do not share a store: each customer lands in exactly one of them.
		let onA = 0;
		let onB = 0;
		await waitFor(async () => {
			onA = 0;
			onB = 0;
			for (let i = 0; i < n; i++) {
				onA += await telemetryCount(a, `split-c${i}`);
				onB += await telemetryCount(b, `split-c${i}`);
			}
			return onA + onB >= n;
		}, { message: "all readings applied" });
		assert.equal(onA + onB, n, "none applied twice");
		assert.ok(onA > 0 && onB > 0, `both nodes took a share (a: ${onA}, b: ${onB})`);
	});
});

describe("MQTT ingest across a mosquitto restart", () => {
	let mosquitto: ServerHandle;
	let node: TestNode;
	before(async () => {
		mosquitto = await startMosquitto();
		// The single-node default: a plain persistent subscription, which mosquitto keeps across its restart (it does
		// not persist shared ones: see docs/ingestion.md).
		node = await startTestNode({ SERVICES: edgeServices("ingest-mqtt"), MQTT_URL: mosquitto.url, NODE_ID: "restart-a", MQTT_UNBOUND_DEVICES: "accept" });
		await subscribed(node);
	});
	after(async () => {
		await node?.stop();
		await mosquitto?.stop();
	});

	it("resumes by itself; every reading the broker acknowledged is applied exactly once, in order per device", async () => {
		const devices = 20;
		const perDevice = 15;
		const publisher = await connectPublisher(mosquitto.url, { clean: false, clientId: `restart-pub-${process.pid}`, reconnectPeriod: 100 });
		const t0 = Date.now() - 600_000;
		const acks: Promise<unknown>[] = [];
		let restarted: Promise<void> | undefined;
		try {
			for (let round = 0; round < perDevice; round++) {
				for (let d = 0; d < devices; d++) {
					acks.push(publisher.publishAsync(topicOf(`rs-d${d}`), reading(`rs-c${d}`, t0 + round * 1000, { uptimeS: round }), { qos: 1 }));
				}
				// Mid-stream: once a third is out, the broker goes down (saving its state) and comes back on its port.
				if (round === Math.floor(perDevice / 3)) {
					await Promise.all(acks);
					restarted = mosquitto.restart();
				}
				if (round === Math.floor(perDevice / 3) + 1) await restarted;
			}
			await Promise.all(acks);
		} finally {
			await publisher.endAsync();
		}
		await waitFor(async () => {
			let total = 0;
			for (let d = 0; d < devices; d++) total += await telemetryCount(node, `rs-c${d}`);
			return total >= devices * perDevice && ingestOf(node).pipeline.pending === 0;
		}, { message: "every acknowledged reading applied", timeoutMs: 30_000 });
		for (let d = 0; d < devices; d++) {
			assert.equal(await telemetryCount(node, `rs-c${d}`), perDevice, `rs-c${d}: applied exactly once each`);
			const journal = await node.api(`/api/v1/customers/rs-c${d}/events?limit=100`);
			const rounds = journal.body.map((e: { event: { data: { metrics: { uptimeS: number } } } }) => e.event.data.metrics.uptimeS).reverse();
			assert.deepEqual(rounds, Array.from({ length: perDevice }, (_, i) => i), `rs-c${d}: in order`);
		}
	});
});
