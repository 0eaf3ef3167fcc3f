// The customer actor's pure reducer: (state, message, context) -> (state, effects). No I/O, no clock, no
// randomness; never mutates its input (unchanged parts are shared), so replaying a journal rebuilds the same state.
import { eventKey } from "../models/cloud-event.ts";
import type { EventType } from "../models/cloud-event.ts";
import type { CustomerCounters, CustomerState, MarketSummary, ProfileValue } from "../models/customer-state.ts";
import type {
	InteractionLoggedData,
	KnownCloudEvent,
	MarketSignalData,
	OrderStatusChangedData
} from "../models/event-data.schemas.ts";
import type { CustomerMessage, Effect, ReduceContext, ReduceResult } from "./customer-actor.types.ts";
import type { ChangeRecord, FactorDelta, LineageCause, ModelCause, RiskChange, RuleCause } from "../models/change-record.ts";
import type { FiredRule } from "./risk-rules.ts";
import { hash52 } from "./hash.ts";
import { reduceMerge } from "./customer-merge.ts";
import {
	applyRiskRules,
	churnPoints,
	decayFactors,
	FACTOR_CHURN_MODEL,
	FACTOR_TICKETS_OPEN,
	hasDecayableFactor,
	openTicketsPoints,
	scoreOf,
	setFactor
} from "./risk.ts";
import type { Factors } from "./risk.ts";

/** The only reminder the reducer schedules: inactivity decay of the event-driven risk factors. */
export const REMINDER_RISK_DECAY = "risk.decay";

/** Bounds that keep one actor's state small (ARCHITECTURE goal: about 2 KB of heap per active actor). */
export const LIMITS = { orderStatus: 16, openTicketIds: 50, telemetryKeys: 32 } as const;

/** Events that can change what the churn model sees; page views and telemetry are too frequent to re-score on. */
export const CHURN_RELEVANT: ReadonlySet<EventType> = new Set<EventType>([
	"crm.customer.updated",
	"crm.order.status_changed",
	"crm.payment.failed",
	"crm.interaction.logged",
	"crm.ticket.opened",
	"crm.ticket.resolved"
]);

/*
 * Shared, frozen empty collections: the reducer never changes a collection in place (it copies on write), so every
 * state can point at the same empty one until it has something of its own. An actor with no orders, tickets,
 * telemetry, reminders or risk factors then holds no objects for them (~60 B each).
 */
const NO_ENTRIES = Object.freeze({}) as Record<string, never>;
const NO_STRINGS = Object.freeze<string[]>([]) as string[];
const NO_NUMBERS = Object.freeze<number[]>([]) as number[];
const ZERO_COUNTERS: CustomerCounters = Object.freeze({
	orders: 0,
	cancelledOrders: 0,
	failedPayments: 0,
	interactions: 0,
	negativeInteractions: 0,
	ticketsOpened: 0,
	openTickets: 0,
	pageViews: 0,
	telemetryReadings: 0
});
const NO_RISK = Object.freeze({ score: 0, factors: NO_ENTRIES });

export function emptyCustomerState(id: string): CustomerState {
	// version first: the Redis store's compare-and-set reads it from the head of the stored JSON.
	return {
		version: 0,
		id,
		createdAt: 0,
		lastActivityAt: 0,
		profile: NO_ENTRIES,
		profileTimes: NO_ENTRIES,
		counters: ZERO_COUNTERS,
		openTicketIds: NO_STRINGS,
		orderStatus: NO_ENTRIES,
		telemetry: NO_ENTRIES,
		lastSentiment: null,
		risk: NO_RISK,
		churnProbability: null,
		recentEventKeys: NO_NUMBERS,
		reminders: NO_ENTRIES
	};
}

/**
 * The same state with its empty collections replaced by the shared ones: for a state read from a store (JSON gives
 * every empty collection an object of its own). A copy; the input is not changed.
 */
