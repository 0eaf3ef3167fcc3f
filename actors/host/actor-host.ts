// The actor host: one mailbox per customer, lazy batched activation, passivation (idle + a frequency-aware cap in
// actors and bytes), group commit with compare-and-set fencing, snapshots on event-sourced stores (every N events,
// when quiet, when a dirty actor is passivated), and due-reminder delivery. The only part of actors/ that touches a
// store. The per-message path allocates only what the message needs (its promise, journal entry and result): a
// pending write is a field of its actor, not a map entry, and is handed to the store as it is.
import { eventKey } from "../../models/cloud-event.ts";
import type { CustomerState } from "../../models/customer-state.ts";
import type { HandleResult } from "../../models/contract/customers.contract.ts";
import { emptyCustomerState, reduce, sharingEmpties } from "../customer.reducer.ts";
import { mergeEntryKey } from "../customer-merge.ts";
import type { CustomerMessage, Effect, ReduceContext } from "../customer-actor.types.ts";
import type { ActorStore, ActorWrite, JournalEntry, LoadedActor } from "./actor-store.ts";
import { SegmentQueue, type QueueItem } from "./segment-queue.ts";

/** How often the host looks for quiet actors to snapshot, and for how long at most per pass. */
const SNAPSHOT_PASS_EVERY_MS = 250;
const SNAPSHOT_PASS_BUDGET_MS = 20;
/** Group commits allowed in flight at once: keeps the store busy while the next batch fills. */
const MAX_INFLIGHT_BATCHES = 8;
/**
 * A batch that reaches this many new writes is sent at once instead of at the end of the tick: the store works
 * on it while the host applies the rest of a burst (a burst of 1000 messages would otherwise alternate: 1000
 * applies with the store idle, then one commit with the host idle).
 */
const EAGER_FLUSH_WRITES = 200;
/** The same for cold customers waiting for their load. */
const EAGER_LOAD_IDS = 200;
/** Defaults of the snapshot settings (ActorHostOptions). */
export const DEFAULT_SNAPSHOT_EVERY = 100;
export const DEFAULT_SNAPSHOT_QUIET_MS = 5000;
export const DEFAULT_SNAPSHOT_MIN_TAIL = 8;
/**
 * Heap of one active actor before the host has measured any (a typical customer's state plus its bookkeeping);
 * refined from the JSON size of the states it samples (see sampleSize).
 */
const DEFAULT_ACTOR_BYTES = 2048;
/**
 * Heap of an active actor ≈ ACTOR_FIXED_BYTES + ACTOR_BYTES_PER_JSON_CHAR × its state's JSON length, a line just
 * above what was measured (heap freed per actor passivated: 0.88 KB at 0.55 KB of JSON, 1.45 KB at 1.8 KB, 2.15 KB
 * at 3 KB): the Actor record, its map entry and the state's objects cost more than their JSON when the state is
 * small, and less when it is large.
 */
const ACTOR_FIXED_BYTES = 650;
const ACTOR_BYTES_PER_JSON_CHAR = 0.52;
/** One committed write in this many has its state's size sampled for the byte estimate. */
const SIZE_SAMPLE_EVERY = 256;
/** Share of the cap the probation segment may hold (new actors, not used again yet). */
const PROBATION_SHARE = 0.1;
/** Uses counted per actor for eviction: an actor used again gets up to this many second chances. */
const MAX_FREQ = 3;

export type ActorHostErrorType = "VERSION_CONFLICT" | "STORE_UNAVAILABLE" | "HOST_STOPPED" | "NOT_OWNER";

/** A failure the caller should retry (re-routed): the message was not applied by this host. */
export class ActorHostError extends Error {
	override name = "ActorHostError";
	readonly type: ActorHostErrorType;
	constructor(message: string, type: ActorHostErrorType, options?: { cause?: unknown }) {
		super(message, options);
		this.type = type;
	}
}

export interface ActorHostOptions {
	store: ActorStore;
	/** Built per turn so the clock and the loaded churn model are current. */
	reduceContext: (now: number) => ReduceContext;
	idleTimeoutMs: number;
	maxActiveActors: number;
	/** Cap on the estimated heap of active actors (bytes); the tighter of this and maxActiveActors applies. */
	maxActiveBytes?: number;
	/**
	 * Event-sourced stores: write the state as a snapshot once this many events were journaled since the last one
	 * (also for every write that carries a reminder). Must not exceed the store's journal length.
	 * Default DEFAULT_SNAPSHOT_EVERY.
	 */
	snapshotEvery?: number;
	/**
	 * Event-sourced stores: an actor with at least `snapshotMinTail` events past its snapshot gets a snapshot when it
	 * has had no write for this long, and when it is passivated (idle, or evicted under the cap), so its next
	 * activation replays little. A shorter tail is left alone: replaying a few events costs less than writing a state.
	 * snapshotMinTail 0 turns both off. Defaults DEFAULT_SNAPSHOT_QUIET_MS, DEFAULT_SNAPSHOT_MIN_TAIL.
	 */
	snapshotQuietMs?: number;
	snapshotMinTail?: number;
	commitMaxBatch: number;
	commitIntervalMs: number;
	reminderPollMs: number;
	/**
	 * Called after a write is persisted, with the effects of the messages it carried, in order, and for each effect
	 * the `origin` its message was told with (e.g. the caller's context, so a trace continues through the effect).
	 */
	onEffects?: (effects: Effect[], origins: unknown[]) => void;
	/** Called after a group commit that persisted journal entries (change streams read the store's feed then). */
	onPersisted?: () => void;
	/** Whether this node currently owns a customer (cluster); reminders of other owners are left to them. */
	isOwner?: (customerId: string) => boolean;
	onError?: (message: string, err: unknown) => void;
	/**
	 * Called when a customer is activated with a merge into it under way (`mergingFrom`: its intent is persisted,
	 * its absorb is not, e.g. the node driving it was killed): the service completes the merge (docs/merge.md).
	 */
	onMergePending?: (customerId: string, from: string) => void;
	now?: () => number;
}

