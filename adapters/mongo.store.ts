// Shared ActorStore on MongoDB (official driver). A batch is one unordered bulkWrite of compare-and-sets per round plus
// one insertMany of journal history; loadMany is one find.
// Layout:
//   customers  { _id, version, state, tail, riskScore, nextReminderAt, writeToken }: `state` is the snapshot (null when
//              the customer has none yet), `tail` the JSON of the journal entries written after it (oldest first),
//              `version` always the current version (the snapshot's plus the tail's length), the compare-and-set key.
//              A snapshot write replaces the document (tail: []); a journal-only write ($push to the tail) only moves
//              version, indexes and token, so snapshot and tail change in one single-document atomic update.
//              Documents written before the tail existed have no `tail`: read as [].
//   journal    one document per entry, unique on (customerId, version): history for journal(), written after the
//              customers and not read by load (the customer's own tail is what load replays).
//   changes    the store-wide change feed: { _id: sequence number, item (FeedItem JSON without cursor), at }, numbers
//              taken from the counter document { _id: "changes", seq } of `counters` (one $inc per batch), expired
//              after feedMaxAgeMs by a TTL index. Nodes insert their ranges concurrently, so a reader stops at a hole
//              in the sequence (a batch still being inserted) and skips it only once it is older than FEED_HOLE_MS
//              (a writer that died between taking its numbers and inserting them).
// Event-sourced (with a `replay`): load = replay(snapshot, tail) when the tail is non-empty. Without `replay` every
// write carries its snapshot, tails stay empty and a journal-only write is refused.
import { randomUUID } from "node:crypto";
import { MongoBulkWriteError, MongoClient, type AnyBulkWriteOperation, type Collection } from "mongodb";
import { nextReminderAt, type ActorStore, type ActorWrite, type JournalEntry, type LoadedActor, type ReminderRow, type RiskRow, type WriteResult } from "../actors/host/actor-store.ts";
import type { CustomerState } from "../models/customer-state.ts";
import type { Replay } from "../actors/host/replay.ts";
import { FEED_END, FEED_START, type FeedItem, type FeedPage } from "../models/change-record.ts";

export interface MongoActorStoreOptions {
	url: string;
	/** Defaults to the database named in the URL, else "crm". */
	dbName?: string;
	/** Rebuilds a state from snapshot + journal tail; given, the store is event-sourced (accepts journal-only writes). */
	replay?: Replay;
	/** Where warnings (such as a very long tail) go (at most one line per 10 s); stderr when absent. */
	logger?: { warn(...args: unknown[]): void };
	/** How long the change feed keeps a change (TTL index). Default 7 days. */
	feedMaxAgeMs?: number;
}

interface ChangeDoc {
	_id: number;
	item: string;
	at: Date;
}

interface CounterDoc {
	_id: string;
	seq: number;
}

/** A hole in the feed's sequence older than this is a lost range (its writer died), not a batch still being inserted. */
const FEED_HOLE_MS = 5000;

interface CustomerDoc {
	_id: string;
	version: number;
	/**
	 * Stored as a document, so it must be written with insert/replace (never $set): state keys may contain "."
	 * (risk factors such as "order.cancelled"), which MongoDB 5.0+ accepts in stored documents but not in update paths.
	 */
	state: CustomerState | null;
	/**
	 * JSON of the journal entries written after `state`, oldest first; absent on documents written before it existed.
	 * Strings, not subdocuments: an event's data may hold any keys ("." or "$" in them), which update operators such as
	 * $push may refuse in the values they write, and a string reads back exactly as the entry was written.
	 */
	tail?: string[];
	riskScore: number;
	/** null without reminders (a $lte on a number never matches null). */
	nextReminderAt: number | null;
	/** Which save wrote this version: tells, after an unordered bulk, which compare-and-sets matched. */
	writeToken: string;
}

type JournalDoc = JournalEntry;

const DUPLICATE_KEY = 11000;

/**
 * A tail this long means the host never writes snapshots (or cannot): load still replays it, correctness first, but
 * says so, since every activation pays for the whole tail and the document heads for MongoDB's 16 MB limit.
 */
const LONG_TAIL = 10_000;
const WARN_INTERVAL_MS = 10_000;

/** The database named in a mongodb:// or mongodb+srv:// URL, if any (URL() cannot parse multi-host lists). */
function dbNameFromUrl(url: string): string | null {
	const m = /^mongodb(?:\+srv)?:\/\/[^/]+\/([^?]+)/.exec(url);
	return m ? decodeURIComponent(m[1]) : null;
}

