// Benchmarks empty their Redis between runs with this: FLUSHALL, then a rewrite of the append-only file. After a
// FLUSHALL the file still holds every earlier write, and the rewrite Redis starts on its own once the file has
// doubled would run (forked, on the same cores) in the middle of a later run.
import type { Redis } from "ioredis";

export async function emptyRedis(client: Redis): Promise<void> {
	await client.flushall();
	await client.bgrewriteaof();
	for (let i = 0; i < 600; i++) {
		const info = await client.info("persistence");
		if (/aof_rewrite_in_progress:0/.test(info) && /aof_rewrite_scheduled:0/.test(info)) return;
		await new Promise(resolve => setTimeout(resolve, 100));
	}
	throw new Error("Redis did not finish rewriting its append-only file within 60 s");
}
