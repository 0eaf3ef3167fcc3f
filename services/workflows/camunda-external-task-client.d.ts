// The part of camunda-external-task-client-js 3.1 (ships no types) that camunda.engine.ts uses.
declare module "camunda-external-task-client-js" {
	export class Client {
		constructor(options: {
			baseUrl: string;
			workerId?: string;
			maxTasks?: number;
			interval?: number;
			lockDuration?: number;
			autoPoll?: boolean;
			asyncResponseTimeout?: number;
			interceptors?: ((config: Record<string, unknown>) => Record<string, unknown>) | ((config: Record<string, unknown>) => Record<string, unknown>)[];
		});
		subscribe(topic: string, options: { lockDuration?: number }, handler: (args: { task: unknown; taskService: unknown }) => Promise<void>): unknown;
		start(): void;
		stop(): void;
		on(event: string, listener: (...args: unknown[]) => void): this;
		activeTasksCount: number;
	}
	export class Variables {
		constructor(initial?: Record<string, unknown>, options?: object);
		set(name: string, value: unknown): this;
		getAll(): Record<string, unknown>;
		getDirtyVariables(): Record<string, unknown>;
	}
}
