// Service behaviour for hosting sharded actors: creates the actor store and host on start, stops them on stop,
// forwards persisted effects as Moleculer events, and follows cluster membership (which node owns which actor).
// The customers service adds the actions.
import { getHeapStatistics } from "node:v8";
import type { Context, ServiceBroker, ServiceSchema, ServiceSettingSchema, Service } from "moleculer";
import { ActorHost } from "../actors/host/actor-host.ts";
import type { ActorStore } from "../actors/host/actor-store.ts";
import type { ChurnScorer } from "../actors/customer-actor.types.ts";
import { reduceContextFor } from "../actors/reduce-context.ts";
import type { RiskRulesFn } from "../actors/risk-rules.ts";
import { ownerOf } from "../actors/sharding.ts";
import type { Config } from "../config/index.ts";
import { broadcast, CustomerEvents } from "../models/contract/index.ts";

export interface ShardedActorDeps {
	config: Config;
	store: ActorStore;
	/** Null when the churn factor is disabled. */
	churnScorer: ChurnScorer | null;
	/** Risk rules evaluated in the actor's turn (rules/risk.nools); absent: the built-in table of actors/risk.ts. */
	riskRules?: RiskRulesFn;
}

export interface ShardedActorVars {
	host: ActorHost;
	store: ActorStore;
	actorConfig: Config["actor"];
	membership: ShardMembership;
}

export type ShardedActorService = Service & ShardedActorVars;

/** A service schema whose `this` has the actor host and store. */
export type ShardedActorSchema = ServiceSchema<ServiceSettingSchema, Record<string, never>, ShardedActorVars>;

/** How long a rebalance keeps retrying actors that were busy (pending writes) when ownership moved away: 5 s. */
const RELEASE_RETRY_MS = 50;
const RELEASE_MAX_TRIES = 100;

/**
 * The nodes on which `action` currently has an available endpoint, sorted: the same list the routing strategy
 * hashes over, so `ownerOf(id, shardMembers(...))` names the node a call from this broker goes to.
 */
export function shardMembers(broker: ServiceBroker, action: string): string[] {
	const list = broker.registry.getActionEndpoints(action);
	if (!list) return [];
	return list.endpoints.filter(ep => ep.isAvailable).map(ep => ep.id).sort();
}

/**
 * This node's view of who owns which actor. Views of different nodes can briefly disagree after a join or a
 * crash; that is safe because every write is a compare-and-set (the stale side loses it and re-routes), and this
 * class only decides what to keep in memory and which reminders to deliver.
 */
export class ShardMembership {
	private readonly broker: ServiceBroker;
	private readonly action: string;
	private readonly host: ActorHost;
	private members: string[] = [];
	private rebalancing = false;
	private rebalanceAgain = false;
	/** Actors released because another node owns them now (since start). */
	released = 0;
	changes = 0;

	constructor(broker: ServiceBroker, action: string, host: ActorHost) {
		this.broker = broker;
		this.action = action;
		this.host = host;
	}

	get nodes(): readonly string[] {
		return this.members;
	}

	/** Re-reads the registry; true when the member list changed. */
	refresh(): boolean {
		const next = shardMembers(this.broker, this.action);
		if (next.length === this.members.length && next.every((n, i) => n === this.members[i])) return false;
		this.members = next;
		this.changes++;
		return true;
	}

	ownerOf(customerId: string): string | null {
		return ownerOf(customerId, this.members);
	}

	/** True when this node owns the customer in its view; before any member is known (start, single node) it owns all. */
	isOwner(customerId: string): boolean {
		return this.members.length === 0 || ownerOf(customerId, this.members) === this.broker.nodeID;
	}

	/** Active actors this node does not own (should be 0 shortly after a membership change). */
	strayIds(): string[] {
		return this.host.activeIds().filter(id => !this.isOwner(id));
	}

	/** Drops an idle actor this node does not own, so a later turn of ownership cannot serve a stale copy. */
	releaseIfNotOwned(customerId: string): void {
		if (!this.isOwner(customerId)) this.host.passivate(customerId);
	}

