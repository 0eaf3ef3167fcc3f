// Opportunity scoring: each factor moves the score the right way (tables), bounds, decided deals, bad input.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { scoreOpportunity, type OpportunityScoreInput } from "../../../ml/opportunity-score.ts";

const NOW = Date.parse("2026-06-01T12:00:00.000Z");
const DAY = 24 * 3600_000;

/** Proposal, small deal, 10 days old, touched yesterday, no known sentiment: 40 + 0 + 0 + 10 + 0. */
const BASE: OpportunityScoreInput = { stage: "PROPOSAL", amount: 5_000, createdAt: NOW - 10 * DAY, lastActivityAt: NOW - DAY, sentiment: null };

void describe("scoreOpportunity: each factor moves the score the right way", () => {
	void it("scores the base case from its documented points", () => {
		assert.deepEqual(scoreOpportunity(BASE, NOW), {
			score: 50, probability: 0.5, factors: { stage: 40, amount: 0, age: 0, activity: 10, sentiment: 0 }
		});
	});

	// Each row varies one input from best to worst; the score must fall strictly, and only that factor may change.
	const tables: { factor: keyof ReturnType<typeof scoreOpportunity>["factors"]; bestToWorst: Partial<OpportunityScoreInput>[] }[] = [
		{ factor: "stage", bestToWorst: [{ stage: "NEGOTIATION" }, { stage: "PROPOSAL" }, { stage: "QUALIFICATION" }] },
		{ factor: "amount", bestToWorst: [{ amount: 1_000 }, { amount: 50_000 }, { amount: 300_000 }, { amount: 5_000_000 }] },
		{ factor: "age", bestToWorst: [{ createdAt: NOW - 5 * DAY }, { createdAt: NOW - 60 * DAY }, { createdAt: NOW - 120 * DAY }, { createdAt: NOW - 400 * DAY }] },
		// Created 29 days ago (still within the age grace), so only the silence since the last activity varies.
		{ factor: "activity", bestToWorst: [2 / 24, 10, 20, 28].map(days => ({ createdAt: NOW - 29 * DAY, lastActivityAt: NOW - days * DAY })) },
		{ factor: "sentiment", bestToWorst: [{ sentiment: 0.9 }, { sentiment: 0.2 }, { sentiment: null }, { sentiment: -0.3 }, { sentiment: -1 }] }
	];
	for (const { factor, bestToWorst } of tables) {
		void it(`${factor}: worse values give strictly lower scores`, () => {
			const results = bestToWorst.map(over => scoreOpportunity({ ...BASE, ...over }, NOW));
			for (let i = 1; i < results.length; i++) {
				const [prev, cur] = [results[i - 1], results[i]];
				assert.ok(cur.score < prev.score, `${JSON.stringify(bestToWorst[i])}: ${cur.score} should be < ${prev.score}`);
				assert.ok(cur.factors[factor] < prev.factors[factor], `${factor} factor should fall`);
				assert.ok(cur.probability < prev.probability);
			}
		});
	}

	void it("activity is counted from creation when nothing happened since", () => {
		const fresh = scoreOpportunity({ ...BASE, createdAt: NOW - DAY, lastActivityAt: NOW - 300 * DAY }, NOW);
		assert.equal(fresh.factors.activity, 10);
	});

	void it("factors add up to the score, and stay within 0..100 at the extremes", () => {
		const best = scoreOpportunity({ stage: "NEGOTIATION", amount: 0, createdAt: NOW, lastActivityAt: NOW, sentiment: 1 }, NOW);
		const worst = scoreOpportunity({ stage: "QUALIFICATION", amount: 1e12, createdAt: NOW - 3000 * DAY, lastActivityAt: NOW - 3000 * DAY, sentiment: -1 }, NOW);
		assert.equal(best.score, 85);
		assert.equal(Object.values(best.factors).reduce((s, v) => s + v, 0), 85);
		assert.equal(worst.score, 0);
		assert.equal(worst.probability, 0);
		assert.ok(Object.values(worst.factors).reduce((s, v) => s + v, 0) < 0, "the raw sum is negative, the score is clamped");
	});

	void it("decided deals score 100 (won) and 0 (lost), whatever else holds", () => {
		assert.deepEqual(scoreOpportunity({ ...BASE, stage: "WON", sentiment: -1 }, NOW), {
			score: 100, probability: 1, factors: { stage: 100, amount: 0, age: 0, activity: 0, sentiment: 0 }
		});
		assert.equal(scoreOpportunity({ ...BASE, stage: "LOST", sentiment: 1 }, NOW).score, 0);
	});

	void it("is deterministic for the same input and clock", () => {
		assert.deepEqual(scoreOpportunity({ ...BASE, sentiment: -0.42 }, NOW), scoreOpportunity({ ...BASE, sentiment: -0.42 }, NOW));
	});

	void it("rejects garbage instead of scoring it", () => {
		const bad: [string, Partial<OpportunityScoreInput>, RegExp][] = [
			["NaN amount", { amount: NaN }, /amount/],
			["negative amount", { amount: -1 }, /amount/],
			["infinite date", { createdAt: Infinity }, /createdAt/],
			["NaN sentiment", { sentiment: NaN }, /sentiment/],
			["unknown stage", { stage: "MAYBE" as never }, /stage/]
		];
		for (const [name, over, re] of bad) assert.throws(() => scoreOpportunity({ ...BASE, ...over }, NOW), re, name);
	});
});
