// The ordered JetStream consumer behind ingest-nats. One node at a time pulls from the shared durable consumer (a KV
// lease); it applies messages in stream order with one in flight per key (customer) and many keys in parallel, and
// acknowledges a message only after its effect is durable. docs/ingestion.md explains why this keeps per-customer
// order across redeliveries and failover.
import { StringCodec, type ConsumerMessages, type JetStreamManager, type JsMsg, type NatsConnection } from "nats";
import { KvLease } from "./jetstream.lease.ts";

/** A delivered message, parsed once, in stream order. */
export interface Prepared {
	/** Messages with the same key run one at a time in stream order; null: no order to keep (e.g. unreadable input). */
	key: string | null;
	/** Applies the message; resolves once its effect is durable. Throws to retry or dead-letter (see `classify`). */
	run(): Promise<void>;
	/** Called when the message will not be applied by this node after all (dead-lettered, or left to the next leader). */
	release?(): void;
}

/** How a failure of `run` is handled. */
export type Failure =
	/** Transient (store or network down): retried in place, with backoff, for as long as it takes. */
	| { kind: "retry" }
	/** The input itself is bad: dead-lettered at once. */
	| { kind: "dead"; reason: string; code: string }
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
	ackWaitMs: number;
	pullBatch: number;
	maxDeliver: number;
	retryBaseMs: number;
	retryMaxMs: number;
	/**
	 * Acknowledgements sent but not yet confirmed by the server, at most. A lost ack makes the server redeliver an
	 * applied message; keeping this below the actors' dedup window means such a redelivery is always recognised.
	 */
	maxUnconfirmedAcks: number;
	prepare(m: JsMsg): Prepared;
	classify(err: unknown): Failure;
	/** Stores the message as a dead letter; must be durable when it resolves (it is then acknowledged). */
	deadLetter(m: JsMsg, reason: string, code: string): Promise<void>;
	/** Whether this node can apply messages now (e.g. the customers service is reachable); checked before leading. */
	ready?(): boolean;
	onOutcome?(outcome: "applied" | "dead_lettered", m: JsMsg): void;
	onLeadership?(leading: boolean): void;
	logger: OrderedConsumerLogger;
}

export interface OrderedConsumerStats {
	leading: boolean;
	epoch: number;
	delivered: number;
	applied: number;
	deadLettered: number;
	retries: number;
	redeliveries: number;
	barriers: number;
	leaderships: number;
	fences: number;
	held: number;
	inFlight: number;
	unconfirmedAcks: number;
}

interface Item {
	sseq: number;
	/** The newest delivery of this message: its ack (by stream sequence) settles every delivery. */
	msg: JsMsg;
	epoch: number;
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
	/** The tail of each key's chain; kept across epochs so a new epoch waits for an old in-flight message. */
	private readonly chains = new Map<string, Promise<void>>();
	private readonly unconfirmed = new Map<number, JsMsg>();
	private ackWaiters: Array<() => void> = [];
	private tickTimer: NodeJS.Timeout | null = null;
	private watchdog: NodeJS.Timeout | null = null;
	private heartbeat: NodeJS.Timeout | null = null;
	private ticking = false;
	private readonly sleepers = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
	readonly stats: OrderedConsumerStats = {
		leading: false, epoch: 0, delivered: 0, applied: 0, deadLettered: 0, retries: 0, redeliveries: 0, barriers: 0,
		leaderships: 0, fences: 0, held: 0, inFlight: 0, unconfirmedAcks: 0
	};

	constructor(opts: OrderedConsumerOptions) {
		this.opts = opts;
		this.lease = new KvLease({
			nc: opts.nc, bucket: opts.leaseBucket, key: `${opts.stream}.${opts.durable}`, holder: opts.holder,
			ttlMs: opts.leaseTtlMs, fenceAfterMs: Math.floor(opts.leaseTtlMs / 2)
		});
	}

	/** Pull requests expire well within the lease margin, so none of a fenced leader's outlives its lease. */
	static pullExpiresMs(leaseTtlMs: number): number {
		return Math.max(1_000, Math.min(30_000, Math.floor(leaseTtlMs / 4)));
	}