/** Timings for metrics, set by whoever collects them; the host stays free of any metrics library. */
export interface ActorHostObserver {
	/** One message went through the reducer in `ms`. */
	onApply?(ms: number): void;
	/** One group commit of `batchSize` writes took `ms` in the store; `ok` is false when the store call failed. */
	onCommit?(batchSize: number, ms: number, ok: boolean): void;
}

type Resolve = (r: HandleResult) => void;
type Reject = (e: Error) => void;

/** One write of one actor: built up by the messages of a tick, then sent to the store as it is (an ActorWrite). */
interface PendingWrite extends ActorWrite {
	actor: Actor;
	/** Always set here (the ActorWrite field is optional). */
	snapshot: boolean;
	/** Set by drop(): the write is not sent (it sits in the batch until the next flush skips it). */
	cancelled: boolean;
	/** The effects of its messages, and the origin of the message of each (same index); null until one has any. */
	effects: Effect[] | null;
	origins: unknown[] | null;
	/**
	 * The callers waiting for this write, flat: resolve, reject and the result to answer, three slots per caller
	 * (one array per write instead of one object per caller; see settle and fail).
	 */
	callers: Array<Resolve | Reject | HandleResult>;
}

interface Queued {
	msg: CustomerMessage;
	origin: unknown;
	resolve: Resolve;
	reject: Reject;
}

interface Actor extends QueueItem {
	id: string;
	/** Latest applied state (may be ahead of the store while a write is pending); null while loading. */
	state: CustomerState | null;
	/** Latest persisted state: what reads return. */
	committed: CustomerState | null;
	/** Messages that arrived while the state was loading, in arrival order; null when none. */
	waiting: Queued[] | null;
	/** The write collecting this actor's changes in the current batch (not sent yet). */
	next: PendingWrite | null;
	/** The newest of its writes in flight, if any. */
	inflight: PendingWrite | null;
	/** The newest write carrying its changes that has not been persisted yet (next, else inflight). */
	latest: PendingWrite | null;
	lastUsedAt: number;
	dropped: boolean;
	/** Events journaled (persisted or in flight) since the state was last written as a snapshot. */
	sinceSnapshot: number;
	/** Uses since it entered its segment, up to MAX_FREQ: what spares it from eviction. */
	freq: number;
	/** Which eviction segment holds it: probation (new) or main (used again while in probation). */
	main: boolean;
	/** When its last write was persisted (quiet snapshots wait for quiet). */
	committedAt: number;
	/** Its place in the quiet-snapshot queue, if it is there. */
	quietTicket: QuietTicket | null;
}

/** A place in the quiet-snapshot queue; `actor` is cleared when the actor leaves memory, so the queue holds no state. */
interface QuietTicket {
	actor: Actor | null;
	/** When it was queued (or last written): it is looked at once quiet since then. */
	at: number;
}

type LoadCallback = (loaded: LoadedActor | null, err: unknown) => void;

export interface ActorHostStats {
	active: number;
	activations: number;
	passivations: number;
	applied: number;
	duplicates: number;
	conflicts: number;
	commits: number;
	committedWrites: number;
	/** Snapshot-only writes (quiet or passivated actors). */
	snapshots: number;
	remindersDelivered: number;
	pendingWrites: number;
}

