// api: the HTTP contract of ARCHITECTURE §9 (moleculer-web): events in, customer reads, risk listing, health, auth.
import { Buffer } from "node:buffer";
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import ApiGateway from "moleculer-web";
import type { ApiRouteSchema, ApiSettingsSchema } from "moleculer-web";
import type { Context, ServiceSchema, Service } from "moleculer";
import type { Config } from "../config/index.ts";
import { redactUrl } from "../models/url-redaction.ts";
import { asyncApiDocument, openApiDocument, type ParamRule, type RouteInfo } from "../models/published-schemas.ts";
import pkg from "../package.json" with { type: "json" };
import { call, Customers } from "../models/contract/index.ts";
import { SourceMixin, sinkOf } from "../mixins/source.mixin.ts";
import { contractError } from "../runtime/contract-error.ts";
import { jsonBodyParser, sendError, sendJson } from "../runtime/http-json.ts";
import { SSE_DEFAULTS, SseStream, type SseOptions } from "../runtime/sse.ts";
import { ChangeHub, parseVersionId } from "./streams/change-streams.ts";
import { CustomerEvents, CUSTOMER_ID } from "../models/contract/index.ts";
import { FEED_END, isCursor } from "../models/change-record.ts";

/** The API service with its change streams (created in `created`). */
type ApiService = Service & { changeHub: ChangeHub; sseOptions: SseOptions };

type StreamRequest = IncomingMessage & { $params?: { params?: Record<string, string> }; parsedUrl?: string };

/** Query parameters of a raw request (moleculer-web hands raw aliases the URL as it came). */
function queryOf(req: IncomingMessage): URLSearchParams {
	return new URL(req.url ?? "/", "http://localhost").searchParams;
}

function lastEventId(req: IncomingMessage): string | undefined {
	const h = req.headers["last-event-id"];
	return Array.isArray(h) ? h[0] : h;
}

/** `GET /api/v1/customers/:id/stream`: resumes after Last-Event-ID (a version) or `?since=`, else from now. */
function openCustomerStream(svc: ApiService, req: StreamRequest, res: ServerResponse): void {
	const customerId = req.$params?.params?.id ?? "";
	if (typeof customerId !== "string" || customerId.length > CUSTOMER_ID.max || !CUSTOMER_ID.pattern.test(customerId)) {
		sendError(res, contractError("INVALID_STREAM_PARAMS", "invalid customer id", { customerId: String(customerId).slice(0, 64) }));
		return;
	}
	const resumeId = lastEventId(req) ?? queryOf(req).get("since") ?? undefined;
	const last = parseVersionId(resumeId);
	if (resumeId !== undefined && resumeId !== "" && last === null) {
		sendError(res, contractError("INVALID_STREAM_PARAMS", "Last-Event-ID (or since) must be a version number", {}));
		return;
	}
	const stream = new SseStream(req, res, svc.sseOptions);
	// A merged id streams its survivor (docs/merge.md); an id not seen yet streams itself from version 0.
	call(svc.broker, Customers.get, { customerId }).then(view => view.id, () => customerId).then(id => svc.changeHub.openCustomer(id, last, stream)).catch((err: unknown) => {
		svc.logger.warn(`change stream of ${customerId} failed`, err);
		stream.cut("error", "the stream could not start: reconnect to try again");
	});
}

/** `GET /api/v1/stream?riskAbove=S`: the store-wide feed, resumes after Last-Event-ID (a feed cursor), else from now. */
function openFeedStream(svc: ApiService, req: StreamRequest, res: ServerResponse): void {
	const query = queryOf(req);
	const above = query.get("riskAbove");
	const riskAbove = above === null || above === "" ? null : Number(above);
	if (riskAbove !== null && !(Number.isFinite(riskAbove) && riskAbove >= -1 && riskAbove <= 100)) {
		sendError(res, contractError("INVALID_STREAM_PARAMS", "riskAbove must be a number from -1 to 100", {}));
		return;
	}
	const resumeId = lastEventId(req) ?? query.get("since") ?? undefined;
	if (resumeId !== undefined && resumeId !== "" && !isCursor(resumeId)) {
		sendError(res, contractError("INVALID_STREAM_PARAMS", "Last-Event-ID (or since) must be a cursor of this stream", {}));
		return;
	}
	const stream = new SseStream(req, res, svc.sseOptions);
	svc.changeHub.openFeed(resumeId === undefined || resumeId === "" || resumeId === FEED_END ? null : resumeId, riskAbove, stream).catch((err: unknown) => {
		svc.logger.warn("change stream failed", err);
		stream.cut("error", "the stream could not start: reconnect to try again");
	});
}

