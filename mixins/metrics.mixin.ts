// The crm_* metrics in one place (Prometheus names, types, meaning) and the broker middleware that feeds them on
// every node; it also keeps a small per-node rolling window that the dashboard reads through `$crm-metrics`.
import { MetricReporters } from "moleculer";
import type { Context, Middleware, Service, ServiceBroker, ServiceSchema } from "moleculer";
import type { ActorHost } from "../actors/host/actor-host.ts";
import {
	call, Customers, DeadLetters, NodeMetricsActions, PROCESS_STATES, RuleEvents, Rules, Workflows, type ActorGauges, type HandleResult, type NodeMetricsSnapshot,
	type RateBucket, type RiskDistribution, type SourceCounts
} from "../models/contract/index.ts";
import type { ActorStore } from "../actors/host/actor-store.ts";

type MetricType = "counter" | "gauge" | "histogram";

export interface MetricDefinition {
	name: string;
	type: MetricType;
	labelNames: string[];
	description: string;
	/** Histogram bucket upper bounds (base units). */
	buckets?: number[];
}

const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const REDUCER_BUCKETS_S = [0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01];

/** Names used in code; the table below is the one list of what exists (docs/operations.md mirrors it). */
export const M = {
	eventsReceived: "crm_events_received_total",
	eventsApplied: "crm_events_applied_total",
	eventsDuplicate: "crm_events_duplicate_total",
	eventsFailed: "crm_events_failed_total",
	deadLetters: "crm_dead_letters_total",
	// Counted by every source through its event sink (edge/event.sink.ts).
	sourceItems: "crm_source_items_total",
	activations: "crm_actor_activations_total",
	passivations: "crm_actor_passivations_total",
	conflicts: "crm_actor_conflicts_total",
	actorsActive: "crm_actors_active",
	actorMemory: "crm_actor_memory_bytes",
	mailboxDepth: "crm_mailbox_depth",
	pendingWrites: "crm_actor_pending_writes",
	handleDuration: "crm_handle_duration_seconds",
	applyDuration: "crm_apply_duration_seconds",
	persistDuration: "crm_persist_duration_seconds",
	commitBatch: "crm_persist_batch_writes",
	// Set by services/ingest-nats.service.ts on the node leading the shared consumer.
	jetstreamLag: "crm_jetstream_consumer_lag",
	ruleFirings: "crm_rule_firings_total",
	workflowInstances: "crm_workflow_instances"
} as const;

export const METRIC_DEFINITIONS: readonly MetricDefinition[] = [
	{ name: M.eventsReceived, type: "counter", labelNames: ["source"], description: "Events handed to a customer actor, by ingestion source (api, nats, mqtt, webhook, erp, files, logs, …)" },
	{ name: M.eventsApplied, type: "counter", labelNames: ["source"], description: "Events applied and persisted by their actor" },
	{ name: M.eventsDuplicate, type: "counter", labelNames: ["source"], description: "Events recognised as already applied (same source + id) and acknowledged without effect" },
	{ name: M.eventsFailed, type: "counter", labelNames: ["source", "type"], description: "Calls to the actors that failed, by error type (INVALID_EVENT, VERSION_CONFLICT, STORE_UNAVAILABLE, …)" },
	{ name: M.deadLetters, type: "counter", labelNames: ["source", "reason"], description: "Inputs sent to the dead-letter stream, by source and (normalised) reason" },
	{ name: M.sourceItems, type: "counter", labelNames: ["source", "outcome"], description: "Input items of every source (events, rows, log entries, readings, messages) by outcome: applied, duplicate, dead_lettered, skipped, market_duplicate" },
	{ name: M.activations, type: "counter", labelNames: [], description: "Actors activated (loaded into memory) on this node" },
	{ name: M.passivations, type: "counter", labelNames: [], description: "Actors passivated (dropped from memory: idle timeout, LRU cap, moved to another node)" },
	{ name: M.conflicts, type: "counter", labelNames: [], description: "Writes that lost their compare-and-set (another node wrote the customer); re-routed" },
	{ name: M.actorsActive, type: "gauge", labelNames: [], description: "Customer actors in memory on this node" },
	{ name: M.actorMemory, type: "gauge", labelNames: [], description: "Estimated bytes held by this node's active actors (sampled serialized state size x active)" },
	{ name: M.mailboxDepth, type: "gauge", labelNames: [], description: "Events accepted by this node's actors and not yet persisted and acknowledged" },
	{ name: M.pendingWrites, type: "gauge", labelNames: [], description: "Actor writes waiting for the next group commit" },
	{ name: M.handleDuration, type: "histogram", labelNames: ["source"], buckets: LATENCY_BUCKETS_S, description: "Time from an event reaching its actor's node to its persisted acknowledgement" },
	{ name: M.applyDuration, type: "histogram", labelNames: [], buckets: REDUCER_BUCKETS_S, description: "Time one message spends in the actor's reducer (the turn, without persistence)" },
	{ name: M.persistDuration, type: "histogram", labelNames: [], buckets: LATENCY_BUCKETS_S, description: "Time of one group commit in the actor store" },
	{ name: M.commitBatch, type: "histogram", labelNames: [], buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000], description: "Writes per group commit" },
	{ name: M.jetstreamLag, type: "gauge", labelNames: [], description: "Messages of CRM_EVENTS not yet acknowledged by the ingest consumer (reported by the node leading it)" },
	{ name: M.ruleFirings, type: "counter", labelNames: ["rule"], description: "Rules fired: the ticket-routing rule that assigned or queued a ticket, and the risk-threshold rule" },
	{ name: M.workflowInstances, type: "gauge", labelNames: ["state"], description: "Workflow (BPMN) process instances by state, as the node's workflows service lists them (at most 1000 per state)" }
];

