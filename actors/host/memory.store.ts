// In-process ActorStore for tests and throwaway nodes: same contract as the real stores, nothing survives the process.
// Snapshots (ActorWrite.snapshot, the default) and what load returns are deep copies, so a caller can never mutate
// what the store holds. A journal-only write (snapshot: false) comes from the actor host, whose states and entries are
// never mutated once built (the reducer is pure): the store keeps them by reference and copies only when it hands
// them out, so the in-process host pays no copy per event. Nothing to replay: the current state is always held.
import { nextReminderAt, type ActorStore, type ActorWrite, type JournalEntry, type LoadedActor, type ReminderRow, type RiskRow, type WriteResult } from "./actor-store.ts";
import type { CustomerState } from "../../models/customer-state.ts";

export interface MemoryActorStoreOptions {
	/** Entries kept per customer (oldest dropped first); unset keeps all. */
	journalMax?: number;
}

export class MemoryActorStore implements ActorStore {
	readonly kind = "memory";
	readonly shared = false;
	readonly eventSourced = true;
	/** In-process: a batch is applied before the next one starts. */
	readonly chainsWrites = true;
	private readonly journalMax: number;
	private readonly states = new Map<string, CustomerState>();
	/** Oldest first, as appended. */
	private readonly journals = new Map<string, JournalEntry[]>();

	constructor(opts: MemoryActorStoreOptions = {}) {
		this.journalMax = opts.journalMax ?? Infinity;
	}

	async connect(): Promise<void> {}

	async close(): Promise<void> {}

	async load(id: string): Promise<CustomerState | null> {
		const state = this.states.get(id);
		return state === undefined ? null : structuredClone(state);
	}

	async loadMany(ids: readonly string[]): Promise<Array<LoadedActor | null>> {
		return ids.map(id => {
			const state = this.states.get(id);
			return state === undefined ? null : { state: structuredClone(state), sinceSnapshot: 0 };
		});
	}

	async saveBatch(writes: ActorWrite[]): Promise<WriteResult[]> {
		// Clone snapshots first: a write that cannot be cloned fails the batch before any of it is applied.
		const copies = writes.map(w => w.snapshot === false ? w : { id: w.id, expectedVersion: w.expectedVersion, state: structuredClone(w.state), journal: structuredClone(w.journal) });
		return copies.map(w => this.apply(w));
	}

	private apply(w: ActorWrite): WriteResult {
		const current = this.states.get(w.id);
		const currentVersion = current?.version ?? null;
		const journalHead = w.after ? this.journals.get(w.id)?.at(-1) : undefined;
		const matches = (w.expectedVersion === 0 ? current === undefined : currentVersion === w.expectedVersion) &&
			(w.after === undefined || (journalHead !== undefined && journalHead.version === w.after.version && journalHead.key === w.after.key && journalHead.appliedAt === w.after.appliedAt));
		if (!matches) return { id: w.id, ok: false, currentVersion };
		this.states.set(w.id, w.state);
		if (w.journal.length > 0) {
			let journal = this.journals.get(w.id);
			if (!journal) this.journals.set(w.id, journal = []);
			journal.push(...w.journal);
			if (journal.length > this.journalMax) journal.splice(0, journal.length - this.journalMax);
		}
		return { id: w.id, ok: true };
	}

	async journal(id: string, limit: number): Promise<JournalEntry[]> {
		const journal = this.journals.get(id);
		if (!journal || limit <= 0) return [];
		return structuredClone(journal.slice(-limit).reverse());
	}

	async listByRisk(minScore: number, limit: number): Promise<RiskRow[]> {
		const rows: RiskRow[] = [];
		for (const [id, state] of this.states) if (state.risk.score > minScore) rows.push({ id, score: state.risk.score });
		rows.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
		return rows.slice(0, Math.max(0, limit));
	}

	async dueReminders(now: number, limit: number): Promise<ReminderRow[]> {
		const rows: ReminderRow[] = [];
		for (const [id, state] of this.states) {
			const dueAt = nextReminderAt(state);
			if (dueAt !== null && dueAt <= now) rows.push({ id, dueAt });
		}
		rows.sort((a, b) => a.dueAt - b.dueAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
		return rows.slice(0, Math.max(0, limit));
	}

	async count(): Promise<number> {
		return this.states.size;
	}
}