export function sharingEmpties(state: CustomerState): CustomerState {
	const none = <T extends object>(o: T, empty: T): T => (isEmptyCollection(o) ? empty : o);
	return {
		...state,
		profile: none(state.profile, NO_ENTRIES),
		profileTimes: none(state.profileTimes, NO_ENTRIES),
		openTicketIds: none(state.openTicketIds, NO_STRINGS),
		orderStatus: none(state.orderStatus, NO_ENTRIES),
		telemetry: none(state.telemetry, NO_ENTRIES),
		recentEventKeys: none(state.recentEventKeys, NO_NUMBERS),
		reminders: none(state.reminders, NO_ENTRIES),
		risk: state.risk.score === 0 && isEmptyCollection(state.risk.factors) ? NO_RISK : state.risk
	};
}

function isEmptyCollection(o: object): boolean {
	if (Array.isArray(o)) return o.length === 0;
	for (const key in o) if (Object.hasOwn(o, key)) return false;
	return true;
}

export function reduce(state: CustomerState, msg: CustomerMessage, ctx: ReduceContext): ReduceResult {
	if (msg.kind === "event") return reduceEvent(state, msg.event, ctx);
	return msg.kind === "reminder" ? reduceReminder(state, msg.name, ctx) : reduceMerge(state, msg, ctx);
}

function reduceEvent(state: CustomerState, event: KnownCloudEvent, ctx: ReduceContext): ReduceResult {
	const key = eventKey(event);
	const keyHash = hash52(key);
	if (state.recentEventKeys.includes(keyHash)) return { state, effects: [], applied: false, change: null };

	const parsed = Date.parse(event.time);
	// Validated events always carry a valid time; the fallback only keeps a NaN out of lastActivityAt.
	const time = Number.isFinite(parsed) ? parsed : ctx.now;
	// A shallow copy whose nested objects the handlers replace (never mutate): the returned state.
	const next: CustomerState = {
		...state,
		version: state.version + 1,
		createdAt: state.version === 0 ? time : state.createdAt,
		lastActivityAt: Math.max(state.lastActivityAt, time),
		recentEventKeys: appendKey(state.recentEventKeys, keyHash, ctx.dedupWindow)
	};

	// Events arrive validated (models/event-data.schemas.ts): `event.data` has the type its `event.type` says.
	const data = event.data;
	const riskRules = ctx.riskRules ?? applyRiskRules;
	let factors = state.risk.factors;
	let interaction: InteractionLoggedData | undefined;
	// The rules that fired, for the score lineage; only events that can fire one get an array.
	let fired: FiredRule[] | undefined;
	switch (event.type) {
		case "crm.customer.updated":
			applyProfile(next, event.data.profile, time);
			break;
		case "crm.order.status_changed":
			if (applyOrderStatus(next, event.data)) factors = riskRules(factors, event.type, data, (fired = []));
			break;
		case "crm.payment.failed":
			next.counters = bump(next.counters, "failedPayments");
			factors = riskRules(factors, event.type, data, (fired = []));
			break;
		case "crm.interaction.logged": {
			interaction = event.data;
			const sentiment = interaction.sentiment;
			next.counters = bump(next.counters, "interactions");
			// An interaction without a sentiment keeps the latest known one: it says nothing new about the mood.
			if (sentiment !== undefined) {
				next.lastSentiment = sentiment;
				if (sentiment <= -0.5) next.counters = bump(next.counters, "negativeInteractions");
			}
			factors = riskRules(factors, event.type, data, (fired = []));
			break;
		}
		case "crm.ticket.opened":
			if (openTicket(next, event.data.ticketId)) factors = riskRules(factors, event.type, data, (fired = []));
			factors = setFactor(factors, FACTOR_TICKETS_OPEN, openTicketsPoints(next.openTicketIds.length));
			break;
		case "crm.ticket.resolved":
			if (resolveTicket(next, event.data.ticketId)) factors = riskRules(factors, event.type, data, (fired = []));
			factors = setFactor(factors, FACTOR_TICKETS_OPEN, openTicketsPoints(next.openTicketIds.length));
			break;
		case "crm.device.telemetry":
			applyTelemetry(next, event.data.metrics);
			break;
		case "crm.page.viewed":
			next.counters = bump(next.counters, "pageViews");
			break;
		case "crm.market.signal":
			next.market = marketSummary(state.market, event.data, time);
			break;
	}

	if (ctx.churnScorer !== undefined && CHURN_RELEVANT.has(event.type)) {
		// The scorer sees every fact of this event; only its own outputs are still the previous ones.
		const probability = ctx.churnScorer(next);
		// A broken model (NaN) must not poison the persisted score: keep the previous estimate instead.
		if (Number.isFinite(probability)) {
			const p = probability < 0 ? 0 : probability > 1 ? 1 : probability;
			next.churnProbability = p;
			factors = setFactor(factors, FACTOR_CHURN_MODEL, churnPoints(p, ctx.risk.churnWeight));
		}
	}

	const effects: Effect[] = [];
	if (state.version === 0) effects.push({ type: "customer.created", payload: { customerId: state.id } });
	if (interaction) {
		effects.push({ type: "customer.interaction.logged", payload: { ...interaction, customerId: state.id, time: new Date(time).toISOString(), cause: key } });
	}
	let risk: RiskChange | undefined;
	if (factors !== state.risk.factors) {
		next.risk = riskChanged(state, factors, key, effects);
		risk = riskChange(state.risk, next.risk, factor => eventCause(factor, fired, next, ctx));
	}
	next.reminders = scheduleDecayAfterActivity(next, ctx);
	const change: ChangeRecord = {
		version: next.version,
		cause: { event: { source: event.source, id: event.id, type: event.type } },
		fields: changedFields(state, next),
		risk
	};
	return { state: next, effects, applied: true, change };
}

