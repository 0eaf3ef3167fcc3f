// Loads a *.nools rule file: parses and compiles it with nools and turns nools' location-less errors into
// "file:line: reason". Rule files are trusted code (nools compiles them to JavaScript), never request input.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import vm from "node:vm";

const require = createRequire(import.meta.url);

/** A condition as nools' constraint parser returns it: [lhs, rhs, operator] nodes. */
export type ConditionAst = [unknown, unknown, string];

/** One pattern of a parsed rule: [Type, alias, condition?, references?, from?], or ["not" | "exists", ...pattern], or ["or", ...patterns]. */
export type ParsedPattern = unknown[];

export interface ParsedRule {
	name: string;
	options: { priority?: number; agendaGroup?: string; autoFocus?: boolean };
	constraints: ParsedPattern[] | null;
	action: string | null;
}

export interface ParsedFlow {
	define: { name: string; properties: string }[];
	rules: ParsedRule[];
	scope: { name: string; body: string }[];
	loaded: string[];
	file?: string;
}

/** The part of a compiled nools flow (FlowContainer) used here. */
export interface NoolsFlow {
	name: string;
	getSession(...facts: object[]): NoolsSession;
}

export interface NoolsSession {
	assert(fact: object): object;
	retract(fact: object): object;
	modify(fact: object, cb?: (this: object) => void): object;
	match(): Promise<void>;
	dispose(): void;
	halt(): void;
	on(event: "fire", listener: (ruleName: string) => void): void;
	agenda: { isEmpty(): boolean; fireNext(): unknown; peek(): { rule?: { name?: string } } | undefined };
}

interface NoolsModule {
	parse(source: string, file?: string): ParsedFlow;
	compile(flow: ParsedFlow, options: { name: string; define?: Record<string, unknown>; scope?: Record<string, unknown> }): NoolsFlow;
	deleteFlow(name: string): unknown;
}

const nools = require("nools") as NoolsModule;
const constraintParser = require("nools/lib/parser/constraint/parser.js") as { parse(src: string): ConditionAst };
const constraintMatcher = require("nools/lib/constraintMatcher.js") as {
	getMatcher(ast: ConditionAst, options: { alias: string; scope: Record<string, unknown> }, equality: true): (facts: Record<string, unknown>) => boolean;
	getIdentifiers(ast: ConditionAst): string[];
};

/** A rule file that cannot be loaded; `message` is "file:line: reason". */
export class RuleFileError extends Error {
	override name = "RuleFileError";
	readonly file: string;
	readonly line: number;
	readonly reason: string;
	constructor(file: string, line: number, reason: string) {
		super(`${displayPath(file)}:${line}: ${reason}`);
		this.file = file;
		this.line = line;
		this.reason = reason;
	}
}

function displayPath(file: string): string {
	const rel = path.relative(process.cwd(), file);
	return rel.startsWith("..") ? file : rel;
}

/** A top-level block of a rule file (rule, define, function, global, import) and where it starts. */
export interface SourceBlock {
	kind: string;
	name: string;
	/** Offsets into the source: [start, end). */
	start: number;
	end: number;
	line: number;
}

export interface RuleInfo {
	name: string;
	line: number;
	/** Line where the rule's `then` block starts. */
	thenLine: number;
	/** The action as written (nools' parser flattens newlines). */
	actionSource: string | null;
	/** The rule's whole text as written. */
	text: string;
	parsed: ParsedRule;
}

export interface LoadedRuleFile {
	file: string;
	source: string;
	parsed: ParsedFlow;
	rules: RuleInfo[];
	flow: NoolsFlow;
	/** Forgets the compiled flow (nools keeps every flow in a global registry by name). */
	dispose(): void;
}

export interface LoadOptions {
	/** Fact classes the rules may use, by name. */
	define?: Record<string, unknown>;
	/** Functions and values the rules' conditions and actions may use, by name. */
	scope?: Record<string, unknown>;
}

const KNOWN_BUILTIN_TYPES = ["Array", "String", "Number", "Boolean", "RegExp", "Date", "Object", "Buffer"];
let flowCounter = 0;

