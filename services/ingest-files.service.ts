// ingest-files: CSV files dropped into an inbox folder become customer events (the engine: edge/file-inbox.engine.ts).
import path from "node:path";
import type { Context, ServiceSchema } from "moleculer";
import type { Config } from "../config/index.ts";
import { IngestFiles, type FilesStatus, type RowPayload } from "../models/contract/index.ts";
import { FileInbox } from "../edge/file-inbox.engine.ts";
import { engineOf, SourceMixin, type SourceSchema, type SourceService, type SourceModule } from "../mixins/source.mixin.ts";

interface FilesVars { inboxer: FileInbox | null }
type FilesService = SourceService & FilesVars;

const OFF = { type: "FILES_OFF", message: "file drops are off (FILES_INBOX=off)" } as const;

function inboxOf(svc: FilesService): FileInbox {
	return engineOf(svc.inboxer, OFF);
}

export function createIngestFilesService(config: Config): ServiceSchema {
	const cfg = config.sources.files;
	const schema: SourceSchema<FilesVars> = {
		name: IngestFiles.service,
		mixins: [SourceMixin({ source: "files", retryAction: IngestFiles.retryRow, config })],
		actions: {
			/** Looks at the inbox now (the watcher and the periodic scan do this anyway). */
			scan: {
				async handler(this: FilesService) {
					const inbox = inboxOf(this);
					await inbox.requestScan();
					return { inbox: inbox.inbox, recent: inbox.recent };
				}
			},
			/** Imports a file from anywhere (not moved; e.g. `npm run import:telco -- --direct`). */
			importFile: {
				params: { path: { type: "string", min: 1 }, kind: { type: "string", optional: true } },
				handler(this: FilesService, ctx: Context<{ path: string; kind?: string }>) {
					return inboxOf(this).importFile(path.resolve(ctx.params.path), { kindName: ctx.params.kind, move: false });
				}
			},
			retryRow: {
				params: { payload: { type: "object" } },
				handler(this: FilesService, ctx: Context<{ payload: RowPayload }>) {
					return inboxOf(this).retryRow(ctx.params.payload);
				}
			},
			status: {
				handler(this: FilesService): FilesStatus {
					return { enabled: this.inboxer !== null, inbox: cfg.inbox, kinds: cfg.kinds.map(k => k.name), current: this.inboxer?.current ?? null, recent: this.inboxer?.recent ?? [] };
				}
			}
		},
		created(this: FilesService) {
			this.inboxer = null;
		},
		async started(this: FilesService) {
			if (cfg.inbox === null) {
				this.logger.warn("file drops are OFF (FILES_INBOX=off): no inbox is watched");
				return;
			}
			this.inboxer = new FileInbox(this.sink, this.logger, cfg, config.sources.concurrency, this.sourceState());
			await this.inboxer.start();
		},
		async stopped(this: FilesService) {
			await this.inboxer?.stop();
		}
	};
	return schema as unknown as ServiceSchema;
}

export const source: SourceModule = { createService: createIngestFilesService };
