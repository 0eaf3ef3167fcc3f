// The log-tailing engine of ingest-logs: follows click-stream logs (JSON lines, nginx combined) through appends,
// rotation and truncation, keeps the read offset durably, merges multi-line entries, masks PII before anything is
// stored or logged, and sends the page views of identified customers as crm.page.viewed through the source's sink.
import { isUtf8 } from "node:buffer";
import { createHash } from "node:crypto";
import { watch, type FSWatcher, type Stats } from "node:fs";
import { open, readdir, stat, type FileHandle } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "moleculer";
import type { LogSource, LogsConfig } from "../config/sources.config.ts";
import { validateEvent } from "../models/cloud-event.validator.ts";
import type { KnownCloudEvent } from "../models/event-data.schemas.ts";
import { EntryMerger, interpretEntry, LOG_FORMATS, type LogEntry } from "../models/access-log.parser.ts";
import { maskPii } from "../models/pii.mask.ts";
import type { DeadLetterCode, ItemOutcome, LogEntryPayload, RetryOutcome, TailStatus } from "../models/contract/index.ts";
import { KeyedQueue } from "../lib/keyed.queue.ts";
import { contractError } from "../runtime/contract-error.ts";
import type { SourceStateStore } from "../adapters/source-state.store.ts";
import { addToTally, DeliveryUnavailable, newTally, type EventSink, type Letter } from "./event.sink.ts";
const CHUNK_BYTES = 64 * 1024;
/** A line this long without a line end is cut off and dead-lettered: the reader never holds more. */
const MAX_LINE_BYTES = 256 * 1024;
/** Masked entry text kept in a dead letter. */
const MAX_PAYLOAD_CHARS = 16 * 1024;
const PROGRESS_EVERY_MS = 10_000;

/** Where reading resumes: the first byte of the first entry not yet fully handled, in the file with this identity. */
interface TailPosition {
	dev: number;
	ino: number;
	offset: number;
	at: string;
}

type Prepared = { kind: "event"; event: KnownCloudEvent } | { kind: "skip"; reason: string } | { kind: "fail"; code: DeadLetterCode; reason: string };

/**
 * One entry to its event. Only non-personal values leave this function unmasked: the customer id and the time; the
 * url, referrer and session id are masked, so nothing personal reaches the actor's state or journal.
 */
export function prepareEntry(source: Pick<LogSource, "name" | "format">, entry: LogEntry, ino: number, customerParam: string): Prepared {
	const outcome = interpretEntry(source.format, entry, { customerParam });
	if (outcome.kind === "skip") return { kind: "skip", reason: outcome.reason };
	if (outcome.kind === "malformed") return { kind: "fail", code: entry.oversize ? "oversize" : "malformed_entry", reason: maskPii(outcome.reason) };
	const data: Record<string, string> = { url: maskPii(outcome.url) };
	if (outcome.referrer) data.referrer = maskPii(outcome.referrer);
	if (outcome.sessionId) data.sessionId = maskPii(outcome.sessionId);
	const digest = createHash("sha256").update(entry.text).digest("hex").slice(0, 16);
	const v = validateEvent({
		specversion: "1.0", id: `${ino}:${entry.start}:${digest}`, source: `/logs/${source.name}`, type: "crm.page.viewed",
		subject: outcome.customerId, time: new Date(outcome.timeMs).toISOString(), data
	});
	return v.ok ? { kind: "event", event: v.event } : { kind: "fail", code: v.code, reason: maskPii(v.reason) };
}

function errorText(err: unknown): string {
	return maskPii(err instanceof Error ? err.message : String(err));
}

async function statOrNull(file: string): Promise<Stats | null> {
	try {
		return await stat(file);
	} catch (err) {
		if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
		throw err;
	}
}

/** Follows one log file. Ticks (poll timer, fs.watch) are serialized: one read loop at a time per file. */
export class LogTail {
	private readonly src: LogSource;
	private readonly sink: EventSink;
	private readonly logger: Logger;
	private readonly cfg: LogsConfig;
	private readonly concurrency: number;
	private readonly state: SourceStateStore;
	private readonly stateKey: string;
	private readonly signal: AbortSignal;
	private fh: FileHandle | null = null;
	private dev = 0;
	private ino = 0;
	/** Next byte to read. */
	private readPos = 0;
	/** Bytes after the last line end, and where they start. */
	private partial: Buffer = Buffer.alloc(0);
	private partialStart = 0;
	/** Set while discarding an over-long line up to its line end. */
	private skipping: { start: number; head: string } | null = null;
	private merger: EntryMerger;
	private committed = -1;
	private lastDataAt = Date.now();
	private running: Promise<void> | null = null;
	private again = false;
	private lastProgress = Date.now();
	private sinceProgress = newTally();
	readonly tally = newTally();
	readonly skipped: Record<string, number> = {};
	lastError: string | null = null;

