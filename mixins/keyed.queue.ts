// Bounded concurrency with order per key: tasks of one customer run one after another in push order, tasks of
// different customers in parallel, and push() waits while `limit` tasks are pending (backpressure on the reader).

export class KeyedQueue {
	private readonly limit: number;
	private pending = 0;
	private readonly tails = new Map<string, Promise<void>>();
	private slotWaiters: Array<() => void> = [];
	private idleWaiters: Array<() => void> = [];
	private firstError: unknown = undefined;
	private failed = false;
	/** Highest number of tasks pending at once: what a test checks to see the bound hold. */
	maxPending = 0;

	constructor(limit: number) {
		if (!Number.isInteger(limit) || limit < 1) throw new Error(`KeyedQueue limit must be a positive integer, got ${limit}`);
		this.limit = limit;
	}

	get size(): number {
		return this.pending;
	}

	/** Resolves once the task is accepted (a slot is free); the task runs after the earlier tasks of its key. */
	async push(key: string, task: () => Promise<void>): Promise<void> {
		while (this.pending >= this.limit) await new Promise<void>(resolve => this.slotWaiters.push(resolve));
		this.pending++;
		if (this.pending > this.maxPending) this.maxPending = this.pending;
		const prev = this.tails.get(key) ?? Promise.resolve();
		const run: Promise<void> = prev.then(task).catch(err => {
			if (!this.failed) {
				this.failed = true;
				this.firstError = err;
			}
		}).finally(() => {
			if (this.tails.get(key) === run) this.tails.delete(key);
			this.pending--;
			this.slotWaiters.shift()?.();
			if (this.pending === 0) {
				const idle = this.idleWaiters;
				this.idleWaiters = [];
				for (const resolve of idle) resolve();
			}
		});
		this.tails.set(key, run);
	}

	/** Resolves when every pushed task has finished; rejects with the first error a task threw. */
	async drain(): Promise<void> {
		if (this.pending > 0) await new Promise<void>(resolve => this.idleWaiters.push(resolve));
		if (this.failed) {
			const err = this.firstError;
			this.failed = false;
			this.firstError = undefined;
			throw err;
		}
	}
}
