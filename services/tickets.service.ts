// tickets: support tickets (moleculer-db through DbMixin). Opening one routes it with the nools rules, counts it on
// the agent, and tells the customer's actor (crm.ticket.opened); resolving it does the reverse. REST under /api/v1/tickets.
import { randomBytes } from "node:crypto";
import type { Context, Errors, Service, ServiceSchema } from "moleculer";
import type { Config } from "../config/index.ts";
import { DbMixin } from "../mixins/db.mixin.ts";
import type { CloudEvent, Json } from "../models/cloud-event.ts";
import {
	Agents, broadcast, call, Customers, CUSTOMER_ID, emit, Rules, TicketEvents, Tickets, type OpenedTicket, type OpenTicketParams
} from "../models/contract/index.ts";
import type { Agent } from "../models/entities/agent.entity.ts";
import { TICKET_PRIORITIES, TICKET_STATUSES, type Ticket, type TicketStatus } from "../models/entities/ticket.entity.ts";
import { contractError } from "../runtime/contract-error.ts";

/** Source of the CloudEvents this service sends to customer actors; with the ticket id it is their dedup key. */
export const TICKET_EVENT_SOURCE = "/crm/tickets";

type TicketDoc = Omit<Ticket, "id"> & { _id: string };

interface Adapter {
	findById(id: string): Promise<TicketDoc | null>;
	find(filters: { query?: object; limit?: number; offset?: number; sort?: string[] }): Promise<TicketDoc[]>;
	insert(doc: TicketDoc): Promise<TicketDoc>;
	updateMany(query: object, update: object): Promise<number>;
}

interface RestParams<B = unknown, Q = Record<string, unknown>, P = Record<string, string>> { body: B; query: Q; params: P }

const TICKET_ID = { type: "string", min: 1, max: 64, pattern: /^[A-Za-z0-9][A-Za-z0-9._:@-]*$/ } as const;
const CATEGORY = { type: "string", min: 1, max: 64, pattern: /^[A-Z][A-Z0-9_]*$/, messages: { stringPattern: "'{field}' is an upper-case tag such as TECHNICAL or BILLING" } } as const;
const OPEN_SCHEMA = {
	id: { ...TICKET_ID, optional: true },
	customerId: CUSTOMER_ID,
	subject: { type: "string", max: 256, optional: true },
	priority: { type: "enum", values: [...TICKET_PRIORITIES] },
	category: CATEGORY,
	requiredSkill: { ...CATEGORY, optional: true }
} as const;
const LIST_QUERY = {
	customerId: { ...CUSTOMER_ID, optional: true },
	status: { type: "enum", values: [...TICKET_STATUSES], optional: true },
	assignee: { type: "string", min: 1, max: 64, optional: true },
	limit: { type: "number", integer: true, min: 1, max: 1000, optional: true, convert: true },
	offset: { type: "number", integer: true, min: 0, optional: true, convert: true }
} as const;

interface ListParams { customerId?: string; status?: TicketStatus; assignee?: string; limit?: number; offset?: number }

type TicketsService = Service & {
	adapter: Adapter;
	clearCache(): Promise<void>;
	/** Serialises routing on this node, so two tickets opened at once do not both see the same agent load. */
	routingQueue: Promise<unknown>;
	openTicket(ctx: Context, p: OpenTicketParams): Promise<{ opened: OpenedTicket; created: boolean }>;
	resolveTicket(ctx: Context, id: string): Promise<Ticket>;
	tellActor(ctx: Context, ticket: Ticket, kind: "opened" | "resolved"): Promise<void>;
};

function toTicket(doc: TicketDoc): Ticket {
	const { _id, ...rest } = doc;
	return { id: _id, ...rest };
}

function notFound(id: string): Errors.MoleculerError {
	return contractError("TICKET_NOT_FOUND", `ticket ${id} not found`, { id });
}

