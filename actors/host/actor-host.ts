// The actor host: one mailbox per customer, lazy batched activation, passivation (idle + a frequency-aware cap in
// actors and bytes), group commit with compare-and-set fencing, snapshots every N events on event-sourced stores,
// and due-reminder delivery. The only part of actors/ that touches a store.
import { eventKey } from "../../models/cloud-event.ts";
import type { CustomerState } from "../../models/customer-state.ts";
import { emptyCustomerState, reduce } from "../customer.reducer.ts";
import type { CustomerMessage, Effect, ReduceContext } from "../customer-actor.types.ts";
import type { ActorStore, ActorWrite, JournalEntry, LoadedActor } from "./actor-store.ts";
import { SegmentQueue, type QueueItem } from "./segment-queue.ts";

/** How often, and for how long at most, the host compacts idle actors' states (see compactIdle). */
const COMPACT_EVERY_MS = 250;
/** Group commits allowed in flight at once (of disjoint actors): keeps the store busy while the next batch fills. */
const MAX_INFLIGHT_BATCHES = 8;
/**
 * A batch that reaches this many new writes is sent at once instead of at the end of the tick: the store works
 * on it while the host applies the rest of a burst (a burst of 1000 messages would otherwise alternate: 1000
 * applies with the store idle, then one commit with the host idle).
 */
const EAGER_FLUSH_WRITES = 200;
const COMPACT_BUDGET_MS = 20;
/** An actor is compacted, and snapshotted if its journal has a tail, once it has had no write for this long. */
const COMPACT_QUIET_MS = 5000;
/** Default of `snapshotEvery`. */
export const DEFAULT_SNAPSHOT_EVERY = 100;
/**
 * Heap of one active actor before the host has measured any (the typical customer's state, compacted, plus its
 * bookkeeping); refined from the JSON size of the states it compacts.
 */
const DEFAULT_ACTOR_BYTES = 2048;
/** Per-actor heap besides the state's own (the Actor record, map entries, id string). */
const ACTOR_OVERHEAD_BYTES = 300;
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

export interface HandleResult {
	/** False when the event was a duplicate (same source + id) and had no effect. */
	applied: boolean;
	version: number;
	riskScore: number;
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
	 * (also when an actor goes quiet, and for every write that carries a reminder). Must not exceed the store's
	 * journal length. Default DEFAULT_SNAPSHOT_EVERY.
	 */
	snapshotEvery?: number;
	commitMaxBatch: number;
	commitIntervalMs: number;
	reminderPollMs: number;
	/**
	 * Called after a write is persisted, with the effects of the messages it carried, in order, and for each effect
	 * the `origin` its message was told with (e.g. the caller's context, so a trace continues through the effect).
	 */
	onEffects?: (effects: Effect[], origins: unknown[]) => void;
	/** Whether this node currently owns a customer (cluster); reminders of other owners are left to them. */
	isOwner?: (customerId: string) => boolean;
	onError?: (message: string, err: unknown) => void;
	now?: () => number;
}

/** Timings for metrics, set by whoever collects them; the host stays free of any metrics library. */
export interface ActorHostObserver {
	/** One message went through the reducer in `ms`. */
	onApply?(ms: number): void;
	/** One group commit of `batchSize` writes took `ms` in the store; `ok` is false when the store call failed. */
	onCommit?(batchSize: number, ms: number, ok: boolean): void;
}

interface Waiter {
	resolve: (r: HandleResult) => void;
	reject: (e: Error) => void;
	result: HandleResult;
}

interface BatchEntry {
	actor: Actor;
	expectedVersion: number;
	state: CustomerState;
	journal: JournalEntry[];
	/** Write the state as a snapshot whatever the count: it holds a non-event message, or the actor went quiet. */
	snapshot: boolean;
	/** The state at expectedVersion (what the store holds if the write is to succeed). */
	base: CustomerState;
	effects: Effect[];
	/** The origin of the message that produced each effect (same index). */
	origins: unknown[];
	waiters: Waiter[];
}

interface Queued {
	msg: CustomerMessage;
	origin: unknown;
	resolve: (r: HandleResult) => void;
	reject: (e: Error) => void;
}

