// Telemetry parsing: every way a device message can be unacceptable gets its reason; a plausible reading becomes a
// deterministic crm.device.telemetry event.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { checkBinding, checkMetric, deviceIdFromTopic, parseTelemetry, telemetryEventId } from "../../../models/telemetry.schema.ts";

const NOW = Date.UTC(2026, 5, 1, 12, 0, 0);
const OPTS = { now: NOW, maxFutureMs: 5 * 60_000, maxPayloadBytes: 16 * 1024 };
const TOPIC = "crm/devices/dev-1/telemetry";
const bytes = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));
const reading = (over: Record<string, unknown> = {}) => ({ customerId: "cust-1", ts: NOW - 1000, metrics: { temperatureC: 21.5, batteryPct: 80 }, ...over });

describe("parseTelemetry", () => {
	it("turns a plausible reading into a telemetry CloudEvent whose id is derived from device and time", () => {
		const r = parseTelemetry(TOPIC, bytes(reading()), OPTS);
		assert.ok(r.ok, !r.ok ? r.reason : "");
		assert.equal(r.deviceId, "dev-1");
		assert.equal(r.customerId, "cust-1");
		assert.deepEqual(r.event, {
			specversion: "1.0",
			id: telemetryEventId("dev-1", NOW - 1000),
			source: "/devices/dev-1",
			type: "crm.device.telemetry",
			subject: "cust-1",
			time: new Date(NOW - 1000).toISOString(),
			datacontenttype: "application/json",
			data: { deviceId: "dev-1", metrics: { temperatureC: 21.5, batteryPct: 80 } }
		});
		const again = parseTelemetry(TOPIC, bytes(reading()), OPTS);
		assert.ok(again.ok);
		assert.equal(again.event.id, r.event.id, "a redelivery is the same event");
		const other = parseTelemetry("crm/devices/dev-2/telemetry", bytes(reading()), OPTS);
		assert.ok(other.ok);
		assert.notEqual(`${other.event.source}/${other.event.id}`, `${r.event.source}/${r.event.id}`, "another device at the same instant is another event");
	});

	it("accepts an RFC 3339 ts and undeclared metrics", () => {
		const r = parseTelemetry(TOPIC, bytes(reading({ ts: "2026-06-01T11:59:00+00:00", metrics: { vibrationG: -3.2 } })), OPTS);
		assert.ok(r.ok, !r.ok ? r.reason : "");
		assert.equal(r.tsMs, NOW - 60_000);
	});

	const rejected: Array<[string, string, Uint8Array, RegExp]> = [
		["not a telemetry topic", "crm/devices/dev-1/status", bytes(reading()), /is not crm\/devices/],
		["device id with a space", "crm/devices/dev 1/telemetry", bytes(reading()), /is not crm\/devices/],
		["malformed JSON", TOPIC, bytes("{\"customerId\": "), /not valid JSON/],
		["not UTF-8", TOPIC, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), /not UTF-8/],
		["an array", TOPIC, bytes([reading()]), /must be a JSON object/],
		["oversize", TOPIC, bytes({ ...reading(), pad: "x".repeat(20_000) }), /exceeds 16384 bytes/],
		["missing customer id", TOPIC, bytes(reading({ customerId: undefined })), /missing customerId/],
		["customer id of the wrong type", TOPIC, bytes(reading({ customerId: 42 })), /customerId must be/],
		["unknown field", TOPIC, bytes(reading({ firmware: "1.2" })), /unknown field "firmware"/],
		["prototype key at the top", TOPIC, bytes('{"customerId":"cust-1","ts":1780000000000,"metrics":{"a":1},"__proto__":{"x":1}}'), /forbidden key "__proto__"/],
		["prototype key in metrics", TOPIC, bytes('{"customerId":"cust-1","ts":1780000000000,"metrics":{"constructor":1}}'), /forbidden key "constructor"/],
		["missing ts", TOPIC, bytes(reading({ ts: undefined })), /missing ts/],
		["ts as a fraction", TOPIC, bytes(reading({ ts: 1.5 })), /ts must be an integer/],
		["ts in seconds", TOPIC, bytes(reading({ ts: Math.floor(NOW / 1000) })), /before 2000-01-01/],
		["ts far in the future", TOPIC, bytes(reading({ ts: NOW + 3600_000 })), /3600 s in the future/],
		["ts garbage string", TOPIC, bytes(reading({ ts: "yesterday" })), /RFC 3339/],
		["metrics missing", TOPIC, bytes(reading({ metrics: undefined })), /missing metrics/],
		["metrics empty", TOPIC, bytes(reading({ metrics: {} })), /1\.\.32 entries/],
		["metric as a string", TOPIC, bytes(reading({ metrics: { temperatureC: "21" } })), /temperatureC must be a finite number/],
		["negative declared counter", TOPIC, bytes(reading({ metrics: { energyKwh: -1 } })), /energyKwh is a counter and cannot be negative/],
		["negative counter by suffix", TOPIC, bytes(reading({ metrics: { doorOpenCount: -4 } })), /doorOpenCount is a counter/],
		["value out of declared range", TOPIC, bytes(reading({ metrics: { batteryPct: 140 } })), /batteryPct = 140 is outside its declared range 0\.\.100/],
		["temperature below absolute plausibility", TOPIC, bytes(reading({ metrics: { temperatureC: -300 } })), /temperatureC = -300/],
		["bad metric name", TOPIC, bytes(reading({ metrics: { "9lives": 1 } })), /metric name "9lives"/]
	];
	for (const [name, topic, payload, reason] of rejected) {
		it(`rejects ${name} with its reason`, () => {
			const r = parseTelemetry(topic, payload, OPTS);
			assert.equal(r.ok, false);
			assert.match((r as { reason: string }).reason, reason);
		});
	}

	it("configured ranges override the declared ones", () => {
		const payload = bytes(reading({ metrics: { temperatureC: 400 } }));
		assert.equal(parseTelemetry(TOPIC, payload, OPTS).ok, false);
		assert.equal(parseTelemetry(TOPIC, payload, { ...OPTS, ranges: { temperatureC: { min: -50, max: 1200 } } }).ok, true);
	});
});

