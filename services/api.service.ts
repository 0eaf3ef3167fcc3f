// api: the HTTP contract of ARCHITECTURE §9 (moleculer-web): events in, customer reads, risk listing, health, auth.
import { Buffer, isUtf8 } from "node:buffer";
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import ApiGateway from "moleculer-web";
import type { ApiRouteSchema, ApiSettingsSchema } from "moleculer-web";
import { Errors } from "moleculer";
import type { Context, ServiceSchema, Service } from "moleculer";
import type { Config } from "../config/index.ts";
import { validateEvents } from "../models/cloud-event.validator.ts";
import { redactUrl } from "../models/url-redaction.ts";
import type { CloudEvent } from "../models/cloud-event.ts";
import { call, Customers } from "../models/contract/index.ts";
import { contractError } from "../runtime/contract-error.ts";

/** Largest accepted request body: 1000 events of a few hundred bytes fit many times over. */
const BODY_LIMIT = "8mb";

interface RestParams<B = unknown, Q = Record<string, string>, P = Record<string, string>> { body: B; query: Q; params: P }

export function groupBySubject(events: CloudEvent[]): Map<string, CloudEvent[]> {
	const groups = new Map<string, CloudEvent[]>();
	for (const e of events) {
		const list = groups.get(e.subject);
		if (list) list.push(e);
		else groups.set(e.subject, [e]);
	}
	return groups;
}

/**
 * Sends validated events to their actors — one call per customer, its events in order, customers in parallel — and
 * resolves once every change is persisted, with how many were applied and how many were duplicates.
 */
export async function applyEvents(ctx: Context, events: CloudEvent[]): Promise<{ accepted: number; duplicates: number }> {
	const results = await Promise.all(
		[...groupBySubject(events)].map(([customerId, list]) =>
			list.length === 1
				? call(ctx, Customers.handle, { customerId, event: list[0] }).then(r => [r])
				: call(ctx, Customers.handleMany, { customerId, events: list })
		)
	);
	let accepted = 0;
	let duplicates = 0;
	for (const list of results) for (const r of list) {
		if (r.applied) accepted++;
		else duplicates++;
	}
	return { accepted, duplicates };
}

function sha256(s: string): Buffer {
	return createHash("sha256").update(s).digest();
}

/**
 * Whether a presented key is one of `keys`. Both sides are SHA-256 digests, so timingSafeEqual always compares 32
 * bytes: neither a key's bytes nor its length can be found by timing the answer.
 */
export function createKeyMatcher(keys: readonly string[]): (given: string) => boolean {
	const hashes = keys.map(sha256);
	return given => {
		const digest = sha256(given);
		let match = false;
		// Every key is compared, so the time does not tell which one matched either.
		for (const h of hashes) match = timingSafeEqual(h, digest) || match;
		return match;
	};
}

/** A JSON body must be UTF-8 (RFC 8259 §8.1); refuse other charsets and invalid bytes instead of decoding them lossily. */
export function verifyUtf8Body(_req: IncomingMessage, _res: ServerResponse, buf: Buffer, encoding: string | null): void {
	if (encoding !== null && encoding.toLowerCase() !== "utf-8") {
		throw Object.assign(new Error(`unsupported charset "${encoding}": send UTF-8`), { status: 415, type: "UNSUPPORTED_CHARSET" });
	}
	if (!isUtf8(buf)) throw Object.assign(new Error("body is not valid UTF-8"), { status: 400, type: "INVALID_ENCODING" });
}

/**
 * The body-parser options of a JSON route: UTF-8 only, and no Content-Encoding (a corrupt gzip stream would
 * otherwise surface as a 500 without a status; 415 tells the client what to change).
 */
export function jsonBodyParser(limit: string) {
	return { strict: false, limit, inflate: false, verify: verifyUtf8Body };
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
	const text = JSON.stringify(body);
	res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Content-Length": Buffer.byteLength(text) });
	res.end(text);
}

/** Maps any error to the JSON error body clients rely on: `{ errors: [...] }` for invalid events, else `{ error }`. */
export function sendError(res: ServerResponse, err: Errors.MoleculerError | Error): void {
	const e = err as Errors.MoleculerError;
	let status = typeof e.code === "number" && e.code >= 400 && e.code < 600 ? e.code : 500;
	if (e.type === "VALIDATION_ERROR" || e.type === "INVALID_EVENT") status = 400;
	if (e.type === "entity.parse.failed") return sendJson(res, 400, { error: { type: "INVALID_JSON", message: `request body is not valid JSON: ${e.message}` } });
	if (e.type === "INVALID_EVENTS") return sendJson(res, 400, { errors: (e.data as { errors: unknown[] }).errors });
	if (e.type === "INVALID_EVENT") {
		const d = (e.data ?? {}) as { index?: number; reason?: string };
		return sendJson(res, 400, { errors: [{ index: d.index ?? 0, reason: d.reason ?? e.message }] });
	}
	const body: Record<string, unknown> = { error: { type: e.type ?? "INTERNAL_ERROR", message: status >= 500 && !e.retryable ? "internal error" : e.message } };
	if (status < 500 && e.data !== undefined) (body.error as Record<string, unknown>).data = e.data;
	sendJson(res, status, body);
}

