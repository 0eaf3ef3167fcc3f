// Ingest configuration: documented defaults, and bad values rejected with the variable's name.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { loadIngestConfig } from "../../../config/ingest.config.ts";
import { ConfigError } from "../../../config/env.ts";

void describe("loadIngestConfig", () => {
	void it("has the documented defaults", () => {
		const c = loadIngestConfig({});
		assert.equal(c.nats.durable, "crm-ingest");
		assert.equal(c.nats.ackWaitMs, 10_000);
		assert.equal(c.nats.leaseTtlMs, 6_000);
		assert.equal(c.nats.maxDeliver, 10);
		assert.equal(c.nats.maxMessageBytes, 262_144);
		assert.deepEqual(c.market, { expectedItems: 1_000_000, falsePositiveRate: 0.001 });
		assert.equal(c.deadLetters.maxAgeMs, 30 * 24 * 3600_000);
	});

	const bad: Array<[Record<string, string>, RegExp]> = [
		[{ INGEST_NATS_DURABLE: "has space" }, /INGEST_NATS_DURABLE/],
		[{ INGEST_NATS_ACK_WAIT_MS: "500" }, /INGEST_NATS_ACK_WAIT_MS/],
		[{ INGEST_NATS_LEASE_TTL_MS: "ten" }, /INGEST_NATS_LEASE_TTL_MS/],
		[{ INGEST_NATS_MAX_DELIVER: "0" }, /INGEST_NATS_MAX_DELIVER/],
		[{ INGEST_NATS_RETRY_BASE_MS: "500", INGEST_NATS_RETRY_MAX_MS: "100" }, /INGEST_NATS_RETRY_MAX_MS/],
		[{ MARKET_BLOOM_FP_RATE: "1" }, /MARKET_BLOOM_FP_RATE/],
		[{ MARKET_BLOOM_EXPECTED_ITEMS: "100000000", MARKET_BLOOM_FP_RATE: "0.000000001" }, /MARKET_BLOOM_EXPECTED_ITEMS/],
		[{ DEAD_LETTERS_MAX_AGE_MS: "-1" }, /DEAD_LETTERS_MAX_AGE_MS/]
	];
	for (const [env, message] of bad) {
		void it(`rejects ${JSON.stringify(env)}`, () => {
			assert.throws(() => loadIngestConfig(env), (err: unknown) => err instanceof ConfigError && message.test(err.message));
		});
	}
});
