// The persistence contract of the actor host (ARCHITECTURE §5): load, compare-and-set save with journal, queries.
// Event-sourced stores (eventSourced = true) keep the journal as the source of truth and the state as a snapshot
// written only now and then (ActorWrite.snapshot); load rebuilds the current state as snapshot + journal tail.
import type { KnownCloudEvent } from "../../models/event-data.schemas.ts";
import type { CustomerState } from "../../models/customer-state.ts";
import type { ChangeRecord, FeedPage } from "../../models/change-record.ts";
import type { MergeMessage } from "../customer-actor.types.ts";

interface JournalEntryBase {
	customerId: string;
	/** State version right after this message was applied: every version has exactly one entry. */
	version: number;
	/** Dedup key `source/id` of an event; `reminder:<name>` for a reminder. */
	key: string;
	/** When the actor applied it (ms since epoch). */
	appliedAt: number;
	/** Risk score after the message. */
	riskScore: number;
	/** What changed and why (absent only in entries written before change records existed). */
	change?: ChangeRecord;
}

/** An applied event: the validated event (stores hand back what they were given). */
export interface EventJournalEntry extends JournalEntryBase {
	event: KnownCloudEvent;
	reminder?: undefined;
	merge?: undefined;
}

/** An applied reminder (e.g. a risk decay step): replayed with its appliedAt as the clock. */
export interface ReminderJournalEntry extends JournalEntryBase {
	reminder: string;
	event?: undefined;
	merge?: undefined;
}

/** An applied step of a customer merge (actors/customer-merge.ts); an absorb carries the absorbed sealed state. */
export interface MergeJournalEntry extends JournalEntryBase {
	merge: MergeMessage;
	event?: undefined;
	reminder?: undefined;
}

export type JournalEntry = EventJournalEntry | ReminderJournalEntry | MergeJournalEntry;

export interface ActorWrite {
	id: string;
	/** The version the store must hold for the save to succeed; 0 means "the customer must not exist yet". */
	expectedVersion: number;
	state: CustomerState;
	/** Entries appended to the customer's journal in the same atomic write, oldest first. */
	journal: JournalEntry[];
	/**
	 * Whether `state` is written as the customer's snapshot. Absent or true: always. False (only for a store whose
	 * `eventSourced` is true): the store appends the journal, moves the version and the indexes (risk score, next
	 * reminder) from `state`, and keeps the older snapshot; `journal` must then hold one entry per version since
	 * `expectedVersion`, so that snapshot + journal tail replays to `state`.
	 */
	snapshot?: boolean;
	/**
	 * The state at `expectedVersion`, when the writer holds it: a store may skip index updates (risk score, next
	 * reminder) whose value did not change. Ignored for an insert (expectedVersion 0).
	 */
	base?: CustomerState;
	/**
	 * Set when the write is sent while the write it builds on is not acknowledged yet (only to a store whose
	 * `chainsWrites` is true): that write's newest journal entry. The store must hold exactly this entry as the
	 * customer's newest, not only the expected version, so a write chained on one that lost its compare-and-set
	 * can never land on another writer's equal version.
	 */
	after?: JournalEntry;
}

/** What an activation reads: the current state and how many journal entries it was replayed from past the snapshot. */
export interface LoadedActor {
	state: CustomerState;
	/** Events persisted after the stored snapshot (0 when the snapshot is current). */
	sinceSnapshot: number;
}

export type WriteResult =
	| { id: string; ok: true }
	| { id: string; ok: false; currentVersion: number | null };

export interface RiskRow {
	id: string;
	score: number;
}

export interface ReminderRow {
	id: string;
	dueAt: number;
}

/** Changes a store-wide feed keeps when its store is not told otherwise (STREAM_FEED_MAX sets it for a node). */
export const DEFAULT_FEED_MAX = 100_000;

export interface ActorStore {
	/** Short name for logs and metrics: memory, nedb, redis, mongo. */
	readonly kind: string;
	/** True when other nodes can share this store (cluster mode refuses a store that is not). */
	readonly shared: boolean;
	/**
	 * True when saveBatch accepts journal-only writes (`snapshot: false`) and load still returns the current state
	 * (by replaying the journal tail, or because the store keeps the current state anyway).
	 */
	readonly eventSourced: boolean;
	/**
	 * True when writes sent in one order are applied in that order (one connection, one process): the host may then
	 * send an actor's next write before the previous one is acknowledged, fenced by `ActorWrite.after`.
	 */
	readonly chainsWrites: boolean;
	connect(): Promise<void>;
	close(): Promise<void>;
	/** The current state, or null for a customer never written. */
	load(id: string): Promise<CustomerState | null>;
	/** Batched activation: the current state of each id (null: never written), in the order of `ids`, in one round trip. */
	loadMany(ids: readonly string[]): Promise<Array<LoadedActor | null>>;
	/** Group commit: every write is a compare-and-set on its own customer; results are in the order of `writes`. */
	saveBatch(writes: ActorWrite[]): Promise<WriteResult[]>;
	/** Newest first. */
	journal(id: string, limit: number): Promise<JournalEntry[]>;
	/**
	 * The entries of one customer with a version above `afterVersion`, oldest first, at most `limit`: what a change
	 * stream resumes from. Entries trimmed by the store's journal bound are missing (the first returned is then above
	 * afterVersion + 1).
	 */
	journalSince(id: string, afterVersion: number, limit: number): Promise<JournalEntry[]>;
	/**
	 * The store-wide feed of change records, in commit order, after `cursor` (FEED_START: from the oldest kept), at
	 * most `limit`. Every persisted journal entry that carries a change record is in it once. FEED_END returns no
	 * items and the newest cursor (FEED_START when the feed is empty).
	 */
	changesSince(cursor: string, limit: number): Promise<FeedPage>;
	/** Customers with a risk score strictly above `minScore`, highest first. */
	listByRisk(minScore: number, limit: number): Promise<RiskRow[]>;
	/** Customers with a reminder due at or before `now`, earliest first. */
	dueReminders(now: number, limit: number): Promise<ReminderRow[]>;
	/** Number of customers stored. */
	count(): Promise<number>;
}

/** Earliest reminder of a state, or null: what stores index for `dueReminders`. */
export function nextReminderAt(state: CustomerState): number | null {
	let next: number | null = null;
	for (const dueAt of Object.values(state.reminders)) if (next === null || dueAt < next) next = dueAt;
	return next;
}
