// The ordered JetStream consumer behind ingest-nats. One node at a time pulls from the shared durable consumer (a KV
// lease); it applies messages in stream order with one in flight per key (customer) and many keys in parallel, and
// acknowledges a message only after its effect is durable. docs/ingestion.md explains why this keeps per-customer
// order across redeliveries and failover.
import { StringCodec, type ConsumerMessages, type JetStreamManager, type JsMsg, type NatsConnection } from "nats";
import type { DeadLetterCode, JetStreamConsumerStats } from "../models/contract/index.ts";
import { KeyedQueue } from "../lib/keyed.queue.ts";
import { backoff } from "../lib/retry.ts";
import { KvLease } from "./jetstream.lease.ts";
import { AckFloorCheckpoint, effectiveFloor } from "./jetstream.ack-floor.ts";

/** A delivered message, parsed once, in stream order. */
export interface Prepared {
	/** Messages with the same key run one at a time in stream order; null: no order to keep (e.g. unreadable input). */
	key: string | null;
	/** Applies the message; resolves once its effect is durable. Throws to retry or dead-letter (see `classify`). */
	run(): Promise<void>;
	/** Called when the message will not be applied by this node after all (dead-lettered, or left to the next leader). */
	release?(): void;
	/**
	 * Set when consecutive messages of the same key may be applied together by `runBatch` (in this order, all or none
	 * — a failure falls back to `run` one by one, so only the bad message is dead-lettered).
	 */
	batch?: unknown;
}

/** How a failure of `run` is handled. */
export type Failure =
	/** Transient (store or network down): retried in place, with backoff, for as long as it takes. */
	| { kind: "retry" }
	/** The input itself is bad: dead-lettered at once. */
	| { kind: "dead"; reason: string; code: DeadLetterCode }
	/** Unexpected: retried, and dead-lettered once deliveries plus attempts reach maxDeliver. */
	| { kind: "attempt"; reason: string };

export interface OrderedConsumerLogger {
	info(...args: unknown[]): void;
	warn(...args: unknown[]): void;
	error(...args: unknown[]): void;
	debug(...args: unknown[]): void;
}

export interface OrderedConsumerOptions {
	nc: NatsConnection;
	stream: string;
	durable: string;
	/** Unique per process; the lease holder id. */
	holder: string;
	leaseBucket: string;
	leaseTtlMs: number;
	/**
	 * KV bucket that keeps the highest acknowledgement floor the consumer reported (adapters/jetstream.ack-floor.ts):
	 * deliveries at or below it are acknowledged again, never applied again, even when the server lost the state.
	 */
	floorBucket: string;
	ackWaitMs: number;
	pullBatch: number;
	maxDeliver: number;
	retryBaseMs: number;
	retryMaxMs: number;
	/**
	 * Acknowledgements of one key sent but not yet confirmed by the server, at most. A lost ack makes the server
	 * redeliver an applied message; keeping this below the actors' dedup window means the actor always recognises it.
	 */
	maxUnconfirmedAcks: number;
	prepare(m: JsMsg): Prepared;
	/** Applies the `batch` values of consecutive messages of one key, in order; resolves once all are durable. */
	runBatch?(key: string, values: unknown[]): Promise<void>;
	/**
	 * Messages per `runBatch`. A crash may leave a whole batch plus the unconfirmed acks applied but unacknowledged,
	 * so `maxBatch + maxUnconfirmedAcks` must stay within the actors' dedup window.
	 */
	maxBatch: number;
	classify(err: unknown): Failure;
	/** Stores the message as a dead letter; must be durable when it resolves (it is then acknowledged). */
	deadLetter(m: JsMsg, reason: string, code: DeadLetterCode): Promise<void>;
	/** Whether this node can apply messages now (e.g. the customers service is reachable); checked before leading. */
	ready?(): boolean;
	onOutcome?(outcome: "applied" | "dead_lettered", m: JsMsg): void;
	onLeadership?(leading: boolean): void;
	logger: OrderedConsumerLogger;
}

/** What the consumer counts (`ingest-nats.stats` shows it). */
export type OrderedConsumerStats = JetStreamConsumerStats;

