// `npm run demo -- [--nodes 2] [--rate 50] [--duration 300]`: a small local cluster (the cluster runner over a
// nats-server and redis-server of its own), the Telco customers imported through the file drop, then a realistic
// stream of events over the API and JetStream, with progress bars, and where to look. Ctrl-C stops everything.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants as fsConstants, createWriteStream, type WriteStream } from "node:fs";
import { readdir, readFile, rm, mkdir } from "node:fs/promises";
import { createServer } from "node:net";
import { tcpOpen } from "./tcp-open.ts";
import path from "node:path";
import { parseArgs } from "node:util";
import { connect as natsConnect, headers as natsHeaders, type JetStreamClient, type NatsConnection } from "nats";
import { readCsv } from "../ml/csv.ts";
import { mulberry32 } from "../ml/split.ts";
import { dropIntoInbox, TELCO_CSV } from "./import-telco.ts";
import type { FileReport } from "../models/contract/index.ts";
import type { DashboardSummary } from "../models/contract/index.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const DEMO_DIR = path.join(ROOT, "data", "demo");
const TICK_MS = 100;
/** Share of the replayed events published on JetStream (the rest go to the HTTP API of the nodes, in turn). */
const NATS_SHARE = 0.25;
/** Every this many JetStream messages, one is broken on purpose so the dashboard has dead letters to show. */
const BROKEN_EVERY = 150;
const MAX_INFLIGHT_POSTS = 16;

// ---- progress ------------------------------------------------------------------------------------------------

/** A progress bar: redrawn in place on a terminal, one line per 10 % otherwise (logs, CI). */
export class Progress {
	private readonly label: string;
	private readonly tty: boolean;
	private readonly out: NodeJS.WriteStream;
	private lastDecile = -1;
	private lastDraw = 0;
	private done = false;

	constructor(label: string, out: NodeJS.WriteStream = process.stdout) {
		this.label = label;
		this.out = out;
		this.tty = out.isTTY === true;
	}

	update(fraction: number, detail: string, force = false): void {
		if (this.done) return;
		const f = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0));
		const pct = Math.floor(f * 100);
		if (this.tty) {
			const now = Date.now();
			if (!force && now - this.lastDraw < 100 && f < 1) return;
			this.lastDraw = now;
			const width = 28;
			const full = Math.round(f * width);
			const bar = `${"█".repeat(full)}${"░".repeat(width - full)}`;
			this.out.write(`\r\x1b[2K  ${this.label.padEnd(7)} \x1b[36m${bar}\x1b[0m ${String(pct).padStart(3)}%  ${detail}`);
		} else {
			const decile = Math.floor(pct / 10);
			if (decile > this.lastDecile) {
				this.lastDecile = decile;
				this.out.write(`${this.label}: ${decile * 10}% ${detail}\n`);
			}
		}
	}

	finish(detail: string): void {
		if (this.done) return;
		this.update(1, detail, true);
		this.done = true;
		this.out.write(this.tty ? "\n" : `${this.label}: done, ${detail}\n`);
	}
}

// ---- a seeded stream of realistic events ---------------------------------------------------------------------


interface DemoCustomer {
	id: string;
	/** From the data set's Churn column: these customers get the worse side of every draw. */
	churner: boolean;
	openOrders: Array<{ id: string; status: "CREATED" | "PAID" | "SHIPPED" }>;
	openTickets: string[];
}

export interface DemoEvent {
	specversion: "1.0";
	id: string;
	source: string;
	type: string;
	subject: string;
	time: string;
	data: Record<string, unknown>;
}

