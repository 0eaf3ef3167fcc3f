// Per-key order: tasks of one key run one after another in the order they were queued, tasks of different keys
// concurrently. The one primitive every per-key sequence of the system is built on (the sources' deliveries, the
// NATS consumer's customers, an MQTT device's readings, a state file's writes, a business key's process starts).
// With `limit`, push() also waits while that many tasks are pending (backpressure on a reader).

export class KeyedQueue {
	private readonly limit: number;
	private pending = 0;
	private readonly tails = new Map<string, Promise<unknown>>();
	private slotWaiters: Array<() => void> = [];
	private idleWaiters: Array<() => void> = [];
	private firstError: unknown = undefined;
	private failed = false;
	/** Highest number of tasks pending at once: what a test checks to see the bound hold. */
	maxPending = 0;

	constructor(limit = Infinity) {
		if (limit !== Infinity && (!Number.isInteger(limit) || limit < 1)) throw new Error(`KeyedQueue limit must be a positive integer, got ${limit}`);
		this.limit = limit;
	}

	/** Tasks queued or running. */
	get size(): number {
		return this.pending;
	}

	/**
	 * Queues `task` behind the earlier tasks of `key` and resolves (or rejects) with its own result. Never waits for a
	 * slot: callers that need backpressure bound their own input (or use push).
	 */
	run<T>(key: string, task: () => Promise<T>): Promise<T> {
		this.pending++;
		if (this.pending > this.maxPending) this.maxPending = this.pending;
		const prev = this.tails.get(key) ?? Promise.resolve();
		const result = prev.then(task);
		const tail: Promise<unknown> = result.then(noop, noop).then(() => {
			if (this.tails.get(key) === tail) this.tails.delete(key);
			this.pending--;
			this.slotWaiters.shift()?.();
			if (this.pending === 0) {
				const idle = this.idleWaiters;
				this.idleWaiters = [];
				for (const resolve of idle) resolve();
			}
		});
		this.tails.set(key, tail);
		return result;
	}

	/**
	 * Resolves once the task is accepted (a slot is free); the task runs after the earlier tasks of its key. Its
	 * error, if any, is kept for drain().
	 */
	async push(key: string, task: () => Promise<void>): Promise<void> {
		while (this.pending >= this.limit) await new Promise<void>(resolve => this.slotWaiters.push(resolve));
		this.run(key, task).catch(err => {
			if (!this.failed) {
				this.failed = true;
				this.firstError = err;
			}
		});
	}

	/** Resolves when nothing is queued or running any more. */
	async idle(): Promise<void> {
		if (this.pending > 0) await new Promise<void>(resolve => this.idleWaiters.push(resolve));
	}

	/** Resolves when every task has finished; rejects with the first error a pushed task threw. */
	async drain(): Promise<void> {
		await this.idle();
		if (this.failed) {
			const err = this.firstError;
			this.failed = false;
			this.firstError = undefined;
			throw err;
		}
	}
}

function noop(): void {
	// settled either way
}
