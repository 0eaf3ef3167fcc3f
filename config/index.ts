// The one place that reads the environment: typed settings with documented defaults, validated at start.
import path from "node:path";
import { ConfigError, int, num, oneOf, str, url, type Env } from "./env.ts";
import { loadClusterConfig, type ClusterConfig } from "./cluster.config.ts";
import { loadIngestConfig, type IngestConfig } from "./ingest.config.ts";
import { loadSourcesConfig, type SourcesConfig } from "./sources.config.ts";
import { loadAutomationConfig, type AutomationConfig } from "./automation.config.ts";
import { loadEdgeConfig, type EdgeConfig } from "./edge.config.ts";
import { loadObservabilityConfig, type ObservabilityConfig } from "./observability.config.ts";

export { ConfigError } from "./env.ts";

export type StoreKind = "memory" | "nedb" | "redis" | "mongo";

export interface Config {
	nodeId: string | undefined;
	/** Moleculer transporter URL; undefined = in-process single node. */
	transporter: string | undefined;
	natsUrl: string | undefined;
	redisUrl: string | undefined;
	mongoUrl: string | undefined;
	mqttUrl: string | undefined;
	mqttPort: number | undefined;
	camundaUrl: string | undefined;
	dataDir: string;
	port: number;
	/** Interface the HTTP API binds to; forced to 127.0.0.1 when no API key is configured. */
	host: string;
	metricsPort: number | undefined;
	apiKeys: string[];
	webhookSecret: string | undefined;
	/** Services this node runs; empty = all. */
	services: string[];
	logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace";
	actor: {
		store: StoreKind;
		idleTimeoutMs: number;
		maxActiveActors: number;
		/** Cap on the estimated heap of active actors, MB; 0 = only the count cap. */
		maxActiveMemoryMb: number;
		/** Event-sourced stores: a snapshot every this many journaled events (at most journalMax). */
		snapshotEvery: number;
		/** Event-sourced stores: an actor with events past its snapshot and no write for this long gets a snapshot. */
		snapshotQuietMs: number;
		/** Event-sourced stores: quiet and passivated actors get a snapshot only with at least this many events past it (0: never). */
		snapshotMinTail: number;
		dedupWindow: number;
		commitMaxBatch: number;
		commitIntervalMs: number;
		journalMax: number;
		reminderPollMs: number;
		riskDecayAfterMs: number;
		riskDecayKeep: number;
		churnWeight: number;
	};
	/** Path of the churn model artifact; "off" disables the churn factor. */
	churnModel: string;
	/** Change streams (Server-Sent Events, docs/streams.md). */
	streams: {
		/** Bytes a client may leave unread before it is cut. */
		maxBufferedBytes: number;
		heartbeatMs: number;
		/** The reconnection delay clients are told (`retry:`). */
		retryMs: number;
		/** Changes kept in the store-wide feed (Redis: XADD MAXLEN ~; memory and NeDB: trimmed to it). */
		feedMax: number;
	};
	cluster: ClusterConfig;
	ingest: IngestConfig;
	sources: SourcesConfig;
	automation: AutomationConfig;
	edge: EdgeConfig;
	observability: ObservabilityConfig;
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace"] as const;
const STORE_KINDS = ["memory", "nedb", "redis", "mongo"] as const;

/** Reads and validates the configuration; throws ConfigError naming the variable on the first bad value. */
export function loadConfig(env: Env = process.env): Config {
	const redisUrl = url(env, "REDIS_URL", ["redis", "rediss"]);
	const mongoUrl = url(env, "MONGO_URL", ["mongodb", "mongodb+srv"]);
	const transporter = str(env, "TRANSPORTER");
	if (transporter !== undefined) url(env, "TRANSPORTER", ["nats", "tls"]);
	const defaultStore: StoreKind = mongoUrl ? "mongo" : redisUrl ? "redis" : "nedb";
	const store = oneOf(env, "ACTOR_STORE", STORE_KINDS, defaultStore);
	const journalMax = int(env, "ACTOR_JOURNAL_MAX", 1000, 1, 1_000_000);
	const snapshotEvery = int(env, "ACTOR_SNAPSHOT_EVERY", 100, 1, 1_000_000);
	// A journal tail past the snapshot must still be in the journal when an actor is activated.
	if (snapshotEvery > journalMax) throw new ConfigError(`ACTOR_SNAPSHOT_EVERY (${snapshotEvery}) must not exceed ACTOR_JOURNAL_MAX (${journalMax})`);
	if (store === "redis" && !redisUrl) throw new ConfigError("ACTOR_STORE=redis needs REDIS_URL");
	if (store === "mongo" && !mongoUrl) throw new ConfigError("ACTOR_STORE=mongo needs MONGO_URL");
	if (transporter && (store === "memory" || store === "nedb"))
		throw new ConfigError(
			`TRANSPORTER is set (cluster mode) but the actor store "${store}" cannot be shared between nodes: set REDIS_URL or MONGO_URL`
		);
	const apiKeys = (str(env, "API_KEYS") ?? "").split(",").map(k => k.trim()).filter(k => k.length > 0);
	for (const key of apiKeys) if (key.length < 16) throw new ConfigError("API_KEYS: every key must be at least 16 characters");
	const webhookSecret = str(env, "WEBHOOK_SECRET");
	if (webhookSecret !== undefined && webhookSecret.length < 16) throw new ConfigError("WEBHOOK_SECRET must be at least 16 characters");
	const metricsPort = str(env, "METRICS_PORT") === undefined ? undefined : int(env, "METRICS_PORT", 0, 0, 65535);
	const mqttPort = str(env, "MQTT_PORT") === undefined ? undefined : int(env, "MQTT_PORT", 0, 0, 65535);
	const services = (str(env, "SERVICES") ?? "").split(",").map(s => s.trim()).filter(s => s.length > 0);
	return {
		nodeId: str(env, "NODE_ID"),
		transporter,
		natsUrl: url(env, "NATS_URL", ["nats", "tls"]),
		redisUrl,
		mongoUrl,
		mqttUrl: url(env, "MQTT_URL", ["mqtt", "mqtts", "tcp", "ws", "wss"]),
		mqttPort,
		camundaUrl: url(env, "CAMUNDA_URL", ["http", "https"]),
		dataDir: path.resolve(str(env, "DATA_DIR") ?? "./data"),
		port: int(env, "PORT", 3000, 0, 65535),
		host: apiKeys.length === 0 ? "127.0.0.1" : (str(env, "HOST") ?? "0.0.0.0"),
		metricsPort,
		apiKeys,
		webhookSecret,
		services,
		logLevel: oneOf(env, "LOG_LEVEL", LOG_LEVELS, "info"),
		actor: {
			store,
			idleTimeoutMs: int(env, "ACTOR_IDLE_TIMEOUT_MS", 10 * 60_000, 1, 7 * 24 * 3600_000),
			maxActiveActors: int(env, "ACTOR_MAX_ACTIVE", 100_000, 1, 100_000_000),
			maxActiveMemoryMb: int(env, "ACTOR_MAX_MEMORY_MB", 0, 0, 1_000_000),
			snapshotEvery,
			snapshotQuietMs: int(env, "ACTOR_SNAPSHOT_QUIET_MS", 5000, 0, 24 * 3600_000),
			snapshotMinTail: int(env, "ACTOR_SNAPSHOT_MIN_TAIL", 8, 0, 1_000_000),
			dedupWindow: int(env, "ACTOR_DEDUP_WINDOW", 64, 1, 10_000),
			commitMaxBatch: int(env, "ACTOR_COMMIT_MAX_BATCH", 1000, 1, 100_000),
			commitIntervalMs: int(env, "ACTOR_COMMIT_INTERVAL_MS", 0, 0, 10_000),
			journalMax,
			reminderPollMs: int(env, "ACTOR_REMINDER_POLL_MS", 5000, 10, 3600_000),
			riskDecayAfterMs: int(env, "RISK_DECAY_AFTER_MS", 30 * 24 * 3600_000, 1, 10 * 365 * 24 * 3600_000),
			riskDecayKeep: num(env, "RISK_DECAY_KEEP", 0.5, 0, 1),
			churnWeight: num(env, "RISK_CHURN_WEIGHT", 30, 0, 100)
		},
		churnModel: str(env, "CHURN_MODEL") ?? "ml/models/churn-telco.json",
		streams: {
			maxBufferedBytes: int(env, "STREAM_MAX_BUFFERED_BYTES", 1 << 20, 1024, 1 << 30),
			heartbeatMs: int(env, "STREAM_HEARTBEAT_MS", 15_000, 100, 3600_000),
			retryMs: int(env, "STREAM_RETRY_MS", 2000, 0, 3600_000),
			feedMax: int(env, "STREAM_FEED_MAX", 1_000_000, 1000, 1_000_000_000)
		},
		cluster: loadClusterConfig(env),
		ingest: loadIngestConfig(env),
		sources: loadSourcesConfig(env),
		automation: loadAutomationConfig(env),
		edge: loadEdgeConfig(env),
		observability: loadObservabilityConfig(env)
	};
}