interface Item {
	sseq: number;
	/** The newest delivery of this message: its ack (by stream sequence) settles every delivery. */
	msg: JsMsg;
	epoch: number;
	/** When the server would redeliver it (ms) unless told we are still working on it. */
	redeliverAt: number;
}

/** Extra wait beyond ack-wait for the server's redelivery timer and the network. */
const BARRIER_GRACE_MS = 1_000;
const ACK = StringCodec().encode("+ACK");

export class OrderedJetStreamConsumer {
	private readonly opts: OrderedConsumerOptions;
	private readonly lease: KvLease;
	private jsm!: JetStreamManager;
	/** Incremented whenever leadership starts or ends: work of an older epoch must not start anything new. */
	private epoch = 0;
	private leading = false;
	private stopping = false;
	private connected = true;
	private messages: ConsumerMessages | null = null;
	/** Delivered in this epoch and not yet acknowledged, by stream sequence. */
	private readonly items = new Map<number, Item>();
	/** Waiting for a barrier to end, in delivery order. */
	private held: Item[] = [];
	private barrierUntil = 0;
	private barrierTimer: NodeJS.Timeout | null = null;
	private lastDeliverySeq: number | null = null;
	private readonly floor: AckFloorCheckpoint;
	/** Every stream sequence at or below it was acknowledged once (by any leader): a delivery of one is not applied. */
	private ackedFloor = 0;
	/** ConsumerInfo.created of the consumer this leadership reads (a floor of another consumer does not hold). */
	private consumerCreated = "";
	private pollingFloor = false;
	private floorRegressionLogged = false;
	/**
	 * Admitted messages of each key not yet taken, in stream order; one turn of `keys` runs per admitted message and
	 * takes the next one (or a run of batchable ones). Kept across epochs so a new epoch's messages wait behind an old
	 * epoch's message still in flight.
	 */
	private readonly waiting = new Map<string, Array<{ item: Item; prepared: Prepared }>>();
	private readonly keys = new KeyedQueue();
	/** Acks sent and not yet confirmed by a round trip, by stream sequence. */
	private readonly unconfirmed = new Map<number, { msg: JsMsg; key: string | null }>();
	private readonly unconfirmedPerKey = new Map<string, number>();
	private readonly keyWaiters = new Map<string, Array<() => void>>();
	private confirming = false;
	private tickTimer: NodeJS.Timeout | null = null;
	private watchdog: NodeJS.Timeout | null = null;
	private heartbeat: NodeJS.Timeout | null = null;
	private ticking = false;
	private readonly sleepers = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
	readonly stats: OrderedConsumerStats = {
		leading: false, epoch: 0, delivered: 0, applied: 0, deadLettered: 0, retries: 0, batches: 0, batchedMessages: 0, redeliveries: 0, barriers: 0,
		leaderships: 0, fences: 0, held: 0, inFlight: 0, unconfirmedAcks: 0, alreadyAcked: 0
	};

	constructor(opts: OrderedConsumerOptions) {
		this.opts = opts;
		this.lease = new KvLease({
			nc: opts.nc, bucket: opts.leaseBucket, key: `${opts.stream}.${opts.durable}`, holder: opts.holder,
			ttlMs: opts.leaseTtlMs, fenceAfterMs: Math.floor(opts.leaseTtlMs / 2)
		});
		this.floor = new AckFloorCheckpoint(opts.nc, opts.floorBucket, `${opts.stream}.${opts.durable}`);
	}

	/** Pull requests expire well within the lease margin, so none of a fenced leader's outlives its lease. */
	static pullExpiresMs(leaseTtlMs: number): number {
		return Math.max(1_000, Math.min(30_000, Math.floor(leaseTtlMs / 4)));
	}

	async start(): Promise<void> {
		this.stopping = false;
		this.jsm = await this.opts.nc.jetstreamManager();
		await this.lease.open();
		await this.floor.open();
		void this.watchConnection();
		const renewEveryMs = Math.max(200, Math.floor(this.opts.leaseTtlMs / 6));
		this.tickTimer = setInterval(() => void this.tick(), renewEveryMs);
		this.watchdog = setInterval(() => {
			if (this.leading && !this.lease.held) this.fence("the lease was not renewed in time");
		}, 100);
		this.heartbeat = setInterval(() => this.keepAlive(), Math.max(300, Math.floor(this.opts.ackWaitMs / 3)));
		void this.tick();
	}

