// SegmentQueue (the actor host's eviction segments): FIFO order, removal anywhere, and the same answers as a plain
// array model under a long random mix of operations (which crosses the sweeps of removed and taken slots).
import { test } from "node:test";
import assert from "node:assert/strict";
import { SegmentQueue, type QueueItem } from "../../../actors/host/segment-queue.ts";
import { mulberry32 } from "../../../ml/split.ts";

interface Item extends QueueItem { name: number }
const item = (name: number): Item => ({ name, queue: null, queueSlot: 0 });

void test("items come out in the order they went in; a removed one is skipped and the size counts only live items", () => {
	const q = new SegmentQueue<Item>();
	const [a, b, c] = [item(1), item(2), item(3)];
	q.push(a);
	q.push(b);
	q.push(c);
	q.remove(b);
	assert.equal(q.size, 2);
	assert.equal(q.shift(), a);
	assert.equal(q.shift(), c);
	assert.equal(q.shift(), undefined);
	assert.equal(q.size, 0);
});

void test("an item removed and pushed again comes out at its new place, once", () => {
	const q = new SegmentQueue<Item>();
	const [a, b] = [item(1), item(2)];
	q.push(a);
	q.push(b);
	q.remove(a);
	q.push(a);
	assert.deepEqual([q.shift()?.name, q.shift()?.name, q.shift()], [2, 1, undefined]);
});

void test("an item taken from one queue can join another; removing it from the first then does nothing", () => {
	const p = new SegmentQueue<Item>();
	const m = new SegmentQueue<Item>();
	const a = item(1);
	p.push(a);
	assert.equal(p.shift(), a);
	m.push(a);
	p.remove(a);
	assert.equal(m.size, 1);
	assert.equal(m.shift(), a);
});

void test("a random mix of 200 000 pushes, shifts and removals matches an array model", () => {
	const random = mulberry32(7);
	const q = new SegmentQueue<Item>();
	// The model: an array in push order, with removals marked (a plain, obviously right queue).
	const model: Item[] = [];
	const removed = new Set<number>();
	let head = 0;
	let live = 0;
	const modelShift = (): Item | undefined => {
		while (head < model.length) {
			const i = head++;
			if (!removed.has(i)) {
				live--;
				return model[i];
			}
		}
		return undefined;
	};
	const placeOf = new Map<Item, number>();
	const pool: Item[] = [];
	let next = 0;
	let sweepsCrossed = 0;
	for (let step = 0; step < 200_000; step++) {
		const r = random();
		if (r < 0.5) {
			// Push a new item, or one from the pool that is in no queue.
			const candidate = pool.length > 0 ? pool[Math.floor(random() * pool.length)] : undefined;
			const it = candidate && candidate.queue === null ? candidate : item(next++);
			if (it !== candidate) pool.push(it);
			q.push(it);
			placeOf.set(it, model.length);
			model.push(it);
			live++;
		} else if (r < 0.75) {
			const got = modelShift();
			assert.equal(q.shift(), got, `step ${step}: shift`);
			if (got) placeOf.delete(got);
		} else {
			const victim = pool[Math.floor(random() * pool.length)];
			const place = victim ? placeOf.get(victim) : undefined;
			if (victim && place !== undefined) {
				q.remove(victim);
				removed.add(place);
				placeOf.delete(victim);
				live--;
			}
		}
		if (pool.length > 4000) pool.splice(0, 2000);
		assert.equal(q.size, live, `step ${step}: size`);
		if (live > 2048) sweepsCrossed++;
	}
	assert.ok(sweepsCrossed > 0, "the mix should grow the queue past a sweep");
	for (let got = modelShift(); got !== undefined; got = modelShift()) assert.equal(q.shift(), got);
	assert.equal(q.shift(), undefined);
});
