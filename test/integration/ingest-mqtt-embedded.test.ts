// MQTT ingest on the embedded broker (aedes on MQTT_PORT): the device's PUBACK waits for persistence, a reading the
// node could not finish before stopping is published again by the device and applied once, bad input is dead-lettered.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Errors } from "moleculer";
import type { ServiceBroker } from "moleculer";
import { freePort, waitFor } from "../harness.ts";
import { startTestNode, type TestNode } from "../support/node.ts";
import { connectPublisher, deadLetterSink, edgeServices, reading, topicOf, type DeadLetterSink } from "../support/edge.ts";

/** Makes the next `n` customers.handle calls fail as a store outage would, and logs what happens in order. */
function injectOutage(broker: ServiceBroker, n: number, log: string[]): () => void {
	const real = broker.call.bind(broker);
	let failures = n;
	(broker as { call: unknown }).call = (action: string, params: unknown, opts: unknown) => {
		if (action !== "customers.handle") return real(action, params, opts as never);
		if (failures > 0) {
			failures--;
			log.push("handle failed");
			return Promise.reject(new Errors.MoleculerRetryableError("injected store outage", 503, "STORE_UNAVAILABLE"));
		}
		return real(action, params, opts as never).then(r => {
			log.push("handle persisted");
			return r;
		});
	};
	return () => {
		(broker as { call: unknown }).call = real;
	};
}

describe("MQTT ingest on the embedded broker", () => {
	let node: TestNode;
	let port: number;
	let dead: DeadLetterSink;
	before(async () => {
		port = await freePort();
		node = await startTestNode({ SERVICES: edgeServices("ingest-mqtt"), MQTT_PORT: String(port), MQTT_UNBOUND_DEVICES: "accept" });
		dead = await deadLetterSink(node.broker);
	});
	after(async () => {
		await node?.stop();
	});

	it("sends the device's PUBACK only after the reading is persisted, retrying a store outage meanwhile", async () => {
		const log: string[] = [];
		const restore = injectOutage(node.broker, 3, log);
		const device = await connectPublisher(`mqtt://127.0.0.1:${port}`);
		try {
			const ts = Date.now() - 1000;
			await device.publishAsync(topicOf("emb-d1"), reading("emb-c1", ts, { batteryPct: 50 }), { qos: 1 });
			log.push("device got PUBACK");
			assert.deepEqual(log, ["handle failed", "handle failed", "handle failed", "handle persisted", "device got PUBACK"]);
			const c = await node.api("/api/v1/customers/emb-c1");
			assert.equal(c.body.telemetry.batteryPct, 50);
			assert.equal(c.body.counters.telemetryReadings, 1);
		} finally {
			restore();
			await device.endAsync();
		}
	});

	it("dead-letters impossible and malformed readings with their reasons and keeps ingesting", async () => {
		const device = await connectPublisher(`mqtt://127.0.0.1:${port}`);
		try {
			const now = Date.now();
			const corpus: Array<[string, string, string | Buffer, RegExp]> = [
				["malformed JSON", topicOf("emb-bad"), "{\"customerId\":", /not valid JSON/],
				["negative counter", topicOf("emb-bad"), reading("emb-c2", now - 10, { energyKwh: -5 }), /energyKwh is a counter/],
				["future timestamp", topicOf("emb-bad"), reading("emb-c2", now + 3600_000), /in the future/],
				["out of range", topicOf("emb-bad"), reading("emb-c2", now - 20, { humidityPct: 180 }), /humidityPct = 180/],
				["bad device id", "crm/devices/bad device/telemetry", reading("emb-c2", now - 30), /is not crm\/devices/]
			];
			let i = 0;
			for (const [name, topic, payload, reason] of corpus) {
				await device.publishAsync(topic, payload, { qos: 1 });
				// The PUBACK came after the dead letter was recorded, so it is there now.
				const letter = (await dead.list("mqtt")).find(l => (l.payload as { topic: string; payload?: string }).topic === topic && (l.payload as { payload?: string }).payload === payload.toString());
				assert.ok(letter, `${name}: dead-lettered with its topic and payload`);
				assert.match(letter.reason, reason, name);
				await device.publishAsync(topicOf("emb-good"), reading("emb-c2", now - 1000 + i++), { qos: 1 });
			}
			const c = await node.api("/api/v1/customers/emb-c2");
			assert.equal(c.body.counters.telemetryReadings, corpus.length, "every valid reading between the bad ones is applied");
			// Other topics under crm/devices/ are routed as any broker would, without judgement.
			await device.publishAsync("crm/devices/emb-good/status", "online", { qos: 1 });
			assert.equal((await dead.list("mqtt")).length, corpus.length);
		} finally {
			await device.endAsync();
		}
	});

	it("a reading in flight when the node stops is published again by the device and applied exactly once", async () => {
		const log: string[] = [];
		// Fails until the node stops: the reading cannot be persisted, so the device must not get a PUBACK.
		const restore = injectOutage(node.broker, Number.MAX_SAFE_INTEGER, log);
		const device = await connectPublisher(`mqtt://127.0.0.1:${port}`, { clean: false, clientId: `emb-restart-${process.pid}`, reconnectPeriod: 100 });
		const ts = Date.now() - 500;
		let acked = false;
		const published = device.publishAsync(topicOf("emb-d3"), reading("emb-c3", ts, { batteryPct: 33 }), { qos: 1 }).then(() => {
			acked = true;
		});
		await waitFor(() => log.length >= 2, { message: "the ingest retries the failing store" });
		restore();
		const dataDir = node.dataDir;
		await node.stop({ keepData: true });
		assert.equal(acked, false, "no PUBACK for a reading that was never persisted");
		node = await startTestNode({ SERVICES: edgeServices("ingest-mqtt"), MQTT_PORT: String(port), MQTT_UNBOUND_DEVICES: "accept" }, dataDir);
		dead = await deadLetterSink(node.broker);
		try {
			await published;
			const c = await node.api("/api/v1/customers/emb-c3");
			assert.equal(c.status, 200);
			assert.equal(c.body.counters.telemetryReadings, 1);
			// And the same reading again (a device that re-sends after a lost PUBACK) is a duplicate.
			await device.publishAsync(topicOf("emb-d3"), reading("emb-c3", ts, { batteryPct: 33 }), { qos: 1 });
			assert.equal((await node.api("/api/v1/customers/emb-c3")).body.counters.telemetryReadings, 1);
		} finally {
			await device.endAsync();
		}
	});
});

describe("MQTT ingest with neither MQTT_URL nor MQTT_PORT", () => {
	it("is off, and the node still starts", async () => {
		const node = await startTestNode({ SERVICES: edgeServices("ingest-mqtt") });
		try {
			const svc = node.broker.getLocalService("ingest-mqtt") as unknown as { client: unknown; aedes: unknown };
			assert.equal(svc.client, null);
			assert.equal(svc.aedes, null);
		} finally {
			await node.stop();
		}
	});
});