	constructor(src: LogSource, deps: { sink: EventSink; logger: Logger; cfg: LogsConfig; concurrency: number; state: SourceStateStore; signal: AbortSignal }) {
		this.src = src;
		this.sink = deps.sink;
		this.logger = deps.logger;
		this.cfg = deps.cfg;
		this.concurrency = deps.concurrency;
		this.state = deps.state;
		this.signal = deps.signal;
		this.stateKey = `logs/${src.name}`;
		this.merger = new EntryMerger(src.format);
	}

	get status(): TailStatus {
		return { name: this.src.name, format: this.src.format, path: this.src.path, offset: Math.max(this.committed, 0), ino: this.ino, tally: this.tally, skipped: this.skipped, lastError: this.lastError };
	}

	/** Runs a read pass; a tick during a pass asks for one more right after it. */
	tick(): Promise<void> {
		this.again = true;
		if (this.running === null) {
			this.running = (async () => {
				try {
					while (this.again && !this.signal.aborted) {
						this.again = false;
						try {
							await this.step();
							this.lastError = null;
						} catch (err) {
							this.lastError = errorText(err);
							this.logger.warn(`logs ${this.src.name}: ${this.lastError}; resuming from offset ${Math.max(this.committed, 0)} on the next poll`);
							this.resetParsing(Math.max(this.committed, 0));
						}
					}
				} finally {
					this.running = null;
				}
			})();
		}
		return this.running;
	}

	async close(): Promise<void> {
		await this.running?.catch(() => undefined);
		await this.fh?.close().catch(() => undefined);
		this.fh = null;
	}

	private resetParsing(offset: number): void {
		this.readPos = offset;
		this.partial = Buffer.alloc(0);
		this.partialStart = offset;
		this.skipping = null;
		this.merger = new EntryMerger(this.src.format);
	}

	private async step(): Promise<void> {
		const st = await statOrNull(this.src.path);
		if (this.fh === null) {
			if (st === null) return;
			await this.openAtStart(st);
		} else if (st !== null && (st.ino !== this.ino || st.dev !== this.dev)) {
			// Rotated (renamed away, a new file in its place): finish the old file through our open handle, then switch.
			await this.finishFile();
			this.logger.info(`logs ${this.src.name}: rotated; following the new file`);
			await this.openFile(st, 0);
		} else if (st !== null && st.size < this.readPos) {
			// Truncated in place (copytruncate): what we had read is gone from the file; start over at its beginning.
			this.logger.info(`logs ${this.src.name}: truncated; reading from the start`);
			this.resetParsing(0);
			await this.commit(true);
		}
		await this.readToEnd();
		if (this.merger.pendingStart !== undefined && Date.now() - this.lastDataAt >= this.cfg.flushMs) await this.handle(this.merger.flush());
	}

	/** Opens the file where the stored position says; finds a file rotated while we were down by its inode. */
	private async openAtStart(st: Stats): Promise<void> {
		const saved = await this.state.get<TailPosition>(this.stateKey);
		if (saved && saved.ino === st.ino && saved.dev === st.dev) {
			await this.openFile(st, saved.offset <= st.size ? saved.offset : 0);
			return;
		}
		if (saved) {
			const rotated = await this.findByInode(saved);
			if (rotated) {
				this.logger.info(`logs ${this.src.name}: rotated while stopped; finishing ${path.basename(rotated)} from offset ${saved.offset}`);
				const current = st;
				const rst = await stat(rotated);
				this.fh = await open(rotated, "r");
				this.dev = rst.dev;
				this.ino = rst.ino;
				this.resetParsing(saved.offset);
				this.committed = saved.offset;
				await this.finishFile();
				await this.openFile(current, 0);
			} else {
				this.logger.warn(`logs ${this.src.name}: the file was replaced while stopped and the old one is gone; reading the new one from the start`);
				await this.openFile(st, 0);
			}
			return;
		}
		await this.openFile(st, this.cfg.startAt === "end" ? st.size : 0);
	}

	/** Reads a file nobody writes to any more to its end; its last line counts even without a line end. */
	private async finishFile(): Promise<void> {
		await this.readToEnd();
		const entries: LogEntry[] = [];
		if (this.partial.length > 0) entries.push(...this.merger.push(this.partial.toString("utf8"), this.partialStart, this.readPos, !isUtf8(this.partial)));
		else if (this.skipping) entries.push(...this.merger.flush(), { text: this.skipping.head, start: this.skipping.start, end: this.readPos, oversize: true });
		this.partial = Buffer.alloc(0);
		this.skipping = null;
		this.partialStart = this.readPos;
		await this.handle([...entries, ...this.merger.flush()]);
		await this.fh?.close();
		this.fh = null;
	}

