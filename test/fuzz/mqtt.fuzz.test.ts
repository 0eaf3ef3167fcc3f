// Fuzzing MQTT telemetry (crm/devices/<id>/telemetry) through a real mosquitto: hostile topics (path traversal in the
// device id) and payloads (not UTF-8, not JSON, deep, oversized, prototype keys, numbers as strings, non-finite
// numbers, impossible timestamps) each become one dead letter with its reason; a reading repeated with other values
// changes nothing; no customer changes; a valid reading after them is applied. Plus a fast-check batch of payloads.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { MqttClient } from "mqtt";
import { startMosquitto, waitFor, type ServerHandle } from "../harness.ts";
import { startTestNode, type TestNode } from "../support/node.ts";
import { connectPublisher, deadLetterSink, edgeServices, reading, topicOf, type DeadLetterSink } from "../support/edge.ts";
import { parseTelemetry } from "../../models/telemetry.schema.ts";
import { FORBIDDEN, INVALID_UTF8, assertNoCustomerChanged, customerSnapshot, fcParams, nestedText, seedBanner } from "./fuzz.support.ts";

const VICTIM = "fz-mqtt-victim";
const DEVICE = "fz-dev-1";

describe("fuzz: MQTT telemetry", () => {
	let mosquitto: ServerHandle;
	let node: TestNode;
	let dead: DeadLetterSink;
	let device: MqttClient;
	let baseline: Map<string, string>;
	let sentinels = 0;

	/** Publishes each (topic, payload) at QoS 1, then a valid reading of another device; waits for one dead letter each. */
	async function feed(messages: Array<[string, string | Buffer]>): Promise<Array<{ reason: string; payload: unknown }>> {
		const before = (await dead.list("mqtt")).length;
		for (const [topic, payload] of messages) await device.publishAsync(topic, payload, { qos: 1 });
		const sentinel = `fz-mqtt-sentinel-${++sentinels}`;
		await device.publishAsync(topicOf(`fz-sentinel-${sentinels}`), reading(sentinel, Date.now() - 1000), { qos: 1 });
		await waitFor(() => node.broker.call("customers.get", { customerId: sentinel }).then(() => true, () => false), { timeoutMs: 15_000, message: "the valid reading after the hostile ones was applied" });
		await waitFor(async () => (await dead.list("mqtt")).length >= before + messages.length, { timeoutMs: 15_000, message: `${messages.length} dead letters` });
		const letters = (await dead.list("mqtt")).slice(before);
		assert.equal(letters.length, messages.length, "one dead letter per hostile message");
		baseline.set(sentinel, (await customerSnapshot(node.broker)).get(sentinel) as string);
		return letters;
	}

	const letterOf = (letters: Array<{ reason: string; payload: unknown }>, topic: string, payload: string | Buffer) => letters.find(l => {
		const p = l.payload as { topic: string; payload?: string; payloadBase64?: string; truncatedFrom?: number };
		if (p.topic !== topic) return false;
		if (Buffer.isBuffer(payload)) return p.payloadBase64 === payload.toString("base64");
		return p.truncatedFrom === undefined ? p.payload === payload : p.truncatedFrom === Buffer.byteLength(payload) && payload.startsWith(p.payload ?? "\u0000");
	});

	before(async () => {
		console.log(seedBanner("test/fuzz/mqtt.fuzz.test.ts"));
		mosquitto = await startMosquitto();
		node = await startTestNode({ SERVICES: edgeServices("ingest-mqtt"), ACTOR_STORE: "memory", MQTT_URL: mosquitto.url, NODE_ID: "fz-mqtt", MQTT_UNBOUND_DEVICES: "accept" });
		await waitFor(() => (node.broker.getLocalService("ingest-mqtt") as unknown as { subscribed: boolean }).subscribed, { message: "ingest-mqtt subscribed" });
		dead = await deadLetterSink(node.broker);
		device = await connectPublisher(mosquitto.url);
		await device.publishAsync(topicOf(DEVICE), reading(VICTIM, Date.now() - 5000, { temperatureC: 20 }), { qos: 1 });
		await waitFor(() => node.broker.call("customers.get", { customerId: VICTIM }).then(() => true, () => false), { message: "victim seeded" });
		baseline = await customerSnapshot(node.broker);
	});

	after(async () => {
		await device?.endAsync();
		await node?.stop();
		await mosquitto?.stop();
	});

	it("dead-letters hostile topics and payloads, each with its reason", async () => {
		const now = Date.now();
		const ok = reading(VICTIM, now - 1000);
		const t = topicOf(DEVICE);
		const cases: Array<[string, string, string | Buffer, RegExp]> = [
			["device id ..", "crm/devices/../telemetry", ok, /is not crm\/devices/],
			["device id with an encoded traversal", "crm/devices/..%2F..%2Fetc/telemetry", ok, /is not crm\/devices/],
			["device id __proto__", "crm/devices/__proto__/telemetry", ok, /is not crm\/devices/],
			["device id with a space", "crm/devices/a b/telemetry", ok, /is not crm\/devices/],
			["device id of 129 characters", `crm/devices/${"d".repeat(129)}/telemetry`, ok, /is not crm\/devices/],
			["empty payload", t, "", /not valid JSON/],
			["truncated payload", t, ok.slice(0, -1), /not valid JSON/],
			["NaN literal", t, `{"customerId":"${VICTIM}","ts":${now - 1},"metrics":{"temperatureC":NaN}}`, /not valid JSON/],
			["over 16 KiB", t, JSON.stringify({ customerId: VICTIM, ts: now, metrics: { a: 1 }, pad: "x".repeat(20_000) }), /exceeds 16384 bytes/],
			["nested 2000 deep", t, `{"customerId":"${VICTIM}","ts":${now - 2},"metrics":${nestedText(2000)}}`, /must be a finite number/],
			["an array", t, `[${ok}]`, /must be a JSON object/],
			["33 metrics", t, reading(VICTIM, now - 3, Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`m${i}`, i]))), /1\.\.32 entries/],
			["metric as a string", t, `{"customerId":"${VICTIM}","ts":${now - 4},"metrics":{"temperatureC":"21"}}`, /finite number/],
			["metric 1e999", t, `{"customerId":"${VICTIM}","ts":${now - 5},"metrics":{"temperatureC":1e999}}`, /finite number/],
			["metric -1e999", t, `{"customerId":"${VICTIM}","ts":${now - 6},"metrics":{"energyKwh":-1e999}}`, /finite number/],
			["ts as a numeric string", t, `{"customerId":"${VICTIM}","ts":"${now}","metrics":{"a":1}}`, /ts must be/],
			["ts 1e999", t, `{"customerId":"${VICTIM}","ts":1e999,"metrics":{"a":1}}`, /ts must be/],
			["ts 1e20 (far future)", t, `{"customerId":"${VICTIM}","ts":1e20,"metrics":{"a":1}}`, /in the future/],
			["ts an hour ahead", t, reading(VICTIM, now + 3600_000), /in the future/],
			["ts 0", t, reading(VICTIM, 0), /before 2000/],
			["ts in seconds", t, reading(VICTIM, Math.floor(now / 1000)), /before 2000/],
			["ts negative", t, reading(VICTIM, -1), /ts must be/],
			["ts a fraction", t, reading(VICTIM, now - 0.5), /ts must be/],
			["ts year 0001", t, `{"customerId":"${VICTIM}","ts":"0001-01-01T00:00:00Z","metrics":{"a":1}}`, /before 2000/],
			["customer id with path traversal", t, reading("../../etc/passwd", now - 7), /customerId must be/],
			["customer id __proto__", t, reading("__proto__", now - 8), /customerId must be/],
			["customer id as a number", t, `{"customerId":42,"ts":${now - 9},"metrics":{"a":1}}`, /customerId must be/]
		];
		for (const key of FORBIDDEN) {
			cases.push([`${key} at the top`, t, `{"${key}":{"x":1},"customerId":"${VICTIM}","ts":${now - 10},"metrics":{"a":1}}`, new RegExp(`forbidden key "${key}"`)]);
			cases.push([`${key} in metrics`, t, `{"customerId":"${VICTIM}","ts":${now - 11},"metrics":{"${key}":1}}`, new RegExp(`forbidden key "${key}"`)]);
			cases.push([`${key} inside a metric`, t, `{"customerId":"${VICTIM}","ts":${now - 12},"metrics":{"a":{"${key}":1}}}`, /finite number/]);
		}
		for (const [name, bad] of INVALID_UTF8) {
			cases.push([`${name} in the customer id`, t, Buffer.concat([Buffer.from(`{"customerId":"fz-`), bad, Buffer.from(`","ts":${now - 13},"metrics":{"a":1}}`)]), /not UTF-8/]);
		}
		const letters = await feed(cases.map(([, topic, payload]) => [topic, payload]));
		for (const [name, topic, payload, reason] of cases) {
			const letter = letterOf(letters, topic, payload);
			assert.ok(letter, `${name}: dead-lettered with its topic and payload`);
			assert.match(letter.reason, reason, name);
		}
		assert.equal(({} as Record<string, unknown>).x, undefined);
		await assertNoCustomerChanged(node.broker, baseline, "hostile MQTT messages");
	});

	it("the same device and timestamp again with other values is a duplicate: nothing changes", async () => {
		const ts = Date.now() - 60_000;
		await device.publishAsync(topicOf("fz-dev-dup"), reading("fz-mqtt-dup", ts, { temperatureC: 10 }), { qos: 1 });
		await waitFor(() => node.broker.call("customers.get", { customerId: "fz-mqtt-dup" }).then(() => true, () => false));
		const before = await customerSnapshot(node.broker);
		await device.publishAsync(topicOf("fz-dev-dup"), reading("fz-mqtt-dup", ts, { temperatureC: 99 }), { qos: 1 });
		// The same device's next reading is processed after the repeated one (one chain per device).
		await device.publishAsync(topicOf("fz-dev-dup"), reading("fz-mqtt-dup", ts + 1, { temperatureC: 11 }), { qos: 1 });
		await waitFor(async () => (await node.broker.call<{ counters: { telemetryReadings: number } }, unknown>("customers.get", { customerId: "fz-mqtt-dup" })).counters.telemetryReadings === 2, { message: "the next reading applied" });
		const c = await node.broker.call<{ telemetry: { temperatureC: number }; counters: { telemetryReadings: number } }, unknown>("customers.get", { customerId: "fz-mqtt-dup" });
		assert.equal(c.telemetry.temperatureC, 11, "the repeated reading's 99 was never applied");
		assert.equal(c.counters.telemetryReadings, 2);
		assert.notEqual(before.get("fz-mqtt-dup"), undefined);
		baseline = await customerSnapshot(node.broker);
	});

	it("property: random payloads are each applied or dead-lettered as the parser says — none lost", async () => {
		const value = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(Date.now() - 1000, 1e20, -1, 0.5, "2026-01-01T00:00:00Z", VICTIM, "__proto__"));
		const payload = fc.record({ customerId: fc.oneof(fc.constant(VICTIM), value), ts: value, metrics: fc.oneof(fc.dictionary(fc.string({ maxLength: 8 }), value, { maxKeys: 4 }), value) }, { requiredKeys: [] })
			.map(p => JSON.stringify(p));
		const samples = fc.sample(payload, { ...fcParams(1), numRuns: fcParams(60).numRuns });
		const now = Date.now();
		// Distinct payloads: the same one twice is one dead letter (a redelivery), by design.
		const invalid = [...new Set(samples)].filter(p => !parseTelemetry(topicOf("fz-dev-prop"), Buffer.from(p), { now, maxFutureMs: 300_000, maxPayloadBytes: 16384 }).ok);
		assert.ok(invalid.length > samples.length / 2, "mostly hostile");
		// Only the invalid ones are published (a valid one would rightly change the victim).
		const letters = await feed(invalid.map(p => [topicOf("fz-dev-prop"), p]));
		for (const p of invalid) assert.ok(letterOf(letters, topicOf("fz-dev-prop"), p)?.reason, `dead letter with a reason for ${p}`);
		await assertNoCustomerChanged(node.broker, baseline, "random payloads");
	});

	it("keeps serving: /health/ready, and a valid reading is applied", async () => {
		assert.equal((await fetch(`${node.baseUrl}/health/ready`)).status, 200);
		await device.publishAsync(topicOf(DEVICE), reading(VICTIM, Date.now() - 500, { temperatureC: 22 }), { qos: 1 });
		await waitFor(async () => (await customerSnapshot(node.broker)).get(VICTIM) !== baseline.get(VICTIM), { message: "the victim changed by the valid reading" });
	});
});
