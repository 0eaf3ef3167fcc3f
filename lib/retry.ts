// Waiting between attempts: exponential backoff, a sleep a stop signal cuts short, and a retry loop around both.
// How often and what to retry is the caller's (the retry rule of calls to the actors is `isRetryable`).

/** Exponential backoff with jitter in its upper half: attempt 1 waits about `baseMs`, doubling up to `maxMs`. */
export function backoff(attempt: number, baseMs: number, maxMs: number): number {
	const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(attempt, 1) - 1, 20));
	return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

/** Resolves after `ms`, or at once when `signal` aborts (the caller looks at the signal). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
	if (signal?.aborted) return Promise.resolve();
	return new Promise(resolve => {
		const timer = setTimeout(done, ms);
		function done() {
			clearTimeout(timer);
			signal?.removeEventListener("abort", done);
			resolve();
		}
		signal?.addEventListener("abort", done, { once: true });
	});
}

export interface RetryOptions {
	/** Attempts in all (Infinity: until it succeeds or `signal` aborts). */
	attempts: number;
	baseMs: number;
	maxMs: number;
	/** Which errors are worth another attempt; the others are thrown at once. */
	retryIf(err: unknown): boolean;
	/** Stops the retrying: the last error is thrown. */
	signal?: AbortSignal;
	/** Told before each wait (e.g. to log, throttled). */
	onRetry?(err: unknown, attempt: number): void;
}

/** Runs `fn` until it succeeds; throws the error that was not retried, or the last one when attempts or time ran out. */
export async function withRetries<T>(fn: () => Promise<T>, opts: RetryOptions): Promise<T> {
	for (let attempt = 1; ; attempt++) {
		try {
			return await fn();
		} catch (err) {
			if (!opts.retryIf(err) || attempt >= opts.attempts || opts.signal?.aborted) throw err;
			opts.onRetry?.(err, attempt);
			await sleep(backoff(attempt, opts.baseMs, opts.maxMs), opts.signal);
			if (opts.signal?.aborted) throw err;
		}
	}
}
