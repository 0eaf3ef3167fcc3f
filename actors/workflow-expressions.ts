// BPMN expressions for the embedded engine: Camunda-style `${stage == 'PROPOSAL'}` over the process variables,
// evaluated by filtrex (a safe evaluator, no eval). bpmn-engine's own handler only resolves paths, so without
// this a condition like that is silently false.
import { compileExpression } from "filtrex";

/** The expressions handler interface of bpmn-elements (Environment option `expressions`). */
export interface ExpressionsHandler {
	resolveExpression(expression: string, context?: unknown, fnContext?: unknown): unknown;
	isExpression(text: string): boolean;
	hasExpression(text: string): boolean;
}

/** A broken or unresolvable expression; the activity that evaluated it fails with this message. */
export class ExpressionError extends Error {
	override name = "ExpressionError";
	readonly expression: string;
	constructor(expression: string, reason: string) {
		super(`expression \${${expression}}: ${reason}`);
		this.expression = expression;
	}
}

/** Process variables the engine keeps next to the user's; never part of an expression's data. */
export const ENGINE_KEYS: ReadonlySet<string> = new Set(["fields", "content", "properties"]);

/** Paths into the engine's own objects; these keep bpmn-engine's default resolution (services, content, …). */
const ENGINE_PATH = /^\s*(environment|content|properties|fields)\s*[.[]/;

const JUEL_WORD_OPS: Record<string, string> = { eq: "==", ne: "!=", lt: "<", gt: ">", le: "<=", ge: ">=", and: "and", or: "or", not: "not" };

/**
 * Rewrites a JUEL-style expression (as Camunda 7 reads it) into filtrex syntax: 'single' or "double" quoted
 * strings become filtrex strings, && || ! become and or not, eq/ne/lt/gt/le/ge become operators. Identifiers,
 * numbers, true/false/null and comparison operators pass through.
 */
export function juelToFiltrex(expr: string): string {
	let out = "";
	let i = 0;
	while (i < expr.length) {
		const c = expr[i];
		if (c === "'" || c === '"') {
			let j = i + 1;
			let value = "";
			while (j < expr.length && expr[j] !== c) {
				if (expr[j] === "\\" && j + 1 < expr.length) {
					value += expr[j + 1];
					j += 2;
					continue;
				}
				value += expr[j];
				j++;
			}
			if (j >= expr.length) throw new ExpressionError(expr, "unterminated string");
			out += `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
			i = j + 1;
			continue;
		}
		if (expr.startsWith("&&", i)) {
			out += " and ";
			i += 2;
			continue;
		}
		if (expr.startsWith("||", i)) {
			out += " or ";
			i += 2;
			continue;
		}
		if (c === "!" && expr[i + 1] !== "=") {
			out += " not ";
			i++;
			continue;
		}
		const word = /^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*/.exec(expr.slice(i));
		if (word) {
			const w = word[0];
			out += JUEL_WORD_OPS[w] !== undefined ? ` ${JUEL_WORD_OPS[w]} ` : w;
			i += w.length;
			continue;
		}
		out += c;
		i++;
	}
	return out.replace(/\s+/g, " ").trim();
}

type Compiled = (data: unknown) => unknown;
const CONSTANTS = { true: true, false: false, null: null };
const cache = new Map<string, Compiled>();

/** Dotted names walk own properties only (never the prototype), so `a.constructor` cannot escape the sandbox. */
function dottedProp(name: string, get: (n: string) => unknown, _obj: unknown, type: string): unknown {
	if (type === "single-quoted") return get(name);
	const parts = name.split(".");
	let value = get(parts[0]);
	if (value === undefined) throw new Error(`unknown variable "${parts[0]}"`);
	for (let k = 1; k < parts.length; k++) {
		if (value === null || typeof value !== "object" || !Object.hasOwn(value, parts[k])) {
			throw new Error(`"${parts.slice(0, k).join(".")}" has no property "${parts[k]}"`);
		}
		value = (value as Record<string, unknown>)[parts[k]];
	}
	return value;
}

/** Compiles (and caches) one expression; throws ExpressionError on a syntax error. */
export function compileJuel(expr: string): Compiled {
	const hit = cache.get(expr);
	if (hit) return hit;
	let fn: Compiled;
	try {
		fn = compileExpression(juelToFiltrex(expr), { constants: CONSTANTS, customProp: dottedProp }) as Compiled;
	} catch (err) {
		if (err instanceof ExpressionError) throw err;
		const message = (err as Error).message.split("\n").filter(l => /Expecting|Unexpected|Parse error|Lexical/.test(l)).pop() ?? (err as Error).message;
		throw new ExpressionError(expr, `syntax error: ${message.trim()}`);
	}
	if (cache.size > 1000) cache.clear();
	cache.set(expr, fn);
	return fn;
}

/** Evaluates an expression over variables; an unknown variable or a type error throws ExpressionError. */
export function evaluateJuel(expr: string, variables: Record<string, unknown>): unknown {
	const data: Record<string, unknown> = {};
	for (const key of Object.keys(variables)) if (!ENGINE_KEYS.has(key)) data[key] = variables[key];
	let result: unknown;
	try {
		result = compileJuel(expr)(data);
	} catch (err) {
		if (err instanceof ExpressionError) throw err;
		throw new ExpressionError(expr, (err as Error).message);
	}
	if (result instanceof Error) throw new ExpressionError(expr, result.message.replace(/[“”]/g, '"'));
	return result;
}

/** Start/end offsets of each `${…}` in a string, skipping quoted `}` inside. */
function expressionSpans(text: string): { start: number; end: number; inner: string }[] {
	const spans: { start: number; end: number; inner: string }[] = [];
	let i = text.indexOf("${");
	while (i >= 0) {
		let j = i + 2;
		let quote: string | null = null;
		for (; j < text.length; j++) {
			const c = text[j];
			if (quote) {
				if (c === "\\") j++;
				else if (c === quote) quote = null;
			} else if (c === "'" || c === '"') quote = c;
			else if (c === "}") break;
		}
		if (j >= text.length) break;
		spans.push({ start: i, end: j + 1, inner: text.slice(i + 2, j) });
		i = text.indexOf("${", j + 1);
	}
	return spans;
}

function variablesOf(context: unknown): Record<string, unknown> {
	const env = (context as { environment?: { variables?: Record<string, unknown> } } | undefined)?.environment;
	return env?.variables ?? {};
}

/**
 * The engine's expression handler: `${environment.…}` / `${content.…}` paths keep the default (`fallback`);
 * anything else is a JUEL-style expression over the process variables. A string that is one expression
 * returns its value; a template returns the string with each expression's value put in.
 */
export function createExpressions(fallback: ExpressionsHandler): ExpressionsHandler {
	const evaluate = (inner: string, context: unknown, fnContext: unknown): unknown =>
		ENGINE_PATH.test(inner) ? fallback.resolveExpression(`\${${inner}}`, context, fnContext) : evaluateJuel(inner.trim(), variablesOf(context));
	return {
		resolveExpression(expression: string, context?: unknown, fnContext?: unknown): unknown {
			if (typeof expression !== "string") return expression;
			const spans = expressionSpans(expression);
			if (spans.length === 0) return expression;
			if (spans.length === 1 && spans[0].start === 0 && spans[0].end === expression.length) {
				return evaluate(spans[0].inner, context, fnContext);
			}
			let out = "";
			let at = 0;
			for (const s of spans) {
				const value = evaluate(s.inner, context, fnContext);
				out += expression.slice(at, s.start) + (value === undefined || value === null ? "" : String(value));
				at = s.end;
			}
			return out + expression.slice(at);
		},
		isExpression(text: string): boolean {
			if (typeof text !== "string") return false;
			const spans = expressionSpans(text);
			return spans.length === 1 && spans[0].start === 0 && spans[0].end === text.length;
		},
		hasExpression(text: string): boolean {
			return typeof text === "string" && expressionSpans(text).length > 0;
		}
	};
}
