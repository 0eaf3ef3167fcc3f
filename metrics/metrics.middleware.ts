// The broker middleware that feeds the crm_* metrics (metrics/catalogue.ts) on every node: events per source around
// customers.handle, dead letters, rule firings, the actor host's timings and gauges; it also creates the node's
// `$crm-metrics` service (metrics/node-metrics.service.ts) the dashboard reads.
import type { Context, Middleware, Service, ServiceBroker } from "moleculer";
import type { ActorHost } from "../actors/host/actor-host.ts";
import type { ActorStore } from "../actors/host/actor-store.ts";
import { call, Customers, DeadLetters, PROCESS_STATES, RuleEvents, Rules, Workflows, type ActorGauges, type DeadLetter, type HandleResult } from "../models/contract/index.ts";
import { reasonLabel } from "../models/dead-letter-reason.ts";
import { M, METRIC_DEFINITIONS } from "./catalogue.ts";
import { NodeMetrics, nodeMetricsService } from "./node-metrics.service.ts";

/** Actions the middleware watches; everything else passes through untouched. */
const HANDLE_ACTIONS: ReadonlySet<string> = new Set([Customers.handle.name, Customers.handleMany.name]);
const THRESHOLD_RULE = "risk.threshold";
const WORKFLOWS_EVERY_MS = 15_000;

const COLLECT_EVERY_MS = 1000;
/** Active actors whose serialized size is sampled for the memory estimate. */
const MEMORY_SAMPLE = 64;
/** Per-actor bookkeeping beside the state itself (mailbox record, map entry). */
const ACTOR_OVERHEAD_BYTES = 150;

/**
 * The ingestion source of a call, from the calling service's name: `ingest-nats` → `nats`, `api` → `api`.
 * A call without a calling service (a script, the REPL) is `direct`.
 */
export function sourceOfCaller(caller: string | null | undefined): string {
	if (!caller) return "direct";
	const name = caller.replace(/^v[\d.]+\./, "");
	return name.startsWith("ingest-") ? name.slice("ingest-".length) : name;
}

/** Duck type of the customers service instance (mixins/sharded-actor.mixin.ts): what the collector reads. */
interface ActorService {
	host: ActorHost;
	store: ActorStore;
}

function actorServiceOf(service: Service | undefined | null): ActorService | null {
	const s = service as unknown as Partial<ActorService> | null | undefined;
	return s && s.host && typeof s.host.activeIds === "function" && s.store ? (s as ActorService) : null;
}

/** Estimated bytes of the active actors: the mean serialized size of a sample, times the number active. */
export function estimateActorMemory(host: Pick<ActorHost, "activeIds" | "peek">): number {
	const ids = host.activeIds();
	if (ids.length === 0) return 0;
	const step = Math.max(1, Math.floor(ids.length / MEMORY_SAMPLE));
	let bytes = 0;
	let sampled = 0;
	for (let i = 0; i < ids.length && sampled < MEMORY_SAMPLE; i += step) {
		const state = host.peek(ids[i]);
		if (!state) continue;
		bytes += JSON.stringify(state).length;
		sampled++;
	}
	const mean = sampled === 0 ? 0 : bytes / sampled;
	return Math.round((mean + ACTOR_OVERHEAD_BYTES) * ids.length);
}

/** The Moleculer metrics registry when metrics are on, else null: every update goes through this guard. */
type Registry = ServiceBroker["metrics"];

function safely(fn: () => void): void {
	try {
		fn();
	} catch {
		// A metric update must never break the path it measures.
	}
}

export interface MetricsMiddlewareOptions {
	now?: () => number;
	/** For tests: reach into the per-node counters. */
	onCreated?: (metrics: NodeMetrics) => void;
}

/**
 * Broker middleware: counts events per source around `customers.handle`/`handleMany` (by the caller's service
 * name), dead letters around `deadLetters.record`, attaches timing hooks to the local actor host, refreshes the
 * actor gauges every second, and registers the per-node `$crm-metrics` service. The crm_* Moleculer metrics are
 * only touched when the broker's metrics are enabled (METRICS_PORT); the per-node window always runs (it is what
 * the dashboard shows).
 */
