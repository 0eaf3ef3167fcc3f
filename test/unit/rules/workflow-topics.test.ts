// The external-task topic handlers both engines call: what each asks of the other services, what it sets on the
// process, that a repeated run changes nothing more, and that a missing scoring service is a clear BPMN error.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { BPMN_ERRORS, TopicBpmnError, topicHandler, TOPICS, type TopicDeps, type TopicTask, type Vars } from "../../../actors/workflow-topics.ts";

interface Recorder extends TopicDeps {
	calls: { action: string; params: object }[];
	events: { event: string; payload: Record<string, unknown> }[];
}

function deps(answers: Record<string, (params: Record<string, unknown>) => unknown>): Recorder {
	const calls: Recorder["calls"] = [];
	const events: Recorder["events"] = [];
	return {
		calls,
		events,
		riskThreshold: 60,
		async call(action, params) {
			calls.push({ action, params });
			const answer = answers[action];
			if (!answer) throw Object.assign(new Error(`Service '${action}' is not found.`), { type: "SERVICE_NOT_FOUND", code: 404 });
			return answer(params as Record<string, unknown>);
		},
		emit(event, payload) {
			events.push({ event, payload: payload as Record<string, unknown> });
		}
	};
}

function task(topic: string, variables: Vars, activityId = "Task_1"): TopicTask {
	return { topic, processKey: "p", processInstanceId: "pi-1", businessKey: "bk", activityId, variables };
}

void describe("crm-score-opportunity", () => {
	const run = topicHandler("crm-score-opportunity");
	void it("scores through scoring.opportunity", async () => {
		const d = deps({ "scoring.opportunity": () => ({ score: 72, probability: 0.72 }) });
		assert.deepEqual(await run(task("crm-score-opportunity", { opportunityId: "op-1" }), d), { opportunityScore: 72, winProbability: 0.72 });
		assert.deepEqual(d.calls, [{ action: "scoring.opportunity", params: { opportunityId: "op-1" } }]);
	});
	void it("without a scoring service: the BPMN error SCORING_UNAVAILABLE, naming the action", async () => {
		await assert.rejects(run(task("crm-score-opportunity", { opportunityId: "op-1" }), deps({})), (err: unknown) =>
			err instanceof TopicBpmnError && err.code === BPMN_ERRORS.scoringUnavailable && /scoring\.opportunity is not available/.test(err.message));
	});
	void it("without an opportunityId: a plain failure (retried, then an incident)", async () => {
		await assert.rejects(run(task("crm-score-opportunity", {}), deps({})), (err: unknown) => !(err instanceof TopicBpmnError) && /opportunityId/.test(String(err)));
	});
});

void describe("crm-assign-owner", () => {
	const run = topicHandler("crm-assign-owner");
	void it("picks an available senior agent first, else the least loaded", async () => {
		const agents = [{ id: "l1", name: "Lee", level: "L1" }, { id: "s2", name: "Sam", level: "L2" }];
		assert.deepEqual(await run(task("crm-assign-owner", {}), deps({ "agents.candidates": () => agents })), { owner: "s2", ownerName: "Sam" });
		assert.deepEqual(await run(task("crm-assign-owner", {}), deps({ "agents.candidates": () => agents.slice(0, 1) })), { owner: "l1", ownerName: "Lee" });
	});
	void it("no agent: the task stays unassigned", async () => {
		assert.deepEqual(await run(task("crm-assign-owner", {}), deps({ "agents.candidates": () => [] })), { owner: null, ownerName: null });
	});
	void it("a second run keeps the owner of the first (idempotent)", async () => {
		const d = deps({ "agents.candidates": () => [{ id: "other", level: "L3" }] });
		assert.deepEqual(await run(task("crm-assign-owner", { owner: "s2" }), d), { owner: "s2" });
		assert.equal(d.calls.length, 0);
	});
});

