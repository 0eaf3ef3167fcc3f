// The customer actors (service `customers`): their actions, what they answer, and the events a customer's actor
// emits after persisting a change.
import type { CloudEvent } from "../cloud-event.ts";
import type { CustomerState } from "../customer-state.ts";
import type { InteractionLoggedData } from "../event-data.schemas.ts";
import { action, event } from "./contract.ts";
import type { ChangeRecord, FactorDelta, FeedPage } from "../change-record.ts";

/** The customer id rule of every per-customer action (the envelope's `subject`). */
export const CUSTOMER_ID = { type: "string", min: 1, max: 128, pattern: /^[A-Za-z0-9][A-Za-z0-9._:@-]*$/ } as const;

export interface HandleParams {
	customerId: string;
	/** Validated by the actor's service before it is applied; a refusal is INVALID_EVENT with { code, reason }. */
	event: CloudEvent;
}

export interface HandleManyParams {
	customerId: string;
	/** Applied in this order and persisted together; 1..1000. */
	events: CloudEvent[];
}

/** What `customers.handle` answers once the change is persisted (one per event for `handleMany`). */
export interface HandleResult {
	/** False when the event was a duplicate (same source + id) and had no effect. */
	applied: boolean;
	version: number;
	riskScore: number;
	/**
	 * Set by the actor host only (never in an answer of `customers.handle`): the customer is sealed, merged into this
	 * one; the service forwards the event there.
	 */
	redirect?: string;
	/** Set for a merge step (customers.mergeStep): what the actor made of it. */
	merge?: MergeReply;
}

/** Why an actor refused a merge step (docs/merge.md). */
export type MergeRefusal =
	/** The customer has never been seen. */
	| "CUSTOMER_NOT_FOUND"
	/** The customer is sealed: merged into `mergedInto`. */
	| "CUSTOMER_MERGED"
	/** The customer is the survivor of another merge that has not finished (`mergingFrom`). */
	| "MERGE_IN_PROGRESS"
	/** A customer merged into itself, or into one that was merged into it. */
	| "INVALID_MERGE"
	/** An absorb of a customer that is not sealed. */
	| "NOT_SEALED";

/** What a merge step did: `done` (persisted), `already` (nothing to do: done before), `refused` (with a code). */
export interface MergeReply {
	status: "done" | "already" | "refused";
	code?: MergeRefusal;
	mergedInto?: string;
	mergingFrom?: string;
}

/** `POST /api/v1/customers/:id/merge { from }` (customers.merge): the survivor after the merge. */
export interface MergeResult {
	/** The customer that now holds both (the requested one, or the one it was merged into: aliases are followed). */
	survivor: string;
	from: string;
	/** False when `from` had already been merged into the survivor (the same request again): nothing changed. */
	merged: boolean;
	version: number;
	riskScore: number;
	aliases: string[];
}

export interface MergeParams {
	customerId: string;
	from: string;
}

/** One step of the merge protocol, told to one actor (internal; customers.merge drives them). */
export type MergeStepParams =
	| { customerId: string; step: "intent"; from: string }
	| { customerId: string; step: "abort"; from: string }
	| { customerId: string; step: "seal"; into: string }
	| { customerId: string; step: "absorb"; from: string };

/** A customer as the API shows it (`customers.get`, `GET /api/v1/customers/:id`). */
export interface CustomerView {
	id: string;
	version: number;
	createdAt: string;
	lastActivityAt: string;
	profile: CustomerState["profile"];
	counters: CustomerState["counters"];
	risk: CustomerState["risk"];
	churnProbability: number | null;
	lastSentiment: number | null;
	openTicketIds: string[];
	telemetry: CustomerState["telemetry"];
	reminders: Record<string, string>;
	/** Customers merged into this one (absent when none). */
	aliases?: string[];
	/** A merge into this customer that has not finished yet. */
	mergingFrom?: string;
	/** The id that was asked for, when it was merged into this customer (a read through an alias). */
	resolvedFrom?: string;
}

export function toCustomerView(s: CustomerState): CustomerView {
	const view = customerView(s);
	if (s.aliases !== undefined) view.aliases = s.aliases;
	if (s.mergingFrom !== undefined) view.mergingFrom = s.mergingFrom;
	return view;
}

function customerView(s: CustomerState): CustomerView {
	return {
		id: s.id,
		version: s.version,
		createdAt: new Date(s.createdAt).toISOString(),
		lastActivityAt: new Date(s.lastActivityAt).toISOString(),
		profile: s.profile,
		counters: s.counters,
		risk: s.risk,
		churnProbability: s.churnProbability,
		lastSentiment: s.lastSentiment,
		openTicketIds: s.openTicketIds,
		telemetry: s.telemetry,
		reminders: Object.fromEntries(Object.entries(s.reminders).map(([k, v]) => [k, new Date(v).toISOString()]))
	};
}

/** One entry of `customers.journal`, newest first. */
export interface JournalEntryView {
	version: number;
	appliedAt: string;
	riskScore: number;
	event: CloudEvent;
}

