// Settings for NATS/JetStream ingestion, the market-data Bloom filter and dead letters, read from the environment.
import { ConfigError, int, num, str, type Env } from "./env.ts";

export interface IngestNatsConfig {
	/** Durable pull consumer on CRM_EVENTS shared by every node running ingest-nats. */
	durable: string;
	/** Redelivery timeout of an unacknowledged message; also how long a new leader waits for the old leader's. */
	ackWaitMs: number;
	/** Messages delivered and not yet acknowledged, across the consumer. */
	maxAckPending: number;
	/** Messages asked for per pull request. */
	pullBatch: number;
	/** Attempts (deliveries plus in-place retries of failures that are not transient) before a message is dead-lettered. */
	maxDeliver: number;
	/** Larger message payloads are dead-lettered unread. */
	maxMessageBytes: number;
	/** JetStream de-duplication window on Nats-Msg-Id. */
	duplicateWindowMs: number;
	/** How long CRM_EVENTS keeps messages. */
	streamMaxAgeMs: number;
	/** Leader lease: lifetime of the lease key; the holder renews it every ttl/6 and stops pulling after ttl/2 without renewal. */
	leaseTtlMs: number;
	/** Backoff of in-place retries: first delay and cap. */
	retryBaseMs: number;
	retryMaxMs: number;
	/** Timeout of one customers.handle call. */
	handleTimeoutMs: number;
}

export interface MarketDedupConfig {
	/** Distinct market records per Bloom filter generation (two generations are kept). */
	expectedItems: number;
	falsePositiveRate: number;
}

export interface DeadLettersConfig {
	/** How long CRM_DLQ keeps dead letters. */
	maxAgeMs: number;
	/** Largest payload stored with a dead letter; longer ones are cut and marked as truncated. */
	maxPayloadBytes: number;
}

export interface IngestConfig {
	nats: IngestNatsConfig;
	market: MarketDedupConfig;
	deadLetters: DeadLettersConfig;
}

const DAY_MS = 24 * 3600_000;
const DURABLE_NAME = /^[A-Za-z0-9_-]{1,64}$/;

export function loadIngestConfig(env: Env): IngestConfig {
	const durable = str(env, "INGEST_NATS_DURABLE") ?? "crm-ingest";
	if (!DURABLE_NAME.test(durable)) throw new ConfigError(`INGEST_NATS_DURABLE must be 1..64 letters, digits, _ or -, got "${durable}"`);
	const retryBaseMs = int(env, "INGEST_NATS_RETRY_BASE_MS", 100, 1, 60_000);
	const retryMaxMs = int(env, "INGEST_NATS_RETRY_MAX_MS", 5_000, 1, 600_000);
	if (retryMaxMs < retryBaseMs) throw new ConfigError(`INGEST_NATS_RETRY_MAX_MS (${retryMaxMs}) must not be below INGEST_NATS_RETRY_BASE_MS (${retryBaseMs})`);
	const expectedItems = int(env, "MARKET_BLOOM_EXPECTED_ITEMS", 1_000_000, 1, 100_000_000);
	const falsePositiveRate = num(env, "MARKET_BLOOM_FP_RATE", 0.001, 1e-9, 0.5);
	// Two generations, each sized for half the rate (actors/bloom-filter.ts); one must fit in 2^32 bits.
	const bits = (-expectedItems * Math.log(falsePositiveRate / 2)) / (Math.LN2 * Math.LN2);
	if (bits > 2 ** 32) throw new ConfigError(`MARKET_BLOOM_EXPECTED_ITEMS=${expectedItems} at MARKET_BLOOM_FP_RATE=${falsePositiveRate} needs a Bloom filter over 512 MiB: lower one of them`);
	return {
		nats: {
			durable,
			ackWaitMs: int(env, "INGEST_NATS_ACK_WAIT_MS", 10_000, 1_000, 600_000),
			// Deep enough that a busy customer's consecutive events are queued together and applied in one call.
			maxAckPending: int(env, "INGEST_NATS_MAX_ACK_PENDING", 32_768, 1, 1_000_000),
			pullBatch: int(env, "INGEST_NATS_PULL_BATCH", 1000, 1, 10_000),
			maxDeliver: int(env, "INGEST_NATS_MAX_DELIVER", 10, 1, 1000),
			maxMessageBytes: int(env, "INGEST_NATS_MAX_MESSAGE_BYTES", 256 * 1024, 1024, 64 * 1024 * 1024),
			duplicateWindowMs: int(env, "INGEST_NATS_DUPLICATE_WINDOW_MS", 120_000, 1_000, 7 * DAY_MS),
			streamMaxAgeMs: int(env, "INGEST_NATS_MAX_AGE_MS", 7 * DAY_MS, 60_000, 3650 * DAY_MS),
			leaseTtlMs: int(env, "INGEST_NATS_LEASE_TTL_MS", 6_000, 3_000, 300_000),
			retryBaseMs,
			retryMaxMs,
			handleTimeoutMs: int(env, "INGEST_NATS_HANDLE_TIMEOUT_MS", 10_000, 100, 600_000)
		},
		market: { expectedItems, falsePositiveRate },
		deadLetters: {
			maxAgeMs: int(env, "DEAD_LETTERS_MAX_AGE_MS", 30 * DAY_MS, 60_000, 3650 * DAY_MS),
			maxPayloadBytes: int(env, "DEAD_LETTERS_MAX_PAYLOAD_BYTES", 1024 * 1024, 1024, 16 * 1024 * 1024)
		}
	};
}
