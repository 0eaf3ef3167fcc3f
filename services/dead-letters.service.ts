// deadLetters: every source's input that could not be applied, with its reason — kept in JetStream stream CRM_DLQ
// (crm.dlq.<source>) when NATS_URL is set, else in an embedded NeDB file — listed, inspected and retried by API and REPL.
import type { Context, Errors, Service, ServiceBroker, ServiceSchema, ServiceSettingSchema } from "moleculer";
import {
	call, DeadLetters, ID_PARAMS, isClientError, LIST_PARAMS, RECORD_PARAMS, type DeadLetter, type DeadLetterRecord, type RecordParams, type RetryResult
} from "../models/contract/index.ts";
import { contractError } from "../runtime/contract-error.ts";
import { headers, type NatsConnection } from "nats";
import type { Config } from "../config/index.ts";
import { LabelBudget, reasonLabel } from "../models/dead-letter-reason.ts";
import { M } from "../metrics/catalogue.ts";
import { connectNats } from "../adapters/nats.connection.ts";
import { maskPii } from "../models/pii.mask.ts";
import { capPayload, JetStreamDeadLetterStore, NedbDeadLetterStore, type DeadLetterStore } from "../adapters/dead-letter.store.ts";

const MAX_REASON_CHARS = 2000;
/** Distinct reason labels per process before new ones are counted as "other". */
const MAX_REASON_LABELS = 200;
/** Subjects a dead letter may be republished to: only the event stream's own. */
const REPUBLISH_SUBJECT = /^crm\.events\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+$/;

interface DeadLettersVars {
	store: DeadLetterStore;
	nc: NatsConnection | null;
	labels: LabelBudget;
}

type DeadLettersSettings = ServiceSettingSchema & { rest: string };
type DeadLettersService = Service<DeadLettersSettings> & DeadLettersVars;

interface RestParams<Q = Record<string, unknown>, P = Record<string, string>> { query: Q; params: P; body?: unknown }

function notFound(id: string): Errors.MoleculerError {
	return contractError("DEAD_LETTER_NOT_FOUND", `dead letter ${id} not found`, { id });
}

function unavailable(what: string, err: unknown): Errors.MoleculerError {
	const message = err instanceof Error ? err.message : String(err);
	return contractError("DEAD_LETTERS_UNAVAILABLE", `dead letters: ${what} failed: ${message}`);
}

/** The bytes a dead-lettered NATS message had, for republishing. */
function payloadBytes(dl: DeadLetter): Uint8Array {
	if (dl.payloadEncoding === "base64" && typeof dl.payload === "string") return Buffer.from(dl.payload, "base64");
	return new TextEncoder().encode(typeof dl.payload === "string" ? dl.payload : JSON.stringify(dl.payload));
}

interface ReplArgs { verb?: string; id?: string; options?: { source?: string; limit?: string } }

/** Text of `dead-letters list|show|retry` (returned, so tests can read it; the REPL prints it). */
export async function deadLettersReplText(broker: ServiceBroker, args: ReplArgs): Promise<string> {
	try {
		if (args.verb === "list") {
			const limit = args.options?.limit === undefined ? 20 : Number(args.options.limit);
			const rows = await call(broker, DeadLetters.list, { source: args.options?.source, limit });
			if (rows.length === 0) return "no dead letters";
			return rows.map(r => `${r.id}  ${r.recordedAt}  ${r.source}  ${r.reasonCode}  ${r.reason.slice(0, 100)}`).join("\n");
		}
		if (args.verb === "show" && args.id) return JSON.stringify(await call(broker, DeadLetters.get, { id: args.id }), null, 2);
		if (args.verb === "retry" && args.id) {
			const r = await call(broker, DeadLetters.retry, { id: args.id });
			return `dead letter ${r.id} retried (${r.via === "action" ? "re-processed by its source" : "republished to NATS"}) and removed`;
		}
		return "usage: dead-letters list [--source s] [--limit n] | show <id> | retry <id>";
	} catch (err) {
		return `error: ${(err as Error).message}`;
	}
}

