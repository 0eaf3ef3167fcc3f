// Where dead letters are kept: JetStream stream CRM_DLQ (subject crm.dlq.<source>, one JSON document per message)
// when NATS is configured, else an embedded NeDB file under DATA_DIR. Both list newest first, get and remove by id.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import Datastore from "@seald-io/nedb";
import { headers, nanos, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager, type NatsConnection } from "nats";
import type { DeadLetter, DeadLetterRecord } from "../models/contract/index.ts";
import { ensureJetStream, isNotFound } from "./nats.connection.ts";

export const DLQ_STREAM = "CRM_DLQ";
export const DLQ_SUBJECT_PREFIX = "crm.dlq.";
/** Body format version of a CRM_DLQ message. */
const FORMAT = 1;

export interface DeadLetterStore {
	readonly kind: "jetstream" | "nedb";
	open(): Promise<void>;
	close(): Promise<void>;
	/** Stores a dead letter; with `dedupKey`, storing the same key again returns the first one. */
	add(record: DeadLetterRecord, dedupKey?: string): Promise<DeadLetter>;
	/** Newest first. */
	list(source: string | undefined, limit: number): Promise<DeadLetter[]>;
	get(id: string): Promise<DeadLetter | null>;
	remove(id: string): Promise<boolean>;
}

export interface JetStreamDeadLetterOptions {
	nc: NatsConnection;
	maxAgeMs: number;
	/** Largest CRM_DLQ message body; the payload is cut to fit. */
	maxBodyBytes: number;
	/** Messages scanned at most by one list call (the stream is read newest first). */
	maxScan?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The payload as stored: unchanged when its JSON fits in `maxBytes`, else a prefix of its text (cut on a character
 * boundary) marked truncated — a dead letter is always kept, even for an input too large to keep whole.
 */
export function capPayload(payload: unknown, maxBytes: number): { payload: unknown; truncated?: true } {
	const text = typeof payload === "string" ? payload : JSON.stringify(payload) ?? "null";
	if (encoder.encode(JSON.stringify(payload ?? null)).length <= maxBytes) return { payload };
	let keep = Math.min(text.length, maxBytes);
	while (keep > 0 && encoder.encode(JSON.stringify(text.slice(0, keep))).length > maxBytes) keep = Math.floor(keep * 0.9);
	return { payload: text.slice(0, keep), truncated: true };
}

/**
 * Serialises a record to at most `maxBytes`, cutting the payload (as text) when it does not fit: a dead letter is
 * always stored, even for an input too large to keep whole.
 */
export function encodeRecord(record: DeadLetterRecord, maxBytes: number): Uint8Array {
	let body = encoder.encode(JSON.stringify({ v: FORMAT, ...record }));
	if (body.length <= maxBytes) return body;
	const text = typeof record.payload === "string" ? record.payload : JSON.stringify(record.payload) ?? "";
	let keep = Math.min(text.length, maxBytes);
	for (;;) {
		body = encoder.encode(JSON.stringify({ v: FORMAT, ...record, payload: text.slice(0, keep), truncated: true }));
		if (body.length <= maxBytes || keep === 0) return body;
		// JSON escapes can grow text up to 6×; shrink in proportion to the overshoot.
		keep = Math.max(0, Math.floor(keep * (maxBytes / body.length) * 0.95));
	}
}

function decodeRecord(id: string, data: Uint8Array): DeadLetter {
	const doc = JSON.parse(decoder.decode(data)) as DeadLetterRecord & { v?: number };
	delete doc.v;
	return { id, ...doc };
}

export class JetStreamDeadLetterStore implements DeadLetterStore {
	readonly kind = "jetstream";
	private readonly opts: JetStreamDeadLetterOptions;
	private js!: JetStreamClient;
	private jsm!: JetStreamManager;

	constructor(opts: JetStreamDeadLetterOptions) {
		this.opts = opts;
	}