type Kind = "view" | "order" | "cancel" | "interaction" | "paymentFailed" | "ticketOpen" | "ticketResolve" | "telemetry";
const WEIGHTS: Record<"churner" | "loyal", Record<Kind, number>> = {
	churner: { view: 18, order: 20, cancel: 10, interaction: 16, paymentFailed: 8, ticketOpen: 9, ticketResolve: 3, telemetry: 16 },
	loyal: { view: 25, order: 30, cancel: 2, interaction: 14, paymentFailed: 2, ticketOpen: 4, ticketResolve: 7, telemetry: 16 }
};
const CATEGORIES = ["NETWORK", "BILLING", "TECHNICAL", "ACCOUNT"];
const CHANNELS = ["email", "phone", "chat", "social"];
const NEGATIVE_TEXTS = ["The connection keeps dropping and nobody calls back.", "Billed twice again this month, this is unacceptable.", "Thinking about switching provider, the service is terrible."];
const POSITIVE_TEXTS = ["Thanks, the new plan works great!", "Support fixed it quickly, very happy.", "Love the faster internet, great job."];
const NEUTRAL_TEXTS = ["Asked about the roaming options.", "Wanted to know when the bill is due.", "Changed the billing address."];

/**
 * Customers active at any one time: `rate × ACTIVE_SECONDS_PER_EVENT` of them, so each gets an event every ~8 s
 * whatever the rate (their risk visibly moves within minutes); one is swapped for another every ROTATE_EVERY events,
 * as real traffic drifts.
 */
const ACTIVE_SECONDS_PER_EVENT = 8;
const ROTATE_EVERY = 25;

export class DemoStream {
	private readonly rand: () => number;
	private readonly churners: DemoCustomer[];
	private readonly loyal: DemoCustomer[];
	private readonly active: DemoCustomer[] = [];
	private readonly run: string;
	private seq = 0;

	constructor(customers: Array<{ id: string; churner: boolean }>, seed: number, run: string, rate = 50) {
		this.rand = mulberry32(seed);
		const all = customers.map(c => ({ ...c, openOrders: [], openTickets: [] }));
		this.churners = all.filter(c => c.churner);
		this.loyal = all.filter(c => !c.churner);
		this.run = run;
		const size = Math.min(all.length, Math.max(100, Math.round(rate * ACTIVE_SECONDS_PER_EVENT)));
		for (let i = 0; i < size; i++) this.active.push(this.draw());
	}

	/** A customer for the active set: churners drawn more often than their 27 % share of the data. */
	private draw(): DemoCustomer {
		const pool = this.churners.length > 0 && (this.loyal.length === 0 || this.rand() < 0.45) ? this.churners : this.loyal;
		return this.pick(pool);
	}

	private pick<T>(list: readonly T[]): T {
		return list[Math.floor(this.rand() * list.length)];
	}

	private kind(c: DemoCustomer): Kind {
		const w = WEIGHTS[c.churner ? "churner" : "loyal"];
		const total = Object.values(w).reduce((a, b) => a + b, 0);
		let r = this.rand() * total;
		for (const [k, v] of Object.entries(w) as Array<[Kind, number]>) {
			r -= v;
			if (r < 0) return k;
		}
		return "view";
	}

