// The chaos run's cluster: nats-server (JetStream), redis-server (appendfsync always) and mosquitto on free ports,
// restartable on the same port and data; N node processes (`node bin/start.ts`), each reaching NATS and Redis
// through its own TCP proxy so it can be slowed down or cut off alone. Node logs go to files in the run directory.
import { createWriteStream, mkdirSync, writeFileSync, type WriteStream } from "node:fs";
import path from "node:path";
import { freePort, launch, probeTcp, requireBinary, waitFor, type Launched } from "../../lib/processes.ts";
import { mosquittoConfig, natsReady, natsServerArgs, redisReady, redisServerArgs } from "../../lib/servers.ts";
import { TcpProxy } from "../../lib/tcp-proxy.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const HINT = "the chaos runner starts its own servers: install nats-server, redis-server and mosquitto";
export const CHAOS_API_KEY = "chaos-key-0123456789abcdef";
export const CHAOS_WEBHOOK_SECRET = "chaos-webhook-secret-0123456789";
/** What a chaos node runs: the customers, the API, the three sources the workload drives and the device bindings ingest-mqtt asks (none are made: MQTT_UNBOUND_DEVICES=accept). */
const NODE_SERVICES = "customers,api,deadLetters,devices,ingest-nats,ingest-mqtt,ingest-webhook";

/** A server process that can be stopped and started again on the same port with the same data. */
export class ChaosServer {
	readonly name: string;
	readonly port: number;
	private readonly binary: string;
	private readonly args: string[];
	private readonly ready: () => Promise<boolean>;
	private readonly log: WriteStream;
	private proc: Launched | null = null;

	constructor(name: string, binary: string, port: number, args: string[], ready: () => Promise<boolean>, log: WriteStream) {
		this.name = name;
		this.binary = binary;
		this.port = port;
		this.args = args;
		this.ready = ready;
		this.log = log;
	}

	async start(): Promise<void> {
		const proc = launch(this.binary, this.args, { name: this.name, onLine: line => this.log.write(`${line}\n`) });
		this.proc = proc;
		await waitFor(async () => {
			if (!proc.alive()) throw new Error(`${this.name} exited: ${proc.exitInfo()}`);
			return this.ready();
		}, { timeoutMs: 30_000, intervalMs: 50, message: `${this.name} on port ${this.port} ready` });
	}

	/** SIGTERM (a clean shutdown) or SIGKILL (a crash). */
	async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
		await this.proc?.stop(10_000, signal);
	}
}

export interface Servers {
	nats: ChaosServer;
	redis: ChaosServer;
	mosquitto: ChaosServer;
}

export async function startServers(dir: string, logStream: (name: string) => WriteStream): Promise<Servers> {
	const natsBin = requireBinary("nats-server", HINT);
	const redisBin = requireBinary("redis-server", HINT);
	const mosquittoBin = requireBinary("mosquitto", HINT);
	const [natsPort, redisPort, mqttPort] = [await freePort(), await freePort(), await freePort()];
	for (const d of ["nats", "redis", "mosquitto"]) mkdirSync(path.join(dir, d), { recursive: true });
	// nats-server 2.9 has no `sync_interval` (2.10+): JetStream writes reach the OS at once but are not fsynced per
	// message, so a nats-server crash keeps them, a machine crash may not. Restarts here are clean shutdowns.
	const nats = new ChaosServer("nats-server", natsBin, natsPort, natsServerArgs(natsPort, path.join(dir, "nats")),
		() => natsReady(natsPort), logStream("nats-server"));
	const redis = new ChaosServer("redis-server", redisBin, redisPort, redisServerArgs(redisPort, path.join(dir, "redis"), { appendfsync: "always" }),
		() => redisReady(redisPort), logStream("redis-server"));
	const conf = path.join(dir, "mosquitto", "mosquitto.conf");
	// The workload has at most a few hundred readings in flight; the default queue of 1000 per session is enough.
	writeFileSync(conf, mosquittoConfig(mqttPort, path.join(dir, "mosquitto")));
	const mosquitto = new ChaosServer("mosquitto", mosquittoBin, mqttPort, ["-c", conf], () => probeTcp(mqttPort), logStream("mosquitto"));
	await Promise.all([nats.start(), redis.start(), mosquitto.start()]);
	return { nats, redis, mosquitto };
}

/** One node slot: a fixed id, HTTP port, data directory and proxies; the process may be started again after a kill. */
export class ChaosNode {
	readonly id: string;
	readonly port: number;
	readonly natsProxy: TcpProxy;
	readonly redisProxy: TcpProxy;
	private readonly env: NodeJS.ProcessEnv;
	private readonly log: WriteStream;
	private proc: Launched | null = null;
	/** Set between SIGSTOP and SIGCONT. */
	paused = false;

