// Sentiment of an interaction's text, for interactions that arrive without a numeric one: the `sentiment` package
// (AFINN-165 word list, English) mapped to −1..1. Deterministic, local and fast (microseconds per sentence).
import Sentiment from "sentiment";

const analyzer = new Sentiment();

/**
 * Words AFINN scores that are neutral in CRM text ("contacted support", "we want to talk"). They are dropped from the
 * sum here rather than passed as `extras`: sentiment 5.0.2 merges extras into its shared lexicon for good.
 */
const DOMAIN_NEUTRAL: ReadonlySet<string> = new Set(["support", "want"]);

export interface TextSentiment {
	/** −1..1: tanh of AFINN points per token; null when no scored word occurs (nothing is known about the mood). */
	sentiment: number | null;
	/** Scored words with their points after negation, e.g. { terrible: -3, happy: -3 } for "not happy … terrible". */
	words: Record<string, number>;
}

/**
 * AFINN's "comparative" (sum of word points −5..5 over the number of tokens) is unbounded in principle and mostly
 * within ±1 for real sentences; tanh keeps it almost unchanged there and bounds it to −1..1 without clipping ties.
 */
export function analyzeText(text: string): TextSentiment {
	const r = analyzer.analyze(text);
	let points = 0;
	let scored = 0;
	const words: Record<string, number> = {};
	for (const entry of r.calculation) {
		for (const [word, value] of Object.entries(entry)) {
			if (DOMAIN_NEUTRAL.has(word) || value === 0) continue;
			points += value;
			scored++;
			words[word] = (words[word] ?? 0) + value;
		}
	}
	if (scored === 0) return { sentiment: null, words };
	const sentiment = Math.round(Math.tanh(points / Math.max(1, r.tokens.length)) * 1000) / 1000;
	// -0 would print as 0 but compare oddly in tests and JSON consumers; mixed words can cancel exactly.
	return { sentiment: sentiment === 0 ? 0 : sentiment, words };
}

/** The −1..1 sentiment of a text, or null when it contains no word of the lexicon. */
export function textSentiment(text: string): number | null {
	return analyzeText(text).sentiment;
}