/** The REPL command (moleculer-repl custom command): `dead-letters list [--source s] [--limit n]`, `show <id>`, `retry <id>`. */
export const DEAD_LETTERS_REPL_COMMAND = {
	command: "dead-letters <verb> [id]",
	description: "Dead letters: list [--source s] [--limit n] | show <id> | retry <id>",
	alias: ["dlq"],
	options: [
		{ option: "-s, --source <source>", description: "only this source (nats, mqtt, webhook, erp, files, logs, market)" },
		{ option: "-l, --limit <n>", description: "how many, newest first (default 20)" }
	],
	async action(broker: ServiceBroker, args: ReplArgs) {
		console.log(await deadLettersReplText(broker, args));
	}
};

/**
 * Adds the REPL command to this broker's REPL options unless one of that name is configured already (a copy of the
 * list: the configured array may be shared by several brokers).
 */
function registerReplCommand(broker: ServiceBroker): void {
	const options = broker.options as { replOptions?: { customCommands?: unknown } | null };
	const repl = (options.replOptions ??= {});
	const list = Array.isArray(repl.customCommands) ? repl.customCommands as Array<{ command?: string }> : [];
	const name = DEAD_LETTERS_REPL_COMMAND.command.split(" ")[0];
	if (!list.some(c => c.command?.split(" ")[0] === name)) repl.customCommands = [...list, DEAD_LETTERS_REPL_COMMAND];
}

