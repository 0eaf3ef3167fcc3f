// `npm run cluster -- --nodes N [--repl] [--base-port P]`: N local nodes over NATS sharing one store, for
// development and demos. Spawns a local nats-server / redis-server when TRANSPORTER / REDIS_URL (or MONGO_URL) are
// not given; Ctrl-C stops the nodes first (they drain their writes), then the servers it started.
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { ServiceBroker } from "moleculer";
import { ConfigError, loadConfig } from "../config/index.ts";
import { brokerOptions } from "../moleculer.config.ts";
import { REPL_COMMANDS } from "../app/repl-commands.ts";
import { toReplCommand, type TextCommand } from "../app/repl.ts";
import { findBinary, freePort, launch, tcpOpen, waitFor, type Launched } from "../lib/processes.ts";
import { natsServerArgs, redisServerArgs } from "../lib/servers.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const STOP_GRACE_MS = 15_000;
const COLORS = [36, 33, 35, 32, 34, 91, 92, 93];

/** Waits until `ready()` holds; fails early when the process died. */
function waitReady(m: Launched, ready: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
	return waitFor(async () => {
		if (!m.alive()) throw new Error(`${m.name} exited before it was ready`);
		return ready();
	}, { timeoutMs, intervalMs: 100, message: `${m.name} was not ready` });
}

function usage(message?: string): never {
	if (message) console.error(message);
	console.error("usage: npm run cluster -- --nodes N [--base-port 3000] [--repl]");
	process.exit(2);
}

