// Service behaviour for hosting sharded actors: creates the actor store and host on start, stops them on stop,
// and forwards persisted effects as Moleculer events. The customers service adds the actions.
import type { ServiceSchema, ServiceSettingSchema, Service } from "moleculer";
import { ActorHost } from "../actors/host/actor-host.ts";
import type { ActorStore } from "../actors/host/actor-store.ts";
import type { ChurnScorer, ReduceContext } from "../actors/customer-actor.types.ts";
import type { Config } from "../config/index.ts";

export interface ShardedActorDeps {
	config: Config;
	store: ActorStore;
	/** Null when the churn factor is disabled. */
	churnScorer: ChurnScorer | null;
}

export interface ShardedActorVars {
	host: ActorHost;
	store: ActorStore;
	actorConfig: Config["actor"];
}

export type ShardedActorService = Service & ShardedActorVars;

/** A service schema whose `this` has the actor host and store. */
export type ShardedActorSchema = ServiceSchema<ServiceSettingSchema, Record<string, never>, ShardedActorVars>;

export function ShardedActorMixin(deps: ShardedActorDeps): Partial<ShardedActorSchema> {
	const { config, store, churnScorer } = deps;
	const a = config.actor;
	const reduceSettings = {
		risk: { decayAfterMs: a.riskDecayAfterMs, decayKeep: a.riskDecayKeep, churnWeight: a.churnWeight },
		dedupWindow: a.dedupWindow,
		churnScorer: churnScorer ?? undefined
	};
	return {
		created(this: ShardedActorService) {
			this.store = store;
			this.actorConfig = a;
			this.host = new ActorHost({
				store,
				reduceContext: (now: number): ReduceContext => ({ now, ...reduceSettings }),
				idleTimeoutMs: a.idleTimeoutMs,
				maxActiveActors: a.maxActiveActors,
				commitMaxBatch: a.commitMaxBatch,
				commitIntervalMs: a.commitIntervalMs,
				reminderPollMs: a.reminderPollMs,
				onEffects: effects => {
					for (const effect of effects) void this.broker.emit(effect.type, effect.payload);
				},
				onError: (message, err) => this.logger.error(message, err)
			});
		},
		async started(this: ShardedActorService) {
			await this.store.connect();
			this.host.start();
			this.logger.info(`actor store: ${this.store.kind}${churnScorer ? ", churn model on" : ", churn model off"}`);
		},
		async stopped(this: ShardedActorService) {
			await this.host.stop();
			await this.store.close();
		}
	};
}
