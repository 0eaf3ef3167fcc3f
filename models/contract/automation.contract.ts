// Rules and workflows: ticket routing, rule reloads, the risk-threshold event, and the BPMN process actions and views.
import { action, event } from "./contract.ts";

/** Process variables. */
export type Vars = Record<string, unknown>;

// ---- rules -----------------------------------------------------------------------------------------------------

/** Candidate agents beyond this many are not offered to a routing session: its `not` joins grow with the square. */
export const MAX_ROUTING_CANDIDATES = 500;

export interface RoutingTicketInput {
	id: string;
	customerId: string;
	priority: string;
	category: string;
	requiredSkill?: string | null;
}

export interface RoutingAgentInput {
	id: string;
	name?: string;
	level: string;
	skills: string[];
	available: boolean;
	load: number;
}

export interface RoutingResult {
	/** Agent id, or null when the ticket waits in the queue. */
	assignee: string | null;
	/** Name of the rule that assigned (or queued) the ticket; null when no rule fired. */
	rule: string | null;
}

export interface RuleFileStatus {
	file: string;
	rules: { name: string; line: number }[];
}

export interface RulesStatus {
	nodeID: string;
	loadedAt: string;
	riskEngine: string;
	files: RuleFileStatus[];
}

export const Rules = {
	service: "rules",
	route: action<{ ticket: RoutingTicketInput; agents: RoutingAgentInput[] }, RoutingResult>("rules.route"),
	reload: action<Record<string, never>, RulesStatus>("rules.reload"),
	status: action<Record<string, never>, RulesStatus>("rules.status")
} as const;

/** `customer.risk.threshold_crossed`: a customer's risk score crossed RISK_THRESHOLD upwards. */
export interface RiskThresholdCrossed {
	customerId: string;
	threshold: number;
	oldScore: number;
	newScore: number;
	factors: Record<string, number>;
	cause: string;
	/** The process the threshold starts (RISK_THRESHOLD_PROCESS), if any. */
	process?: string;
}

export const RuleEvents = {
	thresholdCrossed: event<RiskThresholdCrossed>("customer.risk.threshold_crossed"),
	/** Broadcast to the rules services of every node: compile the rule files again. */
	reloadRequested: event<{ by: string }>("rules.reload.requested")
} as const;

// ---- workflows -------------------------------------------------------------------------------------------------

export type ProcessState = "running" | "completed" | "failed" | "terminated" | "suspended";
export const PROCESS_STATES: readonly ProcessState[] = ["running", "completed", "failed", "terminated", "suspended"];

export interface ProcessView {
	id: string;
	processKey: string;
	businessKey: string | null;
	customerId: string | null;
	state: ProcessState;
	startedAt: string | null;
	endedAt: string | null;
	/** Activities the instance waits in (user tasks, timers, messages, running external tasks). */
	activeActivities: string[];
	/** Why it failed, when it did. */
	error: string | null;
	variables: Vars;
}

export interface TaskView {
	id: string;
	name: string;
	/** The user task's id in the BPMN file. */
	taskKey: string;
	processInstanceId: string;
	processKey: string;
	businessKey: string | null;
	customerId: string | null;
	assignee: string | null;
	createdAt: string | null;
}

export interface ProcessFilter {
	customerId?: string;
	processKey?: string;
	businessKey?: string;
	state?: ProcessState;
	limit?: number;
}

export interface StartParams {
	processKey: string;
	businessKey?: string;
	customerId: string;
	variables?: Vars;
	/** When an instance of this process with this business key is already running, return it instead. */
	unique?: boolean;
}

export interface CorrelateParams {
	messageName: string;
	businessKey?: string;
	processInstanceId?: string;
	variables?: Vars;
}

export const Workflows = {
	service: "workflows",
	start: action<StartParams, ProcessView>("workflows.start"),
	correlate: action<CorrelateParams, { correlated: number }>("workflows.correlate"),
	tasks: action<{ customerId?: string; processInstanceId?: string }, TaskView[]>("workflows.tasks"),
	processes: action<ProcessFilter, ProcessView[]>("workflows.processes"),
	completeTask: action<{ id: string; variables?: Vars }, { id: string; completed: true }>("workflows.completeTask")
} as const;

export const WorkflowEvents = {
	/** A process's notification task (`crm-notify`); `key` is the same when the task runs again. */
	notification: event<{ key: string; template: string; processKey: string; processInstanceId: string; customerId: string | null; to: string | null }>("workflow.notification"),
	/** A ticket still open when its SLA ran out (`crm-escalate-ticket`). */
	ticketEscalated: event<{ key: string; ticketId: string; customerId: string | null; assignee: string | null }>("ticket.escalated")
} as const;