export class ActorHost {
	private readonly opts: ActorHostOptions;
	private readonly now: () => number;
	/** Every active actor by id. */
	private readonly actors = new Map<string, Actor>();
	/**
	 * Eviction order (segmented, frequency-aware, as S3-FIFO): new actors enter `probation`; one used again before
	 * it reaches the head moves to `main`, others are evicted first, so a burst of one-off customers cannot flush
	 * the working set. `main` is a CLOCK: at the head, an actor used since its last pass gets another round.
	 * A use only bumps a counter: no reordering per message.
	 */
	private readonly probation = new SegmentQueue<Actor>();
	private readonly main = new SegmentQueue<Actor>();
	private readonly snapshotEvery: number;
	private readonly snapshotQuietMs: number;
	private readonly snapshotMinTail: number;
	private readonly eventSourced: boolean;
	/** Running estimate of one active actor's heap (bytes), for maxActiveBytes. */
	private actorBytes = DEFAULT_ACTOR_BYTES;
	private sizeTick = 0;
	/** Cold customers waiting for the next batched load (one store round trip per tick). */
	private loadIds: string[] = [];
	private loadCallbacks: LoadCallback[] = [];
	private loadTimer: NodeJS.Immediate | null = null;
	/** The reduce context of the current millisecond: built once, not once per message. */
	private ctxNow = Number.NaN;
	private ctx: ReduceContext | null = null;
	/** Writes not sent yet, in the order their actors first changed (cancelled ones are skipped when sent). */
	private batch: PendingWrite[] = [];
	/** Group commits in flight. */
	private inflightBatches = 0;
	private flushTimer: NodeJS.Immediate | NodeJS.Timeout | null = null;
	/** Writes added to the batch since the last flush started (for EAGER_FLUSH_WRITES). */
	private addedSinceFlush = 0;
	private idleTimer: NodeJS.Timeout | null = null;
	private reminderTimer: NodeJS.Timeout | null = null;
	private snapshotTimer: NodeJS.Timeout | null = null;
	/** Actors with events past their snapshot, oldest first. */
	private quiet: QuietTicket[] = [];
	private quietHead = 0;
	private stopped = false;
	private drainWaiters: Array<() => void> = [];
	readonly stats: ActorHostStats = {
		active: 0, activations: 0, passivations: 0, applied: 0, duplicates: 0, conflicts: 0, commits: 0,
		committedWrites: 0, snapshots: 0, remindersDelivered: 0, pendingWrites: 0
	};
	/** Optional timing callbacks (metrics); null costs nothing. */
	observer: ActorHostObserver | null = null;

	constructor(opts: ActorHostOptions) {
		this.opts = opts;
		this.now = opts.now ?? Date.now;
		this.eventSourced = opts.store.eventSourced;
		this.snapshotEvery = opts.snapshotEvery ?? DEFAULT_SNAPSHOT_EVERY;
		this.snapshotQuietMs = opts.snapshotQuietMs ?? DEFAULT_SNAPSHOT_QUIET_MS;
		this.snapshotMinTail = opts.snapshotMinTail ?? DEFAULT_SNAPSHOT_MIN_TAIL;
		if (!Number.isInteger(this.snapshotEvery) || this.snapshotEvery < 1) throw new Error(`ActorHost: snapshotEvery must be a positive integer, got ${opts.snapshotEvery}`);
		if (!(this.snapshotQuietMs >= 0)) throw new Error(`ActorHost: snapshotQuietMs must be ≥ 0, got ${opts.snapshotQuietMs}`);
		if (!Number.isInteger(this.snapshotMinTail) || this.snapshotMinTail < 0) throw new Error(`ActorHost: snapshotMinTail must be an integer ≥ 0, got ${opts.snapshotMinTail}`);
	}

	start(): void {
		this.stopped = false;
		const idleEvery = Math.max(10, Math.min(Math.floor(this.opts.idleTimeoutMs / 2), 10_000));
		this.idleTimer = setInterval(() => this.passivateIdle(), idleEvery);
		this.idleTimer.unref();
		this.reminderTimer = setInterval(() => void this.deliverDueReminders(), this.opts.reminderPollMs);
		this.reminderTimer.unref();
		this.snapshotTimer = setInterval(() => this.snapshotQuiet(SNAPSHOT_PASS_BUDGET_MS), SNAPSHOT_PASS_EVERY_MS);
		this.snapshotTimer.unref();
	}

	/** Stops taking messages, waits for pending writes, and drops every actor. */
	async stop(): Promise<void> {
		this.stopped = true;
		if (this.idleTimer) clearInterval(this.idleTimer);
		if (this.reminderTimer) clearInterval(this.reminderTimer);
		if (this.snapshotTimer) clearInterval(this.snapshotTimer);
		await this.drain();
		const stopped = new ActorHostError("host stopped", "HOST_STOPPED");
		for (const actor of this.actors.values()) this.drop(actor, stopped);
		this.actors.clear();
		this.probation.clear();
		this.main.clear();
		this.quiet = [];
		this.quietHead = 0;
		this.stats.active = 0;
	}

	/** Resolves when every write accepted so far is persisted (or failed). */
	drain(): Promise<void> {
		if (this.batch.length === 0 && this.inflightBatches === 0) return Promise.resolve();
		return new Promise(resolve => this.drainWaiters.push(resolve));
	}

