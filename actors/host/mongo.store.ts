// Shared ActorStore on MongoDB (official driver): customers hold the state beside the fields we query; journal is its
// own collection. A batch is one unordered bulkWrite of compare-and-set replaces/inserts plus one insertMany of journal.
import { randomUUID } from "node:crypto";
import { MongoBulkWriteError, MongoClient, type AnyBulkWriteOperation, type Collection } from "mongodb";
import { nextReminderAt, type ActorStore, type ActorWrite, type JournalEntry, type ReminderRow, type RiskRow, type WriteResult } from "./actor-store.ts";
import type { CustomerState } from "../../models/customer-state.ts";

export interface MongoActorStoreOptions {
	url: string;
	/** Defaults to the database named in the URL, else "crm". */
	dbName?: string;
}

interface CustomerDoc {
	_id: string;
	version: number;
	/**
	 * Stored as a document, so it must be written with insert/replace (never $set): state keys may contain "."
	 * (risk factors such as "order.cancelled"), which MongoDB 5.0+ accepts in stored documents but not in update paths.
	 */
	state: CustomerState;
	riskScore: number;
	/** null without reminders (a $lte on a number never matches null). */
	nextReminderAt: number | null;
	/** Which save wrote this version: tells, after an unordered bulk, which compare-and-sets matched. */
	writeToken: string;
}

type JournalDoc = JournalEntry;

const DUPLICATE_KEY = 11000;

/** The database named in a mongodb:// or mongodb+srv:// URL, if any (URL() cannot parse multi-host lists). */
function dbNameFromUrl(url: string): string | null {
	const m = /^mongodb(?:\+srv)?:\/\/[^/]+\/([^?]+)/.exec(url);
	return m ? decodeURIComponent(m[1]) : null;
}

export class MongoActorStore implements ActorStore {
	readonly kind = "mongo";
	readonly shared = true;
	private readonly client: MongoClient;
	private readonly dbName: string;
	private customers: Collection<CustomerDoc> | null = null;
	private journalColl: Collection<JournalDoc> | null = null;

	constructor(opts: MongoActorStoreOptions) {
		if (!opts.url) throw new Error("MongoActorStore: option `url` is required");
		this.dbName = opts.dbName ?? dbNameFromUrl(opts.url) ?? "crm";
		this.client = new MongoClient(opts.url);
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
			journal.createIndex({ customerId: 1, version: 1 }, { unique: true, name: "customerId_version" })
		]);
		this.customers = customers;
		this.journalColl = journal;
	}

	async close(): Promise<void> {
		this.customers = null;
		this.journalColl = null;
		await this.client.close();
	}

	private colls(): { customers: Collection<CustomerDoc>; journal: Collection<JournalDoc> } {
		if (!this.customers || !this.journalColl) throw new Error("MongoActorStore: not connected (call connect() first)");
		return { customers: this.customers, journal: this.journalColl };
	}

	async load(id: string): Promise<CustomerState | null> {
		const doc = await this.colls().customers.findOne({ _id: id }, { projection: { state: 1 } });
		return doc ? doc.state : null;
	}

	async saveBatch(writes: ActorWrite[]): Promise<WriteResult[]> {
		const { journal } = this.colls();
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
		}
		return results;
	}

	/** Compare-and-sets the writes at `indexes` (distinct customers) in one unordered bulkWrite. */
	private async saveRound(writes: ActorWrite[], indexes: number[], results: WriteResult[]): Promise<void> {
		const { customers } = this.colls();
		const token = randomUUID();
		const ops: AnyBulkWriteOperation<CustomerDoc>[] = indexes.map(i => {
			const w = writes[i];
			const doc = toDoc(w, token);
			return w.expectedVersion === 0
				? { insertOne: { document: doc } }
				: { replaceOne: { filter: { _id: w.id, version: w.expectedVersion }, replacement: doc } };
		});
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

		// The bulk result only counts matches; when some replace missed, the token says which ones landed.
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

function toDoc(w: ActorWrite, writeToken: string): CustomerDoc {
	return {
		_id: w.id, version: w.state.version, state: w.state, riskScore: w.state.risk.score,
		nextReminderAt: nextReminderAt(w.state), writeToken
	};
}

function asArray<T>(v: T | readonly T[] | undefined): readonly T[] {
	if (v === undefined) return [];
	return Array.isArray(v) ? v as readonly T[] : [v as T];
}

function writeErrorCodes(err: MongoBulkWriteError): number[] {
	const codes = asArray(err.writeErrors).map(e => e.code);
	return codes.length > 0 ? codes : [err.code as number];
}