/** Reads, parses and compiles a rule file; throws RuleFileError with the file, line and reason on any problem. */
export function loadRuleFile(file: string, opts: LoadOptions = {}): LoadedRuleFile {
	let source: string;
	try {
		source = readFileSync(file, "utf8");
	} catch (err) {
		throw new RuleFileError(file, 0, `cannot read the rule file: ${(err as Error).message}`);
	}
	return compileRuleSource(source, file, opts);
}

/** Same as loadRuleFile for a source already in memory (`file` names it in errors). */
export function compileRuleSource(source: string, file: string, opts: LoadOptions = {}): LoadedRuleFile {
	const blocks = scanBlocks(source, file);
	let parsed: ParsedFlow;
	try {
		parsed = nools.parse(source, file);
	} catch (err) {
		throw locateParseError(source, file, blocks, err);
	}
	const ruleBlocks = blocks.filter(b => b.kind === "rule");
	const rules: RuleInfo[] = parsed.rules.map((rule, i) => {
		const block = ruleBlocks[i];
		const text = block ? source.slice(block.start, block.end) : "";
		const then = block ? findBodyAfter(text, "then") : null;
		return {
			name: rule.name,
			line: block?.line ?? 1,
			thenLine: block && then ? block.line + countLines(text.slice(0, then.start)) : block?.line ?? 1,
			actionSource: then ? text.slice(then.start + 1, then.end - 1) : null,
			text,
			parsed: rule
		};
	});
	checkRules(rules, parsed, file, opts);

	const name = `${path.basename(file, ".nools")}#${++flowCounter}`;
	let flow: NoolsFlow;
	try {
		flow = nools.compile(parsed, { name, define: opts.define, scope: opts.scope });
	} catch (err) {
		nools.deleteFlow(name);
		const message = cleanNoolsMessage(err);
		const rule = rules.find(r => message.includes(`rule ${r.name}`) || message.includes(`for rule ${r.name}`));
		throw new RuleFileError(file, rule?.line ?? 1, message);
	}
	return { file, source, parsed, rules, flow, dispose: () => void nools.deleteFlow(name) };
}

/** Parses one condition with nools' grammar; throws Error with the parser's own message on a syntax error. */
export function parseCondition(condition: string): ConditionAst {
	return constraintParser.parse(condition);
}

/** Compiles a parsed condition over one aliased fact into a predicate, as nools does for its alpha nodes. */
export function compileCondition(ast: ConditionAst, alias: string, scope: Record<string, unknown> = {}): (fact: object) => boolean {
	const matcher = constraintMatcher.getMatcher(ast, { alias, scope }, true);
	return fact => matcher({ [alias]: fact });
}

/** Identifiers a condition refers to (aliases, scope names). */
export function conditionIdentifiers(ast: ConditionAst): string[] {
	return constraintMatcher.getIdentifiers(ast);
}

/** Patterns of a rule's `when`, flattened out of not/exists/or wrappers. */
function patternsOf(constraints: ParsedPattern[]): ParsedPattern[] {
	const out: ParsedPattern[] = [];
	for (const c of constraints) {
		const head = c[0];
		if (head === "not" || head === "exists") out.push(c.slice(1));
		else if (head === "or") out.push(...patternsOf(c.slice(1) as ParsedPattern[]));
		else out.push(c);
	}
	return out;
}

