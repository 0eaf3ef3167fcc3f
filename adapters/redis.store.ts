// Shared ActorStore on Redis (ioredis): one Lua script makes each compare-and-set save atomic with its journal and indexes.
// saveBatch sends the whole batch in one round trip: a pipeline of script calls of up to 100 writes each; loadMany
// reads many customers (snapshot + journal tail) with one script call per 500.
// Key layout (prefix defaults to "crm:"):
//   {prefix}customer:{id}   string  the snapshot: a state as JSON, written with "version" as its first key (see stateJson)
//   {prefix}journal:{id}    list    journal entries as JSON ("version" first), newest at the head, trimmed to journalMax
//   {prefix}risk            zset    member = customer id, score = risk score (every stored customer is in it)
//   {prefix}reminders       zset    member = customer id, score = earliest reminder (ms); absent without reminders
//   {prefix}changes         stream  the store-wide change feed: one entry per journal entry with a change record, field
//                           "e" = { customerId, version, riskScore, appliedAt, change } as JSON, XADDed by the same
//                           script as the save (so its order is the commit order), capped at about feedMax entries
// Event-sourced (with a `replay`): a customer's version is the larger of its snapshot's and its newest journal entry's;
// a journal-only write appends entries after a compare-and-set on that version, and load replays the entries newer
// than the snapshot. Without `replay` every write carries its snapshot and the journal is history only.
// One script touches several customers' keys, so this layout is for a single Redis (or a primary), not Redis Cluster.
import { Redis, type ChainableCommander } from "ioredis";
import { DEFAULT_FEED_MAX, nextReminderAt, type ActorStore, type ActorWrite, type JournalEntry, type LoadedActor, type ReminderRow, type RiskRow, type WriteResult } from "../actors/host/actor-store.ts";
import type { CustomerState } from "../models/customer-state.ts";
import type { Replay } from "../actors/host/replay.ts";
import { compareCursors, FEED_END, FEED_START, type FeedItem, type FeedPage } from "../models/change-record.ts";

export interface RedisActorStoreOptions {
	url: string;
	keyPrefix?: string;
	/** Journal entries kept per customer. */
	journalMax?: number;
	/** Changes kept in the store-wide feed (XADD MAXLEN ~, so Redis may keep a few more). */
	feedMax?: number;
	/** Rebuilds a state from snapshot + journal tail; given, the store is event-sourced (accepts journal-only writes). */
	replay?: Replay;
	/** Where connection errors are reported (at most one line per 10 s); stderr when absent. */
	logger?: { warn(...args: unknown[]): void };
}

/** Connection errors repeat every reconnect attempt while Redis is down: report one per this interval. */
const ERROR_REPORT_INTERVAL_MS = 10_000;

const DEFAULTS = { keyPrefix: "crm:", journalMax: 1000, feedMax: DEFAULT_FEED_MAX };

/**
 * Compare-and-set saves of several customers, each atomic on its own (as is the whole call).
 * KEYS: risk index, reminders index, change feed, then customer key and journal key of each write.
 * ARGV: journalMax, feedMax, then per write: id, expected version, snapshot JSON ("" = journal only, keep the
 * snapshot), risk score ("" = unchanged), next reminder ("" = none, "=" = unchanged), the prefix the newest journal
 * entry must start with ("" = no such check; see ActorWrite.after), number n of journal entries, the n entries (oldest
 * first), then n feed items ("" = none for that entry), XADDed to the change feed in that order.
 * Returns one number per write: -2 saved, -1 conflict with no such customer, -3 unreadable stored state, -4 the
 * expected version but another writer's newest entry (a chained write), else the conflicting current version. Versions are read from the first bytes of the snapshot and of the newest
 * journal entry, so a save never decodes a state.
 */
