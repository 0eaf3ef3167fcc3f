// rules/ticket-routing.nools: each rule assigns the ticket when it should and leaves it to another rule when it
// should not; one short session per ticket; a rule without the re-fire guard is caught.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { TicketRouter } from "../../../services/rules/ticket-router.ts";
import type { RoutingAgentInput, RoutingTicketInput } from "../../../models/contract/index.ts";

const FILE = path.resolve("rules/ticket-routing.nools");

const agent = (id: string, level: string, skills: string[], load = 0, available = true): RoutingAgentInput => ({ id, level, skills, available, load });
const ticket = (over: Partial<RoutingTicketInput> = {}): RoutingTicketInput => ({ id: "t-1", customerId: "c-1", priority: "LOW", category: "OTHER", ...over });

interface Case { name: string; ticket: RoutingTicketInput; agents: RoutingAgentInput[]; rule: string; assignee: string | null }

const CASES: Case[] = [
	{
		name: "RequiredSkill fires: the least loaded agent with the skill",
		ticket: ticket({ requiredSkill: "BILLING" }),
		agents: [agent("b1", "L2", ["BILLING"], 3), agent("b2", "L1", ["BILLING"], 1), agent("x", "L1", [], 0)],
		rule: "RequiredSkill", assignee: "b2"
	},
	{
		name: "RequiredSkill does not fire when nobody has the skill",
		ticket: ticket({ requiredSkill: "LEGAL" }),
		agents: [agent("b1", "L2", ["BILLING"], 3), agent("x", "L1", [], 0)],
		rule: "LeastLoaded", assignee: "x"
	},
	{
		name: "HighTechnicalToNetwork fires: an urgent technical ticket goes to a network specialist",
		ticket: ticket({ priority: "HIGH", category: "TECHNICAL" }),
		agents: [agent("l1", "L1", [], 0), agent("n1", "L2", ["NETWORK"], 4), agent("n2", "L2", ["NETWORK"], 2)],
		rule: "HighTechnicalToNetwork", assignee: "n2"
	},
	{
		name: "HighTechnicalToNetwork does not fire for a MEDIUM technical ticket",
		ticket: ticket({ priority: "MEDIUM", category: "TECHNICAL" }),
		agents: [agent("l1", "L1", [], 0), agent("n1", "L2", ["NETWORK"], 4)],
		rule: "LeastLoaded", assignee: "l1"
	},
	{
		name: "HighTechnicalFallbackL1 fires (the seed's rule): no network agent available, so an available L1",
		ticket: ticket({ priority: "HIGH", category: "TECHNICAL" }),
		agents: [agent("n1", "L2", ["NETWORK"], 0, false), agent("l1a", "L1", [], 3), agent("l1b", "L1", [], 1), agent("l2", "L2", [], 0)],
		rule: "HighTechnicalFallbackL1", assignee: "l1b"
	},
	{
		name: "HighTechnicalFallbackL1 also fires when the network agent is at full load",
		ticket: ticket({ priority: "CRITICAL", category: "TECHNICAL" }),
		agents: [agent("n1", "L2", ["NETWORK"], 8), agent("l1", "L1", [], 2)],
		rule: "HighTechnicalFallbackL1", assignee: "l1"
	},
	{
		name: "HighTechnicalFallbackL1 does not fire while a network agent is available",
		ticket: ticket({ priority: "HIGH", category: "TECHNICAL" }),
		agents: [agent("n1", "L2", ["NETWORK"], 7), agent("l1", "L1", [], 0)],
		rule: "HighTechnicalToNetwork", assignee: "n1"
	},
	{
		name: "BillingToBillingSkill fires: a billing question goes to billing",
		ticket: ticket({ category: "BILLING" }),
		agents: [agent("x", "L1", [], 0), agent("b1", "L2", ["BILLING"], 5)],
		rule: "BillingToBillingSkill", assignee: "b1"
	},
	{
		name: "BillingToBillingSkill does not fire without a billing agent",
		ticket: ticket({ category: "BILLING" }),
		agents: [agent("x", "L1", [], 1), agent("y", "L1", [], 0)],
		rule: "LeastLoaded", assignee: "y"
	},
	{
		name: "CriticalToSenior fires: a critical ticket goes to an L3",
		ticket: ticket({ priority: "CRITICAL" }),
		agents: [agent("x", "L1", [], 0), agent("s1", "L3", [], 6)],
		rule: "CriticalToSenior", assignee: "s1"
	},
	{
		name: "CriticalToSenior does not fire for a HIGH ticket",
		ticket: ticket({ priority: "HIGH" }),
		agents: [agent("x", "L1", [], 0), agent("s1", "L3", [], 6)],
		rule: "LeastLoaded", assignee: "x"
	},
	{
		name: "LeastLoaded fires: the lowest load wins, ties go to the smaller id",
		ticket: ticket(),
		agents: [agent("c", "L1", [], 2), agent("b", "L2", [], 1), agent("a", "L3", [], 1), agent("z", "L1", [], 0, false)],
		rule: "LeastLoaded", assignee: "a"
	},
	{
		name: "LeastLoaded does not fire when every agent is away or full",
		ticket: ticket(),
		agents: [agent("a", "L1", [], 0, false), agent("b", "L1", [], 8)],
		rule: "NoAgentAvailable", assignee: null
	},
	{
		name: "NoAgentAvailable fires without candidates: the ticket waits in the queue",
		ticket: ticket({ priority: "CRITICAL", category: "TECHNICAL" }),
		agents: [],
		rule: "NoAgentAvailable", assignee: null
	},
	{
		name: "NoAgentAvailable does not fire when one agent can take it",
		ticket: ticket(),
		agents: [agent("a", "L1", [], 7)],
		rule: "LeastLoaded", assignee: "a"
	}
];