	/**
	 * Passivates every actor another node owns now. Busy ones (a write in flight) are retried until their writes
	 * land; the new owner activates them lazily from the store. Resolves with how many were released.
	 */
	async rebalance(): Promise<number> {
		if (this.rebalancing) {
			this.rebalanceAgain = true;
			return 0;
		}
		this.rebalancing = true;
		let released = 0;
		try {
			do {
				this.rebalanceAgain = false;
				released += this.host.releaseNotOwned(id => this.isOwner(id));
				// What is left is busy; retry just those (scanning every active actor each time would cost more).
				let busy = this.strayIds();
				for (let i = 0; i < RELEASE_MAX_TRIES && busy.length > 0 && !this.rebalanceAgain; i++) {
					await new Promise(resolve => setTimeout(resolve, RELEASE_RETRY_MS));
					busy = busy.filter(id => {
						if (!this.host.isActive(id) || this.isOwner(id)) return false;
						if (!this.host.passivate(id)) return true;
						released++;
						return false;
					});
				}
			} while (this.rebalanceAgain);
		} finally {
			this.rebalancing = false;
		}
		this.released += released;
		return released;
	}
}

export function ShardedActorMixin(deps: ShardedActorDeps): Partial<ShardedActorSchema> {
	const { config, store, churnScorer } = deps;
	const a = config.actor;
	const reduceContext = reduceContextFor(a, churnScorer, deps.riskRules);
	let persistedSignal: NodeJS.Immediate | null = null;
	return {
		events: {
			// Fired for every join, leave, crash (heartbeat timeout) and service change anywhere in the cluster.
			"$services.changed"(this: ShardedActorService) {
				if (!this.membership.refresh()) return;
				const members = this.membership.nodes.join(", ");
				void this.membership.rebalance().then(
					released => this.logger.info(`shard members: [${members}]; released ${released} actors now owned elsewhere`),
					(err: unknown) => this.logger.error("rebalance failed", err)
				);
			}
		},
		created(this: ShardedActorService) {
			this.store = store;
			this.actorConfig = a;
			this.host = new ActorHost({
				store,
				reduceContext,
				idleTimeoutMs: a.idleTimeoutMs,
				maxActiveActors: a.maxActiveActors,
				maxActiveBytes: a.maxActiveMemoryMb > 0 ? a.maxActiveMemoryMb * 2 ** 20 : undefined,
				snapshotEvery: a.snapshotEvery,
				snapshotQuietMs: a.snapshotQuietMs,
				snapshotMinTail: a.snapshotMinTail,
				commitMaxBatch: a.commitMaxBatch,
				commitIntervalMs: a.commitIntervalMs,
				reminderPollMs: a.reminderPollMs,
				// A dead node's reminders are delivered by whoever owns its customers now.
				isOwner: id => this.membership.isOwner(id),
				// The origin is the context of the call that carried the message: the effect continues its trace.
				onEffects: (effects, origins) => {
					for (let i = 0; i < effects.length; i++) {
						const parentCtx = origins[i] as Context | undefined;
						void this.broker.emit(effects[i].type, effects[i].payload, parentCtx ? { parentCtx } : undefined);
					}
				},
				// Change streams on any node follow the store's feed; one broadcast per tick says there is more to read.
				onPersisted: () => {
					if (persistedSignal !== null) return;
					persistedSignal = setImmediate(() => {
						persistedSignal = null;
						// A lost signal only delays streams until their next poll: never worth more than a log line.
						broadcast(this.broker, CustomerEvents.changesPersisted, { nodeID: this.broker.nodeID })
							.catch((err: unknown) => this.logger.debug("customer.changes.persisted not sent", err));
					});
				},
				onError: (message, err) => this.logger.error(message, err),
				// A merge found unfinished on activation: the service's `mergePending` method completes it, if it has one.
				onMergePending: (id, from) => (this as ShardedActorService & { mergePending?: (id: string, from: string) => void }).mergePending?.(id, from)
			});
			this.membership = new ShardMembership(this.broker, `${this.fullName}.handle`, this.host);
		},
		async started(this: ShardedActorService) {
			await this.store.connect();
			this.host.start();
			this.membership.refresh();
			this.logger.info(`actor store: ${this.store.kind}${churnScorer ? ", churn model on" : ", churn model off"}`);
			const limitMb = Math.round(getHeapStatistics().heap_size_limit / 2 ** 20);
			if (a.maxActiveMemoryMb > 0 && limitMb > 3 * a.maxActiveMemoryMb) {
				this.logger.warn(`ACTOR_MAX_MEMORY_MB=${a.maxActiveMemoryMb} caps the live actors, but V8 may let the heap grow to ${limitMb} MB (mostly garbage) before it collects: ` +
					`start node with --max-old-space-size=${2 * a.maxActiveMemoryMb} (e.g. in NODE_OPTIONS) to keep the process near twice the cap (docs/actors.md)`);
			}
		},
		async stopped(this: ShardedActorService) {
			await this.host.stop();
			if (persistedSignal !== null) clearImmediate(persistedSignal);
			persistedSignal = null;
			await this.store.close();
		}
	};
}
