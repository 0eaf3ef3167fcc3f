// workflows: the BPMN processes of bpmn/ — on Camunda 7 / Operaton when CAMUNDA_URL is set, else on the embedded
// engine with state in the node's database. Starts retention when risk crosses the threshold and escalation for
// urgent tickets; user tasks and process instances over REST (/api/v1/tasks, /api/v1/processes).
import { Errors } from "moleculer";
import type { Context, Service, ServiceSchema } from "moleculer";
import type { Config } from "../config/index.ts";
import { DbMixin } from "../mixins/db.mixin.ts";
import { KeyedQueue } from "../lib/keyed.queue.ts";
import { topicHandler, type TopicDeps } from "../actors/workflow-topics.ts";
import {
	call, CUSTOMER_ID, PROCESS_STATES, RuleEvents, TicketEvents, Workflows, type ProcessFilter, type ProcessView, type RiskThresholdCrossed, type TaskView,
	type Vars
} from "../models/contract/index.ts";
import type { Ticket } from "../models/entities/ticket.entity.ts";
import { loadBpmnDir, type ProcessDefinition } from "./workflows/definitions.ts";
import { EmbeddedWorkflowEngine, type InstanceDoc, type InstanceStore } from "./workflows/embedded.engine.ts";
import { CamundaWorkflowEngine } from "./workflows/camunda.engine.ts";
import { WorkflowRequestError, type WorkflowEngine } from "./workflows/workflow-engine.ts";

export const TICKET_ESCALATION_PROCESS = "ticket-escalation";
export const TICKET_RESOLVED_MESSAGE = "ticket-resolved";
const URGENT: ReadonlySet<string> = new Set(["HIGH", "CRITICAL"]);

interface RestParams<B = unknown, Q = Record<string, unknown>, P = Record<string, string>> { body: B; query: Q; params: P }

interface Adapter {
	findById(id: string): Promise<InstanceDoc | null>;
	find(filters: { query?: object; limit?: number; sort?: string[] }): Promise<InstanceDoc[]>;
	insert(doc: InstanceDoc): Promise<InstanceDoc>;
	updateById(id: string, update: object): Promise<InstanceDoc | null>;
}

type WorkflowsService = Service & {
	adapter?: Adapter;
	engine: WorkflowEngine;
	definitions: Map<string, ProcessDefinition>;
	/** Starts per business key run one after another, so "unique" holds under concurrent triggers. */
	starts: KeyedQueue;
	startProcess(processKey: string, opts: { businessKey: string; customerId: string; variables?: Vars; unique?: boolean }): Promise<ProcessView>;
};

const KEY = { type: "string", min: 1, max: 128 } as const;
const VARIABLES = { type: "record", key: { type: "string", min: 1, max: 64, pattern: /^[A-Za-z_][A-Za-z0-9_]*$/ }, value: { type: "any" }, optional: true } as const;

/** Engine errors as Moleculer errors: a client mistake is 4xx, anything else stays a server error. */
function asMoleculerError(err: unknown): Error {
	if (err instanceof WorkflowRequestError) return new Errors.MoleculerClientError(err.message, err.status, err.type);
	return err instanceof Error ? err : new Error(String(err));
}

/** NeDB/MongoDB store of embedded instances, through the service's moleculer-db adapter. */
function instanceStore(svc: WorkflowsService): InstanceStore {
	const adapter = (): Adapter => {
		if (!svc.adapter) throw new Error("workflows: no instance store (embedded engine without DbMixin)");
		return svc.adapter;
	};
	return {
		running: () => adapter().find({ query: { status: "running" } }),
		async find(filter: ProcessFilter) {
			const query: Record<string, unknown> = {};
			if (filter.customerId !== undefined) query.customerId = filter.customerId;
			if (filter.processKey !== undefined) query.processKey = filter.processKey;
			if (filter.businessKey !== undefined) query.businessKey = filter.businessKey;
			if (filter.state !== undefined) query.status = filter.state;
			return adapter().find({ query, limit: filter.limit ?? 100, sort: ["-startedAt"] });
		},
		async save(doc: InstanceDoc) {
			const { _id, ...fields } = doc;
			const updated = await adapter().updateById(_id, { $set: fields });
			if (!updated) await adapter().insert(doc);
		}
	};
}