export function createDeadLettersService(config: Config): ServiceSchema {
	const cfg = config.ingest.deadLetters;
	const schema: ServiceSchema<DeadLettersSettings, Record<string, never>, DeadLettersVars> = {
		name: DeadLetters.service,
		settings: { rest: "/" },
		actions: {
			record: {
				visibility: "public",
				params: RECORD_PARAMS,
				async handler(this: DeadLettersService, ctx: Context<RecordParams>): Promise<DeadLetter> {
					const p = ctx.params;
					// A reason can quote the input (a field name, a customer id): it is shown, listed and logged, so it is masked.
					const reason = maskPii(p.reason.length > MAX_REASON_CHARS ? `${p.reason.slice(0, MAX_REASON_CHARS)}…` : p.reason);
					const reasonCode = reasonLabel(reason, p.reasonCode);
					const record: DeadLetterRecord = {
						source: p.source,
						reason,
						reasonCode,
						...capPayload(p.payload ?? null, cfg.maxPayloadBytes),
						recordedAt: new Date().toISOString(),
						...(p.payloadEncoding ? { payloadEncoding: p.payloadEncoding } : {}),
						...(p.retryAction ? { retryAction: p.retryAction } : {}),
						...(p.subject ? { subject: p.subject } : {}),
						...(p.msgId ? { msgId: p.msgId } : {})
					};
					let stored: DeadLetter;
					try {
						stored = await this.store.add(record, p.dedupKey);
					} catch (err) {
						throw unavailable("recording", err);
					}
					if (this.broker.isMetricsEnabled()) {
						this.broker.metrics.increment(M.deadLetters, { source: p.source, reason: this.labels.admit(reasonCode) });
					}
					this.logger.warn(`dead letter ${stored.id} from ${p.source}: ${reason.slice(0, 200)}`);
					return stored;
				}
			},
			list: {
				visibility: "public",
				params: LIST_PARAMS,
				async handler(this: DeadLettersService, ctx: Context<{ source?: string; limit?: number }>): Promise<DeadLetter[]> {
					try {
						return await this.store.list(ctx.params.source, ctx.params.limit ?? 50);
					} catch (err) {
						throw unavailable("listing", err);
					}
				}
			},
			get: {
				visibility: "public",
				params: ID_PARAMS,
				async handler(this: DeadLettersService, ctx: Context<{ id: string }>): Promise<DeadLetter> {
					let dl: DeadLetter | null;
					try {
						dl = await this.store.get(ctx.params.id);
					} catch (err) {
						throw unavailable("reading", err);
					}
					if (!dl) throw notFound(ctx.params.id);
					return dl;
				}
			},
			retry: {
				visibility: "public",
				params: ID_PARAMS,
				async handler(this: DeadLettersService, ctx: Context<{ id: string }>): Promise<RetryResult> {
					const dl = await call(ctx, DeadLetters.get, { id: ctx.params.id });
					if (dl.truncated) {
						throw contractError("DEAD_LETTER_TRUNCATED", `dead letter ${dl.id} holds a truncated payload and cannot be retried`, { id: dl.id });
					}
					let via: RetryResult["via"];
					if (dl.retryAction) {
						try {
							await ctx.call(dl.retryAction, { payload: dl.payload });
						} catch (err) {
							// The dead letter stays; the caller sees why (a client error passes through as is).
							if (isClientError(err)) throw err;
							// Not retryable: the broker must not retry the whole retry on its own.
							throw contractError("DEAD_LETTER_RETRY_FAILED", `retrying dead letter ${dl.id} through ${dl.retryAction} failed: ${(err as Error).message}`, { id: dl.id });
						}
						via = "action";
					} else if (dl.subject && REPUBLISH_SUBJECT.test(dl.subject)) {
						if (!this.nc) throw contractError("DEAD_LETTER_NOT_RETRYABLE", `dead letter ${dl.id} came from NATS, but NATS_URL is not set`, { id: dl.id });
						// A new Nats-Msg-Id per dead letter, so JetStream's window does not drop it as the original's
						// duplicate; the actor still de-duplicates the event itself by source + id.
						const h = headers();
						h.set("Nats-Msg-Id", `${dl.msgId ?? "dlq"}/retry/${dl.id}`);
						try {
							await this.nc.jetstream().publish(dl.subject, payloadBytes(dl), { headers: h });
						} catch (err) {
							throw unavailable("republishing", err);
						}
						via = "republish";
					} else {
						throw contractError("DEAD_LETTER_NOT_RETRYABLE", `dead letter ${dl.id} has no retry action`, { id: dl.id });
					}
					try {
						await this.store.remove(dl.id);
					} catch (err) {
						// Retried but still listed: a second retry is harmless (the input is de-duplicated downstream).
						this.logger.warn(`dead letter ${dl.id} was retried but could not be removed: ${(err as Error).message}`);
					}
					return { id: dl.id, retried: true, via };
				}
			},
			httpList: {
				rest: "GET /dead-letters",
				params: { query: { type: "object", props: LIST_PARAMS } },
				handler(this: DeadLettersService, ctx: Context<RestParams<{ source?: string; limit?: number }>>) {
					return call(ctx, DeadLetters.list, { source: ctx.params.query.source, limit: ctx.params.query.limit });
				}
			},
			httpGet: {
				rest: "GET /dead-letters/:id",
				params: { params: { type: "object", props: ID_PARAMS } },
				handler(this: DeadLettersService, ctx: Context<RestParams>) {
					return call(ctx, DeadLetters.get, { id: ctx.params.params.id });
				}
			},
			httpRetry: {
				rest: "POST /dead-letters/:id/retry",
				params: { params: { type: "object", props: ID_PARAMS } },
				handler(this: DeadLettersService, ctx: Context<RestParams>) {
					return call(ctx, DeadLetters.retry, { id: ctx.params.params.id });
				}
			}
		},
		created(this: DeadLettersService) {
			this.nc = null;
			this.labels = new LabelBudget(MAX_REASON_LABELS);
			// crm_dead_letters_total is defined with the other crm_* series; registered here too for a broker without them.
			if (this.broker.isMetricsEnabled() && !this.broker.metrics.getMetric(M.deadLetters)) {
				this.broker.metrics.register({ name: M.deadLetters, type: "counter", labelNames: ["source", "reason"], description: "Inputs sent to the dead letters, by source and reason" });
			}
			registerReplCommand(this.broker);
		},
		async started(this: DeadLettersService) {
			if (config.natsUrl) {
				this.nc = await connectNats(config.natsUrl, `crm dead-letters ${this.broker.nodeID}`);
				const maxPayload = this.nc.info?.max_payload ?? 1024 * 1024;
				this.store = new JetStreamDeadLetterStore({ nc: this.nc, maxAgeMs: cfg.maxAgeMs, maxBodyBytes: Math.min(cfg.maxPayloadBytes, maxPayload - 4096) });
			} else {
				this.store = new NedbDeadLetterStore(config.dataDir);
			}
			await this.store.open();
			this.logger.info(this.store.kind === "jetstream"
				? "dead letters: JetStream stream CRM_DLQ (crm.dlq.<source>)"
				: `dead letters: embedded NeDB file under ${config.dataDir} (NATS_URL is not set)`);
		},
		async stopped(this: DeadLettersService) {
			await this.store?.close();
			if (this.nc) await this.nc.drain().catch(() => this.nc?.close());
			this.nc = null;
		}
	};
	return schema as unknown as ServiceSchema;
}
