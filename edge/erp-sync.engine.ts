// The ERP sync engine of ingest-erp: the nightly ERP→CRM customer sync done right — incremental by an (updated_at,
// primary key) cursor kept durably, full resync on demand, mapped and type-coerced rows sent as crm.customer.updated
// through the source's sink, scheduled by cron.
import { createHash } from "node:crypto";
import { CronExpressionParser } from "cron-parser";
import pg from "pg";
import type { Logger } from "moleculer";
import type { ErpConfig } from "../config/sources.config.ts";
import { validateEvent } from "../models/cloud-event.validator.ts";
import type { KnownCloudEvent } from "../models/event-data.schemas.ts";
import { mapRow, mappingFingerprint, parseDateTimeText } from "../models/field-mapping.ts";
import type { DeadLetterCode, ErpRowPayload, ErpWatermark, RetryOutcome, SyncSummary } from "../models/contract/index.ts";
import { KeyedQueue } from "../lib/keyed.queue.ts";
import { contractError } from "../runtime/contract-error.ts";
import type { SourceStateStore } from "../adapters/source-state.store.ts";
import { addToTally, DeliveryUnavailable, newTally, type EventSink, type Letter } from "./event.sink.ts";
/** Longest a setTimeout can wait; a later cron run is reached by re-arming. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** A lease longer than any sane run; it only matters if a node dies mid-run (the next run waits it out). */
const LOCK_TTL_MS = 30 * 60_000;
/** Distinct customer ids remembered per run to count primary-key conflicts (memory bound for huge tables). */
const MAX_TRACKED_IDS = 1_000_000;

function quoteIdent(name: string): string {
	return name.split(".").map(p => `"${p.replace(/"/g, "\"\"")}"`).join(".");
}

/** The paged, ordered read. Rows with a NULL updated_at never sync (they have no place in the order). */
export function buildQueries(cfg: Pick<ErpConfig, "table" | "query" | "keyColumn" | "updatedAtColumn">): { first: string; next: string } {
	const src = cfg.query !== undefined ? `(${cfg.query}) AS src` : `${quoteIdent(cfg.table)} AS src`;
	const u = `src.${quoteIdent(cfg.updatedAtColumn)}`;
	const k = `src.${quoteIdent(cfg.keyColumn)}`;
	return {
		first: `SELECT src.* FROM ${src} WHERE ${u} IS NOT NULL ORDER BY ${u}, ${k} LIMIT $1`,
		// Row comparison: rows after the cursor, including those with the same updated_at and a greater key.
		next: `SELECT src.* FROM ${src} WHERE ${u} IS NOT NULL AND (${u}, ${k}) > ($1, $2) ORDER BY ${u}, ${k} LIMIT $3`
	};
}

/** Values as they can travel in a dead letter (JSON). */
function jsonSafe(v: unknown): unknown {
	if (v === null || typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v))) return v;
	if (typeof v === "bigint") return v.toString();
	if (v instanceof Date) return v.toISOString();
	if (Buffer.isBuffer(v)) return v.toString("base64");
	try {
		return JSON.parse(JSON.stringify(v)) as unknown;
	} catch {
		return String(v);
	}
}

