// Builds one node: broker + the services SERVICES asks for, with their dependencies passed in (no globals).
import { readdir } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { ServiceBroker } from "moleculer";
import type { ServiceSchema } from "moleculer";
import type { Config } from "../config/index.ts";
import { brokerOptions } from "../moleculer.config.ts";
import { createActorStore } from "../adapters/store-factory.ts";
import { journalReplay } from "../actors/host/replay.ts";
import { reduceContextFor } from "../actors/reduce-context.ts";
import { createCustomersService } from "../services/customers.service.ts";
import { createApiService } from "../services/api.service.ts";
import { createDashboardService, dashboardRoute } from "../services/dashboard.service.ts";
import { loadChurnScorer } from "../ml/churn-scorer.ts";
import { createDeadLettersService } from "../services/dead-letters.service.ts";
import { createDevicesService } from "../services/devices.service.ts";
import { riskRulesFor } from "../services/rules/risk-rules.ts";
import { createRulesService } from "../services/rules.service.ts";
import { createAgentsService } from "../services/agents.service.ts";
import { createTicketsService } from "../services/tickets.service.ts";
import { createWorkflowsService } from "../services/workflows.service.ts";
import { createOpportunitiesService } from "../services/opportunities.service.ts";
import { createScoringService } from "../services/scoring.service.ts";
import type { SourceModule } from "../mixins/source.mixin.ts";

interface NodeContext {
	config: Config;
	broker: ServiceBroker;
}

const SERVICES_DIR = path.resolve(import.meta.dirname, "../services");
const SOURCE_FILE = /^(ingest-[a-z0-9-]+)\.service\.ts$/;

/**
 * The sources: every services/ingest-<name>.service.ts, by its SERVICES name. A source is its file (and its config
 * section): nothing to register anywhere else.
 */
async function findSources(): Promise<Map<string, SourceModule>> {
	const sources = new Map<string, SourceModule>();
	for (const file of (await readdir(SERVICES_DIR)).sort()) {
		const name = SOURCE_FILE.exec(file)?.[1];
		if (name === undefined) continue;
		const mod = (await import(pathToFileURL(path.join(SERVICES_DIR, file)).href)) as { source?: SourceModule };
		if (typeof mod.source?.createService !== "function") throw new Error(`services/${file} must export \`source\` (a SourceModule: createService, routes?)`);
		sources.set(name, mod.source);
	}
	return sources;
}

const SOURCES = await findSources();

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
			kind: config.actor.store, dataDir: config.dataDir, redisUrl: config.redisUrl, mongoUrl: config.mongoUrl, journalMax: config.actor.journalMax, feedMax: config.streams.feedMax,
			replay: journalReplay(reduceContextFor(config.actor, churnScorer, riskRules))
		});
		return createCustomersService({ config, store, churnScorer, riskRules });
	},
	api: ({ config }) => createApiService(config, [...[...SOURCES.values()].flatMap(s => s.routes?.(config) ?? []), dashboardRoute()]),
	dashboard: ({ config }) => createDashboardService(config),
	devices: ({ config }) => createDevicesService(config),
	opportunities: ({ config }) => createOpportunitiesService(config),
	scoring: ({ config }) => createScoringService(config),
	rules: ({ config }) => createRulesService(config),
	agents: ({ config }) => createAgentsService(config),
	tickets: ({ config }) => createTicketsService(config),
	workflows: ({ config }) => createWorkflowsService(config),
	deadLetters: ({ config }) => createDeadLettersService(config),
	...Object.fromEntries([...SOURCES].map(([name, source]) => [name, ({ config }: NodeContext) => source.createService(config)]))
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
