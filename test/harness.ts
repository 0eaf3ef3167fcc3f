// Test harness: starts real redis-server, nats-server and mosquitto processes on free ports in temp dirs, and polls
// conditions with a deadline. Servers never use the standard ports, since this machine already runs servers there.
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants as fsConstants } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, connect as netConnect } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { delimiter, join } from "node:path";

export interface ServerHandle {
	url: string;
	port: number;
	stop(): Promise<void>;
	restart(): Promise<void>;
	dir: string;
}

export interface WaitForOptions {
	timeoutMs?: number;
	intervalMs?: number;
	message?: string;
}

const STARTUP_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;
const OUTPUT_TAIL_CHARS = 4_000;
/** A port picked by freePort can be taken by someone else before the server binds it: retry on a new one. */
const START_ATTEMPTS = 3;

/** An unused TCP port on 127.0.0.1 (the OS picks it). */
export async function freePort(): Promise<number> {
	return new Promise((resolve, reject) => {
		const server = createServer();
		server.unref();
		server.once("error", reject);
		server.listen(0, "127.0.0.1", () => {
			const address = server.address();
			if (address === null || typeof address === "string") {
				server.close();
				reject(new Error("freePort: could not read the bound port"));
				return;
			}
			server.close(() => resolve(address.port));
		});
	});
}

/** Polls `cond` until it returns true; a throwing `cond` counts as "not yet" and its error is reported at the deadline. */
export async function waitFor(cond: () => boolean | Promise<boolean>, opts: WaitForOptions = {}): Promise<void> {
	const timeoutMs = opts.timeoutMs ?? 10_000;
	const intervalMs = opts.intervalMs ?? 25;
	const deadline = Date.now() + timeoutMs;
	let lastError: unknown;
	for (;;) {
		try {
			if (await cond()) return;
			lastError = undefined;
		} catch (err) {
			lastError = err;
		}
		if (Date.now() >= deadline) {
			const base = `${opts.message ?? "condition not met"} (after ${timeoutMs} ms)`;
			throw lastError === undefined
				? new Error(base)
				: new Error(`${base}; last error: ${errorMessage(lastError)}`, { cause: lastError });
		}
		await new Promise(resolve => setTimeout(resolve, intervalMs));
	}
}

// Children still running when the test process exits are killed: a failed test must not leak servers.
const liveChildren = new Set<ChildProcess>();
let exitHooksInstalled = false;

function killAllChildren(): void {
	for (const child of liveChildren) {
		try {
			child.kill("SIGKILL");
		} catch {
			// Already gone.
		}
	}
	liveChildren.clear();
}

function installExitHooks(): void {
	if (exitHooksInstalled) return;
	exitHooksInstalled = true;
	process.on("exit", killAllChildren);
	// A signal skips 'exit' handlers; kill the children, then let the signal do what it would have done.
	for (const signal of ["SIGINT", "SIGTERM"] as const) {
		process.once(signal, () => {
			killAllChildren();
			if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
		});
	}
}

function errorMessage(err: unknown): string {
	return err instanceof Error ? err.message : String(err);
}

/** The executable `name` from PATH or one of `extraDirs`; throws naming it when it is missing. */
export function findBinary(name: string, extraDirs: string[]): string {
	const dirs = [...(process.env.PATH ?? "").split(delimiter).filter(Boolean), ...extraDirs];
	for (const dir of dirs) {
		const candidate = join(dir, name);
		try {
			accessSync(candidate, fsConstants.X_OK);
			return candidate;
		} catch {
			// Not here; try the next directory.
		}
	}
	throw new Error(`${name} not found in PATH or ${extraDirs.join(", ")}: install it to run integration tests`);
}