async function main(): Promise<void> {
	let args;
	try {
		args = parseArgs({ options: { nodes: { type: "string", default: "3" }, "base-port": { type: "string" }, repl: { type: "boolean", default: false } } });
	} catch (err) {
		usage((err as Error).message);
	}
	const count = Number(args.values.nodes);
	if (!Number.isInteger(count) || count < 1 || count > 32) usage(`--nodes must be an integer from 1 to 32, got "${args.values.nodes}"`);
	let config;
	try {
		// Validated with a placeholder transporter so the store check applies as it will in the nodes.
		config = loadConfig({ ...process.env, TRANSPORTER: process.env.TRANSPORTER ?? "nats://127.0.0.1:4222", REDIS_URL: process.env.REDIS_URL ?? (process.env.MONGO_URL ? undefined : "redis://127.0.0.1:6379") });
	} catch (err) {
		if (err instanceof ConfigError) {
			console.error(`configuration error: ${err.message}`);
			process.exit(2);
		}
		throw err;
	}
	const basePort = Number(args.values["base-port"] ?? config.port);
	if (!Number.isInteger(basePort) || basePort < 1 || basePort + count > 65535) usage(`--base-port must be a port number, got "${args.values["base-port"]}"`);
	const hasApi = config.services.length === 0 || config.services.includes("api");
	const repl = args.values.repl && process.stdin.isTTY === true;
	if (args.values.repl && !repl) console.error("--repl ignored: stdin is not a terminal");

	const clusterDir = path.join(config.dataDir, "cluster");
	const logDir = path.join(clusterDir, "logs");
	mkdirSync(logDir, { recursive: true });
	const logs: WriteStream[] = [];
	/** With the REPL on the terminal, nodes log to files; otherwise to the terminal with a coloured prefix. */
	const sink = (name: string, i: number) => {
		if (repl) {
			const file = createWriteStream(path.join(logDir, `${name}.log`), { flags: "a" });
			logs.push(file);
			return (line: string) => file.write(`${line}\n`);
		}
		const prefix = process.stdout.isTTY ? `\x1b[${COLORS[i % COLORS.length]}m[${name}]\x1b[0m ` : `[${name}] `;
		return (line: string) => process.stdout.write(`${prefix}${line}\n`);
	};

	const servers: Launched[] = [];
	const nodes: Launched[] = [];
	// Spawned in their own process groups (Ctrl-C reaches only this runner, which stops things in order); if the runner
	// dies some other way, they are asked to stop (SIGTERM: the nodes drain their writes) rather than left behind.
	const start = (name: string, command: string, args: string[], env: NodeJS.ProcessEnv, onLine: (line: string) => void) =>
		launch(command, args, { name, cwd: ROOT, env, onLine, onParentExit: "SIGTERM" });
	const stopProcess = (m: Launched) => m.stop(STOP_GRACE_MS);
	let observer: ServiceBroker | null = null;
	let childrenStopped: Promise<void> | null = null;
	/** Nodes first (they drain their writes into the store), then the servers; safe to call more than once. */
	const stopChildren = () => (childrenStopped ??= (async () => {
		console.error(`stopping ${nodes.filter(n => n.alive()).length} nodes…`);
		await Promise.all(nodes.map(stopProcess));
		await Promise.all(servers.map(stopProcess));
		for (const file of logs) file.end();
	})());
	let stopping = false;
	const stopAll = async (code: number) => {
		if (stopping) return;
		stopping = true;
		// The observer's `stopped` hook stops the children, so the REPL's own `quit` (broker.stop, then exit) does too.
		if (observer) await observer.stop();
		await stopChildren();
		process.exit(code);
	};
	process.once("SIGINT", () => void stopAll(0));
	process.once("SIGTERM", () => void stopAll(0));

	const env: NodeJS.ProcessEnv = { ...process.env };
	try {
		if (!process.env.TRANSPORTER) {
			const bin = findBinary("nats-server");
			if (!bin) throw new Error("TRANSPORTER is not set and nats-server is not installed: install it or set TRANSPORTER=nats://…");
			const port = await freePort();
			const nats = start("nats-server", bin, natsServerArgs(port, path.join(clusterDir, "nats")), process.env, sink("nats-server", 6));
			servers.push(nats);
			await waitReady(nats, () => tcpOpen(port));
			env.TRANSPORTER = `nats://127.0.0.1:${port}`;
		}
		if (!process.env.REDIS_URL && !process.env.MONGO_URL) {
			const bin = findBinary("redis-server");
			if (!bin) throw new Error("neither REDIS_URL nor MONGO_URL is set and redis-server is not installed: install it or set REDIS_URL=redis://…");
			const port = await freePort();
			const redisDir = path.join(clusterDir, "redis");
			mkdirSync(redisDir, { recursive: true });
			// AOF so the local cluster keeps its customers between runs.
			const redis = start("redis-server", bin, redisServerArgs(port, redisDir), process.env, sink("redis-server", 7));
			servers.push(redis);
			await waitReady(redis, () => tcpOpen(port));
			env.REDIS_URL = `redis://127.0.0.1:${port}`;
		}

		const startNode = async (i: number): Promise<Launched> => {
			const name = `node-${i}`;
			const port = basePort + i - 1;
			const node = start(name, process.execPath, ["bin/start.ts"], { ...env, NODE_ID: name, PORT: String(port), DATA_DIR: path.join(clusterDir, name) }, sink(name, i - 1));
			nodes.push(node);
			// A node without the api service has no port to wait on; it joins when it is ready.
			if (hasApi) await waitReady(node, () => tcpOpen(port), 30_000);
			return node;
		};
		await Promise.all(Array.from({ length: count }, (_, i) => startNode(i + 1)));
		const ports = Array.from({ length: count }, (_, i) => basePort + i);
		console.error(`cluster up: ${count} nodes, HTTP API on ${config.host}:${ports.join(", :")}; transporter ${env.TRANSPORTER}; store ${env.REDIS_URL ?? env.MONGO_URL}`);

		if (repl) {
			console.error(`node logs: ${logDir}/node-*.log`);
			// The runner joins the cluster as a node without services, so the REPL sees every node.
			const options = brokerOptions(loadConfig({ ...env, NODE_ID: `repl-${process.pid}`, LOG_LEVEL: "warn" }));
			const runnerCommands: TextCommand[] = [
				{
					command: "node-kill <name>",
					description: "Kill one of this runner's nodes (SIGKILL with --hard, else SIGTERM) to watch the cluster recover",
					options: [{ option: "--hard", description: "SIGKILL: no draining, no goodbye; others notice by heartbeat timeout" }],
					async run(_broker, a) {
						const node = nodes.find(n => n.name === a.name && n.alive());
						if (!node) return `no running node called ${String(a.name)}`;
						node.child.kill(a.options.hard ? "SIGKILL" : "SIGTERM");
						return `${node.name}: ${a.options.hard ? "SIGKILL" : "SIGTERM"} sent`;
					}
				},
				{
					command: "node-add",
					description: "Start one more node (the next port) and let it join",
					async run() {
						const node = await startNode(nodes.length + 1);
						return `${node.name} started on port ${basePort + nodes.length - 1}`;
					}
				}
			];
			options.replOptions = { ...options.replOptions, customCommands: [...REPL_COMMANDS, ...runnerCommands.map(toReplCommand)] };
			options.stopped = () => stopChildren();
			observer = new ServiceBroker(options);
			await observer.start();
			const server = observer.repl() as unknown as { removeAllListeners(event: string): void; on(event: string, fn: () => void): void } | undefined;
			// moleculer-repl stops only its own broker on exit; the runner must stop the nodes and servers too.
			server?.removeAllListeners("exit");
			server?.on("exit", () => void stopAll(0));
		} else {
			console.error("Ctrl-C stops the nodes, then the servers this runner started.");
		}
	} catch (err) {
		console.error(err instanceof Error ? err.message : err);
		await stopAll(1);
	}
}

main().catch(err => {
	console.error(err instanceof Error ? err.stack : err);
	process.exit(1);
});