const CAS_SAVE_LUA = `
local riskKey, remindersKey, feedKey = KEYS[1], KEYS[2], KEYS[3]
local journalMax, feedMax = tonumber(ARGV[1]), ARGV[2]
local out = {}
local a, k, w = 3, 4, 0
while a <= #ARGV do
	w = w + 1
	local customerKey, journalKey = KEYS[k], KEYS[k + 1]
	local id, expected, json, score, due, after = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
	local n = tonumber(ARGV[a + 6])
	local first = a + 7
	local last = first + n - 1
	k, a = k + 2, last + n + 1
	local head = redis.call("GETRANGE", customerKey, 0, 40)
	local current = -1
	if head ~= "" then current = tonumber(string.match(head, '^{"version":(%d+)')) or -3 end
	if current ~= -3 then
		local top = redis.call("LINDEX", journalKey, 0)
		if top then
			local v = tonumber(string.match(top, '^{"version":(%d+)'))
			if v and v > current then current = v end
		end
		-- A chained write: the newest entry must be the one it builds on, not only carry its version.
		if after ~= "" and current == expected and (not top or string.sub(top, 1, #after) ~= after) then current = -4 end
	end
	if current == -4 or current == -3 then
		out[w] = current
	elseif (current == -1 and expected ~= 0) or (current ~= -1 and (expected == 0 or current ~= expected)) then
		out[w] = current
	else
		if json ~= "" then redis.call("SET", customerKey, json) end
		if last >= first then
			-- In chunks: unpack() of thousands of values would overflow the Lua stack.
			local length = 0
			for i = first, last, 500 do
				length = redis.call("LPUSH", journalKey, unpack(ARGV, i, math.min(i + 499, last)))
			end
			if length > journalMax then redis.call("LTRIM", journalKey, 0, journalMax - 1) end
			for i = last + 1, last + n do
				if ARGV[i] ~= "" then redis.call("XADD", feedKey, "MAXLEN", "~", feedMax, "*", "e", ARGV[i]) end
			end
		end
		if score ~= "" then redis.call("ZADD", riskKey, score, id) end
		if due == "" then redis.call("ZREM", remindersKey, id) elseif due ~= "=" then redis.call("ZADD", remindersKey, due, id) end
		out[w] = -2
	end
end
return out
`;

/**
 * Snapshot + journal tail of several customers, read atomically per customer.
 * KEYS: customer key and journal key of each customer. Returns per customer { snapshot or nil, tail entries newest
 * first }: the entries whose version is above the snapshot's (all of them without a snapshot).
 */
const LOAD_LUA = `
local out = {}
for i = 1, #KEYS, 2 do
	local snap = redis.call("GET", KEYS[i])
	local snapVersion = 0
	if snap then snapVersion = tonumber(string.match(snap, '^{"version":(%d+)')) or 0 end
	local row = { snap }
	local top = redis.call("LINDEX", KEYS[i + 1], 0)
	if top then
		local v = tonumber(string.match(top, '^{"version":(%d+)'))
		if v and v > snapVersion then
			local tail = redis.call("LRANGE", KEYS[i + 1], 0, v - snapVersion - 1)
			for j = 1, #tail do row[j + 1] = tail[j] end
		end
	end
	out[#out + 1] = row
end
return out
`;

/**
 * One customer's journal entries above a version, oldest first. KEYS: journal key. ARGV: afterVersion, limit. The
 * list holds one entry per version, newest at the head, so the entries wanted sit at known indexes below the head's.
 */
const JOURNAL_SINCE_LUA = `
local top = redis.call("LINDEX", KEYS[1], 0)
if not top then return {} end
local v = tonumber(string.match(top, '^{"version":(%d+)'))
local after, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
if not v or v <= after then return {} end
local stop = v - after - 1
local start = stop - limit + 1
if start < 0 then start = 0 end
return redis.call("LRANGE", KEYS[1], start, stop)
`;

/** Customers per load script call: bounded so one call does not hold Redis for long. */
const LOAD_CHUNK = 500;

/**
 * Writes per script call. One call per write costs Redis a Lua invocation each and, with appendfsync always, an
 * fsync per 16 KB it reads; a few large calls cost a few (1000 writes of 1 KB states, appendfsync always, on a
 * 2-vCPU box: 54–71 ms median as one call per write, 28–39 ms in calls of 100). Capped so that one call does not
 * block Redis for more than about a millisecond.
 */
const CHUNK_WRITES = 100;
const CHUNK_BYTES = 1 << 20;

/** The script as ioredis exposes it once defined (on the client and on its pipelines). */
interface CasSaveCommand {
	crmActorCasSave(numberOfKeys: number, ...keysAndArgs: (string | number)[]): unknown;
	crmActorLoad(numberOfKeys: number, ...keys: string[]): unknown;
	crmActorJournalSince(numberOfKeys: number, ...keysAndArgs: (string | number)[]): unknown;
}

