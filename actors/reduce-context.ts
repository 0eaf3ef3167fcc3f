// The reducer's context as a node builds it from its settings: one definition for the actor host's turns and for
// the stores' replay of a journal tail (actors/host/replay.ts), so both apply events with the same settings.
import type { ChurnScorer, ReduceContext, RiskSettings } from "./customer-actor.types.ts";
import type { RiskRulesFn } from "./risk-rules.ts";

/** The actor settings the reducer reads (a subset of the node's `config.actor`). */
export interface ReduceSettings {
	riskDecayAfterMs: number;
	riskDecayKeep: number;
	churnWeight: number;
	dedupWindow: number;
}

/** `now` → context; a fixed object shape per call (no spread), cheap on the hot path. */
export function reduceContextFor(settings: ReduceSettings, churnScorer: ChurnScorer | null, riskRules?: RiskRulesFn): (now: number) => ReduceContext {
	const risk: RiskSettings = { decayAfterMs: settings.riskDecayAfterMs, decayKeep: settings.riskDecayKeep, churnWeight: settings.churnWeight };
	const dedupWindow = settings.dedupWindow;
	const scorer = churnScorer ?? undefined;
	return (now: number): ReduceContext => ({ now, risk, dedupWindow, churnScorer: scorer, riskRules });
}
