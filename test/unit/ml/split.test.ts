// Seeded PRNG and stratified split: proportions per class, disjoint and complete parts, same seed → same split.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mulberry32, stratifiedSplit } from "../../../ml/split.ts";

const labels = Array.from({ length: 1000 }, (_, i) => (i % 4 === 0 ? 1 : 0));

void test("mulberry32 is deterministic per seed and stays in [0, 1)", () => {
	const a = mulberry32(42);
	const b = mulberry32(42);
	const seqA = Array.from({ length: 1000 }, () => a());
	assert.deepEqual(Array.from({ length: 1000 }, () => b()), seqA);
	assert.notDeepEqual(Array.from({ length: 10 }, mulberry32(43)), seqA.slice(0, 10));
	assert.ok(seqA.every(x => x >= 0 && x < 1));
	const mean = seqA.reduce((s, x) => s + x, 0) / seqA.length;
	assert.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean}`);
});

void test("each part keeps the label ratio and the 70/15/15 sizes", () => {
	const split = stratifiedSplit(labels, 7);
	const cases = [{ part: split.train, size: 700 }, { part: split.validation, size: 150 }, { part: split.test, size: 150 }];
	for (const { part, size } of cases) {
		// Rounded per class: off by at most one row per class.
		assert.ok(Math.abs(part.length - size) <= 2, `size ${part.length} vs ${size}`);
		const positives = part.filter(i => labels[i] === 1).length;
		assert.ok(Math.abs(positives / part.length - 0.25) < 0.01, `positive share ${positives / part.length}`);
	}
	const all = [...split.train, ...split.validation, ...split.test].sort((a, b) => a - b);
	assert.deepEqual(all, labels.map((_, i) => i), "every row in exactly one part");
});

void test("same seed → same split; another seed → another one", () => {
	assert.deepEqual(stratifiedSplit(labels, 42), stratifiedSplit(labels, 42));
	assert.notDeepEqual(stratifiedSplit(labels, 42).test, stratifiedSplit(labels, 43).test);
});

void test("the training order interleaves the classes (brain.js trains in the given order)", () => {
	const firstHundred = stratifiedSplit(labels, 1).train.slice(0, 100).filter(i => labels[i] === 1).length;
	assert.ok(firstHundred > 10 && firstHundred < 40, `${firstHundred} positives among the first 100`);
});

void test("bad fractions are rejected", () => {
	assert.throws(() => stratifiedSplit(labels, 1, { train: 0.8, validation: 0.15, test: 0.15 }), /sum to 1/);
	assert.throws(() => stratifiedSplit(labels, 1, { train: 0, validation: 0.5, test: 0.5 }), /train > 0/);
});
