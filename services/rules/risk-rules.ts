// Loads rules/risk.nools into the evaluator the customer actor calls in its turn: a rule table derived from the
// parsed file (default) or one long-lived nools session fired synchronously. One holder per node, swapped on reload.
import path from "node:path";
import type { Config } from "../../config/index.ts";
import type { RiskRulesEngine } from "../../config/automation.config.ts";
import type { EventData, EventType } from "../../models/cloud-event.ts";
import {
	applyDeltas,
	parseRiskAction,
	pinnedEventType,
	riskTableFn,
	type CompiledRiskRule,
	type FiredRule,
	type PointsDelta,
	type RiskEventFact,
	type RiskRulesFn
} from "../../actors/risk-rules.ts";
import type { Factors } from "../../actors/risk.ts";
import { compileCondition, lineInRule, loadRuleFile, parseCondition, RuleFileError, type LoadedRuleFile, type NoolsSession } from "./nools-loader.ts";

export const RISK_RULES_FILE = "risk.nools";

/** The fact class rules/risk.nools matches on (`e: RiskEvent …`). */
export class RiskEvent implements RiskEventFact {
	type: string;
	data: EventData;
	constructor(type: string, data: EventData) {
		this.type = type;
		this.data = data;
	}
}

export interface RiskRuleSummary {
	name: string;
	line: number;
	eventType?: string;
	deltas: readonly PointsDelta[];
}

export interface RiskRuleSet {
	file: string;
	engine: RiskRulesEngine;
	rules: RiskRuleSummary[];
	evaluate: RiskRulesFn;
	dispose(): void;
}

/**
 * Where addPoints() of a firing rule writes. Safe as a module variable only because the session is fired
 * synchronously (agenda.fireNext in a loop), never with the asynchronous session.match().
 */
let collecting: PointsDelta[] | null = null;
/** The lineage of the evaluation under way (same reasoning): the rule firing now, and where it reports. */
let firing: { file: string; rule: string; fired: FiredRule[] } | null = null;
const riskScope = {
	addPoints(factor: string, points: number): void {
		if (collecting === null) throw new Error("addPoints() called outside a risk rule evaluation");
		collecting.push({ factor, points });
		if (firing !== null) firing.fired.push({ file: firing.file, rule: firing.rule, factor, points });
	}
};

/** Loads and checks a risk rule file; throws RuleFileError (file, line, reason) when it does not compile. */
export function loadRiskRules(file: string, engine: RiskRulesEngine): RiskRuleSet {
	const loaded = loadRuleFile(file, { define: { RiskEvent }, scope: riskScope });
	// The score lineage names the file as an operator knows it: relative to the working directory when inside it.
	const relative = path.relative(process.cwd(), file);
	const lineageFile = relative.startsWith("..") || path.isAbsolute(relative) ? file : relative.split(path.sep).join("/");
	try {
		const table = compileTable(loaded);
		const rules = table.map(({ name, line, eventType, deltas }) => ({ name, line, eventType, deltas }));
		if (engine === "table") {
			// The table does not use the compiled flow; it was compiled only to prove the file is valid nools.
			loaded.dispose();
			return { file, engine, rules, evaluate: riskTableFn(table, lineageFile), dispose() {} };
		}
		return { file, engine, rules, ...sessionEvaluator(loaded, lineageFile) };
	} catch (err) {
		loaded.dispose();
		throw err;
	}
}

