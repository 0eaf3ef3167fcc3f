// A sales opportunity (service `opportunities`) with its stage enum.
import type { InteractionChannel } from "../event-data.schemas.ts";

export const OPPORTUNITY_STAGES = ["QUALIFICATION", "PROPOSAL", "NEGOTIATION", "WON", "LOST"] as const;
export type OpportunityStage = (typeof OPPORTUNITY_STAGES)[number];

/** Stages in which the deal is still open; interactions and scoring matter only there. */
export const OPEN_STAGES: readonly OpportunityStage[] = ["QUALIFICATION", "PROPOSAL", "NEGOTIATION"];

export interface LatestInteraction {
	interactionId: string;
	channel: InteractionChannel;
	/** Event time (ISO). */
	at: string;
	text: string | null;
	/** −1..1, null when neither the event nor its text told anything about the mood. */
	sentiment: number | null;
	/** "event": the event's own number; "text": computed from the text (ml/sentiment.ts). */
	sentimentSource: "event" | "text" | null;
}

export interface Opportunity {
	id: string;
	customerId: string;
	title: string;
	stage: OpportunityStage;
	amount: number;
	currency: string;
	createdAt: string;
	updatedAt: string;
	lastActivityAt: string;
	/** Latest known interaction sentiment (−1..1): what scoring uses. An interaction without one keeps it. */
	sentiment: number | null;
	latestInteraction: LatestInteraction | null;
}
