// Text sentiment of known interaction texts: sign, bounds, basic negation, and "unknown" instead of a false neutral.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { analyzeText, textSentiment } from "../../../ml/sentiment.ts";

void describe("textSentiment", () => {
	const cases: [string, "positive" | "negative" | "neutral" | "unknown"][] = [
		["Great call, thanks! We are happy with the proposal.", "positive"],
		["Love the new dashboard, excellent work", "positive"],
		["This is terrible, I want to cancel my contract.", "negative"],
		["Your support is useless and slow, very disappointed.", "negative"],
		["I am not happy with the price.", "negative"],
		["good bad", "neutral"],
		["We will sign next week.", "unknown"],
		["Das ist schrecklich", "unknown"],
		["", "unknown"]
	];
	for (const [text, expected] of cases) {
		void it(`${JSON.stringify(text)} is ${expected}`, () => {
			const s = textSentiment(text);
			if (expected === "unknown") return assert.equal(s, null);
			assert.notEqual(s, null);
			assert.ok(s! >= -1 && s! <= 1, `${s} within -1..1`);
			if (expected === "positive") assert.ok(s! > 0.2, `${s}`);
			if (expected === "negative") assert.ok(s! < -0.2, `${s}`);
			if (expected === "neutral") assert.equal(s, 0);
		});
	}

	void it("stays within -1..1 for a text made only of strong words", () => {
		const s = textSentiment("awful awful terrible horrible disaster")!;
		assert.ok(s >= -1 && s < -0.9, `${s}`);
	});

	void it("a more negative text scores lower", () => {
		assert.ok(textSentiment("the delivery was bad and the support terrible")! < textSentiment("the delivery was a bit slow")!);
	});

	void it("does not count words that are neutral in CRM text ('support', 'want')", () => {
		assert.deepEqual(analyzeText("I want to talk to support").words, {});
		assert.equal(textSentiment("I want to talk to support"), null);
	});

	void it("is deterministic and leaves no state behind between calls", () => {
		const a = textSentiment("This is terrible, I want to cancel my contract.");
		textSentiment("support support support great");
		assert.equal(textSentiment("This is terrible, I want to cancel my contract."), a);
	});
});
