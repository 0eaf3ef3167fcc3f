// The customers service's side of a merge (docs/merge.md): drives the protocol's steps (intent, seal, absorb; abort
// when the merge cannot happen), each an actor turn on the owner of its customer; forwards events of a sealed
// customer to its survivor (absorbing first when the absorb is still pending); follows aliases on reads.
import type { Context, ServiceBroker } from "moleculer";
import { ActorHostError } from "../actors/host/actor-host.ts";
import type { EventJournalEntry } from "../actors/host/actor-store.ts";
import type { CustomerState } from "../models/customer-state.ts";
import type { KnownCloudEvent } from "../models/event-data.schemas.ts";
import {
	Customers, type HandleResult, type MergeReply, type MergeResult, type MergeStepParams
} from "../models/contract/index.ts";
import { contractError } from "../runtime/contract-error.ts";
import type { ShardedActorService } from "../mixins/sharded-actor.mixin.ts";

/** Aliases followed at most (a chain B → A → C is two hops); more means a loop, which the protocol never writes. */
export const MAX_ALIAS_HOPS = 8;

/** Reads a customer's persisted state (from the store in a cluster, see readState in customers.service.ts). */
export type ReadState = (svc: ShardedActorService, customerId: string) => Promise<CustomerState | null>;

/** Something that can call actions: a request's context (continues its trace) or the broker. */
type Caller = Pick<Context, "call"> | Pick<ServiceBroker, "call">;

/** The customer an id ends up in: the state itself, or the survivor its `mergedInto` chain leads to. */
export async function resolveAlias(svc: ShardedActorService, read: ReadState, start: CustomerState): Promise<CustomerState> {
	let state = start;
	for (let hop = 0; state.mergedInto !== undefined; hop++) {
		if (hop >= MAX_ALIAS_HOPS) throw contractError("MERGE_REDIRECT_LOOP", `customer ${start.id}: more than ${MAX_ALIAS_HOPS} merge aliases to follow`, { customerId: start.id });
		const next = await read(svc, state.mergedInto);
		if (next === null) throw contractError("MERGE_REDIRECT_LOOP", `customer ${state.id} is merged into ${state.mergedInto}, which is not stored`, { customerId: state.id });
		state = next;
	}
	return state;
}

function step(caller: Caller, params: MergeStepParams): Promise<HandleResult> {
	return caller.call(Customers.mergeStep.name, params) as Promise<HandleResult>;
}

function replyOf(result: HandleResult): MergeReply {
	return result.merge ?? { status: "refused", code: "INVALID_MERGE" };
}

/** The refusal of a step as the error the API answers with. */
function refusal(reply: MergeReply, customerId: string, from: string): Error {
	switch (reply.code) {
		case "CUSTOMER_NOT_FOUND":
			return contractError("CUSTOMER_NOT_FOUND", `customer ${customerId} not found`, { customerId });
		case "CUSTOMER_MERGED":
			return contractError("CUSTOMER_MERGED", `customer ${customerId} was merged into ${reply.mergedInto}`, { customerId, mergedInto: reply.mergedInto });
		case "MERGE_IN_PROGRESS":
			return contractError("MERGE_IN_PROGRESS", `customer ${customerId} is the survivor of a merge of ${reply.mergingFrom} that has not finished`, { customerId, mergingFrom: reply.mergingFrom });
		default:
			return contractError("INVALID_MERGE", `customer ${from} cannot be merged into ${customerId} (${reply.code ?? "refused"})`, { customerId, from });
	}
}

/**
 * `customers.merge`: merges `from` into `customerId` (or into the customer `customerId` was merged into). Runs on
 * the survivor's owner; every step is a call routed to the owner of its customer, so it is fenced like any write.
 */
