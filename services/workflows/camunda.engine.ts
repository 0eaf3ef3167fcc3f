// Camunda 7 / Operaton through its REST API: deploys bpmn/ at start (duplicate filtering, changed files only),
// starts and correlates over REST, and runs camunda-external-task-client-js workers per topic that call the shared
// topic handlers — with lock extension, retries via handleFailure, BPMN errors, a request timeout and poll backoff.
import { readFileSync } from "node:fs";
import path from "node:path";
import { Client, Variables } from "camunda-external-task-client-js";
import { TopicBpmnError, type Vars } from "../../actors/workflow-topics.ts";
import type { CamundaWorkerConfig } from "../../config/automation.config.ts";
import type { ProcessDefinition } from "./definitions.ts";
import {
	WorkflowRequestError,
	type CorrelateOptions,
	type EngineLogger,
	type ProcessFilter,
	type ProcessState,
	type ProcessView,
	type StartOptions,
	type TaskView,
	type TopicRunner,
	type WorkflowEngine
} from "./workflow-engine.ts";

export const DEPLOYMENT_NAME = "crm-actors";

export interface CamundaEngineOptions {
	/** The engine's REST root, e.g. http://localhost:8080/engine-rest */
	baseUrl: string;
	definitions: Map<string, ProcessDefinition>;
	runTopic: TopicRunner;
	worker: CamundaWorkerConfig;
	workerId: string;
	logger: EngineLogger;
}

/** A REST call the engine answered with an error status (or not at all). */
export class CamundaError extends Error {
	override name = "CamundaError";
	readonly status: number;
	readonly type: string | null;
	constructor(message: string, status: number, type: string | null) {
		super(message);
		this.status = status;
		this.type = type;
	}
}

/** Camunda's typed variable values ({ value, type }), as its REST API reads and writes them. */
export type TypedVars = Record<string, { value: unknown; type: string; valueInfo?: object }>;

export function toTyped(vars: Vars): TypedVars {
	const out: TypedVars = {};
	for (const [name, value] of Object.entries(vars)) {
		if (value === undefined) continue;
		if (value === null) out[name] = { value: null, type: "Null" };
		else if (typeof value === "boolean") out[name] = { value, type: "Boolean" };
		else if (typeof value === "number") out[name] = Number.isInteger(value) ? { value, type: Math.abs(value) <= 2 ** 31 - 1 ? "Integer" : "Long" } : { value, type: "Double" };
		else if (typeof value === "string") out[name] = { value, type: "String" };
		else out[name] = { value: JSON.stringify(value), type: "Json" };
	}
	return out;
}

export function fromTyped(vars: TypedVars | undefined): Vars {
	const out: Vars = {};
	for (const [name, v] of Object.entries(vars ?? {})) {
		if (v.type === "Json" && typeof v.value === "string") {
			try {
				out[name] = JSON.parse(v.value) as unknown;
			} catch {
				out[name] = v.value;
			}
		} else out[name] = v.value;
	}
	return out;
}

const HISTORY_STATES: Record<string, ProcessState> = {
	ACTIVE: "running",
	SUSPENDED: "suspended",
	COMPLETED: "completed",
	EXTERNALLY_TERMINATED: "terminated",
	INTERNALLY_TERMINATED: "failed"
};

/** "churn-retention:3:8f0e…" -> "churn-retention" */
function keyOfDefinitionId(id: string | undefined): string {
	return (id ?? "").split(":")[0];
}

/** A `name_eq_value` filter of Camunda's list queries; commas and underscores in values need care, ids here have none. */
function variableFilter(name: string, value: string): string {
	if (/[,]/.test(value)) throw new WorkflowRequestError(`"${value}" cannot be used in a Camunda variable filter`, 400, "INVALID_FILTER");
	return `${name}_eq_${value}`;
}

interface ExternalTaskLike {
	id: string;
	topicName: string;
	processInstanceId: string;
	processDefinitionKey?: string;
	processDefinitionId?: string;
	businessKey?: string | null;
	activityId: string;
	retries: number | null;
	variables: { getAll(): Vars };
}

interface TaskServiceLike {
	complete(task: ExternalTaskLike, variables?: unknown): Promise<void>;
	handleFailure(task: ExternalTaskLike, options: { errorMessage: string; errorDetails?: string; retries: number; retryTimeout: number }): Promise<void>;
	handleBpmnError(task: ExternalTaskLike, code: string, message?: string): Promise<void>;
	extendLock(task: ExternalTaskLike, newDuration: number): Promise<void>;
}

interface ClientLike {
	subscribe(topic: string, options: { lockDuration: number }, handler: (args: { task: ExternalTaskLike; taskService: TaskServiceLike }) => Promise<void>): unknown;
	start(): void;
	stop(): void;
	on(event: string, listener: (...args: unknown[]) => void): void;
	activeTasksCount: number;
}