function checkRules(rules: RuleInfo[], parsed: ParsedFlow, file: string, opts: LoadOptions): void {
	const types = new Set([...KNOWN_BUILTIN_TYPES, ...Object.keys(opts.define ?? {}), ...parsed.define.map(d => d.name)]);
	const seen = new Map<string, number>();
	for (const rule of rules) {
		const first = seen.get(rule.name);
		if (first !== undefined) throw new RuleFileError(file, rule.line, `rule "${rule.name}" is already defined on line ${first}`);
		seen.set(rule.name, rule.line);
		if (rule.parsed.action === null || rule.actionSource === null) throw new RuleFileError(file, rule.line, `rule "${rule.name}" has no then { … } block`);
		for (const pattern of patternsOf(rule.parsed.constraints ?? [])) {
			const [type, alias, condition, ...rest] = pattern;
			if (typeof type !== "string" || !types.has(type)) {
				throw new RuleFileError(file, rule.line, `rule "${rule.name}": unknown fact type "${String(type)}" (known: ${[...types].filter(t => !KNOWN_BUILTIN_TYPES.includes(t)).join(", ") || "none"})`);
			}
			const from = [condition, ...rest].find(p => typeof p === "string" && /^from\b/.test(p));
			if (from !== undefined) {
				// nools crashes on `from x.prop` when the property is null; rules here get their collections as facts.
				throw new RuleFileError(file, lineInRule(rule, String(from)), `rule "${rule.name}": "from" is not supported (it crashes when the property is null); assert the items as facts instead`);
			}
			if (typeof condition === "string") {
				try {
					parseCondition(condition);
				} catch (err) {
					const detail = (err as Error).message.split("\n").filter(l => /Expecting|Unexpected|Lexical|Parse error/i.test(l)).pop() ?? (err as Error).message;
					throw new RuleFileError(file, lineInRule(rule, condition), `rule "${rule.name}": invalid condition for ${String(alias)} "${condition}": ${detail.trim()}`);
				}
			}
		}
		checkActionSyntax(rule, file);
	}
}

/** A syntax error in an action, with the line it is on (nools itself would only say "Invalid action"). */
function checkActionSyntax(rule: RuleInfo, file: string): void {
	try {
		// Wrapped as a function body, as nools compiles it; lineOffset puts the error on the file's line.
		new vm.Script(`(function () {${rule.actionSource}\n})`, { filename: file, lineOffset: rule.thenLine - 1 });
	} catch (err) {
		if (!(err instanceof SyntaxError)) throw err;
		const m = /:(\d+)\r?\n/.exec(err.stack ?? "");
		const line = m ? Number(m[1]) : rule.thenLine;
		throw new RuleFileError(file, line, `rule "${rule.name}": syntax error in then { … }: ${err.message}`);
	}
}

/** The file line of a snippet of a rule (matched with whitespace collapsed), else the rule's own line. */
export function lineInRule(rule: RuleInfo, snippet: string): number {
	return rule.line + locateInText(rule.text, snippet);
}

/** Cuts nools' messages down to the reason: it appends the whole rest of the file after "starting at". */
function cleanNoolsMessage(err: unknown): string {
	const raw = err instanceof Error ? err.message : String(err);
	const cut = raw.split(/;?\s*\n?starting at\s*:/)[0];
	return cut.replace(/\s+/g, " ").replace(/[;\s]+$/, "").trim();
}

function locateParseError(source: string, file: string, blocks: SourceBlock[], err: unknown): RuleFileError {
	const message = cleanNoolsMessage(err);
	for (const block of blocks) {
		const text = source.slice(block.start, block.end);
		try {
			nools.parse(text, file);
		} catch (blockErr) {
			const reason = cleanNoolsMessage(blockErr);
			const m = /Invalid constraint (.+)$/.exec(reason) ?? /Error parsing (.+)$/.exec(reason);
			const line = m ? block.line + locateInText(text, m[1]) : block.line;
			return new RuleFileError(file, line, reason.length > 300 ? `${reason.slice(0, 300)}…` : reason);
		}
	}
	return new RuleFileError(file, 1, message.length > 300 ? `${message.slice(0, 300)}…` : message);
}

/** Lines from the start of `text` to the first occurrence of `snippet` (whitespace-insensitive); 0 when not found. */
function locateInText(text: string, snippet: string): number {
	const want = snippet.replace(/\s+/g, " ").trim().slice(0, 24);
	if (want.length === 0) return 0;
	const lines = text.split("\n");
	for (let i = 0; i < lines.length; i++) {
		if (lines[i].replace(/\s+/g, " ").includes(want)) return i;
	}
	// The snippet may span lines: fall back to its first word.
	const word = want.split(" ")[0];
	for (let i = 0; i < lines.length; i++) if (word && lines[i].includes(word)) return i;
	return 0;
}

