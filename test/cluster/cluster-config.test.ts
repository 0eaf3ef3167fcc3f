// Cluster configuration: cluster mode refuses a store other nodes cannot share (at `npm start`, with the reason),
// membership and transporter-security settings are validated, and NATS credentials really authenticate.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { connect } from "nats";
import { ConfigError, loadConfig } from "../../config/index.ts";
import { loadClusterConfig } from "../../config/cluster.config.ts";
import { natsTransporterOptions } from "../../moleculer.config.ts";
import { startServer, type ServerHandle } from "../harness.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");

function runStart(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
	return new Promise(resolve => {
		const child = spawn(process.execPath, ["bin/start.ts"], { cwd: ROOT, env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "ignore", "pipe"] });
		let stderr = "";
		child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
		child.once("exit", code => resolve({ code, stderr }));
	});
}

describe("cluster mode needs a shared store", () => {
	it("npm start with a transporter and no shared store exits with the reason", async () => {
		const cases: Array<[string, Record<string, string>]> = [
			["no store configured (NeDB default)", { TRANSPORTER: "nats://127.0.0.1:4222" }],
			["in-memory store chosen explicitly", { TRANSPORTER: "nats://127.0.0.1:4222", REDIS_URL: "redis://127.0.0.1:6379", ACTOR_STORE: "memory" }]
		];
		const results = await Promise.all(cases.map(([, env]) => runStart(env)));
		for (const [i, [name]] of cases.entries()) {
			assert.equal(results[i].code, 2, name);
			assert.match(results[i].stderr, /configuration error: TRANSPORTER is set \(cluster mode\) but the actor store "(nedb|memory)" cannot be shared between nodes: set REDIS_URL or MONGO_URL/, name);
		}
	});

	it("accepts a transporter with Redis or MongoDB", () => {
		assert.equal(loadConfig({ TRANSPORTER: "nats://n:4222", REDIS_URL: "redis://r:6379" }).actor.store, "redis");
		assert.equal(loadConfig({ TRANSPORTER: "nats://n:4222", MONGO_URL: "mongodb://m:27017/crm" }).actor.store, "mongo");
	});
});

describe("cluster settings", () => {
	const dir = mkdtempSync(path.join(tmpdir(), "crm-cluster-config-"));
	const creds = path.join(dir, "user.creds");
	writeFileSync(creds, "placeholder");
	after(() => rmSync(dir, { recursive: true, force: true }));

	it("validates heartbeats, authentication and TLS settings, naming the variable", () => {
		const bad: Array<[Record<string, string>, RegExp]> = [
			[{ CLUSTER_HEARTBEAT_INTERVAL_S: "2", CLUSTER_HEARTBEAT_TIMEOUT_S: "3" }, /CLUSTER_HEARTBEAT_TIMEOUT_S \(3\) must be at least twice/],
			[{ CLUSTER_HEARTBEAT_TIMEOUT_S: "soon" }, /CLUSTER_HEARTBEAT_TIMEOUT_S must be a number/],
			[{ TRANSPORTER_USER: "crm" }, /TRANSPORTER_USER and TRANSPORTER_PASSWORD must be set together/],
			[{ TRANSPORTER_USER: "crm", TRANSPORTER_PASSWORD: "pw", TRANSPORTER_TOKEN: "t" }, /set only one of TRANSPORTER_USER, TRANSPORTER_TOKEN/],
			[{ TRANSPORTER_CREDS_FILE: path.join(dir, "missing.creds") }, /TRANSPORTER_CREDS_FILE: file ".*missing.creds" does not exist/],
			[{ TRANSPORTER_TLS_CERT_FILE: creds }, /TRANSPORTER_TLS_CERT_FILE and TRANSPORTER_TLS_KEY_FILE must be set together/],
			[{ TRANSPORTER_TLS_REJECT_UNAUTHORIZED: "maybe", TRANSPORTER: "tls://n:4222" }, /TRANSPORTER_TLS_REJECT_UNAUTHORIZED must be true or false/]
		];
		for (const [env, message] of bad) assert.throws(() => loadClusterConfig(env), (err: unknown) => err instanceof ConfigError && message.test(err.message), JSON.stringify(env));

		const defaults = loadClusterConfig({});
		assert.deepEqual([defaults.heartbeatIntervalS, defaults.heartbeatTimeoutS, defaults.auth, defaults.tls], [1, 4, { kind: "none" }, null]);
		assert.deepEqual(loadClusterConfig({ TRANSPORTER_CREDS_FILE: creds }).auth, { kind: "creds", file: creds });
		assert.deepEqual(loadClusterConfig({ TRANSPORTER: "tls://n:4222" }).tls, { caFile: undefined, certFile: undefined, keyFile: undefined, rejectUnauthorized: true });
	});

	it("builds the NATS connection options the transporter gets", () => {
		const cases: Array<[string, Record<string, string>, Record<string, unknown>]> = [
			["plain", {}, { servers: ["n1:4222"] }],
			["user and password in the URL", { TRANSPORTER: "nats://crm:s%40cret@n1:4222" }, { servers: ["n1:4222"], user: "crm", pass: "s@cret" }],
			["user and password from the environment win over the URL", { TRANSPORTER_USER: "crm", TRANSPORTER_PASSWORD: "pw" }, { user: "crm", pass: "pw" }],
			["token", { TRANSPORTER_TOKEN: "tok" }, { token: "tok" }],
			["TLS by scheme", { TRANSPORTER: "tls://n1:4222" }, { servers: ["n1:4222"], tls: { caFile: undefined, certFile: undefined, keyFile: undefined } }],
			["TLS with a CA", { TRANSPORTER_TLS_CA_FILE: creds }, { tls: { caFile: creds, certFile: undefined, keyFile: undefined } }]
		];
		for (const [name, env, expected] of cases) {
			const url = env.TRANSPORTER ?? "nats://n1:4222";
			const opts = natsTransporterOptions(url, loadClusterConfig({ TRANSPORTER: url, ...env })) as Record<string, unknown>;
			for (const [key, value] of Object.entries(expected)) assert.deepEqual(opts[key], value, `${name}: ${key}`);
			assert.equal(opts.url, undefined, `${name}: no url (Moleculer would rebuild user/pass from it)`);
		}
	});
});