	/** Stops pulling, lets in-flight messages finish (up to `graceMs`), hands the rest back and releases the lease. */
	async stop(graceMs: number): Promise<void> {
		this.stopping = true;
		for (const t of [this.tickTimer, this.watchdog, this.heartbeat]) if (t) clearInterval(t);
		const wasLeading = this.leading;
		this.endEpoch();
		for (const s of this.sleepers) {
			clearTimeout(s.timer);
			s.resolve();
		}
		await withTimeout(this.keys.idle(), graceMs);
		if (wasLeading && this.connected) {
			// Not yet applied: handed back at once instead of after ack-wait.
			for (const item of this.items.values()) item.msg.nak();
		}
		this.items.clear();
		await withTimeout(this.acksConfirmed(), Math.min(graceMs, 2_000));
		if (wasLeading) await this.lease.release();
	}

	private async watchConnection(): Promise<void> {
		for await (const s of this.opts.nc.status()) {
			if (s.type === "disconnect") this.connected = false;
			else if (s.type === "reconnect") this.connected = true;
		}
	}

	private async tick(): Promise<void> {
		if (this.ticking || this.stopping) return;
		this.ticking = true;
		try {
			if (this.leading) {
				void this.pollFloor();
				try {
					if (!(await this.lease.renew())) this.fence("another node took the lease");
				} catch (err) {
					// Transport trouble: the lease may still be ours until its deadline (the watchdog fences after it).
					this.opts.logger.debug(`lease renewal failed: ${(err as Error).message}`);
				}
			} else if (this.opts.ready?.() !== false && (await this.lease.tryAcquire())) {
				await this.lead();
			}
		} catch (err) {
			this.opts.logger.debug(`lease: ${(err as Error).message}`);
		} finally {
			this.ticking = false;
		}
	}

	private async lead(): Promise<void> {
		const epoch = this.beginEpoch();
		try {
			const info = await this.jsm.consumers.info(this.opts.stream, this.opts.durable);
			const kept = await this.floor.read();
			if (epoch !== this.epoch) return;
			this.lastDeliverySeq = info.delivered.consumer_seq;
			this.consumerCreated = info.created;
			this.floorRegressionLogged = false;
			this.ackedFloor = effectiveFloor(info.ack_floor.stream_seq, kept, info.created);
			if (this.ackedFloor > info.ack_floor.stream_seq) this.logFloorRegression(info.ack_floor.stream_seq);
			if (info.num_ack_pending > 0) {
				this.startBarrier(`${info.num_ack_pending} messages are still pending from an earlier leader`);
			}
			const consumer = await this.opts.nc.jetstream().consumers.get(this.opts.stream, this.opts.durable);
			// A callback rather than the async iterator: one less queue and promise per message.
			const messages = await consumer.consume({
				max_messages: this.opts.pullBatch,
				expires: OrderedJetStreamConsumer.pullExpiresMs(this.opts.leaseTtlMs),
				callback: m => {
					if (epoch !== this.epoch) return;
					try {
						this.onDelivery(m, epoch);
					} catch (err) {
						this.opts.logger.error(`ingest: message ${m.seq} could not be taken in`, err);
					}
				}
			});
			if (epoch !== this.epoch) {
				void messages.close().catch(() => undefined);
				return;
			}
			this.messages = messages;
			this.opts.logger.info(`ingest: leading ${this.opts.stream}/${this.opts.durable} (epoch ${epoch})`);
			void this.watchConsumer(messages, epoch);
		} catch (err) {
			if (epoch === this.epoch) this.fence(`could not start consuming: ${(err as Error).message}`);
		}
	}