interface Actor {
	id: string;
	/** Latest applied state (may be ahead of the store while a write is pending); null while loading. */
	state: CustomerState | null;
	/** Latest persisted state: what reads return. */
	committed: CustomerState | null;
	/** Messages that arrived while the state was loading, in arrival order. */
	waiting: Queued[];
	/** The newest write carrying this actor's changes that has not been persisted yet. */
	latest: BatchEntry | null;
	/** This actor's write in a group commit under way, if any. */
	inflight: BatchEntry | null;
	lastUsedAt: number;
	dropped: boolean;
	/** Events journaled (persisted or in flight) since the state was last written as a snapshot. */
	sinceSnapshot: number;
	/** Uses since it entered its segment, up to MAX_FREQ: what spares it from eviction. */
	freq: number;
	/** Which eviction segment holds it: probation (new) or main (used again while in probation). */
	main: boolean;
	/** Its place in that segment's queue (owned by SegmentQueue). */
	queue: SegmentQueue<QueueItem> | null;
	queueSeq: number;
	/** When its last write was persisted (compaction waits for quiet). */
	committedAt: number;
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
	/** Running estimate of one active actor's heap (bytes), for maxActiveBytes. */
	private actorBytes = DEFAULT_ACTOR_BYTES;
	/** Cold customers waiting for the next batched load (one store round trip per tick). */
	private loadIds: string[] = [];
	private loadCallbacks: LoadCallback[] = [];
	private loadTimer: NodeJS.Immediate | null = null;
	/** The reduce context of the current millisecond: built once, not once per message. */
	private ctxNow = Number.NaN;
	private ctx: ReduceContext | null = null;
	private batch = new Map<string, BatchEntry>();
	/** Group commits in flight; each holds distinct actors, so one actor's writes never overtake each other. */
	private inflightBatches = 0;
	private flushTimer: NodeJS.Immediate | NodeJS.Timeout | null = null;
	/** Writes added to the batch since the last flush started (for EAGER_FLUSH_WRITES). */
	private addedSinceFlush = 0;
	private idleTimer: NodeJS.Timeout | null = null;
	private reminderTimer: NodeJS.Timeout | null = null;
	private compactTimer: NodeJS.Timeout | null = null;
	/** Actors whose state changed since it was last compacted, in the order they first changed (value: that time). */
	private readonly uncompacted = new Map<Actor, number>();
	private stopped = false;
	private drainWaiters: Array<() => void> = [];
	readonly stats: ActorHostStats = {
		active: 0, activations: 0, passivations: 0, applied: 0, duplicates: 0, conflicts: 0, commits: 0,
		committedWrites: 0, remindersDelivered: 0, pendingWrites: 0
	};
	/** Optional timing callbacks (metrics); null costs nothing. */
	observer: ActorHostObserver | null = null;

	constructor(opts: ActorHostOptions) {
		this.opts = opts;
		this.now = opts.now ?? Date.now;
		this.snapshotEvery = opts.snapshotEvery ?? DEFAULT_SNAPSHOT_EVERY;
		if (!Number.isInteger(this.snapshotEvery) || this.snapshotEvery < 1) throw new Error(`ActorHost: snapshotEvery must be a positive integer, got ${opts.snapshotEvery}`);
	}

	start(): void {
		this.stopped = false;
		const idleEvery = Math.max(10, Math.min(Math.floor(this.opts.idleTimeoutMs / 2), 10_000));
		this.idleTimer = setInterval(() => this.passivateIdle(), idleEvery);
		this.idleTimer.unref();
		this.reminderTimer = setInterval(() => void this.deliverDueReminders(), this.opts.reminderPollMs);
		this.reminderTimer.unref();
		this.compactTimer = setInterval(() => this.compactIdle(COMPACT_BUDGET_MS, COMPACT_QUIET_MS, true), COMPACT_EVERY_MS);
		this.compactTimer.unref();
	}

	/** Stops taking messages, waits for pending writes, and drops every actor. */
	async stop(): Promise<void> {
		this.stopped = true;
		if (this.idleTimer) clearInterval(this.idleTimer);
		if (this.reminderTimer) clearInterval(this.reminderTimer);
		if (this.compactTimer) clearInterval(this.compactTimer);
		await this.drain();
		for (const actor of this.actors.values()) this.drop(actor, new ActorHostError("host stopped", "HOST_STOPPED"));
		this.actors.clear();
		this.probation.clear();
		this.main.clear();
		this.stats.active = 0;
	}

	/** Resolves when every write accepted so far is persisted (or failed). */
	drain(): Promise<void> {
		if (this.batch.size === 0 && this.inflightBatches === 0) return Promise.resolve();
		return new Promise(resolve => this.drainWaiters.push(resolve));
	}