function natsSpec(name: string, authArgs: string[]) {
	const binary = ["/usr/sbin/nats-server", "/usr/local/bin/nats-server", "/usr/bin/nats-server"].find(p => existsSync(p));
	if (!binary) throw new Error("nats-server not found");
	return {
		name,
		binary,
		prepare: async (port: number) => ["-a", "127.0.0.1", "-p", String(port), ...authArgs],
		url: (port: number) => `nats://127.0.0.1:${port}`,
		ready: (port: number) => new Promise<boolean>(resolve => {
			const socket = netConnect({ port, host: "127.0.0.1" });
			const done = (ok: boolean) => {
				socket.destroy();
				resolve(ok);
			};
			socket.setTimeout(1000, () => done(false));
			socket.once("error", () => done(false));
			socket.once("data", d => done(d.toString().startsWith("INFO ")));
		})
	};
}

describe("transporter credentials against a real nats-server", () => {
	let withUser: ServerHandle;
	let withToken: ServerHandle;
	before(async () => {
		[withUser, withToken] = await Promise.all([
			startServer(natsSpec("nats-user", ["--user", "crm", "--pass", "right-password"])),
			startServer(natsSpec("nats-token", ["--auth", "right-token"]))
		]);
	});
	after(async () => {
		await Promise.all([withUser?.stop(), withToken?.stop()]);
	});

	async function tryConnect(url: string, env: Record<string, string>): Promise<string> {
		try {
			const nc = await connect({ ...natsTransporterOptions(url, loadClusterConfig({ TRANSPORTER: url, ...env })), maxReconnectAttempts: 0, reconnect: false });
			await nc.close();
			return "connected";
		} catch (err) {
			return (err as { code?: string }).code ?? String(err);
		}
	}

	it("connects with the right credentials and is refused with wrong or missing ones", async () => {
		const cases: Array<[string, string, Record<string, string>, string]> = [
			["user/password from env", withUser.url, { TRANSPORTER_USER: "crm", TRANSPORTER_PASSWORD: "right-password" }, "connected"],
			["user/password in the URL", withUser.url.replace("nats://", "nats://crm:right-password@"), {}, "connected"],
			["wrong password", withUser.url, { TRANSPORTER_USER: "crm", TRANSPORTER_PASSWORD: "wrong-password" }, "AUTHORIZATION_VIOLATION"],
			["no credentials", withUser.url, {}, "AUTHORIZATION_VIOLATION"],
			["token", withToken.url, { TRANSPORTER_TOKEN: "right-token" }, "connected"],
			["wrong token", withToken.url, { TRANSPORTER_TOKEN: "wrong-token" }, "AUTHORIZATION_VIOLATION"]
		];
		for (const [name, url, env, expected] of cases) assert.equal(await tryConnect(url, env), expected, name);
	});
});
