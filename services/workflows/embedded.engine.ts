// The embedded BPMN engine (npm bpmn-engine) for nodes without CAMUNDA_URL: runs bpmn/*.bpmn in this process,
// dispatches external tasks to the shared topic handlers, evaluates Camunda-style expressions with filtrex, and
// saves each instance's engine state after every step so a restart resumes it where it was.
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { Engine } from "bpmn-engine";
import { createExpressions, ENGINE_KEYS, type ExpressionsHandler } from "../../actors/workflow-expressions.ts";
import { TopicBpmnError, type TopicTask, type Vars } from "../../actors/workflow-topics.ts";
import { CAMUNDA_MODDLE, type ProcessDefinition } from "./definitions.ts";
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

/** One instance as stored: the engine state is JSON text (NeDB rejects the dotted keys it can contain). */
export interface InstanceDoc {
	_id: string;
	processKey: string;
	businessKey: string | null;
	customerId: string | null;
	status: ProcessState;
	startedAt: string;
	endedAt: string | null;
	error: string | null;
	/** engine.getState() as JSON; null before the first step and after the end. */
	state: string | null;
	/** Process variables as JSON (kept after the end, for listings). */
	variables: string;
	updatedAt: string;
}

export interface InstanceStore {
	running(): Promise<InstanceDoc[]>;
	find(filter: ProcessFilter): Promise<InstanceDoc[]>;
	save(doc: InstanceDoc): Promise<void>;
}

export interface EmbeddedEngineOptions {
	definitions: Map<string, ProcessDefinition>;
	store: InstanceStore;
	runTopic: TopicRunner;
	/** A failing handler is retried this many times, retryTimeoutMs apart, before the instance fails. */
	maxRetries: number;
	retryTimeoutMs: number;
	logger: EngineLogger;
	now?: () => number;
}

/** The parts of bpmn-engine's element API used here (what getPostponed() and events hand out). */
interface ElementApi {
	id: string;
	type: string;
	name?: string;
	executionId: string;
	content: { executionId: string; output?: unknown; [k: string]: unknown };
	environment: { variables: Vars; resolveExpression(e: string, msg?: unknown): unknown };
	owner?: { behaviour?: { assignee?: string; eventDefinitions?: { behaviour?: { messageRef?: { id?: string } } }[] } };
	signal(message?: unknown): void;
}

interface ActivityLike {
	id: string;
	type: string;
	behaviour: {
		type?: string;
		topic?: string;
		Service?: unknown;
		extensionElements?: { values?: { $type: string; inputParameters?: { name: string; value?: string }[] }[] };
	};
	environment: { variables: Vars; resolveExpression(e: string, msg?: unknown): unknown };
	on(event: string, handler: (api: ElementApi) => void): void;
}

type EngineInstance = InstanceType<typeof Engine>;

interface Running {
	doc: InstanceDoc;
	def: ProcessDefinition | undefined;
	engine: EngineInstance;
	/** When each waiting user task started waiting (executionId -> ISO time). */
	waitingSince: Map<string, string>;
	saving: Promise<void>;
	saveQueued: boolean;
	stopped: boolean;
	finished: boolean;
	retryTimers: Set<NodeJS.Timeout>;
}

/** Separates a task id into the instance id and the activity execution id (BPMN ids cannot contain "~"). */
const TASK_ID_SEPARATOR = "~";
const PERSIST_ON = ["activity.start", "activity.wait", "activity.timer", "activity.end"];

/** Process variables without the engine's own bookkeeping keys. */
export function userVariables(vars: Vars | undefined): Vars {
	const out: Vars = {};
	if (!vars) return out;
	for (const key of Object.keys(vars)) if (!ENGINE_KEYS.has(key)) out[key] = vars[key];
	return out;
}

export class EmbeddedWorkflowEngine implements WorkflowEngine {
	readonly kind = "embedded" as const;
	private readonly opts: EmbeddedEngineOptions;
	private readonly now: () => number;
	private readonly running = new Map<string, Running>();
	private readonly expressions: ExpressionsHandler;
	private stopping = false;

	constructor(opts: EmbeddedEngineOptions) {
		this.opts = opts;
		this.now = opts.now ?? Date.now;
		// bpmn-engine's default handler, kept for ${environment.…} / ${content.…} paths.
		const defaults = (new Engine() as unknown as { environment: { expressions: ExpressionsHandler } }).environment.expressions;
		this.expressions = createExpressions(defaults);
	}

