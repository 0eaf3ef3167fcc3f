// Bloom filters: sizing from (items, rate), no false negatives, a measured false-positive rate within the target,
// and the rotating variant's bounded memory with the rate kept on a long stream.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { BloomFilter, RotatingBloomFilter, bloomSizing, expectedFalsePositiveRate } from "../../../lib/bloom-filter.ts";

/** Share of `probes` keys (never added) the filter claims to contain. */
function measuredRate(has: (key: string) => boolean, probes: number, prefix = "absent"): number {
	let hits = 0;
	for (let i = 0; i < probes; i++) if (has(`${prefix}:${i}:${(i * 2654435761) % 1000003}`)) hits++;
	return hits / probes;
}

/** Realistic content keys: similar prefixes, differing in a few characters, as market records do. */
const item = (i: number) => `cust-${i % 997}|competitor-${i % 13}|sku-${i}|${(i % 500) / 4}|EUR|2026-03-${1 + (i % 28)}`;

void describe("bloomSizing", () => {
	const cases: Array<[number, number, number, number]> = [
		// items, rate, bits, hashes
		[1000, 0.01, 9586, 7],
		[1_000_000, 0.001, 14_377_588, 10],
		[100, 0.5, 145, 1],
		[1, 0.01, 10, 7]
	];
	for (const [n, p, bits, hashes] of cases) {
		void it(`sizes ${n} items at ${p} as ${bits} bits and ${hashes} hashes`, () => {
			assert.deepEqual(bloomSizing(n, p), { bits, hashes });
		});
	}

	void it("rejects impossible arguments with the argument's name", () => {
		assert.throws(() => bloomSizing(0, 0.01), /expectedItems/);
		assert.throws(() => bloomSizing(1.5, 0.01), /expectedItems/);
		assert.throws(() => bloomSizing(10, 0), /falsePositiveRate/);
		assert.throws(() => bloomSizing(10, 1), /falsePositiveRate/);
		assert.throws(() => bloomSizing(10, Number.NaN), /falsePositiveRate/);
		assert.throws(() => bloomSizing(1e9, 1e-9), /2\^32/);
	});
});

void describe("BloomFilter", () => {
	void it("never forgets an added key, and reports a second add as present", () => {
		const f = BloomFilter.forItems(5000, 0.01);
		for (let i = 0; i < 5000; i++) f.add(item(i));
		for (let i = 0; i < 5000; i++) assert.ok(f.has(item(i)), `lost ${item(i)}`);
		assert.equal(f.add(item(42)), true);
	});

	for (const p of [0.01, 0.001]) {
		void it(`keeps the false-positive rate near ${p} at its expected load`, () => {
			const n = 20_000;
			const f = BloomFilter.forItems(n, p);
			for (let i = 0; i < n; i++) f.add(item(i));
			const rate = measuredRate(k => f.has(k), 200_000);
			assert.ok(rate <= p * 1.3, `measured ${rate}, target ${p}`);
			// The formula predicts what we measure, so the sizing (not luck) is what keeps the rate.
			const predicted = expectedFalsePositiveRate({ bits: f.bits, hashes: f.hashes }, n);
			assert.ok(Math.abs(rate - predicted) <= predicted * 0.3, `measured ${rate}, predicted ${predicted}`);
		});
	}

	void it("degrades when overfilled (what rotation prevents)", () => {
		const f = BloomFilter.forItems(1000, 0.01);
		for (let i = 0; i < 10_000; i++) f.add(item(i));
		assert.ok(measuredRate(k => f.has(k), 20_000) > 0.3);
	});

	void it("counts distinct insertions, not repeats", () => {
		const f = BloomFilter.forItems(100, 0.001);
		for (let r = 0; r < 3; r++) for (let i = 0; i < 50; i++) f.add(item(i));
		assert.equal(f.count, 50);
	});
});

void describe("RotatingBloomFilter", () => {
	void it("keeps the false-positive rate on a stream ten times its generation size", () => {
		const n = 5000;
		const p = 0.01;
		const f = new RotatingBloomFilter(n, p);
		for (let i = 0; i < 10 * n; i++) f.add(item(i));
		assert.ok(f.generations >= 9, `rotated ${f.generations} times`);
		const rate = measuredRate(k => f.has(k), 100_000);
		assert.ok(rate <= p * 1.3, `measured ${rate}, target ${p}`);
	});

	void it("remembers at least the last generation's worth of items", () => {
		const n = 2000;
		const f = new RotatingBloomFilter(n, 0.001);
		const total = 7 * n + 123;
		for (let i = 0; i < total; i++) f.add(item(i));
		for (let i = total - n; i < total; i++) assert.ok(f.has(item(i)), `forgot recent ${item(i)}`);
		// Items from many generations ago are gone (up to false positives).
		let remembered = 0;
		for (let i = 0; i < n; i++) if (f.has(item(i))) remembered++;
		assert.ok(remembered < n * 0.01, `still remembers ${remembered} of the oldest ${n}`);
	});

	void it("keeps an item that keeps coming back across rotations", () => {
		const f = new RotatingBloomFilter(1000, 0.001);
		for (let i = 0; i < 10_000; i++) {
			f.add(item(i));
			if (i % 500 === 0) assert.equal(f.add("hot-key"), i > 0, `hot key at ${i}`);
		}
		assert.ok(f.has("hot-key"));
	});
});