/**
 * A "risk.decay" reminder decays only when it is due (decayDueAt), else it is moved to that time. A reminder that changes nothing returns the same state with `applied: false` and no version bump; one that only
 * moves or drops the reminder bumps the version (it must be persisted).
 */
function reduceReminder(state: CustomerState, name: string, ctx: ReduceContext): ReduceResult {
	if (name !== REMINDER_RISK_DECAY) return { state, effects: [], applied: false, change: null };
	const factors = state.risk.factors;
	let reminders: Record<string, number>;
	let nextFactors = factors;
	if (!hasDecayableFactor(factors)) {
		reminders = withoutReminder(state.reminders, name);
	} else {
		const dueAt = decayDueAt(state, ctx);
		if (ctx.now < dueAt) {
			reminders = withReminder(state.reminders, name, dueAt);
		} else {
			nextFactors = decayFactors(factors, ctx.risk.decayKeep);
			reminders = hasDecayableFactor(nextFactors)
				? withReminder(state.reminders, name, ctx.now + ctx.risk.decayAfterMs)
				: withoutReminder(state.reminders, name);
		}
	}
	if (nextFactors === factors && reminders === state.reminders) return { state, effects: [], applied: false, change: null };

	const effects: Effect[] = [];
	const next: CustomerState = { ...state, version: state.version + 1, reminders };
	let risk: RiskChange | undefined;
	if (nextFactors !== factors) {
		next.risk = riskChanged(state, nextFactors, `reminder:${name}`, effects);
		const decay: LineageCause = { kind: "decay", reminder: name };
		risk = riskChange(state.risk, next.risk, () => decay);
	}
	const change: ChangeRecord = { version: next.version, cause: { reminder: name }, fields: changedFields(state, next), risk };
	return { state: next, effects, applied: true, change };
}

/** The state fields a change record lists when they change (the version and the dedup window are bookkeeping). */
const RECORDED_FIELDS = [
	"createdAt", "lastActivityAt", "profile", "counters", "openTicketIds", "orderStatus", "telemetry", "lastSentiment",
	"risk", "churnProbability", "reminders", "market"
] as const satisfies ReadonlyArray<keyof CustomerState>;