	/**
	 * Applies one message to a customer's actor, in arrival order; resolves once its change is persisted.
	 * `origin` is opaque to the host: it is handed back with the message's effects (see `onEffects`).
	 */
	tell(customerId: string, msg: CustomerMessage, origin?: unknown): Promise<HandleResult> {
		if (this.stopped) return Promise.reject(new ActorHostError("host stopped", "HOST_STOPPED"));
		const actor = this.touch(customerId);
		if (actor.state === null) {
			return new Promise((resolve, reject) => actor.waiting.push({ msg, origin, resolve, reject }));
		}
		return new Promise((resolve, reject) => this.apply(actor, msg, origin, resolve, reject));
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
		this.evict(actor);
		this.stats.active = this.actors.size;
		return true;
	}

	/** Removes an idle actor from memory (caller checked isIdle). */
	private evict(actor: Actor): void {
		this.forget(actor);
		this.stats.passivations++;
	}

	private forget(actor: Actor): void {
		actor.dropped = true;
		if (this.actors.get(actor.id) === actor) this.actors.delete(actor.id);
		(actor.main ? this.main : this.probation).remove(actor);
		this.uncompacted.delete(actor);
	}

	/** Passivates every idle actor this node no longer owns (after a membership change); returns how many. */
	releaseNotOwned(isOwner: (customerId: string) => boolean): number {
		let released = 0;
		for (const actor of [...this.actors.values()]) {
			if (!isOwner(actor.id) && this.passivate(actor.id)) released++;
		}
		return released;
	}

	private touch(customerId: string): Actor {
		let actor = this.actors.get(customerId);
		if (actor) {
			if (actor.freq < MAX_FREQ) actor.freq++;
			actor.lastUsedAt = this.now();
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
			id: customerId, state, committed: state, waiting: [], latest: null, inflight: null, lastUsedAt: this.now(),
			dropped: false, sinceSnapshot, freq: 0, main: false, queue: null, queueSeq: 0, committedAt: 0
		};
		this.actors.set(customerId, actor);
		this.probation.push(actor);
		this.stats.activations++;
		this.stats.active = this.actors.size;
		return actor;
	}

	private install(customerId: string, loaded: LoadedActor): void {
		this.newActor(customerId, loaded.state, loaded.sinceSnapshot);
		this.enforceCap();
	}

	/** Queues a cold customer for the next batched load: every customer queued in the same tick is read in one call. */
	private enqueueLoad(customerId: string, callback: LoadCallback): void {
		this.loadIds.push(customerId);
		this.loadCallbacks.push(callback);
		if (this.loadTimer === null) this.loadTimer = setImmediate(() => this.flushLoads());
	}

	private flushLoads(): void {
		this.loadTimer = null;
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
		actor.state = stored ? stored.state : emptyCustomerState(actor.id);
		actor.committed = stored ? stored.state : null;
		actor.sinceSnapshot = stored ? stored.sinceSnapshot : 0;
		const waiting = actor.waiting;
		actor.waiting = [];
		for (const q of waiting) this.apply(actor, q.msg, q.origin, q.resolve, q.reject);
	}

