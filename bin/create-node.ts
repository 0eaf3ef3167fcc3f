// Builds one node: broker + the services SERVICES asks for, with their dependencies passed in (no globals).
import { ServiceBroker } from "moleculer";
import type { ServiceSchema } from "moleculer";
import type { Config } from "../config/index.ts";
import { brokerOptions } from "../moleculer.config.ts";
import { createActorStore } from "../actors/host/store-factory.ts";
import { journalReplay } from "../actors/host/replay.ts";
import { reduceContextFor } from "../actors/reduce-context.ts";
import { createCustomersService } from "../services/customers.service.ts";
import { createApiService } from "../services/api.service.ts";
import { createDashboardService, dashboardRoute } from "../services/dashboard.service.ts";
import { loadChurnScorer } from "../ml/churn-scorer.ts";
import { createDeadLettersService } from "../services/dead-letters.service.ts";
import { createIngestNatsService } from "../services/ingest-nats.service.ts";
import { createIngestMqttService } from "../services/ingest-mqtt.service.ts";
import { createIngestWebhookService, createWebhookRoute } from "../services/ingest-webhook.service.ts";
import { createDevicesService } from "../services/devices.service.ts";
import { riskRulesFor } from "../services/rules/risk-rules.ts";
import { createRulesService } from "../services/rules.service.ts";
import { createAgentsService } from "../services/agents.service.ts";
import { createTicketsService } from "../services/tickets.service.ts";
import { createWorkflowsService } from "../services/workflows.service.ts";
import { createOpportunitiesService } from "../services/opportunities.service.ts";
import { createScoringService } from "../services/scoring.service.ts";
import { createIngestFilesService } from "../services/ingest-files.service.ts";
import { createIngestErpService } from "../services/ingest-erp.service.ts";
import { createIngestLogsService } from "../services/ingest-logs.service.ts";

interface NodeContext {
	config: Config;
	broker: ServiceBroker;
}

/**
 * Every service a node can run, by the name SERVICES uses. One entry per service; a factory gets the config and
 * broker and returns the schema (dependencies are passed in, never read from globals).
 */
const SERVICE_FACTORIES: Record<string, (ctx: NodeContext) => ServiceSchema | Promise<ServiceSchema>> = {
	customers: ({ config, broker }) => {
		const churnScorer = loadChurnScorer(config.churnModel, broker.logger);
		// rules/risk.nools, evaluated in the actor's turn; a file that does not compile fails the start here.
		const riskRules = riskRulesFor(broker, config).evaluate;
		// The store replays journal tails with the same reducer settings as the actors' turns.
		const store = createActorStore({
			kind: config.actor.store, dataDir: config.dataDir, redisUrl: config.redisUrl, mongoUrl: config.mongoUrl, journalMax: config.actor.journalMax,
			replay: journalReplay(reduceContextFor(config.actor, churnScorer, riskRules))
		});
		return createCustomersService({ config, store, churnScorer, riskRules });
	},
	api: ({ config }) => createApiService(config, [createWebhookRoute(config), dashboardRoute()]),
	dashboard: ({ config }) => createDashboardService(config),
	"ingest-mqtt": ({ config }) => createIngestMqttService(config),
	"ingest-webhook": ({ config }) => createIngestWebhookService(config),
	devices: ({ config }) => createDevicesService(config),
	opportunities: ({ config }) => createOpportunitiesService(config),
	scoring: ({ config }) => createScoringService(config),
	rules: ({ config }) => createRulesService(config),
	agents: ({ config }) => createAgentsService(config),
	tickets: ({ config }) => createTicketsService(config),
	workflows: ({ config }) => createWorkflowsService(config),
	"ingest-files": ({ config }) => createIngestFilesService(config),
	"ingest-erp": ({ config }) => createIngestErpService(config),
	deadLetters: ({ config }) => createDeadLettersService(config),
	"ingest-nats": ({ config }) => createIngestNatsService(config),
	"ingest-logs": ({ config }) => createIngestLogsService(config)
};

export const ALL_SERVICES = Object.keys(SERVICE_FACTORIES);

export async function createNode(config: Config): Promise<ServiceBroker> {
	const wanted = config.services.length > 0 ? config.services : ALL_SERVICES;
	for (const name of wanted) {
		if (!(name in SERVICE_FACTORIES)) throw new Error(`SERVICES: unknown service "${name}" (known: ${ALL_SERVICES.join(", ")})`);
	}
	const broker = new ServiceBroker(brokerOptions(config));
	for (const name of wanted) broker.createService(await SERVICE_FACTORIES[name]({ config, broker }));
	return broker;
}
