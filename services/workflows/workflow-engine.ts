// What the workflows service needs from a BPMN engine, implemented twice: embedded (bpmn-engine, state in the
// node's database) and Camunda 7 / Operaton (REST + external-task workers). Views are the same for both.
import type { TopicTask, Vars } from "../../actors/workflow-topics.ts";

export type ProcessState = "running" | "completed" | "failed" | "terminated" | "suspended";

export interface ProcessView {
	id: string;
	processKey: string;
	businessKey: string | null;
	customerId: string | null;
	state: ProcessState;
	startedAt: string | null;
	endedAt: string | null;
	/** Activities the instance waits in (user tasks, timers, messages, running external tasks). */
	activeActivities: string[];
	/** Why it failed, when it did. */
	error: string | null;
	variables: Vars;
}

export interface TaskView {
	id: string;
	name: string;
	/** The user task's id in the BPMN file. */
	taskKey: string;
	processInstanceId: string;
	processKey: string;
	businessKey: string | null;
	customerId: string | null;
	assignee: string | null;
	createdAt: string | null;
}

export interface StartOptions {
	businessKey: string;
	customerId: string;
	variables?: Vars;
	/** When an instance of this process with this business key is already running, return it instead. */
	unique?: boolean;
}

export interface CorrelateOptions {
	businessKey?: string;
	processInstanceId?: string;
	variables?: Vars;
}

export interface ProcessFilter {
	customerId?: string;
	processKey?: string;
	businessKey?: string;
	state?: ProcessState;
	limit?: number;
}

export interface WorkflowEngine {
	readonly kind: "embedded" | "camunda";
	start(): Promise<void>;
	stop(): Promise<void>;
	startProcess(processKey: string, opts: StartOptions): Promise<ProcessView>;
	/** Delivers a message to the instances waiting for it; resolves with how many took it. */
	correlate(messageName: string, opts: CorrelateOptions): Promise<number>;
	listTasks(filter: { customerId?: string; processInstanceId?: string }): Promise<TaskView[]>;
	completeTask(taskId: string, variables: Vars): Promise<void>;
	listProcesses(filter: ProcessFilter): Promise<ProcessView[]>;
}

/** Runs one external task through the shared topic table; throws TopicBpmnError for a BPMN error. */
export type TopicRunner = (topic: string, task: TopicTask) => Promise<Vars>;

export interface EngineLogger {
	info(...args: unknown[]): void;
	warn(...args: unknown[]): void;
	error(...args: unknown[]): void;
}

/** A client mistake (unknown process, task, message): the API answers 4xx. */
export class WorkflowRequestError extends Error {
	override name = "WorkflowRequestError";
	readonly status: number;
	readonly type: string;
	constructor(message: string, status: number, type: string) {
		super(message);
		this.status = status;
		this.type = type;
	}
}
