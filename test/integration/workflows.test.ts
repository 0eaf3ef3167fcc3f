// The embedded BPMN engine end to end, no server beyond the node: events push a customer's risk over the threshold
// -> churn-retention starts -> its external task assigns an owner -> the user task is listed -> the node restarts ->
// the task is still there -> completing it ends the process. Also: ticket escalation on its SLA timer and on the
// "ticket-resolved" message, and a broken BPMN file failing the start.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { waitFor } from "../harness.ts";
import { cloudEvent, startTestNode, type TestNode } from "../support/node.ts";

const ENV = {
	SERVICES: "customers,api,rules,agents,tickets,workflows,opportunities",
	RISK_THRESHOLD: "25",
	TICKET_SLA: "PT1S",
	CAMUNDA_RETRY_TIMEOUT_MS: "50"
};

interface Task { id: string; name: string; taskKey: string; processInstanceId: string; assignee: string | null }
interface Process { id: string; processKey: string; state: string; activeActivities: string[]; variables: Record<string, unknown>; error: string | null }

async function routesReady(node: TestNode): Promise<void> {
	await waitFor(async () => (await node.api("/api/v1/tasks")).status === 200 && (await node.api("/api/v1/agents")).status === 200, { message: "REST routes published" });
}

async function processesOf(node: TestNode, customerId: string, processKey: string): Promise<Process[]> {
	const res = await node.api(`/api/v1/processes?customerId=${customerId}&processKey=${processKey}`);
	assert.equal(res.status, 200, JSON.stringify(res.body));
	return res.body as Process[];
}

void describe("churn retention on the embedded engine, across a restart", () => {
	let node: TestNode;
	let dataDir: string;
	before(async () => {
		dataDir = await mkdtemp(path.join(tmpdir(), "crm-wf-"));
		node = await startTestNode(ENV, dataDir);
		await routesReady(node);
		assert.equal((await node.api("/api/v1/agents", { method: "POST", json: { id: "sam", name: "Sam", level: "L2" } })).status, 201);
	});
	after(async () => {
		await node?.stop();
		await rm(dataDir, { recursive: true, force: true });
	});

	void it("risk over the threshold -> owner assigned -> contact task -> restart -> completed -> process ends", async () => {
		const c = "cust-churn-1";
		const events = [
			cloudEvent("crm.order.status_changed", c, { orderId: "o1", newStatus: "CANCELLED" }),
			cloudEvent("crm.payment.failed", c, { paymentId: "p1", amount: 20 })
		];
		assert.equal((await node.api("/api/v1/events", { method: "POST", json: events })).status, 202);
		assert.equal((await node.api(`/api/v1/customers/${c}`)).body.risk.score, 18);
		assert.deepEqual(await processesOf(node, c, "churn-retention"), [], "under the threshold: nothing started");

		// 18 -> 28 crosses 25.
		const cross = cloudEvent("crm.order.status_changed", c, { orderId: "o2", newStatus: "CANCELLED" });
		assert.equal((await node.api("/api/v1/events", { method: "POST", json: cross })).status, 202);

		let tasks: Task[] = [];
		await waitFor(async () => {
			tasks = (await node.api(`/api/v1/tasks?customerId=${c}`)).body as Task[];
			return tasks.length === 1;
		}, { message: "the contact task appears" });
		assert.deepEqual([tasks[0].name, tasks[0].taskKey, tasks[0].assignee], ["Contact customer", "ContactCustomer", "sam"], "crm-assign-owner ran and set the owner");
		const [running] = await processesOf(node, c, "churn-retention");
		assert.equal(running.state, "running");
		assert.deepEqual(running.activeActivities, ["ContactCustomer"]);
		assert.equal(running.variables.riskScore, 28);

		// More risk does not start a second retention for the same customer.
		await node.api("/api/v1/events", { method: "POST", json: cloudEvent("crm.payment.failed", c, { paymentId: "p2", amount: 5 }) });
		assert.equal((await processesOf(node, c, "churn-retention")).length, 1);

		await node.stop({ keepData: true });
		node = await startTestNode(ENV, dataDir);
		await routesReady(node);

		const after = (await node.api(`/api/v1/tasks?customerId=${c}`)).body as Task[];
		assert.deepEqual(after.map(t => [t.id, t.assignee]), [[tasks[0].id, "sam"]], "the same task is waiting after the restart");

		const done = await node.api(`/api/v1/tasks/${encodeURIComponent(after[0].id)}/complete`, { method: "POST", json: { variables: { outcome: "SAVED", note: "offered a discount" } } });
		assert.equal(done.status, 200, JSON.stringify(done.body));
		let ended: Process | undefined;
		await waitFor(async () => {
			[ended] = await processesOf(node, c, "churn-retention");
			return ended?.state === "completed";
		}, { message: "the retention process ends" });
		assert.equal(ended!.variables.outcome, "SAVED");
		assert.equal(ended!.variables.retained, true);
		assert.deepEqual((await node.api(`/api/v1/tasks?customerId=${c}`)).body, []);
		assert.equal((await node.api(`/api/v1/tasks/${encodeURIComponent(after[0].id)}/complete`, { method: "POST", json: {} })).status, 404);
	});
});