// Dates and timestamps stay PostgreSQL's own text (session TimeZone UTC): no local-time guessing in the driver, and
// the watermark keeps microseconds, which a JS Date would cut to milliseconds.
const DATE_TIME_OIDS = new Set([1082, 1083, 1114, 1184, 1266]);
const pgTypes = {
	getTypeParser: ((oid: number, format?: string) =>
		DATE_TIME_OIDS.has(oid) ? (v: string) => v : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser
};

type Prepared = { kind: "event"; event: KnownCloudEvent } | { kind: "fail"; code: DeadLetterCode; reason: string };

export class ErpSync {
	private readonly sink: EventSink;
	private readonly logger: Logger;
	private readonly cfg: ErpConfig;
	private readonly concurrency: number;
	private readonly state: SourceStateStore;
	private readonly pool: pg.Pool;
	private readonly queries: { first: string; next: string };
	private readonly mappingTag: string;
	private readonly exclude: ReadonlySet<string>;
	private readonly stateKey: string;
	private readonly abort = new AbortController();
	private timer: NodeJS.Timeout | null = null;
	private chain: Promise<unknown> = Promise.resolve();
	private running: SyncSummary | null = null;
	private stopped = false;
	nextRunAt: Date | null = null;
	lastRun: SyncSummary | null = null;

	constructor(sink: EventSink, logger: Logger, cfg: ErpConfig, concurrency: number, state: SourceStateStore) {
		this.sink = sink;
		this.logger = logger;
		this.cfg = cfg;
		this.concurrency = concurrency;
		this.state = state;
		this.pool = new pg.Pool({
			connectionString: cfg.databaseUrl, max: 2, types: pgTypes,
			options: "-c TimeZone=UTC -c DateStyle=ISO,YMD", connectionTimeoutMillis: 10_000, idleTimeoutMillis: 30_000
		});
		// An idle client losing its connection must not crash the process; the next query reconnects.
		this.pool.on("error", err => this.logger.warn(`ERP database connection lost: ${err.message}`));
		this.queries = buildQueries(cfg);
		// The mapping is part of an event's identity: after a mapping change a full resync applies again; with the same
		// mapping a re-run is a duplicate.
		this.mappingTag = createHash("sha256").update(mappingFingerprint(cfg.mapping)).digest("hex").slice(0, 8);
		this.exclude = new Set([cfg.keyColumn, cfg.updatedAtColumn]);
		this.stateKey = `erp/${cfg.query !== undefined ? `query-${createHash("sha256").update(cfg.query).digest("hex").slice(0, 12)}` : cfg.table}`;
	}

	get sourceName(): string {
		return this.cfg.query !== undefined ? "query" : this.cfg.table;
	}

	start(): void {
		this.logger.info(`ERP sync: ${this.cfg.query !== undefined ? "custom query" : `table ${this.cfg.table}`}, key ${this.cfg.keyColumn}, cursor ${this.cfg.updatedAtColumn}, mapping ${this.cfg.mappingSource}; ${this.cfg.cron ? `schedule "${this.cfg.cron}" (${this.cfg.cronTz})` : "no schedule (on demand only)"}`);
		this.schedule();
	}

	async stop(): Promise<void> {
		this.stopped = true;
		if (this.timer) clearTimeout(this.timer);
		this.abort.abort();
		await this.chain.catch(() => undefined);
		await this.pool.end().catch(() => undefined);
	}

	private schedule(): void {
		if (!this.cfg.cron || this.stopped) return;
		const next = CronExpressionParser.parse(this.cfg.cron, { tz: this.cfg.cronTz, currentDate: new Date() }).next().toDate();
		this.nextRunAt = next;
		const delay = next.getTime() - Date.now();
		this.timer = setTimeout(() => {
			if (delay > MAX_TIMER_MS) return this.schedule();
			this.onTick();
		}, Math.max(0, Math.min(delay, MAX_TIMER_MS)));
		this.timer.unref();
	}

	private onTick(): void {
		if (this.running) {
			this.logger.warn(`ERP sync: the scheduled run at ${this.nextRunAt?.toISOString()} is skipped, the previous run is still going`);
		} else {
			this.sync(false, "cron").catch(err => this.logger.error(`ERP sync failed: ${(err as Error).message}`));
		}
		this.schedule();
	}

	/** Runs a sync after any run in progress (runs never overlap); resolves with its summary. */
	sync(full: boolean, trigger: SyncSummary["trigger"]): Promise<SyncSummary> {
		const run = this.chain.catch(() => undefined).then(() => this.run(full, trigger));
		this.chain = run;
		return run;
	}

	get status() {
		return { running: this.running, lastRun: this.lastRun, nextRunAt: this.nextRunAt?.toISOString() ?? null };
	}

	watermark(): Promise<ErpWatermark | undefined> {
		return this.state.get<ErpWatermark>(this.stateKey);
	}

	private async run(full: boolean, trigger: SyncSummary["trigger"]): Promise<SyncSummary> {
		const summary: SyncSummary = {
			trigger, full, startedAt: new Date().toISOString(), rows: 0, batches: 0, tally: newTally(), conflicts: 0,
			watermarkBefore: null, watermarkAfter: null
		};
		if (this.stopped) return { ...summary, skipped: "the service is stopping" };
		const release = await this.state.tryLock(this.stateKey, LOCK_TTL_MS);
		if (!release) {
			summary.skipped = "another node is running this sync";
			this.logger.info(`ERP sync skipped: ${summary.skipped}`);
			return summary;
		}
		this.running = summary;
		try {
			await this.runBatches(full, summary);
		} catch (err) {
			summary.error = (err as Error).message;
		} finally {
			this.running = null;
			await release().catch(err => this.logger.warn(`ERP sync lock not released: ${(err as Error).message}`));
		}
		summary.finishedAt = new Date().toISOString();
		this.lastRun = summary;
		const t = summary.tally;
		const line = `ERP sync (${trigger}${full ? ", full" : ""}): ${summary.rows} rows in ${summary.batches} batches — ${t.applied} applied, ${t.duplicate} duplicate, ${t.deadLettered} dead-lettered; ${summary.conflicts} customer ids hit by more than one row; watermark ${summary.watermarkAfter ? `${summary.watermarkAfter.updatedAt} / ${summary.watermarkAfter.key}` : "none"}`;
		if (summary.error) this.logger.error(`${line}; stopped early: ${summary.error}`);
		else this.logger.info(line);
		return summary;
	}

	private async runBatches(full: boolean, summary: SyncSummary): Promise<void> {
		const stored = (await this.watermark()) ?? null;
		summary.watermarkBefore = stored;
		summary.watermarkAfter = stored;
		let cursor = full ? null : stored;
		const seen = new Map<string, number>();
		const signal = this.abort.signal;
		for (;;) {
			if (signal.aborted) throw new Error("the service is stopping");
			const res = cursor === null
				? await this.pool.query({ text: this.queries.first, values: [this.cfg.batchSize], rowMode: "array" })
				: await this.pool.query({ text: this.queries.next, values: [cursor.updatedAt, cursor.key, this.cfg.batchSize], rowMode: "array" });
			const columns = res.fields.map(f => f.name);
			const keyAt = columns.indexOf(this.cfg.keyColumn);
			const updAt = columns.indexOf(this.cfg.updatedAtColumn);
			if (keyAt === -1 || updAt === -1) throw new Error(`the ERP rows have no "${keyAt === -1 ? this.cfg.keyColumn : this.cfg.updatedAtColumn}" column`);
			const rows = res.rows as unknown[][];
			if (rows.length === 0) break;
			summary.batches++;
			const queue = new KeyedQueue(this.concurrency);
			let unavailable: Error | null = null;
			for (const values of rows) {
				summary.rows++;
				const payload: ErpRowPayload = {
					table: this.sourceName, key: String(values[keyAt]), updatedAt: String(values[updAt]), columns, values: values.map(jsonSafe)
				};
				const prepared = this.prepare(payload);
				try {
					if (prepared.kind === "fail") {
						await this.sink.deadLetter(this.letter(payload, prepared.code, prepared.reason));
						addToTally(summary.tally, "dead_lettered");
						continue;
					}
					const event = prepared.event;
					const hits = (seen.get(event.subject) ?? 0) + 1;
					if (hits === 2) summary.conflicts++;
					if (seen.size < MAX_TRACKED_IDS || hits > 1) seen.set(event.subject, hits);
					// Rows are pushed in (updated_at, key) order and the queue keeps order per customer: of two rows for one
					// customer the later one is applied last, and event-time last-writer-wins agrees.
					await queue.push(event.subject, async () => {
						if (unavailable) return;
						const stop = await this.sink.deliverOrDeadLetter(event, { signal }, (reason, code) => this.letter(payload, code, reason), outcome => addToTally(summary.tally, outcome));
						// The first unavailable row stops the run: later rows skip instead of each waiting out its retries.
						if (stop) unavailable ??= stop;
					});
				} catch (err) {
					if (!(err instanceof DeliveryUnavailable)) throw err;
					unavailable = err;
					break;
				}
			}
			try {
				await queue.drain();
			} catch (err) {
				if (!(err instanceof DeliveryUnavailable)) throw err;
				unavailable ??= err;
			}
			// The watermark moves only past a batch whose every row is applied or dead-lettered.
			if (unavailable) throw new Error(`stopped at a row that could not be delivered (${unavailable.message}); the next run resumes after ${cursor ? `${cursor.updatedAt} / ${cursor.key}` : "the start"}`);
			const last = rows[rows.length - 1];
			cursor = { updatedAt: String(last[updAt]), key: String(last[keyAt]), at: new Date().toISOString() };
			await this.state.set(this.stateKey, cursor);
			summary.watermarkAfter = cursor;
			const t = summary.tally;
			this.logger.info(`ERP sync: ${summary.rows} rows so far (${t.applied} applied, ${t.duplicate} duplicate, ${t.deadLettered} dead-lettered), at ${cursor.updatedAt} / ${cursor.key}`);
			if (rows.length < this.cfg.batchSize) break;
		}
	}

	/** Maps one row to its event: id from (table, key, updated_at) and the mapping, time = updated_at. */
	prepare(p: ErpRowPayload): Prepared {
		if (!Array.isArray(p.columns) || !Array.isArray(p.values) || p.columns.length !== p.values.length) return { kind: "fail", code: "invalid_row", reason: "malformed row payload" };
		const row = new Map<string, unknown>();
		p.columns.forEach((c, i) => row.set(c, p.values[i]));
		const mapped = mapRow(this.cfg.mapping, row, { exclude: this.exclude });
		if (!mapped.ok) return { kind: "fail", code: "invalid_row", reason: mapped.reason };
		const timeMs = mapped.timeMs ?? parseDateTimeText(p.updatedAt);
		if (!Number.isFinite(timeMs)) return { kind: "fail", code: "invalid_row", reason: `column "${this.cfg.updatedAtColumn}": ${JSON.stringify(p.updatedAt)} is not a date-time` };
		const v = validateEvent({
			specversion: "1.0",
			id: `${p.key}@${p.updatedAt}#${this.mappingTag}`,
			source: `/erp/${this.sourceName}`,
			type: "crm.customer.updated",
			subject: mapped.customerId,
			time: new Date(timeMs).toISOString(),
			data: { profile: mapped.values }
		});
		return v.ok ? { kind: "event", event: v.event } : { kind: "fail", code: v.code, reason: v.reason };
	}

	/** A row's dead letter: the same row version under the same mapping, read again, keeps one. */
	private letter(payload: ErpRowPayload, code: DeadLetterCode, reason: string): Letter {
		return { code, reason, payload, dedupKey: `erp/${payload.table}/${payload.key}@${payload.updatedAt}#${this.mappingTag}` };
	}

	/** Re-processes a dead-lettered row (deadLetters.retry) with the current mapping. */
	async retryRow(payload: ErpRowPayload): Promise<RetryOutcome> {
		const prepared = this.prepare(payload);
		if (prepared.kind === "fail") throw contractError("INVALID_ROW", `still invalid: ${prepared.reason}`, { reason: prepared.reason });
		return { outcome: await this.sink.deliver(prepared.event) };
	}
}