/** Top-level fields whose value differs: by reference, which the reducer keeps for everything it does not change. */
function changedFields(before: CustomerState, after: CustomerState): string[] {
	const fields: string[] = [];
	for (const f of RECORDED_FIELDS) if (before[f] !== after[f]) fields.push(f);
	return fields;
}

/** Named when no artifact information came with the scorer (a test's scorer, say). */
const UNKNOWN_MODEL: ModelCause = Object.freeze({ kind: "model", artifact: "unknown", trainedAt: "", sha256: "" });
/** A factor moved by an event with no rule to name (cannot happen with the reducer's own paths; kept total). */
const UNKNOWN_RULE: LineageCause = Object.freeze({ kind: "rule", file: "", rule: "" });

/** Why an event moved `factor`: the rules that fired for it, the churn model, or the open-tickets count. */
function eventCause(factor: string, fired: readonly FiredRule[] | undefined, next: CustomerState, ctx: ReduceContext): LineageCause {
	if (factor === FACTOR_CHURN_MODEL) return ctx.churnScorer?.model ?? UNKNOWN_MODEL;
	if (factor === FACTOR_TICKETS_OPEN) return { kind: "tickets.open", openTickets: next.openTicketIds.length };
	let cause: RuleCause | null = null;
	if (fired !== undefined) {
		for (const f of fired) {
			if (f.factor !== factor) continue;
			// Two rules on one factor (rare): one cause naming both.
			cause = cause === null ? { kind: "rule", file: f.file, rule: f.rule } : { kind: "rule", file: cause.file, rule: `${cause.rule} + ${f.rule}` };
		}
	}
	return cause ?? UNKNOWN_RULE;
}

/** Old and new score with one lineage item per factor whose value changed (effective delta, after clamping). */
function riskChange(before: CustomerState["risk"], after: CustomerState["risk"], causeOf: (factor: string) => LineageCause): RiskChange {
	const lineage: FactorDelta[] = [];
	const was = before.factors;
	const now = after.factors;
	for (const factor in now) {
		const delta = Math.round((now[factor] - (Object.hasOwn(was, factor) ? was[factor] : 0)) * 100) / 100;
		if (delta !== 0) lineage.push({ factor, delta, cause: causeOf(factor) });
	}
	for (const factor in was) {
		if (!Object.hasOwn(now, factor)) lineage.push({ factor, delta: -was[factor], cause: causeOf(factor) });
	}
	return { old: before.score, new: after.score, lineage };
}

/** The new risk state; pushes `customer.risk.changed` when the score moves (factor-only changes are silent). */
function riskChanged(state: CustomerState, factors: Factors, cause: string, effects: Effect[]): CustomerState["risk"] {
	const oldScore = state.risk.score;
	const newScore = scoreOf(factors);
	if (newScore !== oldScore) {
		effects.push({
			type: "customer.risk.changed",
			payload: { customerId: state.id, oldScore, newScore, factors, cause }
		});
	}
	return { score: newScore, factors };
}

/**
 * Decay is due `decayAfterMs` after the latest activity, and never earlier than already scheduled: a late-arriving
 * old event cannot pull a decay step forward, and a reminder delivered twice does not decay twice.
 */
function decayDueAt(state: CustomerState, ctx: ReduceContext): number {
	const inactiveUntil = state.lastActivityAt + ctx.risk.decayAfterMs;
	const scheduled = state.reminders[REMINDER_RISK_DECAY];
	return scheduled !== undefined && scheduled > inactiveUntil ? scheduled : inactiveUntil;
}

/** After an event: without decayable factors there is nothing to decay. */
function scheduleDecayAfterActivity(next: CustomerState, ctx: ReduceContext): Record<string, number> {
	return hasDecayableFactor(next.risk.factors)
		? withReminder(next.reminders, REMINDER_RISK_DECAY, decayDueAt(next, ctx))
		: withoutReminder(next.reminders, REMINDER_RISK_DECAY);
}

function withReminder(reminders: Record<string, number>, name: string, dueAt: number): Record<string, number> {
	return reminders[name] === dueAt ? reminders : { ...reminders, [name]: dueAt };
}