export function MetricsMiddleware(opts: MetricsMiddlewareOptions = {}): Middleware {
	const metrics = new NodeMetrics(opts.now);
	opts.onCreated?.(metrics);
	let registry: Registry | null = null;
	let actorService: ActorService | null = null;
	let timer: NodeJS.Timeout | null = null;
	let workflowsTimer: NodeJS.Timeout | null = null;
	const last = { activations: 0, passivations: 0, conflicts: 0 };
	let gauges: ActorGauges | null = null;

	const collect = () => {
		const svc = actorService;
		if (!svc) return;
		const st = svc.host.stats;
		gauges = {
			active: st.active, activations: st.activations, passivations: st.passivations, conflicts: st.conflicts,
			pendingWrites: st.pendingWrites, memoryEstimateBytes: estimateActorMemory(svc.host)
		};
		const reg = registry;
		if (!reg) return;
		safely(() => {
			reg.increment(M.activations, undefined, st.activations - last.activations);
			reg.increment(M.passivations, undefined, st.passivations - last.passivations);
			reg.increment(M.conflicts, undefined, st.conflicts - last.conflicts);
			reg.set(M.actorsActive, st.active);
			reg.set(M.pendingWrites, st.pendingWrites);
			reg.set(M.actorMemory, gauges?.memoryEstimateBytes ?? 0);
			reg.set(M.mailboxDepth, metrics.mailboxDepth);
		});
		last.activations = st.activations;
		last.passivations = st.passivations;
		last.conflicts = st.conflicts;
	};

	const attach = (service: Service) => {
		const svc = actorServiceOf(service);
		if (!svc || service.name !== "customers") return;
		actorService = svc;
		const reg = registry;
		if (!reg) return;
		svc.host.observer = {
			onApply: ms => safely(() => reg.observe(M.applyDuration, ms / 1000)),
			onCommit: (batchSize, ms) => safely(() => {
				reg.observe(M.persistDuration, ms / 1000);
				reg.observe(M.commitBatch, batchSize);
			})
		};
	};

	return {
		name: "CrmMetrics",
		created(b: ServiceBroker) {
			if (b.isMetricsEnabled()) {
				registry = b.metrics;
				for (const def of METRIC_DEFINITIONS) {
					// Another module may have registered it first (e.g. the dead-letters service): keep theirs.
					if (registry.hasMetric(def.name)) continue;
					const base = { name: def.name, labelNames: def.labelNames, description: def.description };
					if (def.type === "histogram") registry.register({ ...base, type: "histogram", buckets: def.buckets, quantiles: false });
					else if (def.type === "counter") registry.register({ ...base, type: "counter" });
					else registry.register({ ...base, type: "gauge" });
				}
				// Gauges read as 0 rather than absent until the first collection, so dashboards see the series at once.
				for (const name of [M.actorsActive, M.actorMemory, M.mailboxDepth, M.pendingWrites]) safely(() => registry?.set(name, 0));
			}
			b.createService(nodeMetricsService(metrics, () => gauges, () => actorService?.store ?? null));
		},
		serviceStarted(service: Service) {
			attach(service);
			return Promise.resolve();
		},
		started(b: ServiceBroker) {
			timer = setInterval(collect, COLLECT_EVERY_MS);
			timer.unref();
			collect();
			if (registry) {
				const reg = registry;
				workflowsTimer = setInterval(() => void countWorkflows(b, reg), WORKFLOWS_EVERY_MS);
				workflowsTimer.unref();
				void countWorkflows(b, reg);
			}
			return Promise.resolve();
		},
		// Before the services stop: a collection must not call into a service that is shutting down.
		stopping() {
			if (timer) clearInterval(timer);
			if (workflowsTimer) clearInterval(workflowsTimer);
			timer = null;
			workflowsTimer = null;
			return Promise.resolve();
		},
		emit(next: ServiceBroker["emit"]) {
			return function emitCounted(this: ServiceBroker, eventName: string, ...rest: unknown[]) {
				const reg = registry;
				if (reg && eventName === RuleEvents.thresholdCrossed.name) safely(() => reg.increment(M.ruleFirings, { rule: THRESHOLD_RULE }));
				return (next as (name: string, ...args: unknown[]) => Promise<void>).call(this, eventName, ...rest);
			};
		},
		localAction(next: (ctx: Context) => Promise<unknown>, action: { name: string }) {
			if (action.name === DeadLetters.record.name) {
				// crm_dead_letters_total itself is counted by the dead-letters service; this feeds the dashboard's window, under
				// the label the dead letter was stored with.
				return function deadLetterCounted(ctx: Context) {
					const p = ctx.params as { source?: unknown; reason?: unknown; reasonCode?: unknown };
					return next(ctx).then(res => {
						const stored = (res as Partial<DeadLetter> | null)?.reasonCode;
						metrics.deadLetter(typeof p.source === "string" ? p.source : "unknown", typeof stored === "string" ? stored : reasonLabel(p.reason, p.reasonCode));
						return res;
					});
				};
			}
			if (action.name === Rules.route.name) {
				return function routeCounted(ctx: Context) {
					return next(ctx).then(res => {
						const rule = (res as { rule?: unknown } | null)?.rule;
						const reg = registry;
						if (reg && typeof rule === "string") safely(() => reg.increment(M.ruleFirings, { rule }));
						return res;
					});
				};
			}
			if (!HANDLE_ACTIONS.has(action.name)) return next;
			return function handleCounted(ctx: Context) {
				// A re-route after a lost compare-and-set calls the action again from the customers service itself:
				// the outer call already counts that event.
				if (ctx.caller === Customers.service) return next(ctx);
				const source = sourceOfCaller(ctx.caller);
				const p = ctx.params as { events?: unknown[] };
				const n = Array.isArray(p.events) ? p.events.length : 1;
				const t0 = performance.now();
				metrics.received(source, n);
				metrics.mailboxDepth += n;
				const reg = registry;
				if (reg) safely(() => reg.increment(M.eventsReceived, { source }, n));
				return next(ctx).then(
					res => {
						metrics.mailboxDepth -= n;
						const results = (Array.isArray(res) ? res : [res]) as HandleResult[];
						let applied = 0;
						for (const r of results) if (r && r.applied) applied++;
						const duplicates = results.length - applied;
						metrics.settled(source, applied, duplicates);
						if (reg) safely(() => {
							if (applied > 0) reg.increment(M.eventsApplied, { source }, applied);
							if (duplicates > 0) reg.increment(M.eventsDuplicate, { source }, duplicates);
							reg.observe(M.handleDuration, (performance.now() - t0) / 1000, { source });
						});
						return res;
					},
					(err: unknown) => {
						metrics.mailboxDepth -= n;
						metrics.failed(source, n);
						const type = (err as { type?: unknown }).type;
						if (reg) safely(() => reg.increment(M.eventsFailed, { source, type: typeof type === "string" ? type : "ERROR" }, n));
						throw err;
					}
				);
			};
		}
	} as unknown as Middleware;
}

/** Instances per state from this node's workflows service, when it runs here. */
async function countWorkflows(broker: ServiceBroker, reg: Registry): Promise<void> {
	if (!broker.getLocalService(Workflows.service)) return;
	for (const state of PROCESS_STATES) {
		if (!broker.started) return;
		try {
			const list = await call(broker, Workflows.processes, { state, limit: 1000 }, { nodeID: broker.nodeID, timeout: 5000, retries: 0 });
			safely(() => reg.set(M.workflowInstances, Array.isArray(list) ? list.length : 0, { state }));
		} catch {
			// The engine may still be starting: the next round tries again.
		}
	}
}