	async open(): Promise<void> {
		this.jsm = await this.opts.nc.jetstreamManager();
		this.js = this.opts.nc.jetstream();
		await ensureDlqStream(this.jsm, this.opts.maxAgeMs);
	}

	async close(): Promise<void> {
		// The connection belongs to the service that opened it.
	}

	async add(record: DeadLetterRecord, dedupKey?: string): Promise<DeadLetter> {
		const h = headers();
		h.set("Crm-Dlq-Source", record.source);
		h.set("Crm-Dlq-Reason-Code", record.reasonCode);
		const ack = await this.js.publish(`${DLQ_SUBJECT_PREFIX}${record.source}`, encodeRecord(record, this.opts.maxBodyBytes), {
			headers: h,
			...(dedupKey ? { msgID: dedupKey } : {})
		});
		return { id: String(ack.seq), ...record };
	}

	async list(source: string | undefined, limit: number): Promise<DeadLetter[]> {
		const info = await this.jsm.streams.info(DLQ_STREAM);
		const { first_seq: first, last_seq: last, messages } = info.state;
		const out: DeadLetter[] = [];
		if (messages === 0) return out;
		const subject = source === undefined ? undefined : `${DLQ_SUBJECT_PREFIX}${source}`;
		const maxScan = this.opts.maxScan ?? 100_000;
		let seq = last;
		let scanned = 0;
		while (seq >= first && out.length < limit && scanned < maxScan) {
			const chunk: number[] = [];
			for (let s = seq; s >= first && chunk.length < 64; s--) chunk.push(s);
			const got = await Promise.all(chunk.map(s => this.fetch(s)));
			for (const m of got) {
				if (m === null || (subject !== undefined && m.subject !== subject)) continue;
				out.push(decodeRecord(String(m.seq), m.data));
				if (out.length >= limit) break;
			}
			seq -= chunk.length;
			scanned += chunk.length;
		}
		return out;
	}

	async get(id: string): Promise<DeadLetter | null> {
		if (!/^[1-9]\d{0,15}$/.test(id)) return null;
		const m = await this.fetch(Number(id));
		return m === null ? null : decodeRecord(id, m.data);
	}

	async remove(id: string): Promise<boolean> {
		if (!/^[1-9]\d{0,15}$/.test(id)) return false;
		try {
			return await this.jsm.streams.deleteMessage(DLQ_STREAM, Number(id), false);
		} catch (err) {
			if (isNotFound(err)) return false;
			throw err;
		}
	}

	private async fetch(seq: number): Promise<{ seq: number; subject: string; data: Uint8Array } | null> {
		try {
			const m = await this.jsm.streams.getMessage(DLQ_STREAM, { seq });
			return { seq: m.seq, subject: m.subject, data: m.data };
		} catch (err) {
			if (isNotFound(err)) return null;
			throw err;
		}
	}
}

/** Creates CRM_DLQ when missing (file storage, limits retention by age, 2-minute de-duplication window). */
export async function ensureDlqStream(jsm: JetStreamManager, maxAgeMs: number): Promise<void> {
	await ensureJetStream({
		read: () => jsm.streams.info(DLQ_STREAM),
		add: () => jsm.streams.add({
			name: DLQ_STREAM,
			subjects: [`${DLQ_SUBJECT_PREFIX}>`],
			storage: StorageType.File,
			retention: RetentionPolicy.Limits,
			max_age: nanos(maxAgeMs),
			duplicate_window: nanos(Math.min(120_000, maxAgeMs)),
			description: "crm-actors dead letters: one JSON document per message, subject crm.dlq.<source>"
		})
	});
}

/** The part of @seald-io/nedb used here (its CommonJS typings do not resolve as a default import under NodeNext). */
interface NedbCursor<T> extends PromiseLike<T[]> {
	sort(spec: Record<string, 1 | -1>): NedbCursor<T>;
	limit(n: number): NedbCursor<T>;
}

interface NedbFile<T> {
	loadDatabaseAsync(): Promise<void>;
	ensureIndexAsync(options: { fieldName: string; unique?: boolean; sparse?: boolean }): Promise<void>;
	compactDatafileAsync(): Promise<void>;
	findAsync(query: object): NedbCursor<T>;
	findOneAsync(query: object): Promise<T | null>;
	insertAsync(doc: T): Promise<T>;
	removeAsync(query: object, options: { multi?: boolean }): Promise<number>;
}

const NedbDatastore = Datastore as unknown as new <T>(options: { filename: string }) => NedbFile<T>;
const COMPACTION_INTERVAL_MS = 3600_000;

interface NedbDoc {
	_id?: string;
	/** Insertion order within the same millisecond. */
	order: number;
	dedupKey?: string;
	/** The record as JSON: payload keys may contain "." or "$", which NeDB refuses as field names. */
	record: string;
	source: string;
	recordedAtMs: number;
}

export class NedbDeadLetterStore implements DeadLetterStore {
	readonly kind = "nedb";
	private readonly file: string;
	private readonly dir: string;
	private db: NedbFile<NedbDoc> | null = null;
	private order = 0;
	private compactionTimer: NodeJS.Timeout | null = null;