function withoutReminder(reminders: Record<string, number>, name: string): Record<string, number> {
	if (!Object.hasOwn(reminders, name)) return reminders;
	const next = { ...reminders };
	delete next[name];
	return next;
}

/*
 * Bounded lists kept oldest first (at most `max` items, the oldest dropped), copied at their exact length: slice +
 * push would leave V8's growth slack in every active actor. One function per element type: an allocation site that
 * sees both strings and numbers makes V8 box the numbers (the 64-key dedup window would take ~1.5 KB, not ~0.5 KB).
 */
function appendId(ids: readonly string[], id: string, max: number): string[] {
	if (max <= 0) return [];
	const from = ids.length >= max ? ids.length - max + 1 : 0;
	const next: string[] = new Array(ids.length - from + 1);
	for (let i = from; i < ids.length; i++) next[i - from] = ids[i];
	next[ids.length - from] = id;
	return next;
}

function appendKey(keys: readonly number[], key: number, max: number): number[] {
	if (max <= 0) return [];
	const from = keys.length >= max ? keys.length - max + 1 : 0;
	const next: number[] = new Array(keys.length - from + 1);
	for (let i = from; i < keys.length; i++) next[i - from] = keys[i];
	next[keys.length - from] = key;
	return next;
}

function bump(counters: CustomerCounters, name: keyof CustomerCounters): CustomerCounters {
	return { ...counters, [name]: counters[name] + 1 };
}

/**
 * Last writer wins per field, by event time; on equal times the greater value wins (null lowest), which makes the
 * result independent of arrival order. A null clears the field but keeps its time, so an older event that set it
 * cannot bring it back.
 */
function applyProfile(next: CustomerState, changes: Record<string, ProfileValue | null>, time: number): void {
	let profile = next.profile;
	let times = next.profileTimes;
	// The validator has already rejected prototype keys in the map.
	for (const field of Object.keys(changes)) {
		const value = changes[field];
		const writtenAt = Object.hasOwn(times, field) ? times[field] : -Infinity;
		if (time < writtenAt) continue;
		const current = Object.hasOwn(profile, field) ? profile[field] : null;
		if (time === writtenAt && compareProfileValues(value, current) <= 0) continue;
		if (profile === next.profile) profile = { ...profile };
		if (times === next.profileTimes) times = { ...times };
		if (value === null) delete profile[field];
		else profile[field] = value;
		times[field] = time;
	}
	// Properties added one by one with computed names turn an object into a hash table (V8 does so past about a
	// dozen): ~850 B for a 20-field profile against ~200 B for a copy, which is laid out at once. Profiles change
	// rarely, so the copy is cheap and every active actor stays small.
	next.profile = profile === next.profile ? profile : { ...profile };
	next.profileTimes = times === next.profileTimes ? times : { ...times };
}

const TYPE_RANK: Record<string, number> = { boolean: 1, number: 2, string: 3 };

/** A total order on profile values (null < booleans < numbers < strings) used only to break time ties. */
function compareProfileValues(a: ProfileValue | null, b: ProfileValue | null): number {
	const ra = a === null ? 0 : TYPE_RANK[typeof a];
	const rb = b === null ? 0 : TYPE_RANK[typeof b];
	if (ra !== rb) return ra - rb;
	if (a === b || a === null || b === null) return 0;
	return a < b ? -1 : 1;
}

/**
 * Records an order's latest status. Returns whether the status changed: an event that repeats the status the order
 * already has (e.g. a second cancellation) changes no counter and fires no risk rule. The map keeps the most
 * recently updated orders (JS key order: integer-like ids enumerate in numeric order, close to age for sequential ids).
 */
