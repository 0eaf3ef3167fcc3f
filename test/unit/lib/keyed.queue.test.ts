// KeyedQueue: per-key order, parallelism across keys, the pending bound (backpressure) and error reporting.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { KeyedQueue } from "../../../lib/keyed.queue.ts";

const tick = () => new Promise<void>(resolve => setImmediate(resolve));

describe("KeyedQueue", () => {
	it("runs one key's tasks in push order and other keys' concurrently, never more than the limit pending", async () => {
		const q = new KeyedQueue(4);
		const order = new Map<string, number[]>();
		let running = 0;
		let maxRunning = 0;
		for (let i = 0; i < 60; i++) {
			const key = `k${i % 3}`;
			await q.push(key, async () => {
				running++;
				maxRunning = Math.max(maxRunning, running);
				// Later tasks finish sooner: order must come from the queue, not from timing.
				for (let t = 0; t < (60 - i) % 5; t++) await tick();
				order.set(key, [...(order.get(key) ?? []), i]);
				running--;
			});
			assert.ok(q.size <= 4);
		}
		await q.drain();
		for (const [key, seen] of order) assert.deepEqual(seen, [...seen].sort((a, b) => a - b), key);
		assert.equal([...order.values()].flat().length, 60);
		assert.equal(q.maxPending, 4);
		assert.ok(maxRunning >= 2, "different keys ran at the same time");
	});

	it("push waits while the queue is full", async () => {
		const q = new KeyedQueue(1);
		let release!: () => void;
		await q.push("a", () => new Promise<void>(resolve => { release = resolve; }));
		let accepted = false;
		const second = q.push("b", async () => undefined).then(() => { accepted = true; });
		await tick();
		assert.equal(accepted, false);
		release();
		await second;
		assert.equal(accepted, true);
		await q.drain();
	});

	it("drain rejects with the first task error, and the queue keeps working", async () => {
		const q = new KeyedQueue(2);
		await q.push("a", async () => { throw new Error("first"); });
		await q.push("a", async () => { throw new Error("second"); });
		await assert.rejects(q.drain(), /first/);
		let ran = false;
		await q.push("a", async () => { ran = true; });
		await q.drain();
		assert.equal(ran, true);
	});
});