	/**
	 * Applies one message to a customer's actor, in arrival order; resolves once its change is persisted.
	 * `origin` is opaque to the host: it is handed back with the message's effects (see `onEffects`).
	 */
	tell(customerId: string, msg: CustomerMessage, origin?: unknown): Promise<HandleResult> {
		if (this.stopped) return Promise.reject(new ActorHostError("host stopped", "HOST_STOPPED"));
		const now = this.now();
		const actor = this.touch(customerId, now);
		const { promise, resolve, reject } = Promise.withResolvers<HandleResult>();
		if (actor.state === null) (actor.waiting ??= []).push({ msg, origin, resolve, reject });
		else this.apply(actor, msg, origin, resolve, reject, now);
		return promise;
	}

	/** Applies several messages for one customer in order; resolves when all are persisted. */
	tellMany(customerId: string, msgs: CustomerMessage[], origin?: unknown): Promise<HandleResult[]> {
		return Promise.all(msgs.map(m => this.tell(customerId, m, origin)));
	}

	/** The persisted state of a customer, activating it; null for a customer never seen. */
	async get(customerId: string): Promise<CustomerState | null> {
		const actor = this.actors.get(customerId);
		if (actor && actor.state !== null) {
			if (actor.committed) return actor.committed;
			return actor.latest ? this.afterPending(actor).then(() => actor.committed) : null;
		}
		const loaded = await new Promise<LoadedActor | null>((resolve, reject) =>
			this.enqueueLoad(customerId, (res, err) => (err === undefined ? resolve(res) : reject(err))));
		if (loaded === null) return null;
		// Activate with what we just read so the next message doesn't pay for a second load.
		if (!this.actors.has(customerId) && !this.stopped) this.install(customerId, loaded);
		return this.actors.get(customerId)?.committed ?? loaded.state;
	}

	/** The in-memory state if the actor is active (no load): for inspection. */
	peek(customerId: string): CustomerState | null {
		return this.actors.get(customerId)?.committed ?? null;
	}

	isActive(customerId: string): boolean {
		return this.actors.has(customerId);
	}

	activeIds(): string[] {
		return [...this.actors.keys()];
	}

	/** Drops an idle actor from memory (its state is already persisted). False when it is busy or not active. */
	passivate(customerId: string): boolean {
		const actor = this.actors.get(customerId);
		if (!actor || !this.isIdle(actor)) return false;
		this.forget(actor);
		this.passivated(actor);
		this.stats.active = this.actors.size;
		return true;
	}

	/** After an idle actor left memory: counts it, and snapshots it if it replays a long tail otherwise. */
	private passivated(actor: Actor): void {
		this.stats.passivations++;
		if (this.wantsSnapshot(actor) && !this.stopped && actor.committed !== null) {
			this.queueSnapshot(actor, actor.committed);
		}
	}

	private forget(actor: Actor): void {
		actor.dropped = true;
		if (this.actors.get(actor.id) === actor) this.actors.delete(actor.id);
		(actor.main ? this.main : this.probation).remove(actor);
		this.unqueueQuiet(actor);
	}

	/** Passivates every idle actor this node no longer owns (after a membership change); returns how many. */
	releaseNotOwned(isOwner: (customerId: string) => boolean): number {
		let released = 0;
		for (const actor of [...this.actors.values()]) {
			if (!isOwner(actor.id) && this.passivate(actor.id)) released++;
		}
		return released;
	}

	private touch(customerId: string, now: number): Actor {
		let actor = this.actors.get(customerId);
		if (actor !== undefined) {
			if (actor.freq < MAX_FREQ) actor.freq++;
			actor.lastUsedAt = now;
			return actor;
		}
		actor = this.newActor(customerId, null, 0);
		this.enforceCap();
		const loading = actor;
		this.enqueueLoad(customerId, (loaded, err) => {
			if (err === undefined) this.loaded(loading, loaded);
			else this.drop(loading, new ActorHostError(`loading customer ${customerId} failed: ${String(err)}`, "STORE_UNAVAILABLE", { cause: err }));
		});
		return actor;
	}

	private newActor(customerId: string, state: CustomerState | null, sinceSnapshot: number): Actor {
		const actor: Actor = {
			id: customerId, state, committed: state, waiting: null, next: null, inflight: null, latest: null,
			lastUsedAt: this.now(), dropped: false, sinceSnapshot, freq: 0, main: false, queue: null, queueSlot: 0,
			committedAt: 0, quietTicket: null
		};
		this.actors.set(customerId, actor);
		this.probation.push(actor);
		this.stats.activations++;
		this.stats.active = this.actors.size;
		if (this.wantsSnapshot(actor)) this.queueQuiet(actor, this.now());
		return actor;
	}

	private install(customerId: string, loaded: LoadedActor): void {
		this.newActor(customerId, sharingEmpties(loaded.state), loaded.sinceSnapshot);
		this.enforceCap();
		if (loaded.state.mergingFrom !== undefined) this.opts.onMergePending?.(customerId, loaded.state.mergingFrom);
	}

	/**
	 * Queues a cold customer for the next batched load: the customers queued in the same tick are read in one call,
	 * or in calls of EAGER_LOAD_IDS sent as soon as they fill, so the store works while the host goes on.
	 */
	private enqueueLoad(customerId: string, callback: LoadCallback): void {
		this.loadIds.push(customerId);
		this.loadCallbacks.push(callback);
		if (this.loadIds.length >= EAGER_LOAD_IDS) this.flushLoads();
		else if (this.loadTimer === null) this.loadTimer = setImmediate(() => this.flushLoads());
	}

