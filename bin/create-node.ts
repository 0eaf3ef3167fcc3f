// Builds one node: broker + the services SERVICES asks for, with their dependencies passed in (no globals).
import { ServiceBroker } from "moleculer";
import type { Config } from "../config/index.ts";
import { brokerOptions } from "../moleculer.config.ts";
import { createActorStore } from "../actors/host/store-factory.ts";
import { createCustomersService } from "../services/customers.service.ts";
import { createApiService } from "../services/api.service.ts";
import { loadChurnScorer } from "../ml/churn-scorer.ts";

export const ALL_SERVICES = ["customers", "api"] as const;

export async function createNode(config: Config): Promise<ServiceBroker> {
	const broker = new ServiceBroker(brokerOptions(config));
	const wanted = config.services.length > 0 ? config.services : [...ALL_SERVICES];
	for (const name of wanted) {
		if (!(ALL_SERVICES as readonly string[]).includes(name)) throw new Error(`SERVICES: unknown service "${name}" (known: ${ALL_SERVICES.join(", ")})`);
	}
	if (wanted.includes("customers")) {
		const store = createActorStore({
			kind: config.actor.store, dataDir: config.dataDir, redisUrl: config.redisUrl, mongoUrl: config.mongoUrl, journalMax: config.actor.journalMax
		});
		const churnScorer = loadChurnScorer(config.churnModel, broker.logger);
		broker.createService(createCustomersService({ config, store, churnScorer }));
	}
	if (wanted.includes("api")) broker.createService(createApiService(config));
	return broker;
}