	/** The next event: a customer of the active set and what happens to them. */
	next(): DemoEvent {
		const n = ++this.seq;
		if (n % ROTATE_EVERY === 0) this.active[Math.floor(this.rand() * this.active.length)] = this.draw();
		const c = this.pick(this.active);
		const base = { specversion: "1.0" as const, id: `demo-${this.run}-${n}`, subject: c.id, time: new Date().toISOString() };
		const money = () => Math.round((10 + this.rand() * 140) * 100) / 100;
		switch (this.kind(c)) {
			case "order": {
				const open = c.openOrders.find(o => o.status !== "CREATED" || this.rand() < 0.7);
				if (open) {
					const next = open.status === "CREATED" ? "PAID" : open.status === "PAID" ? "SHIPPED" : "DELIVERED";
					const oldStatus = open.status;
					if (next === "DELIVERED") c.openOrders.splice(c.openOrders.indexOf(open), 1);
					else open.status = next;
					return { ...base, source: "/shop/orders", type: "crm.order.status_changed", data: { orderId: open.id, oldStatus, newStatus: next } };
				}
				const orderId = `o-${this.run}-${n}`;
				if (c.openOrders.length < 5) c.openOrders.push({ id: orderId, status: "CREATED" });
				return { ...base, source: "/shop/orders", type: "crm.order.status_changed", data: { orderId, newStatus: "CREATED", amount: money(), currency: "EUR" } };
			}
			case "cancel": {
				const open = c.openOrders.find(o => o.status !== "SHIPPED");
				if (open) c.openOrders.splice(c.openOrders.indexOf(open), 1);
				return {
					...base, source: "/shop/orders", type: "crm.order.status_changed",
					data: { orderId: open?.id ?? `o-${this.run}-${n}`, oldStatus: open?.status ?? "CREATED", newStatus: "CANCELLED", amount: money(), currency: "EUR" }
				};
			}
			case "interaction": {
				const mean = c.churner ? -0.45 : 0.35;
				const sentiment = Math.round(Math.max(-1, Math.min(1, mean + (this.rand() - 0.5) * 1.2)) * 100) / 100;
				const text = this.pick(sentiment <= -0.3 ? NEGATIVE_TEXTS : sentiment >= 0.3 ? POSITIVE_TEXTS : NEUTRAL_TEXTS);
				return {
					...base, source: "/crm/interactions", type: "crm.interaction.logged",
					data: { interactionId: `i-${this.run}-${n}`, channel: this.pick(CHANNELS), direction: this.rand() < 0.7 ? "inbound" : "outbound", sentiment, text }
				};
			}
			case "paymentFailed":
				return { ...base, source: "/billing/payments", type: "crm.payment.failed", data: { paymentId: `p-${this.run}-${n}`, amount: money(), currency: "EUR", reason: this.pick(["insufficient_funds", "card_expired", "do_not_honor"]) } };
			case "ticketOpen": {
				const ticketId = `t-${this.run}-${n}`;
				if (c.openTickets.length < 8) c.openTickets.push(ticketId);
				const priority = this.pick(c.churner ? ["MEDIUM", "HIGH", "HIGH", "CRITICAL"] : ["LOW", "LOW", "MEDIUM", "HIGH"]);
				const category = this.pick(CATEGORIES);
				return { ...base, source: "/support/tickets", type: "crm.ticket.opened", data: { ticketId, priority, category, subject: `${category.toLowerCase()} issue` } };
			}
			case "ticketResolve": {
				const ticketId = c.openTickets.shift();
				if (ticketId) return { ...base, source: "/support/tickets", type: "crm.ticket.resolved", data: { ticketId } };
				return { ...base, source: "/web", type: "crm.page.viewed", data: { url: "/support/faq", sessionId: `s-${c.id}` } };
			}
			case "telemetry": {
				const signal = Math.round(c.churner ? -95 - this.rand() * 20 : -60 - this.rand() * 30);
				const dropped = Math.floor(this.rand() * (c.churner ? 6 : 2));
				return {
					...base, source: "/devices", type: "crm.device.telemetry",
					data: { deviceId: `router-${c.id}`, metrics: { signalDbm: signal, droppedCalls: dropped, dataUsageMb: Math.round(this.rand() * 900) } }
				};
			}
			default:
				return { ...base, source: "/web", type: "crm.page.viewed", data: { url: this.pick(["/plans", "/account", "/billing", "/offers/upgrade", "/cancel-contract"]), sessionId: `s-${c.id}` } };
		}
	}
}

/** NATS subject of an event type (ARCHITECTURE §9): crm.order.status_changed → crm.events.order.status_changed. */
export function subjectOf(type: string): string {
	return `crm.events.${type.replace(/^crm\./, "")}`;
}