	private flushLoads(): void {
		if (this.loadTimer !== null) {
			clearImmediate(this.loadTimer);
			this.loadTimer = null;
		}
		if (this.loadIds.length === 0) return;
		const ids = this.loadIds;
		const callbacks = this.loadCallbacks;
		this.loadIds = [];
		this.loadCallbacks = [];
		let rows: Promise<Array<LoadedActor | null>>;
		try {
			rows = this.opts.store.loadMany(ids);
		} catch (err) {
			rows = Promise.reject(err);
		}
		rows.then(
			loaded => {
				for (let i = 0; i < callbacks.length; i++) callbacks[i](loaded[i] ?? null, undefined);
			},
			(err: unknown) => {
				for (const callback of callbacks) callback(null, err ?? new Error("load failed"));
			}
		);
	}

	private loaded(actor: Actor, stored: LoadedActor | null): void {
		if (actor.dropped) return;
		// A state read from the store shares the empty collections, as one built here does (smaller, fewer objects).
		const state = stored ? sharingEmpties(stored.state) : null;
		actor.state = state ?? emptyCustomerState(actor.id);
		actor.committed = state;
		actor.sinceSnapshot = stored ? stored.sinceSnapshot : 0;
		if (this.wantsSnapshot(actor)) this.queueQuiet(actor, this.now());
		if (state !== null && state.mergingFrom !== undefined) this.opts.onMergePending?.(actor.id, state.mergingFrom);
		const waiting = actor.waiting;
		actor.waiting = null;
		if (waiting === null) return;
		const now = this.now();
		for (const q of waiting) this.apply(actor, q.msg, q.origin, q.resolve, q.reject, now);
	}

	private apply(actor: Actor, msg: CustomerMessage, origin: unknown, resolve: Resolve, reject: Reject, now: number): void {
		const before = actor.state as CustomerState;
		// A sealed customer (merged into another, actors/customer-merge.ts) applies no event: it answers where to send
		// it, once the seal is persisted. Customers never merged pay one property read.
		if (before.mergedInto !== undefined && msg.kind === "event") {
			const outcome: HandleResult = { applied: false, version: before.version, riskScore: before.risk.score, redirect: before.mergedInto };
			if (actor.latest) this.await(actor.latest, resolve, reject, outcome);
			else resolve(outcome);
			return;
		}
		const observer = this.observer;
		const t0 = observer?.onApply ? performance.now() : 0;
		let result;
		try {
			result = reduce(before, msg, this.contextAt(now));
		} catch (err) {
			reject(err instanceof Error ? err : new Error(String(err)));
			return;
		}
		if (observer?.onApply) observer.onApply(performance.now() - t0);
		const state = result.state;
		if (!result.applied || state === before) {
			if (result.applied) this.stats.applied++;
			else if (msg.kind === "event") this.stats.duplicates++;
			const outcome: HandleResult = { applied: result.applied, version: state.version, riskScore: state.risk.score };
			if (result.merge !== undefined) outcome.merge = result.merge;
			// A duplicate is acknowledged only once the original's write is persisted, never before.
			if (actor.latest) this.await(actor.latest, resolve, reject, outcome);
			else resolve(outcome);
			return;
		}
		this.stats.applied++;
		actor.state = state;
		const outcome: HandleResult = { applied: true, version: state.version, riskScore: state.risk.score };
		if (result.merge !== undefined) outcome.merge = result.merge;
		// Every applied message is journaled with its change record (events and reminders alike), so every version
		// has an entry: change streams resume from the journal, and a write never needs the state for a reminder.
		const change = result.change ?? undefined;
		const entry: JournalEntry = msg.kind === "event"
			? { customerId: actor.id, version: state.version, key: eventKey(msg.event), appliedAt: now, riskScore: outcome.riskScore, event: msg.event, change }
			: msg.kind === "reminder"
				? { customerId: actor.id, version: state.version, key: `reminder:${msg.name}`, appliedAt: now, riskScore: outcome.riskScore, reminder: msg.name, change }
				: { customerId: actor.id, version: state.version, key: mergeEntryKey(msg), appliedAt: now, riskScore: outcome.riskScore, merge: msg, change };
		let write = actor.next;
		if (write === null) {
			// Arrays start at their exact length: most writes carry one message.
			write = {
				id: actor.id, expectedVersion: before.version, state, journal: [entry], snapshot: false,
				base: before, after: undefined, actor, cancelled: false, effects: null, origins: null,
				callers: [resolve, reject, outcome]
			};
			actor.next = write;
			this.batch.push(write);
			this.stats.pendingWrites = this.batch.length;
			this.addedSinceFlush++;
		} else {
			write.state = state;
			write.journal.push(entry);
			this.await(write, resolve, reject, outcome);
		}
		actor.latest = write;
		// A merge step's write carries the state: activations never replay an absorb (nor its absorbed state).
		if (entry.merge !== undefined) write.snapshot = true;
		const effects = result.effects;
		if (effects.length > 0) {
			const all = (write.effects ??= []);
			const origins = (write.origins ??= []);
			for (const e of effects) {
				all.push(e);
				origins.push(origin);
			}
		}
		if (this.addedSinceFlush >= EAGER_FLUSH_WRITES && this.inflightBatches < MAX_INFLIGHT_BATCHES) this.flushNow();
		else if (this.flushTimer === null) this.scheduleFlush();
	}

