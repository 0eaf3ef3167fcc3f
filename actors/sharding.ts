// Rendezvous (highest-random-weight) hashing of customer ids over node ids: when a node joins or leaves, only
// the customers it gains or held move (about 1/N), unlike Moleculer's stock Shard strategy.
import { hash52 } from "./hash.ts";

/** The node that owns `key` among `nodeIds`, or null when there is none. Independent of the list's order. */
export function ownerOf(key: string, nodeIds: readonly string[]): string | null {
	let best: string | null = null;
	let bestScore = -1;
	for (const nodeId of nodeIds) {
		const score = hash52(`${nodeId}\u0000${key}`);
		if (score > bestScore || (score === bestScore && best !== null && nodeId < best)) {
			best = nodeId;
			bestScore = score;
		}
	}
	return best;
}
