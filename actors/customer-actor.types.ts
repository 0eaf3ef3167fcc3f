// Messages, effects and context of the customer actor's pure reducer (actors/customer.reducer.ts).
import type { KnownCloudEvent } from "../models/event-data.schemas.ts";
import type { CustomerState } from "../models/customer-state.ts";
import type { RiskRulesFn } from "./risk-rules.ts";
import type { CustomerMerged, InteractionLogged, MergeReply, RiskChanged } from "../models/contract/customers.contract.ts";
import type { ChangeRecord, ModelCause } from "../models/change-record.ts";

export type CustomerMessage =
	/** A validated event: its `data` type follows from its `type`. */
	| { kind: "event"; event: KnownCloudEvent }
	/** A reminder the actor scheduled itself (e.g. "risk.decay"), delivered at or after its due time. */
	| { kind: "reminder"; name: string }
	| MergeMessage;

/** The steps of a customer merge (actors/customer-merge.ts, docs/merge.md), each one turn of one actor. */
export type MergeMessage =
	/** Survivor: a merge of `from` into this customer starts (persisted before `from` is sealed). */
	| { kind: "merge.intent"; from: string }
	/** Survivor: the merge of `from` cannot happen (it was sealed into another customer); the intent is withdrawn. */
	| { kind: "merge.abort"; from: string }
	/** Merged customer: sealed, merged into `into`; from now on it applies nothing and redirects. */
	| { kind: "merge.seal"; into: string }
	/** Survivor: takes in `absorbed`, the persisted sealed state of `from`, once. */
	| { kind: "merge.absorb"; from: string; absorbed: CustomerState };

export type Effect =
	| { type: "customer.risk.changed"; payload: RiskChanged }
	| { type: "customer.created"; payload: { customerId: string } }
	| { type: "customer.interaction.logged"; payload: InteractionLogged }
	| { type: "customer.merged"; payload: CustomerMerged };

/**
 * Scores a state with the churn model: probability 0–1. Pure and synchronous (runs inside the actor's turn). `model`
 * names the artifact in the score lineage (absent: the lineage says "unknown").
 */
export type ChurnScorer = ((state: CustomerState) => number) & { model?: ModelCause };

export interface RiskSettings {
	/** Inactivity before the first decay step, and between steps (ms). */
	decayAfterMs: number;
	/** Share of each event-driven factor kept at each decay step (0–1). */
	decayKeep: number;
	/** Weight of the churn probability in points (probability × weight), as factor "churn.model". */
	churnWeight: number;
}

export interface ReduceContext {
	/** Wall clock (ms) at which the message is applied; reminders use it, events use their own time. */
	now: number;
	risk: RiskSettings;
	/** How many recent event keys are kept for de-duplication. */
	dedupWindow: number;
	churnScorer?: ChurnScorer;
	/** Event -> risk factor deltas (rules/risk.nools compiled by the rules service); absent: RISK_RULES of risk.ts. */
	riskRules?: RiskRulesFn;
}

export interface ReduceResult {
	state: CustomerState;
	effects: Effect[];
	/** False when the message had no effect because it was a duplicate (same source + id). */
	applied: boolean;
	/** What the change was and why (null when nothing was applied): journaled with the message. */
	change: ChangeRecord | null;
	/** Merge steps only: what the actor made of the step. */
	merge?: MergeReply;
}