export async function merge(svc: ShardedActorService, read: ReadState, ctx: Context<{ customerId: string; from: string }>): Promise<MergeResult> {
	const { customerId, from } = ctx.params;
	if (from === customerId) throw contractError("INVALID_MERGE", `customer ${customerId} cannot be merged into itself`, { customerId, from });
	const requested = await read(svc, customerId);
	if (requested === null) throw contractError("CUSTOMER_NOT_FOUND", `customer ${customerId} not found`, { customerId });
	const survivor = (await resolveAlias(svc, read, requested)).id;
	const absorbed = await read(svc, from);
	if (absorbed === null) throw contractError("CUSTOMER_NOT_FOUND", `customer ${from} not found`, { customerId: from });
	if (from === survivor) throw contractError("INVALID_MERGE", `customer ${customerId} was merged into ${from}: ${from} cannot be merged into it`, { customerId, from });
	if (absorbed.mergedInto !== undefined) {
		const end = (await resolveAlias(svc, read, absorbed)).id;
		if (end !== survivor) throw contractError("CUSTOMER_MERGED", `customer ${from} was merged into ${end}`, { customerId: from, mergedInto: end });
		// The same merge again (a client's retry): make sure the absorb happened, change nothing else.
		await absorbAt(ctx, survivor, from);
		return result(svc, read, survivor, from, false);
	}
	const intent = replyOf(await step(ctx, { customerId: survivor, step: "intent", from }));
	if (intent.status === "refused") throw refusal(intent, survivor, from);
	if (intent.status === "already") return result(svc, read, survivor, from, false);
	await complete(ctx, survivor, from);
	return result(svc, read, survivor, from, true);
}

/**
 * Steps 2 and 3 for an intent that stands: seal `from` into `survivor`, then absorb it. Idempotent: the coordinator,
 * a retried request and the recovery on activation may run it at once; each step is applied once by its actor.
 * A seal refused for good (merged elsewhere, survivor of another merge, a cycle) withdraws the intent.
 */
export async function complete(caller: Caller, survivor: string, from: string): Promise<void> {
	const seal = replyOf(await step(caller, { customerId: from, step: "seal", into: survivor }));
	if (seal.status === "refused") {
		await step(caller, { customerId: survivor, step: "abort", from });
		throw refusal(seal, from, from === survivor ? from : survivor);
	}
	await absorbAt(caller, survivor, from);
}

/** Absorbs sealed `from` into `survivor`, or into the customer `survivor` was merged into meanwhile. */
async function absorbAt(caller: Caller, survivor: string, from: string): Promise<void> {
	let target = survivor;
	for (let hop = 0; hop <= MAX_ALIAS_HOPS; hop++) {
		const reply = replyOf(await step(caller, { customerId: target, step: "absorb", from }));
		if (reply.status !== "refused") return;
		if (reply.code !== "CUSTOMER_MERGED" || reply.mergedInto === undefined) throw refusal(reply, target, from);
		target = reply.mergedInto;
	}
	throw contractError("MERGE_REDIRECT_LOOP", `absorbing ${from}: more than ${MAX_ALIAS_HOPS} merge aliases to follow`, { customerId: survivor });
}

async function result(svc: ShardedActorService, read: ReadState, survivor: string, from: string, merged: boolean): Promise<MergeResult> {
	const state = await read(svc, survivor);
	if (state === null) throw contractError("CUSTOMER_NOT_FOUND", `customer ${survivor} not found`, { customerId: survivor });
	return { survivor, from, merged, version: state.version, riskScore: state.risk.score, aliases: state.aliases ?? [] };
}

/** `customers.mergeStep` on the owner of `customerId`: one step as one turn of its actor. */
export async function mergeStep(svc: ShardedActorService, params: MergeStepParams): Promise<HandleResult> {
	const id = params.customerId;
	switch (params.step) {
		case "intent":
			return svc.host.tell(id, { kind: "merge.intent", from: params.from });
		case "abort":
			return svc.host.tell(id, { kind: "merge.abort", from: params.from });
		case "seal":
			return svc.host.tell(id, { kind: "merge.seal", into: params.into });
		case "absorb":
			return absorbHere(svc, id, params.from);
	}
}

/**
 * The absorb on the survivor's owner: reads the sealed customer as persisted (a sealed customer never changes
 * again, so the read is stable) and tells it to the survivor's actor, which takes it in once.
 */
