// Routes one ticket with rules/ticket-routing.nools: one compiled flow, a short session per ticket holding the
// ticket and its candidate agents; the result names the agent (or none) and the rule that decided.
import { MAX_ROUTING_CANDIDATES, type RoutingAgentInput, type RoutingResult, type RoutingTicketInput } from "../../models/contract/index.ts";
import { loadRuleFile, type LoadedRuleFile } from "./nools-loader.ts";

export const TICKET_ROUTING_FILE = "ticket-routing.nools";

/** Firings after which a session is halted: one rule should decide, a few more mean a rule re-fires. */
const MAX_FIRINGS = 10;

/** The ticket fact (`t`); `assignee` and `queued` are what the rules change. */
export class Ticket {
	id: string;
	customerId: string;
	priority: string;
	category: string;
	requiredSkill: string | null;
	assignee: string | null = null;
	queued = false;
	constructor(t: RoutingTicketInput) {
		this.id = t.id;
		this.customerId = t.customerId;
		this.priority = t.priority;
		this.category = t.category;
		this.requiredSkill = t.requiredSkill ?? null;
	}
}

/** The agent fact (`a`): a copy, so a rule cannot change the caller's data. */
export class Agent {
	id: string;
	name: string;
	level: string;
	skills: string[];
	available: boolean;
	load: number;
	constructor(a: RoutingAgentInput) {
		this.id = a.id;
		this.name = a.name ?? a.id;
		this.level = a.level;
		this.skills = [...a.skills];
		this.available = a.available;
		this.load = a.load;
	}
}

export class TicketRouter {
	readonly file: string;
	readonly loaded: LoadedRuleFile;

	/** Compiles the routing file; throws RuleFileError (file, line, reason) when it does not compile. */
	constructor(file: string) {
		this.file = file;
		this.loaded = loadRuleFile(file, { define: { Ticket, Agent } });
	}

	get ruleNames(): string[] {
		return this.loaded.rules.map(r => r.name);
	}

	async route(ticket: RoutingTicketInput, agents: readonly RoutingAgentInput[]): Promise<RoutingResult> {
		const t = new Ticket(ticket);
		const facts: object[] = [t];
		for (const a of agents.slice(0, MAX_ROUTING_CANDIDATES)) facts.push(new Agent(a));
		const session = this.loaded.flow.getSession(...facts);
		const fired: string[] = [];
		session.on("fire", name => {
			// A rule that re-fires after its own modify would loop forever (nools has no no-loop): stop it.
			if (fired.push(name) >= MAX_FIRINGS) session.halt();
		});
		try {
			await session.match();
		} finally {
			session.dispose();
		}
		// The guards let exactly one rule change the ticket; a second firing would be a rule-file bug worth seeing.
		if (fired.length > 1) {
			const names = [...new Set(fired)].join(", ");
			throw new Error(`ticket routing: rules ${names} all fired for ticket ${ticket.id} (${fired.length} firings); every rule must first check t.assignee == null && t.queued == false`);
		}
		return { assignee: t.assignee, rule: fired[0] ?? null };
	}

	dispose(): void {
		this.loaded.dispose();
	}
}
