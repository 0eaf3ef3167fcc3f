// opportunities: the sales-opportunity entity service (moleculer-db through DbMixin: NeDB under DATA_DIR, MongoDB with
// MONGO_URL). REST under /api/v1/opportunities; follows each customer's interactions to keep the latest sentiment.
import { Errors } from "moleculer";
import type { Context, Service, ServiceSchema } from "moleculer";
import type { Config } from "../config/index.ts";
import { DbMixin } from "../mixins/db.mixin.ts";
import { textSentiment } from "../ml/sentiment.ts";
import {
	call, CUSTOMER_ID, CustomerEvents, Opportunities, type ChangeOpportunityParams, type CreateOpportunityParams, type InteractionLogged
} from "../models/contract/index.ts";
import { OPEN_STAGES, OPPORTUNITY_STAGES, type LatestInteraction, type Opportunity, type OpportunityStage } from "../models/entities/opportunity.entity.ts";
import { contractError } from "../runtime/contract-error.ts";

type OpportunityDoc = Omit<Opportunity, "id"> & { _id: string };

interface Adapter {
	findById(id: string): Promise<OpportunityDoc | null>;
	find(filters: { query?: object; limit?: number; offset?: number; sort?: string[] }): Promise<OpportunityDoc[]>;
	count(filters: { query?: object }): Promise<number>;
	insert(doc: Omit<OpportunityDoc, "_id">): Promise<OpportunityDoc>;
	updateById(id: string, update: object): Promise<OpportunityDoc | null>;
	updateMany(query: object, update: object): Promise<number>;
}

interface RestParams<B = unknown, Q = Record<string, unknown>, P = Record<string, string>> { body: B; query: Q; params: P }

const OPPORTUNITY_ID = { type: "string", min: 1, max: 64 } as const;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const TIME = { type: "string", pattern: RFC3339, messages: { stringPattern: "'{field}' must be an RFC 3339 date-time, e.g. 2026-01-31T09:00:00Z" } } as const;
const FIELDS = {
	customerId: CUSTOMER_ID,
	title: { type: "string", min: 1, max: 256 },
	stage: { type: "enum", values: [...OPPORTUNITY_STAGES] },
	amount: { type: "number", min: 0, max: 1e12 },
	currency: { type: "string", pattern: /^[A-Z]{3}$/, messages: { stringPattern: "'{field}' must be a 3-letter upper-case currency code (ISO 4217)" } },
	createdAt: TIME,
	lastActivityAt: TIME
} as const;

/** One validator schema per shape: flat for service callers, nested under `body` for REST. Unknown fields are rejected. */
const CREATE_SCHEMA = {
	customerId: FIELDS.customerId,
	title: FIELDS.title,
	stage: { ...FIELDS.stage, optional: true },
	amount: FIELDS.amount,
	currency: FIELDS.currency,
	createdAt: { ...FIELDS.createdAt, optional: true },
	lastActivityAt: { ...FIELDS.lastActivityAt, optional: true }
} as const;
const CHANGE_SCHEMA = {
	title: { ...FIELDS.title, optional: true },
	stage: { ...FIELDS.stage, optional: true },
	amount: { ...FIELDS.amount, optional: true },
	currency: { ...FIELDS.currency, optional: true },
	lastActivityAt: { ...FIELDS.lastActivityAt, optional: true }
} as const;
const LIST_QUERY = {
	customerId: { ...CUSTOMER_ID, optional: true },
	stage: { ...FIELDS.stage, optional: true },
	limit: { type: "number", integer: true, min: 1, max: 1000, optional: true, convert: true },
	offset: { type: "number", integer: true, min: 0, optional: true, convert: true }
} as const;

interface ListParams { customerId?: string; stage?: OpportunityStage; limit?: number; offset?: number }

type OpportunitiesService = Service & {
	adapter: Adapter;
	clearCache(): Promise<void>;
	addOpportunity(p: CreateOpportunityParams): Promise<Opportunity>;
	changeOpportunity(id: string, changes: ChangeOpportunityParams): Promise<Opportunity>;
	recordInteraction(i: InteractionLogged): Promise<number>;
};

