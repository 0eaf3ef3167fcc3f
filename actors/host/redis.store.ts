// Shared ActorStore on Redis (ioredis): one Lua script makes each compare-and-set save atomic with its journal and indexes.
// Key layout (prefix defaults to "crm:"):
//   {prefix}customer:{id}   string  the state as JSON, written with "version" as its first key (see stateJson)
//   {prefix}journal:{id}    list    journal entries as JSON, newest at the head, trimmed to journalMax
//   {prefix}risk            zset    member = customer id, score = risk score (every stored customer is in it)
//   {prefix}reminders       zset    member = customer id, score = earliest reminder (ms); absent without reminders
// One script touches several customers' keys, so this layout is for a single Redis (or a primary), not Redis Cluster.
import { Redis, type ChainableCommander } from "ioredis";
import { nextReminderAt, type ActorStore, type ActorWrite, type JournalEntry, type ReminderRow, type RiskRow, type WriteResult } from "./actor-store.ts";
import type { CustomerState } from "../../models/customer-state.ts";

export interface RedisActorStoreOptions {
	url: string;
	keyPrefix?: string;
	/** Journal entries kept per customer. */
	journalMax?: number;
}

const DEFAULTS = { keyPrefix: "crm:", journalMax: 1000 };

/**
 * KEYS: customer, journal, risk index, reminders index.
 * ARGV: id, expected version, state JSON, risk score, next reminder ("" = none), journalMax, journal entries (oldest first)…
 * Returns {1} when saved, {0, current version} on a conflict (-1 = no such customer).
 * The version is read from the first bytes of the stored JSON, so a save never decodes the previous state.
 */
const CAS_SAVE_LUA = `
local head = redis.call("GETRANGE", KEYS[1], 0, 40)
local expected = tonumber(ARGV[2])
if head == "" then
	if expected ~= 0 then return {0, -1} end
else
	local current = tonumber(string.match(head, '^{"version":(%d+)'))
	if current == nil then return redis.error_reply("stored state of " .. ARGV[1] .. " does not start with its version") end
	if expected == 0 or current ~= expected then return {0, current} end
end
redis.call("SET", KEYS[1], ARGV[3])
local n = #ARGV
if n > 6 then
	-- LPUSH in chunks: unpack() of thousands of values would overflow the Lua stack.
	for i = 7, n, 500 do
		redis.call("LPUSH", KEYS[2], unpack(ARGV, i, math.min(i + 499, n)))
	end
	redis.call("LTRIM", KEYS[2], 0, tonumber(ARGV[6]) - 1)
end
redis.call("ZADD", KEYS[3], ARGV[4], ARGV[1])
if ARGV[5] == "" then
	redis.call("ZREM", KEYS[4], ARGV[1])
else
	redis.call("ZADD", KEYS[4], ARGV[5], ARGV[1])
end
return {1}
`;

type CasReply = [1] | [0, number];

/** The script as ioredis exposes it once defined (on the client and on its pipelines). */
interface CasSaveCommand {
	crmActorCasSave(
		customerKey: string, journalKey: string, riskKey: string, remindersKey: string,
		id: string, expectedVersion: number, stateJson: string, riskScore: number, nextReminder: string, journalMax: number,
		...journal: string[]
	): unknown;
}

/** The state's JSON with "version" first, where the script's CAS check reads it; still plain JSON for load. */
function stateJson(state: CustomerState): string {
	if (!Number.isSafeInteger(state.version) || state.version < 0) throw new Error(`customer ${state.id}: version ${state.version} is not a non-negative integer`);
	const { version, ...rest } = state;
	return JSON.stringify({ version, ...rest });
}

export class RedisActorStore implements ActorStore {
	readonly kind = "redis";
	readonly shared = true;
	private readonly redis: Redis;
	private readonly prefix: string;
	private readonly journalMax: number;

	constructor(opts: RedisActorStoreOptions) {
		if (!opts.url) throw new Error("RedisActorStore: option `url` is required");
		this.prefix = opts.keyPrefix ?? DEFAULTS.keyPrefix;
		this.journalMax = opts.journalMax ?? DEFAULTS.journalMax;
		if (!Number.isInteger(this.journalMax) || this.journalMax < 1) throw new Error(`RedisActorStore: option \`journalMax\` must be a positive integer, got ${opts.journalMax}`);
		this.redis = new Redis(opts.url, { lazyConnect: true, enableAutoPipelining: true });
		this.redis.defineCommand("crmActorCasSave", { numberOfKeys: 4, lua: CAS_SAVE_LUA });
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
		const json = await this.redis.get(this.customerKey(id));
		return json === null ? null : JSON.parse(json) as CustomerState;
	}

	async saveBatch(writes: ActorWrite[]): Promise<WriteResult[]> {
		if (writes.length === 0) return [];
		// One pipeline, one round trip: the script calls run in order, so two writes of one customer chain correctly.
		const pipeline = this.redis.pipeline();
		const cas = pipeline as ChainableCommander & CasSaveCommand;
		for (const w of writes) {
			const dueAt = nextReminderAt(w.state);
			cas.crmActorCasSave(
				this.customerKey(w.id), this.journalKey(w.id), this.riskKey, this.remindersKey,
				w.id, w.expectedVersion, stateJson(w.state), w.state.risk.score, dueAt === null ? "" : String(dueAt), this.journalMax,
				...w.journal.map(e => JSON.stringify(e))
			);
		}
		const replies = await pipeline.exec();
		if (replies === null) throw new Error("Redis actor store: the batch was discarded (connection lost)");
		return writes.map((w, i): WriteResult => {
			const [err, reply] = replies[i];
			if (err) throw new Error(`Redis actor store: saving customer ${w.id} failed: ${err.message}`, { cause: err });
			const r = reply as CasReply;
			if (r[0] === 1) return { id: w.id, ok: true };
			return { id: w.id, ok: false, currentVersion: r[1] === -1 ? null : r[1] };
		});
	}

	async journal(id: string, limit: number): Promise<JournalEntry[]> {
		if (limit <= 0) return [];
		const items = await this.redis.lrange(this.journalKey(id), 0, limit - 1);
		return items.map(item => JSON.parse(item) as JournalEntry);
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
