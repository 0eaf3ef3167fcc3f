// Where webhook Idempotency-Keys and their responses are kept: Redis (SET NX with a TTL, shared by every node) when
// REDIS_URL is set, else a NeDB file under DATA_DIR (one node). A key is "pending" while its request runs.
import { join } from "node:path";
import NedbModule from "@seald-io/nedb";
import { Redis } from "ioredis";

export interface StoredResponse {
	status: number;
	body: unknown;
}

export type IdempotencyClaim =
	| { state: "new" }
	/** Another request with this key is still running. */
	| { state: "in_flight" }
	/** Answered before; `fingerprint` identifies the body it answered. */
	| { state: "done"; fingerprint: string; response: StoredResponse };

export interface IdempotencyStore {
	readonly kind: "redis" | "nedb";
	connect(): Promise<void>;
	/** Claims `key` for this request for `pendingTtlMs` (long enough to finish it; a crashed claim then expires). */
	claim(key: string, fingerprint: string, pendingTtlMs: number): Promise<IdempotencyClaim>;
	/** Records the answer; replays of `key` get it until `ttlMs` has passed. */
	complete(key: string, fingerprint: string, response: StoredResponse, ttlMs: number): Promise<void>;
	/** Gives the key up without an answer (the request failed in a way a retry may fix). */
	release(key: string): Promise<void>;
	close(): Promise<void>;
}

interface Entry {
	state: "pending" | "done";
	fingerprint: string;
	response?: StoredResponse;
}

const REDIS_PREFIX = "crm:webhook:idem:";

export class RedisIdempotencyStore implements IdempotencyStore {
	readonly kind = "redis";
	private readonly redis: Redis;

	constructor(url: string) {
		// Commands wait while Redis is away (a restart) instead of failing at once; the webhook call has its own timeout.
		this.redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 3, enableOfflineQueue: true });
		this.redis.on("error", () => undefined);
	}

	async connect(): Promise<void> {
		await this.redis.connect();
	}

	async claim(key: string, fingerprint: string, pendingTtlMs: number): Promise<IdempotencyClaim> {
		const pending = JSON.stringify({ state: "pending", fingerprint } satisfies Entry);
		// Two tries: the entry can expire between a failed SET NX and the GET.
		for (let attempt = 0; attempt < 2; attempt++) {
			if (await this.redis.set(REDIS_PREFIX + key, pending, "PX", pendingTtlMs, "NX") === "OK") return { state: "new" };
			const raw = await this.redis.get(REDIS_PREFIX + key);
			if (raw === null) continue;
			return toClaim(JSON.parse(raw) as Entry);
		}
		return { state: "in_flight" };
	}

	async complete(key: string, fingerprint: string, response: StoredResponse, ttlMs: number): Promise<void> {
		await this.redis.set(REDIS_PREFIX + key, JSON.stringify({ state: "done", fingerprint, response } satisfies Entry), "PX", ttlMs);
	}

	async release(key: string): Promise<void> {
		await this.redis.del(REDIS_PREFIX + key);
	}

	async close(): Promise<void> {
		await this.redis.quit().catch(() => this.redis.disconnect());
	}
}

interface IdemDoc {
	_id: string;
	state: "pending" | "done";
	fingerprint: string;
	/** JSON text: NeDB refuses field names with dots, which response bodies may have. */
	response?: string;
	expiresAt: Date;
}

const COMPACT_EVERY_MS = 10 * 60_000;
// The package is CommonJS (module.exports = Datastore) while its typings declare an ES default export.
const Datastore = NedbModule as unknown as typeof NedbModule.default;
type Nedb<T> = InstanceType<typeof NedbModule.default<T>>;

export class NedbIdempotencyStore implements IdempotencyStore {
	readonly kind = "nedb";
	private readonly db: Nedb<IdemDoc>;
	private compactTimer: NodeJS.Timeout | null = null;

	constructor(dataDir: string) {
		this.db = new Datastore<IdemDoc>({ filename: join(dataDir, "webhook-idempotency.db") });
	}

	async connect(): Promise<void> {
		await this.db.loadDatabaseAsync();
		// A TTL index: NeDB drops expired documents whenever a query meets them.
		await this.db.ensureIndexAsync({ fieldName: "expiresAt", expireAfterSeconds: 0 });
		this.compactTimer = setInterval(() => void this.db.compactDatafileAsync().catch(() => undefined), COMPACT_EVERY_MS);
		this.compactTimer.unref();
	}

	async claim(key: string, fingerprint: string, pendingTtlMs: number): Promise<IdempotencyClaim> {
		for (let attempt = 0; attempt < 2; attempt++) {
			// The query first: it is what removes an expired entry that would otherwise block the insert.
			const doc = await this.db.findOneAsync({ _id: key });
			if (doc !== null) return toClaim({ state: doc.state, fingerprint: doc.fingerprint, response: doc.response === undefined ? undefined : JSON.parse(doc.response) as StoredResponse });
			try {
				await this.db.insertAsync({ _id: key, state: "pending", fingerprint, expiresAt: new Date(Date.now() + pendingTtlMs) });
				return { state: "new" };
			} catch (err) {
				// NeDB runs one operation at a time: a unique violation means a concurrent request claimed it first.
				if ((err as { errorType?: string }).errorType !== "uniqueViolated") throw err;
			}
		}
		return { state: "in_flight" };
	}

	async complete(key: string, fingerprint: string, response: StoredResponse, ttlMs: number): Promise<void> {
		await this.db.updateAsync({ _id: key }, { _id: key, state: "done", fingerprint, response: JSON.stringify(response), expiresAt: new Date(Date.now() + ttlMs) }, { upsert: true });
	}

	async release(key: string): Promise<void> {
		await this.db.removeAsync({ _id: key }, {});
	}

	async close(): Promise<void> {
		if (this.compactTimer !== null) clearInterval(this.compactTimer);
		this.compactTimer = null;
		await this.db.compactDatafileAsync();
	}
}

function toClaim(entry: Entry): IdempotencyClaim {
	if (entry.state === "done" && entry.response !== undefined) return { state: "done", fingerprint: entry.fingerprint, response: entry.response };
	return { state: "in_flight" };
}

export function createIdempotencyStore(opts: { redisUrl: string | undefined; dataDir: string }): IdempotencyStore {
	return opts.redisUrl !== undefined ? new RedisIdempotencyStore(opts.redisUrl) : new NedbIdempotencyStore(opts.dataDir);
}
