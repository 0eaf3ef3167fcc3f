// The external-task topics of bpmn/*.bpmn and their handlers: one table used by both the embedded engine and the
// Camunda workers. Handlers only call Moleculer actions through the `call` they are given, and are idempotent: an
// engine may run a task twice (a lock expired, a node stopped mid-task and resumed).
import { Agents, call as callVia, Customers, Opportunities, Scoring, Tickets, WorkflowEvents, type Action, type EventDef, type Vars } from "../models/contract/index.ts";
import type { OpportunityStage } from "../models/entities/opportunity.entity.ts";

export type { Vars };

/** What a handler gets: the task's process context and its variables (process variables + input parameters). */
export interface TopicTask {
	topic: string;
	processKey: string;
	processInstanceId: string;
	businessKey: string | null;
	activityId: string;
	variables: Vars;
}

/** Calls a Moleculer action (the broker's ctx.call, passed in: this module has no I/O of its own). */
export type CallAction = (action: string, params: object) => Promise<unknown>;

/** Emits a Moleculer event (fire and forget). */
export type EmitEvent = (event: string, payload: object) => void;

export interface TopicDeps {
	call: CallAction;
	emit: EmitEvent;
	/** Risk score at or above which a customer is not considered retained (RISK_THRESHOLD). */
	riskThreshold: number;
}

/** A business outcome the process models (a boundary error event with this code catches it). Not retried. */
export class TopicBpmnError extends Error {
	override name = "TopicBpmnError";
	readonly code: string;
	constructor(code: string, message: string) {
		super(message);
		this.code = code;
	}
}

/** Variables a handler sets on the process; the engine merges them into the process variables. */
export type TopicHandler = (task: TopicTask, deps: TopicDeps) => Promise<Vars>;

/** Error codes thrown as BPMN errors by the handlers below (also declared as <error> in the BPMN files). */
export const BPMN_ERRORS = {
	scoringUnavailable: "SCORING_UNAVAILABLE",
	opportunityMissing: "OPPORTUNITY_MISSING"
} as const;

function str(v: unknown): string | undefined {
	return typeof v === "string" && v.length > 0 ? v : undefined;
}

function required(task: TopicTask, name: string): string {
	const v = str(task.variables[name]);
	if (v === undefined) throw new Error(`${task.topic} (${task.activityId}): process variable "${name}" is missing`);
	return v;
}

/** A contract action through the handler's `call`. */
function call<P, R>(deps: TopicDeps, a: Action<P, R>, params: P): Promise<R> {
	return callVia({ call: deps.call }, a, params);
}

/** A contract event through the handler's `emit`. */
function emit<P extends object>(deps: TopicDeps, e: EventDef<P>, payload: P): void {
	deps.emit(e.name, payload);
}

/** Moleculer's "no such action anywhere" (the error crosses the wire as a plain object: match on type). */
function isServiceMissing(err: unknown): boolean {
	const type = (err as { type?: string } | null)?.type;
	return type === "SERVICE_NOT_FOUND" || type === "SERVICE_NOT_AVAILABLE";
}

/** The entity does not exist (a 404 from the service itself, not Moleculer's "no such service", also a 404). */
function isNotFound(err: unknown): boolean {
	return (err as { code?: number } | null)?.code === 404 && !isServiceMissing(err);
}

/** The action's service runs nowhere: a failure (retried, then an incident) that names the missing service. */
function serviceMissing(action: string, err: unknown): Error {
	return new Error(`${action} is not available (no node runs the ${action.split(".")[0]} service): ${(err as Error).message}`);
}

/** A unique key for a side effect of one task in one instance, so receivers can drop a repeated one. */
function effectKey(task: TopicTask): string {
	return `${task.processInstanceId}/${task.activityId}`;
}

