// Real cluster nodes for tests and benchmarks: `node bin/start.ts` child processes on NATS + Redis, with an HTTP
// client that retries a failed call on another node (same payload, so the same event ids), and a load driver.
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort, launch, waitFor } from "../../lib/processes.ts";
import { API_KEY } from "../support/node.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const OUTPUT_TAIL_CHARS = 8_000;

export interface NodeProcess {
	nodeId: string;
	baseUrl: string;
	child: ChildProcess;
	/** Resolves when the process has exited. */
	exited: Promise<void>;
	alive(): boolean;
	output(): string;
	kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `node bin/start.ts` with `env` on a free port and waits until /health/ready answers 200. */
export async function startNodeProcess(nodeId: string, env: Record<string, string>, readyTimeoutMs = 30_000): Promise<NodeProcess> {
	const port = await freePort();
	const dataDir = await mkdtemp(path.join(tmpdir(), `crm-${nodeId}-`));
	let out = "";
	const proc = launch(process.execPath, ["bin/start.ts"], {
		name: nodeId,
		cwd: ROOT,
		env: {
			PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "",
			NODE_ID: nodeId, PORT: String(port), HOST: "127.0.0.1", API_KEYS: API_KEY, DATA_DIR: dataDir, LOG_LEVEL: "warn", CHURN_MODEL: "off",
			...env
		},
		detached: false,
		onLine: line => {
			out = `${out}${line}\n`.slice(-OUTPUT_TAIL_CHARS);
		}
	});
	const exited = proc.exited.then(() => rm(dataDir, { recursive: true, force: true })).then(() => undefined);
	const baseUrl = `http://127.0.0.1:${port}`;
	const handle: NodeProcess = {
		nodeId, baseUrl, child: proc.child, exited,
		alive: proc.alive,
		output: () => out,
		async kill(signal = "SIGTERM") {
			if (!proc.alive()) return;
			proc.child.kill(signal);
			await exited;
		}
	};
	try {
		await waitFor(async () => {
			if (!proc.alive()) throw new Error("exited");
			return (await fetch(`${baseUrl}/health/ready`)).status === 200;
		}, { timeoutMs: readyTimeoutMs, intervalMs: 50, message: `${nodeId} ready` });
	} catch (err) {
		await handle.kill("SIGKILL");
		throw new Error(`${nodeId} did not become ready: ${(err as Error).message}\noutput:\n${out}`, { cause: err });
	}
	return handle;
}

export interface ApiAnswer {
	status: number;
	body: any;
}

/** One HTTP call to a node's API with the test key; network failures are answered as status 0. */
export async function apiCall(baseUrl: string, pathname: string, init: { method?: string; json?: unknown; timeoutMs?: number } = {}): Promise<ApiAnswer> {
	const headers: Record<string, string> = { authorization: `Bearer ${API_KEY}` };
	if (init.json !== undefined) headers["content-type"] = "application/json";
	try {
		const res = await fetch(baseUrl + pathname, {
			method: init.method ?? "GET", headers,
			body: init.json === undefined ? undefined : JSON.stringify(init.json),
			signal: AbortSignal.timeout(init.timeoutMs ?? 60_000)
		});
		const text = await res.text();
		let body: unknown = text;
		try {
			body = text.length > 0 ? JSON.parse(text) : null;
		} catch {
			// not JSON: keep the text for the assertion message
		}
		return { status: res.status, body };
	} catch (err) {
		return { status: 0, body: String((err as Error).cause ?? err) };
	}
}

/**
 * A client that spreads calls over the live nodes and retries a failed call (network error or 5xx) on the next
 * node with the same payload until `deadlineMs`: the event ids stay the same, so a retry can only be a duplicate.
 */
export class RetryingClient {
	private nodes: NodeProcess[];
	private next = 0;
	retries = 0;

	constructor(nodes: NodeProcess[]) {
		this.nodes = [...nodes];
	}

	setNodes(nodes: NodeProcess[]): void {
		this.nodes = [...nodes];
	}

	private pick(): NodeProcess {
		const alive = this.nodes.filter(n => n.alive());
		if (alive.length === 0) throw new Error("no live node");
		this.next = (this.next + 1) % alive.length;
		return alive[this.next];
	}

	async call(pathname: string, init: { method?: string; json?: unknown } = {}, deadlineMs = 60_000): Promise<ApiAnswer & { attempts: number }> {
		const deadline = Date.now() + deadlineMs;
		for (let attempt = 1; ; attempt++) {
			const node = this.pick();
			const res = await apiCall(node.baseUrl, pathname, { ...init, timeoutMs: Math.max(1000, deadline - Date.now()) });
			if (res.status !== 0 && res.status < 500) return { ...res, attempts: attempt };
			if (Date.now() >= deadline) throw new Error(`${init.method ?? "GET"} ${pathname} kept failing until the deadline; last answer ${res.status} ${JSON.stringify(res.body)}`);
			this.retries++;
			await new Promise(resolve => setTimeout(resolve, Math.min(50 * attempt, 500)));
		}
	}
}

/** Latency percentiles (ms) of a list of samples. */
export function percentile(samples: number[], p: number): number {
	if (samples.length === 0) return NaN;
	const sorted = [...samples].sort((a, b) => a - b);
	return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Runs `work(i)` for i in [0, count) with at most `concurrency` in flight. */
export async function runPool(count: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
	let nextIndex = 0;
	const workers = Array.from({ length: Math.min(concurrency, count) }, async () => {
		while (nextIndex < count) await work(nextIndex++);
	});
	await Promise.all(workers);
}
