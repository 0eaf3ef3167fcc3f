// ingest-webhook: signed webhooks (ARCHITECTURE §9). The HTTP route (mounted by the api service) checks the HMAC
// signature over the raw body; this service maps, validates, applies and answers — idempotently per Idempotency-Key.
import { isUtf8 } from "node:buffer";
import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ApiRouteSchema } from "moleculer-web";
import { Errors } from "moleculer";
import type { Context, Service, ServiceSchema } from "moleculer";
import type { Config } from "../config/index.ts";
import { mapWebhookBody } from "../models/webhook-mappers.ts";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyWebhookSignature } from "../models/webhook-signature.ts";
import { createIdempotencyStore, type IdempotencyStore } from "../adapters/webhook-idempotency.store.ts";
import {
	call, IngestWebhook, type DeadLetterCode, type ReceiveParams, type StoredResponse, type WebhookDeadLetterPayload, type WebhookResponse
} from "../models/contract/index.ts";
import { SourceMixin, type SourceSchema, type SourceService, type SourceModule } from "../mixins/source.mixin.ts";
import { contractError } from "../runtime/contract-error.ts";
import { sendJson } from "../runtime/http-json.ts";

const SOURCE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/** Printable ASCII without spaces, as the IETF Idempotency-Key draft and every provider use. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
const DEAD_LETTER_BODY_CHARS = 64 * 1024;

type Refused = { ok: false; code: DeadLetterCode; errors: { index: number; reason: string }[] };
type Outcome = { ok: true; accepted: number; duplicates: number } | Refused;

interface WebhookVars { store: IdempotencyStore }
interface WebhookMethods {
	process(source: string, body: string, bodyEncoding: "base64" | undefined, ctx: Context): Promise<Outcome>;
	deadLetter(source: string, body: string, bodyEncoding: "base64" | undefined, refused: Refused): Promise<void>;
}
type IngestWebhookService = SourceService & WebhookVars & WebhookMethods;

function sha256Hex(s: string): string {
	return createHash("sha256").update(s).digest("hex");
}

function describe(errors: { index: number; reason: string }[]): string {
	const text = errors.slice(0, 5).map(e => (e.index < 0 ? e.reason : `events[${e.index}]: ${e.reason}`)).join("; ");
	return errors.length > 5 ? `${text}; and ${errors.length - 5} more` : text;
}

/** A store we cannot reach is a retryable server-side failure (503), never a reason to skip the idempotency check. */
async function unavailableOnError<T>(p: Promise<T>): Promise<T> {
	try {
		return await p;
	} catch (err) {
		throw contractError("STORE_UNAVAILABLE", `idempotency store unavailable: ${(err as Error).message}`);
	}
}

function errorStatus(err: unknown): number {
	const e = err as { code?: unknown; retryable?: unknown };
	if (e.retryable === true) return 503;
	return typeof e.code === "number" && e.code >= 400 && e.code < 600 ? e.code : 500;
}