export class MongoActorStore implements ActorStore {
	readonly kind = "mongo";
	readonly shared = true;
	readonly eventSourced: boolean;
	/** Bulk writes on a connection pool may be applied out of order: the host waits for each write. */
	readonly chainsWrites = false;
	private readonly replay: Replay | undefined;
	private readonly logger: { warn(...args: unknown[]): void };
	private lastWarn = 0;
	private readonly client: MongoClient;
	private readonly dbName: string;
	private customers: Collection<CustomerDoc> | null = null;
	private journalColl: Collection<JournalDoc> | null = null;
	private changes: Collection<ChangeDoc> | null = null;
	private counters: Collection<CounterDoc> | null = null;
	private readonly feedMaxAgeMs: number;
	/** Where a hole in the feed was first seen (sequence number → ms), to skip it once it is old. */
	private readonly holes = new Map<number, number>();

	constructor(opts: MongoActorStoreOptions) {
		if (!opts.url) throw new Error("MongoActorStore: option `url` is required");
		this.dbName = opts.dbName ?? dbNameFromUrl(opts.url) ?? "crm";
		this.replay = opts.replay;
		this.eventSourced = opts.replay !== undefined;
		this.logger = opts.logger ?? console;
		this.client = new MongoClient(opts.url);
		this.feedMaxAgeMs = opts.feedMaxAgeMs ?? 7 * 24 * 3600 * 1000;
	}

	async connect(): Promise<void> {
		await this.client.connect();
		const db = this.client.db(this.dbName);
		const customers = db.collection<CustomerDoc>("customers");
		const journal = db.collection<JournalDoc>("journal");
		await Promise.all([
			customers.createIndexes([
				{ key: { riskScore: -1 }, name: "riskScore" },
				{ key: { nextReminderAt: 1 }, name: "nextReminderAt" }
			]),
			journal.createIndex({ customerId: 1, version: 1 }, { unique: true, name: "customerId_version" }),
			db.collection<ChangeDoc>("changes").createIndex({ at: 1 }, { expireAfterSeconds: Math.ceil(this.feedMaxAgeMs / 1000), name: "at_ttl" })
		]);
		this.customers = customers;
		this.journalColl = journal;
		this.changes = db.collection<ChangeDoc>("changes");
		this.counters = db.collection<CounterDoc>("counters");
	}

	async close(): Promise<void> {
		this.customers = null;
		this.journalColl = null;
		this.changes = null;
		this.counters = null;
		await this.client.close();
	}

	private colls(): { customers: Collection<CustomerDoc>; journal: Collection<JournalDoc> } {
		if (!this.customers || !this.journalColl) throw new Error("MongoActorStore: not connected (call connect() first)");
		return { customers: this.customers, journal: this.journalColl };
	}

	async load(id: string): Promise<CustomerState | null> {
		const [loaded] = await this.loadMany([id]);
		return loaded ? loaded.state : null;
	}

	async loadMany(ids: readonly string[]): Promise<Array<LoadedActor | null>> {
		if (ids.length === 0) return [];
		// One document holds snapshot and tail, so each customer is read consistently without a transaction.
		const docs = await this.colls().customers
			.find({ _id: { $in: [...new Set(ids)] } }, { projection: { state: 1, tail: 1 } })
			.toArray();
		const byId = new Map(docs.map(d => [d._id, d]));
		return ids.map(id => {
			const doc = byId.get(id);
			return doc ? this.rebuild(id, doc.state, doc.tail ?? []) : null;
		});
	}

	private rebuild(id: string, snapshot: CustomerState | null, tailJson: readonly string[]): LoadedActor | null {
		if (tailJson.length === 0) return snapshot ? { state: snapshot, sinceSnapshot: 0 } : null;
		if (!this.replay) throw new Error(`Mongo actor store: customer ${id} has ${tailJson.length} journal entries past its snapshot and this store has no replay`);
		if (tailJson.length > LONG_TAIL) this.warn(`Mongo actor store: customer ${id} has ${tailJson.length} journal entries past its snapshot (is the host writing snapshots?)`);
		const tail = tailJson.map(json => JSON.parse(json) as JournalEntry);
		return { state: this.replay(id, snapshot, tail), sinceSnapshot: tail.length };
	}

	private warn(line: string): void {
		const now = Date.now();
		if (now - this.lastWarn < WARN_INTERVAL_MS) return;
		this.lastWarn = now;
		this.logger.warn(line);
	}

