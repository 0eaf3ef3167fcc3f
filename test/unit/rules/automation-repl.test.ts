// The automation REPL commands: what an operator reads for rules (shown, reloaded, a broken reload), running
// workflows and open tasks; the commands only call the services' actions.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { ServiceBroker } from "moleculer";
import { AUTOMATION_COMMANDS } from "../../../app/automation.repl.ts";
import type { ReplArgs } from "../../../app/repl.ts";

function broker(answers: Record<string, (params: Record<string, unknown>) => unknown>, calls: [string, unknown][] = []): ServiceBroker {
	return {
		async call(action: string, params: Record<string, unknown> = {}) {
			calls.push([action, params]);
			return answers[action](params);
		}
	} as unknown as ServiceBroker;
}

const command = (name: string) => AUTOMATION_COMMANDS.find(c => c.command.split(" ")[0] === name)!;
const args = (positional: Record<string, unknown> = {}, options: Record<string, unknown> = {}): ReplArgs => ({ ...positional, options });
const STATUS = { nodeID: "n1", loadedAt: "2026-01-01T00:00:00.000Z", riskEngine: "table", files: [{ file: "rules/risk.nools", rules: [{ name: "OrderCancelled", line: 8 }] }] };

void describe("rules", () => {
	void it("shows the rule files with each rule's line", async () => {
		const text = await command("rules").run(broker({ "rules.status": () => STATUS }), args());
		assert.match(text, /rules on n1, loaded 2026-01-01T00:00:00.000Z \(risk rules: table\)/);
		assert.match(text, /rules\/risk\.nools: OrderCancelled@8/);
	});
	void it("reload calls rules.reload; a broken file prints the reason and keeps the rules", async () => {
		const calls: [string, unknown][] = [];
		assert.match(await command("rules").run(broker({ "rules.reload": () => STATUS }, calls), args({ action: "reload" })), /^reloaded/);
		assert.equal(calls[0][0], "rules.reload");
		const failing = broker({ "rules.reload": () => { throw Object.assign(new Error("rules not reloaded, the previous rules stay in force: rules/risk.nools:12: bad"), { type: "RULES_INVALID" }); } });
		assert.equal(await command("rules").run(failing, args({ action: "reload" })), "error RULES_INVALID: rules not reloaded, the previous rules stay in force: rules/risk.nools:12: bad");
		assert.match(await command("rules").run(failing, args({ action: "nope" })), /unknown action/);
	});
});

void describe("workflows and tasks", () => {
	void it("lists running instances by default, all with --all, filtered by customer", async () => {
		const calls: [string, unknown][] = [];
		const b = broker({ "workflows.processes": () => [{ id: "churn-retention-1", processKey: "churn-retention", customerId: "c-1", state: "running", activeActivities: ["ContactCustomer"], startedAt: "t0", error: null }] }, calls);
		const text = await command("workflows").run(b, args({}, { customer: "c-1" }));
		assert.deepEqual(calls[0], ["workflows.processes", { limit: 200, customerId: "c-1", state: "running" }]);
		assert.match(text.split("\n")[1], /^churn-retention-1\s+churn-retention\s+c-1\s+running\s+ContactCustomer\s+t0$/);
		await command("workflows").run(b, args({}, { all: true }));
		assert.deepEqual(calls[1], ["workflows.processes", { limit: 200 }]);
		assert.equal(await command("workflows").run(broker({ "workflows.processes": () => [] }), args()), "no running workflow instances");
	});
	void it("lists open user tasks", async () => {
		const b = broker({ "workflows.tasks": () => [{ id: "p~x", name: "Contact customer", processKey: "churn-retention", customerId: "c-1", assignee: "sam", createdAt: "t1" }] });
		assert.match(await command("tasks").run(b, args()), /p~x\s+Contact customer\s+churn-retention\s+c-1\s+sam\s+t1/);
	});
});