export function createIngestWebhookService(config: Config): ServiceSchema {
	const edge = config.edge.webhook;
	const schema: SourceSchema<WebhookVars & WebhookMethods> = {
		name: IngestWebhook.service,
		mixins: [SourceMixin({ source: "webhook", caller: IngestWebhook.service, retryAction: IngestWebhook.reprocess, config })],
		actions: {
			receive: {
				visibility: "public",
				params: {
					source: { type: "string", pattern: SOURCE_NAME }, body: { type: "string" }, bodyEncoding: { type: "equal", value: "base64", optional: true },
					idempotencyKey: { type: "string", pattern: IDEMPOTENCY_KEY, optional: true }
				},
				async handler(this: IngestWebhookService, ctx: Context<ReceiveParams>): Promise<WebhookResponse> {
					const { source, body, bodyEncoding, idempotencyKey } = ctx.params;
					const key = idempotencyKey === undefined ? undefined : `${source}:${idempotencyKey}`;
					const fingerprint = sha256Hex(body);
					if (key !== undefined) {
						const claim = await unavailableOnError(this.store.claim(key, fingerprint, edge.pendingTtlS * 1000));
						if (claim.state === "in_flight") {
							return { status: 409, body: { error: { type: "IDEMPOTENCY_IN_FLIGHT", message: "a request with this Idempotency-Key is still being processed; retry later" } }, headers: { "Retry-After": "1" } };
						}
						if (claim.state === "done") {
							if (claim.fingerprint !== fingerprint) {
								return { status: 422, body: { error: { type: "IDEMPOTENCY_KEY_REUSED", message: "this Idempotency-Key was used for a different body" } } };
							}
							return { ...claim.response, headers: { "Idempotent-Replayed": "true" } };
						}
					}
					let response: StoredResponse;
					try {
						const outcome = await this.process(source, body, bodyEncoding, ctx);
						if (!outcome.ok) {
							// Dead-lettered before the 400 goes out: if that fails, the sender retries (5xx below).
							await this.deadLetter(source, body, bodyEncoding, outcome);
							response = { status: 400, body: { errors: outcome.errors } };
						} else {
							response = { status: 202, body: { accepted: outcome.accepted, duplicates: outcome.duplicates } };
						}
					} catch (err) {
						if (key !== undefined) await this.store.release(key).catch((e: unknown) => this.logger.warn("webhook: releasing an Idempotency-Key failed (it expires by itself):", e));
						throw err;
					}
					// Not completing would let a retry apply nothing new but dead-letter again: worth a 503 and a retry.
					if (key !== undefined) await unavailableOnError(this.store.complete(key, fingerprint, response, edge.idempotencyTtlS * 1000));
					return response;
				}
			},
			reprocess: {
				visibility: "public",
				params: { payload: { type: "object", props: { source: { type: "string", pattern: SOURCE_NAME }, body: "string", bodyEncoding: { type: "equal", value: "base64", optional: true }, truncatedFrom: { type: "number", optional: true } } } },
				async handler(this: IngestWebhookService, ctx: Context<{ payload: WebhookDeadLetterPayload }>) {
					const { source, body, bodyEncoding, truncatedFrom } = ctx.params.payload;
					if (truncatedFrom !== undefined) throw contractError("INVALID_PAYLOAD", "the dead letter kept only part of the body; it cannot be re-processed");
					const outcome = await this.process(source, body, bodyEncoding, ctx);
					if (!outcome.ok) throw contractError("INVALID_EVENTS", describe(outcome.errors), { errors: outcome.errors });
					return { accepted: outcome.accepted, duplicates: outcome.duplicates };
				}
			}
		},
		methods: {
			/** Parse, map, validate (all events first: any invalid → nothing applied), then apply per customer in order. */
			async process(this: IngestWebhookService, source: string, body: string, bodyEncoding: "base64" | undefined, ctx: Context): Promise<Outcome> {
				// Decoding invalid bytes lossily would apply U+FFFD in their place: such a body is refused whole.
				if (bodyEncoding === "base64") return { ok: false, code: "invalid_encoding", errors: [{ index: -1, reason: "body is not valid UTF-8" }] };
				let parsed: unknown;
				try {
					parsed = JSON.parse(body);
				} catch (err) {
					return { ok: false, code: "invalid_json", errors: [{ index: -1, reason: `body is not valid JSON: ${(err as Error).message}` }] };
				}
				const mapped = mapWebhookBody(source, parsed);
				if (!mapped.ok) return { ok: false, code: "invalid_event", errors: mapped.errors };
				const v = this.sink.validateBatch(mapped.events);
				if (!v.ok) return { ok: false, code: "invalid_event", errors: v.errors };
				const { accepted, duplicates } = await this.sink.applyAll(v.events, ctx);
				return { ok: true, accepted, duplicates };
			},
			async deadLetter(this: IngestWebhookService, source: string, body: string, bodyEncoding: "base64" | undefined, refused: Refused): Promise<void> {
				const payload: WebhookDeadLetterPayload = body.length > DEAD_LETTER_BODY_CHARS
					? { source, body: body.slice(0, DEAD_LETTER_BODY_CHARS), truncatedFrom: body.length }
					: { source, body };
				if (bodyEncoding !== undefined) payload.bodyEncoding = bodyEncoding;
				// The same body delivered again (no Idempotency-Key, a provider retry) keeps one dead letter.
				const dedupKey = `webhook/${source}/${sha256Hex(body)}`;
				await this.sink.deadLetter({ code: refused.code, reason: `/webhooks/${source}: ${describe(refused.errors)}`, payload, dedupKey });
			}
		},
		created(this: IngestWebhookService) {
			this.store = createIdempotencyStore({ redisUrl: config.redisUrl, dataDir: config.dataDir });
		},
		async started(this: IngestWebhookService) {
			await this.store.connect();
			if (config.webhookSecret === undefined) this.logger.warn("WEBHOOK_SECRET is not set: POST /webhooks/* refuses every request with 503 (unsigned webhooks are never accepted)");
			else this.logger.info(`webhooks: signed requests accepted on POST /webhooks/:source; Idempotency-Keys kept in ${this.store.kind === "redis" ? "Redis" : "the embedded store (NeDB)"}`);
		},
		async stopped(this: IngestWebhookService) {
			await this.store.close();
		}
	};
	return schema as unknown as ServiceSchema;
}

function header(req: IncomingMessage, name: string): string | undefined {
	const v = req.headers[name];
	return Array.isArray(v) ? v[0] : v;
}