/**
 * A journal entry's JSON with "version" first, where the scripts read it (entryHead is its fixed prefix), and the
 * change feed's copy of it ("" without a change record: the event itself stays in the journal). The change record is
 * serialised once for both.
 */
function entryAndFeedJson(e: JournalEntry): [string, string] {
	const change = e.change === undefined ? undefined : JSON.stringify(e.change);
	const what = e.merge !== undefined ? `"merge":${JSON.stringify(e.merge)}`
		: e.reminder === undefined ? `"event":${JSON.stringify(e.event)}` : `"reminder":${JSON.stringify(e.reminder)}`;
	const entry = `${entryHead(e)}"riskScore":${e.riskScore},${what}${change === undefined ? "" : `,"change":${change}`}}`;
	const feed = change === undefined ? "" : `{"customerId":${JSON.stringify(e.customerId)},"version":${e.version},"riskScore":${e.riskScore},"appliedAt":${e.appliedAt},"change":${change}}`;
	return [entry, feed];
}

/** The start of entryJson(e) that names the entry exactly (version, customer, event key, when it was applied). */
function entryHead(e: JournalEntry): string {
	return `{"version":${e.version},"customerId":${JSON.stringify(e.customerId)},"key":${JSON.stringify(e.key)},"appliedAt":${e.appliedAt},`;
}

/** The state's JSON with "version" first, where the script's CAS check reads it; still plain JSON for load. */
function stateJson(state: CustomerState): string {
	if (!Number.isSafeInteger(state.version) || state.version < 0) throw new Error(`customer ${state.id}: version ${state.version} is not a non-negative integer`);
	const json = JSON.stringify(state);
	if (json.startsWith('{"version":')) return json;
	const { version, ...rest } = state;
	return JSON.stringify({ version, ...rest });
}

export class RedisActorStore implements ActorStore {
	readonly kind = "redis";
	readonly shared = true;
	readonly eventSourced: boolean;
	/** One connection: pipelined script calls run in the order they were sent. */
	readonly chainsWrites = true;
	private readonly replay: Replay | undefined;
	private readonly redis: Redis;
	private readonly prefix: string;
	private readonly journalMax: number;
	private readonly feedMax: number;

	constructor(opts: RedisActorStoreOptions) {
		if (!opts.url) throw new Error("RedisActorStore: option `url` is required");
		this.prefix = opts.keyPrefix ?? DEFAULTS.keyPrefix;
		this.journalMax = opts.journalMax ?? DEFAULTS.journalMax;
		this.feedMax = opts.feedMax ?? DEFAULTS.feedMax;
		this.replay = opts.replay;
		this.eventSourced = opts.replay !== undefined;
		if (!Number.isInteger(this.journalMax) || this.journalMax < 1) throw new Error(`RedisActorStore: option \`journalMax\` must be a positive integer, got ${opts.journalMax}`);
		this.redis = new Redis(opts.url, { lazyConnect: true, enableAutoPipelining: true });
		// Without a listener ioredis prints every reconnect failure as an "unhandled error"; calls still fail on their own.
		let lastReport = 0;
		this.redis.on("error", (err: Error) => {
			const now = Date.now();
			if (now - lastReport < ERROR_REPORT_INTERVAL_MS) return;
			lastReport = now;
			const line = `Redis actor store: connection error (retrying): ${err.message}`;
			if (opts.logger) opts.logger.warn(line);
			else console.warn(line);
		});
		this.redis.defineCommand("crmActorCasSave", { lua: CAS_SAVE_LUA });
		this.redis.defineCommand("crmActorLoad", { lua: LOAD_LUA });
		this.redis.defineCommand("crmActorJournalSince", { lua: JOURNAL_SINCE_LUA });
	}

	private customerKey(id: string): string {
		return `${this.prefix}customer:${id}`;
	}

	private journalKey(id: string): string {
		return `${this.prefix}journal:${id}`;
	}

	private get riskKey(): string {
		return `${this.prefix}risk`;
	}

	private get remindersKey(): string {
		return `${this.prefix}reminders`;
	}

	private get feedKey(): string {
		return `${this.prefix}changes`;
	}

	async connect(): Promise<void> {
		await this.redis.connect();
	}

	async close(): Promise<void> {
		if (this.redis.status === "end") return;
		try {
			await this.redis.quit();
		} catch {
			// Already closing or never connected: nothing left to flush.
			this.redis.disconnect();
		}
	}