	/** Resumes every instance the store has as running (a task that ran at the last stop runs again). */
	async start(): Promise<void> {
		this.stopping = false;
		const docs = await this.opts.store.running();
		for (const doc of docs) {
			try {
				await this.resume(doc);
			} catch (err) {
				this.opts.logger.error(`workflow ${doc._id} (${doc.processKey}) could not be resumed`, err);
				doc.status = "failed";
				doc.error = `could not be resumed: ${(err as Error).message}`;
				doc.endedAt = this.iso();
				await this.opts.store.save(doc);
			}
		}
		if (docs.length > 0) this.opts.logger.info(`workflows: resumed ${this.running.size} of ${docs.length} running instances`);
	}

	/** Stops every instance where it is and saves its state for the next start. */
	async stop(): Promise<void> {
		this.stopping = true;
		const all = [...this.running.values()];
		await Promise.all(all.map(async inst => {
			inst.stopped = true;
			for (const t of inst.retryTimers) clearTimeout(t);
			await inst.saving;
			await inst.engine.stop();
			await this.save(inst).catch((err: unknown) => this.opts.logger.error(`workflow ${inst.doc._id}: saving its state at stop failed`, err));
		}));
		this.running.clear();
	}

	async startProcess(processKey: string, opts: StartOptions): Promise<ProcessView> {
		const def = this.opts.definitions.get(processKey);
		if (!def) throw new WorkflowRequestError(`no process "${processKey}" (known: ${[...this.opts.definitions.keys()].join(", ")})`, 404, "PROCESS_NOT_FOUND");
		if (this.stopping) throw new WorkflowRequestError("the workflow engine is stopping", 503, "WORKFLOWS_STOPPING");
		if (opts.unique) {
			const existing = [...this.running.values()].find(r => r.doc.processKey === processKey && r.doc.businessKey === opts.businessKey && !r.finished);
			if (existing) return this.view(existing);
		}
		const at = this.iso();
		const variables: Vars = { owner: null, ...opts.variables, customerId: opts.customerId, businessKey: opts.businessKey };
		const doc: InstanceDoc = {
			_id: `${processKey}-${randomBytes(6).toString("hex")}`,
			processKey,
			businessKey: opts.businessKey,
			customerId: opts.customerId,
			status: "running",
			startedAt: at,
			endedAt: null,
			error: null,
			state: null,
			variables: JSON.stringify(variables),
			updatedAt: at
		};
		// Saved before the first step: a crash before any state was saved starts it again from the beginning.
		await this.opts.store.save(doc);
		const inst = this.track(doc, def, new Engine(this.engineOptions(doc, def, () => inst)));
		await inst.engine.execute({ listener: this.listener(inst), variables });
		return this.view(inst);
	}

	async correlate(messageName: string, opts: CorrelateOptions): Promise<number> {
		let delivered = 0;
		for (const inst of this.running.values()) {
			if (inst.finished || inst.stopped) continue;
			if (opts.processInstanceId !== undefined && inst.doc._id !== opts.processInstanceId) continue;
			if (opts.businessKey !== undefined && inst.doc.businessKey !== opts.businessKey) continue;
			const messageId = inst.def?.messages.get(messageName);
			if (!messageId) continue;
			const waiting = this.postponed(inst).some(p => p.owner?.behaviour?.eventDefinitions?.some(d => d.behaviour?.messageRef?.id === messageId));
			if (!waiting) continue;
			const vars = this.processVariables(inst);
			if (vars && opts.variables) Object.assign(vars, opts.variables);
			// bpmn-engine matches message events by the message's id, not its name.
			inst.engine.execution?.signal({ id: messageId });
			delivered++;
		}
		return delivered;
	}

	async listTasks(filter: { customerId?: string; processInstanceId?: string }): Promise<TaskView[]> {
		const tasks: TaskView[] = [];
		for (const inst of this.running.values()) {
			if (inst.finished) continue;
			if (filter.customerId !== undefined && inst.doc.customerId !== filter.customerId) continue;
			if (filter.processInstanceId !== undefined && inst.doc._id !== filter.processInstanceId) continue;
			for (const p of this.postponed(inst)) {
				if (p.type !== "bpmn:UserTask") continue;
				tasks.push({
					id: `${inst.doc._id}${TASK_ID_SEPARATOR}${p.executionId}`,
					name: p.name ?? p.id,
					taskKey: p.id,
					processInstanceId: inst.doc._id,
					processKey: inst.doc.processKey,
					businessKey: inst.doc.businessKey,
					customerId: inst.doc.customerId,
					assignee: this.assigneeOf(p),
					createdAt: inst.waitingSince.get(p.executionId) ?? null
				});
			}
		}
		return tasks;
	}

	async completeTask(taskId: string, variables: Vars): Promise<void> {
		const sep = taskId.indexOf(TASK_ID_SEPARATOR);
		const inst = sep > 0 ? this.running.get(taskId.slice(0, sep)) : undefined;
		const executionId = taskId.slice(sep + 1);
		const task = inst && !inst.finished ? this.postponed(inst).find(p => p.type === "bpmn:UserTask" && p.executionId === executionId) : undefined;
		if (!inst || !task) throw new WorkflowRequestError(`no open user task ${taskId}`, 404, "TASK_NOT_FOUND");
		// The signal's payload becomes the task's output, which the extension merges into the process variables.
		task.signal({ ...variables });
		await inst.saving;
	}