/** Largest accepted request body: 1000 events of a few hundred bytes fit many times over. */
const BODY_LIMIT = "8mb";
const API_PREFIX = "/api/v1";
const PACKAGE_VERSION: string = pkg.version;

interface RestParams<B = unknown, Q = Record<string, string>, P = Record<string, string>> { body: B; query: Q; params: P }

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

/** What of moleculer-web's gateway the readiness check reads: its alias table (the routes it serves now). */
type GatewayService = Service & {
	aliases: Array<{ action?: string; _generated?: boolean }>;
	routes: Array<{ opts: { autoAliases?: boolean } }>;
	regenerateAutoAliases(route: { opts: { autoAliases?: boolean } }): void;
};

interface RegistryService {
	name: string;
	fullName?: string;
	actions?: Record<string, { name: string; rest?: unknown; visibility?: string }>;
}

/**
 * Why the node cannot serve everything it offers yet (empty: ready): a service of this node not started, no
 * `customers` anywhere, or an action published with `rest:` (by any node) whose route the gateway has not built yet —
 * moleculer-web rebuilds its aliases a moment after the registry changes, and until then the route answers 404.
 */
export function notReadyBecause(api: GatewayService): string[] {
	const broker = api.broker;
	const waiting: string[] = [];
	if (broker.started !== true) waiting.push("the node is starting");
	const available = broker.registry.getServiceList({ onlyAvailable: true, withActions: true }) as RegistryService[];
	const startedHere = new Set((broker.registry.getServiceList({ onlyLocal: true, onlyAvailable: true }) as RegistryService[]).map(s => s.fullName ?? s.name));
	for (const svc of broker.services) {
		if (!startedHere.has(svc.fullName)) waiting.push(`service ${svc.fullName} has not started`);
	}
	if (!available.some(s => s.name === Customers.service)) waiting.push("no node runs the customers service");
	const routed = new Set(api.aliases.filter(a => a._generated).map(a => a.action));
	for (const svc of available) {
		for (const action of Object.values(svc.actions ?? {})) {
			// What moleculer-web aliases: published actions with a `rest` definition.
			if (!action.rest || (action.visibility != null && action.visibility !== "published")) continue;
			if (!routed.has(action.name)) waiting.push(`route of ${action.name}`);
		}
	}
	return [...new Set(waiting)];
}

interface AliasInfo {
	actionName?: string;
	fullPath: string;
	methods: string;
	routePath: string;
	action?: { params?: Record<string, ParamRule> };
}

