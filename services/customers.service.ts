// customers: the actor host service. Every action carries customerId and is routed to the owning node by the
// rendezvous strategy; a write lost to another node (CAS) is re-routed, never applied twice.
import { Errors } from "moleculer";
import type { Context, ServiceSchema } from "moleculer";
import { ActorHostError } from "../actors/host/actor-host.ts";
import type { ActorStore, JournalEntry } from "../actors/host/actor-store.ts";
import type { FeedPage } from "../models/change-record.ts";
import type { CustomerState } from "../models/customer-state.ts";
import { validateEvent } from "../models/cloud-event.validator.ts";
import type { KnownCloudEvent } from "../models/event-data.schemas.ts";
import {
	call, CUSTOMER_ID, Customers, toCustomerView, type MergeParams, type MergeResult, type MergeStepParams, type CustomerView, type HandleResult, type InspectResult, type InvalidEventData, type JournalEntryView,
	type NodeStats, type PassivateResult, type RiskRow, type ChangeView, type ChangesSinceParams, type FeedParams, type RiskHistoryItem
} from "../models/contract/index.ts";
import { contractError } from "../runtime/contract-error.ts";
import { beforeForwarded, completeOnActivation, forward, merge, mergedJournal, mergeStep, resolveAlias } from "./customer-merge.ts";
import { ShardedActorMixin, type ShardedActorDeps, type ShardedActorSchema, type ShardedActorService } from "../mixins/sharded-actor.mixin.ts";

/** How many times a message lost to a version conflict is re-routed before the caller sees the error. */
const MAX_REROUTES = 5;
/** Synthetic ids over which `nodeStats` measures each node's share of the key space. */
const SHARE_SAMPLE = Array.from({ length: 10_000 }, (_, i) => `share-sample-${i}`);

/** What the wire brings: the events are validated here, whoever sent them. */
interface HandleParams { customerId: string; event: unknown; alias?: string }
interface HandleManyParams { customerId: string; events: unknown[]; alias?: string }
interface Meta { reroutes?: number; hops?: number }

function invalidEvent(where: string, data: InvalidEventData): Errors.MoleculerError {
	return contractError("INVALID_EVENT", `${where}${data.reason}`, data);
}

/** `alias`: the events were forwarded from a customer merged into `customerId` (their subject is that customer). */
function checkEvent(customerId: string, raw: unknown, index?: number, alias?: string): KnownCloudEvent {
	const v = validateEvent(raw);
	const where = index === undefined ? "" : `events[${index}]: `;
	if (!v.ok) throw invalidEvent(where, { index, code: v.code, reason: v.reason });
	if (v.event.subject !== customerId && (alias === undefined || v.event.subject !== alias)) {
		throw invalidEvent(where, { index, code: "invalid_event", reason: `subject "${v.event.subject}" does not match customerId "${customerId}"` });
	}
	return v.event;
}

function retryable(err: unknown): err is ActorHostError {
	return err instanceof ActorHostError;
}

