// The seeded fault schedule of a chaos run: which fault, when, against which node, for how long. Pure: the same
// (seed, duration, nodes) always gives the same schedule.
import type { PartitionMode } from "../../lib/tcp-proxy.ts";
import { prng } from "./prng.ts";

export const FAULT_KINDS = ["sigkill", "sigstop", "join", "nats-restart", "redis-restart", "delay", "partition"] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Faults aimed at one node (the others hit a server or add a node). */
export const NODE_FAULTS: ReadonlySet<FaultKind> = new Set(["sigkill", "sigstop", "delay", "partition"]);

export interface PlannedFault {
	index: number;
	kind: FaultKind;
	/** Planned start, ms after the load began; a fault starts later when the previous one has not recovered yet. */
	atMs: number;
	/** Which live node (an index into the live nodes at that moment, taken modulo their number). */
	target: number;
	/** sigstop, delay, partition: how long the fault lasts before it is healed; sigkill: how long the node stays down. */
	holdMs: number;
	/** delay: latency added per chunk. */
	delayMs?: number;
	/** partition: what is cut, and how. */
	cut?: { servers: "nats" | "redis" | "both"; mode: PartitionMode };
}

export interface ScheduleOptions {
	seed: number;
	/** Length of the load phase (ms): faults are planned inside it. */
	durationMs: number;
	/** Quiet time at the start (the load settles) and at the end (the last fault recovers under load). */
	warmupMs?: number;
	cooldownMs?: number;
	/** Planned time per fault, recovery included. */
	slotMs?: number;
	/** Only these kinds (default: all). */
	kinds?: readonly FaultKind[];
}

/**
 * Faults in slots of `slotMs` between warm-up and cool-down; kinds come in rounds, each round a seeded permutation of
 * every kind, so n full rounds hold each kind n times (a 10-minute run: 23 slots, every kind at least 3 times).
 */
export function planFaults(opts: ScheduleOptions): PlannedFault[] {
	const rnd = prng(opts.seed ^ 0x5eed);
	const warmupMs = opts.warmupMs ?? 8_000;
	const cooldownMs = opts.cooldownMs ?? 15_000;
	// A short run (the one in npm test) gets shorter slots: two faults in a minute rather than one.
	const slotMs = opts.slotMs ?? (opts.durationMs < 180_000 ? 18_000 : 24_000);
	const slots = Math.max(0, Math.floor((opts.durationMs - warmupMs - cooldownMs) / slotMs));
	const kinds: FaultKind[] = [];
	const pool = opts.kinds && opts.kinds.length > 0 ? opts.kinds : FAULT_KINDS;
	while (kinds.length < slots) kinds.push(...rnd.shuffle(pool));
	return kinds.slice(0, slots).map((kind, index): PlannedFault => {
		const base = { index, kind, atMs: warmupMs + index * slotMs + rnd.int(0, 2_000), target: rnd.int(0, 1_000) };
		switch (kind) {
			case "sigkill": return { ...base, holdMs: rnd.int(500, 3_000) };
			case "sigstop": return { ...base, holdMs: rnd.int(5_000, 9_000) };
			case "delay": return { ...base, holdMs: rnd.int(6_000, 12_000), delayMs: rnd.int(50, 400) };
			case "partition": return { ...base, holdMs: rnd.int(4_000, 8_000), cut: { servers: rnd.pick(["nats", "redis", "both"] as const), mode: rnd.pick(["hold", "drop"] as const) } };
			default: return { ...base, holdMs: 0 };
		}
	});
}

/** How many faults of each kind a schedule holds. */
export function countKinds(faults: readonly { kind: FaultKind }[]): Record<FaultKind, number> {
	const counts = Object.fromEntries(FAULT_KINDS.map(k => [k, 0])) as Record<FaultKind, number>;
	for (const f of faults) counts[f.kind]++;
	return counts;
}
