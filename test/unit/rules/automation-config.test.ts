// Automation settings from the environment: documented defaults, and a bad value names its variable.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { loadAutomationConfig } from "../../../config/automation.config.ts";
import { ConfigError } from "../../../config/env.ts";

void describe("loadAutomationConfig", () => {
	void it("defaults", () => {
		const c = loadAutomationConfig({});
		assert.equal(c.rulesDir, path.resolve("rules"));
		assert.equal(c.bpmnDir, path.resolve("bpmn"));
		assert.deepEqual([c.riskRulesEngine, c.riskThreshold, c.riskThresholdProcess, c.ticketSla], ["table", 60, "churn-retention", "PT4H"]);
		assert.deepEqual(c.camunda, { workerId: undefined, lockDurationMs: 60_000, maxRetries: 3, retryTimeoutMs: 30_000, pollIntervalMs: 1000, requestTimeoutMs: 20_000, maxTasks: 10 });
	});

	void it("reads every variable", () => {
		const c = loadAutomationConfig({
			RULES_DIR: "/r", BPMN_DIR: "/b", RISK_RULES_ENGINE: "nools", RISK_THRESHOLD: "75", RISK_THRESHOLD_PROCESS: "off", TICKET_SLA: "P1DT2H",
			CAMUNDA_WORKER_ID: "w1", CAMUNDA_LOCK_MS: "5000", CAMUNDA_MAX_RETRIES: "0", CAMUNDA_RETRY_TIMEOUT_MS: "10", CAMUNDA_POLL_INTERVAL_MS: "200",
			CAMUNDA_REQUEST_TIMEOUT_MS: "3000", CAMUNDA_MAX_TASKS: "2"
		});
		assert.deepEqual([c.rulesDir, c.bpmnDir, c.riskRulesEngine, c.riskThreshold, c.riskThresholdProcess, c.ticketSla], ["/r", "/b", "nools", 75, undefined, "P1DT2H"]);
		assert.deepEqual(c.camunda, { workerId: "w1", lockDurationMs: 5000, maxRetries: 0, retryTimeoutMs: 10, pollIntervalMs: 200, requestTimeoutMs: 3000, maxTasks: 2 });
	});

	const bad: [Record<string, string>, RegExp][] = [
		[{ RISK_RULES_ENGINE: "rete" }, /RISK_RULES_ENGINE must be one of table, nools/],
		[{ RISK_THRESHOLD: "0" }, /RISK_THRESHOLD must be between 1 and 100/],
		[{ RISK_THRESHOLD: "high" }, /RISK_THRESHOLD must be an integer/],
		[{ RISK_THRESHOLD_PROCESS: "two words" }, /RISK_THRESHOLD_PROCESS must be a BPMN process id/],
		[{ TICKET_SLA: "4h" }, /TICKET_SLA must be an ISO 8601 duration/],
		[{ TICKET_SLA: "PT" }, /TICKET_SLA/],
		[{ CAMUNDA_LOCK_MS: "10" }, /CAMUNDA_LOCK_MS must be between 1000/]
	];
	for (const [env, reason] of bad) {
		void it(`rejects ${JSON.stringify(env)}`, () => assert.throws(() => loadAutomationConfig(env), (err: unknown) => err instanceof ConfigError && reason.test(err.message)));
	}
});