void describe("ticket routing rules", () => {
	const router = new TicketRouter(FILE);
	after(() => router.dispose());

	void it("compiles the seven rules of the file", () => {
		assert.deepEqual(router.ruleNames, ["RequiredSkill", "HighTechnicalToNetwork", "HighTechnicalFallbackL1", "BillingToBillingSkill", "CriticalToSenior", "LeastLoaded", "NoAgentAvailable"]);
	});

	for (const c of CASES) {
		void it(c.name, async () => {
			const result = await router.route(c.ticket, c.agents);
			assert.deepEqual(result, { assignee: c.assignee, rule: c.rule });
		});
	}

	void it("every rule of the file has a case that fires it", () => {
		const fired = new Set(CASES.map(c => c.rule));
		for (const name of router.ruleNames) assert.ok(fired.has(name), name);
	});

	void it("does not change the caller's agent objects", async () => {
		const agents = [agent("a", "L1", ["X"], 1)];
		await router.route(ticket(), agents);
		assert.deepEqual(agents, [agent("a", "L1", ["X"], 1)]);
	});
});

void describe("a routing rule without the re-fire guard", () => {
	let dir: string;
	after(async () => {
		if (dir) await rm(dir, { recursive: true, force: true });
	});

	void it("is reported instead of assigning twice", async () => {
		dir = await mkdtemp(path.join(tmpdir(), "crm-rules-"));
		const file = path.join(dir, "ticket-routing.nools");
		await writeFile(file, [
			"rule First { salience: 2; when { t: Ticket t.assignee == null; a: Agent a.available == true; } then { modify(t, function () { this.assignee = a.id; }); } }",
			"rule Second { salience: 1; when { t: Ticket; a: Agent a.available == true; } then { modify(t, function () { this.rule = 'again'; }); } }"
		].join("\n"));
		const router = new TicketRouter(file);
		try {
			await assert.rejects(router.route(ticket(), [agent("a", "L1", [])]), /First, Second all fired/);
		} finally {
			router.dispose();
		}
	});
});