	async load(id: string): Promise<CustomerState | null> {
		const [loaded] = await this.loadMany([id]);
		return loaded ? loaded.state : null;
	}

	async loadMany(ids: readonly string[]): Promise<Array<LoadedActor | null>> {
		if (ids.length === 0) return [];
		const client = this.redis as Redis & CasSaveCommand;
		const calls: Promise<unknown>[] = [];
		for (let i = 0; i < ids.length; i += LOAD_CHUNK) {
			const keys: string[] = [];
			for (const id of ids.slice(i, i + LOAD_CHUNK)) keys.push(this.customerKey(id), this.journalKey(id));
			calls.push(client.crmActorLoad(keys.length, ...keys) as Promise<unknown>);
		}
		const rows = (await Promise.all(calls)).flat() as Array<Array<string | null>>;
		return ids.map((id, i) => this.rebuild(id, rows[i]));
	}

	private rebuild(id: string, row: Array<string | null>): LoadedActor | null {
		const snapshot = row[0] ? JSON.parse(row[0]) as CustomerState : null;
		if (row.length <= 1) return snapshot ? { state: snapshot, sinceSnapshot: 0 } : null;
		if (!this.replay) throw new Error(`Redis actor store: customer ${id} has ${row.length - 1} journal entries past its snapshot and this store has no replay`);
		const tail: JournalEntry[] = [];
		for (let j = row.length - 1; j >= 1; j--) tail.push(JSON.parse(row[j] as string) as JournalEntry);
		return { state: this.replay(id, snapshot, tail), sinceSnapshot: tail.length };
	}

	async saveBatch(writes: ActorWrite[]): Promise<WriteResult[]> {
		if (writes.length === 0) return [];
		// One pipeline, one round trip; calls and the writes inside them run in order, so two writes of one customer chain.
		const pipeline = this.redis.pipeline();
		const cas = pipeline as ChainableCommander & CasSaveCommand;
		const chunkSizes: number[] = [];
		let keys: string[] = [];
		let args: (string | number)[] = [];
		let bytes = 0;
		const send = () => {
			chunkSizes.push((keys.length - 3) / 2);
			cas.crmActorCasSave(keys.length, ...keys, ...args);
		};
		for (const w of writes) {
			if (keys.length === 0) {
				keys = [this.riskKey, this.remindersKey, this.feedKey];
				args = [this.journalMax, this.feedMax];
				bytes = 0;
			}
			if (w.snapshot === false && !this.eventSourced) throw new Error(`Redis actor store: a journal-only write of customer ${w.id}, but this store has no replay`);
			const json = w.snapshot === false ? "" : stateJson(w.state);
			const journal: string[] = new Array(w.journal.length);
			const feed: string[] = new Array(w.journal.length);
			for (let i = 0; i < w.journal.length; i++) [journal[i], feed[i]] = entryAndFeedJson(w.journal[i]);
			const dueAt = nextReminderAt(w.state);
			// Index updates the base state says are no-ops are left out (the risk score moves on a minority of events).
			const base = w.expectedVersion > 0 ? w.base : undefined;
			const score = base && base.risk.score === w.state.risk.score ? "" : w.state.risk.score;
			const due = base && nextReminderAt(base) === dueAt ? "=" : dueAt === null ? "" : String(dueAt);
			keys.push(this.customerKey(w.id), this.journalKey(w.id));
			args.push(w.id, w.expectedVersion, json, score, due, w.after ? entryHead(w.after) : "", journal.length, ...journal);
			for (const item of feed) {
				args.push(item);
				bytes += item.length;
			}
			bytes += json.length + journal.reduce((n, e) => n + e.length, 0);
			if ((keys.length - 3) / 2 >= CHUNK_WRITES || bytes >= CHUNK_BYTES) {
				send();
				keys = [];
			}
		}
		if (keys.length > 0) send();

		const replies = await pipeline.exec();
		if (replies === null) throw new Error("Redis actor store: the batch was discarded (connection lost)");
		const codes: number[] = [];
		replies.forEach(([err, reply], c) => {
			if (err) throw new Error(`Redis actor store: saving ${chunkSizes[c]} customers failed: ${err.message}`, { cause: err });
			codes.push(...(reply as number[]));
		});
		return writes.map((w, i): WriteResult => {
			const code = codes[i];
			if (code === -2) return { id: w.id, ok: true };
			if (code === -3) throw new Error(`Redis actor store: the stored state of customer ${w.id} does not start with its version`);
			// -4: the version is the expected one, but another writer's (the write this one was chained on lost).
			return { id: w.id, ok: false, currentVersion: code === -1 ? null : code === -4 ? w.expectedVersion : code };
		});
	}