	private async watchConsumer(messages: ConsumerMessages, epoch: number): Promise<void> {
		const outcome = await messages.closed().catch((err: unknown) => err);
		if (epoch !== this.epoch || this.stopping) return;
		if (outcome instanceof Error) this.opts.logger.warn(`ingest: consumer stopped: ${outcome.message}`);
		this.fence("the consumer stopped delivering");
	}

	private beginEpoch(): number {
		this.epoch++;
		this.leading = true;
		this.stats.leading = true;
		this.stats.epoch = this.epoch;
		this.stats.leaderships++;
		this.items.clear();
		this.held = [];
		this.barrierUntil = 0;
		this.lastDeliverySeq = null;
		this.opts.onLeadership?.(true);
		return this.epoch;
	}

	/** Ends the current epoch: nothing new starts; messages running now finish and are acknowledged. */
	private endEpoch(): void {
		this.epoch++;
		this.stats.epoch = this.epoch;
		const messages = this.messages;
		this.messages = null;
		if (messages) void messages.close().catch(() => undefined);
		if (this.barrierTimer) clearTimeout(this.barrierTimer);
		this.barrierTimer = null;
		// Held messages were never prepared: there is nothing to release, the next leader gets them again.
		this.held = [];
		this.stats.held = 0;
		if (this.leading) {
			this.leading = false;
			this.stats.leading = false;
			this.opts.onLeadership?.(false);
		}
	}

	/** Stops leading at once: the lease may be gone (or about to be), so another node may start any moment. */
	private fence(reason: string): void {
		if (!this.leading) return;
		this.stats.fences++;
		this.opts.logger.warn(`ingest: stopped leading ${this.opts.stream}/${this.opts.durable}: ${reason}`);
		this.lease.drop();
		this.endEpoch();
		// Unstarted messages are left to the server's redelivery (the next leader's barrier waits for them).
		this.items.clear();
	}

	/**
	 * Reads the consumer's acknowledgement floor and keeps it when it rose (one request per lease tick, beside the
	 * renewal). A floor that fell (the server restarted with older state) is not taken: the kept one still holds.
	 */
	private async pollFloor(): Promise<void> {
		if (this.pollingFloor || !this.connected) return;
		this.pollingFloor = true;
		const epoch = this.epoch;
		try {
			const info = await this.jsm.consumers.info(this.opts.stream, this.opts.durable);
			if (epoch !== this.epoch || info.created !== this.consumerCreated) return;
			const serverFloor = info.ack_floor.stream_seq;
			if (serverFloor > this.ackedFloor) this.ackedFloor = serverFloor;
			else if (serverFloor < this.ackedFloor) this.logFloorRegression(serverFloor);
			await this.floor.raise({ consumerCreated: this.consumerCreated, streamSeq: this.ackedFloor });
		} catch (err) {
			this.opts.logger.debug(`ingest: reading the acknowledgement floor failed: ${(err as Error).message}`);
		} finally {
			this.pollingFloor = false;
		}
	}

	private logFloorRegression(serverFloor: number): void {
		if (this.floorRegressionLogged) return;
		this.floorRegressionLogged = true;
		this.opts.logger.warn(
			`ingest: ${this.opts.stream}/${this.opts.durable} reports acknowledgements only up to stream sequence ${serverFloor}, ` +
			`but up to ${this.ackedFloor} were acknowledged: deliveries up to ${this.ackedFloor} are acknowledged again, not applied`
		);
	}

	private onDelivery(m: JsMsg, epoch: number): void {
		this.stats.delivered++;
		const dseq = m.info.deliverySequence;
		if (this.lastDeliverySeq !== null && dseq !== this.lastDeliverySeq + 1) {
			// A delivery we never saw (lost with a connection) will come back after ack-wait, behind later messages.
			this.startBarrier(`delivery sequence jumped from ${this.lastDeliverySeq} to ${dseq}`);
		}
		this.lastDeliverySeq = dseq;
		if (m.info.deliveryCount > 1) this.stats.redeliveries++;
		const sseq = m.seq;
		if (sseq <= this.ackedFloor) {
			// Acknowledged once already (the server forgot it): acknowledged again, not applied again.
			this.stats.alreadyAcked++;
			this.sendAck(m);
			return;
		}
		const live = this.items.get(sseq);
		if (live) {
			live.msg = m;
			live.redeliverAt = Date.now() + this.opts.ackWaitMs;
			return;
		}
		// Applied; its ack is on its way (the redelivery raced it).
		if (this.unconfirmed.has(sseq)) return;
		const item: Item = { sseq, msg: m, epoch, redeliverAt: Date.now() + this.opts.ackWaitMs };
		this.items.set(sseq, item);
		if (this.barrierUntil > Date.now()) {
			this.held.push(item);
			this.stats.held = this.held.length;
			return;
		}
		this.admit(item);
	}

