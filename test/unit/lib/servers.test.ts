import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mosquittoConfig, natsServerArgs, redisServerArgs } from "../../../lib/servers.ts";

void describe("server command lines", () => {
	void it("nats-server runs JetStream on 127.0.0.1 with its store where asked", () => {
		assert.deepEqual(natsServerArgs(4222, "/tmp/js"), ["-js", "-a", "127.0.0.1", "-p", "4222", "-sd", "/tmp/js"]);
	});

	void it("redis-server keeps an AOF, fsynced on every write only when asked", () => {
		const plain = redisServerArgs(6380, "/tmp/r");
		assert.deepEqual(plain.slice(0, 6), ["--port", "6380", "--bind", "127.0.0.1", "--dir", "/tmp/r"]);
		assert.equal(plain[plain.indexOf("--appendonly") + 1], "yes");
		assert.equal(plain.includes("--appendfsync"), false);
		const always = redisServerArgs(6380, "/tmp/r", { appendfsync: "always" });
		assert.equal(always[always.indexOf("--appendfsync") + 1], "always");
	});

	void it("mosquitto listens on 127.0.0.1 only and persists under its directory", () => {
		const conf = mosquittoConfig(1883, "/tmp/m").split("\n");
		assert.ok(conf.includes("listener 1883 127.0.0.1"));
		assert.ok(conf.includes("persistence_location /tmp/m/"));
	});
});