/** Actions the middleware watches; everything else passes through untouched. */
const HANDLE_ACTIONS: ReadonlySet<string> = new Set([Customers.handle.name, Customers.handleMany.name]);
const THRESHOLD_RULE = "risk.threshold";
const WORKFLOWS_EVERY_MS = 15_000;
/** Rolling window kept per node for the dashboard: 60 buckets of 10 s. */
export const RATE_BUCKET_MS = 10_000;
export const RATE_BUCKETS = 60;
const COLLECT_EVERY_MS = 1000;
/** Active actors whose serialized size is sampled for the memory estimate. */
const MEMORY_SAMPLE = 64;
/** Per-actor bookkeeping beside the state itself (mailbox record, map entry). */
const ACTOR_OVERHEAD_BYTES = 150;
/** Distinct dead-letter reasons kept per source before the rest count as "other" (label cardinality). */
const MAX_REASONS_PER_SOURCE = 40;

/**
 * The ingestion source of a call, from the calling service's name: `ingest-nats` → `nats`, `api` → `api`.
 * A call without a calling service (a script, the REPL) is `direct`.
 */
export function sourceOfCaller(caller: string | null | undefined): string {
	if (!caller) return "direct";
	const name = caller.replace(/^v[\d.]+\./, "");
	return name.startsWith("ingest-") ? name.slice("ingest-".length) : name;
}

/**
 * A dead-letter reason as a bounded label: quoted values and numbers are elided so "data.orderId must be …" from
 * a thousand different inputs is one series, and long texts are cut.
 */
export function reasonLabel(reason: unknown): string {
	const text = typeof reason === "string" ? reason : reason === undefined || reason === null ? "unknown" : String(reason);
	const normal = text
		.replace(/"[^"]*"|'[^']*'/g, "\"…\"")
		.replace(/\d+(\.\d+)?/g, "N")
		.replace(/\s+/g, " ")
		.trim();
	return (normal.length > 80 ? `${normal.slice(0, 79)}…` : normal) || "unknown";
}

/** Per-node counters and a rolling window of 10-s buckets; plain data, no Moleculer. */
export class NodeMetrics {
	private readonly now: () => number;
	readonly bySource = new Map<string, SourceCounts>();
	readonly deadLetters = new Map<string, Map<string, number>>();
	private readonly buckets: RateBucket[] = [];
	mailboxDepth = 0;

	constructor(now: () => number = Date.now) {
		this.now = now;
	}

	private counts(source: string): SourceCounts {
		let c = this.bySource.get(source);
		if (!c) {
			c = { received: 0, applied: 0, duplicates: 0, failed: 0 };
			this.bySource.set(source, c);
		}
		return c;
	}

	private bucket(): RateBucket {
		const t = Math.floor(this.now() / RATE_BUCKET_MS) * RATE_BUCKET_MS;
		const last = this.buckets[this.buckets.length - 1];
		if (last && last.t === t) return last;
		const b: RateBucket = { t, received: {}, deadLetters: {} };
		this.buckets.push(b);
		const oldest = t - (RATE_BUCKETS - 1) * RATE_BUCKET_MS;
		while (this.buckets.length > 0 && this.buckets[0].t < oldest) this.buckets.shift();
		return b;
	}

	received(source: string, n: number): void {
		this.counts(source).received += n;
		const b = this.bucket();
		b.received[source] = (b.received[source] ?? 0) + n;
	}

	settled(source: string, applied: number, duplicates: number): void {
		const c = this.counts(source);
		c.applied += applied;
		c.duplicates += duplicates;
	}

	failed(source: string, n: number): void {
		this.counts(source).failed += n;
	}

	/** Counts a dead letter; returns the reason label it was counted under (bounded per source). */
	deadLetter(source: string, reason: unknown): string {
		let reasons = this.deadLetters.get(source);
		if (!reasons) {
			reasons = new Map();
			this.deadLetters.set(source, reasons);
		}
		let label = reasonLabel(reason);
		if (!reasons.has(label) && reasons.size >= MAX_REASONS_PER_SOURCE) label = "other";
		reasons.set(label, (reasons.get(label) ?? 0) + 1);
		const b = this.bucket();
		b.deadLetters[source] = (b.deadLetters[source] ?? 0) + 1;
		return label;
	}