export function createCustomersService(deps: ShardedActorDeps): ServiceSchema {
	// In a cluster another node may have written a customer since this node cached it (membership views disagree
	// for a moment after a join or crash; the CAS fences writes, not reads), so reads come from the store.
	const readFromStore = deps.config.transporter !== undefined;
	async function readState(svc: ShardedActorService, customerId: string): Promise<CustomerState | null> {
		if (!readFromStore) return svc.host.get(customerId);
		const stored = await svc.store.load(customerId);
		const cached = svc.host.peek(customerId);
		// A cached copy older than the store is stale: drop it so the next message reloads (a busy one loses its CAS anyway).
		if (stored && cached && cached.version < stored.version) svc.host.passivate(customerId);
		return stored;
	}
	/** The survivor a sealed customer leads to; absorbs it there first when that is still pending (a read after a crash). */
	async function survivorOf(svc: ShardedActorService, ctx: Context, sealed: CustomerState): Promise<CustomerState> {
		const survivor = await resolveAlias(svc, readState, sealed);
		if (survivor.aliases?.includes(sealed.id)) return survivor;
		await call(ctx, Customers.mergeStep, { customerId: survivor.id, step: "absorb", from: sealed.id });
		return resolveAlias(svc, readState, sealed);
	}
	/** What a read of `customerId` answers with: its state, or its survivor's when it was merged (404 when never seen). */
	async function readResolved(svc: ShardedActorService, ctx: Context, customerId: string): Promise<{ state: CustomerState; resolvedFrom?: string }> {
		const state = await readState(svc, customerId);
		if (!state) throw contractError("CUSTOMER_NOT_FOUND", `customer ${customerId} not found`, { customerId });
		if (state.mergedInto === undefined) return { state };
		return { state: await survivorOf(svc, ctx, state), resolvedFrom: state.id };
	}
	const schema: ShardedActorSchema = {
		name: Customers.service,
		mixins: [ShardedActorMixin(deps) as Partial<ServiceSchema>],
		methods: {
			mergePending(this: ShardedActorService, customerId: string, from: string) {
				completeOnActivation(this, customerId, from);
			}
		},
		actions: {
			handle: {
				params: { customerId: CUSTOMER_ID, event: { type: "object" }, alias: { ...CUSTOMER_ID, optional: true } },
				async handler(this: ShardedActorService, ctx: Context<HandleParams, Meta>): Promise<HandleResult> {
					const alias = ctx.params.alias;
					const event = checkEvent(ctx.params.customerId, ctx.params.event, undefined, alias);
					try {
						if (alias !== undefined) await beforeForwarded(this, readState, ctx.params.customerId, alias);
						const result = await this.host.tell(ctx.params.customerId, { kind: "event", event }, ctx);
						// Sealed (merged into another customer): the survivor applies it.
						if (result.redirect !== undefined) return (await forward(ctx, result.redirect, event.subject, [event]))[0];
						return result;
					} catch (err) {
						return reroute(ctx, Customers.handle.name, err);
					} finally {
						this.membership.releaseIfNotOwned(ctx.params.customerId);
					}
				}
			},
			handleMany: {
				params: { customerId: CUSTOMER_ID, events: { type: "array", min: 1, max: 1000, items: "object" }, alias: { ...CUSTOMER_ID, optional: true } },
				async handler(this: ShardedActorService, ctx: Context<HandleManyParams, Meta>): Promise<HandleResult[]> {
					const alias = ctx.params.alias;
					const events = ctx.params.events.map((e, i) => checkEvent(ctx.params.customerId, e, i, alias));
					try {
						if (alias !== undefined) await beforeForwarded(this, readState, ctx.params.customerId, alias);
						const results = await this.host.tellMany(ctx.params.customerId, events.map(event => ({ kind: "event" as const, event })), ctx);
						// Once a seal is applied every later event of the run is redirected: those go on to the survivor, in order.
						const first = results.findIndex(r => r.redirect !== undefined);
						if (first < 0) return results;
						const rest = await forward(ctx, results[first].redirect as string, events[first].subject, events.slice(first));
						return results.slice(0, first).concat(rest);
					} catch (err) {
						return reroute(ctx, Customers.handleMany.name, err);
					} finally {
						this.membership.releaseIfNotOwned(ctx.params.customerId);
					}
				}
			},
			get: {
				params: { customerId: CUSTOMER_ID },
				async handler(this: ShardedActorService, ctx: Context<{ customerId: string }>): Promise<CustomerView> {
					const { state, resolvedFrom } = await readResolved(this, ctx, ctx.params.customerId);
					// Merged: the survivor answers, saying which id was asked for.
					return resolvedFrom === undefined ? toCustomerView(state) : { ...toCustomerView(state), resolvedFrom };
				}
			},
			journal: {
				params: { customerId: CUSTOMER_ID, limit: { type: "number", integer: true, min: 1, max: 1000, optional: true, convert: true } },
				async handler(this: ShardedActorService, ctx: Context<{ customerId: string; limit?: number }>): Promise<JournalEntryView[]> {
					const limit = ctx.params.limit ?? 50;
					const { state } = await readResolved(this, ctx, ctx.params.customerId);
					await this.host.drain();
					const entries = state.aliases === undefined ? await this.store.journal(state.id, limit) : await mergedJournal(this, state, limit);
					// The events the customer received; reminder entries (decay steps) and merge steps show in its change stream and risk history.
					const views: JournalEntryView[] = [];
					for (const e of entries) if (e.event !== undefined) views.push({ version: e.version, appliedAt: new Date(e.appliedAt).toISOString(), riskScore: e.riskScore, event: e.event });
					return views;
				}
			},
			/** One customer's changes above a version, oldest first: what its change stream replays and follows. */
			changesSince: {
				params: {
					customerId: CUSTOMER_ID,
					afterVersion: { type: "number", integer: true, min: 0, convert: true },
					limit: { type: "number", integer: true, min: 1, max: 1000, optional: true, convert: true }
				},
				async handler(this: ShardedActorService, ctx: Context<ChangesSinceParams>): Promise<ChangeView[]> {
					const entries = await this.store.journalSince(ctx.params.customerId, ctx.params.afterVersion, ctx.params.limit ?? 500);
					return entries.map(changeView);
				}
			},
			/** The store-wide change feed after a cursor (any node reads the shared store). */
			feed: {
				params: {
					cursor: { type: "string", min: 1, max: 64, pattern: /^(?:\$|\d{1,20}(?:-\d{1,20})?)$/ },
					limit: { type: "number", integer: true, min: 1, max: 1000, optional: true, convert: true }
				},
				handler(this: ShardedActorService, ctx: Context<FeedParams>): Promise<FeedPage> {
					return this.store.changesSince(ctx.params.cursor, ctx.params.limit ?? 500);
				}
			},
			/** Every change of the risk score with its lineage, newest first, read from the journal (see docs/lineage.md). */
			riskHistory: {
				params: { customerId: CUSTOMER_ID, limit: { type: "number", integer: true, min: 1, max: 1000, optional: true, convert: true } },
				async handler(this: ShardedActorService, ctx: Context<{ customerId: string; limit?: number }>): Promise<RiskHistoryItem[]> {
					// A merged id answers with its survivor's history, like every other read (docs/merge.md).
					const { state } = await readResolved(this, ctx, ctx.params.customerId);
					return riskHistory(this.store, state.id, state.version, ctx.params.limit ?? 50);
				}
			},
			listByRisk: {
				params: {
					riskAbove: { type: "number", min: -1, max: 100, optional: true, convert: true },
					limit: { type: "number", integer: true, min: 1, max: 1000, optional: true, convert: true }
				},
				async handler(this: ShardedActorService, ctx: Context<{ riskAbove?: number; limit?: number }>): Promise<RiskRow[]> {
					await this.host.drain();
					return this.store.listByRisk(ctx.params.riskAbove ?? 0, ctx.params.limit ?? 50);
				}
			},
			passivate: {
				params: { customerId: CUSTOMER_ID },
				handler(this: ShardedActorService, ctx: Context<{ customerId: string }>): PassivateResult {
					return { customerId: ctx.params.customerId, passivated: this.host.passivate(ctx.params.customerId), nodeID: this.broker.nodeID };
				}
			},
			/** For operators (REPL `customer`): the owner's in-memory actor next to the persisted state. */
			inspect: {
				visibility: "public",
				params: { customerId: CUSTOMER_ID },
				async handler(this: ShardedActorService, ctx: Context<{ customerId: string }>): Promise<InspectResult> {
					const id = ctx.params.customerId;
					const memory = this.host.peek(id);
					const persisted = await this.store.load(id);
					return {
						nodeID: this.broker.nodeID,
						ownerInView: this.membership.ownerOf(id) ?? this.broker.nodeID,
						members: this.membership.nodes,
						active: this.host.isActive(id),
						memory: memory ? toCustomerView(memory) : null,
						persisted: persisted ? toCustomerView(persisted) : null
					};
				}
			},
			merge: {
				params: { customerId: CUSTOMER_ID, from: CUSTOMER_ID },
				handler(this: ShardedActorService, ctx: Context<MergeParams>): Promise<MergeResult> {
					return merge(this, readState, ctx);
				}
			},
			/** One step of the merge protocol on the owner of `customerId` (internal: customers.merge drives it). */
			mergeStep: {
				visibility: "public",
				params: {
					customerId: CUSTOMER_ID,
					step: { type: "enum", values: ["intent", "abort", "seal", "absorb"] },
					from: { ...CUSTOMER_ID, optional: true },
					into: { ...CUSTOMER_ID, optional: true }
				},
				async handler(this: ShardedActorService, ctx: Context<MergeStepParams, Meta>): Promise<HandleResult> {
					const p = ctx.params;
					if ((p.step === "seal" ? (p as { into?: string }).into : (p as { from?: string }).from) === undefined) {
						throw contractError("INVALID_MERGE", `merge step ${p.step} needs ${p.step === "seal" ? "into" : "from"}`, { customerId: p.customerId });
					}
					try {
						return await mergeStep(this, p);
					} catch (err) {
						return reroute(ctx, Customers.mergeStep.name, err);
					} finally {
						this.membership.releaseIfNotOwned(p.customerId);
					}
				}
			},
			nodeStats: {
				visibility: "public",
				handler(this: ShardedActorService): NodeStats {
					const mem = process.memoryUsage();
					const owned = SHARE_SAMPLE.reduce((n, id) => n + (this.membership.isOwner(id) ? 1 : 0), 0);
					return {
						nodeID: this.broker.nodeID, store: this.store.kind, ...this.host.stats, heapUsedBytes: mem.heapUsed, rssBytes: mem.rss,
						members: this.membership.nodes, membershipChanges: this.membership.changes, released: this.membership.released,
						strayActors: this.membership.strayIds().length, ownedShare: owned / SHARE_SAMPLE.length
					};
				}
			}
		}
	};
	return schema as unknown as ServiceSchema;
}