/** Loads bpmn/ first: a broken BPMN file fails the node's creation with its name and the reason. */
export async function createWorkflowsService(config: Config): Promise<ServiceSchema> {
	const a = config.automation;
	const camundaUrl = config.camundaUrl;
	const definitions = await loadBpmnDir(a.bpmnDir);
	return {
		name: Workflows.service,
		mixins: camundaUrl ? [] : [DbMixin({ collection: "workflow_instances", config, indexes: ["status", "customerId", "businessKey"] }) as ServiceSchema],
		settings: { rest: "/" },
		actions: {
			start: {
				visibility: "public",
				params: { processKey: KEY, businessKey: { ...KEY, optional: true }, customerId: CUSTOMER_ID, variables: VARIABLES, unique: { type: "boolean", optional: true } },
				handler(this: WorkflowsService, ctx: Context<{ processKey: string; businessKey?: string; customerId: string; variables?: Vars; unique?: boolean }>) {
					const p = ctx.params;
					return this.startProcess(p.processKey, { businessKey: p.businessKey ?? p.customerId, customerId: p.customerId, variables: p.variables, unique: p.unique });
				}
			},
			correlate: {
				visibility: "public",
				params: { messageName: KEY, businessKey: { ...KEY, optional: true }, processInstanceId: { ...KEY, optional: true }, variables: VARIABLES },
				async handler(this: WorkflowsService, ctx: Context<{ messageName: string; businessKey?: string; processInstanceId?: string; variables?: Vars }>) {
					const { messageName, ...opts } = ctx.params;
					return { correlated: await this.engine.correlate(messageName, opts).catch(err => { throw asMoleculerError(err); }) };
				}
			},
			tasks: {
				visibility: "public",
				params: { customerId: { ...CUSTOMER_ID, optional: true }, processInstanceId: { ...KEY, optional: true } },
				handler(this: WorkflowsService, ctx: Context<{ customerId?: string; processInstanceId?: string }>): Promise<TaskView[]> {
					return this.engine.listTasks(ctx.params);
				}
			},
			processes: {
				visibility: "public",
				params: {
					customerId: { ...CUSTOMER_ID, optional: true },
					processKey: { ...KEY, optional: true },
					businessKey: { ...KEY, optional: true },
					state: { type: "enum", values: [...PROCESS_STATES], optional: true },
					limit: { type: "number", integer: true, min: 1, max: 1000, optional: true, convert: true }
				},
				handler(this: WorkflowsService, ctx: Context<ProcessFilter>): Promise<ProcessView[]> {
					return this.engine.listProcesses(ctx.params);
				}
			},
			completeTask: {
				visibility: "public",
				params: { id: { type: "string", min: 1, max: 256 }, variables: VARIABLES },
				async handler(this: WorkflowsService, ctx: Context<{ id: string; variables?: Vars }>) {
					await this.engine.completeTask(ctx.params.id, ctx.params.variables ?? {}).catch(err => { throw asMoleculerError(err); });
					return { id: ctx.params.id, completed: true };
				}
			},
			getTasks: {
				rest: "GET /tasks",
				params: { query: { type: "object", props: { customerId: { ...CUSTOMER_ID, optional: true }, processInstanceId: { ...KEY, optional: true } }, strict: true } },
				handler(this: WorkflowsService, ctx: Context<RestParams<unknown, { customerId?: string; processInstanceId?: string }>>): Promise<TaskView[]> {
					return this.engine.listTasks(ctx.params.query);
				}
			},
			postCompleteTask: {
				rest: "POST /tasks/:id/complete",
				params: {
					params: { type: "object", props: { id: { type: "string", min: 1, max: 256 } } },
					body: { type: "object", props: { variables: VARIABLES }, strict: true, optional: true }
				},
				handler(this: WorkflowsService, ctx: Context<RestParams<{ variables?: Vars } | undefined, unknown, { id: string }>>) {
					return call(ctx, Workflows.completeTask, { id: ctx.params.params.id, variables: ctx.params.body?.variables ?? {} });
				}
			},
			getProcesses: {
				rest: "GET /processes",
				params: {
					query: {
						type: "object",
						strict: true,
						props: {
							customerId: { ...CUSTOMER_ID, optional: true },
							processKey: { ...KEY, optional: true },
							businessKey: { ...KEY, optional: true },
							state: { type: "enum", values: [...PROCESS_STATES], optional: true },
							limit: { type: "number", integer: true, min: 1, max: 1000, optional: true, convert: true }
						}
					}
				},
				handler(this: WorkflowsService, ctx: Context<RestParams<unknown, ProcessFilter>>): Promise<ProcessView[]> {
					return this.engine.listProcesses(ctx.params.query);
				}
			},
			postProcess: {
				rest: "POST /processes",
				params: {
					body: {
						type: "object",
						strict: true,
						props: { processKey: KEY, customerId: CUSTOMER_ID, businessKey: { ...KEY, optional: true }, variables: VARIABLES, unique: { type: "boolean", optional: true } }
					}
				},
				async handler(this: WorkflowsService, ctx: Context<RestParams<{ processKey: string; customerId: string; businessKey?: string; variables?: Vars; unique?: boolean }>, { $statusCode?: number; $location?: string }>) {
					const view = await call(ctx, Workflows.start, ctx.params.body);
					ctx.meta.$statusCode = 201;
					ctx.meta.$location = `/api/v1/processes?businessKey=${encodeURIComponent(view.businessKey ?? "")}`;
					return view;
				}
			},
			postMessage: {
				rest: "POST /processes/messages",
				params: {
					body: {
						type: "object",
						strict: true,
						props: { messageName: KEY, businessKey: { ...KEY, optional: true }, processInstanceId: { ...KEY, optional: true }, variables: VARIABLES }
					}
				},
				handler(this: WorkflowsService, ctx: Context<RestParams<{ messageName: string; businessKey?: string; processInstanceId?: string; variables?: Vars }>>) {
					return call(ctx, Workflows.correlate, ctx.params.body);
				}
			}
		},
		events: {
			[RuleEvents.thresholdCrossed.name](this: WorkflowsService, ctx: Context<RiskThresholdCrossed>) {
				const e = ctx.params;
				if (!e.process) return;
				void this.startProcess(e.process, {
					businessKey: e.customerId,
					customerId: e.customerId,
					unique: true,
					variables: { riskScore: e.newScore, riskThreshold: e.threshold, riskCause: e.cause }
				}).then(
					view => this.logger.info(`workflows: ${e.process} ${view.id} for customer ${e.customerId} (risk ${e.newScore})`),
					(err: unknown) => this.logger.error(`workflows: could not start ${e.process} for customer ${e.customerId}`, err)
				);
			},
			[TicketEvents.opened.name](this: WorkflowsService, ctx: Context<{ ticket: Ticket }>) {
				const t = ctx.params.ticket;
				if (!URGENT.has(t.priority) || !this.definitions.has(TICKET_ESCALATION_PROCESS)) return;
				void this.startProcess(TICKET_ESCALATION_PROCESS, {
					businessKey: t.id,
					customerId: t.customerId,
					unique: true,
					variables: { ticketId: t.id, priority: t.priority, category: t.category, slaDuration: a.ticketSla }
				}).catch((err: unknown) => this.logger.error(`workflows: could not start ${TICKET_ESCALATION_PROCESS} for ticket ${t.id}`, err));
			},
			[TicketEvents.resolved.name](this: WorkflowsService, ctx: Context<{ ticket: Ticket }>) {
				const t = ctx.params.ticket;
				void this.engine.correlate(TICKET_RESOLVED_MESSAGE, { businessKey: t.id }).catch((err: unknown) =>
					this.logger.error(`workflows: could not correlate ${TICKET_RESOLVED_MESSAGE} for ticket ${t.id}`, err)
				);
			}
		},
		methods: {
			startProcess(this: WorkflowsService, processKey: string, opts: { businessKey: string; customerId: string; variables?: Vars; unique?: boolean }): Promise<ProcessView> {
				return this.starts.run(`${processKey}/${opts.businessKey}`, () => this.engine.startProcess(processKey, opts))
					.catch((err: unknown) => { throw asMoleculerError(err); });
			}
		},
		created(this: WorkflowsService) {
			this.starts = new KeyedQueue();
			this.definitions = definitions;
		},
		async started(this: WorkflowsService) {
			const deps: TopicDeps = {
				call: (action, params) => this.broker.call(action, params),
				emit: (event, payload) => void this.broker.emit(event, payload),
				riskThreshold: a.riskThreshold
			};
			const runTopic = (topic: string, task: Parameters<ReturnType<typeof topicHandler>>[0]) => topicHandler(topic)(task, deps);
			if (camundaUrl) {
				this.engine = new CamundaWorkflowEngine({
					baseUrl: camundaUrl,
					definitions: this.definitions,
					runTopic,
					worker: a.camunda,
					workerId: a.camunda.workerId ?? `crm-${this.broker.nodeID}`,
					logger: this.logger
				});
			} else {
				this.engine = new EmbeddedWorkflowEngine({
					definitions: this.definitions,
					store: instanceStore(this),
					runTopic,
					maxRetries: a.camunda.maxRetries,
					retryTimeoutMs: a.camunda.retryTimeoutMs,
					logger: this.logger
				});
				if (config.transporter) {
					this.logger.warn("workflows: CAMUNDA_URL is not set, so processes run on each node's embedded engine and stay on the node that started them; set CAMUNDA_URL for a cluster");
				}
			}
			await this.engine.start();
			this.logger.info(`workflows: ${this.engine.kind} engine${camundaUrl ? ` at ${camundaUrl}` : " (CAMUNDA_URL not set)"}; processes ${[...this.definitions.keys()].join(", ")}`);
		},
		async stopped(this: WorkflowsService) {
			await this.engine?.stop();
		}
	} as unknown as ServiceSchema;
}
