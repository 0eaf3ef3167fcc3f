// `npm run demo -- [--nodes 2] [--rate 50] [--duration 300]`: a small local cluster (the cluster runner over a
// nats-server and redis-server of its own), the Telco customers imported through the file drop, then a realistic
// stream of events over the API and JetStream, with progress bars, and where to look. Ctrl-C stops everything.
import { randomBytes } from "node:crypto";
import { createWriteStream, type WriteStream } from "node:fs";
import { readdir, readFile, rm, mkdir } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { connect as natsConnect, headers as natsHeaders, type JetStreamClient, type NatsConnection } from "nats";
import { readCsv } from "../ml/csv.ts";
import { dropIntoInbox, TELCO_CSV } from "../app/telco-drop.ts";
import { subjectForType, type DashboardSummary, type FileReport } from "../models/contract/index.ts";
import { DemoStream, Progress, type DemoEvent } from "../app/demo-stream.ts";
import { freePort, launch, requireBinary, tcpOpen, waitFor } from "../lib/processes.ts";
import { natsServerArgs, redisServerArgs } from "../lib/servers.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const DEMO_DIR = path.join(ROOT, "data", "demo");
const TICK_MS = 100;
/** Share of the replayed events published on JetStream (the rest go to the HTTP API of the nodes, in turn). */
const NATS_SHARE = 0.25;
/** Every this many JetStream messages, one is broken on purpose so the dashboard has dead letters to show. */
const BROKEN_EVERY = 150;
const MAX_INFLIGHT_POSTS = 16;

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

/** nats-server with JetStream and redis-server with an AOF, on free ports, data under `dir`. */
async function startServers(dir: string, log: WriteStream): Promise<{ natsUrl: string; redisUrl: string; stop(): Promise<void> }> {
	const [natsPort, redisPort] = [await freePort(), await freePort()];
	await mkdir(path.join(dir, "redis"), { recursive: true });
	const hint = "install it (Debian: apt-get install nats-server redis-server)";
	const nats = launch(requireBinary("nats-server", hint), natsServerArgs(natsPort, path.join(dir, "nats")), { cwd: ROOT, onLine: l => log.write(`[nats-server] ${l}\n`) });
	const redis = launch(requireBinary("redis-server", hint), redisServerArgs(redisPort, path.join(dir, "redis")), { cwd: ROOT, onLine: l => log.write(`[redis-server] ${l}\n`) });
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
	const runner = launch(process.execPath, ["bin/cluster.ts", "--nodes", String(nodes), "--base-port", String(port)], { name: "cluster", cwd: ROOT, env, onLine: line => {
		log.write(`${line}\n`);
		tail = [...tail.slice(-30), line];
		const m = /^\[(node-\d+)\].*metric reporter listening on http:\/\/.*:(\d+)\/metrics/.exec(line);
		if (m) metricsPorts.set(m[1], Number(m[2]));
		if (line.startsWith("cluster up:")) up = true;
	} });
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
			await js.publish(subjectForType(e.type), JSON.stringify(e), { headers: h });
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
