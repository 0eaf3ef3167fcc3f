// In-process ActorStore for tests and throwaway nodes: same contract as the real stores, nothing survives the process.
// Snapshots (ActorWrite.snapshot, the default) and what load returns are deep copies, so a caller can never mutate
// what the store holds. A journal-only write (snapshot: false) comes from the actor host, whose states and entries are
// never mutated once built (the reducer is pure): the store keeps them by reference and copies only when it hands
// them out, so the in-process host pays no copy per event. Nothing to replay: the current state is always held.
import { DEFAULT_FEED_MAX, nextReminderAt, type ActorStore, type ActorWrite, type JournalEntry, type LoadedActor, type ReminderRow, type RiskRow, type WriteResult } from "../actors/host/actor-store.ts";
import type { CustomerState } from "../models/customer-state.ts";
import { FEED_END, FEED_START, type FeedItem, type FeedPage } from "../models/change-record.ts";

export interface MemoryActorStoreOptions {
	/** Entries kept per customer (oldest dropped first); unset keeps all. */
	journalMax?: number;
	/** Changes kept in the store-wide feed (oldest dropped first). Default DEFAULT_FEED_MAX. */
	feedMax?: number;
}

/** Changes the in-process feed keeps by default. */

/** One customer as the store holds it: the current state and its journal, oldest first. */
interface Stored {
	state: CustomerState;
	journal: JournalEntry[];
}

export class MemoryActorStore implements ActorStore {
	readonly kind = "memory";
	readonly shared = false;
	readonly eventSourced = true;
	/** In-process: a batch is applied before the next one starts. */
	readonly chainsWrites = true;
	private readonly journalMax: number;
	/** One map lookup per write: the state and the journal of a customer together. */
	private readonly customers = new Map<string, Stored>();
	/** The store-wide feed: journal entries with a change record, in commit order; entry i has sequence feedFirst + i. */
	private feed: JournalEntry[] = [];
	private feedFirst = 1;
	private readonly feedMax: number;

	constructor(opts: MemoryActorStoreOptions = {}) {
		this.journalMax = opts.journalMax ?? Infinity;
		this.feedMax = opts.feedMax ?? DEFAULT_FEED_MAX;
	}

	async connect(): Promise<void> {}

	async close(): Promise<void> {}

	async load(id: string): Promise<CustomerState | null> {
		const stored = this.customers.get(id);
		return stored === undefined ? null : structuredClone(stored.state);
	}

	async loadMany(ids: readonly string[]): Promise<Array<LoadedActor | null>> {
		return ids.map(id => {
			const stored = this.customers.get(id);
			return stored === undefined ? null : { state: structuredClone(stored.state), sinceSnapshot: 0 };
		});
	}

	async saveBatch(writes: ActorWrite[]): Promise<WriteResult[]> {
		// Clone snapshots first: a write that cannot be cloned fails the batch before any of it is applied.
		const copies = new Array<ActorWrite>(writes.length);
		for (let i = 0; i < writes.length; i++) {
			const w = writes[i];
			copies[i] = w.snapshot === false ? w : { id: w.id, expectedVersion: w.expectedVersion, state: structuredClone(w.state), journal: structuredClone(w.journal), after: w.after };
		}
		const results = new Array<WriteResult>(copies.length);
		for (let i = 0; i < copies.length; i++) results[i] = this.apply(copies[i]);
		return results;
	}

	private apply(w: ActorWrite): WriteResult {
		const stored = this.customers.get(w.id);
		const currentVersion = stored === undefined ? null : stored.state.version;
		const journalHead = w.after && stored !== undefined ? stored.journal.at(-1) : undefined;
		const matches = (w.expectedVersion === 0 ? stored === undefined : currentVersion === w.expectedVersion) &&
			(w.after === undefined || (journalHead !== undefined && journalHead.version === w.after.version && journalHead.key === w.after.key && journalHead.appliedAt === w.after.appliedAt));
		if (!matches) return { id: w.id, ok: false, currentVersion };
		if (stored === undefined) {
			this.customers.set(w.id, { state: w.state, journal: w.journal.length > 0 ? w.journal.slice() : [] });
		} else {
			stored.state = w.state;
			if (w.journal.length > 0) {
				const journal = stored.journal;
				for (const e of w.journal) journal.push(e);
				if (journal.length > this.journalMax) journal.splice(0, journal.length - this.journalMax);
			}
		}
		for (const e of w.journal) if (e.change !== undefined) this.feed.push(e);
		if (this.feed.length > this.feedMax * 1.25) {
			// Trimmed in steps, not per entry: one copy per feedMax/4 changes.
			const drop = this.feed.length - this.feedMax;
			this.feed = this.feed.slice(drop);
			this.feedFirst += drop;
		}
		return { id: w.id, ok: true };
	}

	async journalSince(id: string, afterVersion: number, limit: number): Promise<JournalEntry[]> {
		const journal = this.customers.get(id)?.journal;
		if (!journal || limit <= 0) return [];
		const out: JournalEntry[] = [];
		for (const e of journal) {
			if (e.version <= afterVersion) continue;
			out.push(e);
			if (out.length >= limit) break;
		}
		return structuredClone(out);
	}

	async changesSince(cursor: string, limit: number): Promise<FeedPage> {
		if (cursor === FEED_END) return { items: [], cursor: this.feed.length === 0 ? FEED_START : String(this.feedFirst + this.feed.length - 1), trimmed: false };
		const after = cursor === FEED_START ? 0 : Number(cursor);
		const from = Math.max(0, after + 1 - this.feedFirst);
		const items: FeedItem[] = [];
		for (let i = from; i < this.feed.length && items.length < limit; i++) {
			const e = this.feed[i];
			items.push(structuredClone({ cursor: String(this.feedFirst + i), customerId: e.customerId, version: e.version, riskScore: e.riskScore, appliedAt: e.appliedAt, change: e.change! }));
		}
		return { items, cursor: items.length > 0 ? items[items.length - 1].cursor : cursor, trimmed: after > 0 && after + 1 < this.feedFirst };
	}

	async journal(id: string, limit: number): Promise<JournalEntry[]> {
		const journal = this.customers.get(id)?.journal;
		if (!journal || limit <= 0) return [];
		return structuredClone(journal.slice(-limit).reverse());
	}

	async listByRisk(minScore: number, limit: number): Promise<RiskRow[]> {
		const rows: RiskRow[] = [];
		for (const [id, { state }] of this.customers) if (state.risk.score > minScore) rows.push({ id, score: state.risk.score });
		rows.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
		return rows.slice(0, Math.max(0, limit));
	}

	async dueReminders(now: number, limit: number): Promise<ReminderRow[]> {
		const rows: ReminderRow[] = [];
		for (const [id, { state }] of this.customers) {
			const dueAt = nextReminderAt(state);
			if (dueAt !== null && dueAt <= now) rows.push({ id, dueAt });
		}
		rows.sort((a, b) => a.dueAt - b.dueAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
		return rows.slice(0, Math.max(0, limit));
	}

	async count(): Promise<number> {
		return this.customers.size;
	}
}
