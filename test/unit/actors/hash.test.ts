// hash52: stable across releases (persisted dedup windows and shard placement depend on it), in range, spread evenly.
import { test } from "node:test";
import assert from "node:assert/strict";
import { hash52 } from "../../../actors/hash.ts";

const TWO_52 = 2 ** 52;

void test("hash52 is pinned: changing it would break persisted dedup windows and move every shard", () => {
	const golden: [string, number][] = [
		["", 3338908027751811],
		["crm-ingest/evt-1", 3173151515800545],
		["cust-000042", 962779992981493],
		["node-a\u0000cust-1", 973083850955728]
	];
	for (const [input, value] of golden) assert.equal(hash52(input), value, `hash52(${JSON.stringify(input)})`);
});

void test("hash52 is deterministic and returns an integer in [0, 2^52)", () => {
	const inputs = ["", "a", "b", "ab", "ba", "x".repeat(10_000), "ü€😀", "\u0000", "node-1\u0000cust-1"];
	for (const s of inputs) {
		const h = hash52(s);
		assert.equal(hash52(s), h, `deterministic for ${JSON.stringify(s.slice(0, 20))}`);
		assert.ok(Number.isSafeInteger(h) && h >= 0 && h < TWO_52, `range for ${JSON.stringify(s.slice(0, 20))}: ${h}`);
	}
});

void test("hash52 tells apart near-identical keys (no collisions over 200k sequential keys)", () => {
	const seen = new Set<number>();
	for (let i = 0; i < 200_000; i++) seen.add(hash52(`https://erp.example.com/orders/evt-${i}`));
	assert.equal(seen.size, 200_000);
	assert.notEqual(hash52("ab"), hash52("ba"));
	assert.notEqual(hash52("a"), hash52("a\u0000"));
});

void test("hash52 spreads keys evenly: chi-square over 64 buckets of low and of high bits, and every bit near 50 %", () => {
	const n = 65_536;
	const low = new Array<number>(64).fill(0);
	const high = new Array<number>(64).fill(0);
	const ones = new Array<number>(52).fill(0);
	for (let i = 0; i < n; i++) {
		const h = hash52(`cust-${i}`);
		low[h % 64]++;
		high[Math.floor(h / 2 ** 46)]++;
		let rest = h;
		for (let bit = 0; bit < 52; bit++) {
			if (rest % 2 === 1) ones[bit]++;
			rest = Math.floor(rest / 2);
		}
	}
	const expected = n / 64;
	const chi = (counts: number[]) => counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
	// 63 degrees of freedom: 103.4 is the 0.1 % critical value; the inputs are fixed, so this never flakes.
	assert.ok(chi(low) < 103.4, `low bits chi-square ${chi(low)}`);
	assert.ok(chi(high) < 103.4, `high bits chi-square ${chi(high)}`);
	for (let bit = 0; bit < 52; bit++) {
		const share = ones[bit] / n;
		assert.ok(share > 0.48 && share < 0.52, `bit ${bit} set in ${share}`);
	}
});
