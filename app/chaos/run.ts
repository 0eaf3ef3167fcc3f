// The chaos run: servers, N nodes behind their proxies, the workload, the seeded faults one after the other (each
// measured until the cluster serves again), then the drain and the checker over every customer's journal and state.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadConfig } from "../../config/index.ts";
import { ownerOf } from "../../actors/sharding.ts";
import { reduceContextFor } from "../../actors/reduce-context.ts";
import { journalReplay } from "../../actors/host/replay.ts";
import { toCustomerView } from "../../models/contract/index.ts";
import { RedisActorStore } from "../../adapters/redis.store.ts";
import { waitFor } from "../../lib/processes.ts";
import { check, SOURCES, type CustomerReading } from "./checker.ts";
import { CHAOS_API_KEY, createNode, logStreams, startServers, type ChaosNode, type Servers } from "./cluster.ts";
import { NODE_FAULTS, planFaults, type FaultKind, type PlannedFault } from "./schedule.ts";
import { buildReport, type FaultOutcome, type RunReport } from "./report.ts";
import { Workload } from "./workload.ts";

export interface ChaosOptions {
	nodes: number;
	minutes: number;
	seed: number;
	/** Events per second over all sources. */
	ratePerSecond?: number;
	customersPerSource?: number;
	/** Only these fault kinds (default: all). */
	faultKinds?: readonly FaultKind[];
	/** Keep the run directory (logs, data) even when the run passed. */
	keep?: boolean;
	/** Progress lines. */
	log(line: string): void;
}

const RECOVERY_DEADLINE_MS = 90_000;
const DRAIN_MS = 90_000;
const APPLY_DEADLINE_MS = 120_000;
const JOURNAL_READ = 1000;
const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

