// A support agent tickets are routed to (service `agents`) with its level enum.

export const AGENT_LEVELS = ["L1", "L2", "L3"] as const;
export type AgentLevel = (typeof AGENT_LEVELS)[number];

export interface Agent {
	id: string;
	name: string;
	level: AgentLevel;
	/** Upper-case skill tags, e.g. NETWORK, BILLING. */
	skills: string[];
	available: boolean;
	/** Open tickets assigned to the agent. */
	load: number;
	createdAt: string;
	updatedAt: string;
}