/** The CloudEvent a ticket change is for the customer's actor; its id makes a re-send a duplicate. */
export function ticketEvent(ticket: Ticket, kind: "opened" | "resolved"): CloudEvent {
	const data: Record<string, Json> = { ticketId: ticket.id };
	if (kind === "opened") {
		data.priority = ticket.priority;
		data.category = ticket.category;
		if (ticket.subject !== null) data.subject = ticket.subject;
	}
	return {
		specversion: "1.0",
		id: `ticket-${kind}-${ticket.id}`,
		source: TICKET_EVENT_SOURCE,
		type: kind === "opened" ? "crm.ticket.opened" : "crm.ticket.resolved",
		subject: ticket.customerId,
		time: kind === "opened" ? ticket.createdAt : ticket.resolvedAt ?? ticket.createdAt,
		data
	};
}

export function createTicketsService(config: Config, now: () => number = Date.now): ServiceSchema {
	return {
		name: Tickets.service,
		mixins: [DbMixin({ collection: "tickets", config, indexes: ["customerId", "status"] }) as ServiceSchema],
		settings: { rest: "/" },
		actions: {
			get: {
				visibility: "public",
				params: { id: TICKET_ID },
				async handler(this: TicketsService, ctx: Context<{ id: string }>): Promise<Ticket> {
					const doc = await this.adapter.findById(ctx.params.id);
					if (!doc) throw notFound(ctx.params.id);
					return toTicket(doc);
				}
			},
			/** Opens (and routes) a ticket; with an id that exists already it returns that ticket unchanged. */
			open: {
				visibility: "public",
				params: { ...OPEN_SCHEMA, $$strict: true },
				async handler(this: TicketsService, ctx: Context<OpenTicketParams>): Promise<OpenedTicket> {
					return (await this.openTicket(ctx, ctx.params)).opened;
				}
			},
			resolve: {
				visibility: "public",
				params: { id: TICKET_ID },
				handler(this: TicketsService, ctx: Context<{ id: string }>): Promise<Ticket> {
					return this.resolveTicket(ctx, ctx.params.id);
				}
			},
			postTicket: {
				rest: "POST /tickets",
				params: { body: { type: "object", props: OPEN_SCHEMA, strict: true } },
				async handler(this: TicketsService, ctx: Context<RestParams<OpenTicketParams>, { $statusCode?: number; $location?: string }>): Promise<OpenedTicket> {
					const { opened, created } = await this.openTicket(ctx, ctx.params.body);
					ctx.meta.$statusCode = created ? 201 : 200;
					if (created) ctx.meta.$location = `/api/v1/tickets/${encodeURIComponent(opened.ticket.id)}`;
					return opened;
				}
			},
			listTickets: {
				rest: "GET /tickets",
				params: { query: { type: "object", props: LIST_QUERY, strict: true } },
				async handler(this: TicketsService, ctx: Context<RestParams<unknown, ListParams>>): Promise<Ticket[]> {
					const { customerId, status, assignee, limit, offset } = ctx.params.query;
					const query: Record<string, unknown> = {};
					if (customerId !== undefined) query.customerId = customerId;
					if (status !== undefined) query.status = status;
					if (assignee !== undefined) query.assignee = assignee;
					const docs = await this.adapter.find({ query, limit: limit ?? 50, offset: offset ?? 0, sort: ["-createdAt"] });
					return docs.map(toTicket);
				}
			},
			getTicket: {
				rest: "GET /tickets/:id",
				params: { params: { type: "object", props: { id: TICKET_ID } } },
				handler(this: TicketsService, ctx: Context<RestParams<unknown, unknown, { id: string }>>): Promise<Ticket> {
					return call(ctx, Tickets.get, { id: ctx.params.params.id });
				}
			},
			postResolve: {
				rest: "POST /tickets/:id/resolve",
				params: { params: { type: "object", props: { id: TICKET_ID } } },
				handler(this: TicketsService, ctx: Context<RestParams<unknown, unknown, { id: string }>>): Promise<Ticket> {
					return this.resolveTicket(ctx, ctx.params.params.id);
				}
			}
		},
		methods: {
			async openTicket(this: TicketsService, ctx: Context, p: OpenTicketParams): Promise<{ opened: OpenedTicket; created: boolean }> {
				if (p.id !== undefined) {
					const existing = await this.adapter.findById(p.id);
					if (existing) {
						const ticket = toTicket(existing);
						if (ticket.customerId !== p.customerId) {
							throw contractError("TICKET_EXISTS", `ticket ${p.id} belongs to another customer`, { id: p.id });
						}
						// A retry after a failed hand-over to the actor: the event id makes a second delivery harmless.
						await this.tellActor(ctx, ticket, "opened");
						const assignee = ticket.assignee ? await call(ctx, Agents.get, { id: ticket.assignee }).catch(() => null) : null;
						return { opened: { ticket, assignee, rule: ticket.rule }, created: false };
					}
				}
				const id = p.id ?? `tkt-${randomBytes(6).toString("hex")}`;
				const route = async (): Promise<{ ticket: Ticket; agent: Agent | null }> => {
					const agents = await call(ctx, Agents.candidates, {});
					const routed = await call(ctx, Rules.route, {
						ticket: { id, customerId: p.customerId, priority: p.priority, category: p.category, requiredSkill: p.requiredSkill ?? null },
						agents: agents.map(a => ({ id: a.id, level: a.level, skills: a.skills, available: a.available, load: a.load }))
					});
					const doc = await this.adapter.insert({
						_id: id,
						customerId: p.customerId,
						subject: p.subject ?? null,
						priority: p.priority,
						category: p.category,
						requiredSkill: p.requiredSkill ?? null,
						status: "OPEN",
						assignee: routed.assignee,
						rule: routed.rule,
						createdAt: new Date(now()).toISOString(),
						resolvedAt: null
					});
					if (routed.assignee) await call(ctx, Agents.adjustLoad, { id: routed.assignee, delta: 1 });
					return { ticket: toTicket(doc), agent: agents.find(a => a.id === routed.assignee) ?? null };
				};
				const next = this.routingQueue.then(route, route);
				this.routingQueue = next.catch(() => undefined);
				const { ticket, agent } = await next;
				await this.tellActor(ctx, ticket, "opened");
				void emit(this.broker, TicketEvents.opened, { ticket });
				const assignee = agent ? { ...agent, load: agent.load + 1 } : null;
				return { opened: { ticket, assignee, rule: ticket.rule }, created: true };
			},

			async resolveTicket(this: TicketsService, ctx: Context, id: string): Promise<Ticket> {
				const resolvedAt = new Date(now()).toISOString();
				// Conditional on OPEN, so two concurrent resolves release the agent's load once.
				const changed = await this.adapter.updateMany({ _id: id, status: "OPEN" }, { $set: { status: "RESOLVED", resolvedAt } });
				const doc = await this.adapter.findById(id);
				if (!doc) throw notFound(id);
				const ticket = toTicket(doc);
				if (changed > 0) {
					await this.clearCache();
					if (ticket.assignee) await call(ctx, Agents.adjustLoad, { id: ticket.assignee, delta: -1 });
				}
				await this.tellActor(ctx, ticket, "resolved");
				// Broadcast: with embedded workflow engines the escalation waiting for it lives on one node, any node.
				if (changed > 0) void broadcast(this.broker, TicketEvents.resolved, { ticket });
				return ticket;
			},

			async tellActor(this: TicketsService, ctx: Context, ticket: Ticket, kind: "opened" | "resolved"): Promise<void> {
				await call(ctx, Customers.handle, { customerId: ticket.customerId, event: ticketEvent(ticket, kind) });
			}
		},
		created(this: TicketsService) {
			this.routingQueue = Promise.resolve();
		}
	} as unknown as ServiceSchema;
}
