// The per-node metrics every node keeps whatever SERVICES says, and the internal service (`$crm-metrics`) the dashboard
// reads them through: counters per source, a rolling window of 10-s buckets, dead letters by reason, the actor gauges
// and the risk distribution of the store.
import type { Service, ServiceSchema } from "moleculer";
import type { ActorStore } from "../actors/host/actor-store.ts";
import {
	NodeMetricsActions, type ActorGauges, type NodeMetricsSnapshot, type RateBucket, type RiskDistribution, type SourceCounts
} from "../models/contract/index.ts";

/** Rolling window kept per node for the dashboard: 60 buckets of 10 s. */
export const RATE_BUCKET_MS = 10_000;
export const RATE_BUCKETS = 60;
/** Distinct dead-letter reasons kept per source before the rest count as "other" (label cardinality). */
const MAX_REASONS_PER_SOURCE = 40;

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

	/** Counts a dead letter under its label (models/dead-letter-reason.ts); returns the label counted (bounded per source). */
	deadLetter(source: string, reasonCode: string): string {
		let reasons = this.deadLetters.get(source);
		if (!reasons) {
			reasons = new Map();
			this.deadLetters.set(source, reasons);
		}
		let label = reasonCode;
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
export function nodeMetricsService(metrics: NodeMetrics, gauges: () => ActorGauges | null, store: () => ActorStore | null): ServiceSchema {
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
