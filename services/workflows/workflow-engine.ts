// What the workflows service needs from a BPMN engine, implemented twice: embedded (bpmn-engine, state in the
// node's database) and Camunda 7 / Operaton (REST + external-task workers). Views are the same for both.
import type { TopicTask } from "../../actors/workflow-topics.ts";
import type { ProcessFilter, ProcessView, TaskView, Vars } from "../../models/contract/index.ts";

export type { ProcessFilter, ProcessState, ProcessView, TaskView } from "../../models/contract/index.ts";

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
