// The published contract for clients as files: schemas/ (JSON Schema of the envelope and of every event type's data,
// OpenAPI 3.1, AsyncAPI 3.0) and docs/events.md, generated from the validators, the routes a node with the default
// services serves, and the risk rules. `npm run schemas` (bin/schemas.ts) writes them; a test compares them.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadConfig } from "../config/index.ts";
import { EVENT_TYPES } from "../models/cloud-event.ts";
import {
	SCHEMA_FILES, asyncApiDocument, cloudEventBatchSchema, cloudEventSchema, eventDataSchema, eventsCatalogueMarkdown, type RiskRuleDoc
} from "../models/published-schemas.ts";
import { CHURN_RELEVANT } from "../actors/customer.reducer.ts";
import { OPEN_TICKETS } from "../actors/risk.ts";
import { RISK_RULES_FILE, loadRiskRules } from "../services/rules/risk-rules.ts";
import { createNode } from "./create-node.ts";
import pkg from "../package.json" with { type: "json" };

/** The project root: the generator reads the rule file and the caller writes the files relative to it. */
export const PROJECT_ROOT = path.resolve(import.meta.dirname, "..");

/** The condition text of each rule of a nools file: what follows `e: RiskEvent` in its `when` block. */
function ruleConditions(text: string): Map<string, string> {
	const out = new Map<string, string>();
	for (const m of text.matchAll(/rule\s+(\w+)\s*\{\s*when\s*\{\s*\w+\s*:\s*RiskEvent\s+([^;]+);/g)) out.set(m[1], m[2].replace(/\s+/g, " ").trim());
	return out;
}

/** The OpenAPI document of a node with the default services, started in-process on an ephemeral port. */
async function servedOpenApi(): Promise<unknown> {
	const dataDir = await mkdtemp(path.join(tmpdir(), "crm-schemas-"));
	const config = loadConfig({ DATA_DIR: dataDir, PORT: "0", HOST: "127.0.0.1", API_KEYS: "schemas-generator-key", LOG_LEVEL: "error", CHURN_MODEL: "off" });
	const broker = await createNode(config);
	try {
		await broker.start();
		// moleculer-web adds the other services' routes a moment after the start: wait until the list stops growing.
		let count = -1;
		let stableSince = Date.now();
		for (const deadline = Date.now() + 15_000; Date.now() < deadline;) {
			const n = (await broker.call("api.listAliases") as unknown[]).length;
			if (n !== count) {
				count = n;
				stableSince = Date.now();
			} else if (Date.now() - stableSince >= 1500) break;
			await new Promise(resolve => setTimeout(resolve, 100));
		}
		return await broker.call("api.openapi");
	} finally {
		await broker.stop();
		await rm(dataDir, { recursive: true, force: true });
	}
}

/** Every generated file, by path relative to the project root, with its content. */
export async function generateContract(): Promise<Map<string, string>> {
	const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;
	const files = new Map<string, string>();
	files.set(`schemas/${SCHEMA_FILES.event}`, json(cloudEventSchema()));
	files.set(`schemas/${SCHEMA_FILES.batch}`, json(cloudEventBatchSchema()));
	for (const type of EVENT_TYPES) {
		files.set(`schemas/${SCHEMA_FILES.data(type)}`, json({ $schema: "https://json-schema.org/draft/2020-12/schema", $id: SCHEMA_FILES.data(type), ...eventDataSchema(type) }));
	}
	files.set(`schemas/${SCHEMA_FILES.openapi}`, json(await servedOpenApi()));
	files.set(`schemas/${SCHEMA_FILES.asyncapi}`, json(asyncApiDocument({ version: pkg.version })));
	const rulesFile = path.join("rules", RISK_RULES_FILE);
	const set = loadRiskRules(path.join(PROJECT_ROOT, rulesFile), "table");
	const conditions = ruleConditions(await readFile(path.join(PROJECT_ROOT, rulesFile), "utf8"));
	set.dispose();
	const rules: RiskRuleDoc[] = set.rules.map(r => ({
		name: r.name, file: rulesFile, line: r.line, eventType: r.eventType, condition: conditions.get(r.name) ?? "(see the file)", deltas: r.deltas
	}));
	const churnWeight = loadConfig({}).actor.churnWeight;
	files.set("docs/events.md", eventsCatalogueMarkdown(rules, {
		churnRelevant: [...CHURN_RELEVANT], churnWeight, openTicketsFree: OPEN_TICKETS.free, openTicketsPointsEach: OPEN_TICKETS.pointsEach
	}));
	return files;
}
