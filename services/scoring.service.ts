// scoring: opportunity scoring (ml/opportunity-score.ts) and information about the churn model the actors run.
// The churn model itself scores in the customer actor's turn (ml/churn-scorer.ts), not here: no network hop per event.
import { Errors } from "moleculer";
import type { Context, Service, ServiceSchema } from "moleculer";
import type { Config } from "../config/index.ts";
import type { ChurnModel } from "../ml/model.ts";
import { loadChurnModel } from "../ml/churn-scorer.ts";
import { scoreOpportunity } from "../ml/opportunity-score.ts";
import {
	call, Opportunities, Scoring, type InlineOpportunity, type ModelInfo, type OpportunityScoreParams, type OpportunityScoreResult
} from "../models/contract/index.ts";
import { OPPORTUNITY_STAGES } from "../models/entities/opportunity.entity.ts";

interface RestParams<B = unknown, Q = Record<string, unknown>, P = Record<string, string>> { body: B; query: Q; params: P }

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const OPPORTUNITY_ID = { type: "string", min: 1, max: 64 } as const;
const INLINE_OPPORTUNITY = {
	type: "object",
	props: {
		id: { type: "string", min: 1, max: 64, optional: true },
		stage: { type: "enum", values: [...OPPORTUNITY_STAGES] },
		amount: { type: "number", min: 0, max: 1e12 },
		createdAt: { type: "string", pattern: RFC3339 },
		lastActivityAt: { type: "string", pattern: RFC3339, optional: true },
		sentiment: { type: "number", min: -1, max: 1, optional: true, nullable: true }
	}
} as const;

export function modelInfoOf(model: ChurnModel, churnWeight: number): ModelInfo {
	const a = model.artifact;
	return {
		enabled: true,
		path: model.source,
		name: a.mapping.name,
		description: a.mapping.description ?? null,
		format: a.format,
		version: a.version,
		trainedAt: a.createdAt,
		data: { path: a.dataPath, sha256: a.dataSha256, rows: a.rows },
		features: a.mapping.features.map(f => ({ field: f.field, column: f.column, type: f.type })),
		inputs: a.featureSpec.names,
		threshold: a.threshold,
		thresholdRule: a.thresholdRule,
		metrics: a.metrics,
		training: a.training,
		churnWeight
	};
}

function parseTime(value: string, field: string): number {
	const ms = Date.parse(value);
	if (!Number.isFinite(ms)) throw new Errors.ValidationError(`'${field}' is not a valid date-time`, "VALIDATION_ERROR", [{ field, message: "not a valid date-time" }]);
	return ms;
}

/**
 * Loads the churn artifact named by CHURN_MODEL at creation, like the customers service does: a missing or
 * incompatible file fails the node's start with the loader's message, so model information is never made up.
 */
export function createScoringService(config: Config, now: () => number = Date.now): ServiceSchema {
	const info: ModelInfo = config.churnModel === "off"
		? { enabled: false, reason: "CHURN_MODEL=off: the churn.model risk factor is disabled" }
		: modelInfoOf(loadChurnModel(config.churnModel), config.actor.churnWeight);
	return {
		name: Scoring.service,
		settings: { rest: "/" },
		actions: {
			/** `{ opportunityId }` or `{ opportunity }` (exactly one) → OpportunityScoreResult. */
			opportunity: {
				visibility: "public",
				params: {
					opportunityId: { ...OPPORTUNITY_ID, optional: true },
					opportunity: { ...INLINE_OPPORTUNITY, optional: true },
					$$strict: true
				},
				async handler(this: Service, ctx: Context<OpportunityScoreParams>): Promise<OpportunityScoreResult> {
					const { opportunityId, opportunity } = ctx.params;
					if ((opportunityId === undefined) === (opportunity === undefined)) {
						throw new Errors.ValidationError("give exactly one of 'opportunityId' and 'opportunity'", "VALIDATION_ERROR", [{ field: "opportunityId", message: "exactly one of opportunityId and opportunity" }]);
					}
					let o: InlineOpportunity;
					if (opportunityId !== undefined) {
						o = await call(ctx, Opportunities.get, { id: opportunityId });
					} else {
						o = opportunity!;
					}
					const createdAt = parseTime(o.createdAt, "createdAt");
					const at = now();
					const result = scoreOpportunity({
						stage: o.stage,
						amount: o.amount,
						createdAt,
						lastActivityAt: o.lastActivityAt === undefined ? createdAt : parseTime(o.lastActivityAt, "lastActivityAt"),
						sentiment: o.sentiment ?? null
					}, at);
					return { opportunityId: opportunityId ?? o.id ?? null, ...result, scoredAt: new Date(at).toISOString() };
				}
			},
			scoreOpportunity: {
				rest: "POST /opportunities/:id/score",
				params: { params: { type: "object", props: { id: OPPORTUNITY_ID } } },
				handler(this: Service, ctx: Context<RestParams<unknown, unknown, { id: string }>>): Promise<OpportunityScoreResult> {
					return call(ctx, Scoring.opportunity, { opportunityId: ctx.params.params.id });
				}
			},
			/** The churn model's metadata: feature list, metrics, training date, data hash, threshold. */
			modelInfo: {
				rest: "GET /scoring/model",
				handler(): ModelInfo {
					return info;
				}
			}
		}
	};
}
