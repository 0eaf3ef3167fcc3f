// ingest-erp: the incremental ERP → CRM customer sync, scheduled by cron and on demand (the engine:
// edge/erp-sync.engine.ts).
import type { Context, ServiceSchema } from "moleculer";
import type { Config } from "../config/index.ts";
import { IngestErp, type ErpRowPayload, type ErpStatus } from "../models/contract/index.ts";
import { ErpSync } from "../edge/erp-sync.engine.ts";
import { engineOf, SourceMixin, type SourceSchema, type SourceService, type SourceModule } from "../mixins/source.mixin.ts";

interface ErpVars { erp: ErpSync | null }
type ErpService = SourceService & ErpVars;

/** Sets Moleculer's per-action `timeout` (0 = none), which its typings do not declare. */
function noTimeout<T extends object>(action: T): T {
	return Object.assign(action, { timeout: 0 });
}

const OFF = { type: "ERP_SYNC_OFF", message: "ERP sync is off: ERP_DATABASE_URL is not set" } as const;

function requireErp(svc: ErpService): ErpSync {
	return engineOf(svc.erp, OFF);
}

export function createIngestErpService(config: Config): ServiceSchema {
	const cfg = config.sources.erp;
	const schema: SourceSchema<ErpVars> = {
		name: IngestErp.service,
		mixins: [SourceMixin({ source: "erp", retryAction: IngestErp.retryRow, config })],
		settings: { rest: "/" },
		actions: {
			/**
			 * `ingestErp.sync({ full? })`: waits for a run in progress, then runs; resolves with the run's summary. No
			 * request timeout: a full resync of a large table takes as long as it takes.
			 */
			sync: noTimeout({
				params: { full: { type: "boolean", optional: true } },
				handler(this: ErpService, ctx: Context<{ full?: boolean }>) {
					return requireErp(this).sync(ctx.params.full === true, "action");
				}
			}),
			/** POST /api/v1/erp/sync, body `{ "full": true }` optional: 202 at once; GET /api/v1/erp/status follows the run. */
			httpSync: {
				rest: "POST /erp/sync",
				params: { body: { type: "object", optional: true, props: { full: { type: "boolean", optional: true, convert: true } } } },
				handler(this: ErpService, ctx: Context<{ body?: { full?: boolean } }, { $statusCode?: number }>) {
					const erp = requireErp(this);
					const queued = erp.status.running !== null;
					const full = ctx.params.body?.full === true;
					erp.sync(full, "action").catch(err => this.logger.error(`ERP sync failed: ${(err as Error).message}`));
					ctx.meta.$statusCode = 202;
					return { accepted: true, full, queuedBehindRunningSync: queued };
				}
			},
			status: {
				rest: "GET /erp/status",
				async handler(this: ErpService): Promise<ErpStatus> {
					if (!this.erp) return { enabled: false };
					return { enabled: true, ...this.erp.status, watermark: (await this.erp.watermark()) ?? null };
				}
			},
			retryRow: {
				visibility: "public",
				params: { payload: { type: "object" } },
				handler(this: ErpService, ctx: Context<{ payload: ErpRowPayload }>) {
					return requireErp(this).retryRow(ctx.params.payload);
				}
			}
		},
		created(this: ErpService) {
			this.erp = null;
		},
		started(this: ErpService) {
			if (cfg.databaseUrl === undefined) {
				this.logger.warn("ERP sync is OFF: ERP_DATABASE_URL is not set (ingestErp.sync answers 503)");
				return;
			}
			this.erp = new ErpSync(this.sink, this.logger, cfg, config.sources.concurrency, this.sourceState());
			this.erp.start();
		},
		async stopped(this: ErpService) {
			await this.erp?.stop();
		}
	};
	return schema as unknown as ServiceSchema;
}

export const source: SourceModule = { createService: createIngestErpService };
