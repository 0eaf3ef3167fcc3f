// Opportunity scoring: a pure, explainable points model over stage, amount, age, recent activity and the sentiment of
// the latest interaction. No clock, no I/O: `now` comes in, so the same input always gives the same score.
import { OPPORTUNITY_STAGES, type OpportunityStage } from "../models/entities/opportunity.entity.ts";

export interface OpportunityScoreInput {
	stage: OpportunityStage;
	/** Deal value (≥ 0) in the opportunity's currency. */
	amount: number;
	/** ms since epoch. */
	createdAt: number;
	/** ms since epoch of the latest sales activity (an interaction counts). */
	lastActivityAt: number;
	/** −1..1 sentiment of the latest interaction with a known one; null when none is known. */
	sentiment: number | null;
}

export interface OpportunityFactors {
	stage: number;
	amount: number;
	age: number;
	activity: number;
	sentiment: number;
}

export interface OpportunityScore {
	/** 0–100: the clamped, rounded sum of the factors. */
	score: number;
	/** The same sum as 0–1 (3 decimals). A heuristic likelihood, not calibrated against won/lost history. */
	probability: number;
	/** Each factor's contribution in points. */
	factors: OpportunityFactors;
}

export interface OpportunityScoreWeights {
	/** Base points per open stage: the further along, the likelier the close. */
	stagePoints: Record<"QUALIFICATION" | "PROPOSAL" | "NEGOTIATION", number>;
	/** Amounts up to this cost nothing; above it, points fall with log10(amount) down to `amountPenalty` at `amountLarge`. */
	amountReference: number;
	amountLarge: number;
	amountPenalty: number;
	/** Age in days before it costs points, and the age at which the full `agePenalty` applies. */
	ageGraceDays: number;
	ageStaleDays: number;
	agePenalty: number;
	/** Activity within `activityFreshDays` earns `activityBonus`; falling linearly to `activityPenalty` at `activityIdleDays`. */
	activityFreshDays: number;
	activityIdleDays: number;
	activityBonus: number;
	activityPenalty: number;
	/** Points at sentiment 1 (and minus these at −1). */
	sentimentPoints: number;
}

export const DEFAULT_OPPORTUNITY_WEIGHTS: OpportunityScoreWeights = {
	stagePoints: { QUALIFICATION: 20, PROPOSAL: 40, NEGOTIATION: 60 },
	amountReference: 10_000,
	amountLarge: 1_000_000,
	amountPenalty: -10,
	ageGraceDays: 30,
	ageStaleDays: 180,
	agePenalty: -15,
	activityFreshDays: 7,
	activityIdleDays: 60,
	activityBonus: 10,
	activityPenalty: -15,
	sentimentPoints: 15
};

const DAY_MS = 24 * 3600_000;

function clamp(v: number, lo: number, hi: number): number {
	return v < lo ? lo : v > hi ? hi : v;
}

function round1(v: number): number {
	const r = Math.round(v * 10) / 10;
	return r === 0 ? 0 : r; // no -0 in JSON consumers' comparisons
}

/** 0 below `from`, 1 above `to`, linear in between. */
function ramp(x: number, from: number, to: number): number {
	return to > from ? clamp((x - from) / (to - from), 0, 1) : x >= to ? 1 : 0;
}

function requireFinite(name: string, v: number): void {
	if (!Number.isFinite(v)) throw new RangeError(`opportunity ${name} must be a finite number, got ${v}`);
}

/**
 * Won and lost deals are decided: 100 and 0, whatever else holds. An open deal starts from its stage's points; a large
 * amount, a long life and a long silence cost points, recent activity and a positive latest interaction earn them.
 */
export function scoreOpportunity(input: OpportunityScoreInput, now: number, weights: OpportunityScoreWeights = DEFAULT_OPPORTUNITY_WEIGHTS): OpportunityScore {
	if (!OPPORTUNITY_STAGES.includes(input.stage)) throw new RangeError(`unknown opportunity stage ${JSON.stringify(input.stage)}`);
	requireFinite("amount", input.amount);
	requireFinite("createdAt", input.createdAt);
	requireFinite("lastActivityAt", input.lastActivityAt);
	requireFinite("now", now);
	if (input.amount < 0) throw new RangeError(`opportunity amount must be >= 0, got ${input.amount}`);
	if (input.sentiment !== null) requireFinite("sentiment", input.sentiment);

	if (input.stage === "WON" || input.stage === "LOST") {
		const won = input.stage === "WON";
		return { score: won ? 100 : 0, probability: won ? 1 : 0, factors: { stage: won ? 100 : 0, amount: 0, age: 0, activity: 0, sentiment: 0 } };
	}
	const w = weights;
	const ageDays = Math.max(0, (now - input.createdAt) / DAY_MS);
	// Creating the opportunity is its first activity.
	const idleDays = Math.max(0, (now - Math.max(input.createdAt, input.lastActivityAt)) / DAY_MS);
	const amountSteps = input.amount <= w.amountReference ? 0 : Math.log10(input.amount / w.amountReference) / Math.log10(w.amountLarge / w.amountReference);
	const factors: OpportunityFactors = {
		stage: w.stagePoints[input.stage],
		amount: round1(w.amountPenalty * clamp(amountSteps, 0, 1)),
		age: round1(w.agePenalty * ramp(ageDays, w.ageGraceDays, w.ageStaleDays)),
		activity: round1(w.activityBonus + (w.activityPenalty - w.activityBonus) * ramp(idleDays, w.activityFreshDays, w.activityIdleDays)),
		sentiment: round1(w.sentimentPoints * clamp(input.sentiment ?? 0, -1, 1))
	};
	const sum = factors.stage + factors.amount + factors.age + factors.activity + factors.sentiment;
	const probability = Math.round(clamp(sum, 0, 100) * 10) / 1000;
	return { score: Math.round(clamp(sum, 0, 100)), probability, factors };
}