export async function runChaos(opts: ChaosOptions): Promise<RunReport> {
	const dir = mkdtempSync(path.join(tmpdir(), `crm-chaos-${opts.seed}-`));
	const logs = logStreams(dir);
	const t = () => `${((Date.now() - began) / 1000).toFixed(1).padStart(6)} s`;
	const began = Date.now();
	const log = (line: string) => opts.log(`[chaos ${t()}] ${line}`);
	log(`seed=${opts.seed} nodes=${opts.nodes} minutes=${opts.minutes}; run directory ${dir}`);

	let servers: Servers | null = null;
	const slots: ChaosNode[] = [];
	let workload: Workload | null = null;
	let passed = false;
	try {
		servers = await startServers(dir, logs.open);
		const srv = servers;
		log(`nats-server :${srv.nats.port} (JetStream; v2.9 has no sync_interval), redis-server :${srv.redis.port} (appendfsync always), mosquitto :${srv.mosquitto.port}`);
		const settings = { dir, servers: srv, logStream: logs.open };
		for (let i = 1; i <= opts.nodes; i++) slots.push(await createNode(i, settings));
		await Promise.all(slots.map(n => n.start()));
		log(`${opts.nodes} nodes ready: ${slots.map(n => `${n.id} :${n.port}`).join(", ")}`);

		const live = () => slots.filter(n => n.alive());
		const runId = `r${opts.seed}x${Date.now().toString(36)}`;
		const wl = new Workload({
			runId, customersPerSource: opts.customersPerSource ?? 25, ratePerSecond: opts.ratePerSecond ?? 40,
			natsUrl: `nats://127.0.0.1:${srv.nats.port}`, mqttUrl: `mqtt://127.0.0.1:${srv.mosquitto.port}`, nodes: live, log
		});
		workload = wl;
		await wl.start();
		const loadStart = Date.now();
		const loadMs = opts.minutes * 60_000;
		const plan = planFaults({ seed: opts.seed, durationMs: loadMs, kinds: opts.faultKinds });
		log(`load started (${opts.ratePerSecond ?? 40} events/s over ${SOURCES.join(", ")}); ${plan.length} faults planned: ${plan.map(f => f.kind).join(", ")}`);

		/** Ready everywhere, acks flowing again on every source, and (after a node fault) for that node's customers. */
		const recovered = async (t0: number, affected: string | null): Promise<number | null> => {
			let ackIndex = wl.acks.length;
			while (ackIndex > 0 && wl.acks[ackIndex - 1].ackedAt >= t0) ackIndex--;
			try {
				await waitFor(async () => {
					const nodes = live();
					if (nodes.some(n => n.paused)) return false;
					if (!(await Promise.all(nodes.map(n => n.ready()))).every(Boolean)) return false;
					const fresh = wl.acks.slice(ackIndex).filter(a => a.attemptAt >= t0);
					if (!SOURCES.every(s => fresh.some(a => a.source === s))) return false;
					if (affected === null) return true;
					const ids = nodes.map(n => n.id);
					return fresh.some(a => (a.source === "http" || a.source === "webhook") && ownerOf(a.customerId, ids) === affected);
				}, { timeoutMs: RECOVERY_DEADLINE_MS, intervalMs: 200 });
				return Date.now() - t0;
			} catch {
				return null;
			}
		};

		const outcomes: FaultOutcome[] = [];
		for (const fault of plan) {
			const wait = loadStart + fault.atMs - Date.now();
			if (wait > 0) await sleep(wait);
			const startedMs = Date.now() - loadStart;
			const { detail, node, t0 } = await inject(fault, slots, srv, settings, opts.nodes, log);
			const recoveryMs = await recovered(t0, node ?? null);
			outcomes.push({ index: fault.index, kind: fault.kind, node, detail, startedMs, recoveryMs });
			log(`fault #${fault.index} ${detail}: ${recoveryMs === null ? `NOT recovered within ${RECOVERY_DEADLINE_MS / 1000} s` : `recovered in ${(recoveryMs / 1000).toFixed(1)} s`}`);
		}
		const rest = loadStart + loadMs - Date.now();
		if (rest > 0) await sleep(rest);
		const loadRan = Date.now() - loadStart;
		log(`load phase over (${(loadRan / 1000).toFixed(0)} s, ${wl.acks.length} acks, ${wl.retries} retried sends); draining`);
		await wl.stop(DRAIN_MS);

		// Every acknowledged event must reach its journal: wait for that (the JetStream intake may still hold a barrier).
		const store = new RedisActorStore({ url: `redis://127.0.0.1:${srv.redis.port}`, journalMax: JOURNAL_READ });
		await store.connect();
		try {
			const customers = [...new Set(wl.published.map(p => p.customerId))];
			const ackedKeys = new Map<string, Set<string>>();
			for (const p of wl.published) if (p.acked) ackedKeys.set(p.customerId, (ackedKeys.get(p.customerId) ?? new Set()).add(p.key));
			const journals = new Map<string, Awaited<ReturnType<typeof store.journal>>>();
			const missing = async () => {
				let n = 0;
				for (const id of customers) {
					const want = ackedKeys.get(id);
					const have = journals.get(id);
					if (want && have && [...want].every(k => have.some(e => e.key === k))) continue;
					journals.set(id, await store.journal(id, JOURNAL_READ));
					const now = new Set(journals.get(id)?.map(e => e.key));
					for (const k of want ?? []) if (!now.has(k)) n++;
				}
				return n;
			};
			const drainStart = Date.now();
			try {
				await waitFor(async () => (await missing()) === 0, { timeoutMs: APPLY_DEADLINE_MS, intervalMs: 500 });
				log(`every acknowledged event is in its journal (${((Date.now() - drainStart) / 1000).toFixed(1)} s after the load)`);
			} catch {
				log(`after ${APPLY_DEADLINE_MS / 1000} s acknowledged events are still missing from journals: counting them as lost`);
			}

			const config = loadConfig({ ...process.env, CHURN_MODEL: "off" });
			const replay = journalReplay(reduceContextFor(config.actor, null));
			const readings: CustomerReading[] = [];
			for (const id of customers) {
				const entries = [...(await store.journal(id, JOURNAL_READ))].reverse();
				const state = await readState(live(), id);
				let replayed: unknown = null;
				let replayError: string | undefined;
				try {
					replayed = entries.length === 0 ? null : JSON.parse(JSON.stringify(toCustomerView(replay(id, null, entries))));
				} catch (err) {
					replayError = (err as Error).message;
				}
				readings.push({
					customerId: id, journal: entries.map(e => ({ version: e.version, key: e.key })),
					complete: entries.length < JOURNAL_READ && (entries[0]?.version ?? 1) === 1, state, replayed, replayError
				});
			}
			const verdict = check(wl.published, readings);
			const notes = [
				"nats-server v2.9 has no sync_interval (2.10+): JetStream does not fsync each message; nats-server restarts are clean shutdowns (SIGTERM), redis-server restarts are SIGKILL (appendfsync always)",
				...wl.rejections.slice(0, 10).map(r => `rejected: ${r}`)
			];
			const report = buildReport({ seed: opts.seed, nodes: opts.nodes, minutes: opts.minutes, loadMs: loadRan, faults: outcomes, verdict, rejected: wl.rejections.length, notes });
			passed = report.violations === 0;
			return report;
		} finally {
			await store.close();
		}
	} finally {
		await workload?.stop(0).catch(() => undefined);
		await Promise.all(slots.map(n => n.stop().catch(() => undefined)));
		await Promise.all(slots.flatMap(n => [n.natsProxy.stop(), n.redisProxy.stop()]));
		if (servers) await Promise.all([servers.nats.stop(), servers.redis.stop(), servers.mosquitto.stop()]);
		logs.close();
		if (passed && !opts.keep) rmSync(dir, { recursive: true, force: true });
		else log(`logs and data kept in ${dir}`);
	}
}