export interface RiskRow {
	id: string;
	score: number;
}

/** One persisted change of a customer (`customers.changesSince`, the per-customer change stream). */
export interface ChangeView {
	customerId: string;
	version: number;
	appliedAt: string;
	riskScore: number;
	change: ChangeRecord;
}

/** One change of a customer's risk score and why (`customers.riskHistory`, newest first). */
export interface RiskHistoryItem {
	version: number;
	appliedAt: string;
	/** The event that caused it (source + id + type), or the reminder (a decay step). */
	event?: { source: string; id: string; type: string };
	reminder?: string;
	/** The merge step that caused it (docs/merge.md). */
	merge?: { step: "intent" | "abort" | "seal" | "absorb"; from?: string; into?: string };
	oldScore: number;
	newScore: number;
	lineage: FactorDelta[];
}

export interface ChangesSinceParams {
	customerId: string;
	/** Changes with a version above this one. */
	afterVersion: number;
	limit?: number;
}

export interface FeedParams {
	/** FEED_START ("0"): from the oldest kept; FEED_END ("$"): nothing, only the newest cursor. */
	cursor: string;
	limit?: number;
}

/** `customers.inspect`: the owner's in-memory actor next to the persisted state (REPL `customer`). */
export interface InspectResult {
	nodeID: string;
	ownerInView: string;
	members: readonly string[];
	active: boolean;
	memory: CustomerView | null;
	persisted: CustomerView | null;
}

/** `customers.nodeStats`: one node's actor host — its counters as the host reports them — and its place in the cluster. */
export interface NodeStats {
	nodeID: string;
	store: string;
	/** Actors in memory; writes waiting for the next group commit; compare-and-sets lost to another node. */
	active: number;
	pendingWrites: number;
	conflicts: number;
	heapUsedBytes: number;
	rssBytes: number;
	members: readonly string[];
	membershipChanges: number;
	/** Actors released because another node owns them now, and those still held that another node owns. */
	released: number;
	strayActors: number;
	/** Share of 10,000 sample ids this node owns in its view. */
	ownedShare: number;
	/** The host's other counters (activations, passivations, applied, duplicates, commits, snapshots, …). */
	[counter: string]: unknown;
}

export interface PassivateResult {
	customerId: string;
	passivated: boolean;
	nodeID: string;
}

type ById = { customerId: string };

export const Customers = {
	service: "customers",
	handle: action<HandleParams, HandleResult>("customers.handle"),
	handleMany: action<HandleManyParams, HandleResult[]>("customers.handleMany"),
	get: action<ById, CustomerView>("customers.get"),
	journal: action<ById & { limit?: number }, JournalEntryView[]>("customers.journal"),
	changesSince: action<ChangesSinceParams, ChangeView[]>("customers.changesSince"),
	feed: action<FeedParams, FeedPage>("customers.feed"),
	riskHistory: action<ById & { limit?: number }, RiskHistoryItem[]>("customers.riskHistory"),
	listByRisk: action<{ riskAbove?: number; limit?: number }, RiskRow[]>("customers.listByRisk"),
	passivate: action<ById, PassivateResult>("customers.passivate"),
	inspect: action<ById, InspectResult>("customers.inspect"),
	nodeStats: action<Record<string, never>, NodeStats>("customers.nodeStats"),
	merge: action<MergeParams, MergeResult>("customers.merge"),
	mergeStep: action<MergeStepParams, HandleResult>("customers.mergeStep")
} as const;

/** `customer.risk.changed`: every change of a customer's risk score, after it is persisted. */
export interface RiskChanged {
	customerId: string;
	oldScore: number;
	newScore: number;
	factors: Record<string, number>;
	/** Dedup key of the event that caused it, or `reminder:<name>`. */
	cause: string;
}

/** `customer.interaction.logged`: an applied (not duplicate) interaction, for services that follow the mood. */
export type InteractionLogged = InteractionLoggedData & {
	customerId: string;
	/** Event time as an ISO string. */
	time: string;
	/** Dedup key of the event (source/id). */
	cause: string;
};

/**
 * `customer.changes.persisted`: broadcast by a node after group commits that persisted changes (at most one per tick):
 * change streams then read the store's feed. Carries no changes itself: the store is the one ordered source.
 */
export interface ChangesPersisted {
	nodeID: string;
}

/** `customer.merged`: a customer was absorbed by its survivor (after the absorb is persisted). */
export interface CustomerMerged {
	customerId: string;
	from: string;
	aliases: string[];
}

export const CustomerEvents = {
	created: event<{ customerId: string }>("customer.created"),
	changesPersisted: event<ChangesPersisted>("customer.changes.persisted"),
	riskChanged: event<RiskChanged>("customer.risk.changed"),
	interactionLogged: event<InteractionLogged>("customer.interaction.logged"),
	merged: event<CustomerMerged>("customer.merged")
} as const;
