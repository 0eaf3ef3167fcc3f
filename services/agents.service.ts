// agents: the support agents tickets are routed to (moleculer-db through DbMixin: NeDB under DATA_DIR, MongoDB with
// MONGO_URL). REST under /api/v1/agents; `candidates` and `adjustLoad` serve ticket routing.
import { randomBytes } from "node:crypto";
import type { Context, Errors, Service, ServiceSchema } from "moleculer";
import type { Config } from "../config/index.ts";
import { DbMixin } from "../mixins/db.mixin.ts";
import { Agents, call, MAX_ROUTING_CANDIDATES, type ChangeAgentParams, type CreateAgentParams } from "../models/contract/index.ts";
import { AGENT_LEVELS, type Agent, type AgentLevel } from "../models/entities/agent.entity.ts";
import { contractError } from "../runtime/contract-error.ts";

type AgentDoc = Omit<Agent, "id"> & { _id: string };

interface Adapter {
	findById(id: string): Promise<AgentDoc | null>;
	find(filters: { query?: object; limit?: number; offset?: number; sort?: string[] }): Promise<AgentDoc[]>;
	insert(doc: AgentDoc): Promise<AgentDoc>;
	updateById(id: string, update: object): Promise<AgentDoc | null>;
	updateMany(query: object, update: object): Promise<number>;
}

interface RestParams<B = unknown, Q = Record<string, unknown>, P = Record<string, string>> { body: B; query: Q; params: P }

const AGENT_ID = { type: "string", min: 1, max: 64, pattern: /^[A-Za-z0-9][A-Za-z0-9._:@-]*$/ } as const;
const SKILL = { type: "string", min: 1, max: 32, pattern: /^[A-Z][A-Z0-9_]*$/, messages: { stringPattern: "skills are upper-case tags such as NETWORK or BILLING" } } as const;
const FIELDS = {
	name: { type: "string", min: 1, max: 128 },
	level: { type: "enum", values: [...AGENT_LEVELS] },
	skills: { type: "array", items: SKILL, max: 32, unique: true },
	available: { type: "boolean" },
	load: { type: "number", integer: true, min: 0, max: 100_000 }
} as const;
const CREATE_SCHEMA = {
	id: { ...AGENT_ID, optional: true },
	name: FIELDS.name,
	level: FIELDS.level,
	skills: { ...FIELDS.skills, optional: true },
	available: { ...FIELDS.available, optional: true },
	load: { ...FIELDS.load, optional: true }
} as const;
const CHANGE_SCHEMA = {
	name: { ...FIELDS.name, optional: true },
	level: { ...FIELDS.level, optional: true },
	skills: { ...FIELDS.skills, optional: true },
	available: { ...FIELDS.available, optional: true },
	load: { ...FIELDS.load, optional: true }
} as const;
const LIST_QUERY = {
	available: { type: "boolean", optional: true, convert: true },
	level: { ...FIELDS.level, optional: true },
	skill: { ...SKILL, optional: true },
	limit: { type: "number", integer: true, min: 1, max: 1000, optional: true, convert: true },
	offset: { type: "number", integer: true, min: 0, optional: true, convert: true }
} as const;

interface ListParams { available?: boolean; level?: AgentLevel; skill?: string; limit?: number; offset?: number }

type AgentsService = Service & {
	adapter: Adapter;
	clearCache(): Promise<void>;
	addAgent(p: CreateAgentParams): Promise<Agent>;
	changeAgent(id: string, changes: ChangeAgentParams): Promise<Agent>;
};

function toAgent(doc: AgentDoc): Agent {
	const { _id, ...rest } = doc;
	return { id: _id, ...rest };
}

function notFound(id: string): Errors.MoleculerError {
	return contractError("AGENT_NOT_FOUND", `agent ${id} not found`, { id });
}