	async start(): Promise<void> {
		this.stopping = false;
		this.jsm = await this.opts.nc.jetstreamManager();
		await this.lease.open();
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
		await withTimeout(Promise.allSettled([...this.chains.values()]), graceMs);
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
			if (epoch !== this.epoch) return;
			this.lastDeliverySeq = info.delivered.consumer_seq;
			if (info.num_ack_pending > 0) {
				this.startBarrier(`${info.num_ack_pending} messages are still pending from an earlier leader`);
			}
			const consumer = await this.opts.nc.jetstream().consumers.get(this.opts.stream, this.opts.durable);
			const messages = await consumer.consume({
				max_messages: this.opts.pullBatch,
				expires: OrderedJetStreamConsumer.pullExpiresMs(this.opts.leaseTtlMs)
			});
			if (epoch !== this.epoch) {
				await messages.close();
				return;
			}
			this.messages = messages;
			this.opts.logger.info(`ingest: leading ${this.opts.stream}/${this.opts.durable} (epoch ${epoch})`);
			void this.pump(messages, epoch);
		} catch (err) {
			if (epoch === this.epoch) this.fence(`could not start consuming: ${(err as Error).message}`);
		}
	}

	private async pump(messages: ConsumerMessages, epoch: number): Promise<void> {
		try {
			for await (const m of messages) {
				if (epoch !== this.epoch) break;
				this.onDelivery(m, epoch);
			}
		} catch (err) {
			if (epoch === this.epoch) this.opts.logger.warn(`ingest: consumer stopped: ${(err as Error).message}`);
		}
		if (epoch === this.epoch && !this.stopping) this.fence("the consumer stopped delivering");
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
		const live = this.items.get(sseq);
		if (live) {
			live.msg = m;
			return;
		}
		// Applied; its ack is on its way (the redelivery raced it).
		if (this.unconfirmed.has(sseq)) return;
		const item: Item = { sseq, msg: m, epoch };
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
		const previous = this.chains.get(key);
		const next = previous ? previous.then(() => this.execute(item, prepared)) : this.execute(item, prepared);
		this.chains.set(key, next);
		void next.finally(() => {
			if (this.chains.get(key) === next) this.chains.delete(key);
		});
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
			await this.ack(item);
		} finally {
			this.stats.inFlight--;
		}
	}

	private async deadLetter(item: Item, reason: string, code: string): Promise<boolean> {
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
	 * Acknowledges and waits for the server's confirmation in the background. The next message of the same key
	 * may start before it arrives, but only `maxUnconfirmedAcks` may be outstanding (see the option).
	 */
	private async ack(item: Item): Promise<void> {
		if (this.items.get(item.sseq) === item) this.items.delete(item.sseq);
		while (this.unconfirmed.size >= this.opts.maxUnconfirmedAcks) {
			await new Promise<void>(resolve => this.ackWaiters.push(resolve));
		}
		this.unconfirmed.set(item.sseq, item.msg);
		this.stats.unconfirmedAcks = this.unconfirmed.size;
		void this.confirmAck(item.sseq, item.msg);
	}

	private async confirmAck(sseq: number, msg: JsMsg): Promise<void> {
		try {
			for (let attempt = 1; ; attempt++) {
				try {
					await this.opts.nc.request(replyOf(msg), ACK, { timeout: 2_000 });
					return;
				} catch (err) {
					if (this.opts.nc.isClosed()) return;
					if (attempt === 1 || attempt % 20 === 0) this.opts.logger.debug(`ingest: ack of ${sseq} not confirmed (${(err as Error).message}); resending`);
					await delay(Math.min(1_000, 50 * attempt));
				}
			}
		} finally {
			this.unconfirmed.delete(sseq);
			this.stats.unconfirmedAcks = this.unconfirmed.size;
			const waiter = this.ackWaiters.shift();
			if (waiter) waiter();
		}
	}

	private async acksConfirmed(): Promise<void> {
		while (this.unconfirmed.size > 0) await delay(20);
	}

	/** Keeps the server from redelivering what this leader still holds; never after fencing, never buffered offline. */
	private keepAlive(): void {
		if (!this.leading || !this.connected || !this.lease.held) return;
		for (const item of this.items.values()) item.msg.working();
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

/** Exponential backoff with full jitter in its upper half. */
export function backoff(attempt: number, baseMs: number, maxMs: number): number {
	const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 20));
	return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

function delay(ms: number): Promise<void> {
	return new Promise(resolve => setTimeout(resolve, ms));
}

async function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
	let timer: NodeJS.Timeout | undefined;
	await Promise.race([p, new Promise<void>(resolve => { timer = setTimeout(resolve, ms); })]);
	clearTimeout(timer);
}
