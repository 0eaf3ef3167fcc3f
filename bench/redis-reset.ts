// Benchmarks empty their Redis between runs with this: FLUSHALL, then a rewrite of the append-only file. After a
// FLUSHALL the file still holds every earlier write, and the rewrite Redis starts on its own once the file has
// doubled would run (forked, on the same cores) in the middle of a later run.
import type { Redis } from "ioredis";

const DEADLINE_MS = 60_000;

export async function emptyRedis(client: Redis): Promise<void> {
	await client.flushall();
	// A rewrite Redis started on its own may be under way: wait for it, then rewrite the now empty data set.
	await rewriteDone(client);
	await client.bgrewriteaof();
	await rewriteDone(client);
}

async function rewriteDone(client: Redis): Promise<void> {
	const deadline = Date.now() + DEADLINE_MS;
	for (;;) {
		const info = await client.info("persistence");
		if (/aof_rewrite_in_progress:0/.test(info) && /aof_rewrite_scheduled:0/.test(info)) return;
		if (Date.now() > deadline) throw new Error(`Redis did not finish rewriting its append-only file within ${DEADLINE_MS / 1000} s`);
		await new Promise(resolve => setTimeout(resolve, 100));
	}
}
