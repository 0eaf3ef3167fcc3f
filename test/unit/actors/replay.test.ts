// Snapshot + journal tail == full history, for random histories: the property the event-sourced stores rely on
// (actors/host/replay.ts). Also the ways a tail can fail to fit its snapshot.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { emptyCustomerState, reduce } from "../../../actors/customer.reducer.ts";
import { reduceContextFor } from "../../../actors/reduce-context.ts";
import { journalReplay, ReplayError } from "../../../actors/host/replay.ts";
import type { JournalEntry } from "../../../actors/host/actor-store.ts";
import { eventKey } from "../../../models/cloud-event.ts";
import type { CustomerState } from "../../../models/customer-state.ts";
import { loadChurnScorer } from "../../../ml/churn-scorer.ts";
import { loadRiskRules } from "../../../services/rules/risk-rules.ts";
import { randomHistory } from "../../support/random-events.ts";

// The node's defaults: risk.nools as a table and the shipped churn model, so replay covers the real scoring.
const settings = { riskDecayAfterMs: 7 * 24 * 3600_000, riskDecayKeep: 0.5, churnWeight: 30, dedupWindow: 8 };
const context = reduceContextFor(settings, loadChurnScorer("ml/models/churn-telco.json"), loadRiskRules("rules/risk.nools", "table").evaluate);
const replay = journalReplay(context);

interface Run {
	/** State after each applied message; states[0] is the empty state. */
	states: CustomerState[];
	/** Journal entry of each applied message (events and reminders), by version; entries[0] is undefined. */
	entries: Array<JournalEntry | undefined>;
	duplicates: number;
}

/** What the actor host does: apply in order, journal each applied message with the clock it was applied at. */
function live(id: string, seed: number, length: number): Run {
	let state = emptyCustomerState(id);
	const run: Run = { states: [state], entries: [undefined], duplicates: 0 };
	for (const { msg, now } of randomHistory(seed, id, length)) {
		const out = reduce(state, msg, context(now));
		if (!out.applied) {
			run.duplicates++;
			continue;
		}
		if (out.state === state) continue;
		state = out.state;
		run.states.push(state);
		const change = out.change ?? undefined;
		if (msg.kind !== "event" && msg.kind !== "reminder") throw new Error("random histories hold events and reminders only");
		run.entries.push(msg.kind === "event"
			? { customerId: id, version: state.version, key: eventKey(msg.event), appliedAt: now, riskScore: state.risk.score, event: msg.event, change }
			: { customerId: id, version: state.version, key: `reminder:${msg.name}`, appliedAt: now, riskScore: state.risk.score, reminder: msg.name, change });
	}
	return run;
}

/** The snapshot as a store gives it back: through JSON. */
const stored = (s: CustomerState): CustomerState => JSON.parse(JSON.stringify(s)) as CustomerState;

void describe("snapshot + journal tail replay", () => {
	void it("rebuilds exactly the live state from any snapshot point, for 200 random histories", () => {
		let checked = 0;
		let duplicates = 0;
		let reminders = 0;
		for (let seed = 1; seed <= 200; seed++) {
			const run = live(`c${seed}`, seed, 60);
			duplicates += run.duplicates;
			reminders += run.entries.filter(e => e?.reminder !== undefined).length;
			const last = run.states.length - 1;
			// Reminders are journaled like events: every cut point, before or after a decay step, replays to the live state.
			for (let cut = 0; cut <= last; cut++) {
				const tail = run.entries.slice(cut + 1) as JournalEntry[];
				const snapshot = cut === 0 ? null : stored(run.states[cut]);
				assert.deepEqual(replay(`c${seed}`, snapshot, tail), stored(run.states[last]), `seed ${seed}, snapshot at v${cut} of v${last}`);
				checked++;
			}
		}
		assert.ok(checked > 2000, `checked ${checked} cut points`);
		assert.ok(reminders > 10, `the histories include applied reminders (${reminders})`);
		assert.ok(duplicates > 100, "the histories include redeliveries");
	});

	void it("keeps the dedup window: a redelivery after snapshot + replay is still a duplicate", () => {
		const run = live("d1", 7, 40);
		const last = run.states.length - 1;
		const cut = last - 5;
		const tail = run.entries.slice(cut + 1) as JournalEntry[];
		const rebuilt = replay("d1", stored(run.states[cut]), tail);
		const again = tail.findLast(e => e.event !== undefined)?.event;
		assert.ok(again !== undefined, "the tail holds an event");
		const out = reduce(rebuilt, { kind: "event", event: again }, context(Date.now()));
		assert.equal(out.applied, false, "the event of the newest journal entry is recognised");
		assert.equal(out.state, rebuilt);
	});

	void it("refuses a tail with a gap, and one that does not apply, naming the customer", () => {
		const run = live("g1", 11, 30);
		const entries = run.entries.filter((e): e is JournalEntry => e !== undefined);
		const from = entries.findIndex((e, i) => i > 0 && entries[i - 1].version === e.version - 1 && run.entries[e.version - 1] !== undefined);
		const snapshot = stored(run.states[entries[from].version - 1]);
		assert.throws(() => replay("g1", snapshot, entries.slice(from + 1)), (err: unknown) =>
			err instanceof ReplayError && err.type === "JOURNAL_GAP" && /customer g1/.test(err.message));
		// The snapshot already holds the entry's event: replaying it again is a duplicate, not a new version.
		const ahead = stored(run.states[entries[from].version]);
		const sameVersion = { ...entries[from], version: ahead.version + 1 };
		assert.throws(() => replay("g1", ahead, [sameVersion]), (err: unknown) => err instanceof ReplayError && err.type === "REPLAY_DIVERGED");
	});
});
