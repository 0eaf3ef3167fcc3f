// ingest-nats: CloudEvents published to JetStream (stream CRM_EVENTS, subject crm.events.<entity>.<verb>, header
// Nats-Msg-Id) applied by the customer actors in publish order, exactly once; unreadable or unknown input goes to the
// dead letters with its reason; scraped market records are de-duplicated by content with a Bloom filter first. What
// happens to a message is edge/jetstream.intake.ts; leadership, order and acks the ordered consumer's.
import { randomUUID } from "node:crypto";
import type { ServiceSchema } from "moleculer";
import type { NatsConnection } from "nats";
import type { Config } from "../config/index.ts";
import { Customers, EVENTS_SUBJECT_PREFIX, IngestNats, type IngestNatsStats } from "../models/contract/index.ts";
import { MarketDeduplicator } from "../edge/market-dedup.ts";
import {
	ensureConsumer, ensureEventsStream, EVENTS_STREAM, jetStreamIntake, LEASE_BUCKET, ACK_FLOOR_BUCKET, type IntakeCounts
} from "../edge/jetstream.intake.ts";
import { connectNats } from "../adapters/nats.connection.ts";
import { M } from "../metrics/catalogue.ts";
import { OrderedJetStreamConsumer } from "../adapters/ordered-jetstream.consumer.ts";
import { SourceMixin, type SourceSchema, type SourceService, type SourceModule } from "../mixins/source.mixin.ts";

const LEADER_METRIC = "crm_ingest_nats_leader";
const LAG_EVERY_MS = 5_000;

interface NatsVars {
	nc: NatsConnection | null;
	consumer: OrderedJetStreamConsumer | null;
	market: MarketDeduplicator;
	counts: IntakeCounts;
	lagTimer: NodeJS.Timeout | null;
}
type NatsService = SourceService & NatsVars;

async function reportLag(svc: NatsService, durable: string): Promise<void> {
	if (!svc.nc || !svc.consumer?.stats.leading || !svc.broker.isMetricsEnabled()) return;
	try {
		const jsm = await svc.nc.jetstreamManager();
		const info = await jsm.consumers.info(EVENTS_STREAM, durable);
		svc.broker.metrics.set(M.jetstreamLag, info.num_pending + info.num_ack_pending);
	} catch {
		// Lag is best effort; the next round tries again.
	}
}

export function createIngestNatsService(config: Config): ServiceSchema {
	const cfg = config.ingest.nats;
	// After a crash, the messages of a customer that were applied but whose acks did not reach the server come
	// again; the actor recognises them while they are within its dedup window, so batch + unconfirmed acks stay in it.
	const maxBatch = Math.max(1, Math.min(500, Math.floor(config.actor.dedupWindow / 2)));
	const maxUnconfirmedAcks = Math.max(1, Math.min(256, Math.floor(config.actor.dedupWindow / 4)));

	const schema: SourceSchema<NatsVars> = {
		name: IngestNats.service,
		// The consumer retries in place itself: one attempt per call, bounded by the handle timeout.
		mixins: [SourceMixin({ source: "nats", caller: IngestNats.service, callOptions: { retries: 0, timeout: cfg.handleTimeoutMs }, config })],
		actions: {
			stats: {
				visibility: "public",
				handler(this: NatsService): IngestNatsStats | null {
					if (!this.consumer) return null;
					return { nodeID: this.broker.nodeID, ...this.consumer.stats, ...this.counts };
				}
			}
		},
		created(this: NatsService) {
			this.nc = null;
			this.consumer = null;
			this.lagTimer = null;
			this.counts = { duplicates: 0, marketDuplicates: 0 };
			this.market = new MarketDeduplicator(config.ingest.market.expectedItems, config.ingest.market.falsePositiveRate);
			if (this.broker.isMetricsEnabled()) {
				const m = this.broker.metrics;
				// The lag gauge is defined with the other crm_* series (metrics/catalogue.ts); registered here if missing.
				if (!m.getMetric(M.jetstreamLag)) m.register({ name: M.jetstreamLag, type: "gauge", description: "Messages of CRM_EVENTS not yet acknowledged by the ingest consumer" });
				if (!m.getMetric(LEADER_METRIC)) m.register({ name: LEADER_METRIC, type: "gauge", description: "1 while this node is the one pulling from CRM_EVENTS" });
			}
		},
		async started(this: NatsService) {
			if (!config.natsUrl) {
				this.logger.warn("NATS_URL is not set: NATS/JetStream ingestion (ingest-nats) is OFF on this node");
				return;
			}
			this.nc = await connectNats(config.natsUrl, `crm ingest-nats ${this.broker.nodeID}`);
			const jsm = await this.nc.jetstreamManager();
			await ensureEventsStream(jsm, cfg);
			await ensureConsumer(jsm, cfg);
			const intake = jetStreamIntake({ sink: this.sink, cfg, market: this.market, counts: this.counts });
			this.consumer = new OrderedJetStreamConsumer({
				nc: this.nc,
				stream: EVENTS_STREAM,
				durable: cfg.durable,
				holder: `${this.broker.nodeID}/${randomUUID()}`,
				leaseBucket: LEASE_BUCKET,
				floorBucket: ACK_FLOOR_BUCKET,
				leaseTtlMs: cfg.leaseTtlMs,
				ackWaitMs: cfg.ackWaitMs,
				pullBatch: cfg.pullBatch,
				maxDeliver: cfg.maxDeliver,
				retryBaseMs: cfg.retryBaseMs,
				retryMaxMs: cfg.retryMaxMs,
				maxUnconfirmedAcks,
				prepare: intake.prepare,
				runBatch: intake.runBatch,
				maxBatch,
				classify: intake.classify,
				deadLetter: intake.deadLetter,
				ready: () => this.broker.registry.getServiceList({ onlyAvailable: true }).some((s: { name: string }) => s.name === Customers.service),
				onLeadership: leading => {
					if (this.broker.isMetricsEnabled()) this.broker.metrics.set(LEADER_METRIC, leading ? 1 : 0);
				},
				logger: this.logger
			});
			await this.consumer.start();
			this.lagTimer = setInterval(() => void reportLag(this, cfg.durable), LAG_EVERY_MS);
			this.lagTimer.unref();
			if (maxBatch + maxUnconfirmedAcks > config.actor.dedupWindow) {
				this.logger.warn(`ACTOR_DEDUP_WINDOW=${config.actor.dedupWindow} is too small for ingest-nats: after a crash a redelivered event may be applied twice (use at least 4)`);
			}
			this.logger.info(`ingest-nats: ${EVENTS_STREAM} on ${EVENTS_SUBJECT_PREFIX}>, durable consumer "${cfg.durable}"`);
		},
		async stopped(this: NatsService) {
			if (this.lagTimer) clearInterval(this.lagTimer);
			await this.consumer?.stop(cfg.handleTimeoutMs);
			this.consumer = null;
			if (this.nc) await this.nc.drain().catch(() => this.nc?.close());
			this.nc = null;
		}
	};
	return schema as unknown as ServiceSchema;
}

export const source: SourceModule = { createService: createIngestNatsService };