/** A deliberately broken message (bad JSON, unknown type, no subject) for the dead-letter part of the demo. */
function brokenMessage(n: number, run: string): { subject: string; body: string } {
	const id = `broken-${run}-${n}`;
	switch (n % 3) {
		case 0: return { subject: "crm.events.order.status_changed", body: `{"specversion":"1.0","id":"${id}","source":"/legacy-shop"` };
		case 1: return { subject: "crm.events.spaceship.launched", body: JSON.stringify({ specversion: "1.0", id, source: "/legacy-shop", type: "crm.spaceship.launched", subject: "7590-VHVEG", time: new Date().toISOString(), data: {} }) };
		default: return { subject: "crm.events.page.viewed", body: JSON.stringify({ specversion: "1.0", id, source: "/web", type: "crm.page.viewed", time: new Date().toISOString(), data: { url: "/" } }) };
	}
}

// ---- processes -----------------------------------------------------------------------------------------------

async function waitFor(cond: () => boolean | Promise<boolean>, opts: { timeoutMs: number; intervalMs?: number; message: string }): Promise<void> {
	const deadline = Date.now() + opts.timeoutMs;
	let last: unknown;
	for (;;) {
		try {
			if (await cond()) return;
		} catch (err) {
			last = err;
		}
		if (Date.now() > deadline) throw new Error(`${opts.message} (after ${opts.timeoutMs} ms)${last ? `: ${(last as Error).message}` : ""}`);
		await new Promise(resolve => setTimeout(resolve, opts.intervalMs ?? 100));
	}
}

function freePort(): Promise<number> {
	return new Promise((resolve, reject) => {
		const server = createServer();
		server.once("error", reject);
		server.listen(0, "127.0.0.1", () => {
			const address = server.address();
			server.close(() => (address && typeof address === "object" ? resolve(address.port) : reject(new Error("no free port"))));
		});
	});
}

function findBinary(name: string): string {
	for (const dir of [...(process.env.PATH ?? "").split(path.delimiter), "/usr/sbin", "/usr/local/bin", "/usr/bin"]) {
		try {
			accessSync(path.join(dir, name), fsConstants.X_OK);
			return path.join(dir, name);
		} catch {
			// not here
		}
	}
	throw new Error(`${name} is not installed (Debian: apt-get install ${name})`);
}

interface Managed {
	child: ChildProcess;
	exited: Promise<void>;
	alive(): boolean;
	/** SIGTERM, then SIGKILL to its process group after `graceMs`. */
	stop(graceMs?: number): Promise<void>;
}

/**
 * Spawns in its own process group, so a Ctrl-C on the terminal reaches only the demo, which stops things in order
 * (nodes before the servers they write to). Output lines go to `onLine`.
 */
