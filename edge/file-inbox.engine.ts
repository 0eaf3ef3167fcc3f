// The file-drop engine of ingest-files: CSV files dropped into an inbox folder (customer lists, bank statements, the
// Telco sample) become customer events, streamed row by row through the source's event sink; each file ends in
// processed/ or failed/ with a JSON report beside it.
import { watch, type FSWatcher } from "node:fs";
import { mkdir, readdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "moleculer";
import type { FileKind, FilesConfig } from "../config/sources.config.ts";
import type { DeadLetterCode, FileReport, ItemOutcome, RetryOutcome, RowPayload } from "../models/contract/index.ts";
import type { KnownCloudEvent } from "../models/event-data.schemas.ts";
import { isCsvError } from "../models/csv.parser.ts";
import { mapRow } from "../models/field-mapping.ts";
import { KeyedQueue } from "../lib/keyed.queue.ts";
import { contractError } from "../runtime/contract-error.ts";
import type { SourceStateStore } from "../adapters/source-state.store.ts";
import { csvRecords, parseSha256Text, probeFile } from "../adapters/text-file.reader.ts";
import { addToTally, DeliveryUnavailable, newTally, type EventSink, type Letter } from "./event.sink.ts";
import { validateEvent } from "../models/cloud-event.validator.ts";
/** Rows listed with their reason in a report; the counts cover the rest. */
const MAX_REPORTED_PROBLEMS = 1000;
const PROGRESS_EVERY_MS = 5000;
/** Names that are still being written or are not data: partial downloads, editor and temp files, our own side files. */
const IGNORED_NAME = /(^[.~])|\.(part|partial|tmp|temp|crdownload|filepart|swp|sha256|done)$|\.report\.json$/i;

/** A problem with the file as a whole: it goes to failed/ with this reason. */
class FileFailure extends Error {
	override name = "FileFailure";
}

type Prepared =
	| { kind: "event"; event: KnownCloudEvent; ignoredColumns: string[] }
	| { kind: "skip"; reason: string }
	| { kind: "fail"; code: DeadLetterCode; reason: string };

/** Turns one row into its event (or the reason it cannot be one). Pure apart from the clock the validator reads. */
export function prepareRow(kind: FileKind, p: RowPayload): Prepared {
	if (p.fields.length !== p.header.length) return { kind: "fail", code: "invalid_row", reason: `row has ${p.fields.length} fields, the header has ${p.header.length}` };
	const row = new Map<string, unknown>();
	p.header.forEach((h, i) => row.set(h, p.fields[i]));
	if (kind.filter) {
		const v = String(row.get(kind.filter.column) ?? "").trim().toLowerCase();
		if (!kind.filter.values.includes(v)) return { kind: "skip", reason: `${kind.filter.column} not one of ${kind.filter.values.join(", ")}` };
	}
	const mapped = mapRow(kind.mapping, row);
	if (!mapped.ok) return { kind: "fail", code: "invalid_row", reason: mapped.reason };
	let id = `${p.sha256.slice(0, 32)}:${p.row}`;
	if (kind.eventIdColumn !== undefined) {
		const natural = String(row.get(kind.eventIdColumn) ?? "").trim();
		if (natural === "") return { kind: "fail", code: "invalid_row", reason: `missing ${kind.eventIdColumn} (the kind's event id column)` };
		id = `${kind.name}:${natural}`;
	}
	const timeMs = mapped.timeMs ?? Date.parse(p.time);
	let data: Record<string, unknown>;
	if (kind.event === "crm.customer.updated") data = { profile: mapped.values };
	else data = Object.fromEntries(Object.entries(mapped.values).filter(([, v]) => v !== null));
	const v = validateEvent({
		specversion: "1.0", id, source: `/files/${kind.name}`, type: kind.event, subject: mapped.customerId,
		time: new Date(timeMs).toISOString(), data
	});
	return v.ok ? { kind: "event", event: v.event, ignoredColumns: mapped.ignoredColumns } : { kind: "fail", code: v.code, reason: v.reason };
}

function stamp(d = new Date()): string {
	return d.toISOString().replace(/[-:]/g, "").replace(".", "");
}

function errorText(err: unknown): string {
	return err instanceof Error ? err.message : String(err);
}

// Line breaks, other control characters and bidi overrides: a file name holding them must not forge or disguise a log line.
// eslint-disable-next-line no-control-regex -- control characters are exactly what this finds
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** `text` (a message quoting file names) as one log line: unprintable characters escaped as \uXXXX. */
export function oneLine(text: string): string {
	return text.replace(UNPRINTABLE, c => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** A row's dead letter: the same row of the same content dead-lettered again keeps one. */
function rowLetter(payload: RowPayload, code: DeadLetterCode, reason: string): Letter {
	return { code, reason, payload, dedupKey: `files/${payload.sha256}/${payload.row}` };
}

interface ImportOptions {
	kindName?: string;
	/** Move the file (and its side files) to processed/ or failed/ with the report; false leaves it where it is. */
	move: boolean;
}

export class FileInbox {
	private readonly sink: EventSink;
	private readonly logger: Logger;
	private readonly cfg: FilesConfig;
	private readonly concurrency: number;
	private readonly state: SourceStateStore;
	private readonly abort = new AbortController();
	private watcher: FSWatcher | null = null;
	private pollTimer: NodeJS.Timeout | null = null;
	private settleTimer: NodeJS.Timeout | null = null;
	private settleAt = Infinity;
	private scanRequested = false;
	private scanning: Promise<void> | null = null;
	private readonly seen = new Map<string, { size: number; mtimeMs: number; since: number }>();
	/** Files we could not move away: not picked up again until they change. */
	private readonly stuck = new Map<string, string>();
	private stopped = false;
	/** The report of the file being imported, for status. */
	current: FileReport | null = null;
	readonly recent: FileReport[] = [];

	constructor(sink: EventSink, logger: Logger, cfg: FilesConfig, concurrency: number, state: SourceStateStore) {
		this.sink = sink;
		this.logger = logger;
		this.cfg = cfg;
		this.concurrency = concurrency;
		this.state = state;
	}

	get inbox(): string {
		return this.cfg.inbox as string;
	}

	async start(): Promise<void> {
		for (const dir of [this.inbox, path.join(this.inbox, "processed"), path.join(this.inbox, "failed")]) await mkdir(dir, { recursive: true });
		try {
			this.watcher = watch(this.inbox, () => void this.requestScan());
			this.watcher.on("error", err => this.logger.warn(oneLine(`inbox watch failed (${errorText(err)}); the periodic scan continues`)));
		} catch (err) {
			this.logger.warn(`cannot watch ${this.inbox} (${errorText(err)}); relying on the scan every ${this.cfg.scanIntervalMs} ms`);
		}
		this.pollTimer = setInterval(() => void this.requestScan(), this.cfg.scanIntervalMs);
		this.pollTimer.unref();
		this.logger.info(`file drops: watching ${this.inbox} (kinds: ${this.cfg.kinds.map(k => k.name).join(", ")})`);
		void this.requestScan();
	}

	async stop(): Promise<void> {
		this.stopped = true;
		this.abort.abort();
		this.watcher?.close();
		if (this.pollTimer) clearInterval(this.pollTimer);
		if (this.settleTimer) clearTimeout(this.settleTimer);
		await this.scanning?.catch(() => undefined);
	}

	/** Asks for a scan; scans never overlap, and one requested during a scan runs right after it. */
	requestScan(): Promise<void> {
		this.scanRequested = true;
		if (this.scanning === null && !this.stopped) {
			this.scanning = (async () => {
				try {
					while (this.scanRequested && !this.stopped) {
						this.scanRequested = false;
						await this.scanOnce().catch(err => this.logger.error(oneLine(`inbox scan failed: ${errorText(err)}`)));
					}
				} finally {
					this.scanning = null;
				}
			})();
		}
		return this.scanning ?? Promise.resolve();
	}

	private scheduleSettledScan(delayMs: number): void {
		const at = Date.now() + delayMs;
		if (this.settleTimer && at >= this.settleAt) return;
		if (this.settleTimer) clearTimeout(this.settleTimer);
		this.settleAt = at;
		this.settleTimer = setTimeout(() => {
			this.settleTimer = null;
			this.settleAt = Infinity;
			void this.requestScan();
		}, delayMs + 5);
		this.settleTimer.unref();
	}

	/**
	 * A file is taken when it is complete: it has a `<name>.done` or `<name>.sha256` marker, or its size and mtime have
	 * not changed for FILES_SETTLE_MS. Temporary names (*.part, *.tmp, dot files) are never taken.
	 */
	private async scanOnce(): Promise<void> {
		const entries = await readdir(this.inbox, { withFileTypes: true });
		const names = new Set(entries.filter(e => e.isFile()).map(e => e.name));
		for (const name of [...this.seen.keys()]) if (!names.has(name)) this.seen.delete(name);
		for (const name of [...names].sort()) {
			if (this.stopped) return;
			if (IGNORED_NAME.test(name)) continue;
			let st;
			try {
				st = await stat(path.join(this.inbox, name));
			} catch {
				continue;
			}
			const version = `${st.size}:${st.mtimeMs}`;
			if (this.stuck.get(name) === version) continue;
			const marked = names.has(`${name}.done`) || names.has(`${name}.sha256`);
			if (!marked && this.cfg.settleMs > 0) {
				const now = Date.now();
				const prev = this.seen.get(name);
				if (!prev || prev.size !== st.size || prev.mtimeMs !== st.mtimeMs) {
					this.seen.set(name, { size: st.size, mtimeMs: st.mtimeMs, since: now });
					this.scheduleSettledScan(this.cfg.settleMs);
					continue;
				}
				if (now - prev.since < this.cfg.settleMs) {
					this.scheduleSettledScan(prev.since + this.cfg.settleMs - now);
					continue;
				}
			}
			this.seen.delete(name);
			const report = await this.importFile(path.join(this.inbox, name), { move: true });
			if (report.status !== "interrupted" && report.movedTo === undefined) this.stuck.set(name, version);
		}
	}

	private kindFor(name: string, kindName?: string): FileKind {
		if (kindName !== undefined) {
			const k = this.cfg.kinds.find(x => x.name === kindName);
			if (!k) throw new FileFailure(`unknown file kind "${kindName}" (kinds: ${this.cfg.kinds.map(x => x.name).join(", ")})`);
			return k;
		}
		const k = this.cfg.kinds.find(x => x.pattern.test(name));
		if (!k) throw new FileFailure(`no file kind matches the name "${name}" (kinds: ${this.cfg.kinds.map(x => `${x.name} ${x.pattern}`).join(", ")})`);
		return k;
	}

	/** Imports one file; never throws: the outcome is the report. */
	async importFile(file: string, opts: ImportOptions): Promise<FileReport> {
		const name = path.basename(file);
		const report: FileReport = {
			file: name, kind: null, status: "processed", startedAt: new Date().toISOString(),
			rows: { total: 0, ...newTally() }, ignoredColumns: [], problems: [], problemsOmitted: 0
		};
		this.current = report;
		const signal = this.abort.signal;
		try {
			const kind = this.kindFor(name, opts.kindName);
			report.kind = kind.name;
			const st = await stat(file);
			const expected = await this.readSideSha(file);
			const probe = await probeFile(file, signal);
			Object.assign(report, { sha256: probe.sha256, bytes: probe.bytes });
			if (expected !== null && expected !== probe.sha256) {
				throw new FileFailure(`checksum mismatch: ${name}.sha256 says ${expected}, the content hashes to ${probe.sha256}`);
			}
			const ledger = await this.state.get<{ file: string; importedAt: string }>(`files/${probe.sha256}`);
			if (ledger) {
				report.status = "duplicate";
				report.reason = `the same content was imported at ${ledger.importedAt} (as ${ledger.file}); nothing was sent again`;
			} else {
				const encoding = kind.encoding === "auto" ? probe.encoding : kind.encoding;
				Object.assign(report, { encoding, detectedBy: kind.encoding === "auto" ? probe.detectedBy : "configured" });
				await this.importRows(file, kind, probe.sha256, encoding, kind.encoding === "auto" ? probe.bomBytes : 0, st.mtime.toISOString(), report, signal);
				if (!signal.aborted) await this.state.set(`files/${probe.sha256}`, { file: name, importedAt: new Date().toISOString() });
			}
		} catch (err) {
			report.status = "failed";
			report.reason = err instanceof FileFailure ? err.message : `could not import: ${errorText(err)}`;
		}
		if (signal.aborted) {
			report.status = "interrupted";
			report.reason = "the node is stopping; the file stays in the inbox and is imported again (idempotently) on the next start";
		}
		report.finishedAt = new Date().toISOString();
		this.current = null;
		if (opts.move && report.status !== "interrupted") await this.moveAway(file, report);
		this.recent.unshift(report);
		this.recent.length = Math.min(this.recent.length, 20);
		const r = report.rows;
		const summary = `${name} (${report.kind ?? "no kind"}): ${report.status}${report.reason ? ` — ${report.reason}` : ""}; rows ${r.total}: ${r.applied} applied, ${r.duplicate} duplicate, ${r.deadLettered} dead-lettered, ${r.skipped} skipped`;
		if (report.status === "failed") this.logger.warn(oneLine(summary));
		else this.logger.info(oneLine(summary));
		return report;
	}

	private async readSideSha(file: string): Promise<string | null> {
		let text: string;
		try {
			text = await readFile(`${file}.sha256`, "utf8");
		} catch (err) {
			if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
			throw err;
		}
		const sha = parseSha256Text(text);
		if (sha === null) throw new FileFailure(`${path.basename(file)}.sha256 does not hold a sha-256 hex digest`);
		return sha;
	}

	private async moveAway(file: string, report: FileReport): Promise<void> {
		const dir = path.join(path.dirname(file), report.status === "failed" ? "failed" : "processed");
		const target = path.join(dir, `${stamp()}-${path.basename(file)}`);
		try {
			await mkdir(dir, { recursive: true });
			await rename(file, target);
			report.movedTo = path.relative(path.dirname(file), target);
			for (const side of [".sha256", ".done"]) await rename(file + side, target + side).catch(() => undefined);
			await writeFile(`${target}.report.json`, `${JSON.stringify(report, null, "\t")}\n`);
		} catch (err) {
			this.logger.error(oneLine(`cannot move ${file} to ${dir}: ${errorText(err)}; it is left in place and not retried until it changes`));
		}
	}

	private problem(report: FileReport, row: number, line: number, reason: string): void {
		if (report.problems.length < MAX_REPORTED_PROBLEMS) report.problems.push({ row, line, reason });
		else report.problemsOmitted++;
	}

	/** Outcomes the sink did not count itself (rows that never reached it). */
	private skip(report: FileReport): void {
		addToTally(report.rows, "skipped");
		this.sink.count("skipped");
	}

	private async deadLetter(report: FileReport, payload: RowPayload, code: DeadLetterCode, reason: string): Promise<void> {
		await this.sink.deadLetter(rowLetter(payload, code, reason));
		this.problem(report, payload.row, payload.line, reason);
		addToTally(report.rows, "dead_lettered");
	}

	private checkHeader(header: string[], kind: FileKind): void {
		const seen = new Set<string>();
		for (const h of header) {
			if (seen.has(h)) throw new FileFailure(`the header names column "${h}" twice`);
			seen.add(h);
		}
		const need = [kind.mapping.id.column];
		if (kind.mapping.time) need.push(kind.mapping.time.column);
		for (const f of kind.mapping.fields) if (f.required) need.push(f.column);
		if (kind.filter) need.push(kind.filter.column);
		if (kind.eventIdColumn) need.push(kind.eventIdColumn);
		const missing = need.filter(c => !seen.has(c));
		if (missing.length > 0) throw new FileFailure(`the header lacks column(s) ${missing.map(c => `"${c}"`).join(", ")} that kind "${kind.name}" needs`);
	}

	/** Streams the rows to the actors (bounded concurrency, order per customer kept); throws FileFailure for file-level problems. */
	private async importRows(file: string, kind: FileKind, sha256: string, encoding: string, skipBytes: number, time: string, report: FileReport, signal: AbortSignal): Promise<void> {
		const queue = new KeyedQueue(this.concurrency);
		const ignored = new Set<string>();
		let header: string[] | null = null;
		let row = 0;
		let unavailable: Error | null = null;
		let lastProgress = Date.now();
		const base = { kind: kind.name, file: report.file, sha256, time };
		for await (const item of csvRecords(file, { encoding, skipBytes, delimiter: kind.delimiter, signal })) {
			if (signal.aborted || unavailable) break;
			if (header === null) {
				if (isCsvError(item)) throw new FileFailure(`cannot read the header: ${item.error}`);
				header = item.fields.map(h => h.trim());
				this.checkHeader(header, kind);
				continue;
			}
			row++;
			report.rows.total++;
			const payload: RowPayload = { ...base, row, line: item.line, header, fields: isCsvError(item) ? [] : item.fields };
			try {
				if (isCsvError(item)) {
					await this.deadLetter(report, payload, "unreadable_row", item.error);
					continue;
				}
				const prepared = prepareRow(kind, payload);
				if (prepared.kind === "skip") {
					this.skip(report);
					continue;
				}
				if (prepared.kind === "fail") {
					await this.deadLetter(report, payload, prepared.code, prepared.reason);
					continue;
				}
				for (const c of prepared.ignoredColumns) ignored.add(c);
				const event = prepared.event;
				await queue.push(event.subject, async () => {
					if (unavailable || signal.aborted) return;
					const stop = await this.sink.deliverOrDeadLetter(event, { signal }, (reason, code) => rowLetter(payload, code, reason), (outcome, reason) => {
						addToTally(report.rows, outcome);
						if (reason !== undefined) this.problem(report, payload.row, payload.line, reason);
					});
					// The first unavailable row stops the file: later rows skip instead of each waiting out its retries.
					if (stop) unavailable ??= stop;
				});
			} catch (err) {
				if (!(err instanceof DeliveryUnavailable)) throw err;
				unavailable = err;
			}
			if (Date.now() - lastProgress >= PROGRESS_EVERY_MS) {
				lastProgress = Date.now();
				const r = report.rows;
				this.logger.info(oneLine(`${report.file}: ${r.total} rows read — ${r.applied} applied, ${r.duplicate} duplicate, ${r.deadLettered} dead-lettered, ${r.skipped} skipped`));
			}
		}
		try {
			await queue.drain();
		} catch (err) {
			if (!(err instanceof DeliveryUnavailable)) throw err;
			unavailable ??= err;
		}
		report.ignoredColumns = [...ignored];
		if (header === null && !signal.aborted) throw new FileFailure("the file is empty (no header line)");
		if (unavailable) throw new FileFailure(`stopped: ${unavailable.message}; rows already sent are kept, dropping the file again re-sends only what is missing`);
	}

	/** Re-processes a dead-lettered row (deadLetters.retry). */
	async retryRow(payload: RowPayload): Promise<RetryOutcome> {
		const kind = this.cfg.kinds.find(k => k.name === payload?.kind);
		if (!kind) throw contractError("INVALID_PAYLOAD", `unknown file kind ${JSON.stringify(payload?.kind)}`);
		if (!Array.isArray(payload.header) || !Array.isArray(payload.fields) || payload.fields.length === 0) {
			throw contractError("INVALID_PAYLOAD", "the row could not be read from the file; fix the file and drop it again");
		}
		const prepared = prepareRow(kind, payload);
		if (prepared.kind === "fail") throw contractError("INVALID_ROW", `still invalid: ${prepared.reason}`, { reason: prepared.reason });
		if (prepared.kind === "skip") return { outcome: "skipped" satisfies ItemOutcome };
		return { outcome: await this.sink.deliver(prepared.event) };
	}
}