export function createAgentsService(config: Config, now: () => number = Date.now): ServiceSchema {
	return {
		name: Agents.service,
		mixins: [DbMixin({ collection: "agents", config, indexes: ["available"] }) as ServiceSchema],
		settings: { rest: "/" },
		actions: {
			get: {
				visibility: "public",
				params: { id: AGENT_ID },
				async handler(this: AgentsService, ctx: Context<{ id: string }>): Promise<Agent> {
					const doc = await this.adapter.findById(ctx.params.id);
					if (!doc) throw notFound(ctx.params.id);
					return toAgent(doc);
				}
			},
			/** Available agents for a routing session, least loaded first (at most MAX_CANDIDATES). */
			candidates: {
				visibility: "public",
				async handler(this: AgentsService): Promise<Agent[]> {
					const docs = await this.adapter.find({ query: { available: true }, sort: ["load"], limit: MAX_ROUTING_CANDIDATES });
					return docs.map(toAgent);
				}
			},
			/** +1 when a ticket is assigned, -1 when it is resolved; the load never goes below 0. */
			adjustLoad: {
				visibility: "public",
				params: { id: AGENT_ID, delta: { type: "enum", values: [1, -1] } },
				async handler(this: AgentsService, ctx: Context<{ id: string; delta: 1 | -1 }>): Promise<number> {
					const { id, delta } = ctx.params;
					const query = delta < 0 ? { _id: id, load: { $gte: 1 } } : { _id: id };
					const changed = await this.adapter.updateMany(query, { $inc: { load: delta }, $set: { updatedAt: new Date(now()).toISOString() } });
					if (changed > 0) await this.clearCache();
					return changed;
				}
			},
			postAgent: {
				rest: "POST /agents",
				params: { body: { type: "object", props: CREATE_SCHEMA, strict: true } },
				async handler(this: AgentsService, ctx: Context<RestParams<CreateAgentParams>, { $statusCode?: number; $location?: string }>): Promise<Agent> {
					const created = await this.addAgent(ctx.params.body);
					ctx.meta.$statusCode = 201;
					ctx.meta.$location = `/api/v1/agents/${encodeURIComponent(created.id)}`;
					return created;
				}
			},
			listAgents: {
				rest: "GET /agents",
				params: { query: { type: "object", props: LIST_QUERY, strict: true } },
				async handler(this: AgentsService, ctx: Context<RestParams<unknown, ListParams>>): Promise<Agent[]> {
					const { available, level, skill, limit, offset } = ctx.params.query;
					const query: Record<string, unknown> = {};
					if (available !== undefined) query.available = available;
					if (level !== undefined) query.level = level;
					if (skill !== undefined) query.skills = skill;
					const docs = await this.adapter.find({ query, limit: limit ?? 100, offset: offset ?? 0, sort: ["name"] });
					return docs.map(toAgent);
				}
			},
			getAgent: {
				rest: "GET /agents/:id",
				params: { params: { type: "object", props: { id: AGENT_ID } } },
				handler(this: AgentsService, ctx: Context<RestParams<unknown, unknown, { id: string }>>): Promise<Agent> {
					return call(ctx, Agents.get, { id: ctx.params.params.id });
				}
			},
			patchAgent: {
				rest: "PATCH /agents/:id",
				params: {
					params: { type: "object", props: { id: AGENT_ID } },
					body: { type: "object", props: CHANGE_SCHEMA, strict: true, minProps: 1 }
				},
				handler(this: AgentsService, ctx: Context<RestParams<ChangeAgentParams, unknown, { id: string }>>): Promise<Agent> {
					return this.changeAgent(ctx.params.params.id, ctx.params.body);
				}
			}
		},
		methods: {
			async addAgent(this: AgentsService, p: CreateAgentParams): Promise<Agent> {
				const id = p.id ?? `agent-${randomBytes(6).toString("hex")}`;
				if (await this.adapter.findById(id)) throw contractError("AGENT_EXISTS", `agent ${id} already exists`, { id });
				const at = new Date(now()).toISOString();
				const doc = await this.adapter.insert({
					_id: id,
					name: p.name,
					level: p.level,
					skills: p.skills ?? [],
					available: p.available ?? true,
					load: p.load ?? 0,
					createdAt: at,
					updatedAt: at
				});
				return toAgent(doc);
			},
			async changeAgent(this: AgentsService, id: string, changes: ChangeAgentParams): Promise<Agent> {
				const doc = await this.adapter.updateById(id, { $set: { ...changes, updatedAt: new Date(now()).toISOString() } });
				if (!doc) throw notFound(id);
				await this.clearCache();
				return toAgent(doc);
			}
		}
	} as unknown as ServiceSchema;
}