	private async findByInode(saved: TailPosition): Promise<string | null> {
		const dir = path.dirname(this.src.path);
		const base = path.basename(this.src.path);
		for (const name of await readdir(dir).catch(() => [] as string[])) {
			if (!name.startsWith(base) || name === base) continue;
			const s = await statOrNull(path.join(dir, name));
			if (s && s.ino === saved.ino && s.dev === saved.dev) return path.join(dir, name);
		}
		return null;
	}

	private async openFile(st: Stats, offset: number): Promise<void> {
		this.fh = await open(this.src.path, "r");
		const opened = await this.fh.stat();
		this.dev = opened.dev;
		this.ino = opened.ino;
		// The file at the path may have changed between stat and open: trust the handle's identity.
		this.resetParsing(opened.ino === st.ino ? offset : 0);
		this.committed = -1;
		await this.commit(true);
	}

	private async readToEnd(): Promise<void> {
		const fh = this.fh;
		if (!fh) return;
		const buf = Buffer.allocUnsafe(CHUNK_BYTES);
		for (;;) {
			if (this.signal.aborted) return;
			const { bytesRead } = await fh.read(buf, 0, CHUNK_BYTES, this.readPos);
			if (bytesRead === 0) return;
			const base = this.readPos;
			this.readPos += bytesRead;
			this.lastDataAt = Date.now();
			await this.handle(this.split(buf.subarray(0, bytesRead), base));
		}
	}

	/** Cuts a chunk into lines (byte offsets kept) and feeds the merger; returns the entries completed. */
	private split(chunk: Buffer, base: number): LogEntry[] {
		const entries: LogEntry[] = [];
		let start = 0;
		for (;;) {
			const nl = chunk.indexOf(0x0a, start);
			if (nl === -1) break;
			const end = base + nl + 1;
			if (this.skipping) {
				entries.push(...this.merger.flush(), { text: this.skipping.head, start: this.skipping.start, end, oversize: true });
				this.skipping = null;
			} else {
				const bytes = this.partial.length > 0 ? Buffer.concat([this.partial, chunk.subarray(start, nl)]) : chunk.subarray(start, nl);
				let text = bytes.toString("utf8");
				if (text.endsWith("\r")) text = text.slice(0, -1);
				entries.push(...this.merger.push(text, this.partial.length > 0 ? this.partialStart : base + start, end, !isUtf8(bytes)));
			}
			this.partial = Buffer.alloc(0);
			this.partialStart = end;
			start = nl + 1;
		}
		if (start < chunk.length && !this.skipping) {
			this.partial = Buffer.concat([this.partial, chunk.subarray(start)]);
			if (this.partial.length > MAX_LINE_BYTES) {
				this.skipping = { start: this.partialStart, head: this.partial.subarray(0, 4096).toString("utf8") };
				this.partial = Buffer.alloc(0);
			}
		}
		return entries;
	}

	/** Handles complete entries (bounded concurrency, order per customer kept), then moves the durable offset. */
	private async handle(entries: LogEntry[]): Promise<void> {
		if (entries.length > 0) {
			const queue = new KeyedQueue(this.concurrency);
			let unavailable: DeliveryUnavailable | null = null;
			for (const entry of entries) {
				if (unavailable) break;
				const prepared = prepareEntry(this.src, entry, this.ino, this.cfg.customerParam);
				if (prepared.kind === "skip") {
					this.skipped[prepared.reason] = (this.skipped[prepared.reason] ?? 0) + 1;
					this.tallied("skipped");
					this.sink.count("skipped");
					continue;
				}
				if (prepared.kind === "fail") {
					await this.sink.deadLetter(this.letter(entry, prepared.code, prepared.reason));
					this.tallied("dead_lettered");
					continue;
				}
				const event = prepared.event;
				await queue.push(event.subject, async () => {
					if (unavailable) return;
					const stop = await this.sink.deliverOrDeadLetter(event, { signal: this.signal }, (reason, code) => this.letter(entry, code, reason), outcome => this.tallied(outcome));
					if (stop) unavailable ??= stop;
				});
			}
			await queue.drain();
			// The offset stays where it was: the next poll re-reads these entries (their ids make the re-sent ones duplicates).
			if (unavailable) throw unavailable;
		}
		await this.commit(false);
		this.progress();
	}