/** The /api/v1 routes this node serves, with their actions' param schemas (from moleculer-web's alias list). */
async function routeInfos(svc: Service): Promise<RouteInfo[]> {
	const aliases = await svc.actions.listAliases({ withActionSchema: true }) as AliasInfo[];
	return aliases
		// The gateway's own alias list is an operator's tool, not part of the API.
		.filter(a => a.routePath === API_PREFIX && a.methods !== "*" && a.methods.toUpperCase() !== "REST" && a.actionName !== "api.listAliases")
		.map(a => ({ method: a.methods.toUpperCase(), path: a.fullPath, action: a.actionName, params: a.action?.params, auth: true }));
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
		// The API is a source too: events it takes in go through its sink (validated, applied per customer, counted).
		mixins: [ApiGateway, SourceMixin({ source: "api", caller: "api", config })],
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
							const waiting = notReadyBecause(this as GatewayService);
							sendJson(res, waiting.length === 0 ? 200 : 503, waiting.length === 0 ? { status: "ready" } : { status: "not ready", waiting });
						}
					}
				},
				{
					path: API_PREFIX,
					authentication: authRequired,
					mappingPolicy: "restrict",
					autoAliases: true,
					mergeParams: false,
					bodyParsers: { json: jsonBodyParser(BODY_LIMIT) },
					aliases: {
						"POST events": "api.postEvents",
						"GET customers/:id": "api.getCustomer",
						"GET customers/:id/events": "api.getJournal",
						"POST customers/:id/merge": "api.mergeCustomer",
						"GET customers/:id/risk/history": "api.getRiskHistory",
						// Server-Sent Events (docs/streams.md): raw handlers that keep the response open.
						"GET customers/:id/stream"(this: Service, req: StreamRequest, res: ServerResponse) {
							openCustomerStream(this as ApiService, req, res);
						},
						"GET stream"(this: Service, req: StreamRequest, res: ServerResponse) {
							openFeedStream(this as ApiService, req, res);
						},
						"GET customers": "api.listCustomers",
						"GET openapi.json": "api.openapi",
						"GET asyncapi.json": "api.asyncapi"
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
			/** The OpenAPI 3.1 document of the routes this node serves, generated from their param validators. */
			openapi: {
				visibility: "published",
				params: {},
				async handler(this: Service) {
					return openApiDocument(await routeInfos(this), { version: PACKAGE_VERSION });
				}
			},
			/** The AsyncAPI 3.0 document of the NATS subjects, the dead-letter subjects and the MQTT topic. */
			asyncapi: {
				visibility: "published",
				params: {},
				handler() {
					return asyncApiDocument({ version: PACKAGE_VERSION });
				}
			},
			postEvents: {
				visibility: "published",
				params: { body: "any" },
				async handler(this: Service, ctx: Context<RestParams, { $statusCode?: number }>) {
					const sink = sinkOf(this);
					const v = sink.validateBatch(ctx.params.body);
					if (!v.ok) throw contractError("INVALID_EVENTS", "invalid events", { errors: v.errors });
					const counts = await sink.applyAll(v.events, ctx);
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
			/** Merges customer `body.from` into `:id` (docs/merge.md): 200 with the survivor once the merge is persisted. */
			mergeCustomer: {
				visibility: "published",
				params: {
					params: { type: "object", props: { id: "string" } },
					body: { type: "object", props: { from: { ...CUSTOMER_ID } } }
				},
				handler(this: Service, ctx: Context<RestParams<{ from: string }>>) {
					return call(ctx, Customers.merge, { customerId: ctx.params.params.id, from: ctx.params.body.from });
				}
			},
			/** Change stream clients connected to this node (operators, tests, the streams bench). */
			streamStats: {
				visibility: "public",
				handler(this: Service) {
					return { clients: (this as ApiService).changeHub.clients };
				}
			},
			getRiskHistory: {
				visibility: "published",
				params: { params: { type: "object", props: { id: "string" } }, query: { type: "object", props: { limit: { type: "number", integer: true, min: 1, max: 1000, optional: true, convert: true } } } },
				handler(this: Service, ctx: Context<RestParams<unknown, { limit?: number }>>) {
					return call(ctx, Customers.riskHistory, { customerId: ctx.params.params.id, limit: ctx.params.query.limit });
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
		events: {
			// A node persisted changes: the change streams of this node read the store's feed.
			[CustomerEvents.changesPersisted.name](this: Service) {
				(this as ApiService).changeHub.wake();
			},
			// Every service of this node has started and is registered: build their routes now, before the node reports
			// started (moleculer-web builds them half a second after the registry settles, and answers 404 meanwhile).
			// Services of other nodes get theirs when they appear; /health/ready says so until then.
			"$broker.started"(this: Service) {
				const gateway = this as GatewayService;
				for (const route of gateway.routes) if (route.opts.autoAliases) gateway.regenerateAutoAliases(route);
			}
		},
		created(this: Service) {
			const svc = this as ApiService;
			const broker = this.broker;
			svc.sseOptions = { ...SSE_DEFAULTS, maxBufferedBytes: config.streams.maxBufferedBytes, heartbeatMs: config.streams.heartbeatMs, retryMs: config.streams.retryMs };
			svc.changeHub = new ChangeHub({
				source: {
					changesSince: (customerId, afterVersion, limit) => call(broker, Customers.changesSince, { customerId, afterVersion, limit }),
					feed: (cursor, limit) => call(broker, Customers.feed, { cursor, limit }),
					version: customerId => call(broker, Customers.get, { customerId }).then(c => c.version, (err: unknown) => {
						if ((err as { type?: string }).type === "CUSTOMER_NOT_FOUND") return 0;
						throw err;
					})
				},
				onError: (message, err) => this.logger.warn(message, err)
			});
		},
		started(this: Service) {
			if (!authRequired) this.logger.warn(`API_KEYS is not set: the HTTP API has no authentication and listens on ${config.host} only`);
		},
		stopped(this: Service) {
			(this as ApiService).changeHub.stop();
		}
	};
}