/**
 * Other services publish their own endpoints under /api/v1 by declaring `rest: "GET /things"` on published actions
 * with `settings.rest: "/"` (moleculer-web auto-aliases; same auth, JSON, `{ body, query, params }` params).
 * Routes that need something else (raw bodies for signed webhooks, the dashboard) come in as `extraRoutes`.
 */
export function createApiService(config: Config, extraRoutes: ApiRouteSchema[] = []): ServiceSchema<ApiSettingsSchema> {
	const keyMatches = createKeyMatcher(config.apiKeys);
	const authRequired = config.apiKeys.length > 0;
	return {
		name: "api",
		mixins: [ApiGateway],
		settings: {
			port: config.port,
			ip: config.host,
			// Request bodies carry personal data: never logged, whatever LOG_LEVEL says.
			logRequestParams: null,
			logResponseData: null,
			routes: [
				{
					path: "/health",
					authentication: false,
					mappingPolicy: "restrict",
					aliases: {
						"GET live"(_req: IncomingMessage, res: ServerResponse) {
							sendJson(res, 200, { status: "live" });
						},
						"GET ready"(this: Service, _req: IncomingMessage, res: ServerResponse) {
							const ready = this.broker.started === true && this.broker.registry.getServiceList({ onlyAvailable: true }).some((s: { name: string }) => s.name === "customers");
							sendJson(res, ready ? 200 : 503, { status: ready ? "ready" : "not ready" });
						}
					}
				},
				{
					path: "/api/v1",
					authentication: authRequired,
					mappingPolicy: "restrict",
					autoAliases: true,
					mergeParams: false,
					bodyParsers: { json: jsonBodyParser(BODY_LIMIT) },
					aliases: {
						"POST events": "api.postEvents",
						"GET customers/:id": "api.getCustomer",
						"GET customers/:id/events": "api.getJournal",
						"GET customers": "api.listCustomers"
					},
					onError(_req: IncomingMessage, res: ServerResponse, err: Error) {
						sendError(res, err);
					}
				},
				...extraRoutes
			],
			onError(_req: IncomingMessage, res: ServerResponse, err: Error) {
				sendError(res, err);
			}
		},
		actions: {
			postEvents: {
				visibility: "published",
				params: { body: "any" },
				async handler(this: Service, ctx: Context<RestParams, { $statusCode?: number }>) {
					const v = validateEvents(ctx.params.body);
					if (!v.ok) throw contractError("INVALID_EVENTS", "invalid events", { errors: v.errors });
					const counts = await applyEvents(ctx, v.events);
					ctx.meta.$statusCode = 202;
					return counts;
				}
			},
			getCustomer: {
				visibility: "published",
				params: { params: { type: "object", props: { id: "string" } } },
				handler(this: Service, ctx: Context<RestParams>) {
					return call(ctx, Customers.get, { customerId: ctx.params.params.id });
				}
			},
			getJournal: {
				visibility: "published",
				params: { params: { type: "object", props: { id: "string" } }, query: { type: "object", props: { limit: { type: "number", integer: true, min: 1, max: 1000, optional: true, convert: true } } } },
				handler(this: Service, ctx: Context<RestParams<unknown, { limit?: number }>>) {
					return call(ctx, Customers.journal, { customerId: ctx.params.params.id, limit: ctx.params.query.limit });
				}
			},
			listCustomers: {
				visibility: "published",
				params: {
					query: {
						type: "object",
						props: {
							riskAbove: { type: "number", min: -1, max: 100, optional: true, convert: true },
							limit: { type: "number", integer: true, min: 1, max: 1000, optional: true, convert: true }
						}
					}
				},
				handler(this: Service, ctx: Context<RestParams<unknown, { riskAbove?: number; limit?: number }>>) {
					return call(ctx, Customers.listByRisk, { riskAbove: ctx.params.query.riskAbove, limit: ctx.params.query.limit });
				}
			}
		},
		methods: {
			// moleculer-web logs each request's URL as sent: a key put in a query string, or a customer id that is an
			// e-mail address, would land in the log. These log it redacted.
			logRequest(this: Service, req: IncomingMessage & { originalUrl?: string; $route?: { logging?: boolean } }) {
				if (req.$route?.logging === false) return;
				this.logger.info(`=> ${req.method} ${redactUrl(req.originalUrl ?? req.url)}`);
			},
			logResponse(this: Service, req: IncomingMessage & { originalUrl?: string; $route?: { logging?: boolean }; $startTime?: [number, number] }, res: ServerResponse) {
				if (req.$route?.logging === false) return;
				const ms = req.$startTime ? (process.hrtime(req.$startTime)[0] * 1e3 + process.hrtime(req.$startTime)[1] / 1e6).toFixed(3) : "?";
				this.logger.info(`<= ${res.statusCode} ${req.method} ${redactUrl(req.originalUrl ?? req.url)} [+${ms} ms]`);
			},
			authenticate(_ctx: Context, _route: unknown, req: IncomingMessage) {
				const header = req.headers.authorization ?? "";
				const m = /^Bearer (.+)$/.exec(header);
				if (m && keyMatches(m[1])) return { apiKey: true };
				throw new ApiGateway.Errors.UnAuthorizedError(ApiGateway.Errors.ERR_INVALID_TOKEN, { reason: "missing or invalid bearer API key" });
			}
		},
		started(this: Service) {
			if (!authRequired) this.logger.warn(`API_KEYS is not set: the HTTP API has no authentication and listens on ${config.host} only`);
		}
	};
}
