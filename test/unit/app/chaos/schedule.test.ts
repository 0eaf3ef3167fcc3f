// The fault schedule: seeded (a seed replays), every kind at least three times in ten minutes, some faults in the
// one-minute run of npm test, and every fault inside the load phase.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { countKinds, FAULT_KINDS, planFaults } from "../../../../app/chaos/schedule.ts";
import { prng } from "../../../../app/chaos/prng.ts";

describe("chaos schedule", () => {
	it("is the same for the same seed and differs for another", () => {
		assert.deepEqual(planFaults({ seed: 1, durationMs: 600_000 }), planFaults({ seed: 1, durationMs: 600_000 }));
		assert.notDeepEqual(planFaults({ seed: 1, durationMs: 600_000 }), planFaults({ seed: 2, durationMs: 600_000 }));
	});

	it("holds every kind at least three times in ten minutes, for any seed", () => {
		for (const seed of [1, 2, 3, 42, 1234]) {
			const counts = countKinds(planFaults({ seed, durationMs: 600_000 }));
			for (const kind of FAULT_KINDS) assert.ok(counts[kind] >= 3, `seed ${seed}: ${kind} ${counts[kind]} times`);
		}
	});

	it("plans faults in the one-minute run, all inside the load phase with time to recover", () => {
		const faults = planFaults({ seed: 7, durationMs: 60_000 });
		assert.ok(faults.length >= 2, `${faults.length} faults`);
		for (const f of faults) assert.ok(f.atMs >= 8_000 && f.atMs + f.holdMs < 60_000 - 10_000, JSON.stringify(f));
	});

	it("gives every node fault a hold and every partition what it cuts", () => {
		for (const f of planFaults({ seed: 9, durationMs: 600_000 })) {
			if (f.kind === "sigstop" || f.kind === "delay" || f.kind === "partition") assert.ok(f.holdMs >= 3_000);
			if (f.kind === "delay") assert.ok((f.delayMs ?? 0) > 0);
			if (f.kind === "partition") assert.ok(f.cut && ["nats", "redis", "both"].includes(f.cut.servers));
		}
	});

	it("prng: uniform in [0, 1), integers within bounds, a shuffle is a permutation", () => {
		const r = prng(5);
		for (let i = 0; i < 1000; i++) {
			const x = r.next();
			assert.ok(x >= 0 && x < 1);
			const n = r.int(3, 7);
			assert.ok(Number.isInteger(n) && n >= 3 && n <= 7);
		}
		assert.deepEqual(r.shuffle([1, 2, 3, 4, 5]).sort(), [1, 2, 3, 4, 5]);
	});
});
