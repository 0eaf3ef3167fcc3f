// The chaos run's report: per fault kind how often it struck and how long the cluster took to recover, the totals of
// the checker's verdict, as a markdown table (and the same as JSON). Pure.
import { FAULT_KINDS, type FaultKind } from "./schedule.ts";
import { SOURCES, violationCount, type Verdict } from "./checker.ts";

export interface FaultOutcome {
	index: number;
	kind: FaultKind;
	/** Node the fault was aimed at, when it was. */
	node?: string;
	/** What exactly was done (e.g. "partition nats+redis, hold, 5.2 s"). */
	detail: string;
	/** ms after the load began. */
	startedMs: number;
	/** From the fault (sigkill, join, restarts) or its heal (sigstop, delay, partition) until the cluster served again; null: not within the deadline. */
	recoveryMs: number | null;
}

export interface RunReport {
	seed: number;
	nodes: number;
	minutes: number;
	/** Length of the load phase as run (ms). */
	loadMs: number;
	faults: FaultOutcome[];
	verdict: Verdict;
	/** Valid events a node refused (a 4xx other than a retryable one). */
	rejected: number;
	/** Faults that did not recover within the deadline. */
	unrecovered: number;
	violations: number;
	/** Notes on the run (versions, limits). */
	notes: string[];
}

export function median(values: readonly number[]): number | null {
	if (values.length === 0) return null;
	const s = [...values].sort((a, b) => a - b);
	const mid = Math.floor(s.length / 2);
	return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const seconds = (ms: number | null) => (ms === null ? "–" : `${(ms / 1000).toFixed(1)} s`);

export function buildReport(input: Omit<RunReport, "unrecovered" | "violations">): RunReport {
	const unrecovered = input.faults.filter(f => f.recoveryMs === null).length;
	return { ...input, unrecovered, violations: violationCount(input.verdict) + unrecovered + input.rejected };
}

export function renderReport(r: RunReport): string {
	const lines: string[] = [];
	lines.push(`chaos run: seed=${r.seed}, ${r.nodes} nodes, ${r.minutes} min (load phase ${seconds(r.loadMs)})`, "");
	lines.push("| fault | count | recovered | recovery median | recovery max |", "|---|---:|---:|---:|---:|");
	for (const kind of FAULT_KINDS) {
		const of = r.faults.filter(f => f.kind === kind);
		const times = of.flatMap(f => (f.recoveryMs === null ? [] : [f.recoveryMs]));
		lines.push(`| ${kind} | ${of.length} | ${times.length} | ${seconds(median(times))} | ${seconds(times.length ? Math.max(...times) : null)} |`);
	}
	const v = r.verdict;
	lines.push("", "| events | count |", "|---|---:|");
	lines.push(`| acknowledged | ${v.acknowledged} |`);
	for (const s of SOURCES) lines.push(`| acknowledged via ${s} | ${v.perSource[s].acknowledged} |`);
	lines.push(`| applied (of this run's events) | ${v.applied} |`);
	lines.push(`| applied without an ack seen by the publisher | ${v.appliedUnacked} |`);
	lines.push(`| **lost** (acknowledged, not applied) | ${v.lost} |`);
	lines.push(`| **applied twice** | ${v.duplicates} |`);
	lines.push(`| **out of publish order** | ${v.outOfOrder} |`);
	lines.push(`| **state ≠ replay of its journal** | ${v.replayMismatches} |`);
	lines.push(`| **in a journal, never published** | ${v.unexpected} |`);
	lines.push(`| **valid events refused** | ${r.rejected} |`);
	lines.push(`| **faults not recovered** | ${r.unrecovered} |`);
	lines.push(`| customers | ${v.customers} |`);
	if (v.violations.length > 0) {
		lines.push("", "violations (first ones):");
		for (const x of v.violations) lines.push(`- ${x.kind} ${x.customerId}: ${x.detail}`);
	}
	for (const f of r.faults.filter(x => x.recoveryMs === null)) lines.push(`- fault #${f.index} ${f.kind} ${f.detail}: not recovered`);
	for (const n of r.notes) lines.push(`note: ${n}`);
	lines.push("", r.violations === 0 ? `OK: no violations (seed=${r.seed})` : `FAILED: ${r.violations} violations — replay with --seed ${r.seed} (seed=${r.seed})`);
	return lines.join("\n");
}