	/** An entry's dead letter, PII masked; the same entry read again keeps one. */
	private letter(entry: LogEntry, code: DeadLetterCode, reason: string): Letter {
		const payload: LogEntryPayload = {
			source: this.src.name, format: this.src.format, ino: this.ino, offset: entry.start, text: maskPii(entry.text).slice(0, MAX_PAYLOAD_CHARS)
		};
		return { code, reason: maskPii(reason), payload, dedupKey: `logs/${this.src.name}/${this.ino}/${entry.start}` };
	}

	private tallied(outcome: ItemOutcome): void {
		addToTally(this.tally, outcome);
		addToTally(this.sinceProgress, outcome);
	}

	/** Stores the resume offset: the open entry's start, else the start of the unfinished line. */
	private async commit(force: boolean): Promise<void> {
		const offset = this.merger.pendingStart ?? this.skipping?.start ?? this.partialStart;
		if (!force && offset === this.committed) return;
		await this.state.set(this.stateKey, { dev: this.dev, ino: this.ino, offset, at: new Date().toISOString() } satisfies TailPosition);
		this.committed = offset;
	}

	private progress(): void {
		if (Date.now() - this.lastProgress < PROGRESS_EVERY_MS) return;
		const t = this.sinceProgress;
		if (t.applied + t.duplicate + t.skipped + t.deadLettered > 0) {
			this.logger.info(`logs ${this.src.name}: ${t.applied} page views applied, ${t.duplicate} duplicate, ${t.skipped} skipped, ${t.deadLettered} dead-lettered; offset ${this.committed}`);
		}
		this.sinceProgress = newTally();
		this.lastProgress = Date.now();
	}
}

/** Every configured log: a tail each, a directory watcher each, and one poll timer for all. */
export class LogTails {
	private readonly cfg: LogsConfig;
	private readonly logger: Logger;
	private readonly abort = new AbortController();
	private readonly watchers: FSWatcher[] = [];
	private timer: NodeJS.Timeout | null = null;
	readonly tails: LogTail[];

	constructor(cfg: LogsConfig, deps: { sink: EventSink; logger: Logger; concurrency: number; state: SourceStateStore }) {
		this.cfg = cfg;
		this.logger = deps.logger;
		this.tails = cfg.sources.map(src => new LogTail(src, { ...deps, cfg, signal: this.abort.signal }));
	}

	get status(): TailStatus[] {
		return this.tails.map(t => t.status);
	}

	start(): void {
		this.tails.forEach((tail, i) => {
			const src = this.cfg.sources[i];
			// Watch the directory, not the file: a rotated file is replaced, and a watch on it would follow the old inode.
			try {
				const w = watch(path.dirname(src.path), (_event, name) => {
					if (name === null || String(name).startsWith(path.basename(src.path))) void tail.tick();
				});
				w.on("error", err => this.logger.warn(`logs ${src.name}: watch failed (${err.message}); polling every ${this.cfg.pollMs} ms`));
				this.watchers.push(w);
			} catch (err) {
				this.logger.warn(`logs ${src.name}: cannot watch ${path.dirname(src.path)} (${(err as Error).message}); polling every ${this.cfg.pollMs} ms`);
			}
			void tail.tick();
		});
		this.timer = setInterval(() => void this.poll(), this.cfg.pollMs);
		this.timer.unref();
		this.logger.info(`log ingestion: ${this.cfg.sources.map(s => `${s.name} (${s.format})`).join(", ")}; PII is masked before anything is stored or logged`);
	}

	/** Reads every log now (the watchers and the poll do this anyway). */
	async poll(): Promise<void> {
		await Promise.all(this.tails.map(t => t.tick()));
	}

	async stop(): Promise<void> {
		this.abort.abort();
		if (this.timer) clearInterval(this.timer);
		for (const w of this.watchers) w.close();
		await Promise.all(this.tails.map(t => t.close()));
	}

	/** Re-processes a dead-lettered entry (deadLetters.retry) with the current configuration. */
	async retryEntry(p: LogEntryPayload, sink: EventSink): Promise<RetryOutcome> {
		const src = this.cfg.sources.find(s => s.name === p?.source);
		if (!src || typeof p.text !== "string" || !(LOG_FORMATS as readonly string[]).includes(p.format)) {
			throw contractError("INVALID_PAYLOAD", "not a log entry dead letter of a configured source");
		}
		const prepared = prepareEntry(src, { text: p.text, start: Number(p.offset) || 0, end: 0 }, Number(p.ino) || 0, this.cfg.customerParam);
		if (prepared.kind === "fail") throw contractError("INVALID_ENTRY", `still invalid: ${prepared.reason}`, { reason: prepared.reason });
		if (prepared.kind === "skip") return { outcome: "skipped" };
		return { outcome: await sink.deliver(prepared.event) };
	}
}