	private contextAt(now: number): ReduceContext {
		if (now !== this.ctxNow || this.ctx === null) {
			this.ctx = this.opts.reduceContext(now);
			this.ctxNow = now;
		}
		return this.ctx;
	}

	private scheduleFlush(): void {
		if (this.flushTimer || this.inflightBatches >= MAX_INFLIGHT_BATCHES) return;
		if (this.batch.length >= this.opts.commitMaxBatch || this.opts.commitIntervalMs === 0) {
			this.flushTimer = setImmediate(() => void this.flush());
		} else {
			this.flushTimer = setTimeout(() => void this.flush(), this.opts.commitIntervalMs);
		}
	}

	private flushNow(): void {
		if (this.flushTimer) {
			clearImmediate(this.flushTimer as NodeJS.Immediate);
			clearTimeout(this.flushTimer as NodeJS.Timeout);
			this.flushTimer = null;
		}
		void this.flush();
	}

	/**
	 * Sends up to commitMaxBatch pending writes as one group commit. An actor whose previous write is still in flight
	 * goes along only if the store applies writes in order and that write ends with a journal entry to fence on
	 * (ActorWrite.after); otherwise its write waits for a later flush.
	 */
	private async flush(): Promise<void> {
		this.flushTimer = null;
		this.addedSinceFlush = 0;
		if (this.inflightBatches >= MAX_INFLIGHT_BATCHES || this.batch.length === 0) return;
		const pending = this.batch;
		const writes: PendingWrite[] = [];
		let kept: PendingWrite[] | null = null;
		const chains = this.opts.store.chainsWrites;
		const max = this.opts.commitMaxBatch;
		let i = 0;
		for (; i < pending.length && writes.length < max; i++) {
			const write = pending[i];
			if (write.cancelled) continue;
			const prev = write.actor.inflight;
			if (prev !== null) {
				const after = chains ? prev.journal.at(-1) : undefined;
				if (after === undefined || after.version !== prev.state.version) {
					(kept ??= []).push(write);
					continue;
				}
				write.after = after;
			}
			writes.push(write);
		}
		if (kept === null) this.batch = i === pending.length ? [] : pending.slice(i);
		else this.batch = i === pending.length ? kept : kept.concat(pending.slice(i));
		this.stats.pendingWrites = this.batch.length;
		if (writes.length === 0) return;
		const eventSourced = this.eventSourced;
		for (const write of writes) {
			const actor = write.actor;
			if (actor.next === write) actor.next = null;
			actor.inflight = write;
			if (write.journal.length > 0) {
				const since = actor.sinceSnapshot + write.journal.length;
				if (!eventSourced || since >= this.snapshotEvery) write.snapshot = true;
				actor.sinceSnapshot = write.snapshot ? 0 : since;
			} else if (write.snapshot) {
				actor.sinceSnapshot = 0;
			}
		}
		this.inflightBatches++;
		if (this.batch.length > 0) this.scheduleFlush();
		const t0 = performance.now();
		try {
			const results = await this.opts.store.saveBatch(writes);
			this.observer?.onCommit?.(writes.length, performance.now() - t0, true);
			this.stats.commits++;
			const now = this.now();
			let persisted = false;
			for (let w = 0; w < writes.length; w++) {
				const write = writes[w];
				const actor = write.actor;
				if (actor.inflight === write) actor.inflight = null;
				const res = results[w];
				if (res !== undefined && res.ok) {
					this.committed(write, now);
					if (write.journal.length > 0) persisted = true;
				}
				else if (write.journal.length === 0 && write.callers.length === 0) {
					// A snapshot-only write that lost: the journal it summarises is the truth, nothing is lost.
					if (actor.latest === write) actor.latest = null;
				} else {
					this.stats.conflicts++;
					const current = res !== undefined && !res.ok ? res.currentVersion : null;
					this.drop(actor, new ActorHostError(
						`customer ${actor.id}: version conflict (expected ${write.expectedVersion}, store has ${current}); another node wrote it`,
						"VERSION_CONFLICT"
					), write);
				}
			}
			if (persisted && this.opts.onPersisted) {
				try {
					this.opts.onPersisted();
				} catch (err) {
					this.opts.onError?.("persisted handler failed", err);
				}
			}
		} catch (err) {
			// The store may have applied part of the batch: drop the actors so the next message reloads the truth.
			this.observer?.onCommit?.(writes.length, performance.now() - t0, false);
			this.opts.onError?.("group commit failed", err);
			for (const write of writes) {
				if (write.actor.inflight === write) write.actor.inflight = null;
				this.drop(write.actor, new ActorHostError(`persisting customer ${write.actor.id} failed: ${String(err)}`, "STORE_UNAVAILABLE", { cause: err }), write);
			}
		} finally {
			this.inflightBatches--;
			// Actors that were busy when the cap was hit can be evicted now that their writes landed.
			if (this.actors.size > this.opts.maxActiveActors || this.opts.maxActiveBytes !== undefined) this.enforceCap();
			if (this.batch.length > 0) this.scheduleFlush();
			else if (this.inflightBatches === 0 && this.drainWaiters.length > 0) {
				const waiters = this.drainWaiters;
				this.drainWaiters = [];
				for (const w of waiters) w();
			}
		}
	}