function countLines(text: string): number {
	let n = 0;
	for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) n++;
	return n;
}

/**
 * Splits a rule file into its top-level blocks with their line numbers, skipping comments and strings, so an
 * error nools reports without a location can be pinned to the block (and line) it comes from.
 */
export function scanBlocks(source: string, file = "<source>"): SourceBlock[] {
	const blocks: SourceBlock[] = [];
	let i = 0;
	const n = source.length;
	while (i < n) {
		i = skipSpaceAndComments(source, i);
		if (i >= n) break;
		const start = i;
		const word = /^[A-Za-z_$][\w$-]*/.exec(source.slice(i, i + 64));
		const kind = word ? word[0] : source[i];
		let end: number;
		let name = "";
		if (kind === "rule" || kind === "define" || kind === "function") {
			const open = findChar(source, start + kind.length, "{");
			if (open < 0) {
				end = n;
			} else {
				name = source.slice(start + kind.length, open).trim().replace(/\(.*$/s, "").replace(/^["']|["']$/g, "");
				end = matchBrace(source, open);
				if (end < 0) throw new RuleFileError(file, lineAt(source, start), `${kind} ${name}: missing closing "}"`);
			}
		} else if (kind === "global" || kind === "import") {
			const semi = findChar(source, start, ";");
			end = semi < 0 ? n : semi + 1;
			name = source.slice(start + kind.length, end).trim().split(/[\s=(]/)[0];
		} else {
			const eol = source.indexOf("\n", start);
			end = eol < 0 ? n : eol;
		}
		blocks.push({ kind, name, start, end, line: lineAt(source, start) });
		i = end;
	}
	return blocks;
}

function lineAt(source: string, offset: number): number {
	return countLines(source.slice(0, offset)) + 1;
}

function skipSpaceAndComments(s: string, i: number): number {
	for (;;) {
		while (i < s.length && /\s/.test(s[i])) i++;
		if (s.startsWith("//", i)) {
			const eol = s.indexOf("\n", i);
			i = eol < 0 ? s.length : eol + 1;
		} else if (s.startsWith("/*", i)) {
			const close = s.indexOf("*/", i + 2);
			i = close < 0 ? s.length : close + 2;
		} else {
			return i;
		}
	}
}

/** Index of the next `ch` outside strings and comments, or -1. */
function findChar(s: string, from: number, ch: string): number {
	let i = from;
	while (i < s.length) {
		const c = s[i];
		if (c === ch) return i;
		if (c === "'" || c === '"' || c === "`") i = skipString(s, i);
		else if (s.startsWith("//", i) || s.startsWith("/*", i)) i = skipSpaceAndComments(s, i);
		else i++;
	}
	return -1;
}

/** Index just past the `}` matching the `{` at `open`, or -1. */
function matchBrace(s: string, open: number): number {
	let depth = 0;
	let i = open;
	while (i < s.length) {
		const c = s[i];
		if (c === "{") depth++;
		else if (c === "}") {
			depth--;
			if (depth === 0) return i + 1;
		}
		if (c === "'" || c === '"' || c === "`") {
			i = skipString(s, i);
			continue;
		}
		if (s.startsWith("//", i) || s.startsWith("/*", i)) {
			i = skipSpaceAndComments(s, i);
			continue;
		}
		i++;
	}
	return -1;
}

function skipString(s: string, i: number): number {
	const quote = s[i];
	i++;
	while (i < s.length && s[i] !== quote) {
		if (s[i] === "\\") i++;
		if (quote !== "`" && s[i] === "\n") return i;
		i++;
	}
	return i + 1;
}

/** The `{ … }` body after a keyword inside a block's text (e.g. `then`), as offsets [start, end) including braces. */
export function findBodyAfter(text: string, keyword: string): { start: number; end: number } | null {
	const re = new RegExp(`\\b${keyword}\\s*\\{`, "g");
	let m: RegExpExecArray | null;
	while ((m = re.exec(text)) !== null) {
		const open = m.index + m[0].length - 1;
		const end = matchBrace(text, open);
		if (end > 0) return { start: open, end };
	}
	return null;
}