	/**
	 * Holds every new delivery until all messages an earlier epoch (or a lost delivery) left pending are
	 * redelivered: their ack-wait has run out by then, and the server redelivers before it delivers anything new.
	 * Held messages are then released in stream order.
	 */
	private startBarrier(reason: string): void {
		const until = Date.now() + this.opts.ackWaitMs + BARRIER_GRACE_MS;
		if (until <= this.barrierUntil) return;
		this.stats.barriers++;
		this.opts.logger.info(`ingest: holding deliveries for ${until - Date.now()} ms: ${reason}`);
		this.barrierUntil = until;
		if (this.barrierTimer) clearTimeout(this.barrierTimer);
		const epoch = this.epoch;
		this.barrierTimer = setTimeout(() => this.endBarrier(epoch), until - Date.now());
	}

	private endBarrier(epoch: number): void {
		this.barrierTimer = null;
		if (epoch !== this.epoch) return;
		const held = this.held.sort((a, b) => a.sseq - b.sseq);
		this.held = [];
		this.stats.held = 0;
		this.barrierUntil = 0;
		for (const item of held) this.admit(item);
	}

	private admit(item: Item): void {
		let prepared: Prepared;
		try {
			prepared = this.opts.prepare(item.msg);
		} catch (err) {
			prepared = { key: null, run: () => Promise.reject(err) };
		}
		const count = item.msg.info.deliveryCount;
		if (count > this.opts.maxDeliver) {
			// Delivered this often without an ack: the node applying it probably crashed on it each time.
			const inner = prepared;
			prepared = {
				key: inner.key,
				release: inner.release,
				run: () => Promise.reject(new PoisonMessageError(`delivered ${count} times without being acknowledged`))
			};
		}
		const key = prepared.key;
		if (key === null) {
			void this.execute(item, prepared);
			return;
		}
		const entries = this.waiting.get(key);
		if (entries) entries.push({ item, prepared });
		else this.waiting.set(key, [{ item, prepared }]);
		void this.keys.run(key, () => this.runNext(key));
	}

	/**
	 * One turn of a key: its next message, or a run of batchable ones together (a later turn then finds them taken
	 * and has nothing to do). Turns of one key never overlap, so its messages are applied in stream order.
	 */
	private async runNext(key: string): Promise<void> {
		const entries = this.waiting.get(key);
		if (!entries || entries.length === 0) return;
		const first = entries[0];
		let n = 1;
		if (first.prepared.batch !== undefined && this.opts.runBatch) {
			while (n < entries.length && n < this.opts.maxBatch && entries[n].prepared.batch !== undefined && entries[n].item.epoch === first.item.epoch) n++;
		}
		const run = entries.splice(0, n);
		if (entries.length === 0) this.waiting.delete(key);
		if (run.length === 1) await this.execute(run[0].item, run[0].prepared);
		else await this.executeBatch(key, run);
	}