/** Every error event of the client: unhandled, several of them would only be logged by nobody. */
const CLIENT_ERROR_EVENTS = ["complete:error", "handleFailure:error", "handleBpmnError:error", "extendLock:error", "lock:error", "unlock:error", "handler:error"];

export class CamundaWorkflowEngine implements WorkflowEngine {
	readonly kind = "camunda" as const;
	private readonly opts: CamundaEngineOptions;
	private readonly baseUrl: string;
	private client: ClientLike | null = null;
	private pollFailures = 0;
	private backoffTimer: NodeJS.Timeout | null = null;
	private stopped = false;
	/** Handlers in flight, so stop() can wait for them (bounded by the request timeout). */
	private readonly inFlight = new Set<Promise<void>>();

	constructor(opts: CamundaEngineOptions) {
		this.opts = opts;
		this.baseUrl = opts.baseUrl.replace(/\/+$/, "");
	}

	async start(): Promise<void> {
		this.stopped = false;
		await this.deploy();
		const w = this.opts.worker;
		const timeout = w.requestTimeoutMs;
		const client = new Client({
			baseUrl: this.baseUrl,
			workerId: this.opts.workerId,
			maxTasks: w.maxTasks,
			interval: w.pollIntervalMs,
			lockDuration: w.lockDurationMs,
			autoPoll: false,
			// The client sets no timeout: a silent engine would hang the poll loop forever.
			interceptors: (config: Record<string, unknown>) => ({ ...config, timeout: { request: timeout } })
		}) as unknown as ClientLike;
		client.on("poll:error", (err: unknown) => this.onPollError(err));
		client.on("poll:success", () => {
			if (this.pollFailures > 0) this.opts.logger.info(`camunda: polling ${this.baseUrl} again after ${this.pollFailures} failures`);
			this.pollFailures = 0;
		});
		for (const event of CLIENT_ERROR_EVENTS) {
			client.on(event, (...args: unknown[]) => {
				const err = args.find(a => a instanceof Error) as Error | undefined;
				this.opts.logger.warn(`camunda: ${event}${err ? `: ${err.message}` : ""}`);
			});
		}
		const topics = new Set<string>();
		for (const def of this.opts.definitions.values()) for (const t of def.topics) topics.add(t);
		for (const topic of topics) {
			client.subscribe(topic, { lockDuration: w.lockDurationMs }, args => this.track(this.handle(topic, args.task, args.taskService)));
		}
		this.client = client;
		client.start();
		this.opts.logger.info(`camunda: worker ${this.opts.workerId} polling ${[...topics].join(", ")}`);
	}

	async stop(): Promise<void> {
		this.stopped = true;
		if (this.backoffTimer) clearTimeout(this.backoffTimer);
		this.client?.stop();
		// Handlers still running finish (their calls time out at worst); tasks not completed are re-fetched later.
		await Promise.allSettled([...this.inFlight]);
	}

	/** Doubles the poll interval after each failed poll (up to 32×): the client itself retries at a fixed pace. */
	private onPollError(err: unknown): void {
		this.pollFailures++;
		const client = this.client;
		if (!client || this.stopped) return;
		const interval = this.opts.worker.pollIntervalMs;
		const delay = interval * 2 ** Math.min(this.pollFailures, 5);
		if (this.pollFailures === 1 || this.pollFailures % 10 === 0) {
			this.opts.logger.warn(`camunda: fetchAndLock failed (${this.pollFailures}×), next poll in ${delay} ms: ${(err as Error)?.message ?? String(err)}`);
		}
		// stop() makes the poll the client already scheduled a no-op; the delay is always longer than that interval.
		client.stop();
		if (this.backoffTimer) clearTimeout(this.backoffTimer);
		this.backoffTimer = setTimeout(() => {
			this.backoffTimer = null;
			if (!this.stopped) client.start();
		}, delay);
	}

	private track(p: Promise<void>): Promise<void> {
		this.inFlight.add(p);
		void p.finally(() => this.inFlight.delete(p));
		return p;
	}