	constructor(dataDir: string) {
		this.dir = dataDir;
		this.file = join(dataDir, "dead-letters.db");
	}

	async open(): Promise<void> {
		await mkdir(this.dir, { recursive: true });
		const db = new NedbDatastore<NedbDoc>({ filename: this.file });
		await db.loadDatabaseAsync();
		await db.ensureIndexAsync({ fieldName: "dedupKey", unique: true, sparse: true });
		await db.ensureIndexAsync({ fieldName: "source" });
		const newest = await db.findAsync({}).sort({ recordedAtMs: -1, order: -1 }).limit(1);
		this.order = newest.length > 0 ? newest[0].order + 1 : 0;
		this.db = db;
		// NeDB only appends; our own timer (NeDB's is not unref'd) rewrites the file without removed documents.
		this.compactionTimer = setInterval(() => void db.compactDatafileAsync().catch(() => undefined), COMPACTION_INTERVAL_MS);
		this.compactionTimer.unref();
	}

	async close(): Promise<void> {
		if (!this.db) return;
		if (this.compactionTimer) clearInterval(this.compactionTimer);
		await this.db.compactDatafileAsync();
		this.db = null;
	}

	private get store(): NedbFile<NedbDoc> {
		if (!this.db) throw new Error("dead-letter store is not open");
		return this.db;
	}

	async add(record: DeadLetterRecord, dedupKey?: string): Promise<DeadLetter> {
		const doc: NedbDoc = { order: this.order++, record: JSON.stringify(record), source: record.source, recordedAtMs: Date.parse(record.recordedAt) };
		if (dedupKey) doc.dedupKey = dedupKey;
		try {
			const saved = await this.store.insertAsync(doc);
			return { id: saved._id as string, ...record };
		} catch (err) {
			if (dedupKey && (err as { errorType?: string }).errorType === "uniqueViolated") {
				const existing = await this.store.findOneAsync({ dedupKey });
				if (existing) return toDeadLetter(existing);
			}
			throw err;
		}
	}

	async list(source: string | undefined, limit: number): Promise<DeadLetter[]> {
		const docs = await this.store.findAsync(source === undefined ? {} : { source }).sort({ recordedAtMs: -1, order: -1 }).limit(limit);
		return docs.map(toDeadLetter);
	}

	async get(id: string): Promise<DeadLetter | null> {
		const doc = await this.store.findOneAsync({ _id: id });
		return doc ? toDeadLetter(doc) : null;
	}

	async remove(id: string): Promise<boolean> {
		return (await this.store.removeAsync({ _id: id }, {})) > 0;
	}
}

function toDeadLetter(doc: NedbDoc): DeadLetter {
	return { id: doc._id as string, ...(JSON.parse(doc.record) as DeadLetterRecord) };
}