	async listProcesses(filter: ProcessFilter): Promise<ProcessView[]> {
		const docs = await this.opts.store.find(filter);
		return docs.map(doc => {
			const inst = this.running.get(doc._id);
			return inst ? this.view(inst) : this.viewOf(doc, [], safeParse(doc.variables));
		});
	}

	private iso(): string {
		return new Date(this.now()).toISOString();
	}

	private async resume(doc: InstanceDoc): Promise<void> {
		const def = this.opts.definitions.get(doc.processKey);
		if (doc.state === null) {
			if (!def) throw new Error(`process "${doc.processKey}" is no longer defined`);
			const inst = this.track(doc, def, new Engine(this.engineOptions(doc, def, () => inst)));
			await inst.engine.execute({ listener: this.listener(inst), variables: safeParse(doc.variables) });
			return;
		}
		// The saved state carries the BPMN source it started with, so a changed file does not affect it.
		const engine = new Engine(this.engineOptions(doc, def, () => inst, false)).recover(JSON.parse(doc.state));
		const inst = this.track(doc, def, engine);
		await engine.resume({ listener: this.listener(inst) });
	}

	private track(doc: InstanceDoc, def: ProcessDefinition | undefined, engine: EngineInstance): Running {
		const inst: Running = {
			doc, def, engine, waitingSince: new Map(), saving: Promise.resolve(), saveQueued: false, stopped: false, finished: false, retryTimers: new Set()
		};
		this.running.set(doc._id, inst);
		// `on`, not `once`: an EventEmitter "error" without a listener would crash the process.
		engine.on("end", () => this.finish(inst, "completed", null));
		engine.on("error", (err: unknown) => this.finish(inst, "failed", err instanceof Error ? err.message : String(err)));
		return inst;
	}

	private engineOptions(doc: InstanceDoc, def: ProcessDefinition | undefined, inst: () => Running, withSource = true): object {
		return {
			name: doc._id,
			...(withSource && def ? { source: def.xml } : {}),
			moddleOptions: { camunda: CAMUNDA_MODDLE },
			expressions: this.expressions,
			extensions: { crm: (activity: ActivityLike) => this.extend(activity, inst) }
		};
	}

	/** Per activity: external tasks run the topic handlers; task outputs become process variables (as in Camunda). */
	private extend(activity: ActivityLike, inst: () => Running): void {
		const b = activity.behaviour;
		if (activity.type === "bpmn:ServiceTask" && b.type === "external" && b.topic) {
			const topic = b.topic;
			const inputs = (b.extensionElements?.values ?? []).find(v => v.$type === "camunda:InputOutput")?.inputParameters ?? [];
			// bpmn-elements instantiates it with `new Service(activity, message)`: it must be constructible.
			const run = this.runExternal.bind(this);
			b.Service = class ExternalTaskService {
				execute(message: { content: { executionId: string } }, callback: (err: Error | null, output?: Vars) => void): void {
					run(inst(), activity, topic, inputs, message, callback);
				}
			};
		}
		if (activity.type === "bpmn:ServiceTask" || activity.type === "bpmn:UserTask") {
			activity.on("end", api => {
				const output = api.content.output;
				if (output && typeof output === "object" && !Array.isArray(output)) Object.assign(activity.environment.variables, userVariables(output as Vars));
			});
		}
	}

	private runExternal(
		inst: Running,
		activity: ActivityLike,
		topic: string,
		inputs: { name: string; value?: string }[],
		message: { content: { executionId: string } },
		callback: (err: Error | null, output?: Vars) => void
	): void {
		const env = activity.environment;
		const local: Vars = {};
		for (const p of inputs) local[p.name] = p.value === undefined ? null : env.resolveExpression(p.value, message);
		const task: TopicTask = {
			topic,
			processKey: inst.doc.processKey,
			processInstanceId: inst.doc._id,
			businessKey: inst.doc.businessKey,
			activityId: activity.id,
			variables: { ...userVariables(env.variables), ...local }
		};
		let attempt = 0;
		const run = (): void => {
			this.opts.runTopic(topic, task).then(
				output => {
					if (!inst.stopped) callback(null, output);
				},
				(err: unknown) => {
					if (inst.stopped) return;
					if (err instanceof TopicBpmnError) {
						// A boundary error event with this errorCode catches it (bpmn-elements matches on `code`).
						callback(Object.assign(new Error(err.message), { code: err.code }));
						return;
					}
					if (attempt < this.opts.maxRetries) {
						attempt++;
						this.opts.logger.warn(`workflow ${inst.doc._id}: ${topic} (${activity.id}) failed, retry ${attempt}/${this.opts.maxRetries} in ${this.opts.retryTimeoutMs} ms: ${(err as Error).message}`);
						const timer = setTimeout(() => {
							inst.retryTimers.delete(timer);
							run();
						}, this.opts.retryTimeoutMs);
						inst.retryTimers.add(timer);
						return;
					}
					this.opts.logger.error(`workflow ${inst.doc._id}: ${topic} (${activity.id}) failed after ${attempt + 1} attempts: ${(err as Error).message}`);
					callback(err instanceof Error ? err : new Error(String(err)));
				}
			);
		};
		run();
	}