async function absorbHere(svc: ShardedActorService, survivor: string, from: string): Promise<HandleResult> {
	const absorbed = await svc.store.load(from);
	if (absorbed === null) return { applied: false, version: 0, riskScore: 0, merge: { status: "refused", code: "CUSTOMER_NOT_FOUND" } };
	if (absorbed.mergedInto === undefined) return { applied: false, version: 0, riskScore: 0, merge: { status: "refused", code: "NOT_SEALED" } };
	return svc.host.tell(survivor, { kind: "merge.absorb", from, absorbed });
}

/**
 * An event of sealed customer `alias` forwarded to its survivor `customerId` (this node owns it): the survivor
 * absorbs `alias` first when it has not yet (the seal is persisted, the absorb not: events that arrive between the
 * two are applied after the absorb, in order), then applies the event. A survivor sealed meanwhile redirects again.
 */
export async function beforeForwarded(svc: ShardedActorService, read: ReadState, customerId: string, alias: string): Promise<void> {
	const state = await read(svc, customerId);
	if (state === null || state.mergedInto !== undefined || state.aliases?.includes(alias)) return;
	const reply = replyOf(await absorbHere(svc, customerId, alias));
	if (reply.status === "refused" && reply.code !== "CUSTOMER_MERGED") throw refusal(reply, customerId, alias);
}

/** Events redirected by a sealed actor: sent on to the survivor (through the action, so to its owner). */
export function forward(ctx: Context<unknown, { hops?: number }>, target: string, alias: string, events: KnownCloudEvent[]): Promise<HandleResult[]> {
	const hops = (ctx.meta.hops ?? 0) + 1;
	if (hops > MAX_ALIAS_HOPS) throw contractError("MERGE_REDIRECT_LOOP", `customer ${alias}: more than ${MAX_ALIAS_HOPS} merge aliases to follow`, { customerId: alias });
	const meta = { hops };
	if (events.length === 1) {
		return (ctx.call(Customers.handle.name, { customerId: target, event: events[0], alias }, { meta }) as Promise<HandleResult>).then(r => [r]);
	}
	return ctx.call(Customers.handleMany.name, { customerId: target, events, alias }, { meta }) as Promise<HandleResult[]>;
}

/**
 * Entries read from each journal of a merged customer at least: journals are kept in the order events were applied,
 * so an entry with a late event time may sit below newer ones; reading more than `limit` finds it.
 */
const MERGED_JOURNAL_READ = 200;

/**
 * The journal of a survivor with its aliases: its own entries and those of every customer merged into it (their
 * journals stay where they were written), the events among the newest max(limit, 200) entries of each, interleaved
 * by event time, newest first.
 */
export async function mergedJournal(svc: ShardedActorService, state: CustomerState, limit: number): Promise<EventJournalEntry[]> {
	const ids = [state.id, ...(state.aliases ?? [])];
	const read = Math.max(limit, MERGED_JOURNAL_READ);
	const journals = await Promise.all(ids.map(id => svc.store.journal(id, read)));
	const all: EventJournalEntry[] = [];
	for (const journal of journals) for (const e of journal) if (e.event !== undefined) all.push(e);
	const time = (e: EventJournalEntry) => Date.parse(e.event.time);
	all.sort((x, y) => time(y) - time(x) || y.appliedAt - x.appliedAt || (x.customerId < y.customerId ? -1 : x.customerId > y.customerId ? 1 : y.version - x.version));
	return all.slice(0, limit);
}

/** Completions started on this node by activations (one per survivor at a time). */
const completing = new Set<string>();

/** The host found a persisted intent without its absorb: complete the merge (in the background, logged). */
export function completeOnActivation(svc: ShardedActorService, survivor: string, from: string): void {
	const key = `${survivor}\u0000${from}`;
	if (completing.has(key)) return;
	completing.add(key);
	setImmediate(() => {
		complete(svc.broker, survivor, from).then(
			() => svc.logger.info(`completed the merge of ${from} into ${survivor} found unfinished on activation`),
			(err: unknown) => {
				const type = (err as { type?: unknown }).type;
				if (err instanceof ActorHostError || type === "HOST_STOPPED") return;
				svc.logger.warn(`completing the merge of ${from} into ${survivor} failed: ${String((err as Error).message ?? err)}`);
			}
		).finally(() => completing.delete(key));
	});
}
