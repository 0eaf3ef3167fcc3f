// The live state of one customer actor, as held in memory and persisted (one JSON document per customer).

export type ProfileValue = string | number | boolean;

export interface RiskState {
	/** 0–100, the clamped sum of the factors. */
	score: number;
	/** Named contributions in points, e.g. { "order.cancelled": 20, "churn.model": 12 }. */
	factors: Record<string, number>;
}

/** The latest competitor price observation (by event time) and how many were applied: compact by design. */
export interface MarketSummary {
	signals: number;
	/** Event time (ms) of the latest signal. */
	lastSignalAt: number;
	latest: { competitor: string; product: string; price: number; currency: string };
}

export interface CustomerCounters {
	orders: number;
	cancelledOrders: number;
	failedPayments: number;
	interactions: number;
	negativeInteractions: number;
	ticketsOpened: number;
	openTickets: number;
	pageViews: number;
	telemetryReadings: number;
}

export interface CustomerState {
	id: string;
	/** Number of messages applied (events and reminders); persisted saves are compare-and-set on it. */
	version: number;
	/** Event time (ms since epoch) of the first applied event. */
	createdAt: number;
	/** Latest event time (ms) seen; drives inactivity decay. */
	lastActivityAt: number;
	profile: Record<string, ProfileValue>;
	/** Event time (ms) that last wrote each profile field: last-writer-wins by event time. */
	profileTimes: Record<string, number>;
	counters: CustomerCounters;
	/** Ids of open tickets (bounded). */
	openTicketIds: string[];
	/** Latest status per recent order id (bounded). */
	orderStatus: Record<string, string>;
	/** Latest device metrics (bounded number of keys). */
	telemetry: Record<string, number>;
	/** Sentiment (-1..1) of the latest interaction, null before any. */
	lastSentiment: number | null;
	risk: RiskState;
	/** Churn probability 0–1 from the model, null when no model has scored this customer. */
	churnProbability: number | null;
	/** 52-bit hashes of the last applied event keys (source/id), oldest first: the dedup window. */
	recentEventKeys: number[];
	/** Named reminders and when they are due (ms since epoch). */
	reminders: Record<string, number>;
	/** Market signals seen for this customer; absent before the first (and in states saved before they existed). */
	market?: MarketSummary;
	/*
	 * Merge marks (docs/merge.md, actors/customer-merge.ts): absent on a customer never merged, so they cost nothing
	 * on the hot path.
	 */
	/** Sealed: merged into this customer. The actor applies nothing more and redirects every event there. */
	mergedInto?: string;
	/** The risk the customer had when it was sealed (its own `risk` is zeroed so it leaves the risk listing). */
	sealedRisk?: RiskState;
	/** A merge under way into this customer: the one being merged (intent persisted, absorb not yet). */
	mergingFrom?: string;
	/** Every customer merged into this one (directly or through one merged into it), in merge order. */
	aliases?: string[];
}
