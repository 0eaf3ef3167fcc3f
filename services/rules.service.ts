// rules: the nools rule files of this node — ticket routing (a session per ticket), the risk rules the customer actor
// evaluates in its turn, reloads that keep the previous rules on an error, and risk thresholds -> actions.
import path from "node:path";
import { Errors } from "moleculer";
import type { Context, Service, ServiceSchema } from "moleculer";
import type { Config } from "../config/index.ts";
import {
	broadcast, CustomerEvents, emit, RuleEvents, Rules, type RiskChanged, type RiskThresholdCrossed, type RoutingAgentInput, type RoutingResult,
	type RoutingTicketInput, type RulesStatus
} from "../models/contract/index.ts";
import { contractError } from "../runtime/contract-error.ts";
import { RuleFileError } from "./rules/nools-loader.ts";
import { riskRulesFor, type RiskRulesHolder } from "./rules/risk-rules.ts";
import { TICKET_ROUTING_FILE, TicketRouter } from "./rules/ticket-router.ts";

interface RulesVars {
	router: TicketRouter;
	risk: RiskRulesHolder;
	loadedAt: Date;
}

type RulesService = Service & RulesVars & {
	reloadLocal(): RulesStatus;
	status(): RulesStatus;
};

const TICKET_PARAMS = {
	type: "object",
	props: {
		id: { type: "string", min: 1, max: 128 },
		customerId: { type: "string", min: 1, max: 128 },
		priority: { type: "string", min: 1, max: 16 },
		category: { type: "string", min: 1, max: 64 },
		requiredSkill: { type: "string", min: 1, max: 64, optional: true, nullable: true }
	}
} as const;

const AGENT_PARAMS = {
	type: "object",
	props: {
		id: { type: "string", min: 1, max: 128 },
		level: { type: "string", min: 1, max: 16 },
		skills: { type: "array", items: "string", max: 64 },
		available: "boolean",
		load: { type: "number", integer: true, min: 0 }
	}
} as const;

/** True when a change moves the score from below the threshold to at or above it. */
export function crossesUp(oldScore: number, newScore: number, threshold: number): boolean {
	return oldScore < threshold && newScore >= threshold;
}

function rulesError(err: unknown): Errors.MoleculerError {
	if (err instanceof RuleFileError) {
		return contractError("RULES_INVALID", `rules not reloaded, the previous rules stay in force: ${err.message}`, {
			file: path.relative(process.cwd(), err.file), line: err.line, reason: err.reason
		});
	}
	throw err;
}

export function createRulesService(config: Config): ServiceSchema {
	const a = config.automation;
	const routingFile = path.join(a.rulesDir, TICKET_ROUTING_FILE);
	return {
		name: Rules.service,
		settings: { rest: "/" },
		actions: {
			route: {
				visibility: "public",
				params: { ticket: TICKET_PARAMS, agents: { type: "array", items: AGENT_PARAMS, max: 10_000 } },
				handler(this: RulesService, ctx: Context<{ ticket: RoutingTicketInput; agents: RoutingAgentInput[] }>): Promise<RoutingResult> {
					return this.router.route(ctx.params.ticket, ctx.params.agents);
				}
			},
			reload: {
				rest: "POST /admin/rules/reload",
				handler(this: RulesService): RulesStatus {
					let status: RulesStatus;
					try {
						status = this.reloadLocal();
					} catch (err) {
						throw rulesError(err);
					}
					// Every node compiles its own copy of the files; tell the others to reload theirs.
					void broadcast(this.broker, RuleEvents.reloadRequested, { by: this.broker.nodeID }, { groups: [Rules.service] });
					return status;
				}
			},
			status: {
				rest: "GET /admin/rules",
				handler(this: RulesService): RulesStatus {
					return this.status();
				}
			}
		},
		events: {
			[CustomerEvents.riskChanged.name](this: RulesService, ctx: Context<RiskChanged>) {
				const change = ctx.params;
				if (!crossesUp(change.oldScore, change.newScore, a.riskThreshold)) return;
				const crossed: RiskThresholdCrossed = {
					customerId: change.customerId,
					threshold: a.riskThreshold,
					oldScore: change.oldScore,
					newScore: change.newScore,
					factors: change.factors,
					cause: change.cause,
					process: a.riskThresholdProcess
				};
				this.logger.info(`customer ${change.customerId}: risk ${change.oldScore} -> ${change.newScore} crossed ${a.riskThreshold}`);
				void emit(this.broker, RuleEvents.thresholdCrossed, crossed);
			},
			[RuleEvents.reloadRequested.name](this: RulesService, ctx: Context<{ by: string }>) {
				if (ctx.params.by === this.broker.nodeID) return;
				try {
					this.reloadLocal();
					this.logger.info(`rules reloaded (requested by ${ctx.params.by})`);
				} catch (err) {
					this.logger.error(`rules reload requested by ${ctx.params.by} failed; the previous rules stay in force: ${(err as Error).message}`);
				}
			}
		},
		methods: {
			/** Compiles both files first and swaps only when both compile: a broken file changes nothing. */
			reloadLocal(this: RulesService): RulesStatus {
				const router = new TicketRouter(routingFile);
				try {
					this.risk.reload();
				} catch (err) {
					router.dispose();
					throw err;
				}
				const previous = this.router;
				this.router = router;
				previous.dispose();
				this.loadedAt = new Date();
				this.logger.info(`rules reloaded: ${router.ruleNames.length} routing rules, ${this.risk.rules.length} risk rules`);
				return this.status();
			},
			status(this: RulesService): RulesStatus {
				return {
					nodeID: this.broker.nodeID,
					loadedAt: this.loadedAt.toISOString(),
					riskEngine: this.risk.engine,
					files: [
						{ file: path.relative(process.cwd(), this.router.file), rules: this.router.loaded.rules.map(r => ({ name: r.name, line: r.line })) },
						{ file: path.relative(process.cwd(), this.risk.file), rules: this.risk.rules.map(r => ({ name: r.name, line: r.line })) }
					]
				};
			}
		},
		created(this: RulesService) {
			// Both throw RuleFileError ("file:line: reason"), which fails the node's start.
			this.router = new TicketRouter(routingFile);
			this.risk = riskRulesFor(this.broker, config);
			this.loadedAt = new Date();
		},
		started(this: RulesService) {
			this.logger.info(
				`rules: ${this.router.ruleNames.length} routing rules (${path.relative(process.cwd(), routingFile)}), ` +
				`${this.risk.rules.length} risk rules (${path.relative(process.cwd(), this.risk.file)}, ${this.risk.engine}); ` +
				`risk threshold ${a.riskThreshold} -> ${a.riskThresholdProcess ?? "event only"}`
			);
		},
		stopped(this: RulesService) {
			this.router.dispose();
		}
	} as unknown as ServiceSchema;
}