	/**
	 * One fetched task: extend the lock while the handler runs, then complete, report a BPMN error, or report a
	 * failure with the retries left. Never throws: the client would only emit "handler:error" and leave the task
	 * locked until the lock expires.
	 */
	private async handle(topic: string, task: ExternalTaskLike, taskService: TaskServiceLike): Promise<void> {
		const w = this.opts.worker;
		const extend = setInterval(() => {
			taskService.extendLock(task, w.lockDurationMs).catch((err: unknown) => this.opts.logger.warn(`camunda: extending the lock of ${task.id} failed: ${(err as Error).message}`));
		}, Math.max(500, Math.floor(w.lockDurationMs / 2)));
		let output: Vars;
		try {
			output = await this.opts.runTopic(topic, {
				topic,
				processKey: task.processDefinitionKey ?? keyOfDefinitionId(task.processDefinitionId),
				processInstanceId: task.processInstanceId,
				businessKey: task.businessKey ?? null,
				activityId: task.activityId,
				variables: task.variables.getAll()
			});
		} catch (err) {
			clearInterval(extend);
			await this.reportError(task, taskService, err);
			return;
		}
		clearInterval(extend);
		try {
			const variables = new Variables();
			for (const [name, value] of Object.entries(output)) if (value !== undefined) variables.set(name, value);
			await taskService.complete(task, variables);
		} catch (err) {
			// Already reported through "complete:error"; the task is fetched again when its lock expires.
			this.opts.logger.warn(`camunda: completing ${topic} task ${task.id} failed: ${(err as Error).message}`);
		}
	}

	private async reportError(task: ExternalTaskLike, taskService: TaskServiceLike, err: unknown): Promise<void> {
		try {
			if (err instanceof TopicBpmnError) {
				await taskService.handleBpmnError(task, err.code, err.message);
				return;
			}
			const w = this.opts.worker;
			// Camunda sends retries = null until a worker first sets them.
			const retries = task.retries === null || task.retries === undefined ? w.maxRetries : Math.max(0, task.retries - 1);
			const e = err instanceof Error ? err : new Error(String(err));
			await taskService.handleFailure(task, { errorMessage: e.message.slice(0, 600), errorDetails: e.stack ?? e.message, retries, retryTimeout: w.retryTimeoutMs });
			if (retries === 0) this.opts.logger.error(`camunda: ${task.topicName} task ${task.id} failed with no retries left (an incident in the cockpit): ${e.message}`);
		} catch (reportErr) {
			this.opts.logger.warn(`camunda: reporting the failure of task ${task.id} failed: ${(reportErr as Error).message}`);
		}
	}

	/** POST /deployment/create with every BPMN file; the engine skips files unchanged since the last deployment. */
	private async deploy(): Promise<void> {
		const form = new FormData();
		form.append("deployment-name", DEPLOYMENT_NAME);
		form.append("deployment-source", DEPLOYMENT_NAME);
		form.append("enable-duplicate-filtering", "true");
		form.append("deploy-changed-only", "true");
		const files = [...new Set([...this.opts.definitions.values()].map(d => d.file))];
		for (const file of files) {
			form.append(path.basename(file), new Blob([readFileSync(file)], { type: "application/octet-stream" }), path.basename(file));
		}
		const result = (await this.request("POST", "/deployment/create", form)) as { id?: string; deployedProcessDefinitions?: Record<string, { key: string; version: number }> | null };
		const deployed = Object.values(result?.deployedProcessDefinitions ?? {});
		this.opts.logger.info(
			deployed.length > 0
				? `camunda: deployed ${deployed.map(d => `${d.key} v${d.version}`).join(", ")} (deployment ${result.id})`
				: `camunda: bpmn/ unchanged since the last deployment`
		);
	}

	async startProcess(processKey: string, opts: StartOptions): Promise<ProcessView> {
		if (!this.opts.definitions.has(processKey)) {
			throw new WorkflowRequestError(`no process "${processKey}" (known: ${[...this.opts.definitions.keys()].join(", ")})`, 404, "PROCESS_NOT_FOUND");
		}
		if (opts.unique) {
			const q = new URLSearchParams({ processDefinitionKey: processKey, businessKey: opts.businessKey, active: "true" });
			const existing = (await this.request("GET", `/process-instance?${q}`)) as { id: string; businessKey: string | null }[];
			if (existing.length > 0) return this.instanceView(existing[0].id, processKey, opts.businessKey, opts.customerId, "running", {});
		}
		const variables: Vars = { owner: null, ...opts.variables, customerId: opts.customerId, businessKey: opts.businessKey };
		const started = (await this.request("POST", `/process-definition/key/${encodeURIComponent(processKey)}/start`, {
			businessKey: opts.businessKey,
			variables: toTyped(variables)
		})) as { id: string; ended?: boolean };
		return this.instanceView(started.id, processKey, opts.businessKey, opts.customerId, started.ended ? "completed" : "running", variables);
	}

