// Rules on a running node: agents and tickets over the API, a routed ticket names its agent and rule and reaches the
// customer's actor, admin reload with a broken file keeps the previous rules, a broken file fails the start.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { waitFor } from "../harness.ts";
import { startTestNode, type TestNode } from "../support/node.ts";

const SERVICES = "customers,api,rules,agents,tickets";

async function copyRules(): Promise<string> {
	const dir = await mkdtemp(path.join(tmpdir(), "crm-rules-"));
	await cp(path.resolve("rules"), dir, { recursive: true });
	return dir;
}

void describe("agents, tickets and rules over the API", () => {
	let node: TestNode;
	let rulesDir: string;
	before(async () => {
		rulesDir = await copyRules();
		node = await startTestNode({ SERVICES, RULES_DIR: rulesDir });
		// moleculer-web publishes the services' REST actions once it has seen them (debounced).
		await waitFor(async () => (await node.api("/api/v1/agents")).status === 200 && (await node.api("/api/v1/admin/rules")).status === 200, { message: "agents and rules routes published" });
	});
	after(async () => {
		await node?.stop();
		if (rulesDir) await rm(rulesDir, { recursive: true, force: true });
	});

	void it("creates, lists, reads and changes agents; rejects bad input", async () => {
		const created = await node.api("/api/v1/agents", { method: "POST", json: { id: "lee", name: "Lee", level: "L1", skills: ["GENERAL"] } });
		assert.equal(created.status, 201, JSON.stringify(created.body));
		assert.deepEqual({ ...created.body, createdAt: undefined, updatedAt: undefined }, {
			id: "lee", name: "Lee", level: "L1", skills: ["GENERAL"], available: true, load: 0, createdAt: undefined, updatedAt: undefined
		});
		assert.equal((await node.api("/api/v1/agents", { method: "POST", json: { id: "lee", name: "Lee again", level: "L1" } })).status, 409);
		const bad = await node.api("/api/v1/agents", { method: "POST", json: { name: "X", level: "L9" } });
		assert.equal(bad.status, 400);
		assert.match(JSON.stringify(bad.body), /level/);
		assert.equal((await node.api("/api/v1/agents", { method: "POST", json: { id: "nia", name: "Nia", level: "L2", skills: ["NETWORK"], available: false } })).status, 201);

		const available = await node.api("/api/v1/agents?available=true");
		assert.deepEqual(available.body.map((a: { id: string }) => a.id), ["lee"]);
		const patched = await node.api("/api/v1/agents/lee", { method: "PATCH", json: { skills: ["GENERAL", "BILLING"], load: 2 } });
		assert.equal(patched.status, 200);
		assert.deepEqual([patched.body.skills, patched.body.load], [["GENERAL", "BILLING"], 2]);
		assert.equal((await node.api("/api/v1/agents/lee", { method: "PATCH", json: { level: "L7" } })).status, 400);
		assert.equal((await node.api("/api/v1/agents/nobody", { method: "PATCH", json: { load: 1 } })).status, 404);
		assert.equal((await node.api("/api/v1/agents/lee", { method: "PATCH", json: { load: 0 } })).status, 200);
	});

	void it("routes an urgent technical ticket to an L1 when no network agent is available, and tells the customer's actor", async () => {
		const res = await node.api("/api/v1/tickets", { method: "POST", json: { id: "tk-1", customerId: "cust-t1", priority: "HIGH", category: "TECHNICAL", subject: "VPN down" } });
		assert.equal(res.status, 201, JSON.stringify(res.body));
		assert.equal(res.body.rule, "HighTechnicalFallbackL1");
		assert.equal(res.body.assignee.id, "lee");
		assert.equal(res.body.assignee.load, 1);
		assert.deepEqual([res.body.ticket.id, res.body.ticket.status, res.body.ticket.assignee, res.body.ticket.rule], ["tk-1", "OPEN", "lee", "HighTechnicalFallbackL1"]);
		assert.equal((await node.api("/api/v1/agents/lee")).body.load, 1);

		const customer = await node.api("/api/v1/customers/cust-t1");
		assert.equal(customer.status, 200);
		assert.deepEqual(customer.body.openTicketIds, ["tk-1"]);
		assert.equal(customer.body.risk.factors["ticket.high_priority"], 4, "rules/risk.nools saw the event in the actor");

		// The same ticket again: no second routing, no second event applied.
		const again = await node.api("/api/v1/tickets", { method: "POST", json: { id: "tk-1", customerId: "cust-t1", priority: "HIGH", category: "TECHNICAL" } });
		assert.equal(again.status, 200);
		assert.equal(again.body.rule, "HighTechnicalFallbackL1");
		assert.equal((await node.api("/api/v1/agents/lee")).body.load, 1);
		assert.equal((await node.api("/api/v1/customers/cust-t1")).body.version, customer.body.version);
	});

	void it("prefers the network agent once available; resolving releases the agent and the actor's open ticket", async () => {
		assert.equal((await node.api("/api/v1/agents/nia", { method: "PATCH", json: { available: true } })).status, 200);
		const res = await node.api("/api/v1/tickets", { method: "POST", json: { customerId: "cust-t1", priority: "CRITICAL", category: "TECHNICAL" } });
		assert.equal(res.status, 201);
		assert.deepEqual([res.body.assignee.id, res.body.rule], ["nia", "HighTechnicalToNetwork"]);

		const resolved = await node.api(`/api/v1/tickets/${res.body.ticket.id}/resolve`, { method: "POST" });
		assert.equal(resolved.status, 200);
		assert.equal(resolved.body.status, "RESOLVED");
		assert.equal((await node.api("/api/v1/agents/nia")).body.load, 0);
		assert.deepEqual((await node.api("/api/v1/customers/cust-t1")).body.openTicketIds, ["tk-1"]);
		// Resolving twice releases the agent once.
		await node.api(`/api/v1/tickets/${res.body.ticket.id}/resolve`, { method: "POST" });
		assert.equal((await node.api("/api/v1/agents/nia")).body.load, 0);

		const list = await node.api("/api/v1/tickets?customerId=cust-t1&status=OPEN");
		assert.deepEqual(list.body.map((t: { id: string }) => t.id), ["tk-1"]);
		assert.equal((await node.api("/api/v1/tickets", { method: "POST", json: { customerId: "cust-t1", priority: "URGENT", category: "TECHNICAL" } })).status, 400);
	});

	void it("a reload with a broken file answers the file, line and reason and keeps routing with the previous rules", async () => {
		const file = path.join(rulesDir, "ticket-routing.nools");
		const good = await readFile(file, "utf8");
		const lines = good.split("\n");
		const at = lines.findIndex(l => l.includes("t: Ticket t.assignee == null && t.queued == false && t.category == 'BILLING'"));
		lines[at] = lines[at].replace("t.category == 'BILLING'", "t.category == == 'BILLING'");
		await writeFile(file, lines.join("\n"));

		const res = await node.api("/api/v1/admin/rules/reload", { method: "POST" });
		assert.equal(res.status, 422, JSON.stringify(res.body));
		assert.equal(res.body.error.type, "RULES_INVALID");
		assert.equal(res.body.error.data.line, at + 1);
		assert.match(res.body.error.data.file, /ticket-routing\.nools$/);
		assert.match(res.body.error.data.reason, /BillingToBillingSkill.*invalid condition/);

		const routed = await node.api("/api/v1/tickets", { method: "POST", json: { customerId: "cust-t2", priority: "LOW", category: "BILLING" } });
		assert.equal(routed.status, 201);
		assert.equal(routed.body.rule, "BillingToBillingSkill", "the previous rules still route");

		await writeFile(file, good);
		const fixed = await node.api("/api/v1/admin/rules/reload", { method: "POST" });
		assert.equal(fixed.status, 200);
		assert.deepEqual(fixed.body.files.map((f: { file: string; rules: unknown[] }) => [path.basename(f.file), f.rules.length]), [["ticket-routing.nools", 7], ["risk.nools", 5]]);
	});
});

void describe("a rule file that does not compile", () => {
	let rulesDir: string;
	after(async () => {
		if (rulesDir) await rm(rulesDir, { recursive: true, force: true });
	});

	void it("fails the start with the file, the line and the reason", async () => {
		rulesDir = await copyRules();
		const file = path.join(rulesDir, "risk.nools");
		const text = (await readFile(file, "utf8")).replace("addPoints('payment.failed', 8);", "addPoints('payment.failed', 8));");
		await writeFile(file, text);
		const line = text.split("\n").findIndex(l => l.includes("addPoints('payment.failed', 8));")) + 1;
		await assert.rejects(startTestNode({ SERVICES, RULES_DIR: rulesDir }), (err: Error) => {
			assert.match(err.message, new RegExp(`risk\\.nools:${line}: rule "PaymentFailed": syntax error`));
			return true;
		});
	});
});
