// Seeded randomness and the stratified train/validation/test split: the same seed gives the same split on any machine,
// which is what lets ml:eval re-create the test rows of an artifact.

/** mulberry32: a tiny 32-bit PRNG, returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
	let a = seed >>> 0;
	return () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

/** Fisher–Yates, in place. */
export function shuffle<T>(items: T[], random: () => number): T[] {
	for (let i = items.length - 1; i > 0; i--) {
		const j = Math.floor(random() * (i + 1));
		const tmp = items[i];
		items[i] = items[j];
		items[j] = tmp;
	}
	return items;
}

export interface SplitFractions {
	train: number;
	validation: number;
	test: number;
}

export const DEFAULT_FRACTIONS: SplitFractions = { train: 0.7, validation: 0.15, test: 0.15 };

export interface Split {
	/** Row indices in training order (shuffled, classes interleaved). */
	train: number[];
	/** Row indices, ascending. */
	validation: number[];
	/** Row indices, ascending. */
	test: number[];
}

/**
 * Splits row indices so each part keeps the label ratio: every class is shuffled and cut by the fractions on its own.
 * The training order is shuffled again because brain.js trains sample by sample in the given order.
 */
export function stratifiedSplit(labels: ArrayLike<number>, seed: number, fractions: SplitFractions = DEFAULT_FRACTIONS): Split {
	const sum = fractions.train + fractions.validation + fractions.test;
	if (Math.abs(sum - 1) > 1e-9 || fractions.train <= 0 || fractions.validation < 0 || fractions.test < 0) {
		throw new Error(`split fractions must be ≥ 0 (train > 0) and sum to 1, got ${JSON.stringify(fractions)}`);
	}
	const random = mulberry32(seed);
	const byClass = new Map<number, number[]>();
	for (let i = 0; i < labels.length; i++) {
		const list = byClass.get(labels[i]) ?? [];
		list.push(i);
		byClass.set(labels[i], list);
	}
	const split: Split = { train: [], validation: [], test: [] };
	for (const cls of [...byClass.keys()].sort((a, b) => a - b)) {
		const rows = shuffle(byClass.get(cls) ?? [], random);
		const nValidation = Math.round(rows.length * fractions.validation);
		const nTest = Math.round(rows.length * fractions.test);
		const nTrain = rows.length - nValidation - nTest;
		split.train.push(...rows.slice(0, nTrain));
		split.validation.push(...rows.slice(nTrain, nTrain + nValidation));
		split.test.push(...rows.slice(nTrain + nValidation));
	}
	shuffle(split.train, random);
	split.validation.sort((a, b) => a - b);
	split.test.sort((a, b) => a - b);
	return split;
}
