// A fast non-cryptographic 52-bit string hash: the actor's dedup window stores it instead of event keys, and the
// sharding strategy ranks nodes with it. Not for anything an attacker may choose to collide.

const LANE_BITS = 0x100000; // 2^20: the high lane contributes 20 bits, the low lane 32, so the result stays < 2^52.
const TWO_32 = 0x100000000;

/**
 * Two 32-bit multiplicative lanes over the UTF-16 code units (each with its own odd multiplier), cross-mixed by a
 * murmur3-style finaliser so every input bit reaches every output bit. Returns an integer in [0, 2^52).
 */
export function hash52(s: string): number {
	let a = 0xdeadbeef ^ s.length;
	let b = 0x41c6ce57 ^ s.length;
	for (let i = 0; i < s.length; i++) {
		const c = s.charCodeAt(i);
		a = Math.imul(a ^ c, 0x9e3779b1);
		b = Math.imul(b ^ c, 0x5f356495);
	}
	a = Math.imul(a ^ (a >>> 16), 0x85ebca6b);
	a ^= Math.imul(b ^ (b >>> 13), 0xc2b2ae35);
	b = Math.imul(b ^ (b >>> 16), 0x85ebca6b);
	b ^= Math.imul(a ^ (a >>> 13), 0xc2b2ae35);
	return (b & (LANE_BITS - 1)) * TWO_32 + (a >>> 0);
}
