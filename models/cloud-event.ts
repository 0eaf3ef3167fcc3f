// The CloudEvents 1.0 envelope every source is normalised to (ARCHITECTURE §3), and the event types we accept.

export const EVENT_TYPES = [
	"crm.customer.updated",
	"crm.order.status_changed",
	"crm.payment.failed",
	"crm.interaction.logged",
	"crm.ticket.opened",
	"crm.ticket.resolved",
	"crm.device.telemetry",
	"crm.page.viewed",
	"crm.market.signal"
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/** A validated event's payload as generic code (risk rules) reads it: field by field, each of unknown type. */
export type EventData = Readonly<Record<string, unknown>>;

/** A JSON value as it arrives on the wire. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

export interface CloudEvent<T extends EventType = EventType, D = Record<string, Json>> {
	specversion: "1.0";
	id: string;
	source: string;
	type: T;
	/** The customer id. */
	subject: string;
	/** RFC 3339. */
	time: string;
	datacontenttype?: string;
	data: D;
}

/** An event as a producer builds it, before validation: any type name, any data (the validator decides). */
export interface RawCloudEvent {
	specversion: "1.0";
	id: string;
	source: string;
	type: string;
	subject: string;
	time: string;
	data: Record<string, unknown>;
}

/** The dedup key of an event: `source` + `id` (ARCHITECTURE §3). */
export function eventKey(event: Pick<CloudEvent, "source" | "id">): string {
	return `${event.source}/${event.id}`;
}
