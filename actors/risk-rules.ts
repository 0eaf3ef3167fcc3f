// Risk rules as a table compiled from rules/risk.nools: which event matches which rule, and the points each rule
// adds to a named factor. Pure and synchronous, so the actor evaluates it in its own turn (no session, no I/O).
import type { EventData, EventType } from "../models/cloud-event.ts";
import { setFactor, type Factors } from "./risk.ts";

/** The fact a risk rule sees: the event's type and its (validated) payload. */
export interface RiskEventFact {
	type: string;
	data: EventData;
}

export interface PointsDelta {
	factor: string;
	points: number;
}

export interface CompiledRiskRule {
	name: string;
	/** Line of the rule in its file, for logs. */
	line: number;
	/** When the rule's condition pins the event type, the rule is only tried for that type. */
	eventType?: string;
	/** The rule's condition; a throw (a field path through a missing object) counts as no match. */
	matches: (fact: RiskEventFact) => boolean;
	deltas: readonly PointsDelta[];
}

/** One rule that fired and what it added (score lineage): the rule file, the rule's name and its points per factor. */
export interface FiredRule {
	file: string;
	rule: string;
	factor: string;
	points: number;
}

/**
 * The hook the reducer calls for each fact-changing event: the factors after the event's rule deltas. When `fired` is
 * given, every rule that fired pushes one FiredRule per delta into it (the reducer's score lineage).
 */
export type RiskRulesFn = (factors: Factors, type: EventType, data: EventData, fired?: FiredRule[]) => Factors;

const ADD_POINTS = /^addPoints\(\s*(?:'([^'\\]{1,64})'|"([^"\\]{1,64})")\s*,\s*(-?\d{1,3}(?:\.\d{1,2})?)\s*\)$/;
const FACTOR_NAME = /^[A-Za-z][A-Za-z0-9_.:-]*$/;

/**
 * Reads a risk rule's action: only `addPoints('factor', points);` statements are allowed, which is what makes the
 * table equivalent to running the rule in a nools session. Returns the deltas, or a reason.
 */
export function parseRiskAction(action: string): PointsDelta[] | { error: string } {
	const body = action.replace(/\/\/[^\n]*/g, "").replace(/\/\*[\s\S]*?\*\//g, "");
	const statements = body.split(";").map(s => s.trim()).filter(s => s.length > 0);
	if (statements.length === 0) return { error: "the action is empty: expected addPoints('factor', points);" };
	const deltas: PointsDelta[] = [];
	for (const statement of statements) {
		const m = ADD_POINTS.exec(statement);
		if (!m) return { error: `only addPoints('factor', points); is allowed in a risk rule's action, found "${statement.slice(0, 80)}"` };
		const factor = m[1] ?? m[2];
		if (!FACTOR_NAME.test(factor)) return { error: `invalid factor name "${factor}" (letters, digits, . _ : -)` };
		const points = Number(m[3]);
		if (points === 0) return { error: `addPoints('${factor}', 0) does nothing` };
		deltas.push({ factor, points });
	}
	return deltas;
}

/**
 * Applies a set of deltas: summed per factor first, then each factor is set once (clamped by setFactor), so the
 * result does not depend on the order in which rules fired. Returns `factors` itself when nothing changes.
 */
export function applyDeltas(factors: Factors, deltas: readonly PointsDelta[]): Factors {
	if (deltas.length === 0) return factors;
	if (deltas.length === 1) {
		const d = deltas[0];
		return setFactor(factors, d.factor, (factors[d.factor] ?? 0) + d.points);
	}
	const sums = new Map<string, number>();
	for (const d of deltas) sums.set(d.factor, (sums.get(d.factor) ?? 0) + d.points);
	let next = factors;
	for (const [factor, points] of sums) next = setFactor(next, factor, (next[factor] ?? 0) + points);
	return next;
}

/**
 * Deltas of every rule of the table that matches the event, in table order; with `fired`, each also as a FiredRule
 * of `file`.
 */
export function matchingDeltas(rules: readonly CompiledRiskRule[], fact: RiskEventFact, file = "", fired?: FiredRule[]): PointsDelta[] {
	const out: PointsDelta[] = [];
	for (const rule of rules) {
		if (rule.eventType !== undefined && rule.eventType !== fact.type) continue;
		let hit = false;
		try {
			hit = rule.matches(fact);
		} catch {
			hit = false;
		}
		if (!hit) continue;
		for (const d of rule.deltas) {
			out.push(d);
			fired?.push({ file, rule: rule.name, factor: d.factor, points: d.points });
		}
	}
	return out;
}

/**
 * The reducer hook for a compiled table: rules bucketed by event type once, then matched per event. `file` names the
 * rule file in the score lineage.
 */
export function riskTableFn(rules: readonly CompiledRiskRule[], file = ""): RiskRulesFn {
	const byType = new Map<string, CompiledRiskRule[]>();
	const anyType: CompiledRiskRule[] = [];
	for (const rule of rules) {
		if (rule.eventType === undefined) anyType.push(rule);
		else {
			const list = byType.get(rule.eventType);
			if (list) list.push(rule);
			else byType.set(rule.eventType, [rule]);
		}
	}
	return (factors, type, data, fired) => {
		const typed = byType.get(type);
		if (typed === undefined && anyType.length === 0) return factors;
		const fact: RiskEventFact = { type, data };
		const deltas = typed ? matchingDeltas(typed, fact, file, fired) : [];
		if (anyType.length > 0) for (const d of matchingDeltas(anyType, fact, file, fired)) deltas.push(d);
		return applyDeltas(factors, deltas);
	};
}

/**
 * The event type a condition pins, if any: a top-level conjunct `alias.type == '<type>'` of the parsed condition
 * (nools' AST: [lhs, rhs, op] nodes). Under an `||` nothing is pinned.
 */
export function pinnedEventType(ast: unknown, alias: string): string | undefined {
	const conjuncts: unknown[] = [];
	const walk = (node: unknown): void => {
		if (!Array.isArray(node)) return;
		if (node[2] === "and") {
			walk(node[0]);
			walk(node[1]);
		} else if (node[2] === "composite") {
			walk(node[0]);
		} else {
			conjuncts.push(node);
		}
	};
	walk(ast);
	for (const c of conjuncts) {
		if (!Array.isArray(c) || (c[2] !== "eq" && c[2] !== "seq")) continue;
		const [lhs, rhs] = c as [unknown, unknown];
		const type = isTypeProp(lhs, alias) ? stringLiteral(rhs) : isTypeProp(rhs, alias) ? stringLiteral(lhs) : undefined;
		if (type !== undefined) return type;
	}
	return undefined;
}

function isTypeProp(node: unknown, alias: string): boolean {
	if (!Array.isArray(node) || node[2] !== "prop") return false;
	const [obj, prop] = node as [unknown, unknown];
	return Array.isArray(obj) && obj[2] === "identifier" && obj[0] === alias
		&& Array.isArray(prop) && prop[2] === "identifier" && prop[0] === "type";
}

function stringLiteral(node: unknown): string | undefined {
	return Array.isArray(node) && node[2] === "string" && typeof node[0] === "string" ? node[0] : undefined;
}
