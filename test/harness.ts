// Test harness: starts real redis-server, nats-server and mosquitto processes on free ports in temp dirs (through the
// process toolkit, lib/processes.ts), and polls conditions with a deadline. Servers never use the standard ports,
// since this machine already runs servers there.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, killChildrenOnSignals, launch, probeTcp, requireBinary, waitFor, type Launched, type WaitForOptions } from "../lib/processes.ts";
import { mosquittoConfig, natsReady, natsServerArgs, redisReady, redisServerArgs } from "../lib/servers.ts";

export { freePort, probeTcp, waitFor, type WaitForOptions };

export interface ServerHandle {
	url: string;
	port: number;
	stop(): Promise<void>;
	restart(): Promise<void>;
	dir: string;
}

const STARTUP_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;
const OUTPUT_TAIL_CHARS = 4_000;
/** A port picked by freePort can be taken by someone else before the server binds it: retry on a new one. */
const START_ATTEMPTS = 3;

let signalsHooked = false;

/** The executable `name` from PATH or one of `extraDirs`; throws naming it when it is missing. */
export function findBinary(name: string, extraDirs: string[]): string {
	return requireBinary(name, "install it to run integration tests", extraDirs);
}

/** How to run one kind of server; exported so other tests (and the harness's own) can start any process this way. */
export interface ServerSpec {
	name: string;
	binary: string;
	/** Writes config files into `dir` if needed and returns the command-line arguments. */
	prepare(port: number, dir: string): Promise<string[]>;
	url(port: number): string;
	ready(port: number): Promise<boolean>;
}

class ManagedServer implements ServerHandle {
	readonly spec: ServerSpec;
	readonly dir: string;
	port: number;
	private process: Launched | null = null;
	private output = "";

	constructor(spec: ServerSpec, dir: string, port: number) {
		this.spec = spec;
		this.dir = dir;
		this.port = port;
	}

	get url(): string {
		return this.spec.url(this.port);
	}

	/** Starts the process and waits until it serves; throws with the output tail if it dies first. */
	async launch(): Promise<void> {
		// Children still running when the test process exits are killed: a failed test must not leak servers.
		if (!signalsHooked) killChildrenOnSignals();
		signalsHooked = true;
		const args = await this.spec.prepare(this.port, this.dir);
		this.output = "";
		// Not detached, and unref'd: a leaked server must not keep the test process alive; the exit hook kills it.
		this.process = launch(this.spec.binary, args, {
			name: this.spec.name, cwd: this.dir, detached: false, unref: true,
			onLine: line => {
				this.output = `${this.output}${line}\n`.slice(-OUTPUT_TAIL_CHARS);
			}
		});

		const deadline = Date.now() + STARTUP_TIMEOUT_MS;
		for (;;) {
			if (!this.process.alive()) throw this.diedError("exited before it was ready");
			if (await this.spec.ready(this.port)) {
				if (!this.process.alive()) throw this.diedError("exited before it was ready");
				return;
			}
			if (Date.now() >= deadline) {
				await this.terminate();
				throw this.diedError(`was not ready after ${STARTUP_TIMEOUT_MS} ms`);
			}
			await new Promise(resolve => setTimeout(resolve, 25));
		}
	}

	private diedError(what: string): Error {
		const tail = this.output.trim() || "(no output)";
		return new Error(`${this.spec.name} on port ${this.port} ${what} (${this.process?.exitInfo() ?? "still running"}); output tail:\n${tail}`);
	}

	/** SIGTERM, then SIGKILL after a grace period; resolves once the process has exited. */
	private async terminate(): Promise<void> {
		await this.process?.stop(STOP_GRACE_MS);
	}

	async stop(): Promise<void> {
		await this.terminate();
		await rm(this.dir, { recursive: true, force: true });
	}

	async restart(): Promise<void> {
		await this.terminate();
		await this.launch();
	}
}

export async function startServer(spec: ServerSpec): Promise<ServerHandle> {
	let lastError: unknown;
	for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
		const dir = await mkdtemp(join(tmpdir(), `crm-${spec.name}-`));
		const server = new ManagedServer(spec, dir, await freePort());
		try {
			await server.launch();
			return server;
		} catch (err) {
			lastError = err;
			await server.stop();
		}
	}
	throw lastError;
}

export async function startRedis(): Promise<ServerHandle> {
	const binary = findBinary("redis-server", ["/usr/bin", "/usr/local/bin"]);
	return startServer({
		name: "redis-server",
		binary,
		// appendfsync always: a restart keeps every acknowledged write, which persistence tests rely on.
		prepare: async (port, dir) => redisServerArgs(port, dir, { appendfsync: "always" }),
		url: port => `redis://127.0.0.1:${port}`,
		ready: redisReady
	});
}

export async function startNats(): Promise<ServerHandle> {
	const binary = findBinary("nats-server", ["/usr/sbin", "/usr/local/bin", "/usr/bin"]);
	return startServer({
		name: "nats-server",
		binary,
		prepare: async (port, dir) => natsServerArgs(port, join(dir, "jetstream")),
		url: port => `nats://127.0.0.1:${port}`,
		ready: natsReady
	});
}

export async function startMosquitto(): Promise<ServerHandle> {
	const binary = findBinary("mosquitto", ["/usr/sbin", "/usr/local/sbin", "/usr/bin"]);
	return startServer({
		name: "mosquitto",
		binary,
		prepare: async (port, dir) => {
			const conf = join(dir, "mosquitto.conf");
			await writeFile(conf, mosquittoConfig(port, dir));
			return ["-c", conf];
		},
		url: port => `mqtt://127.0.0.1:${port}`,
		ready: port => probeTcp(port)
	});
}
