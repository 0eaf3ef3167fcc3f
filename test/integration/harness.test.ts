// Checks the harness itself: each server starts on a free port, serves its protocol, survives a restart and stops.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { Redis } from "ioredis";
import { connect as natsConnect } from "nats";
import mqtt from "mqtt";
import { freePort, startMosquitto, startNats, startRedis, startServer, waitFor } from "../harness.ts";

const STANDARD_PORTS = [6379, 4222, 1883];

function portAccepts(port: number): Promise<boolean> {
	return new Promise(resolve => {
		const socket = netConnect({ port, host: "127.0.0.1" });
		socket.once("connect", () => {
			socket.destroy();
			resolve(true);
		});
		socket.once("error", () => resolve(false));
	});
}

void test("freePort returns a bindable, non-standard port", async () => {
	const port = await freePort();
	assert.ok(port > 1024 && port < 65536);
	assert.ok(!STANDARD_PORTS.includes(port));
	assert.equal(await portAccepts(port), false);
});

void test("waitFor resolves once the condition holds and fails with the message after the deadline", async () => {
	let calls = 0;
	await waitFor(() => ++calls >= 3, { intervalMs: 1 });
	assert.equal(calls, 3);
	await assert.rejects(waitFor(() => false, { timeoutMs: 50, intervalMs: 5, message: "never true" }), /never true/);
	await assert.rejects(
		waitFor(() => { throw new Error("boom"); }, { timeoutMs: 30, intervalMs: 5, message: "throws" }),
		/throws.*last error: boom/
	);
});

void test("redis: PING, data kept across restart, stop frees the port and removes the dir", async () => {
	const server = await startRedis();
	assert.ok(!STANDARD_PORTS.includes(server.port));
	assert.equal(server.url, `redis://127.0.0.1:${server.port}`);
	try {
		const client = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
		await client.connect();
		assert.equal(await client.ping(), "PONG");
		await client.set("harness:key", "kept");
		client.disconnect();

		await server.restart();
		const again = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
		await again.connect();
		assert.equal(await again.get("harness:key"), "kept");
		again.disconnect();
	} finally {
		await server.stop();
	}
	assert.equal(await portAccepts(server.port), false);
	assert.equal(existsSync(server.dir), false);
});

void test("nats: connect and read the JetStream account info", async () => {
	const server = await startNats();
	assert.ok(!STANDARD_PORTS.includes(server.port));
	try {
		const nc = await natsConnect({ servers: server.url });
		const jsm = await nc.jetstreamManager();
		const info = await jsm.getAccountInfo();
		assert.equal(typeof info.limits.max_storage, "number");
		await nc.close();
	} finally {
		await server.stop();
	}
	assert.equal(await portAccepts(server.port), false);
});

void test("mosquitto: connect, publish and receive one QoS 1 message", async () => {
	const server = await startMosquitto();
	assert.ok(!STANDARD_PORTS.includes(server.port));
	try {
		const client = await mqtt.connectAsync(server.url, { reconnectPeriod: 0 });
		const received: string[] = [];
		client.on("message", (_topic, payload) => received.push(payload.toString()));
		await client.subscribeAsync("harness/test", { qos: 1 });
		await client.publishAsync("harness/test", "hello", { qos: 1 });
		await waitFor(() => received.length === 1, { message: "the MQTT message never arrived" });
		assert.deepEqual(received, ["hello"]);
		await client.endAsync();
	} finally {
		await server.stop();
	}
	assert.equal(await portAccepts(server.port), false);
});

void test("a server that dies at start fails with its exit status and output tail", async () => {
	const started = startServer({
		name: "doomed",
		binary: "/bin/sh",
		prepare: async port => ["-c", `echo "fatal: cannot bind ${port}" >&2; exit 3`],
		url: port => `tcp://127.0.0.1:${port}`,
		ready: async () => false
	});
	await assert.rejects(started, (err: Error) => {
		assert.match(err.message, /doomed on port \d+ exited before it was ready \(code 3\)/);
		assert.match(err.message, /fatal: cannot bind \d+/);
		return true;
	});
});