	async journal(id: string, limit: number): Promise<JournalEntry[]> {
		if (limit <= 0) return [];
		const items = await this.redis.lrange(this.journalKey(id), 0, limit - 1);
		return items.map(item => JSON.parse(item) as JournalEntry);
	}

	async journalSince(id: string, afterVersion: number, limit: number): Promise<JournalEntry[]> {
		if (limit <= 0) return [];
		const client = this.redis as Redis & CasSaveCommand;
		const items = await client.crmActorJournalSince(1, this.journalKey(id), afterVersion, limit) as string[];
		// Entries of journals written before reminders were journaled may skip versions: keep only what was asked for.
		return items.map(item => JSON.parse(item) as JournalEntry).filter(e => e.version > afterVersion).reverse();
	}

	async changesSince(cursor: string, limit: number): Promise<FeedPage> {
		if (cursor === FEED_END) {
			const newest = await this.redis.xrevrange(this.feedKey, "+", "-", "COUNT", 1);
			return { items: [], cursor: newest.length > 0 ? newest[0][0] : FEED_START, trimmed: false };
		}
		if (limit <= 0) return { items: [], cursor, trimmed: false };
		const from = cursor === FEED_START ? "-" : `(${cursor}`;
		// One round trip: the page, and what the cap has deleted so far (to tell a client that resumes too late).
		const replies = await this.redis.pipeline()
			.xrange(this.feedKey, from, "+", "COUNT", limit)
			.xinfo("STREAM", this.feedKey)
			.exec();
		if (replies === null) throw new Error("Redis actor store: reading the change feed was discarded (connection lost)");
		const [[rangeErr, range], [infoErr, info]] = replies;
		if (rangeErr) throw rangeErr;
		const items: FeedItem[] = [];
		for (const [streamId, fields] of range as Array<[string, string[]]>) {
			const raw = JSON.parse(fields[1]) as Omit<FeedItem, "cursor">;
			items.push({ cursor: streamId, customerId: raw.customerId, version: raw.version, riskScore: raw.riskScore, appliedAt: raw.appliedAt, change: raw.change });
		}
		let trimmed = false;
		// No stream yet: XINFO fails with "no such key", and nothing was trimmed.
		if (!infoErr && cursor !== FEED_START && Array.isArray(info)) {
			// The cap removes the oldest entries only (and max-deleted-entry-id does not follow XADD's trimming): some are
			// gone when more were added than are kept, and a cursor older than the first kept one may have missed some.
			const flat = info as unknown[];
			const field = (name: string) => {
				const at = flat.indexOf(name);
				return at >= 0 ? flat[at + 1] : undefined;
			};
			const added = Number(field("entries-added") ?? 0);
			const length = Number(field("length") ?? 0);
			const first = field("recorded-first-entry-id");
			trimmed = added > length && typeof first === "string" && compareCursors(cursor, first) < 0;
		}
		return { items, cursor: items.length > 0 ? items[items.length - 1].cursor : cursor, trimmed };
	}

	async listByRisk(minScore: number, limit: number): Promise<RiskRow[]> {
		if (limit <= 0) return [];
		const flat = await this.redis.zrevrangebyscore(this.riskKey, "+inf", `(${minScore}`, "WITHSCORES", "LIMIT", 0, limit);
		const rows: RiskRow[] = [];
		for (let i = 0; i < flat.length; i += 2) rows.push({ id: flat[i], score: Number(flat[i + 1]) });
		return rows;
	}

	async dueReminders(now: number, limit: number): Promise<ReminderRow[]> {
		if (limit <= 0) return [];
		const flat = await this.redis.zrangebyscore(this.remindersKey, "-inf", now, "WITHSCORES", "LIMIT", 0, limit);
		const rows: ReminderRow[] = [];
		for (let i = 0; i < flat.length; i += 2) rows.push({ id: flat[i], dueAt: Number(flat[i + 1]) });
		return rows;
	}

	async count(): Promise<number> {
		return this.redis.zcard(this.riskKey);
	}
}
