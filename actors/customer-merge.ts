// Customer merge as actor turns (docs/merge.md): the pure steps of the protocol (intent and abort on the survivor,
// seal on the merged customer, absorb on the survivor) and the merge rule of two states. No I/O, no clock: the
// service drives the steps (services/customer-merge.ts), each one a message through one actor's mailbox, persisted
// with a compare-and-set like any event.
import type { ChangeRecord, FactorDelta, MergeCause, RiskChange } from "../models/change-record.ts";
import type { CustomerCounters, CustomerState, MarketSummary, ProfileValue, RiskState } from "../models/customer-state.ts";
import type { MergeRefusal, MergeReply } from "../models/contract/customers.contract.ts";
import type { Effect, MergeMessage, ReduceContext, ReduceResult } from "./customer-actor.types.ts";
import { LIMITS, REMINDER_RISK_DECAY } from "./customer.reducer.ts";
import { churnPoints, FACTOR_CHURN_MODEL, FACTOR_TICKETS_OPEN, hasDecayableFactor, isDecayable, openTicketsPoints, scoreOf, setFactor } from "./risk.ts";
import type { Factors } from "./risk.ts";

/** The journal key of a merge step's entry: the step and the other customer (`merge.absorb/B`). */
export function mergeEntryKey(msg: MergeMessage): string {
	return `${msg.kind}/${msg.kind === "merge.seal" ? msg.into : msg.from}`;
}

/** Steps that change nothing answer with the state as it is (no version bump, nothing to persist). */
function unchanged(state: CustomerState, merge: MergeReply): ReduceResult {
	return { state, effects: [], applied: false, change: null, merge };
}

function refused(state: CustomerState, code: MergeRefusal, extra: Partial<MergeReply> = {}): ReduceResult {
	return unchanged(state, { status: "refused", code, ...extra });
}

/** The state fields a change record lists (as the reducer's, plus the merge marks). */
const RECORDED_FIELDS = [
	"createdAt", "lastActivityAt", "profile", "counters", "openTicketIds", "orderStatus", "telemetry", "lastSentiment",
	"risk", "churnProbability", "reminders", "market", "mergedInto", "mergingFrom", "aliases"
] as const satisfies ReadonlyArray<keyof CustomerState>;

function done(before: CustomerState, state: CustomerState, msg: MergeMessage, effects: Effect[] = []): ReduceResult {
	const fields: string[] = [];
	for (const f of RECORDED_FIELDS) if (before[f] !== state[f]) fields.push(f);
	const step = msg.kind.slice("merge.".length) as "intent" | "abort" | "seal" | "absorb";
	const cause = msg.kind === "merge.seal" ? { merge: { step, into: msg.into } } : { merge: { step, from: msg.from } };
	const change: ChangeRecord = { version: state.version, cause, fields };
	if (before.risk.factors !== state.risk.factors && msg.kind === "merge.absorb") change.risk = riskChange(before.risk, state.risk, msg.from);
	return { state, effects, applied: true, change, merge: { status: "done" } };
}

/** Score before and after the absorb, each moved factor put down to the merge. */
function riskChange(before: RiskState, after: RiskState, from: string): RiskChange {
	const cause: MergeCause = { kind: "merge", from };
	const lineage: FactorDelta[] = [];
	for (const factor of Object.keys(after.factors)) {
		const delta = Math.round((after.factors[factor] - (before.factors[factor] ?? 0)) * 100) / 100;
		if (delta !== 0) lineage.push({ factor, delta, cause });
	}
	for (const factor of Object.keys(before.factors)) {
		if (!Object.hasOwn(after.factors, factor)) lineage.push({ factor, delta: -before.factors[factor], cause });
	}
	return { old: before.score, new: after.score, lineage };
}

