// The compact record of one persisted change of a customer (one per version): what caused it, which top-level fields
// it changed and, when the risk factors moved, the score before and after with the lineage of every factor delta.
// The reducer builds it, the host journals it with its entry, and change streams and the risk history read it back.

/** Where a rule lives: the rule file (rules/risk.nools, or actors/risk.ts for the built-in table) and its name. */
export interface RuleCause {
	kind: "rule";
	file: string;
	rule: string;
}

/** The churn model artifact that scored the customer. */
export interface ModelCause {
	kind: "model";
	/** File name of the artifact (e.g. churn-telco.json). */
	artifact: string;
	/** When it was trained (the artifact's createdAt). */
	trainedAt: string;
	/** SHA-256 of the artifact file, hex. */
	sha256: string;
}

/** The derived open-tickets factor, recomputed from the number of open tickets. */
export interface TicketsCause {
	kind: "tickets.open";
	openTickets: number;
}

/** An inactivity decay step, delivered by a reminder. */
export interface DecayCause {
	kind: "decay";
	reminder: string;
}

/** A customer merge: the factor moved because the survivor took in the merged customer's factors (docs/merge.md). */
export interface MergeCause {
	kind: "merge";
	from: string;
}

export type LineageCause = RuleCause | ModelCause | TicketsCause | DecayCause | MergeCause;

/** One factor that moved: by how many points (new − old, the factor's effective change) and why. */
export interface FactorDelta {
	factor: string;
	delta: number;
	cause: LineageCause;
}

export interface RiskChange {
	old: number;
	new: number;
	/** One item per factor whose value changed, in factor order. */
	lineage: FactorDelta[];
}

/** What applied the change: an event (its dedup key parts and type) or one of the actor's reminders. */
export type ChangeCause =
	| { event: { source: string; id: string; type: string }; reminder?: undefined; merge?: undefined }
	| { reminder: string; event?: undefined; merge?: undefined }
	/** A step of a customer merge (docs/merge.md): `from` the merged customer, `into` the survivor. */
	| { merge: { step: "intent" | "abort" | "seal" | "absorb"; from?: string; into?: string }; event?: undefined; reminder?: undefined };

export interface ChangeRecord {
	/** The customer's version after this change (the per-customer cursor of change streams). */
	version: number;
	cause: ChangeCause;
	/** Top-level state fields whose value changed (bookkeeping such as the dedup window and the version left out). */
	fields: string[];
	/** Present when any risk factor moved (the score may stay the same). */
	risk?: RiskChange;
}

/** A change as the store-wide feed hands it out: its position in the feed, whose change it is and the score after. */
export interface FeedItem {
	/** Opaque, ordered within one store: the SSE id of the store-wide stream. */
	cursor: string;
	customerId: string;
	version: number;
	/** Risk score after the change. */
	riskScore: number;
	/** When the actor applied it (ms since epoch). */
	appliedAt: number;
	change: ChangeRecord;
}

export interface FeedPage {
	items: FeedItem[];
	/** The cursor to read on from: the last item's, or the one given when there was nothing new. */
	cursor: string;
	/**
	 * True when the given cursor is older than the oldest change the store still keeps: changes between the two are
	 * lost to the feed's bound (the client has to re-read the customers it cares about).
	 */
	trimmed: boolean;
}

/** The cursor before any change: reading from it returns the feed from its oldest kept change. */
export const FEED_START = "0";
/** Asks for the newest cursor only (no items): where a client that wants only what comes next starts. */
export const FEED_END = "$";

/**
 * Orders two feed cursors: numbers ("17") or Redis stream ids ("1700000000000-3"), compared part by part as integers.
 * Negative when a is older.
 */
export function compareCursors(a: string, b: string): number {
	const [a1, a2 = "0"] = a.split("-");
	const [b1, b2 = "0"] = b.split("-");
	const d1 = BigInt(a1) - BigInt(b1);
	if (d1 !== 0n) return d1 < 0n ? -1 : 1;
	const d2 = BigInt(a2) - BigInt(b2);
	return d2 === 0n ? 0 : d2 < 0n ? -1 : 1;
}

/** Whether a string is a well-formed feed cursor (what a client may send back as Last-Event-ID). */
export function isCursor(s: string): boolean {
	return /^\d{1,20}(?:-\d{1,20})?$/.test(s);
}
