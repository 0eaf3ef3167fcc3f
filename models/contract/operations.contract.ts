// Operating a node: the per-node metrics service every node runs (`$crm-metrics`, read by the dashboard) and the
// dashboard's own answers.
import { action } from "./contract.ts";

export interface SourceCounts {
	received: number;
	applied: number;
	duplicates: number;
	failed: number;
}

export interface RateBucket {
	/** Start of the bucket, ms since epoch. */
	t: number;
	/** Events received per source in the bucket. */
	received: Record<string, number>;
	deadLetters: Record<string, number>;
}

export interface ActorGauges {
	active: number;
	activations: number;
	passivations: number;
	conflicts: number;
	pendingWrites: number;
	memoryEstimateBytes: number;
}

export interface NodeMetricsSnapshot {
	nodeID: string;
	at: number;
	bySource: Record<string, SourceCounts>;
	deadLetters: Record<string, Record<string, number>>;
	mailboxDepth: number;
	rate: { bucketMs: number; buckets: RateBucket[] };
	/** Null on a node that does not host customer actors. */
	actors: ActorGauges | null;
	process: { heapUsedBytes: number; rssBytes: number; uptimeSeconds: number };
}

export interface RiskDistribution {
	nodeID: string;
	/** Customers in the store. */
	total: number;
	/** Customers the histogram covers (the highest `cap` scores when there are more). */
	covered: number;
	/** 10 buckets: [0,10), [10,20), …, [90,100]. */
	histogram: number[];
}

export const NodeMetricsActions = {
	service: "$crm-metrics",
	snapshot: action<Record<string, never>, NodeMetricsSnapshot>("$crm-metrics.snapshot"),
	riskDistribution: action<Record<string, never>, RiskDistribution | null>("$crm-metrics.riskDistribution")
} as const;

export interface DashboardNode {
	nodeID: string;
	hostname: string | null;
	local: boolean;
	services: string[];
	hostsCustomers: boolean;
	/** Share of the customer key space this node owns (0–1), null when it hosts no actors. */
	ownedShare: number | null;
	activeActors: number | null;
	memoryEstimateBytes: number | null;
	heapUsedBytes: number | null;
	rssBytes: number | null;
	mailboxDepth: number | null;
	received: number;
	applied: number;
	duplicates: number;
	failed: number;
	store: string | null;
	/** False when the node did not answer in time. */
	reachable: boolean;
}

export interface DeadLetterSummary {
	available: boolean;
	/** Dead letters kept (the newest `DEAD_LETTER_SCAN` are scanned). */
	scanned: number;
	byReason: Array<{ source: string; reason: string; count: number; ids: string[] }>;
	recent: Array<{ id: string; source: string; reason: string; recordedAt: string | null }>;
	/** Counted by the nodes since they started, per source (includes letters already retried). */
	countedSinceStart: Record<string, number>;
}

export interface DashboardSummary {
	generatedAt: string;
	nodes: DashboardNode[];
	sources: string[];
	rate: { bucketMs: number; buckets: Array<{ t: number; bySource: Record<string, number> }> };
	totals: {
		received: number; applied: number; duplicates: number; failed: number; activeActors: number; customers: number | null;
		/** Since the nodes started, summed over the nodes. */
		bySource: Record<string, { received: number; applied: number; duplicates: number; failed: number }>;
	};
	risk: {
		total: number | null;
		covered: number | null;
		histogram: number[] | null;
		top: Array<{ id: string; score: number; factors: Record<string, number>; churnProbability: number | null }>;
	};
	deadLetters: DeadLetterSummary;
}

export const Dashboard = {
	service: "dashboard",
	summary: action<Record<string, never>, DashboardSummary>("dashboard.summary")
} as const;
