// A support ticket (service `tickets`) with its status and priority enums.

export const TICKET_STATUSES = ["OPEN", "RESOLVED"] as const;
export type TicketStatus = (typeof TICKET_STATUSES)[number];

/** Also the priorities a `crm.ticket.opened` event carries (models/event-data.schemas.ts). */
export const TICKET_PRIORITIES = ["LOW", "MEDIUM", "HIGH", "CRITICAL"] as const;
export type TicketPriority = (typeof TICKET_PRIORITIES)[number];

export interface Ticket {
	id: string;
	customerId: string;
	subject: string | null;
	priority: TicketPriority;
	category: string;
	requiredSkill: string | null;
	status: TicketStatus;
	/** Agent id, null while the ticket waits in the queue. */
	assignee: string | null;
	/** The routing rule that assigned (or queued) it. */
	rule: string | null;
	createdAt: string;
	resolvedAt: string | null;
}
