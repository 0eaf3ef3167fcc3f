// Rebuilding a customer's state from its snapshot and the journal entries (events and reminders) written after it: the read side of the
// event-sourced stores. Pure: the reducer is deterministic given the event and the clock it was applied with, and
// each journal entry records that clock (appliedAt).
import type { CustomerState } from "../../models/customer-state.ts";
import { emptyCustomerState, reduce } from "../customer.reducer.ts";
import type { CustomerMessage, ReduceContext } from "../customer-actor.types.ts";
import type { JournalEntry } from "./actor-store.ts";

/** Snapshot (null: none yet) + journal tail (oldest first) → current state. Throws ReplayError when they do not fit. */
export type Replay = (id: string, snapshot: CustomerState | null, tail: readonly JournalEntry[]) => CustomerState;

export type ReplayErrorType = "JOURNAL_GAP" | "REPLAY_DIVERGED";

/** The stored journal does not continue the snapshot: a store bug or a journal trimmed below the snapshot. */
export class ReplayError extends Error {
	override name = "ReplayError";
	readonly type: ReplayErrorType;
	constructor(message: string, type: ReplayErrorType) {
		super(message);
		this.type = type;
	}
}

/**
 * The replay of the node's reducer with the node's settings. Each entry is applied with `now` = its appliedAt, so
 * the result is the state the actor had; risk rules and the churn model are the ones loaded now (a model or rules
 * change between the write and the replay re-scores the tail with the new ones, as the next event would).
 */
export function journalReplay(reduceContext: (now: number) => ReduceContext): Replay {
	return (id, snapshot, tail) => {
		let state = snapshot ?? emptyCustomerState(id);
		for (const entry of tail) {
			if (entry.version !== state.version + 1) {
				throw new ReplayError(`customer ${id}: journal entry v${entry.version} does not follow state v${state.version}`, "JOURNAL_GAP");
			}
			const msg: CustomerMessage = entry.merge !== undefined
				? entry.merge
				: entry.reminder === undefined ? { kind: "event", event: entry.event } : { kind: "reminder", name: entry.reminder };
			const out = reduce(state, msg, reduceContext(entry.appliedAt));
			if (!out.applied || out.state.version !== entry.version) {
				throw new ReplayError(`customer ${id}: replaying journal entry v${entry.version} (${entry.key}) did not apply`, "REPLAY_DIVERGED");
			}
			state = out.state;
		}
		return state;
	};
}