	private committed(write: PendingWrite, now: number): void {
		const actor = write.actor;
		this.stats.committedWrites++;
		if (write.journal.length === 0 && write.callers.length === 0) this.stats.snapshots++;
		if (actor.latest === write) actor.latest = null;
		if (!actor.dropped) {
			actor.committed = write.state;
			actor.committedAt = now;
			if (this.wantsSnapshot(actor)) this.queueQuiet(actor, now);
			if (this.opts.maxActiveBytes !== undefined && ++this.sizeTick === SIZE_SAMPLE_EVERY) {
				this.sizeTick = 0;
				this.sampleSize(write.state);
			}
		}
		const effects = write.effects;
		if (effects !== null && this.opts.onEffects) {
			try {
				this.opts.onEffects(effects, write.origins as unknown[]);
			} catch (err) {
				this.opts.onError?.("effect handler failed", err);
			}
		}
		const callers = write.callers;
		for (let i = 0; i < callers.length; i += 3) (callers[i] as Resolve)(callers[i + 2] as HandleResult);
	}

	/** Rejects every caller of a write. */
	private fail(write: PendingWrite, err: Error): void {
		const callers = write.callers;
		for (let i = 1; i < callers.length; i += 3) (callers[i] as Reject)(err);
	}

	/** Adds a caller to a pending write: answered `result` once it is persisted, rejected if it fails. */
	private await(write: PendingWrite, resolve: Resolve, reject: Reject, result: HandleResult): void {
		write.callers.push(resolve, reject, result);
	}

	/** The running estimate of an active actor's heap, for maxActiveBytes: moves 1/64 of the gap per sample. */
	private sampleSize(state: CustomerState): void {
		const bytes = ACTOR_FIXED_BYTES + ACTOR_BYTES_PER_JSON_CHAR * JSON.stringify(state).length;
		this.actorBytes += (bytes - this.actorBytes) / 64;
	}

	/** Forgets an actor after a failed load or write; every message not persisted yet is rejected (retryable). */
	private drop(actor: Actor, err: ActorHostError, failed?: PendingWrite): void {
		this.forget(actor);
		this.stats.active = this.actors.size;
		if (failed) this.fail(failed, err);
		const next = actor.next;
		if (next !== null) {
			next.cancelled = true;
			actor.next = null;
			this.fail(next, err);
		}
		if (actor.latest && actor.latest !== failed && actor.latest !== next) this.fail(actor.latest, err);
		actor.latest = null;
		const waiting = actor.waiting;
		actor.waiting = null;
		if (waiting !== null) for (const q of waiting) q.reject(err);
	}

	/** Whether a quiet or passivated actor's tail is long enough for a snapshot (snapshotMinTail). */
	private wantsSnapshot(actor: Actor): boolean {
		return this.eventSourced && this.snapshotMinTail > 0 && actor.sinceSnapshot >= this.snapshotMinTail;
	}

	private queueQuiet(actor: Actor, at: number): void {
		if (actor.quietTicket !== null) return;
		const ticket: QuietTicket = { actor, at };
		actor.quietTicket = ticket;
		this.quiet.push(ticket);
	}

	private unqueueQuiet(actor: Actor): void {
		const ticket = actor.quietTicket;
		if (ticket === null) return;
		ticket.actor = null;
		actor.quietTicket = null;
	}

