// Settings for nools rules and BPMN workflows (embedded engine or Camunda), read from the environment.
import path from "node:path";
import { ConfigError, int, oneOf, str, type Env } from "./env.ts";

export type RiskRulesEngine = "table" | "nools";

export interface CamundaWorkerConfig {
	/** Worker id sent with every fetchAndLock/complete; defaults to "crm-" + NODE_ID (or the host name). */
	workerId: string | undefined;
	/** How long a fetched task stays locked; the worker extends the lock while a handler still runs. */
	lockDurationMs: number;
	/** Retries given to a task whose handler failed the first time (each later failure spends one). */
	maxRetries: number;
	/** Delay before a failed task can be fetched again. */
	retryTimeoutMs: number;
	/** Pause between two fetchAndLock polls; doubled after each failed poll up to 32×. */
	pollIntervalMs: number;
	/** Every REST call to the engine (polls included) is aborted after this long. */
	requestTimeoutMs: number;
	maxTasks: number;
}

export interface AutomationConfig {
	/** Directory of the *.nools rule files. */
	rulesDir: string;
	/** Directory of the *.bpmn process files. */
	bpmnDir: string;
	/**
	 * How the risk rules of rules/risk.nools run in the actor's turn: "table" (a rule table compiled from the parsed
	 * file; the default, sub-microsecond) or "nools" (one long-lived nools session per node; ~10 µs per event).
	 */
	riskRulesEngine: RiskRulesEngine;
	/** A risk score crossing this value upwards fires the threshold actions. */
	riskThreshold: number;
	/** Process started for a customer whose risk crosses the threshold; undefined = none (the event is still emitted). */
	riskThresholdProcess: string | undefined;
	/** SLA of an unresolved HIGH/CRITICAL ticket before ticket-escalation escalates it (ISO 8601 duration). */
	ticketSla: string;
	camunda: CamundaWorkerConfig;
}

const ISO_DURATION = /^P(?!$)(\d+(?:\.\d+)?Y)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?W)?(\d+(?:\.\d+)?D)?(T(?=\d)(\d+(?:\.\d+)?H)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?S)?)?$/;
const PROCESS_KEY = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;

export function loadAutomationConfig(env: Env): AutomationConfig {
	const ticketSla = str(env, "TICKET_SLA") ?? "PT4H";
	if (!ISO_DURATION.test(ticketSla)) throw new ConfigError(`TICKET_SLA must be an ISO 8601 duration such as PT4H or P1D, got "${ticketSla}"`);
	const process = str(env, "RISK_THRESHOLD_PROCESS") ?? "churn-retention";
	if (process !== "off" && !PROCESS_KEY.test(process)) {
		throw new ConfigError(`RISK_THRESHOLD_PROCESS must be a BPMN process id or "off", got "${process}"`);
	}
	const lockDurationMs = int(env, "CAMUNDA_LOCK_MS", 60_000, 1000, 3_600_000);
	const requestTimeoutMs = int(env, "CAMUNDA_REQUEST_TIMEOUT_MS", 20_000, 100, 600_000);
	return {
		rulesDir: path.resolve(str(env, "RULES_DIR") ?? "rules"),
		bpmnDir: path.resolve(str(env, "BPMN_DIR") ?? "bpmn"),
		riskRulesEngine: oneOf(env, "RISK_RULES_ENGINE", ["table", "nools"] as const, "table"),
		riskThreshold: int(env, "RISK_THRESHOLD", 60, 1, 100),
		riskThresholdProcess: process === "off" ? undefined : process,
		ticketSla,
		camunda: {
			workerId: str(env, "CAMUNDA_WORKER_ID"),
			lockDurationMs,
			maxRetries: int(env, "CAMUNDA_MAX_RETRIES", 3, 0, 100),
			retryTimeoutMs: int(env, "CAMUNDA_RETRY_TIMEOUT_MS", 30_000, 0, 86_400_000),
			pollIntervalMs: int(env, "CAMUNDA_POLL_INTERVAL_MS", 1000, 50, 600_000),
			requestTimeoutMs,
			maxTasks: int(env, "CAMUNDA_MAX_TASKS", 10, 1, 1000)
		}
	};
}