void describe("ticket escalation on the embedded engine", () => {
	let node: TestNode;
	before(async () => {
		node = await startTestNode(ENV);
		await routesReady(node);
		assert.equal((await node.api("/api/v1/agents", { method: "POST", json: { id: "lee", name: "Lee", level: "L1" } })).status, 201);
	});
	after(async () => {
		await node?.stop();
	});

	void it("an urgent ticket left open past its SLA is escalated", async () => {
		const events: { key: string }[] = [];
		node.broker.createService({ name: "escalation-probe", events: { "ticket.escalated"(ctx: { params: { key: string } }) { events.push(ctx.params); } } });
		const res = await node.api("/api/v1/tickets", { method: "POST", json: { customerId: "cust-esc-1", priority: "HIGH", category: "OTHER" } });
		assert.equal(res.status, 201);
		let proc: Process | undefined;
		await waitFor(async () => {
			[proc] = await processesOf(node, "cust-esc-1", "ticket-escalation");
			return proc?.state === "completed";
		}, { timeoutMs: 10_000, message: "escalation process ends after the 1 s SLA" });
		assert.equal(proc!.variables.escalated, true);
		assert.equal(proc!.variables.notified_NotifyTeam, true);
		assert.equal(events.length, 1);
	});

	void it("resolving the ticket before its SLA ends the process through the ticket-resolved message", async () => {
		const res = await node.api("/api/v1/tickets", { method: "POST", json: { customerId: "cust-esc-2", priority: "CRITICAL", category: "OTHER" } });
		await waitFor(async () => (await processesOf(node, "cust-esc-2", "ticket-escalation"))[0]?.activeActivities.includes("TicketResolved"), { message: "waiting for the message" });
		await node.api(`/api/v1/tickets/${res.body.ticket.id}/resolve`, { method: "POST" });
		let proc: Process | undefined;
		await waitFor(async () => {
			[proc] = await processesOf(node, "cust-esc-2", "ticket-escalation");
			return proc?.state === "completed";
		}, { message: "ends on the message" });
		assert.equal(proc!.variables.escalated, undefined, "never escalated");
	});

	void it("a LOW ticket starts no escalation", async () => {
		assert.equal((await node.api("/api/v1/tickets", { method: "POST", json: { customerId: "cust-esc-3", priority: "LOW", category: "OTHER" } })).status, 201);
		assert.deepEqual(await processesOf(node, "cust-esc-3", "ticket-escalation"), []);
	});

	void it("the sales process follows its stage conditions; a missing scoring service is routed around", async () => {
		const complete = async (customerId: string, taskKey: string, stage: string) => {
			let tasks: Task[] = [];
			await waitFor(async () => {
				tasks = (await node.api(`/api/v1/tasks?customerId=${customerId}`)).body as Task[];
				return tasks.length === 1 && tasks[0].taskKey === taskKey;
			}, { message: `task ${taskKey}` });
			assert.equal((await node.api(`/api/v1/tasks/${encodeURIComponent(tasks[0].id)}/complete`, { method: "POST", json: { variables: { stage } } })).status, 200);
		};
		const sale = async (customerId: string, steps: [string, string][]): Promise<{ opp: { id: string; stage: string }; proc: Process }> => {
			const opp = await node.api("/api/v1/opportunities", { method: "POST", json: { customerId, title: "Fleet renewal", amount: 12000, currency: "EUR" } });
			assert.equal(opp.status, 201, JSON.stringify(opp.body));
			// No scoring service on this node: crm-score-opportunity ends in SCORING_UNAVAILABLE, caught by the boundary event.
			const started = await node.api("/api/v1/processes", { method: "POST", json: { processKey: "sales-follow-up", customerId, businessKey: opp.body.id, variables: { opportunityId: opp.body.id, stage: "QUALIFICATION" } } });
			assert.equal(started.status, 201, JSON.stringify(started.body));
			for (const [taskKey, stage] of steps) await complete(customerId, taskKey, stage);
			let proc: Process | undefined;
			await waitFor(async () => {
				[proc] = await processesOf(node, customerId, "sales-follow-up");
				return proc?.state === "completed" || proc?.state === "failed";
			}, { message: "the sales process ends" });
			return { opp: (await node.api(`/api/v1/opportunities/${opp.body.id}`)).body, proc: proc! };
		};

		const won = await sale("cust-s1", [["Qualify", "PROPOSAL"], ["SendProposal", "NEGOTIATION"], ["Negotiate", "WON"]]);
		assert.equal(won.proc.state, "completed", won.proc.error ?? "");
		assert.equal(won.opp.stage, "WON");
		assert.equal(won.proc.variables.notified_NotifyWon, true);

		const lost = await sale("cust-s2", [["Qualify", "PROPOSAL"], ["SendProposal", "PROPOSAL"]]);
		assert.equal(lost.proc.state, "completed", lost.proc.error ?? "");
		assert.equal(lost.opp.stage, "LOST", "no NEGOTIATION after the proposal: the default flow marks it lost");
	});
});

void describe("a BPMN file that cannot be used", () => {
	let bpmnDir: string;
	after(async () => {
		if (bpmnDir) await rm(bpmnDir, { recursive: true, force: true });
	});

	void it("fails the start with the file and the reason", async () => {
		bpmnDir = await mkdtemp(path.join(tmpdir(), "crm-bpmn-"));
		await cp(path.resolve("bpmn"), bpmnDir, { recursive: true });
		const file = path.join(bpmnDir, "churn-retention.bpmn");
		await writeFile(file, (await readFile(file, "utf8")).replace("${retained == true}", "${retained == == true}"));
		await assert.rejects(startTestNode({ ...ENV, BPMN_DIR: bpmnDir }), (err: Error) => {
			assert.match(err.message, /churn-retention\.bpmn: element Flow_Retained: expression \$\{retained == == true\}: syntax error/);
			return true;
		});
	});
});