	async correlate(messageName: string, opts: CorrelateOptions): Promise<number> {
		try {
			const result = await this.request("POST", "/message", {
				messageName,
				...(opts.businessKey !== undefined ? { businessKey: opts.businessKey } : {}),
				...(opts.processInstanceId !== undefined ? { processInstanceId: opts.processInstanceId } : {}),
				...(opts.variables ? { processVariables: toTyped(opts.variables) } : {}),
				all: true,
				resultEnabled: true
			});
			return Array.isArray(result) ? result.length : 0;
		} catch (err) {
			// Camunda answers 400 when no execution waits for the message: for us that is "delivered to none".
			if (err instanceof CamundaError && err.status === 400 && /no process definition or execution matches/i.test(err.message)) return 0;
			throw err;
		}
	}

	async listTasks(filter: { customerId?: string; processInstanceId?: string }): Promise<TaskView[]> {
		const q = new URLSearchParams();
		if (filter.customerId !== undefined) q.set("processVariables", variableFilter("customerId", filter.customerId));
		if (filter.processInstanceId !== undefined) q.set("processInstanceId", filter.processInstanceId);
		const tasks = (await this.request("GET", `/task?${q}`)) as {
			id: string; name: string | null; taskDefinitionKey: string; processInstanceId: string; processDefinitionId: string; assignee: string | null; created: string | null;
		}[];
		return tasks.map(t => ({
			id: t.id,
			name: t.name ?? t.taskDefinitionKey,
			taskKey: t.taskDefinitionKey,
			processInstanceId: t.processInstanceId,
			processKey: keyOfDefinitionId(t.processDefinitionId),
			businessKey: null,
			customerId: filter.customerId ?? null,
			assignee: t.assignee,
			createdAt: t.created
		}));
	}

	async completeTask(taskId: string, variables: Vars): Promise<void> {
		try {
			await this.request("POST", `/task/${encodeURIComponent(taskId)}/complete`, { variables: toTyped(variables) });
		} catch (err) {
			if (err instanceof CamundaError && (err.status === 404 || (err.status === 500 && /cannot find task/i.test(err.message)))) {
				throw new WorkflowRequestError(`no open user task ${taskId}`, 404, "TASK_NOT_FOUND");
			}
			throw err;
		}
	}

	async listProcesses(filter: ProcessFilter): Promise<ProcessView[]> {
		const q = new URLSearchParams({ sortBy: "startTime", sortOrder: "desc", maxResults: String(filter.limit ?? 100) });
		if (filter.customerId !== undefined) q.set("variables", variableFilter("customerId", filter.customerId));
		if (filter.processKey !== undefined) q.set("processDefinitionKey", filter.processKey);
		if (filter.businessKey !== undefined) q.set("processInstanceBusinessKey", filter.businessKey);
		const list = (await this.request("GET", `/history/process-instance?${q}`)) as {
			id: string; processDefinitionKey: string; businessKey: string | null; startTime: string | null; endTime: string | null; state: string;
		}[];
		const views = list.map(p => ({
			id: p.id,
			processKey: p.processDefinitionKey,
			businessKey: p.businessKey,
			customerId: filter.customerId ?? null,
			state: HISTORY_STATES[p.state] ?? "running",
			startedAt: p.startTime,
			endedAt: p.endTime,
			activeActivities: [],
			error: null,
			variables: {}
		}));
		return filter.state ? views.filter(v => v.state === filter.state) : views;
	}

	private instanceView(id: string, processKey: string, businessKey: string, customerId: string, state: ProcessState, variables: Vars): ProcessView {
		return { id, processKey, businessKey, customerId, state, startedAt: null, endedAt: null, activeActivities: [], error: null, variables };
	}

	/** One REST call with a timeout; JSON in and out; an error status becomes a CamundaError with the engine's message. */
	async request(method: string, pathAndQuery: string, body?: object | FormData): Promise<unknown> {
		const headers: Record<string, string> = { accept: "application/json" };
		let payload: string | FormData | undefined;
		if (body instanceof FormData) payload = body;
		else if (body !== undefined) {
			headers["content-type"] = "application/json";
			payload = JSON.stringify(body);
		}
		let res: Response;
		try {
			res = await fetch(this.baseUrl + pathAndQuery, { method, headers, body: payload, signal: AbortSignal.timeout(this.opts.worker.requestTimeoutMs) });
		} catch (err) {
			throw new CamundaError(`camunda ${method} ${pathAndQuery.split("?")[0]}: ${(err as Error).message}`, 0, null);
		}
		const text = await res.text();
		let json: unknown = null;
		if (text.length > 0 && /json/i.test(res.headers.get("content-type") ?? "")) {
			try {
				json = JSON.parse(text);
			} catch {
				json = null;
			}
		}
		if (!res.ok) {
			const e = (json ?? {}) as { type?: string; message?: string };
			throw new CamundaError(`camunda ${method} ${pathAndQuery.split("?")[0]} -> ${res.status}: ${e.message ?? text.slice(0, 300)}`, res.status, e.type ?? null);
		}
		return json;
	}
}
