// Picks the ActorStore adapter for a node from already-validated config; each adapter gets only the options it uses.
import { DEFAULT_FEED_MAX, type ActorStore } from "../actors/host/actor-store.ts";
import type { Replay } from "../actors/host/replay.ts";
// The memory store's feed holds the journal entries themselves (events included): kept to its default at most.
import { MemoryActorStore } from "./memory.store.ts";
import { MongoActorStore } from "./mongo.store.ts";
import { NedbActorStore } from "./nedb.store.ts";
import { RedisActorStore } from "./redis.store.ts";

export interface ActorStoreFactoryOptions {
	kind: "memory" | "nedb" | "redis" | "mongo";
	/** nedb: the directory of its files. */
	dataDir?: string;
	redisUrl?: string;
	mongoUrl?: string;
	/** Journal entries kept per customer (memory, redis); nedb and mongo keep them all. */
	journalMax?: number;
	/** Changes kept in the store-wide feed (memory, nedb, redis; mongo keeps them 7 days). */
	feedMax?: number;
	/** redis, mongo: rebuilds a state from snapshot + journal tail; without it they write every state as a snapshot. */
	replay?: Replay;
}

export function createActorStore(opts: ActorStoreFactoryOptions): ActorStore {
	switch (opts.kind) {
		case "memory":
			return new MemoryActorStore({ journalMax: opts.journalMax, feedMax: Math.min(opts.feedMax ?? DEFAULT_FEED_MAX, DEFAULT_FEED_MAX) });
		case "nedb":
			if (!opts.dataDir) throw new Error("createActorStore: kind \"nedb\" needs dataDir");
			return new NedbActorStore({ dir: opts.dataDir, feedMax: opts.feedMax });
		case "redis":
			if (!opts.redisUrl) throw new Error("createActorStore: kind \"redis\" needs redisUrl");
			return new RedisActorStore({ url: opts.redisUrl, journalMax: opts.journalMax, feedMax: opts.feedMax, replay: opts.replay });
		case "mongo":
			if (!opts.mongoUrl) throw new Error("createActorStore: kind \"mongo\" needs mongoUrl");
			return new MongoActorStore({ url: opts.mongoUrl, replay: opts.replay });
		default: {
			const kind: never = opts.kind;
			throw new Error(`createActorStore: unknown store kind "${String(kind)}"`);
		}
	}
}