describe("checkMetric", () => {
	const table: Array<[string, number, boolean]> = [
		["batteryPct", 0, true], ["batteryPct", 100, true], ["batteryPct", -0.1, false],
		["humidityPct", 101, false], ["latitude", 91, false], ["longitude", -180, true],
		["uptimeS", 0, true], ["uptimeS", -1, false], ["somethingNew", -1e9, true], ["packetsTotal", -1, false]
	];
	for (const [name, value, ok] of table) {
		it(`${name} = ${value} is ${ok ? "plausible" : "impossible"}`, () => {
			assert.equal(checkMetric(name, value) === undefined, ok);
		});
	}
});

describe("deviceIdFromTopic", () => {
	it("takes the device id from the topic, or nothing", () => {
		assert.equal(deviceIdFromTopic("crm/devices/meter-7.a/telemetry"), "meter-7.a");
		assert.equal(deviceIdFromTopic("crm/devices//telemetry"), undefined);
		assert.equal(deviceIdFromTopic("crm/devices/a/b/telemetry"), undefined);
		assert.equal(deviceIdFromTopic(`crm/devices/${"x".repeat(129)}/telemetry`), undefined);
	});
});

describe("checkBinding", () => {
	const table: Array<[string, string | null, "reject" | "accept", RegExp | undefined]> = [
		["bound to the named customer", "cust-1", "reject", undefined],
		["bound to another customer", "cust-2", "accept", /bound to customer cust-2, but the reading names customer cust-1/],
		["unbound, policy reject", null, "reject", /not bound/],
		["unbound, policy accept", null, "accept", undefined]
	];
	for (const [name, boundTo, policy, reason] of table) {
		it(name, () => {
			const r = checkBinding("dev-1", "cust-1", boundTo, policy);
			if (reason === undefined) assert.equal(r, undefined);
			else assert.match(r ?? "", reason);
		});
	}
});