function applyOrderStatus(next: CustomerState, data: OrderStatusChangedData): boolean {
	const { orderId, newStatus } = data;
	// Order ids are free strings; this one would set the map's prototype instead of an entry.
	if (orderId === "__proto__") return false;
	const known = Object.hasOwn(next.orderStatus, orderId);
	const previous = known ? next.orderStatus[orderId] : undefined;
	if (previous === newStatus) return false;

	// The newest LIMITS-1 other orders stay, oldest first; this one goes last as the most recently updated.
	const previousMap = next.orderStatus;
	const ids = Object.keys(previousMap);
	let skip = ids.length - (known ? 1 : 0) - (LIMITS.orderStatus - 1);
	const orderStatus: Record<string, string> = ids.length >= FAST_MAP_MAX ? dictionaryObject() : {};
	for (const id of ids) {
		if (id === orderId) continue;
		if (skip > 0) {
			skip--;
			continue;
		}
		orderStatus[id] = previousMap[id];
	}
	orderStatus[orderId] = newStatus;
	next.orderStatus = orderStatus;

	let counters = next.counters;
	if (!known) counters = bump(counters, "orders");
	if (newStatus === "CANCELLED") counters = bump(counters, "cancelledOrders");
	next.counters = counters;
	return true;
}

/** Maps up to this size are built as ordinary objects; larger ones start as hash tables (see dictionaryObject). */
const FAST_MAP_MAX = 8;

/**
 * An empty plain object already in V8's hash-table mode. Order ids are unique strings: added one by one, each new
 * key makes V8 create a new hidden class, which for a full 16-order map costs ~11 µs per rebuild against ~2.5 µs
 * for a hash table (measured); past about a dozen keys V8 switches to a hash table anyway. Deleting a property that
 * is not the last one added is what makes V8 switch: the object stays a plain `{}` for JSON and comparisons.
 */
function dictionaryObject(): Record<string, string> {
	const o: Record<string, string> = { a: "", b: "" };
	delete o.a;
	delete o.b;
	return o;
}

/** Returns whether the ticket was newly opened (re-opening an open ticket changes nothing). */
function openTicket(next: CustomerState, ticketId: string): boolean {
	const ids = next.openTicketIds;
	if (ids.includes(ticketId)) return false;
	// At the bound the oldest id gives way: the count then reads "at least LIMITS.openTicketIds".
	const kept = appendId(ids, ticketId, LIMITS.openTicketIds);
	next.openTicketIds = kept;
	next.counters = { ...next.counters, ticketsOpened: next.counters.ticketsOpened + 1, openTickets: kept.length };
	return true;
}

/** Returns whether an open ticket was resolved; one that is not open (unknown, evicted, already resolved) changes nothing. */
function resolveTicket(next: CustomerState, ticketId: string): boolean {
	const at = next.openTicketIds.indexOf(ticketId);
	if (at < 0) return false;
	const kept = next.openTicketIds.slice();
	kept.splice(at, 1);
	next.openTicketIds = kept;
	next.counters = { ...next.counters, openTickets: kept.length };
	return true;
}

/** Latest value per metric name; new names beyond LIMITS.telemetryKeys are ignored so known metrics are never evicted. */
function applyTelemetry(next: CustomerState, metrics: Record<string, number>): void {
	let telemetry = next.telemetry;
	let size = Object.keys(telemetry).length;
	for (const name of Object.keys(metrics)) {
		const value = metrics[name];
		const known = Object.hasOwn(telemetry, name);
		if (!known && size >= LIMITS.telemetryKeys) continue;
		if (known && telemetry[name] === value) continue;
		if (telemetry === next.telemetry) telemetry = { ...telemetry };
		telemetry[name] = value;
		if (!known) size++;
	}
	next.telemetry = telemetry;
	next.counters = bump(next.counters, "telemetryReadings");
}

/** Counts the signal; the latest one by event time is kept (a late-arriving older observation only counts). */
function marketSummary(previous: MarketSummary | undefined, data: MarketSignalData, time: number): MarketSummary {
	const latest = { competitor: data.competitor, product: data.product, price: data.price, currency: data.currency };
	if (previous === undefined) return { signals: 1, lastSignalAt: time, latest };
	if (time < previous.lastSignalAt) return { ...previous, signals: previous.signals + 1 };
	return { signals: previous.signals + 1, lastSignalAt: time, latest };
}
