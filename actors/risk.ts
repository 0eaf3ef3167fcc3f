// The risk model as data plus pure functions: which events move which named factor by how many points, how the
// factors sum to a 0–100 score, how event-driven factors decay with inactivity, and the churn-model factor.
import type { EventData, EventType } from "../models/cloud-event.ts";
import type { FiredRule } from "./risk-rules.ts";

/** How the score lineage names the built-in table below (used when no rule file is loaded). */
export const BUILTIN_RULES_FILE = "actors/risk.ts";

export type Factors = Record<string, number>;

/** A test on one top-level field of `event.data`; a missing or mistyped field never matches. */
export type RuleCondition =
	| { field: string; eq: string | number | boolean }
	| { field: string; in: readonly (string | number)[] }
	| { field: string; lte: number }
	| { field: string; gte: number };

export interface RiskRule {
	/** Stable name, for logs and for a rules engine that replaces this table. */
	id: string;
	type: EventType;
	/** Absent: every event of `type` matches. */
	when?: RuleCondition;
	factor: string;
	/** Added to the factor each time the rule fires (negative lowers the risk). */
	points: number;
}

/**
 * The default rules (ARCHITECTURE §4/§9). The reducer only evaluates them for events that change a fact (a status
 * change to the status an order already has, or re-opening an open ticket, fires nothing), so a second event
 * cancelling the same order does not count twice. Points are deliberately small next to the 0–100 scale: a customer
 * reaches "high risk" through several signals, not one.
 */
export const RISK_RULES: readonly RiskRule[] = [
	// The seed's rule: every cancelled order is a strong, direct signal.
	{ id: "order-cancelled", type: "crm.order.status_changed", when: { field: "newStatus", eq: "CANCELLED" }, factor: "order.cancelled", points: 10 },
	// A failed payment often precedes involuntary churn; a bit weaker than a deliberate cancel.
	{ id: "payment-failed", type: "crm.payment.failed", factor: "payment.failed", points: 8 },
	// Sentiment is noisy per interaction, so each one moves the score only a little; good news counts less than bad.
	{ id: "interaction-negative", type: "crm.interaction.logged", when: { field: "sentiment", lte: -0.5 }, factor: "interaction.negative", points: 5 },
	{ id: "interaction-positive", type: "crm.interaction.logged", when: { field: "sentiment", gte: 0.5 }, factor: "interaction.positive", points: -3 },
	// Urgent tickets mean something is broken for the customer right now.
	{ id: "ticket-high-priority", type: "crm.ticket.opened", when: { field: "priority", in: ["HIGH", "CRITICAL"] }, factor: "ticket.high_priority", points: 4 }
];

/** Factors recomputed from state on each relevant message; decay never touches them. */
export const FACTOR_CHURN_MODEL = "churn.model";
export const FACTOR_TICKETS_OPEN = "tickets.open";
const DERIVED_FACTORS: ReadonlySet<string> = new Set([FACTOR_CHURN_MODEL, FACTOR_TICKETS_OPEN]);

/** Open tickets are normal up to `free`; each one beyond adds `pointsEach` (recomputed, never accumulated). */
export const OPEN_TICKETS = { free: 2, pointsEach: 5 } as const;

/** Every factor stays within these bounds, so one noisy signal cannot dominate the score forever. */
export const FACTOR_MIN = -20;
export const FACTOR_MAX = 100;
/** A decayed factor smaller than this (in absolute value) is dropped: it no longer moves the rounded score. */
export const FACTOR_EPSILON = 0.5;

export function isDecayable(factor: string): boolean {
	return !DERIVED_FACTORS.has(factor);
}

export function hasDecayableFactor(factors: Factors): boolean {
	for (const name in factors) if (isDecayable(name)) return true;
	return false;
}

/** clamp(round(sum of factors), 0, 100). */
export function scoreOf(factors: Factors): number {
	let sum = 0;
	for (const name in factors) sum += factors[name];
	return clamp(Math.round(sum), 0, 100);
}

function clamp(v: number, lo: number, hi: number): number {
	return v < lo ? lo : v > hi ? hi : v;
}

function round2(v: number): number {
	return Math.round(v * 100) / 100;
}

function matches(cond: RuleCondition | undefined, data: EventData): boolean {
	if (cond === undefined) return true;
	const v = data[cond.field];
	if ("eq" in cond) return v === cond.eq;
	if ("in" in cond) return (typeof v === "string" || typeof v === "number") && cond.in.includes(v);
	if (typeof v !== "number") return false;
	return "lte" in cond ? v <= cond.lte : v >= cond.gte;
}

/**
 * Sets a factor to `value` clamped to [FACTOR_MIN, FACTOR_MAX]; 0 removes it. Returns `factors` itself when nothing
 * changes, else a copy (the input is never mutated).
 */
export function setFactor(factors: Factors, name: string, value: number): Factors {
	const v = clamp(round2(value), FACTOR_MIN, FACTOR_MAX);
	const present = Object.hasOwn(factors, name);
	if (v === 0) {
		if (!present) return factors;
		const next = { ...factors };
		delete next[name];
		return next;
	}
	if (present && factors[name] === v) return factors;
	return { ...factors, [name]: v };
}

/** Adds the points of every rule of `rules` that matches the event; returns `factors` itself when none fires. */
export function applyRiskRules(
	factors: Factors,
	type: EventType,
	data: EventData,
	fired?: FiredRule[],
	rules: readonly RiskRule[] = RISK_RULES
): Factors {
	let next = factors;
	for (const rule of rules) {
		if (rule.type !== type || !matches(rule.when, data)) continue;
		fired?.push({ file: BUILTIN_RULES_FILE, rule: rule.id, factor: rule.factor, points: rule.points });
		next = setFactor(next, rule.factor, (next[rule.factor] ?? 0) + rule.points);
	}
	return next;
}

/** Points of "tickets.open" for a number of open tickets. */
export function openTicketsPoints(openTickets: number): number {
	return Math.max(0, openTickets - OPEN_TICKETS.free) * OPEN_TICKETS.pointsEach;
}

/** Points of "churn.model": probability × weight, one decimal. */
export function churnPoints(probability: number, churnWeight: number): number {
	return Math.round(probability * churnWeight * 10) / 10;
}

/**
 * One inactivity decay step: every event-driven factor is multiplied by `keep` (0–1) and rounded to 2 decimals;
 * those under FACTOR_EPSILON in absolute value are dropped. Derived factors are kept as they are.
 */
export function decayFactors(factors: Factors, keep: number): Factors {
	const next: Factors = {};
	for (const name in factors) {
		const v = factors[name];
		if (!isDecayable(name)) {
			next[name] = v;
			continue;
		}
		const decayed = round2(v * keep);
		if (Math.abs(decayed) >= FACTOR_EPSILON) next[name] = decayed;
	}
	return next;
}