/** GET /api/v1/customers/:id from any live node, retried until a node answers 200 or 404 (null). */
async function readState(nodes: ChaosNode[], id: string): Promise<unknown> {
	for (let attempt = 0; attempt < 40; attempt++) {
		const node = nodes[attempt % nodes.length];
		try {
			const res = await fetch(`${node.baseUrl}/api/v1/customers/${id}`, { headers: { authorization: `Bearer ${CHAOS_API_KEY}` }, signal: AbortSignal.timeout(5_000) });
			const body: unknown = await res.json();
			if (res.status === 200) return body;
			if (res.status === 404) return null;
		} catch {
			// Try the next node.
		}
		await sleep(250);
	}
	throw new Error(`no node answered GET /api/v1/customers/${id}`);
}

/**
 * Carries out one fault. Returns what was done, the node it hit, and when recovery is measured from: the fault
 * itself for a kill, a join and a server restart, its heal for a pause, a delay and a partition.
 */
async function inject(fault: PlannedFault, slots: ChaosNode[], servers: Servers, settings: Parameters<typeof createNode>[1], baseNodes: number, log: (line: string) => void): Promise<{ detail: string; node?: string; t0: number }> {
	const base = slots.filter(n => n.alive());
	const target = NODE_FAULTS.has(fault.kind) ? base[fault.target % base.length] : null;
	const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
	log(`fault #${fault.index}: ${fault.kind}${target ? ` on ${target.id}` : ""}`);
	switch (fault.kind) {
		case "sigkill": {
			const node = target as ChaosNode;
			const t0 = Date.now();
			await node.kill();
			await sleep(fault.holdMs);
			await node.start();
			return { detail: `sigkill ${node.id}, restarted after ${secs(fault.holdMs)}`, node: node.id, t0 };
		}
		case "sigstop": {
			const node = target as ChaosNode;
			node.signal("SIGSTOP");
			await sleep(fault.holdMs);
			node.signal("SIGCONT");
			return { detail: `sigstop ${node.id} for ${secs(fault.holdMs)}`, node: node.id, t0: Date.now() };
		}
		case "delay": {
			const node = target as ChaosNode;
			for (const p of [node.natsProxy, node.redisProxy]) p.setDelay(fault.delayMs ?? 100);
			await sleep(fault.holdMs);
			for (const p of [node.natsProxy, node.redisProxy]) p.heal();
			return { detail: `delay ${fault.delayMs} ms on ${node.id}'s NATS and Redis for ${secs(fault.holdMs)}`, node: node.id, t0: Date.now() };
		}
		case "partition": {
			const node = target as ChaosNode;
			const cut = fault.cut ?? { servers: "both", mode: "drop" };
			const proxies = [...(cut.servers !== "redis" ? [node.natsProxy] : []), ...(cut.servers !== "nats" ? [node.redisProxy] : [])];
			for (const p of proxies) p.cut(cut.mode);
			await sleep(fault.holdMs);
			for (const p of proxies) p.heal();
			return { detail: `partition ${node.id} from ${cut.servers === "both" ? "NATS and Redis" : cut.servers === "nats" ? "NATS" : "Redis"} (${cut.mode}) for ${secs(fault.holdMs)}`, node: node.id, t0: Date.now() };
		}
		case "join": {
			// At most N+1 nodes: the extra slot leaves (a clean stop) before it joins again.
			let joiner = slots.length > baseNodes ? slots[slots.length - 1] : null;
			let detail: string;
			if (joiner && joiner.alive()) {
				await joiner.stop();
				detail = `${joiner.id} left (SIGTERM) and joined again`;
			} else if (joiner) {
				detail = `${joiner.id} joined again`;
			} else {
				joiner = await createNode(slots.length + 1, settings);
				slots.push(joiner);
				detail = `${joiner.id} joined`;
			}
			const t0 = Date.now();
			await joiner.start();
			return { detail, node: joiner.id, t0 };
		}
		case "nats-restart": {
			const t0 = Date.now();
			await servers.nats.stop("SIGTERM");
			await servers.nats.start();
			return { detail: "nats-server restarted (SIGTERM, same port and store)", t0 };
		}
		case "redis-restart": {
			const t0 = Date.now();
			await servers.redis.stop("SIGKILL");
			await servers.redis.start();
			return { detail: "redis-server killed (SIGKILL) and restarted from its append-only file", t0 };
		}
	}
}