	async saveBatch(writes: ActorWrite[]): Promise<WriteResult[]> {
		const { journal } = this.colls();
		// Before anything is written: a refused write must not leave the rest of the batch half saved.
		for (const w of writes) {
			if (w.snapshot === false && !this.eventSourced) throw new Error(`Mongo actor store: a journal-only write of customer ${w.id}, but this store has no replay`);
		}
		const results: WriteResult[] = new Array(writes.length);
		// An unordered bulk may reorder operations: a customer written twice in one batch goes in successive rounds.
		const rounds: number[][] = [];
		const seen = new Map<string, number>();
		writes.forEach((w, i) => {
			const round = seen.get(w.id) ?? 0;
			seen.set(w.id, round + 1);
			(rounds[round] ??= []).push(i);
		});
		for (const round of rounds) await this.saveRound(writes, round, results);

		const entries: JournalDoc[] = [];
		writes.forEach((w, i) => {
			if (results[i].ok) for (const e of w.journal) entries.push({ ...e });
		});
		// After the states: a crash in between loses journal entries, never acknowledges an unsaved state.
		if (entries.length > 0) {
			try {
				await journal.insertMany(entries, { ordered: false });
			} catch (err) {
				// An entry already there (same customer and version) is the same event: keep going.
				if (!(err instanceof MongoBulkWriteError) || writeErrorCodes(err).some(c => c !== DUPLICATE_KEY)) throw err;
			}
			await this.appendFeed(entries);
		}
		return results;
	}

	/**
	 * Compare-and-sets the writes at `indexes` (distinct customers) in one unordered bulkWrite: an insert when the
	 * customer must not exist yet, else a replace (snapshot write) or a $push to the tail (journal-only write), both
	 * filtered on the expected version.
	 */
	private async saveRound(writes: ActorWrite[], indexes: number[], results: WriteResult[]): Promise<void> {
		const { customers } = this.colls();
		const token = randomUUID();
		const ops: AnyBulkWriteOperation<CustomerDoc>[] = indexes.map(i => {
			const w = writes[i];
			const journalOnly = w.snapshot === false;
			// A first write without entries has nothing to replay: its state goes in as the snapshot, so no document is
			// left with neither.
			if (w.expectedVersion === 0) return { insertOne: { document: journalOnly && w.journal.length > 0 ? toTailDoc(w, token) : toDoc(w, token) } };
			const filter = { _id: w.id, version: w.expectedVersion };
			if (!journalOnly) return { replaceOne: { filter, replacement: toDoc(w, token) } };
			// Never $set the state (its keys may contain "."): only the version, the indexes and the token move.
			return {
				updateOne: {
					filter,
					update: {
						$set: { version: w.state.version, riskScore: w.state.risk.score, nextReminderAt: nextReminderAt(w.state), writeToken: token },
						$push: { tail: { $each: w.journal.map(e => JSON.stringify(e)) } }
					}
				}
			};
		});
		// Replaces and updates both count in matchedCount (every matched one changes at least version and token).
		const replaces = indexes.filter(i => writes[i].expectedVersion !== 0).length;
		const duplicates = new Set<number>();
		let matched: number;
		try {
			matched = (await customers.bulkWrite(ops, { ordered: false })).matchedCount;
		} catch (err) {
			if (!(err instanceof MongoBulkWriteError)) throw err;
			const writeErrors = asArray(err.writeErrors);
			if (writeErrors.length === 0 || writeErrors.some(e => e.code !== DUPLICATE_KEY)) throw err;
			for (const e of writeErrors) duplicates.add(e.index);
			matched = err.result.matchedCount;
		}

		// The bulk result only counts matches; when some replace/update missed, the token says which ones landed.
		const unsure: number[] = [];
		indexes.forEach((i, k) => {
			const w = writes[i];
			if (w.expectedVersion === 0 ? duplicates.has(k) : matched < replaces) unsure.push(i);
			else results[i] = { id: w.id, ok: true };
		});
		if (unsure.length === 0) return;
		const found = await customers
			.find({ _id: { $in: unsure.map(i => writes[i].id) } }, { projection: { version: 1, writeToken: 1 } })
			.toArray();
		const byId = new Map(found.map(d => [d._id, d]));
		for (const i of unsure) {
			const w = writes[i];
			const doc = byId.get(w.id);
			const landed = w.expectedVersion !== 0 && doc?.writeToken === token;
			results[i] = landed ? { id: w.id, ok: true } : { id: w.id, ok: false, currentVersion: doc ? doc.version : null };
		}
	}

	async journal(id: string, limit: number): Promise<JournalEntry[]> {
		if (limit <= 0) return [];
		const docs = await this.colls().journal
			.find({ customerId: id }, { projection: { _id: 0 } })
			.sort({ version: -1 })
			.limit(limit)
			.toArray();
		return docs as JournalEntry[];
	}

	/** Numbers a batch's changes with one $inc of the counter and inserts them (in commit order within the batch). */
	private async appendFeed(entries: readonly JournalEntry[]): Promise<void> {
		const withChange = entries.filter(e => e.change !== undefined);
		if (withChange.length === 0 || !this.changes || !this.counters) return;
		const counter = await this.counters.findOneAndUpdate({ _id: "changes" }, { $inc: { seq: withChange.length } }, { upsert: true, returnDocument: "after" });
		const last = counter?.seq ?? withChange.length;
		const first = last - withChange.length + 1;
		const at = new Date();
		await this.changes.insertMany(withChange.map((e, i) => ({
			_id: first + i, at,
			item: JSON.stringify({ customerId: e.customerId, version: e.version, riskScore: e.riskScore, appliedAt: e.appliedAt, change: e.change })
		})), { ordered: false });
	}

