// The process toolkit of the runners, benchmarks and tests: find a binary, pick a free port, launch a child process
// (its output line by line, stopped SIGTERM-then-SIGKILL, never left behind when the parent exits), wait for a
// condition with a deadline, and probe a TCP port.
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants as fsConstants } from "node:fs";
import { connect, createServer } from "node:net";
import path from "node:path";

/** Where Debian and friends keep server binaries that are not always on PATH. */
export const SYSTEM_BIN_DIRS = ["/usr/sbin", "/usr/local/sbin", "/usr/local/bin", "/usr/bin"];

/** The executable `name` from PATH or one of `extraDirs`, or null. */
export function findBinary(name: string, extraDirs: readonly string[] = SYSTEM_BIN_DIRS): string | null {
	for (const dir of [...(process.env.PATH ?? "").split(path.delimiter).filter(Boolean), ...extraDirs]) {
		const candidate = path.join(dir, name);
		try {
			accessSync(candidate, fsConstants.X_OK);
			return candidate;
		} catch {
			// Not here; try the next directory.
		}
	}
	return null;
}

/** The executable `name`, or an error naming it and what to do (`hint`). */
export function requireBinary(name: string, hint: string, extraDirs: readonly string[] = SYSTEM_BIN_DIRS): string {
	const found = findBinary(name, extraDirs);
	if (found === null) throw new Error(`${name} not found in PATH or ${extraDirs.join(", ")}: ${hint}`);
	return found;
}

/** An unused TCP port on 127.0.0.1 (the OS picks it). Someone else may take it before it is bound: retry then. */
export function freePort(): Promise<number> {
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

/** Whether 127.0.0.1:port accepts a connection (and, with `expect`, answers `send` with a matching reply). */
export function probeTcp(port: number, send?: string, expect?: RegExp, timeoutMs = 1_000): Promise<boolean> {
	return new Promise(resolve => {
		const socket = connect({ port, host: "127.0.0.1" });
		let received = "";
		const finish = (ok: boolean) => {
			socket.destroy();
			resolve(ok);
		};
		socket.setTimeout(timeoutMs, () => finish(false));
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

export interface WaitForOptions {
	timeoutMs?: number;
	intervalMs?: number;
	message?: string;
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
				: new Error(`${base}; last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`, { cause: lastError });
		}
		await new Promise(resolve => setTimeout(resolve, intervalMs));
	}
}

export interface LaunchOptions {
	/** For the exit line and messages; default the command's base name. */
	name?: string;
	cwd?: string;
	env?: NodeJS.ProcessEnv;
	/** Run as this user (e.g. postgres, which refuses root). */
	uid?: number;
	gid?: number;
	/** Each line the process writes to stdout or stderr, and a last line when it exits. */
	onLine?(line: string): void;
	/** Own process group, so a Ctrl-C on the terminal reaches only the parent, which stops things in order. Default true. */
	detached?: boolean;
	/** What the child is sent if the parent exits while it still runs; null: nothing. Default SIGKILL. */
	onParentExit?: NodeJS.Signals | null;
	/** The parent may exit while the child runs (a leaked test server must not keep the test runner alive). */
	unref?: boolean;
}

export interface Launched {
	name: string;
	child: ChildProcess;
	/** Resolves once the process has exited (or failed to spawn). */
	exited: Promise<void>;
	alive(): boolean;
	/** "code N", "signal S" or "spawn error: …" once it has exited, else null. */
	exitInfo(): string | null;
	/** `signal` (SIGTERM), then SIGKILL — to the whole process group when detached — after `graceMs`; resolves once exited. */
	stop(graceMs?: number, signal?: NodeJS.Signals): Promise<void>;
}

const running = new Map<ChildProcess, NodeJS.Signals>();
let exitHookInstalled = false;

function installExitHook(): void {
	if (exitHookInstalled) return;
	exitHookInstalled = true;
	process.on("exit", killRunning);
}

function killRunning(): void {
	for (const [child, signal] of running) {
		try {
			child.kill(signal);
		} catch {
			// Already gone.
		}
	}
	running.clear();
}

/**
 * For test runners: a signal (Ctrl-C) skips 'exit' handlers, so kill the children first, then let the signal do what
 * it would have done. Runners that stop their children gracefully on a signal do not call this.
 */
export function killChildrenOnSignals(): void {
	installExitHook();
	for (const signal of ["SIGINT", "SIGTERM"] as const) {
		process.once(signal, () => {
			killRunning();
			if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
		});
	}
}

export function launch(command: string, args: readonly string[], opts: LaunchOptions = {}): Launched {
	const name = opts.name ?? path.basename(command);
	const detached = opts.detached ?? true;
	const child = spawn(command, args, {
		cwd: opts.cwd, env: opts.env ?? process.env, detached, stdio: ["ignore", "pipe", "pipe"],
		...(opts.uid !== undefined ? { uid: opts.uid } : {}), ...(opts.gid !== undefined ? { gid: opts.gid } : {})
	});
	let info: string | null = null;
	for (const stream of [child.stdout, child.stderr]) {
		let partial = "";
		stream?.on("data", (chunk: Buffer) => {
			const lines = (partial + chunk.toString("utf8")).split("\n");
			partial = lines.pop() ?? "";
			for (const line of lines) opts.onLine?.(line);
		});
		stream?.once("end", () => {
			if (partial) opts.onLine?.(partial);
			partial = "";
		});
	}
	const onParentExit = opts.onParentExit === undefined ? "SIGKILL" : opts.onParentExit;
	if (onParentExit !== null) {
		installExitHook();
		running.set(child, onParentExit);
	}
	const exited = new Promise<void>(resolve => {
		child.once("exit", (code, signal) => {
			info = signal ? `signal ${signal}` : `code ${code}`;
			running.delete(child);
			opts.onLine?.(`-- ${name} exited (${info})`);
			resolve();
		});
		child.once("error", err => {
			info = `spawn error: ${err.message}`;
			running.delete(child);
			opts.onLine?.(`-- ${name}: ${info}`);
			resolve();
		});
	});
	if (opts.unref) {
		child.unref();
		(child.stdout as { unref?: () => void } | null)?.unref?.();
		(child.stderr as { unref?: () => void } | null)?.unref?.();
	}
	const alive = () => info === null;
	return {
		name, child, exited, alive,
		exitInfo: () => info,
		async stop(graceMs = 15_000, signal: NodeJS.Signals = "SIGTERM") {
			if (!alive()) return;
			child.kill(signal);
			let timer: NodeJS.Timeout | undefined;
			const late = new Promise<boolean>(resolve => {
				timer = setTimeout(() => resolve(false), graceMs);
			});
			const inTime = await Promise.race([exited.then(() => true), late]);
			clearTimeout(timer);
			if (!inTime) {
				try {
					if (detached && child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
					else child.kill("SIGKILL");
				} catch {
					child.kill("SIGKILL");
				}
				await exited;
			}
		}
	};
}

/** Whether something on this machine accepts TCP connections on `port`: how the runners wait for their servers and nodes. */
export function tcpOpen(port: number, timeoutMs = 500): Promise<boolean> {
	return probeTcp(port, undefined, undefined, timeoutMs);
}