function launch(command: string, args: string[], env: NodeJS.ProcessEnv, onLine: (line: string) => void): Managed {
	const child = spawn(command, args, { cwd: ROOT, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
	for (const stream of [child.stdout, child.stderr]) {
		let partial = "";
		stream?.on("data", (chunk: Buffer) => {
			const lines = (partial + chunk.toString("utf8")).split("\n");
			partial = lines.pop() ?? "";
			for (const l of lines) onLine(l);
		});
	}
	let alive = true;
	const exited = new Promise<void>(resolve => {
		child.once("exit", () => {
			alive = false;
			resolve();
		});
		child.once("error", err => {
			onLine(`spawn ${command}: ${err.message}`);
			alive = false;
			resolve();
		});
	});
	process.on("exit", () => {
		if (alive) child.kill("SIGKILL");
	});
	return {
		child, exited, alive: () => alive,
		async stop(graceMs = 15_000) {
			if (!alive) return;
			child.kill("SIGTERM");
			const late = setTimeout(() => {
				try {
					process.kill(-(child.pid as number), "SIGKILL");
				} catch {
					// already gone
				}
			}, graceMs);
			await exited;
			clearTimeout(late);
		}
	};
}

/** nats-server with JetStream and redis-server with an AOF, on free ports, data under `dir`. */
async function startServers(dir: string, log: WriteStream): Promise<{ natsUrl: string; redisUrl: string; stop(): Promise<void> }> {
	const [natsPort, redisPort] = [await freePort(), await freePort()];
	await mkdir(path.join(dir, "redis"), { recursive: true });
	const nats = launch(findBinary("nats-server"), ["-js", "-a", "127.0.0.1", "-p", String(natsPort), "-sd", path.join(dir, "nats")], process.env, l => log.write(`[nats-server] ${l}\n`));
	const redis = launch(findBinary("redis-server"), ["--port", String(redisPort), "--bind", "127.0.0.1", "--dir", path.join(dir, "redis"), "--appendonly", "yes", "--save", ""], process.env, l => log.write(`[redis-server] ${l}\n`));
	const stop = async () => {
		await Promise.all([nats.stop(5000), redis.stop(5000)]);
	};
	try {
		await waitFor(async () => {
			if (!nats.alive() || !redis.alive()) throw new Error("nats-server or redis-server exited (see the log)");
			return (await tcpOpen(natsPort, 300)) && (await tcpOpen(redisPort, 300));
		}, { timeoutMs: 15_000, message: "nats-server and redis-server did not start" });
	} catch (err) {
		await stop();
		throw err;
	}
	return { natsUrl: `nats://127.0.0.1:${natsPort}`, redisUrl: `redis://127.0.0.1:${redisPort}`, stop };
}

// ---- the cluster ---------------------------------------------------------------------------------------------

/** `count` consecutive free ports from `wanted`, or from a free port the OS picks when those are taken. */
async function basePort(wanted: number, count: number): Promise<number> {
	for (const candidate of [wanted, await freePort(), await freePort()]) {
		const taken = await Promise.all(Array.from({ length: count }, (_, i) => tcpOpen(candidate + i, 300)));
		if (candidate + count < 65535 && !taken.some(Boolean)) return candidate;
	}
	throw new Error(`no ${count} free consecutive ports found near ${wanted}`);
}

interface Cluster {
	exited: Promise<void>;
	metricsPorts: Map<string, number>;
	stop(): Promise<void>;
}

/** Starts `npm run cluster`'s runner on our servers; its output goes to `log`, the nodes' metrics ports are read from it. */
async function startCluster(nodes: number, port: number, env: NodeJS.ProcessEnv, log: WriteStream): Promise<Cluster> {
	const metricsPorts = new Map<string, number>();
	let up = false;
	let tail: string[] = [];
	const runner = launch(process.execPath, ["bin/cluster.ts", "--nodes", String(nodes), "--base-port", String(port)], env, line => {
		log.write(`${line}\n`);
		tail = [...tail.slice(-30), line];
		const m = /^\[(node-\d+)\].*metric reporter listening on http:\/\/.*:(\d+)\/metrics/.exec(line);
		if (m) metricsPorts.set(m[1], Number(m[2]));
		if (line.startsWith("cluster up:")) up = true;
	});
	// The runner stops its nodes (they drain their writes) before it exits.
	const stop = () => runner.stop(30_000);
	try {
		await waitFor(() => {
			if (!runner.alive()) throw new Error("the cluster runner exited");
			return up;
		}, { timeoutMs: 90_000, intervalMs: 100, message: "the cluster did not come up" });
	} catch (err) {
		await stop();
		throw new Error(`${(err as Error).message}; last output:\n${tail.join("\n")}`, { cause: err });
	}
	return { exited: runner.exited, metricsPorts, stop };
}

// ---- main ----------------------------------------------------------------------------------------------------

interface Args { nodes: number; rate: number; duration: number; port: number; seed: number; keep: boolean; skipImport: boolean }

function parse(): Args {
	const { values } = parseArgs({
		options: {
			nodes: { type: "string", default: "2" },
			rate: { type: "string", default: "50" },
			duration: { type: "string", default: "300" },
			port: { type: "string", default: "3000" },
			seed: { type: "string", default: "42" },
			keep: { type: "boolean", default: false },
			"no-import": { type: "boolean", default: false },
			help: { type: "boolean", default: false }
		}
	});
	const usage = "usage: npm run demo -- [--nodes 2] [--rate 50] [--duration 300] [--port 3000] [--seed 42] [--keep] [--no-import]";
	if (values.help) {
		console.log(usage);
		process.exit(0);
	}
	const int = (name: keyof typeof values, min: number, max: number) => {
		const n = Number(values[name]);
		if (!Number.isInteger(n) || n < min || n > max) {
			console.error(`--${name} must be an integer from ${min} to ${max}, got "${String(values[name])}"\n${usage}`);
			process.exit(2);
		}
		return n;
	};
	return {
		nodes: int("nodes", 1, 8), rate: int("rate", 1, 5000), duration: int("duration", 1, 86_400), port: int("port", 1, 65_000), seed: int("seed", 0, 2 ** 31),
		keep: values.keep === true, skipImport: values["no-import"] === true
	};
}

async function main(): Promise<void> {
	const args = parse();
	const apiKey = process.env.API_KEYS?.split(",")[0]?.trim() || `demo-${randomBytes(12).toString("hex")}`;
	const run = Date.now().toString(36);
	let stopping = false;
	const cleanups: Array<() => Promise<void>> = [];
	const stopAll = async (code: number) => {
		if (stopping) return;
		stopping = true;
		console.log("\nstopping the demo: nodes first (they finish their writes), then nats-server and redis-server…");
		for (const c of cleanups.reverse()) await c().catch((err: unknown) => console.error(err instanceof Error ? err.message : err));
		process.exit(code);
	};
	process.once("SIGINT", () => void stopAll(0));
	process.once("SIGTERM", () => void stopAll(0));

	if (!args.keep) await rm(DEMO_DIR, { recursive: true, force: true });
	await mkdir(DEMO_DIR, { recursive: true });
	const logFile = path.join(DEMO_DIR, "demo.log");
	const log = createWriteStream(logFile, { flags: "a" });
	cleanups.push(() => new Promise(resolve => log.end(resolve)));

	console.log(`crm-actors demo: ${args.nodes} nodes, then ${args.rate} events/s for ${args.duration} s (node logs: ${path.relative(ROOT, logFile)})`);
	const servers = await startServers(path.join(DEMO_DIR, "servers"), log);
	cleanups.push(() => servers.stop());
	const port = await basePort(args.port, args.nodes);
	const env: NodeJS.ProcessEnv = {
		...process.env,
		TRANSPORTER: servers.natsUrl, NATS_URL: servers.natsUrl, REDIS_URL: servers.redisUrl,
		API_KEYS: apiKey, HOST: "127.0.0.1", DATA_DIR: DEMO_DIR,
		// Each node picks a free metrics port and logs it; the demo reads them from the log.
		METRICS_PORT: "0", LOG_LEVEL: process.env.LOG_LEVEL ?? "info"
	};
	const cluster = await startCluster(args.nodes, port, env, log);
	cleanups.push(() => cluster.stop());
	void cluster.exited.then(() => {
		if (!stopping) {
			console.error(`\nthe cluster runner exited; see ${logFile}`);
			void stopAll(1);
		}
	});

	const ports = Array.from({ length: args.nodes }, (_, i) => port + i);
	const api = async <T>(p: string, init: RequestInit = {}, node = 0): Promise<{ status: number; body: T }> => {
		const res = await fetch(`http://127.0.0.1:${ports[node % ports.length]}${p}`, {
			...init, headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json", ...init.headers }
		});
		const text = await res.text();
		return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
	};
	const summary = async () => (await api<DashboardSummary>("/api/v1/dashboard/summary")).body;
	await waitFor(async () => {
		const s = await api<DashboardSummary>("/api/v1/dashboard/summary");
		return s.status === 200 && s.body.nodes.filter(n => n.hostsCustomers).length === args.nodes;
	}, { timeoutMs: 60_000, intervalMs: 250, message: "the nodes did not all join" });
	await waitFor(() => cluster.metricsPorts.size >= args.nodes, { timeoutMs: 5000, message: "metrics ports not seen in the log" }).catch(() => undefined);

	const whereToLook = () => {
		const dash = `http://127.0.0.1:${ports[0]}/dashboard`;
		console.log("");
		console.log(`  dashboard   ${dash}   (API key: ${apiKey})`);
		console.log(`  API         ${ports.map(p => `http://127.0.0.1:${p}`).join("  ")}`);
		console.log(`              curl -H 'Authorization: Bearer ${apiKey}' 'http://127.0.0.1:${ports[0]}/api/v1/customers?riskAbove=50&limit=5'`);
		const metrics = [...cluster.metricsPorts].sort().map(([n, p]) => `${n} http://127.0.0.1:${p}/metrics`);
		if (metrics.length > 0) console.log(`  metrics     ${metrics.join("  ")}`);
		console.log(`  REPL        TRANSPORTER=${servers.natsUrl} REDIS_URL=${servers.redisUrl} SERVICES=dashboard NODE_ID=repl-${process.pid} npm run repl`);
		console.log(`              then: shards · customer <id> · dead-letters list`);
		console.log(`  NATS        publish CloudEvents to crm.events.<entity>.<verb> on ${servers.natsUrl} (header Nats-Msg-Id)`);
		console.log(`  logs        ${logFile}`);
		console.log("  Ctrl-C stops everything.");
		console.log("");
	};
	whereToLook();

	// 1. The Telco customers, through the file drop of node-1 (its ingest-files inbox).
	const table = await readCsv(TELCO_CSV);
	const idCol = table.header.indexOf("customerID");
	const churnCol = table.header.indexOf("Churn");
	const customers = table.rows.map(r => ({ id: r[idCol], churner: r[churnCol] === "Yes" }));
	if (!args.skipImport) {
		const inbox = path.join(DEMO_DIR, "cluster", "node-1", "inbox");
		const started = Date.now();
		await dropIntoInbox(inbox, TELCO_CSV);
		const bar = new Progress("import");
		let report: FileReport | null = null;
		while (!report && !stopping) {
			report = await findReport(inbox, started - 1000);
			const s = await summary().catch(() => null);
			const files = s?.totals.bySource.files;
			const done = files ? files.applied + files.duplicates : 0;
			bar.update(done / customers.length, `${done.toLocaleString("en-US")} / ${customers.length.toLocaleString("en-US")} customers`);
			if (!report) await new Promise(resolve => setTimeout(resolve, 250));
		}
		if (!report) return;
		const r = report.rows;
		bar.finish(`${r.applied} applied, ${r.duplicate} duplicate, ${r.deadLettered} dead-lettered in ${((Date.now() - started) / 1000).toFixed(1)} s`);
		if (report.status === "failed") console.error(`import failed: ${report.reason ?? "see the report in the inbox"}`);
	}

	// 2. The replay: events over the API of every node in turn, a share over JetStream (with a few broken ones).
	let nc: NatsConnection | null = null;
	let js: JetStreamClient | null = null;
	try {
		nc = await natsConnect({ servers: servers.natsUrl, name: "crm demo publisher" });
		const jsm = await nc.jetstreamManager();
		await waitFor(async () => (await jsm.streams.info("CRM_EVENTS")) !== null, { timeoutMs: 20_000, message: "stream CRM_EVENTS" });
		js = nc.jetstream();
		const conn = nc;
		cleanups.push(() => conn.close());
	} catch (err) {
		console.error(`JetStream publishing off (${(err as Error).message}): every event goes over the API`);
	}
	const stream = new DemoStream(customers, args.seed, run, args.rate);
	const bar = new Progress("replay");
	const counts = { api: 0, nats: 0, broken: 0, accepted: 0, duplicates: 0, errors: 0 };
	const started = Date.now();
	let generated = 0;
	let inflight = 0;
	let node = 0;
	let natsSeq = 0;
	const retryQueue: DemoEvent[][] = [];
	const post = async (batch: DemoEvent[]) => {
		inflight++;
		try {
			const res = await api<{ accepted: number; duplicates: number }>("/api/v1/events", { method: "POST", body: JSON.stringify(batch) }, node++);
			if (res.status === 202) {
				counts.accepted += res.body.accepted;
				counts.duplicates += res.body.duplicates;
			} else {
				counts.errors++;
				if (res.status >= 500) retryQueue.push(batch);
			}
		} catch {
			// A node restarting: the same events (same ids) again later are applied once.
			counts.errors++;
			retryQueue.push(batch);
		} finally {
			inflight--;
		}
	};
	const publish = async (e: DemoEvent) => {
		if (!js) return false;
		const h = natsHeaders();
		h.set("Nats-Msg-Id", `${e.source}/${e.id}`);
		try {
			await js.publish(subjectOf(e.type), JSON.stringify(e), { headers: h });
			if (++natsSeq % BROKEN_EVERY === 0) {
				const b = brokenMessage(natsSeq / BROKEN_EVERY, run);
				await js.publish(b.subject, b.body);
				counts.broken++;
			}
			return true;
		} catch {
			return false;
		}
	};
	await new Promise<void>(resolve => {
		const timer = setInterval(() => {
			if (stopping) {
				clearInterval(timer);
				resolve();
				return;
			}
			const elapsed = (Date.now() - started) / 1000;
			const due = Math.min(args.rate * Math.min(elapsed, args.duration), generated + args.rate);
			const batch: DemoEvent[] = [];
			while (generated < Math.floor(due)) {
				const e = stream.next();
				generated++;
				if (js && Math.random() < NATS_SHARE) {
					counts.nats++;
					// Not published (JetStream busy or restarting): the same event goes over the API instead, once.
					void publish(e).then(ok => {
						if (!ok) retryQueue.push([e]);
					});
				} else {
					batch.push(e);
					counts.api++;
				}
			}
			if (inflight < MAX_INFLIGHT_POSTS) {
				const again = retryQueue.shift();
				if (again) void post(again);
				for (let i = 0; i < batch.length; i += 500) void post(batch.slice(i, i + 500));
			} else if (batch.length > 0) retryQueue.push(batch);
			const rate = generated / Math.max(0.001, elapsed);
			bar.update(elapsed / args.duration, `${generated.toLocaleString("en-US")} events (api ${counts.api}, nats ${counts.nats}, broken ${counts.broken}) · ${rate.toFixed(0)}/s · errors ${counts.errors}`);
			if (elapsed >= args.duration && inflight === 0 && retryQueue.length === 0) {
				clearInterval(timer);
				resolve();
			}
		}, TICK_MS);
	});
	if (stopping) return;
	bar.finish(`${generated.toLocaleString("en-US")} events in ${((Date.now() - started) / 1000).toFixed(0)} s: api ${counts.accepted} accepted, ${counts.duplicates} duplicates; nats ${counts.nats} (+${counts.broken} broken on purpose); errors ${counts.errors}`);

	const top = await api<Array<{ id: string; score: number }>>("/api/v1/customers?riskAbove=0&limit=5").catch(() => null);
	if (top?.status === 200 && top.body.length > 0) {
		console.log(`\nmost at risk now: ${top.body.map(c => `${c.id} (${c.score})`).join(", ")}`);
	}
	whereToLook();
	console.log("The replay is over; the cluster keeps running until Ctrl-C.");
}

/** The ingest-files report of the Telco drop, once the node wrote it (processed/ or failed/ in the inbox). */
async function findReport(inbox: string, after: number): Promise<FileReport | null> {
	for (const dir of ["processed", "failed"]) {
		const names = await readdir(path.join(inbox, dir)).catch(() => [] as string[]);
		for (const n of names.filter(x => x.endsWith("-telco-churn.csv.report.json")).sort().reverse()) {
			const report = JSON.parse(await readFile(path.join(inbox, dir, n), "utf8")) as FileReport;
			if (Date.parse(report.startedAt) >= after) return report;
		}
	}
	return null;
}

if (import.meta.main) {
	main().catch(err => {
		console.error(err instanceof Error ? err.message : err);
		process.exit(1);
	});
}
