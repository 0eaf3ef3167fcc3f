// Small durable key/value state of the pull sources (ERP watermark, log offsets, imported-file ledger): JSON files
// under DATA_DIR/sources on a single node, Redis when REDIS_URL is configured (shared by the nodes of a cluster).
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { Redis } from "ioredis";
import { KeyedQueue } from "../lib/keyed.queue.ts";

export interface SourceStateStore {
	readonly kind: "file" | "redis";
	get<T>(key: string): Promise<T | undefined>;
	/** Durable when it resolves (file: written and renamed into place; Redis: acknowledged). */
	set(key: string, value: unknown): Promise<void>;
	/**
	 * A lease on `name` for `ttlMs` so that two nodes do not run the same job; null when someone else holds it. The
	 * file store has no other node to exclude and only guards this process.
	 */
	tryLock(name: string, ttlMs: number): Promise<(() => Promise<void>) | null>;
	close(): Promise<void>;
}

export interface SourceStateOptions {
	dataDir: string;
	redisUrl?: string;
	/** Redis key prefix. */
	prefix?: string;
}

class FileStateStore implements SourceStateStore {
	readonly kind = "file";
	private readonly dir: string;
	// Reads and writes of one key in the order they were asked for: a slow earlier write cannot land after a later one,
	// and a read sees every write asked for before it.
	private readonly keys = new KeyedQueue();
	private readonly locks = new Set<string>();

	constructor(dataDir: string) {
		this.dir = path.join(dataDir, "sources");
	}

	private file(key: string): string {
		return path.join(this.dir, `${encodeURIComponent(key)}.json`);
	}

	get<T>(key: string): Promise<T | undefined> {
		return this.keys.run(key, async () => {
			try {
				return JSON.parse(await readFile(this.file(key), "utf8")) as T;
			} catch (err) {
				if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
				throw err;
			}
		});
	}

	set(key: string, value: unknown): Promise<void> {
		return this.keys.run(key, async () => {
			await mkdir(this.dir, { recursive: true });
			const tmp = `${this.file(key)}.${randomBytes(4).toString("hex")}.tmp`;
			await writeFile(tmp, JSON.stringify(value), { flush: true });
			await rename(tmp, this.file(key));
		});
	}

	async tryLock(name: string): Promise<(() => Promise<void>) | null> {
		if (this.locks.has(name)) return null;
		this.locks.add(name);
		return async () => {
			this.locks.delete(name);
		};
	}

	async close(): Promise<void> {
		await this.keys.idle();
	}
}

const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

class RedisStateStore implements SourceStateStore {
	readonly kind = "redis";
	private readonly redis: Redis;
	private readonly prefix: string;

	constructor(url: string, prefix: string) {
		this.redis = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 3 });
		// ioredis reconnects by itself; without a listener an outage would crash the process with an unhandled 'error'.
		this.redis.on("error", () => undefined);
		this.prefix = prefix;
	}

	async get<T>(key: string): Promise<T | undefined> {
		const raw = await this.redis.get(this.prefix + key);
		return raw === null ? undefined : (JSON.parse(raw) as T);
	}

	async set(key: string, value: unknown): Promise<void> {
		await this.redis.set(this.prefix + key, JSON.stringify(value));
	}

	async tryLock(name: string, ttlMs: number): Promise<(() => Promise<void>) | null> {
		const key = `${this.prefix}lock:${name}`;
		const token = randomBytes(16).toString("hex");
		const ok = await this.redis.set(key, token, "PX", ttlMs, "NX");
		if (ok !== "OK") return null;
		return async () => {
			await this.redis.eval(RELEASE, 1, key, token);
		};
	}

	async close(): Promise<void> {
		await this.redis.quit().catch(() => this.redis.disconnect());
	}
}

export function createSourceStateStore(opts: SourceStateOptions): SourceStateStore {
	return opts.redisUrl ? new RedisStateStore(opts.redisUrl, opts.prefix ?? "crm:sources:") : new FileStateStore(opts.dataDir);
}
