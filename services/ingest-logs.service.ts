// ingest-logs: click-stream logs (JSON lines, nginx combined) tailed into crm.page.viewed events, PII masked (the
// engine: edge/log-tail.engine.ts).
import type { Context, ServiceSchema } from "moleculer";
import type { Config } from "../config/index.ts";
import { IngestLogs, type LogEntryPayload } from "../models/contract/index.ts";
import { LogTails } from "../edge/log-tail.engine.ts";
import { SourceMixin, type SourceSchema, type SourceService, type SourceModule } from "../mixins/source.mixin.ts";
import { contractError } from "../runtime/contract-error.ts";

interface LogsVars { logs: LogTails | null }
type LogsService = SourceService & LogsVars;

export function createIngestLogsService(config: Config): ServiceSchema {
	const cfg = config.sources.logs;
	const schema: SourceSchema<LogsVars> = {
		name: IngestLogs.service,
		mixins: [SourceMixin({ source: "logs", retryAction: IngestLogs.retryEntry, config })],
		actions: {
			status: {
				handler(this: LogsService) {
					return { enabled: this.logs !== null, sources: this.logs?.status ?? [] };
				}
			},
			/** Reads every source now (the watcher and the poll do this anyway). */
			poll: {
				async handler(this: LogsService) {
					await this.logs?.poll();
					return { sources: this.logs?.status ?? [] };
				}
			},
			retryEntry: {
				visibility: "public",
				params: { payload: { type: "object" } },
				handler(this: LogsService, ctx: Context<{ payload: LogEntryPayload }>) {
					if (!this.logs) throw contractError("INVALID_PAYLOAD", "not a log entry dead letter of a configured source");
					return this.logs.retryEntry(ctx.params.payload, this.sink);
				}
			}
		},
		created(this: LogsService) {
			this.logs = null;
		},
		started(this: LogsService) {
			if (cfg.sources.length === 0) {
				this.logger.warn("log ingestion is OFF: LOGS_SOURCES is not set");
				return;
			}
			this.logs = new LogTails(cfg, { sink: this.sink, logger: this.logger, concurrency: config.sources.concurrency, state: this.sourceState() });
			this.logs.start();
		},
		async stopped(this: LogsService) {
			await this.logs?.stop();
		}
	};
	return schema as unknown as ServiceSchema;
}

export const source: SourceModule = { createService: createIngestLogsService };
