// Bloom filters for de-duplicating by content (scraped market data): sized from the expected number of items and
// the false-positive rate; the rotating variant keeps that rate on an unbounded stream by forgetting old items.

export interface BloomSizing {
	/** Number of bits (m). */
	bits: number;
	/** Number of hash functions (k). */
	hashes: number;
}

/** Largest filter we build: 2^32 bits = 512 MiB. Beyond that, the sizing is a configuration mistake. */
export const MAX_BLOOM_BITS = 2 ** 32;

/**
 * The optimal size for `expectedItems` at `falsePositiveRate`: m = -n·ln p / (ln 2)², k = (m / n)·ln 2.
 * Throws a RangeError naming the bad argument.
 */
export function bloomSizing(expectedItems: number, falsePositiveRate: number): BloomSizing {
	if (!Number.isInteger(expectedItems) || expectedItems < 1) throw new RangeError(`expectedItems must be an integer >= 1, got ${expectedItems}`);
	if (!(falsePositiveRate > 0 && falsePositiveRate < 1)) throw new RangeError(`falsePositiveRate must be between 0 and 1 (exclusive), got ${falsePositiveRate}`);
	const bits = Math.max(8, Math.ceil((-expectedItems * Math.log(falsePositiveRate)) / (Math.LN2 * Math.LN2)));
	if (bits > MAX_BLOOM_BITS) throw new RangeError(`a Bloom filter for ${expectedItems} items at ${falsePositiveRate} needs ${bits} bits (more than 2^32)`);
	const hashes = Math.min(32, Math.max(1, Math.round((bits / expectedItems) * Math.LN2)));
	return { bits, hashes };
}

/** The false-positive rate a filter of this sizing has after `items` insertions: (1 - e^(-k·n/m))^k. */
export function expectedFalsePositiveRate(sizing: BloomSizing, items: number): number {
	return Math.pow(1 - Math.exp((-sizing.hashes * items) / sizing.bits), sizing.hashes);
}

/**
 * Two independent 32-bit hashes of a string's UTF-16 code units (multiplicative lanes with murmur3 finalisers);
 * the k probe positions are derived from them by enhanced double hashing (Kirsch–Mitzenmacher).
 */
function hashPair(s: string): [number, number] {
	let a = 0x811c9dc5 ^ s.length;
	let b = 0x27d4eb2f ^ Math.imul(s.length, 0x165667b1);
	for (let i = 0; i < s.length; i++) {
		const c = s.charCodeAt(i);
		a = Math.imul(a ^ c, 0x01000193);
		b = Math.imul(b ^ c, 0x9e3779b1);
		b = (b << 13) | (b >>> 19);
	}
	a ^= a >>> 16;
	a = Math.imul(a, 0x85ebca6b);
	a ^= a >>> 13;
	a = Math.imul(a, 0xc2b2ae35);
	a ^= a >>> 16;
	b ^= b >>> 15;
	b = Math.imul(b, 0x2c1b3c6d);
	b ^= b >>> 12;
	b = Math.imul(b, 0x297a2d39);
	b ^= b >>> 15;
	return [a >>> 0, b >>> 0];
}

export class BloomFilter {
	readonly bits: number;
	readonly hashes: number;
	private readonly words: Uint32Array;
	/** Insertions that set at least one new bit (an estimate of distinct items). */
	private inserted = 0;

	constructor(sizing: BloomSizing) {
		this.bits = sizing.bits;
		this.hashes = sizing.hashes;
		this.words = new Uint32Array(Math.ceil(sizing.bits / 32));
	}

	static forItems(expectedItems: number, falsePositiveRate: number): BloomFilter {
		return new BloomFilter(bloomSizing(expectedItems, falsePositiveRate));
	}

	get count(): number {
		return this.inserted;
	}

	/** Adds the key; returns true when it was (probably) present already. */
	add(key: string): boolean {
		const [h1, h2] = hashPair(key);
		let present = true;
		for (let i = 0; i < this.hashes; i++) {
			const bit = this.position(h1, h2, i);
			const w = bit >>> 5;
			const mask = 1 << (bit & 31);
			if ((this.words[w] & mask) === 0) {
				present = false;
				this.words[w] |= mask;
			}
		}
		if (!present) this.inserted++;
		return present;
	}

	/** False means "certainly never added"; true means "added, or a false positive". */
	has(key: string): boolean {
		const [h1, h2] = hashPair(key);
		for (let i = 0; i < this.hashes; i++) {
			const bit = this.position(h1, h2, i);
			if ((this.words[bit >>> 5] & (1 << (bit & 31))) === 0) return false;
		}
		return true;
	}

	private position(h1: number, h2: number, i: number): number {
		// Exact in doubles: h1 + i·h2 + i³ stays far below 2^53 for i < 32.
		return (h1 + i * h2 + i * i * i) % this.bits;
	}
}

/**
 * Two generations of `expectedItems` each: lookups check both, insertions go to the current one, and a full
 * current generation replaces the previous one. Memory is bounded, the last `expectedItems` items (at least) are
 * always remembered, and each generation is sized for half the rate so the union keeps `falsePositiveRate`.
 */
export class RotatingBloomFilter {
	readonly generationSize: number;
	readonly sizing: BloomSizing;
	private current: BloomFilter;
	private previous: BloomFilter | null = null;
	private rotations = 0;

	constructor(expectedItems: number, falsePositiveRate: number) {
		this.generationSize = expectedItems;
		this.sizing = bloomSizing(expectedItems, falsePositiveRate / 2);
		this.current = new BloomFilter(this.sizing);
	}

	get generations(): number {
		return this.rotations;
	}

	has(key: string): boolean {
		return this.current.has(key) || (this.previous !== null && this.previous.has(key));
	}

	/** Adds the key; returns true when it was (probably) present already. */
	add(key: string): boolean {
		// A recently seen item is also written to the current generation so it outlives the next rotation.
		const inPrevious = this.previous !== null && this.previous.has(key);
		const inCurrent = this.current.add(key);
		if (this.current.count >= this.generationSize) {
			this.previous = this.current;
			this.current = new BloomFilter(this.sizing);
			this.rotations++;
		}
		return inPrevious || inCurrent;
	}
}
