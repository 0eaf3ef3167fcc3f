// What every source service (ingest-*) shares: its event sink (edge/event.sink.ts), created with the service and
// carrying the source's name, caller and retry action; and, for a source that keeps a position (a watermark, an
// offset, a ledger), the durable source state — opened on first use, closed after the service stopped.
import type { Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { ApiRouteSchema } from "moleculer-web";
import type { Config } from "../config/index.ts";
import type { Action, CallOptions, ErrorType } from "../models/contract/index.ts";
import { contractError } from "../runtime/contract-error.ts";
import { EventSink } from "../edge/event.sink.ts";
import { createSourceStateStore, type SourceStateStore } from "../adapters/source-state.store.ts";

/**
 * What a source module — services/ingest-<name>.service.ts — exports as `source`: a node finds every such file, and
 * SERVICES names it by its file name (`ingest-<name>`). Adding a source is that one file plus its config section.
 */
export interface SourceModule {
	/** The source's service for a node's configuration. */
	createService(config: Config): ServiceSchema;
	/** HTTP routes the node's API mounts for the source (e.g. the signed webhooks), wherever the service runs. */
	routes?(config: Config): ApiRouteSchema[];
}

export interface SourceMixinOptions {
	/** Short source name: dead letters' `source` and the `source` label of the metrics (`files`). */
	source: string;
	/** Calling service name the metrics middleware reads the source from; default `ingest-<source>`. */
	caller?: string;
	/**
	 * The action deadLetters.retry calls with a dead letter's payload (`{ payload }` → RetryOutcome): a contract
	 * action, or the name of one of this service's own actions.
	 */
	retryAction?: Action<never, unknown> | string;
	callOptions?: Omit<CallOptions, "caller">;
	config: Pick<Config, "dataDir" | "redisUrl">;
}

export interface SourceVars {
	sink: EventSink;
	/** The durable state of this source (file under DATA_DIR/sources, or Redis), opened on first use. */
	sourceState(): SourceStateStore;
}

export type SourceService = Service & SourceVars;

/** A source's engine, or — when its configuration switches the source off — the error its actions answer with. */
export function engineOf<E>(engine: E | null, off: { type: ErrorType; message: string }): E {
	if (engine === null) throw contractError(off.type, off.message);
	return engine;
}

/** The sink of a service that has the mixin (for schemas whose `this` type cannot say so, e.g. the API gateway's). */
export function sinkOf(svc: Service): EventSink {
	return (svc as SourceService).sink;
}

/** The schema of a source service whose `this` has the sink, plus the service's own variables `V`. */
export type SourceSchema<V = unknown> = ServiceSchema<ServiceSettingSchema, Record<string, never>, SourceVars & V>;

export function SourceMixin(opts: SourceMixinOptions): Partial<ServiceSchema> {
	let state: SourceStateStore | null = null;
	const mixin: Partial<SourceSchema> = {
		created(this: SourceService) {
			this.sink = new EventSink({
				broker: this.broker,
				source: opts.source,
				caller: opts.caller ?? `ingest-${opts.source}`,
				retryAction: typeof opts.retryAction === "string" ? `${this.fullName}.${opts.retryAction}` : opts.retryAction?.name,
				callOptions: opts.callOptions
			});
		},
		methods: {
			sourceState(): SourceStateStore {
				state ??= createSourceStateStore({ dataDir: opts.config.dataDir, redisUrl: opts.config.redisUrl });
				return state;
			}
		},
		// Runs after the service's own `stopped` (Moleculer stops mixins last): the engine is done writing by then.
		async stopped() {
			const s = state;
			state = null;
			await s?.close();
		}
	};
	return mixin as Partial<ServiceSchema>;
}