	async journalSince(id: string, afterVersion: number, limit: number): Promise<JournalEntry[]> {
		if (limit <= 0) return [];
		const docs = await this.colls().journal
			.find({ customerId: id, version: { $gt: afterVersion } }, { projection: { _id: 0 } })
			.sort({ version: 1 })
			.limit(limit)
			.toArray();
		return docs as JournalEntry[];
	}

	async changesSince(cursor: string, limit: number): Promise<FeedPage> {
		if (!this.changes) throw new Error("MongoActorStore: not connected (call connect() first)");
		if (cursor === FEED_END) {
			const [newest] = await this.changes.find({}, { projection: { _id: 1 } }).sort({ _id: -1 }).limit(1).toArray();
			return { items: [], cursor: newest ? String(newest._id) : FEED_START, trimmed: false };
		}
		const after = cursor === FEED_START ? 0 : Number(cursor);
		if (limit <= 0) return { items: [], cursor, trimmed: false };
		const [docs, oldest] = await Promise.all([
			this.changes.find({ _id: { $gt: after } }).sort({ _id: 1 }).limit(limit).toArray(),
			after > 0 ? this.changes.find({}, { projection: { _id: 1 } }).sort({ _id: 1 }).limit(1).toArray() : Promise.resolve([])
		]);
		const trimmed = oldest.length > 0 && oldest[0]._id > after + 1 && !this.waitingFor(after + 1);
		const items: FeedItem[] = [];
		let expect = trimmed ? (docs[0]?._id ?? after + 1) : after + 1;
		for (const d of docs) {
			// A hole: a batch with lower numbers is still being inserted; stop here unless it is old (its writer died).
			if (d._id !== expect && this.waitingFor(expect)) break;
			items.push({ cursor: String(d._id), ...(JSON.parse(d.item) as Omit<FeedItem, "cursor">) });
			expect = d._id + 1;
		}
		return { items, cursor: items.length > 0 ? items[items.length - 1].cursor : cursor, trimmed };
	}

	/** Whether a missing sequence number may still arrive (first seen missing less than FEED_HOLE_MS ago). */
	private waitingFor(seq: number): boolean {
		const now = Date.now();
		const seen = this.holes.get(seq);
		if (seen === undefined) {
			if (this.holes.size > 10_000) this.holes.clear();
			this.holes.set(seq, now);
			return true;
		}
		return now - seen < FEED_HOLE_MS;
	}

	async listByRisk(minScore: number, limit: number): Promise<RiskRow[]> {
		if (limit <= 0) return [];
		const docs = await this.colls().customers
			.find({ riskScore: { $gt: minScore } }, { projection: { riskScore: 1 } })
			.sort({ riskScore: -1, _id: 1 })
			.limit(limit)
			.toArray();
		return docs.map(d => ({ id: d._id, score: d.riskScore }));
	}

	async dueReminders(now: number, limit: number): Promise<ReminderRow[]> {
		if (limit <= 0) return [];
		const docs = await this.colls().customers
			.find({ nextReminderAt: { $lte: now } }, { projection: { nextReminderAt: 1 } })
			.sort({ nextReminderAt: 1, _id: 1 })
			.limit(limit)
			.toArray();
		return docs.map(d => ({ id: d._id, dueAt: d.nextReminderAt as number }));
	}

	async count(): Promise<number> {
		return this.colls().customers.countDocuments({});
	}
}

/** A snapshot write: the state, an empty tail. */
function toDoc(w: ActorWrite, writeToken: string): CustomerDoc {
	return {
		_id: w.id, version: w.state.version, state: w.state, tail: [], riskScore: w.state.risk.score,
		nextReminderAt: nextReminderAt(w.state), writeToken
	};
}

/** A journal-only first write: no snapshot yet, the entries as the tail (replayed from the empty state). */
function toTailDoc(w: ActorWrite, writeToken: string): CustomerDoc {
	return { ...toDoc(w, writeToken), state: null, tail: w.journal.map(e => JSON.stringify(e)) };
}

function asArray<T>(v: T | readonly T[] | undefined): readonly T[] {
	if (v === undefined) return [];
	return Array.isArray(v) ? v as readonly T[] : [v as T];
}

function writeErrorCodes(err: MongoBulkWriteError): number[] {
	const codes = asArray(err.writeErrors).map(e => e.code);
	return codes.length > 0 ? codes : [err.code as number];
}