function changeView(e: JournalEntry): ChangeView {
	// Entries written before change records existed get a minimal one: their cause, no field list.
	const change = e.change ?? { version: e.version, cause: e.event !== undefined ? { event: { source: e.event.source, id: e.event.id, type: e.event.type } } : { reminder: e.reminder ?? e.key }, fields: [] };
	return { customerId: e.customerId, version: e.version, appliedAt: new Date(e.appliedAt).toISOString(), riskScore: e.riskScore, change };
}

/** Journal pages read per risk history: the journal holds every version, most of which do not move the score. */
const HISTORY_PAGE = 500;

/** Risk changes newest first, from the journal, walking back page by page until `limit` are found or it ends. */
async function riskHistory(store: ActorStore, customerId: string, version: number, limit: number): Promise<RiskHistoryItem[]> {
	const out: RiskHistoryItem[] = [];
	let below = version + 1;
	while (below > 1 && out.length < limit) {
		const from = Math.max(0, below - 1 - HISTORY_PAGE);
		const entries = await store.journalSince(customerId, from, below - 1 - from);
		if (entries.length === 0) break;
		for (let i = entries.length - 1; i >= 0 && out.length < limit; i--) {
			const e = entries[i];
			const risk = e.change?.risk;
			if (risk === undefined) continue;
			out.push({
				version: e.version, appliedAt: new Date(e.appliedAt).toISOString(), event: e.change?.cause.event, reminder: e.change?.cause.reminder,
				merge: e.change?.cause.merge, oldScore: risk.old, newScore: risk.new, lineage: risk.lineage
			});
		}
		// Entries trimmed by the journal's bound end the history there.
		if (entries[0].version > from + 1) break;
		below = from + 1;
	}
	return out;
}

async function reroute<T>(ctx: Context<{ customerId: string }, Meta>, action: string, err: unknown): Promise<T> {
	if (!retryable(err)) throw err;
	const reroutes = (ctx.meta.reroutes ?? 0) + 1;
	if (reroutes > MAX_REROUTES || err.type === "HOST_STOPPED") {
		throw contractError(err.type, err.message, { customerId: ctx.params.customerId });
	}
	return ctx.call<T, unknown>(action, ctx.params, { meta: { reroutes } });
}