function sendWebhookError(res: ServerResponse, status: number, type: string, message: string, headers: Record<string, string> = {}): void {
	for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
	sendJson(res, status, { error: { type, message } });
}

/**
 * The `/webhooks` route for the api service: no bearer key (the signature is the authentication), a raw body parser
 * (the HMAC covers the exact bytes), and the signature checked here, on the node that received the request, so
 * unauthenticated input never travels further. A failed signature is answered 401 and logged, not dead-lettered:
 * it is unauthenticated input, and keeping it would let anyone fill the dead-letter store.
 */
export function createWebhookRoute(config: Config): ApiRouteSchema {
	const secret = config.webhookSecret;
	const tolerance = config.edge.webhook.toleranceS;
	let refusalLogged = false;
	// Refused signatures are logged at most every 10 s (with a count): a flood of junk must not become a flood of logs.
	let refusedSince = 0;
	let lastRefusalLog = 0;
	return {
		path: "/webhooks",
		authentication: false,
		authorization: false,
		mappingPolicy: "restrict",
		// No Content-Encoding: the signature covers the bytes sent, and a corrupt gzip stream would otherwise end as a 500.
		bodyParsers: { json: false, raw: { type: () => true, limit: config.edge.webhook.maxBodyBytes, inflate: false } },
		aliases: {
			async "POST :source"(this: Service, req: IncomingMessage & { $params?: { source?: string }; body?: unknown }, res: ServerResponse) {
				if (secret === undefined) {
					if (!refusalLogged) this.logger.warn("webhook refused with 503: WEBHOOK_SECRET is not set (logged once)");
					refusalLogged = true;
					return sendWebhookError(res, 503, "WEBHOOKS_DISABLED", "webhooks are disabled: the server has no WEBHOOK_SECRET");
				}
				const source = req.$params?.source ?? "";
				if (!SOURCE_NAME.test(source)) return sendWebhookError(res, 404, "NOT_FOUND", "webhook source must be 1..64 letters, digits, _ or -");
				const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
				const check = verifyWebhookSignature({
					secret, timestamp: header(req, TIMESTAMP_HEADER), signature: header(req, SIGNATURE_HEADER), rawBody: raw, nowMs: Date.now(), toleranceS: tolerance
				});
				if (!check.ok) {
					refusedSince++;
					if (Date.now() - lastRefusalLog >= 10_000) {
						this.logger.warn(`webhook /webhooks/${source} refused (401): ${check.reason}${refusedSince > 1 ? ` (${refusedSince} refusals since the last report)` : ""}`);
						lastRefusalLog = Date.now();
						refusedSince = 0;
					}
					return sendWebhookError(res, 401, "INVALID_SIGNATURE", check.reason);
				}
				const idempotencyKey = header(req, "idempotency-key");
				if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
					return sendWebhookError(res, 400, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be 1..255 printable ASCII characters without spaces");
				}
				try {
					const body: Pick<ReceiveParams, "body" | "bodyEncoding"> = isUtf8(raw) ? { body: raw.toString("utf8") } : { body: raw.toString("base64"), bodyEncoding: "base64" };
					const params: ReceiveParams = { source, ...body, ...(idempotencyKey !== undefined ? { idempotencyKey } : {}) };
					const out = await call(this.broker, IngestWebhook.receive, params);
					for (const [k, v] of Object.entries(out.headers ?? {})) res.setHeader(k, v);
					sendJson(res, out.status, out.body);
				} catch (err) {
					const status = errorStatus(err);
					if (status >= 500) this.logger.warn(`webhook /webhooks/${source} failed (${status}), the sender will retry:`, err);
					sendWebhookError(res, status, (err as Errors.MoleculerError).type ?? "INTERNAL_ERROR", status >= 500 ? "the event could not be persisted now; retry later" : (err as Error).message, status === 503 ? { "Retry-After": "1" } : {});
				}
			}
		},
		onError(_req: IncomingMessage, res: ServerResponse, err: Error & { status?: number; type?: string }) {
			// Body-parser failures carry an HTTP status (413 for an oversize body) rather than a Moleculer code.
			const status = typeof err.status === "number" && err.status >= 400 && err.status < 500 ? err.status : errorStatus(err);
			sendWebhookError(res, status, status === 413 ? "BODY_TOO_LARGE" : (err.type ?? "INTERNAL_ERROR"), status === 413 ? `body exceeds ${config.edge.webhook.maxBodyBytes} bytes` : status >= 500 ? "internal error" : err.message);
		}
	} as ApiRouteSchema;
}

export const source: SourceModule = { createService: createIngestWebhookService, routes: config => [createWebhookRoute(config)] };
