// Metrics on small examples whose values are known by hand.
import { test } from "node:test";
import assert from "node:assert/strict";
import { averagePrecision, brierScore, confusionAt, evaluate, logLoss, maxF1Threshold, rocAuc } from "../../../ml/metrics.ts";

void test("ROC AUC: perfect, inverted, all tied, and a hand-computed mix with a tie", () => {
	const cases = [
		{ scores: [0.9, 0.8, 0.2, 0.1], labels: [1, 1, 0, 0], auc: 1 },
		{ scores: [0.1, 0.2, 0.8, 0.9], labels: [1, 1, 0, 0], auc: 0 },
		{ scores: [0.5, 0.5, 0.5, 0.5], labels: [1, 0, 1, 0], auc: 0.5 },
		// pairs (pos, neg): (0.8,0.3)=1 (0.8,0.4)=1 (0.4,0.3)=1 (0.4,0.4)=½ → 3.5/4
		{ scores: [0.8, 0.4, 0.4, 0.3], labels: [1, 1, 0, 0], auc: 0.875 }
	];
	for (const c of cases) assert.equal(rocAuc(c.scores, c.labels), c.auc, JSON.stringify(c));
	assert.ok(Number.isNaN(rocAuc([0.1, 0.2], [1, 1])), "undefined with one class");
});

void test("ROC AUC of random scores is about 0.5", () => {
	let seed = 1;
	const rand = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647;
	const scores = Array.from({ length: 4000 }, rand);
	const labels = scores.map(() => (rand() < 0.3 ? 1 : 0));
	assert.ok(Math.abs(rocAuc(scores, labels) - 0.5) < 0.03);
});

void test("average precision: perfect is 1, and a hand-computed ranking", () => {
	assert.equal(averagePrecision([0.9, 0.8, 0.1], [1, 1, 0]), 1);
	// ranking: pos (P=1, R=½), neg, pos (P=⅔, R=1) → ½·1 + ½·⅔
	assert.equal(averagePrecision([0.9, 0.5, 0.2], [1, 0, 1]), 0.5 + 0.5 * (2 / 3));
	// a tie of one pos and one neg at the top is one step: P=½ at R=1
	assert.equal(averagePrecision([0.7, 0.7], [1, 0]), 0.5);
});

void test("Brier score and log loss", () => {
	assert.equal(brierScore([1, 0], [1, 0]), 0);
	assert.equal(brierScore([0.5, 0.5], [1, 0]), 0.25);
	assert.equal(logLoss([0.5, 0.5], [1, 0]), Math.log(2));
	assert.ok(Number.isFinite(logLoss([0], [1])), "a confident miss is clipped, not Infinity");
});

void test("confusion at a threshold counts score ≥ threshold as positive", () => {
	assert.deepEqual(confusionAt([0.9, 0.5, 0.4, 0.1], [1, 0, 1, 0], 0.5), { tp: 1, fp: 1, tn: 1, fn: 1 });
	const m = evaluate([0.9, 0.5, 0.4, 0.1], [1, 0, 1, 0], 0.4);
	assert.deepEqual(m.confusion, { tp: 2, fp: 1, tn: 1, fn: 0 });
	assert.equal(m.precision, 2 / 3);
	assert.equal(m.recall, 1);
	assert.equal(m.accuracy, 0.75);
});

void test("the max-F1 threshold is the score that best separates", () => {
	assert.equal(maxF1Threshold([0.9, 0.7, 0.3, 0.2], [1, 1, 0, 0]), 0.7);
	// F1 at 0.9: 2/3, at 0.6: 2/3 (tie → the higher threshold), at 0.4: 0.857
	assert.equal(maxF1Threshold([0.9, 0.6, 0.4, 0.1], [1, 0, 1, 0]), 0.4);
});