/** One merge step on one actor. A sealed actor refuses every step but a repeated seal into the same survivor. */
export function reduceMerge(state: CustomerState, msg: MergeMessage, ctx: ReduceContext): ReduceResult {
	const sealedInto = state.mergedInto;
	switch (msg.kind) {
		case "merge.intent": {
			if (state.version === 0) return refused(state, "CUSTOMER_NOT_FOUND");
			if (sealedInto !== undefined) return refused(state, "CUSTOMER_MERGED", { mergedInto: sealedInto });
			if (msg.from === state.id) return refused(state, "INVALID_MERGE");
			if (state.aliases?.includes(msg.from)) return unchanged(state, { status: "already" });
			// The same intent again (a retried request, a completion after a crash): it stands, go on with it.
			if (state.mergingFrom === msg.from) return unchanged(state, { status: "done", mergingFrom: msg.from });
			if (state.mergingFrom !== undefined) return refused(state, "MERGE_IN_PROGRESS", { mergingFrom: state.mergingFrom });
			return done(state, { ...state, version: state.version + 1, mergingFrom: msg.from }, msg);
		}
		case "merge.abort": {
			if (state.mergingFrom !== msg.from) return unchanged(state, { status: "already" });
			const next = { ...state, version: state.version + 1 };
			delete next.mergingFrom;
			return done(state, next, msg);
		}
		case "merge.seal": {
			if (sealedInto === msg.into) return unchanged(state, { status: "already", mergedInto: sealedInto });
			if (state.version === 0) return refused(state, "CUSTOMER_NOT_FOUND");
			if (sealedInto !== undefined) return refused(state, "CUSTOMER_MERGED", { mergedInto: sealedInto });
			if (msg.into === state.id || state.aliases?.includes(msg.into)) return refused(state, "INVALID_MERGE");
			// A survivor of an unfinished merge is not sealed: its absorb must land first (no chain is left half done).
			if (state.mergingFrom !== undefined) return refused(state, "MERGE_IN_PROGRESS", { mergingFrom: state.mergingFrom });
			// The risk moves to sealedRisk and the reminders go: the sealed customer leaves the risk listing and gets
			// no more decay steps; its counters, windows and profile stay for the absorb to read.
			return done(state, { ...state, version: state.version + 1, risk: { score: 0, factors: {} }, reminders: {}, mergedInto: msg.into, sealedRisk: state.risk }, msg);
		}
		case "merge.absorb": {
			if (sealedInto !== undefined) return refused(state, "CUSTOMER_MERGED", { mergedInto: sealedInto });
			if (state.aliases?.includes(msg.from)) return unchanged(state, { status: "already" });
			if (msg.absorbed.mergedInto === undefined || msg.absorbed.id !== msg.from) return refused(state, "NOT_SEALED");
			if (state.version === 0) return refused(state, "CUSTOMER_NOT_FOUND");
			const next = mergeStates(state, msg.absorbed, ctx);
			const effects: Effect[] = [{ type: "customer.merged", payload: { customerId: state.id, from: msg.from, aliases: next.aliases ?? [] } }];
			if (next.risk.score !== state.risk.score) {
				effects.push({
					type: "customer.risk.changed",
					payload: { customerId: state.id, oldScore: state.risk.score, newScore: next.risk.score, factors: next.risk.factors, cause: `merge/${msg.from}` }
				});
			}
			return done(state, next, msg, effects);
		}
	}
}

/**
 * The merge rule: `survivor` takes in `absorbed` (docs/merge.md). Deterministic; the survivor's id, aliases and
 * every fact it holds stay (a value of the absorbed customer wins only where it is newer by event time).
 */