	/** Buckets of the last RATE_BUCKETS × RATE_BUCKET_MS, oldest first, with empty ones filled in. */
	window(): RateBucket[] {
		const end = Math.floor(this.now() / RATE_BUCKET_MS) * RATE_BUCKET_MS;
		const byT = new Map(this.buckets.map(b => [b.t, b]));
		const out: RateBucket[] = [];
		for (let t = end - (RATE_BUCKETS - 1) * RATE_BUCKET_MS; t <= end; t += RATE_BUCKET_MS) {
			const b = byT.get(t);
			out.push(b ? { t, received: { ...b.received }, deadLetters: { ...b.deadLetters } } : { t, received: {}, deadLetters: {} });
		}
		return out;
	}
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

export function riskHistogram(scores: Iterable<number>): number[] {
	const h = new Array<number>(10).fill(0);
	for (const s of scores) h[Math.min(9, Math.max(0, Math.floor(s / 10)))]++;
	return h;
}

const RISK_SCAN_CAP = 200_000;

/**
 * Per-node internal service (created by the middleware on every node, whatever SERVICES says): the dashboard
 * reads each node's counters and rolling window, and the risk distribution from a node that hosts the actors.
 */
function nodeMetricsService(metrics: NodeMetrics, gauges: () => ActorGauges | null, store: () => ActorStore | null): ServiceSchema {
	return {
		name: NodeMetricsActions.service,
		actions: {
			snapshot: {
				visibility: "public",
				handler(this: Service): NodeMetricsSnapshot {
					const mem = process.memoryUsage();
					return {
						nodeID: this.broker.nodeID,
						at: Date.now(),
						bySource: Object.fromEntries(metrics.bySource),
						deadLetters: Object.fromEntries([...metrics.deadLetters].map(([s, r]) => [s, Object.fromEntries(r)])),
						mailboxDepth: metrics.mailboxDepth,
						rate: { bucketMs: RATE_BUCKET_MS, buckets: metrics.window() },
						actors: gauges(),
						process: { heapUsedBytes: mem.heapUsed, rssBytes: mem.rss, uptimeSeconds: Math.round(process.uptime()) }
					};
				}
			},
			riskDistribution: {
				visibility: "public",
				async handler(this: Service): Promise<RiskDistribution | null> {
					const s = store();
					if (!s) return null;
					const [total, rows] = await Promise.all([s.count(), s.listByRisk(-1, RISK_SCAN_CAP)]);
					return { nodeID: this.broker.nodeID, total, covered: rows.length, histogram: riskHistogram(rows.map(r => r.score)) };
				}
			}
		}
	};
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
				// crm_dead_letters_total itself is counted by the dead-letters service; this feeds the dashboard's window.
				return function deadLetterCounted(ctx: Context) {
					const p = ctx.params as { source?: unknown; reason?: unknown; reasonCode?: unknown };
					return next(ctx).then(res => {
						metrics.deadLetter(typeof p.source === "string" ? p.source : "unknown", typeof p.reasonCode === "string" ? p.reasonCode : p.reason);
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


interface HistogramItem { labels: Record<string, unknown>; count: number; sum: number; buckets?: Record<string, number> }

/**
 * Moleculer's Prometheus reporter writes a histogram's `_sum` and `_count` only when quantiles are on (and then
 * adds summary-style quantile lines that do not belong in a histogram), and orders integer bucket bounds first.
 * This one keeps quantiles off and writes every histogram as Prometheus expects: buckets by `le`, then `_sum` and
 * `_count`, so `rate(x_sum)/rate(x_count)` and `histogram_quantile` both work.
 */
export class PrometheusReporter extends MetricReporters.Prometheus {
	override generatePrometheusResponse(): string {
		let text = super.generatePrometheusResponse();
		const self = this as unknown as {
			registry: { store: Map<string, { name: string; type: string; quantiles?: unknown; snapshot(): HistogramItem[] }> };
			matchMetricName(name: string): boolean;
			formatMetricName(name: string): string;
		};
		for (const metric of self.registry.store.values()) {
			if (metric.type !== "histogram" || metric.quantiles || !self.matchMetricName(metric.name)) continue;
			const name = self.formatMetricName(metric.name).replace(/[.-]/g, "_");
			for (const item of metric.snapshot()) {
				const buckets = item.buckets;
				if (!buckets) continue;
				const line = (le: string) => `${name}_bucket${this.labelsToStr(item.labels, { le })} ${buckets[le] ?? "NaN"}`;
				const inf = `${name}_bucket${this.labelsToStr(item.labels, { le: "+Inf" })} ${item.count}`;
				const written = [...Object.keys(buckets).map(line), inf].join("\n");
				const fixed = [
					...Object.keys(buckets).sort((a, b) => Number(a) - Number(b)).map(line), inf,
					`${name}_sum${this.labelsToStr(item.labels)} ${item.sum}`,
					`${name}_count${this.labelsToStr(item.labels)} ${item.count}`
				].join("\n");
				text = text.replace(written, () => fixed);
			}
		}
		return text;
	}
}
