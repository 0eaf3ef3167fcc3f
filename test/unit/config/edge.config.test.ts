// Edge configuration: defaults, and every bad value refused with the variable's name.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { loadEdgeConfig } from "../../../config/edge.config.ts";
import { ConfigError } from "../../../config/env.ts";

describe("loadEdgeConfig", () => {
	it("has safe defaults: loopback broker, plain subscription on one node, unbound devices rejected, 300 s webhook window", () => {
		const c = loadEdgeConfig({});
		assert.equal(c.mqtt.host, "127.0.0.1");
		assert.equal(c.mqtt.shareGroup, undefined);
		assert.equal(c.mqtt.unboundDevices, "reject");
		assert.equal(c.mqtt.protocolVersion, 5);
		assert.equal(c.webhook.toleranceS, 300);
		assert.equal(c.webhook.idempotencyTtlS, 86_400);
		assert.deepEqual(c.telemetry.ranges, {});
	});

	it("shares the subscription between the nodes of a cluster", () => {
		assert.equal(loadEdgeConfig({ TRANSPORTER: "nats://127.0.0.1:4222" }).mqtt.shareGroup, "crm-ingest");
		assert.equal(loadEdgeConfig({ MQTT_SHARE_GROUP: "fleet" }).mqtt.shareGroup, "fleet");
	});

	it("parses TELEMETRY_RANGES and MQTT_SHARE_GROUP=off", () => {
		const c = loadEdgeConfig({ TELEMETRY_RANGES: "pressureHpa:300:1100, flowLpm:0:500", MQTT_SHARE_GROUP: "off" });
		assert.deepEqual(c.telemetry.ranges, { pressureHpa: { min: 300, max: 1100 }, flowLpm: { min: 0, max: 500 } });
		assert.equal(c.mqtt.shareGroup, undefined);
	});

	const bad: Array<[Record<string, string>, RegExp]> = [
		[{ TELEMETRY_RANGES: "temp:10:0" }, /TELEMETRY_RANGES/],
		[{ TELEMETRY_RANGES: "temp:1" }, /TELEMETRY_RANGES/],
		[{ TELEMETRY_RANGES: "__proto__:0:1" }, /TELEMETRY_RANGES/],
		[{ MQTT_UNBOUND_DEVICES: "maybe" }, /MQTT_UNBOUND_DEVICES/],
		[{ MQTT_PROTOCOL_VERSION: "3" }, /MQTT_PROTOCOL_VERSION/],
		[{ MQTT_SHARE_GROUP: "a/b" }, /MQTT_SHARE_GROUP/],
		[{ MQTT_USERNAME: "u" }, /MQTT_USERNAME and MQTT_PASSWORD/],
		[{ MQTT_PORT: "1883", MQTT_HOST: "0.0.0.0" }, /MQTT_HOST=0\.0\.0\.0 exposes the embedded MQTT broker/],
		[{ WEBHOOK_TOLERANCE_S: "0" }, /WEBHOOK_TOLERANCE_S/]
	];
	for (const [env, reason] of bad) {
		it(`refuses ${JSON.stringify(env)}`, () => {
			assert.throws(() => loadEdgeConfig(env), (err: unknown) => err instanceof ConfigError && reason.test(err.message));
		});
	}

	it("lets an embedded broker listen beyond loopback once it asks for a password", () => {
		const c = loadEdgeConfig({ MQTT_PORT: "1883", MQTT_HOST: "0.0.0.0", MQTT_USERNAME: "devices", MQTT_PASSWORD: "s3cret-devices" });
		assert.equal(c.mqtt.host, "0.0.0.0");
	});
});