/** Checks every rule has the table's shape (one RiskEvent pattern, addPoints-only action) and compiles it. */
function compileTable(loaded: LoadedRuleFile): CompiledRiskRule[] {
	const { file } = loaded;
	if (loaded.parsed.define.length > 0 || loaded.parsed.scope.length > 0) {
		const what = loaded.parsed.define[0]?.name ?? loaded.parsed.scope[0]?.name;
		throw new RuleFileError(file, 1, `risk rules take no define/global/function blocks (found "${what}"): the actor evaluates them as a table`);
	}
	return loaded.rules.map(rule => {
		const patterns = rule.parsed.constraints ?? [];
		const pattern = patterns[0];
		if (patterns.length !== 1 || pattern[0] !== "RiskEvent" || typeof pattern[1] !== "string") {
			throw new RuleFileError(file, rule.line, `risk rule "${rule.name}" must have exactly one pattern, "e: RiskEvent <condition>"`);
		}
		if (pattern.length > 3 && pattern.slice(3).some(p => p !== null && p !== undefined)) {
			throw new RuleFileError(file, rule.line, `risk rule "${rule.name}": references and "from" are not allowed in risk rules`);
		}
		const opts = rule.parsed.options;
		if (opts.agendaGroup !== undefined || opts.autoFocus !== undefined) {
			throw new RuleFileError(file, rule.line, `risk rule "${rule.name}": agenda groups are not allowed in risk rules (every matching rule adds its points)`);
		}
		const alias = pattern[1];
		const condition = typeof pattern[2] === "string" ? pattern[2] : "true";
		const ast = parseCondition(condition);
		const deltas = parseRiskAction(rule.parsed.action ?? "");
		if (!Array.isArray(deltas)) throw new RuleFileError(file, rule.thenLine, `risk rule "${rule.name}": ${deltas.error}`);
		let matches: (fact: RiskEventFact) => boolean;
		try {
			matches = compileCondition(ast, alias);
		} catch (err) {
			throw new RuleFileError(file, lineInRule(rule, condition), `risk rule "${rule.name}": ${(err as Error).message}`);
		}
		return { name: rule.name, line: rule.line, eventType: pinnedEventType(ast, alias), matches, deltas };
	});
}

/**
 * One nools session for the node, kept across events: each event is asserted, the agenda is fired synchronously
 * and the fact retracted. (A fresh session per event rebuilds the Rete network and costs ~20× more.)
 */
function sessionEvaluator(loaded: LoadedRuleFile, file: string): Pick<RiskRuleSet, "evaluate" | "dispose"> {
	let session: NoolsSession = loaded.flow.getSession();
	const evaluate: RiskRulesFn = (factors: Factors, type: EventType, data: EventData, fired?: FiredRule[]) => {
		const fact = new RiskEvent(type, data);
		const deltas: PointsDelta[] = [];
		collecting = deltas;
		const lineage = fired === undefined ? null : { file, rule: "", fired };
		const firedBefore = fired?.length ?? 0;
		try {
			session.assert(fact);
			while (!session.agenda.isEmpty()) {
				if (lineage !== null) {
					// The activation about to fire names its rule: addPoints() reports under that name.
					lineage.rule = session.agenda.peek()?.rule?.name ?? "";
					firing = lineage;
				}
				session.agenda.fireNext();
			}
			session.retract(fact);
		} catch {
			// A condition that throws leaves the network half-updated: start over with a clean session, no deltas.
			session.dispose();
			session = loaded.flow.getSession();
			if (fired !== undefined) fired.length = firedBefore;
			return factors;
		} finally {
			collecting = null;
			firing = null;
		}
		return applyDeltas(factors, deltas);
	};
	return {
		evaluate,
		dispose() {
			session.dispose();
			loaded.dispose();
		}
	};
}

/** The node's current risk rules; the actor calls `evaluate`, which always reads the latest set. */
export class RiskRulesHolder {
	private set: RiskRuleSet;
	readonly file: string;
	readonly engine: RiskRulesEngine;
	readonly evaluate: RiskRulesFn;
	loadedAt: Date;

	constructor(file: string, engine: RiskRulesEngine) {
		this.file = file;
		this.engine = engine;
		this.set = loadRiskRules(file, engine);
		this.loadedAt = new Date();
		this.evaluate = (factors, type, data, fired) => this.set.evaluate(factors, type, data, fired);
	}

	get rules(): RiskRuleSummary[] {
		return this.set.rules;
	}

	/** Loads the file again; on an error the previous rules stay in force and the error is thrown. */
	reload(): RiskRuleSet {
		const next = loadRiskRules(this.file, this.engine);
		const previous = this.set;
		this.set = next;
		this.loadedAt = new Date();
		previous.dispose();
		return next;
	}

	dispose(): void {
		this.set.dispose();
	}
}

/** Holders by node (broker): the customers service evaluates with it, the rules service reloads it. */
const holders = new WeakMap<object, RiskRulesHolder>();

/** The node's risk rules, loaded on first use; a file that does not compile fails with file, line and reason. */
export function riskRulesFor(node: object, config: Config): RiskRulesHolder {
	let holder = holders.get(node);
	if (!holder) {
		holder = new RiskRulesHolder(path.join(config.automation.rulesDir, RISK_RULES_FILE), config.automation.riskRulesEngine);
		holders.set(node, holder);
	}
	return holder;
}