export function mergeStates(survivor: CustomerState, absorbed: CustomerState, ctx: ReduceContext): CustomerState {
	const a = survivor;
	const b = absorbed;
	const [profile, profileTimes] = mergeProfiles(a, b);
	const openTicketIds = keepLast(unionOrdered(b.openTicketIds, a.openTicketIds), LIMITS.openTicketIds);
	const orderStatus = mergeOrders(a.orderStatus, b.orderStatus);
	const sharedOrders = countShared(a.orderStatus, b.orderStatus);
	const counters = sumCounters(a.counters, b.counters, sharedOrders, openTicketIds.length);
	const lastActivityAt = Math.max(a.lastActivityAt, b.lastActivityAt);
	const aliases = unionOrdered(unionOrdered(a.aliases ?? [], [b.id]), b.aliases ?? []);

	const next: CustomerState = {
		version: a.version + 1,
		id: a.id,
		createdAt: Math.min(a.createdAt, b.createdAt),
		lastActivityAt,
		profile,
		profileTimes,
		counters,
		openTicketIds,
		orderStatus,
		telemetry: mergeTelemetry(a.telemetry, b.telemetry),
		// The newer customer's mood (by latest activity); ties and a missing one go to the survivor's.
		lastSentiment: b.lastActivityAt > a.lastActivityAt && b.lastSentiment !== null ? b.lastSentiment : (a.lastSentiment ?? b.lastSentiment),
		risk: a.risk,
		churnProbability: a.churnProbability ?? b.churnProbability,
		recentEventKeys: mergeWindows(a.recentEventKeys, b.recentEventKeys, ctx.dedupWindow),
		reminders: a.reminders,
		aliases
	};
	const market = mergeMarket(a.market, b.market);
	if (market !== undefined) next.market = market;
	if (a.mergingFrom !== undefined && a.mergingFrom !== b.id) next.mergingFrom = a.mergingFrom;

	let factors = mergeFactors(a.risk.factors, (b.sealedRisk ?? b.risk).factors);
	factors = setFactor(factors, FACTOR_TICKETS_OPEN, openTicketsPoints(openTicketIds.length));
	if (ctx.churnScorer !== undefined) {
		const p = ctx.churnScorer(next);
		if (Number.isFinite(p)) {
			const probability = p < 0 ? 0 : p > 1 ? 1 : p;
			next.churnProbability = probability;
			factors = setFactor(factors, FACTOR_CHURN_MODEL, churnPoints(probability, ctx.risk.churnWeight));
		}
	}
	const risk: RiskState = { score: scoreOf(factors), factors };
	next.risk = risk;
	next.reminders = decayReminder(a.reminders, factors, lastActivityAt, ctx);
	return next;
}

/** Per field the value written at the later event time wins; on equal times the survivor's (a cleared field too). */
function mergeProfiles(a: CustomerState, b: CustomerState): [Record<string, ProfileValue>, Record<string, number>] {
	const profile: Record<string, ProfileValue> = { ...a.profile };
	const times: Record<string, number> = { ...a.profileTimes };
	for (const field of Object.keys(b.profileTimes)) {
		const tb = b.profileTimes[field];
		const ta = Object.hasOwn(a.profileTimes, field) ? a.profileTimes[field] : -Infinity;
		if (!(tb > ta)) continue;
		times[field] = tb;
		if (Object.hasOwn(b.profile, field)) profile[field] = b.profile[field];
		else delete profile[field];
	}
	// Laid out at once (see applyProfile in the reducer): a copy, not one property added at a time.
	return [{ ...profile }, { ...times }];
}

/** Summed, except openTickets (the union of open ticket ids) and orders (an order tracked by both counts once). */
function sumCounters(a: CustomerCounters, b: CustomerCounters, sharedOrders: number, openTickets: number): CustomerCounters {
	return {
		orders: a.orders + b.orders - sharedOrders,
		cancelledOrders: a.cancelledOrders + b.cancelledOrders,
		failedPayments: a.failedPayments + b.failedPayments,
		interactions: a.interactions + b.interactions,
		negativeInteractions: a.negativeInteractions + b.negativeInteractions,
		ticketsOpened: a.ticketsOpened + b.ticketsOpened,
		openTickets,
		pageViews: a.pageViews + b.pageViews,
		telemetryReadings: a.telemetryReadings + b.telemetryReadings
	};
}

