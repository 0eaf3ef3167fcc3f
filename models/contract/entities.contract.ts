// The entity services — tickets, agents, opportunities, device bindings — and opportunity scoring: their actions,
// params and results, and the events they emit. The entities themselves are in models/entities/.
import type { Agent, AgentLevel } from "../entities/agent.entity.ts";
import type { DeviceBinding } from "../entities/device-binding.entity.ts";
import type { Opportunity, OpportunityStage } from "../entities/opportunity.entity.ts";
import type { Ticket, TicketPriority } from "../entities/ticket.entity.ts";
import type { ChurnModelArtifact } from "../../ml/model.ts";
import type { OpportunityFactors } from "../../ml/opportunity-score.ts";
import { action, event } from "./contract.ts";

// ---- tickets ---------------------------------------------------------------------------------------------------

export interface OpenTicketParams {
	id?: string;
	customerId: string;
	subject?: string;
	priority: TicketPriority;
	category: string;
	requiredSkill?: string;
}

export interface OpenedTicket {
	ticket: Ticket;
	assignee: Agent | null;
	rule: string | null;
}

export const Tickets = {
	service: "tickets",
	get: action<{ id: string }, Ticket>("tickets.get"),
	open: action<OpenTicketParams, OpenedTicket>("tickets.open"),
	resolve: action<{ id: string }, Ticket>("tickets.resolve")
} as const;

/** Moleculer events, past tense: the workflows service follows them (ticket-escalation). */
export const TicketEvents = {
	opened: event<{ ticket: Ticket }>("ticket.opened"),
	resolved: event<{ ticket: Ticket }>("ticket.resolved")
} as const;

// ---- agents ----------------------------------------------------------------------------------------------------

export interface CreateAgentParams {
	id?: string;
	name: string;
	level: AgentLevel;
	skills?: string[];
	available?: boolean;
	load?: number;
}

export type ChangeAgentParams = Partial<Pick<Agent, "name" | "level" | "skills" | "available" | "load">>;

export const Agents = {
	service: "agents",
	get: action<{ id: string }, Agent>("agents.get"),
	/** Available agents for a routing session, least loaded first (at most MAX_ROUTING_CANDIDATES). */
	candidates: action<Record<string, never>, Agent[]>("agents.candidates"),
	/** +1 when a ticket is assigned, -1 when it is resolved: how many agents changed (0 or 1). */
	adjustLoad: action<{ id: string; delta: 1 | -1 }, number>("agents.adjustLoad")
} as const;

// ---- opportunities and scoring ---------------------------------------------------------------------------------

export interface CreateOpportunityParams {
	customerId: string;
	title: string;
	stage?: OpportunityStage;
	amount: number;
	currency: string;
	createdAt?: string;
	lastActivityAt?: string;
}

export type ChangeOpportunityParams = Partial<Pick<Opportunity, "title" | "stage" | "amount" | "currency" | "lastActivityAt">>;

export const Opportunities = {
	service: "opportunities",
	get: action<{ id: string }, Opportunity>("opportunities.get"),
	add: action<CreateOpportunityParams, Opportunity>("opportunities.add"),
	change: action<ChangeOpportunityParams & { id: string }, Opportunity>("opportunities.change")
} as const;

/** An opportunity passed inline, e.g. from a workflow's variables; an entity from `opportunities` fits as it is. */
export interface InlineOpportunity {
	id?: string;
	stage: OpportunityStage;
	amount: number;
	createdAt: string;
	lastActivityAt?: string;
	sentiment?: number | null;
}

export interface OpportunityScoreParams {
	opportunityId?: string;
	opportunity?: InlineOpportunity;
}

/** Result of `scoring.opportunity`: stable, the `crm-score-opportunity` external task relies on it (docs/scoring.md). */
export interface OpportunityScoreResult {
	/** The scored opportunity's id; null for an inline opportunity without one. */
	opportunityId: string | null;
	/** 0–100. */
	score: number;
	/** 0–1, the score as a likelihood (heuristic, not calibrated). */
	probability: number;
	/** Points per factor; they add up to the score before clamping to 0–100. */
	factors: OpportunityFactors;
	/** When it was computed (ISO); age and activity depend on it. */
	scoredAt: string;
}

export type ModelInfo =
	| { enabled: false; reason: string }
	| {
		enabled: true;
		path: string;
		name: string;
		description: string | null;
		format: string;
		version: number;
		trainedAt: string;
		data: { path: string; sha256: string; rows: number };
		/** Profile fields the model reads, with the CSV column each was trained from. */
		features: { field: string; column: string; type: string }[];
		/** Network inputs after encoding (one-hot levels, missing indicators). */
		inputs: string[];
		threshold: number;
		thresholdRule: string;
		metrics: ChurnModelArtifact["metrics"];
		training: ChurnModelArtifact["training"];
		/** Points of the risk factor `churn.model` at probability 1 (RISK_CHURN_WEIGHT). */
		churnWeight: number;
	};

export const Scoring = {
	service: "scoring",
	/** `{ opportunityId }` or `{ opportunity }` (exactly one). */
	opportunity: action<OpportunityScoreParams, OpportunityScoreResult>("scoring.opportunity"),
	modelInfo: action<Record<string, never>, ModelInfo>("scoring.modelInfo")
} as const;

// ---- devices ---------------------------------------------------------------------------------------------------

export const Devices = {
	service: "devices",
	/** Which customer a device speaks for (null: not bound); ingest-mqtt caches the answer. */
	lookup: action<{ deviceId: string }, { customerId: string | null }>("devices.lookup")
} as const;

export const DeviceEvents = {
	/** Broadcast after a binding changes, so every ingest node drops its cached answer at once. */
	bindingChanged: event<{ deviceId: string }>("device.binding.changed")
} as const;

export type { DeviceBinding };