function toOpportunity(doc: OpportunityDoc): Opportunity {
	const { _id, ...rest } = doc;
	return { id: _id, ...rest };
}

function isoTime(value: string, field: string): string {
	const ms = Date.parse(value);
	if (!Number.isFinite(ms)) throw new Errors.ValidationError(`'${field}' is not a valid date-time`, "VALIDATION_ERROR", [{ field, message: "not a valid date-time" }]);
	return new Date(ms).toISOString();
}

function notFound(id: string): Errors.MoleculerError {
	return contractError("OPPORTUNITY_NOT_FOUND", `opportunity ${id} not found`, { id });
}

/** What an interaction says about the mood: the event's number, else its text's, else nothing. */
export function interactionSentiment(i: Pick<InteractionLogged, "sentiment" | "text">): Pick<LatestInteraction, "sentiment" | "sentimentSource"> {
	if (i.sentiment !== undefined) return { sentiment: i.sentiment, sentimentSource: "event" };
	const fromText = i.text ? textSentiment(i.text) : null;
	return fromText === null ? { sentiment: null, sentimentSource: null } : { sentiment: fromText, sentimentSource: "text" };
}

export function createOpportunitiesService(config: Config, now: () => number = Date.now): ServiceSchema {
	return {
		name: Opportunities.service,
		mixins: [DbMixin({ collection: "opportunities", config, indexes: ["customerId"] }) as ServiceSchema],
		settings: { rest: "/" },
		actions: {
			/** moleculer-db's `get` for one id, with this service's 404 (OPPORTUNITY_NOT_FOUND) and shape. */
			get: {
				visibility: "public",
				params: { id: OPPORTUNITY_ID },
				async handler(this: OpportunitiesService, ctx: Context<{ id: string }>): Promise<Opportunity> {
					const doc = await this.adapter.findById(ctx.params.id);
					if (!doc) throw notFound(ctx.params.id);
					return toOpportunity(doc);
				}
			},
			/** Creates an opportunity (flat params, for services and workflows). */
			add: {
				visibility: "public",
				params: { ...CREATE_SCHEMA, $$strict: true },
				handler(this: OpportunitiesService, ctx: Context<CreateOpportunityParams>): Promise<Opportunity> {
					return this.addOpportunity(ctx.params);
				}
			},
			/** Changes title, stage, amount, currency or lastActivityAt (flat params: `{ id, …changes }`). */
			change: {
				visibility: "public",
				params: { id: OPPORTUNITY_ID, ...CHANGE_SCHEMA, $$strict: true },
				handler(this: OpportunitiesService, ctx: Context<ChangeOpportunityParams & { id: string }>): Promise<Opportunity> {
					const { id, ...changes } = ctx.params;
					return this.changeOpportunity(id, changes);
				}
			},
			postOpportunity: {
				rest: "POST /opportunities",
				params: { body: { type: "object", props: CREATE_SCHEMA, strict: true } },
				async handler(this: OpportunitiesService, ctx: Context<RestParams<CreateOpportunityParams>, { $statusCode?: number; $location?: string }>): Promise<Opportunity> {
					const created = await this.addOpportunity(ctx.params.body);
					ctx.meta.$statusCode = 201;
					ctx.meta.$location = `/api/v1/opportunities/${encodeURIComponent(created.id)}`;
					return created;
				}
			},
			listOpportunities: {
				rest: "GET /opportunities",
				params: { query: { type: "object", props: LIST_QUERY, strict: true } },
				async handler(this: OpportunitiesService, ctx: Context<RestParams<unknown, ListParams>>): Promise<Opportunity[]> {
					const { customerId, stage, limit, offset } = ctx.params.query;
					const query: Record<string, unknown> = {};
					if (customerId !== undefined) query.customerId = customerId;
					if (stage !== undefined) query.stage = stage;
					const docs = await this.adapter.find({ query, limit: limit ?? 50, offset: offset ?? 0, sort: ["-createdAt"] });
					return docs.map(toOpportunity);
				}
			},
			getOpportunity: {
				rest: "GET /opportunities/:id",
				params: { params: { type: "object", props: { id: OPPORTUNITY_ID } } },
				handler(this: OpportunitiesService, ctx: Context<RestParams<unknown, unknown, { id: string }>>): Promise<Opportunity> {
					return call(ctx, Opportunities.get, { id: ctx.params.params.id });
				}
			},
			patchOpportunity: {
				rest: "PATCH /opportunities/:id",
				params: {
					params: { type: "object", props: { id: OPPORTUNITY_ID } },
					body: { type: "object", props: CHANGE_SCHEMA, strict: true, minProps: 1 }
				},
				handler(this: OpportunitiesService, ctx: Context<RestParams<ChangeOpportunityParams, unknown, { id: string }>>): Promise<Opportunity> {
					return this.changeOpportunity(ctx.params.params.id, ctx.params.body);
				}
			}
		},
		events: {
			[CustomerEvents.interactionLogged.name]: {
				async handler(this: OpportunitiesService, ctx: Context<InteractionLogged>) {
					try {
						await this.recordInteraction(ctx.params);
					} catch (err) {
						// Not retried (Moleculer events are at most once): the next interaction of this customer refreshes it.
						this.logger.error(`opportunities: could not record interaction ${ctx.params.interactionId} of customer ${ctx.params.customerId}`, err);
					}
				}
			}
		},
		methods: {
			async addOpportunity(this: OpportunitiesService, p: CreateOpportunityParams): Promise<Opportunity> {
				const at = new Date(now()).toISOString();
				const createdAt = p.createdAt === undefined ? at : isoTime(p.createdAt, "createdAt");
				const lastActivityAt = p.lastActivityAt === undefined ? createdAt : isoTime(p.lastActivityAt, "lastActivityAt");
				const doc = await this.adapter.insert({
					customerId: p.customerId,
					title: p.title,
					stage: p.stage ?? "QUALIFICATION",
					amount: p.amount,
					currency: p.currency,
					createdAt,
					updatedAt: at,
					lastActivityAt: lastActivityAt < createdAt ? createdAt : lastActivityAt,
					sentiment: null,
					latestInteraction: null
				});
				return toOpportunity(doc);
			},

			async changeOpportunity(this: OpportunitiesService, id: string, changes: ChangeOpportunityParams): Promise<Opportunity> {
				const current = await this.adapter.findById(id);
				if (!current) throw notFound(id);
				const at = new Date(now()).toISOString();
				const set: Record<string, unknown> = { ...changes, updatedAt: at };
				if (changes.lastActivityAt !== undefined) set.lastActivityAt = isoTime(changes.lastActivityAt, "lastActivityAt");
				// Moving a deal to another stage is sales activity; editing its title is not.
				else if (changes.stage !== undefined && changes.stage !== current.stage) set.lastActivityAt = at;
				const doc = await this.adapter.updateById(id, { $set: set });
				if (!doc) throw notFound(id);
				await this.clearCache();
				return toOpportunity(doc);
			},

			/**
			 * Latest interaction wins by event time, per open opportunity of the customer, in one conditional update:
			 * concurrent or out-of-order deliveries cannot put an older interaction over a newer one.
			 */
			async recordInteraction(this: OpportunitiesService, i: InteractionLogged): Promise<number> {
				const at = isoTime(i.time, "time");
				const mood = interactionSentiment(i);
				const latest: LatestInteraction = { interactionId: i.interactionId, channel: i.channel, at, text: i.text ?? null, ...mood };
				const set: Record<string, unknown> = { latestInteraction: latest, updatedAt: new Date(now()).toISOString() };
				if (mood.sentiment !== null) set.sentiment = mood.sentiment;
				const changed = await this.adapter.updateMany(
					{ customerId: i.customerId, stage: { $in: [...OPEN_STAGES] }, $or: [{ latestInteraction: null }, { "latestInteraction.at": { $lte: at } }] },
					{ $set: set, $max: { lastActivityAt: at } }
				);
				if (changed > 0) await this.clearCache();
				return changed;
			}
		}
	} as unknown as ServiceSchema;
}