void describe("crm-notify", () => {
	const run = topicHandler("crm-notify");
	void it("emits one notification with a key that is the same on a re-run", async () => {
		const d = deps({});
		const t = task("crm-notify", { template: "deal-won", customerId: "c-1", owner: "s2" }, "NotifyWon");
		await run(t, d);
		await run(t, d);
		assert.equal(d.events.length, 2);
		assert.equal(d.events[0].event, "workflow.notification");
		assert.deepEqual(d.events[0].payload, d.events[1].payload, "receivers drop the repeat by its key");
		assert.equal(d.events[0].payload.key, "pi-1/NotifyWon");
		assert.equal(d.events[0].payload.template, "deal-won");
	});
});

void describe("crm-update-stage", () => {
	const run = topicHandler("crm-update-stage");
	void it("moves the opportunity to the task's targetStage", async () => {
		const d = deps({ "opportunities.change": () => ({}) });
		assert.deepEqual(await run(task("crm-update-stage", { opportunityId: "op-1", stage: "PROPOSAL", targetStage: "LOST" }), d), { stage: "LOST" });
		assert.deepEqual(d.calls, [{ action: "opportunities.change", params: { id: "op-1", stage: "LOST" } }]);
	});
	void it("falls back to the stage variable", async () => {
		const d = deps({ "opportunities.change": () => ({}) });
		assert.deepEqual(await run(task("crm-update-stage", { opportunityId: "op-1", stage: "NEGOTIATION" }), d), { stage: "NEGOTIATION" });
	});
	void it("an unknown opportunity is the BPMN error OPPORTUNITY_MISSING", async () => {
		const d = deps({ "opportunities.change": () => { throw Object.assign(new Error("opportunity op-9 not found"), { code: 404 }); } });
		await assert.rejects(run(task("crm-update-stage", { opportunityId: "op-9", stage: "WON" }), d), (err: unknown) => err instanceof TopicBpmnError && err.code === BPMN_ERRORS.opportunityMissing);
	});
});

void describe("crm-evaluate-retention", () => {
	const run = topicHandler("crm-evaluate-retention");
	const customer = (score: number) => deps({ "customers.get": () => ({ risk: { score } }) });
	const cases: [string, Vars, number, boolean][] = [
		["risk back under the threshold: retained", {}, 40, true],
		["risk still at the threshold: not retained", {}, 60, false],
		["the agent says LOST: not retained whatever the score", { outcome: "LOST" }, 10, false],
		["the agent says SAVED: retained whatever the score", { outcome: "SAVED" }, 90, true]
	];
	for (const [name, vars, score, retained] of cases) {
		void it(name, async () => {
			assert.deepEqual(await run(task("crm-evaluate-retention", { customerId: "c-1", ...vars }), customer(score)), { riskScore: score, retained });
		});
	}
});

void describe("crm-escalate-ticket", () => {
	const run = topicHandler("crm-escalate-ticket");
	void it("escalates a ticket still open", async () => {
		const d = deps({ "tickets.get": () => ({ status: "OPEN", assignee: "a1" }) });
		assert.deepEqual(await run(task("crm-escalate-ticket", { ticketId: "t-1", customerId: "c-1" }), d), { escalated: true });
		assert.equal(d.events[0].event, "ticket.escalated");
	});
	void it("does nothing for a ticket resolved meanwhile", async () => {
		const d = deps({ "tickets.get": () => ({ status: "RESOLVED" }) });
		assert.deepEqual(await run(task("crm-escalate-ticket", { ticketId: "t-1" }), d), { escalated: false });
		assert.equal(d.events.length, 0);
	});
});

void describe("topicHandler", () => {
	void it("names the known topics for an unknown one", () => {
		assert.throws(() => topicHandler("crm-nope"), /no handler for external-task topic "crm-nope" \(known: crm-score-opportunity/);
		assert.ok(TOPICS.length >= 6);
	});
});
