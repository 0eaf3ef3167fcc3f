// Embedded single-node ActorStore: NeDB files (customers.db, journal.db) opened through moleculer-db's MemoryAdapter.
// Not shared: only the process that opened the files sees their writes, so cluster mode must not use it.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import DbService from "moleculer-db";
import type { Service, ServiceBroker } from "moleculer";
import { DEFAULT_FEED_MAX, nextReminderAt, type ActorStore, type ActorWrite, type JournalEntry, type LoadedActor, type ReminderRow, type RiskRow, type WriteResult } from "../actors/host/actor-store.ts";
import type { CustomerState } from "../models/customer-state.ts";
import { FEED_END, FEED_START, type FeedItem, type FeedPage } from "../models/change-record.ts";

export interface StoreLogger {
	info(...args: unknown[]): void;
	warn(...args: unknown[]): void;
	error(...args: unknown[]): void;
}

export interface NedbActorStoreOptions {
	/** Directory of customers.db and journal.db (created if missing). */
	dir: string;
	/** NeDB only appends; compaction rewrites each file without superseded lines. */
	compactionIntervalMs?: number;
	/** Changes kept in the store-wide feed (changes.db); older ones are removed at compaction. */
	feedMax?: number;
	logger?: StoreLogger;
}

/**
 * One line per customer. NeDB rejects field names containing "." (risk factors such as "order.cancelled" have one,
 * so may profile keys), so the state is kept as its JSON text; the queried fields sit beside it.
 */
interface CustomerDoc {
	_id: string;
	version: number;
	state: string;
	riskScore: number;
	/** Absent when the customer has no reminder (the index is sparse). */
	nextReminderAt?: number;
}

interface JournalDoc {
	customerId: string;
	version: number;
	/** The whole JournalEntry as JSON, for the same field-name reason. */
	entry: string;
}

/** One change of the store-wide feed: its sequence number (the cursor) and the FeedItem as JSON, without the cursor. */
interface ChangeDoc {
	seq: number;
	item: string;
}

/**
 * The part of NeDB's Datastore this store uses. The adapter brings its own @seald-io/nedb (3.x), whose typings are
 * not reachable from here; its promise API is the same as the 4.x one.
 */
interface NedbCursor<T> extends PromiseLike<T[]> {
	sort(spec: Record<string, 1 | -1>): NedbCursor<T>;
	limit(n: number): NedbCursor<T>;
}

interface Nedb<T> {
	ensureIndexAsync(options: { fieldName: string; unique?: boolean; sparse?: boolean }): Promise<void>;
	compactDatafileAsync(): Promise<void>;
	findOneAsync(query: object, projection?: Record<string, 0 | 1>): Promise<T | null>;
	findAsync(query: object, projection?: Record<string, 0 | 1>): NedbCursor<T>;
	countAsync(query: object): PromiseLike<number>;
	insertAsync(doc: T): Promise<T>;
	insertAsync(docs: T[]): Promise<T[]>;
	updateAsync(query: object, update: T, options: { multi?: boolean; upsert?: boolean }): Promise<{ numAffected: number }>;
	removeAsync(query: object, options: { multi?: boolean }): Promise<number>;
}

const DEFAULTS = { compactionIntervalMs: 60_000, feedMax: DEFAULT_FEED_MAX };

/** Without a logger a failed background compaction still shows up on stderr. */
const defaultLogger: StoreLogger = { info() {}, warn: console.warn, error: console.error };

export class NedbActorStore implements ActorStore {
	readonly kind = "nedb";
	readonly shared = false;
	/** The simple path: every write carries the whole state (NeDB appends a line per write either way). */
	readonly eventSourced = false;
	/** Kept simple: the host waits for each write. */
	readonly chainsWrites = false;
	private readonly dir: string;
	private readonly compactionIntervalMs: number;
	private readonly logger: StoreLogger;
	private customers: Nedb<CustomerDoc> | null = null;
	private journalDb: Nedb<JournalDoc> | null = null;
	private changesDb: Nedb<ChangeDoc> | null = null;
	/** The last sequence number given to a change (one process writes these files). */
	private feedSeq = 0;
	private readonly feedMax: number;
	private compactionTimer: NodeJS.Timeout | null = null;

	constructor(opts: NedbActorStoreOptions) {
		if (!opts.dir) throw new Error("NedbActorStore: option `dir` is required");
		this.dir = opts.dir;
		this.compactionIntervalMs = opts.compactionIntervalMs ?? DEFAULTS.compactionIntervalMs;
		this.feedMax = opts.feedMax ?? DEFAULTS.feedMax;
		this.logger = opts.logger ?? defaultLogger;
	}