	constructor(id: string, port: number, natsProxy: TcpProxy, redisProxy: TcpProxy, env: NodeJS.ProcessEnv, log: WriteStream) {
		this.id = id;
		this.port = port;
		this.natsProxy = natsProxy;
		this.redisProxy = redisProxy;
		this.env = env;
		this.log = log;
	}

	get baseUrl(): string {
		return `http://127.0.0.1:${this.port}`;
	}

	alive(): boolean {
		return this.proc?.alive() ?? false;
	}

	async ready(timeoutMs = 1_000): Promise<boolean> {
		try {
			const res = await fetch(`${this.baseUrl}/health/ready`, { signal: AbortSignal.timeout(timeoutMs) });
			await res.arrayBuffer();
			return res.status === 200;
		} catch {
			return false;
		}
	}

	/** Starts the process and waits until /health/ready answers 200. */
	async start(timeoutMs = 60_000): Promise<void> {
		this.log.write(`-- chaos: starting ${this.id}\n`);
		const proc = launch(process.execPath, ["bin/start.ts"], { name: this.id, cwd: ROOT, env: this.env, onLine: line => this.log.write(`${line}\n`) });
		this.proc = proc;
		this.paused = false;
		await waitFor(async () => {
			if (!proc.alive()) throw new Error(`${this.id} exited: ${proc.exitInfo()}`);
			return this.ready();
		}, { timeoutMs, intervalMs: 100, message: `${this.id} ready` });
	}

	signal(signal: NodeJS.Signals): void {
		this.log.write(`-- chaos: ${signal} to ${this.id}\n`);
		this.proc?.child.kill(signal);
		if (signal === "SIGSTOP") this.paused = true;
		if (signal === "SIGCONT") this.paused = false;
	}

	/** SIGKILL, and wait until the process is gone. */
	async kill(): Promise<void> {
		this.signal("SIGKILL");
		await this.proc?.exited;
	}

	/** A clean stop (SIGTERM: the node drains its writes and leaves the cluster). */
	async stop(): Promise<void> {
		if (this.paused) this.signal("SIGCONT");
		await this.proc?.stop(20_000);
	}
}

export interface NodeSettings {
	dir: string;
	servers: Servers;
	logStream(name: string): WriteStream;
	/** Extra environment of every node (tuning for faster failover in a short run). */
	env?: NodeJS.ProcessEnv;
}

/** The environment a chaos node runs with: everything through its proxies, except MQTT (the broker is not faulted). */
export function nodeEnv(id: string, port: number, dataDir: string, natsProxyPort: number, redisProxyPort: number, mqttPort: number, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
	return {
		PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "",
		NODE_ID: id, PORT: String(port), HOST: "127.0.0.1", API_KEYS: CHAOS_API_KEY, DATA_DIR: dataDir, LOG_LEVEL: "warn",
		CHURN_MODEL: "off", SERVICES: NODE_SERVICES,
		TRANSPORTER: `nats://127.0.0.1:${natsProxyPort}`, NATS_URL: `nats://127.0.0.1:${natsProxyPort}`,
		REDIS_URL: `redis://127.0.0.1:${redisProxyPort}`,
		MQTT_URL: `mqtt://127.0.0.1:${mqttPort}`, MQTT_UNBOUND_DEVICES: "accept",
		WEBHOOK_SECRET: CHAOS_WEBHOOK_SECRET,
		// A webhook key whose node died mid-request blocks its retries this long (the default is 120 s).
		WEBHOOK_PENDING_TTL_S: "10",
		// Faster ingest failover than the defaults (6 s lease, 10 s ack-wait), so a fault's recovery fits in its slot.
		INGEST_NATS_LEASE_TTL_MS: "3000", INGEST_NATS_ACK_WAIT_MS: "4000",
		...extra
	};
}

export async function createNode(index: number, s: NodeSettings): Promise<ChaosNode> {
	const id = `node-${index}`;
	const natsProxy = new TcpProxy({ targetPort: s.servers.nats.port });
	const redisProxy = new TcpProxy({ targetPort: s.servers.redis.port });
	const [natsProxyPort, redisProxyPort, port] = [await natsProxy.start(), await redisProxy.start(), await freePort()];
	const dataDir = path.join(s.dir, id);
	mkdirSync(dataDir, { recursive: true });
	const env = nodeEnv(id, port, dataDir, natsProxyPort, redisProxyPort, s.servers.mosquitto.port, s.env);
	return new ChaosNode(id, port, natsProxy, redisProxy, env, s.logStream(id));
}

/** Log files of the run, one per process, in `dir/logs`. */
export function logStreams(dir: string): { open(name: string): WriteStream; close(): void } {
	const logDir = path.join(dir, "logs");
	mkdirSync(logDir, { recursive: true });
	const streams = new Map<string, WriteStream>();
	return {
		open(name) {
			let s = streams.get(name);
			if (!s) streams.set(name, (s = createWriteStream(path.join(logDir, `${name}.log`), { flags: "a" })));
			return s;
		},
		close() {
			for (const s of streams.values()) s.end();
		}
	};
}