	/**
	 * Applies a run of one key's messages with one `runBatch`, retrying transient failures in place; any other
	 * failure falls back to one message at a time (so each gets its own attempts and, if bad, its own dead letter).
	 */
	private async executeBatch(key: string, run: Array<{ item: Item; prepared: Prepared }>): Promise<void> {
		const epoch = run[0].item.epoch;
		const release = () => {
			for (const r of run) r.prepared.release?.();
		};
		if (epoch !== this.epoch) return release();
		this.stats.inFlight += run.length;
		let counted = true;
		try {
			for (let retries = 1; ; retries++) {
				if (epoch !== this.epoch) return release();
				try {
					await this.opts.runBatch!(key, run.map(r => r.prepared.batch));
					break;
				} catch (err) {
					if (this.opts.classify(err).kind !== "retry") {
						this.stats.inFlight -= run.length;
						counted = false;
						for (const r of run) await this.execute(r.item, r.prepared);
						return;
					}
				}
				this.stats.retries++;
				if (retries === 1 || retries % 20 === 0) {
					this.opts.logger.warn(`ingest: ${run.length} messages of one customer from ${run[0].item.sseq} not applied yet (attempt ${retries}), retrying in place`);
				}
				await this.sleep(backoff(retries, this.opts.retryBaseMs, this.opts.retryMaxMs));
			}
			this.stats.batches++;
			this.stats.batchedMessages += run.length;
			for (const r of run) {
				this.stats.applied++;
				this.opts.onOutcome?.("applied", r.item.msg);
			}
			for (const r of run) await this.ack(r.item, key);
		} finally {
			if (counted) this.stats.inFlight -= run.length;
		}
	}

	/** Runs one message to its end: applied, or dead-lettered; then acknowledged. Never rejects. */
	private async execute(item: Item, prepared: Prepared): Promise<void> {
		if (item.epoch !== this.epoch) {
			prepared.release?.();
			return;
		}
		this.stats.inFlight++;
		try {
			let attempts = item.msg.info.deliveryCount - 1;
			let retries = 0;
			for (;;) {
				if (item.epoch !== this.epoch) {
					prepared.release?.();
					return;
				}
				let failure: Failure;
				try {
					await prepared.run();
					this.stats.applied++;
					this.opts.onOutcome?.("applied", item.msg);
					break;
				} catch (err) {
					failure = err instanceof PoisonMessageError
						? { kind: "dead", reason: err.message, code: "max_deliveries" }
						: this.opts.classify(err);
				}
				if (failure.kind === "attempt" && ++attempts >= this.opts.maxDeliver) {
					failure = { kind: "dead", reason: `failed ${attempts} times, last: ${failure.reason}`, code: "max_deliveries" };
				}
				if (failure.kind === "dead") {
					prepared.release?.();
					if (!(await this.deadLetter(item, failure.reason, failure.code))) return;
					break;
				}
				retries++;
				this.stats.retries++;
				if (retries === 1 || retries % 20 === 0) {
					this.opts.logger.warn(`ingest: message ${item.sseq} not applied yet (attempt ${retries}), retrying in place`);
				}
				await this.sleep(backoff(retries, this.opts.retryBaseMs, this.opts.retryMaxMs));
			}
			await this.ack(item, prepared.key);
		} finally {
			this.stats.inFlight--;
		}
	}

	private async deadLetter(item: Item, reason: string, code: DeadLetterCode): Promise<boolean> {
		for (let retries = 1; ; retries++) {
			if (item.epoch !== this.epoch) return false;
			try {
				await this.opts.deadLetter(item.msg, reason, code);
				this.stats.deadLettered++;
				this.opts.onOutcome?.("dead_lettered", item.msg);
				return true;
			} catch (err) {
				if (retries === 1 || retries % 20 === 0) {
					this.opts.logger.warn(`ingest: could not dead-letter message ${item.sseq} (${(err as Error).message}); retrying`);
				}
				await this.sleep(backoff(retries, this.opts.retryBaseMs, this.opts.retryMaxMs));
			}
		}
	}

	/**
	 * Acknowledges; the server's receipt is confirmed in the background (one PING/PONG round trip covers every ack
	 * sent before it). The next message of the same key may start before that, but at most `maxUnconfirmedAcks` of
	 * one key may be unconfirmed (see the option).
	 */
	private async ack(item: Item, key: string | null): Promise<void> {
		if (this.items.get(item.sseq) === item) this.items.delete(item.sseq);
		if (key !== null) {
			while ((this.unconfirmedPerKey.get(key) ?? 0) >= this.opts.maxUnconfirmedAcks) {
				await new Promise<void>(resolve => {
					const list = this.keyWaiters.get(key);
					if (list) list.push(resolve);
					else this.keyWaiters.set(key, [resolve]);
				});
			}
			this.unconfirmedPerKey.set(key, (this.unconfirmedPerKey.get(key) ?? 0) + 1);
		}
		this.unconfirmed.set(item.sseq, { msg: item.msg, key });
		this.stats.unconfirmedAcks = this.unconfirmed.size;
		this.sendAck(item.msg);
		if (!this.confirming) void this.confirmAcks();
	}