	async connect(): Promise<void> {
		await mkdir(this.dir, { recursive: true });
		this.customers = await this.openFile<CustomerDoc>("customers.db");
		this.journalDb = await this.openFile<JournalDoc>("journal.db");
		this.changesDb = await this.openFile<ChangeDoc>("changes.db");
		await this.changesDb.ensureIndexAsync({ fieldName: "seq", unique: true });
		const [newest] = await this.changesDb.findAsync({}, { seq: 1 }).sort({ seq: -1 }).limit(1);
		this.feedSeq = newest ? newest.seq : 0;
		await this.journalDb.ensureIndexAsync({ fieldName: "version" });
		await this.customers.ensureIndexAsync({ fieldName: "riskScore" });
		await this.customers.ensureIndexAsync({ fieldName: "nextReminderAt", sparse: true });
		await this.journalDb.ensureIndexAsync({ fieldName: "customerId" });
		// NeDB's own autocompaction timer is not unref'd and would keep a finished process alive.
		this.compactionTimer = setInterval(() => void this.compact(), this.compactionIntervalMs);
		this.compactionTimer.unref();
	}

	/** Opens one file the way a moleculer-db service would, and keeps the adapter's NeDB datastore. */
	private async openFile<T extends object>(name: string): Promise<Nedb<T>> {
		const adapter = new DbService.MemoryAdapter({ filename: join(this.dir, name) });
		// The adapter only keeps these references; connect() does not use them.
		adapter.init({ logger: this.logger } as unknown as ServiceBroker, { logger: this.logger, name: `actor-store:${name}` } as unknown as Service);
		await adapter.connect();
		return (adapter as unknown as { db: Nedb<T> }).db;
	}

	private async compact(): Promise<void> {
		try {
			if (this.changesDb && this.feedSeq > this.feedMax) await this.changesDb.removeAsync({ seq: { $lte: this.feedSeq - this.feedMax } }, { multi: true });
			await Promise.all([this.customers?.compactDatafileAsync(), this.journalDb?.compactDatafileAsync(), this.changesDb?.compactDatafileAsync()]);
		} catch (err) {
			this.logger.error("NeDB actor store: compaction failed", err);
		}
	}

	async close(): Promise<void> {
		if (this.compactionTimer) clearInterval(this.compactionTimer);
		this.compactionTimer = null;
		if (!this.customers || !this.journalDb) return;
		const { customers, journal, changes } = this.dbs();
		this.customers = null;
		this.journalDb = null;
		this.changesDb = null;
		// Leave compact files behind: the next open then reads one line per customer instead of every version.
		await Promise.all([customers.compactDatafileAsync(), journal.compactDatafileAsync(), changes.compactDatafileAsync()]);
	}

	private dbs(): { customers: Nedb<CustomerDoc>; journal: Nedb<JournalDoc>; changes: Nedb<ChangeDoc> } {
		if (!this.customers || !this.journalDb || !this.changesDb) throw new Error("NedbActorStore: not connected (call connect() first)");
		return { customers: this.customers, journal: this.journalDb, changes: this.changesDb };
	}

	async load(id: string): Promise<CustomerState | null> {
		const doc = await this.dbs().customers.findOneAsync({ _id: id });
		return doc ? JSON.parse(doc.state) as CustomerState : null;
	}

	async loadMany(ids: readonly string[]): Promise<Array<LoadedActor | null>> {
		const docs = await this.dbs().customers.findAsync({ _id: { $in: ids } });
		const byId = new Map(docs.map(d => [d._id, d]));
		return ids.map(id => {
			const doc = byId.get(id);
			return doc ? { state: JSON.parse(doc.state) as CustomerState, sinceSnapshot: 0 } : null;
		});
	}