	private listener(inst: Running): EventEmitter {
		const listener = new EventEmitter();
		for (const event of PERSIST_ON) listener.on(event, () => this.queueSave(inst));
		listener.on("activity.wait", (api: ElementApi) => {
			if (api.type === "bpmn:UserTask") inst.waitingSince.set(api.executionId, this.iso());
		});
		listener.on("activity.leave", (api: ElementApi) => inst.waitingSince.delete(api.content.executionId));
		return listener;
	}

	/** Saves are serialised per instance and coalesced: at most one waits while one runs, and it reads the latest state. */
	private queueSave(inst: Running): void {
		if (inst.saveQueued || inst.finished || inst.stopped) return;
		inst.saveQueued = true;
		inst.saving = inst.saving.then(async () => {
			inst.saveQueued = false;
			if (inst.finished || inst.stopped) return;
			await this.save(inst);
		}).catch((err: unknown) => this.opts.logger.error(`workflow ${inst.doc._id}: saving its state failed`, err));
	}

	private async save(inst: Running): Promise<void> {
		const state = await inst.engine.getState();
		inst.doc.state = JSON.stringify(state);
		inst.doc.variables = JSON.stringify(userVariables(this.processVariables(inst)));
		inst.doc.updatedAt = this.iso();
		await this.opts.store.save({ ...inst.doc });
	}

	private finish(inst: Running, status: ProcessState, error: string | null): void {
		if (inst.finished) return;
		inst.finished = true;
		for (const t of inst.retryTimers) clearTimeout(t);
		const vars = userVariables(this.processVariables(inst));
		inst.doc.status = status;
		inst.doc.error = error;
		inst.doc.endedAt = this.iso();
		inst.doc.state = null;
		inst.doc.variables = JSON.stringify(vars);
		inst.doc.updatedAt = inst.doc.endedAt;
		const doc = { ...inst.doc };
		inst.saving = inst.saving.then(() => this.opts.store.save(doc)).catch((err: unknown) => this.opts.logger.error(`workflow ${doc._id}: saving its end failed`, err));
		if (status === "failed") this.opts.logger.error(`workflow ${doc._id} (${doc.processKey}) failed: ${error}`);
		void inst.saving.then(() => {
			if (this.running.get(doc._id) === inst) this.running.delete(doc._id);
		});
	}

	private postponed(inst: Running): ElementApi[] {
		return (inst.engine.execution?.getPostponed() ?? []) as unknown as ElementApi[];
	}

	/** The live process variables (the process environment the activities share). */
	private processVariables(inst: Running): Vars | undefined {
		const defs = (inst.engine.execution?.definitions ?? []) as unknown as { getProcesses(): { environment: { variables: Vars } }[] }[];
		return defs[0]?.getProcesses()[0]?.environment.variables;
	}

	private assigneeOf(task: ElementApi): string | null {
		const raw = task.owner?.behaviour?.assignee;
		if (!raw) return null;
		try {
			const v = task.environment.resolveExpression(raw);
			return typeof v === "string" && v.length > 0 ? v : null;
		} catch {
			return null;
		}
	}

	private view(inst: Running): ProcessView {
		const active = inst.finished ? [] : [...new Set(this.postponed(inst).map(p => p.id))];
		return this.viewOf(inst.doc, active, userVariables(this.processVariables(inst)) ?? safeParse(inst.doc.variables));
	}

	private viewOf(doc: InstanceDoc, activeActivities: string[], variables: Vars): ProcessView {
		return {
			id: doc._id,
			processKey: doc.processKey,
			businessKey: doc.businessKey,
			customerId: doc.customerId,
			state: doc.status,
			startedAt: doc.startedAt,
			endedAt: doc.endedAt,
			activeActivities,
			error: doc.error,
			variables
		};
	}
}

function safeParse(json: string | null): Vars {
	if (!json) return {};
	try {
		const v = JSON.parse(json) as unknown;
		return v && typeof v === "object" && !Array.isArray(v) ? (v as Vars) : {};
	} catch {
		return {};
	}
}