/** Resolves true when a TCP connection to the port succeeds and, if `expect` is given, the first bytes match it. */
/** Whether 127.0.0.1:port accepts a connection (and, with `expect`, answers `send` with a matching reply). */
export function probeTcp(port: number, send?: string, expect?: RegExp): Promise<boolean> {
	return new Promise(resolve => {
		const socket = netConnect({ port, host: "127.0.0.1" });
		let received = "";
		const finish = (ok: boolean) => {
			socket.destroy();
			resolve(ok);
		};
		socket.setTimeout(1_000, () => finish(false));
		socket.once("error", () => finish(false));
		socket.once("connect", () => {
			if (!expect) return finish(true);
			if (send) socket.write(send);
		});
		socket.on("data", chunk => {
			received += chunk.toString("utf8");
			if (expect?.test(received)) finish(true);
		});
		socket.once("close", () => finish(false));
	});
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
	private child: ChildProcess | null = null;
	private output = "";
	private exited: Promise<void> = Promise.resolve();
	private exitInfo: string | null = null;

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
		installExitHooks();
		const args = await this.spec.prepare(this.port, this.dir);
		this.output = "";
		this.exitInfo = null;
		const child = spawn(this.spec.binary, args, { cwd: this.dir, stdio: ["ignore", "pipe", "pipe"] });
		this.child = child;
		liveChildren.add(child);
		const keepTail = (chunk: Buffer) => {
			this.output = (this.output + chunk.toString("utf8")).slice(-OUTPUT_TAIL_CHARS);
		};
		child.stdout?.on("data", keepTail);
		child.stderr?.on("data", keepTail);
		this.exited = new Promise(resolve => {
			child.once("exit", (code, signal) => {
				this.exitInfo = signal ? `signal ${signal}` : `code ${code}`;
				liveChildren.delete(child);
				resolve();
			});
			child.once("error", err => {
				this.exitInfo = `spawn error: ${err.message}`;
				liveChildren.delete(child);
				resolve();
			});
		});
		// A leaked server must not keep the test process alive; the exit hook kills it.
		child.unref();
		(child.stdout as { unref?: () => void } | null)?.unref?.();
		(child.stderr as { unref?: () => void } | null)?.unref?.();

		const deadline = Date.now() + STARTUP_TIMEOUT_MS;
		for (;;) {
			if (this.exitInfo !== null) throw this.diedError("exited before it was ready");
			if (await this.spec.ready(this.port)) {
				if (this.exitInfo !== null) throw this.diedError("exited before it was ready");
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
		return new Error(`${this.spec.name} on port ${this.port} ${what} (${this.exitInfo ?? "still running"}); output tail:\n${tail}`);
	}

	/** SIGTERM, then SIGKILL after a grace period; resolves once the process has exited. */
	private async terminate(): Promise<void> {
		const child = this.child;
		if (!child || this.exitInfo !== null) return;
		child.kill("SIGTERM");
		let timer: NodeJS.Timeout | undefined;
		const graceOver = new Promise<boolean>(resolve => {
			timer = setTimeout(() => resolve(false), STOP_GRACE_MS);
		});
		const exitedInTime = await Promise.race([this.exited.then(() => true), graceOver]);
		clearTimeout(timer);
		if (!exitedInTime) {
			child.kill("SIGKILL");
			await this.exited;
		}
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
		prepare: async (port, dir) => [
			"--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--daemonize", "no",
			"--save", "", "--appendonly", "yes", "--appendfsync", "always"
		],
		url: port => `redis://127.0.0.1:${port}`,
		// Redis accepts connections while it loads the AOF; PONG means it serves commands.
		ready: port => probeTcp(port, "PING\r\n", /\+PONG/)
	});
}

export async function startNats(): Promise<ServerHandle> {
	const binary = findBinary("nats-server", ["/usr/sbin", "/usr/local/bin", "/usr/bin"]);
	return startServer({
		name: "nats-server",
		binary,
		prepare: async (port, dir) => ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", join(dir, "jetstream")],
		url: port => `nats://127.0.0.1:${port}`,
		// The server greets every client with INFO once it accepts them.
		ready: port => probeTcp(port, undefined, /^INFO /)
	});
}

export async function startMosquitto(): Promise<ServerHandle> {
	const binary = findBinary("mosquitto", ["/usr/sbin", "/usr/local/sbin", "/usr/bin"]);
	return startServer({
		name: "mosquitto",
		binary,
		prepare: async (port, dir) => {
			const conf = join(dir, "mosquitto.conf");
			// Run as ourselves: started as root, mosquitto would otherwise switch to a user who cannot write `dir`.
			await writeFile(conf, [
				`listener ${port} 127.0.0.1`,
				"allow_anonymous true",
				"persistence true",
				`persistence_location ${dir}/`,
				`user ${userInfo().username}`,
				"log_dest stderr",
				""
			].join("\n"));
			return ["-c", conf];
		},
		url: port => `mqtt://127.0.0.1:${port}`,
		ready: port => probeTcp(port)
	});
}