	async saveBatch(writes: ActorWrite[]): Promise<WriteResult[]> {
		const { customers, journal, changes } = this.dbs();
		// All compare-and-sets are queued at once: NeDB's executor runs them in this order, one file append each.
		const results = await Promise.all(writes.map(w => this.casOne(customers, w)));
		const entries: JournalDoc[] = [];
		const feed: ChangeDoc[] = [];
		// Sequence numbers are taken here, synchronously, and the inserts queued in the same order: NeDB's executor runs
		// them in that order, so a reader (queued behind them) never sees a later change without the earlier ones.
		writes.forEach((w, i) => {
			if (!results[i].ok) return;
			for (const e of w.journal) {
				entries.push({ customerId: e.customerId, version: e.version, entry: JSON.stringify(e) });
				if (e.change !== undefined) {
					feed.push({ seq: ++this.feedSeq, item: JSON.stringify({ customerId: e.customerId, version: e.version, riskScore: e.riskScore, appliedAt: e.appliedAt, change: e.change }) });
				}
			}
		});
		// After the states: a crash in between loses journal lines, never acknowledges an unsaved state.
		await Promise.all([entries.length > 0 ? journal.insertAsync(entries) : null, feed.length > 0 ? changes.insertAsync(feed) : null]);
		return results;
	}

	private async casOne(customers: Nedb<CustomerDoc>, w: ActorWrite): Promise<WriteResult> {
		const doc = toDoc(w);
		if (w.expectedVersion === 0) {
			try {
				await customers.insertAsync(doc);
				return { id: w.id, ok: true };
			} catch (err) {
				if ((err as { errorType?: string }).errorType !== "uniqueViolated") throw err;
			}
		} else {
			const { numAffected } = await customers.updateAsync({ _id: w.id, version: w.expectedVersion }, doc, {});
			if (numAffected === 1) return { id: w.id, ok: true };
		}
		const current = await customers.findOneAsync({ _id: w.id }, { version: 1 });
		return { id: w.id, ok: false, currentVersion: current ? current.version : null };
	}

	async journal(id: string, limit: number): Promise<JournalEntry[]> {
		if (limit <= 0) return [];
		const docs = await this.dbs().journal.findAsync({ customerId: id }).sort({ version: -1 }).limit(limit);
		return docs.map(d => JSON.parse(d.entry) as JournalEntry);
	}

	async journalSince(id: string, afterVersion: number, limit: number): Promise<JournalEntry[]> {
		if (limit <= 0) return [];
		const docs = await this.dbs().journal.findAsync({ customerId: id, version: { $gt: afterVersion } }).sort({ version: 1 }).limit(limit);
		return docs.map(d => JSON.parse(d.entry) as JournalEntry);
	}

	async changesSince(cursor: string, limit: number): Promise<FeedPage> {
		const { changes } = this.dbs();
		if (cursor === FEED_END) return { items: [], cursor: String(this.feedSeq), trimmed: false };
		const after = cursor === FEED_START ? 0 : Number(cursor);
		if (limit <= 0) return { items: [], cursor, trimmed: false };
		const [docs, oldest] = await Promise.all([
			changes.findAsync({ seq: { $gt: after } }).sort({ seq: 1 }).limit(limit),
			after > 0 ? changes.findAsync({}, { seq: 1 }).sort({ seq: 1 }).limit(1) : Promise.resolve([])
		]);
		const items: FeedItem[] = docs.map(d => ({ cursor: String(d.seq), ...(JSON.parse(d.item) as Omit<FeedItem, "cursor">) }));
		const trimmed = oldest.length > 0 && oldest[0].seq > after + 1;
		return { items, cursor: items.length > 0 ? items[items.length - 1].cursor : cursor, trimmed };
	}

	async listByRisk(minScore: number, limit: number): Promise<RiskRow[]> {
		if (limit <= 0) return [];
		const docs = await this.dbs().customers.findAsync({ riskScore: { $gt: minScore } }, { riskScore: 1 })
			.sort({ riskScore: -1, _id: 1 }).limit(limit);
		return docs.map(d => ({ id: d._id, score: d.riskScore }));
	}

	async dueReminders(now: number, limit: number): Promise<ReminderRow[]> {
		if (limit <= 0) return [];
		const docs = await this.dbs().customers.findAsync({ nextReminderAt: { $lte: now } }, { nextReminderAt: 1 })
			.sort({ nextReminderAt: 1, _id: 1 }).limit(limit);
		return docs.map(d => ({ id: d._id, dueAt: d.nextReminderAt as number }));
	}

	async count(): Promise<number> {
		return this.dbs().customers.countAsync({});
	}
}

function toDoc(w: ActorWrite): CustomerDoc {
	const doc: CustomerDoc = { _id: w.id, version: w.state.version, state: JSON.stringify(w.state), riskScore: w.state.risk.score };
	const dueAt = nextReminderAt(w.state);
	if (dueAt !== null) doc.nextReminderAt = dueAt;
	return doc;
}