/** The absorbed customer's orders first (older), the survivor's last; on a shared order id the survivor's status. */
function mergeOrders(a: Record<string, string>, b: Record<string, string>): Record<string, string> {
	const entries: Array<[string, string]> = [];
	for (const id of Object.keys(b)) if (!Object.hasOwn(a, id)) entries.push([id, b[id]]);
	for (const id of Object.keys(a)) entries.push([id, a[id]]);
	return Object.fromEntries(keepLast(entries, LIMITS.orderStatus));
}

function countShared(a: Record<string, string>, b: Record<string, string>): number {
	let n = 0;
	for (const id of Object.keys(b)) if (Object.hasOwn(a, id)) n++;
	return n;
}

/** The survivor's metrics, then the absorbed customer's other ones up to the bound; on a shared name the survivor's. */
function mergeTelemetry(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
	const out: Record<string, number> = { ...a };
	let size = Object.keys(out).length;
	for (const name of Object.keys(b)) {
		if (Object.hasOwn(out, name) || size >= LIMITS.telemetryKeys) continue;
		out[name] = b[name];
		size++;
	}
	return { ...out };
}

function mergeMarket(a: MarketSummary | undefined, b: MarketSummary | undefined): MarketSummary | undefined {
	if (a === undefined || b === undefined) return a ?? b;
	const latest = b.lastSignalAt > a.lastSignalAt ? b : a;
	return { signals: a.signals + b.signals, lastSignalAt: latest.lastSignalAt, latest: latest.latest };
}

/**
 * Both dedup windows, bounded: the newest keys of each taken in turn (survivor first), oldest first again. What is
 * most likely redelivered after a merge is what either customer applied last, so each keeps its newest half at least.
 */
export function mergeWindows(a: readonly number[], b: readonly number[], max: number): number[] {
	const picked: number[] = [];
	const seen = new Set<number>();
	let i = a.length - 1;
	let j = b.length - 1;
	while (picked.length < max && (i >= 0 || j >= 0)) {
		if (i >= 0) {
			const k = a[i--];
			if (!seen.has(k)) {
				seen.add(k);
				picked.push(k);
			}
		}
		if (j >= 0 && picked.length < max) {
			const k = b[j--];
			if (!seen.has(k)) {
				seen.add(k);
				picked.push(k);
			}
		}
	}
	const out: number[] = new Array(picked.length);
	for (let n = 0; n < picked.length; n++) out[n] = picked[picked.length - 1 - n];
	return out;
}

/**
 * Event-driven factors add up (each customer's events happened); derived ones (open tickets, churn model) are
 * recomputed by the caller. Each sum is clamped like any factor.
 */
function mergeFactors(a: Factors, b: Factors): Factors {
	let out: Factors = {};
	for (const name of Object.keys(a)) if (isDecayable(name)) out = setFactor(out, name, a[name]);
	for (const name of Object.keys(b)) if (isDecayable(name)) out = setFactor(out, name, (out[name] ?? 0) + b[name]);
	// The survivor's derived factors stay until recomputed (the churn factor when no model is loaded).
	for (const name of Object.keys(a)) if (!isDecayable(name)) out = setFactor(out, name, a[name]);
	return out;
}

/** The decay reminder as after an event: due after the latest activity, never earlier than already scheduled. */
function decayReminder(reminders: Record<string, number>, factors: Factors, lastActivityAt: number, ctx: ReduceContext): Record<string, number> {
	const next = { ...reminders };
	delete next[REMINDER_RISK_DECAY];
	if (hasDecayableFactor(factors)) {
		const scheduled = reminders[REMINDER_RISK_DECAY];
		const inactiveUntil = lastActivityAt + ctx.risk.decayAfterMs;
		next[REMINDER_RISK_DECAY] = scheduled !== undefined && scheduled > inactiveUntil ? scheduled : inactiveUntil;
	}
	return next;
}

/** `first` then the items of `then` not in it, in order. */
function unionOrdered<T>(first: readonly T[], then: readonly T[]): T[] {
	const out = first.slice();
	for (const x of then) if (!out.includes(x)) out.push(x);
	return out;
}

function keepLast<T>(items: T[], max: number): T[] {
	return items.length > max ? items.slice(items.length - max) : items;
}