	/** A plain publish to the ack subject: unlike JsMsg.ack() it can be repeated after a lost connection. */
	private sendAck(msg: JsMsg): void {
		try {
			this.opts.nc.publish(replyOf(msg), ACK);
		} catch {
			// Closed connection: the message is redelivered to whoever leads next, and recognised as applied.
		}
	}

	private async confirmAcks(): Promise<void> {
		this.confirming = true;
		try {
			while (this.unconfirmed.size > 0) {
				const batch = [...this.unconfirmed.keys()];
				try {
					await rejectAfter(this.opts.nc.flush(), 2_000);
				} catch {
					if (this.opts.nc.isClosed()) {
						this.settleAcks([...this.unconfirmed.keys()]);
						return;
					}
					// The acks may have died with the connection: send them again once it is back (repeats are harmless).
					await delay(200);
					if (this.connected) for (const sseq of batch) {
						const entry = this.unconfirmed.get(sseq);
						if (entry) this.sendAck(entry.msg);
					}
					continue;
				}
				this.settleAcks(batch);
			}
		} finally {
			this.confirming = false;
		}
	}

	private settleAcks(batch: number[]): void {
		for (const sseq of batch) {
			const entry = this.unconfirmed.get(sseq);
			if (!entry) continue;
			this.unconfirmed.delete(sseq);
			if (entry.key === null) continue;
			const left = (this.unconfirmedPerKey.get(entry.key) ?? 1) - 1;
			if (left > 0) this.unconfirmedPerKey.set(entry.key, left);
			else this.unconfirmedPerKey.delete(entry.key);
			const waiters = this.keyWaiters.get(entry.key);
			const next = waiters?.shift();
			if (waiters && waiters.length === 0) this.keyWaiters.delete(entry.key);
			next?.();
		}
		this.stats.unconfirmedAcks = this.unconfirmed.size;
	}

	private async acksConfirmed(): Promise<void> {
		while (this.unconfirmed.size > 0) await delay(20);
	}

	/** Keeps the server from redelivering what this leader still holds; never after fencing, never buffered offline. */
	private keepAlive(): void {
		if (!this.leading || !this.connected || !this.lease.held) return;
		// Only what has been held for a while: most messages are acknowledged long before their ack-wait runs out.
		const now = Date.now();
		const soon = now + this.opts.ackWaitMs / 2;
		for (const item of this.items.values()) {
			if (item.redeliverAt > soon) continue;
			item.msg.working();
			item.redeliverAt = now + this.opts.ackWaitMs;
		}
	}

	private sleep(ms: number): Promise<void> {
		return new Promise(resolve => {
			const entry = {
				timer: setTimeout(() => {
					this.sleepers.delete(entry);
					resolve();
				}, ms),
				resolve
			};
			this.sleepers.add(entry);
		});
	}
}

class PoisonMessageError extends Error {
	override name = "PoisonMessageError";
}

/** The ack subject of a delivery (JsMsg's implementation has it; its interface does not declare it). */
function replyOf(msg: JsMsg): string {
	return (msg as unknown as { reply: string }).reply;
}

function rejectAfter<T>(p: Promise<T>, ms: number): Promise<T> {
	let timer: NodeJS.Timeout | undefined;
	return Promise.race([
		p,
		new Promise<never>((_, reject) => {
			timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
		})
	]).finally(() => clearTimeout(timer));
}

function delay(ms: number): Promise<void> {
	return new Promise(resolve => setTimeout(resolve, ms));
}

async function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
	let timer: NodeJS.Timeout | undefined;
	await Promise.race([p, new Promise<void>(resolve => { timer = setTimeout(resolve, ms); })]);
	clearTimeout(timer);
}