export const TOPIC_HANDLERS: Readonly<Record<string, TopicHandler>> = {
	/**
	 * Scores the process's opportunity with the scoring service (`scoring.opportunity`). Without that service the
	 * task ends in the BPMN error SCORING_UNAVAILABLE, which the process can route around.
	 */
	"crm-score-opportunity": async (task, deps) => {
		const opportunityId = required(task, "opportunityId");
		let result;
		try {
			result = await call(deps, Scoring.opportunity, { opportunityId });
		} catch (err) {
			if (isServiceMissing(err)) {
				throw new TopicBpmnError(BPMN_ERRORS.scoringUnavailable, `${Scoring.opportunity.name} is not available (no node runs the scoring service): ${(err as Error).message}`);
			}
			if (isNotFound(err)) throw new TopicBpmnError(BPMN_ERRORS.opportunityMissing, `opportunity ${opportunityId} does not exist`);
			throw err;
		}
		return { opportunityScore: result.score, winProbability: result.probability };
	},

	/** Gives the customer an owner: the least loaded available agent. Keeps an owner chosen by an earlier run. */
	"crm-assign-owner": async (task, deps) => {
		const existing = str(task.variables.owner);
		if (existing !== undefined) return { owner: existing };
		const candidates = await call(deps, Agents.candidates, {});
		const senior = candidates.find(a => a.level === "L2" || a.level === "L3");
		const chosen = senior ?? candidates[0];
		// No agent available: the contact task waits unassigned in the team's queue.
		return { owner: chosen?.id ?? null, ownerName: chosen?.name ?? null };
	},

	/** A notification (template from the task's input parameter `template`), emitted once per task with a dedup key. */
	"crm-notify": async (task, deps) => {
		const template = str(task.variables.template) ?? task.activityId;
		emit(deps, WorkflowEvents.notification, {
			key: effectKey(task),
			template,
			processKey: task.processKey,
			processInstanceId: task.processInstanceId,
			customerId: str(task.variables.customerId) ?? null,
			to: str(task.variables.owner) ?? null
		});
		return { [`notified_${task.activityId}`]: true };
	},

	/** Moves the opportunity to `targetStage` (input parameter) or the `stage` variable; setting it twice is harmless. */
	"crm-update-stage": async (task, deps) => {
		const opportunityId = required(task, "opportunityId");
		const stage = str(task.variables.targetStage) ?? required(task, "stage");
		try {
			// The stage is checked by the opportunities service's validator: an unknown one fails the task there.
			await call(deps, Opportunities.change, { id: opportunityId, stage: stage as OpportunityStage });
		} catch (err) {
			if (isServiceMissing(err)) throw serviceMissing(Opportunities.change.name, err);
			if (isNotFound(err)) throw new TopicBpmnError(BPMN_ERRORS.opportunityMissing, `opportunity ${opportunityId} does not exist`);
			throw err;
		}
		return { stage };
	},

	/** Reads the customer's live risk after the contact: retained when it is back under the threshold. */
	"crm-evaluate-retention": async (task, deps) => {
		const customerId = required(task, "customerId");
		const customer = await call(deps, Customers.get, { customerId });
		const riskScore = customer.risk?.score ?? 0;
		const outcome = str(task.variables.outcome);
		// The agent's word counts: a customer who said they are leaving is not retained whatever the score says.
		const retained = outcome === "LOST" ? false : outcome === "SAVED" ? true : riskScore < deps.riskThreshold;
		return { riskScore, retained };
	},

	/** The SLA of an unresolved ticket ran out: escalate it unless it was resolved meanwhile. */
	"crm-escalate-ticket": async (task, deps) => {
		const ticketId = required(task, "ticketId");
		const ticket = await call(deps, Tickets.get, { id: ticketId });
		if (ticket.status === "RESOLVED") return { escalated: false };
		emit(deps, WorkflowEvents.ticketEscalated, { key: effectKey(task), ticketId, customerId: str(task.variables.customerId) ?? null, assignee: ticket.assignee ?? null });
		return { escalated: true };
	}
};

export const TOPICS = Object.keys(TOPIC_HANDLERS);

/** The handler of a topic; an unknown topic is a deployment error worth a clear message. */
export function topicHandler(topic: string): TopicHandler {
	const handler = TOPIC_HANDLERS[topic];
	if (!handler) throw new Error(`no handler for external-task topic "${topic}" (known: ${TOPICS.join(", ")})`);
	return handler;
}