	private apply(actor: Actor, msg: CustomerMessage, origin: unknown, resolve: (r: HandleResult) => void, reject: (e: Error) => void): void {
		const before = actor.state as CustomerState;
		const now = this.now();
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
			// A duplicate is acknowledged only once the original's write is persisted, never before.
			if (actor.latest) actor.latest.waiters.push({ resolve, reject, result: outcome });
			else resolve(outcome);
			return;
		}
		this.stats.applied++;
		actor.state = state;
		let entry = this.batch.get(actor.id);
		if (!entry || entry.actor !== actor) {
			entry = { actor, expectedVersion: before.version, state, journal: [], snapshot: false, base: before, effects: [], origins: [], waiters: [] };
			this.batch.set(actor.id, entry);
			this.stats.pendingWrites = this.batch.size;
			this.addedSinceFlush++;
		}
		entry.state = state;
		actor.latest = entry;
		if (msg.kind === "event") {
			entry.journal.push({
				customerId: actor.id, version: state.version, key: eventKey(msg.event), appliedAt: now,
				riskScore: state.risk.score, event: msg.event
			});
		} else {
			// Only events are journaled: a write that carries anything else must carry the state.
			entry.snapshot = true;
		}
		for (const e of result.effects) {
			entry.effects.push(e);
			entry.origins.push(origin);
		}
		entry.waiters.push({ resolve, reject, result: { applied: true, version: state.version, riskScore: state.risk.score } });
		if (this.addedSinceFlush >= EAGER_FLUSH_WRITES && this.inflightBatches < MAX_INFLIGHT_BATCHES) this.flushNow();
		else this.scheduleFlush();
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
		if (this.batch.size >= this.opts.commitMaxBatch || this.opts.commitIntervalMs === 0) {
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

	private async flush(): Promise<void> {
		this.flushTimer = null;
		this.addedSinceFlush = 0;
		if (this.inflightBatches >= MAX_INFLIGHT_BATCHES || this.batch.size === 0) return;
		const entries: BatchEntry[] = [];
		/** For each entry, the newest journal entry of the write in flight it is chained on (if any). */
		const afters: Array<JournalEntry | undefined> = [];
		const chains = this.opts.store.chainsWrites;
		for (const [id, entry] of this.batch) {
			// An actor whose previous write is still in flight goes on only if that write ends with a journal entry
			// to fence on (and the store applies writes in order); otherwise it waits for it.
			const prev = entry.actor.inflight;
			let after: JournalEntry | undefined;
			if (prev) {
				after = chains ? prev.journal.at(-1) : undefined;
				if (after === undefined || after.version !== prev.state.version) continue;
			}
			entries.push(entry);
			afters.push(after);
			this.batch.delete(id);
			if (entries.length >= this.opts.commitMaxBatch) break;
		}
		this.stats.pendingWrites = this.batch.size;
		if (entries.length === 0) return;
		for (const entry of entries) entry.actor.inflight = entry;
		this.inflightBatches++;
		if (this.batch.size > 0) this.scheduleFlush();
		const eventSourced = this.opts.store.eventSourced;
		const writes: ActorWrite[] = entries.map((e, i) => {
			const actor = e.actor;
			const since = actor.sinceSnapshot + e.journal.length;
			const snapshot = !eventSourced || e.snapshot || since >= this.snapshotEvery;
			actor.sinceSnapshot = snapshot ? 0 : since;
			return { id: actor.id, expectedVersion: e.expectedVersion, state: e.state, journal: e.journal, snapshot, base: e.base, after: afters[i] };
		});
		const t0 = performance.now();
		try {
			const results = await this.opts.store.saveBatch(writes);
			this.observer?.onCommit?.(writes.length, performance.now() - t0, true);
			this.stats.commits++;
			for (let i = 0; i < entries.length; i++) {
				const entry = entries[i];
				if (entry.actor.inflight === entry) entry.actor.inflight = null;
				const res = results[i];
				if (res && res.ok) this.committed(entry);
				else {
					this.stats.conflicts++;
					const current = res && !res.ok ? res.currentVersion : null;
					this.drop(entry.actor, new ActorHostError(
						`customer ${entry.actor.id}: version conflict (expected ${entry.expectedVersion}, store has ${current}); another node wrote it`,
						"VERSION_CONFLICT"
					), entry);
				}
			}
		} catch (err) {
			// The store may have applied part of the batch: drop the actors so the next message reloads the truth.
			this.observer?.onCommit?.(writes.length, performance.now() - t0, false);
			this.opts.onError?.("group commit failed", err);
			for (const entry of entries) {
				if (entry.actor.inflight === entry) entry.actor.inflight = null;
				this.drop(entry.actor, new ActorHostError(`persisting customer ${entry.actor.id} failed: ${String(err)}`, "STORE_UNAVAILABLE", { cause: err }), entry);
			}
		} finally {
			this.inflightBatches--;
			// Actors that were busy when the cap was hit can be evicted now that their writes landed.
			if (this.actors.size > this.opts.maxActiveActors) this.enforceCap();
			if (this.batch.size > 0) this.scheduleFlush();
			else if (this.inflightBatches === 0 && this.drainWaiters.length > 0) {
				const waiters = this.drainWaiters;
				this.drainWaiters = [];
				for (const w of waiters) w();
			}
		}
	}

	private committed(entry: BatchEntry): void {
		const actor = entry.actor;
		this.stats.committedWrites++;
		actor.committed = entry.state;
		if (actor.latest === entry) actor.latest = null;
		actor.committedAt = this.now();
		if (!this.uncompacted.has(actor)) this.uncompacted.set(actor, actor.committedAt);
		if (entry.effects.length > 0 && this.opts.onEffects) {
			try {
				this.opts.onEffects(entry.effects, entry.origins);
			} catch (err) {
				this.opts.onError?.("effect handler failed", err);
			}
		}
		for (const w of entry.waiters) w.resolve(w.result);
	}

	/** Forgets an actor after a failed load or write; every message not persisted yet is rejected (retryable). */
	private drop(actor: Actor, err: ActorHostError, failed?: BatchEntry): void {
		this.forget(actor);
		this.stats.active = this.actors.size;
		if (failed) for (const w of failed.waiters) w.reject(err);
		const next = this.batch.get(actor.id);
		if (next && next.actor === actor) {
			this.batch.delete(actor.id);
			this.stats.pendingWrites = this.batch.size;
			for (const w of next.waiters) w.reject(err);
		}
		if (actor.latest && actor.latest !== failed && actor.latest !== next) for (const w of actor.latest.waiters) w.reject(err);
		actor.latest = null;
		const waiting = actor.waiting;
		actor.waiting = [];
		for (const q of waiting) q.reject(err);
	}

	/**
	 * States built event by event by the reducer carry V8's growth slack (over-allocated arrays, dictionary-mode
	 * objects): about 2.9 KB for a typical customer against 1.6 KB for the same state rebuilt from JSON. Rebuilding
	 * idle actors' states in the background keeps memory per active actor low without a cost per event.
	 * With `snapshot` (the host's timer), a quiet actor whose journal has a tail past its snapshot also gets its state
	 * written as a snapshot, so an activation replays little. Works for at most `budgetMs`; returns how many states
	 * it rebuilt.
	 */
	compactIdle(budgetMs = Infinity, quietMs = 0, snapshot = false): number {
		const deadline = performance.now() + budgetMs;
		const quietSince = this.now() - quietMs;
		const snapshots = snapshot && this.opts.store.eventSourced && !this.stopped;
		let compacted = 0;
		let visited = 0;
		for (const [actor, since] of this.uncompacted) {
			// Hot actors would be rebuilt again and again, and ones about to be evicted for nothing: wait until quiet.
			if (since > quietSince) break;
			if ((++visited & 63) === 0 && performance.now() > deadline) break;
			this.uncompacted.delete(actor);
			if (actor.committedAt > quietSince) {
				// Written again since it was queued: back of the queue, with its latest write time.
				this.uncompacted.set(actor, actor.committedAt);
				continue;
			}
			if (actor.dropped || !this.isIdle(actor) || actor.committed === null || actor.state !== actor.committed) continue;
			const json = JSON.stringify(actor.committed);
			const copy = JSON.parse(json) as CustomerState;
			actor.state = copy;
			actor.committed = copy;
			// The running estimate of an actor's heap, for maxActiveBytes: a rebuilt state takes about its JSON size.
			// Never below the default: states not compacted yet (most of them under churn) take more than their JSON.
			this.actorBytes = Math.max(DEFAULT_ACTOR_BYTES, this.actorBytes + (json.length + ACTOR_OVERHEAD_BYTES - this.actorBytes) / 256);
			compacted++;
			if (snapshots && actor.sinceSnapshot > 0) this.writeSnapshot(actor, copy);
		}
		return compacted;
	}

	/** Queues a write of an idle actor's committed state as its snapshot (same version, no journal). */
	private writeSnapshot(actor: Actor, state: CustomerState): void {
		const entry: BatchEntry = { actor, expectedVersion: state.version, state, journal: [], snapshot: true, base: state, effects: [], origins: [], waiters: [] };
		this.batch.set(actor.id, entry);
		this.stats.pendingWrites = this.batch.size;
		actor.latest = entry;
		this.scheduleFlush();
	}

	private afterPending(actor: Actor): Promise<void> {
		const entry = actor.latest;
		if (!entry) return Promise.resolve();
		return new Promise(resolve => {
			const done = () => resolve();
			entry.waiters.push({ resolve: done, reject: done, result: { applied: false, version: 0, riskScore: 0 } });
		});
	}

	private isIdle(actor: Actor): boolean {
		return actor.state !== null && actor.latest === null && actor.inflight === null && actor.waiting.length === 0;
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
				this.uncompacted.delete(actor);
				this.stats.passivations++;
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