	/**
	 * Snapshots active actors with at least snapshotMinTail events past their snapshot and no write for `quietMs`, so
	 * an activation replays little. Works for at most `budgetMs`; returns how many snapshots it queued.
	 */
	snapshotQuiet(budgetMs = Infinity, quietMs = this.snapshotQuietMs): number {
		if (!this.eventSourced || this.stopped) return 0;
		const deadline = performance.now() + budgetMs;
		const quietBefore = this.now() - quietMs;
		let queued = 0;
		let visited = 0;
		while (this.quietHead < this.quiet.length) {
			const ticket = this.quiet[this.quietHead];
			if (ticket.at > quietBefore) break;
			if ((++visited & 63) === 0 && performance.now() > deadline) break;
			this.quietHead++;
			const actor = ticket.actor;
			if (actor === null) continue;
			actor.quietTicket = null;
			if (actor.dropped || !this.wantsSnapshot(actor)) continue;
			if (actor.committedAt > quietBefore) {
				// Written since it was queued: back of the queue, from its latest write.
				this.queueQuiet(actor, actor.committedAt);
				continue;
			}
			if (!this.isIdle(actor) || actor.committed === null) {
				// Busy: its write will requeue it; until then, back of the queue as of now (not seen again in this pass).
				this.queueQuiet(actor, this.now());
				continue;
			}
			this.queueSnapshot(actor, actor.committed);
			queued++;
		}
		if (this.quietHead > 1024 && this.quietHead * 2 > this.quiet.length) {
			this.quiet = this.quiet.slice(this.quietHead);
			this.quietHead = 0;
		}
		return queued;
	}

	/** Queues a write of an idle (or just passivated) actor's committed state as its snapshot: same version, no journal. */
	private queueSnapshot(actor: Actor, state: CustomerState): void {
		const write: PendingWrite = {
			id: actor.id, expectedVersion: state.version, state, journal: [], snapshot: true, base: state, after: undefined,
			actor, cancelled: false, effects: null, origins: null, callers: []
		};
		this.batch.push(write);
		this.stats.pendingWrites = this.batch.length;
		if (!actor.dropped) {
			actor.next = write;
			actor.latest = write;
		}
		this.scheduleFlush();
	}

	private afterPending(actor: Actor): Promise<void> {
		const write = actor.latest;
		if (!write) return Promise.resolve();
		return new Promise(resolve => {
			const done = () => resolve();
			this.await(write, done, done, { applied: false, version: 0, riskScore: 0 });
		});
	}

	private isIdle(actor: Actor): boolean {
		return actor.state !== null && actor.latest === null && actor.inflight === null && actor.waiting === null;
	}

	/** The number of active actors allowed now: maxActiveActors, or fewer when maxActiveBytes is the tighter cap. */
	private cap(): number {
		const bytes = this.opts.maxActiveBytes;
		const byBytes = bytes === undefined ? Infinity : Math.max(1, Math.floor(bytes / this.actorBytes));
		return Math.min(this.opts.maxActiveActors, byBytes);
	}

	/**
	 * Evicts idle actors until the cap holds: from probation while it is over its share (one used again there moves
	 * to main instead), else from main's head (one used since its last pass loses a use and goes round again). Busy
	 * actors go round too; they are evicted later, once their writes land. The work is bounded per call.
	 */
	private enforceCap(): void {
		const cap = this.cap();
		let excess = this.actors.size - cap;
		if (excess <= 0) return;
		const probationMax = Math.max(1, Math.floor(cap * PROBATION_SHARE));
		let budget = excess * 4 + 64;
		while (excess > 0 && budget-- > 0) {
			const fromProbation = this.probation.size > probationMax || this.main.size === 0;
			const segment = fromProbation ? this.probation : this.main;
			const actor = segment.shift();
			if (actor === undefined) break;
			if (!this.isIdle(actor)) {
				segment.push(actor);
			} else if (actor.freq > 0) {
				if (fromProbation) {
					actor.freq = 0;
					actor.main = true;
					this.main.push(actor);
				} else {
					actor.freq--;
					this.main.push(actor);
				}
			} else {
				actor.dropped = true;
				this.actors.delete(actor.id);
				this.unqueueQuiet(actor);
				this.passivated(actor);
				excess--;
			}
		}
		this.stats.active = this.actors.size;
	}

	private passivateIdle(): void {
		const cutoff = this.now() - this.opts.idleTimeoutMs;
		// Deleting the current entry while iterating a Map is safe: iteration goes on with the next one.
		for (const actor of this.actors.values()) {
			if (actor.lastUsedAt <= cutoff) this.passivate(actor.id);
		}
	}

	/** Finds customers with due reminders in the store and delivers them through their mailboxes. */
	async deliverDueReminders(limit = 1000): Promise<number> {
		if (this.stopped) return 0;
		let rows;
		try {
			rows = await this.opts.store.dueReminders(this.now(), limit);
		} catch (err) {
			this.opts.onError?.("reading due reminders failed", err);
			return 0;
		}
		let delivered = 0;
		const deliveries: Promise<unknown>[] = [];
		for (const row of rows) {
			if (this.opts.isOwner && !this.opts.isOwner(row.id)) continue;
			deliveries.push(this.deliverReminders(row.id).then(n => (delivered += n)));
		}
		await Promise.allSettled(deliveries);
		this.stats.remindersDelivered += delivered;
		return delivered;
	}

	private async deliverReminders(customerId: string): Promise<number> {
		const state = await this.get(customerId);
		if (!state) return 0;
		const now = this.now();
		const due = Object.entries(state.reminders).filter(([, at]) => at <= now).map(([name]) => name);
		await Promise.all(due.map(name => this.tell(customerId, { kind: "reminder", name })));
		return due.length;
	}
}
