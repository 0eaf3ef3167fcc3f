// dashboard: the operator page at /dashboard (static files with a CSP) and the published actions it reads — a
// cluster-wide summary (nodes, event rates, risk distribution, dead letters), a customer view and dead-letter retry.
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ApiRouteSchema } from "moleculer-web";
import type { Context, ServiceBroker, ServiceSchema } from "moleculer";
import type { Config } from "../config/index.ts";
import {
	call, Customers, Dashboard, DeadLetters, NodeMetricsActions, Workflows, type DashboardNode, type DashboardSummary, type DeadLetterSummary,
	type RiskDistribution
} from "../models/contract/index.ts";
import { shardMembers } from "../mixins/sharded-actor.mixin.ts";
import { ownerOf } from "../actors/sharding.ts";
import { credentialParam } from "../models/url-redaction.ts";

export const DASHBOARD_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "dashboard");

/** The page needs nothing but its own files and the API on the same origin. */
export const DASHBOARD_CSP = [
	"default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
	"base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"
].join("; ");

const CONTENT_TYPES: Record<string, string> = {
	".html": "text/html; charset=utf-8",
	".js": "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml",
	".ico": "image/x-icon"
};

/** Per-node calls must not hold the page up when a node is slow or gone. */
const NODE_CALL_TIMEOUT_MS = 2000;
/** The risk scan reads every customer's score from the store: not more often than this. */
const RISK_CACHE_MS = 2000;
const TOP_AT_RISK = 10;
const JOURNAL_LIMIT = 25;
/** Risk changes shown beside the score. */
const LINEAGE_LIMIT = 10;
const DEAD_LETTER_SCAN = 500;

interface RestParams<Q = Record<string, string>, P = Record<string, string>> { body: unknown; query: Q; params: P }

/**
 * The static files, read once at start: an allow-list, so no request path ever reaches the file system.
 * `/dashboard` has no bearer auth (a browser cannot send a header when it navigates): the files hold no data;
 * every figure comes from /api/v1 with the key the page asks for once.
 */
export function dashboardRoute(dir: string = DASHBOARD_DIR): ApiRouteSchema {
	const files = new Map<string, { body: Buffer; type: string }>();
	for (const name of ["index.html", "dashboard.css", "dashboard.js"]) {
		files.set(name, { body: readFileSync(path.join(dir, name)), type: CONTENT_TYPES[path.extname(name)] });
	}
	const send = (res: ServerResponse, name: string) => {
		const file = files.get(name);
		const headers: Record<string, string | number> = {
			"Content-Security-Policy": DASHBOARD_CSP,
			"X-Content-Type-Options": "nosniff",
			"Referrer-Policy": "no-referrer",
			"X-Frame-Options": "DENY",
			"Cache-Control": "no-cache"
		};
		if (!file) {
			res.writeHead(404, { ...headers, "Content-Type": "text/plain; charset=utf-8" });
			res.end("not found");
			return;
		}
		res.writeHead(200, { ...headers, "Content-Type": file.type, "Content-Length": file.body.length });
		res.end(file.body);
	};
	// A key in the URL is refused, not ignored: serving the page would teach users a link that leaks their key.
	const refusesCredential = (req: IncomingMessage & { originalUrl?: string }, res: ServerResponse): boolean => {
		const param = credentialParam(req.originalUrl ?? req.url);
		if (param === undefined) return false;
		const text = JSON.stringify({ error: { type: "CREDENTIAL_IN_URL", message: `an API key does not belong in a URL (query parameter "${param.slice(0, 32)}"): open /dashboard without it and enter the key in the page` } });
		res.writeHead(400, { "Content-Type": "application/json; charset=utf-8", "Content-Length": Buffer.byteLength(text), "Cache-Control": "no-store", "Referrer-Policy": "no-referrer" });
		res.end(text);
		return true;
	};
	return {
		path: "/dashboard",
		authentication: false,
		mappingPolicy: "restrict",
		aliases: {
			"GET /"(req: IncomingMessage, res: ServerResponse) {
				if (!refusesCredential(req, res)) send(res, "index.html");
			},
			"GET /:file"(req: IncomingMessage & { $params?: { file?: string } }, res: ServerResponse) {
				if (!refusesCredential(req, res)) send(res, String(req.$params?.file ?? ""));
			}
		}
	};
}

interface NodeInfo { id: string; hostname?: string; local?: boolean; services?: Array<{ name: string }> }

function hasService(broker: ServiceBroker, name: string): boolean {
	return broker.registry.getServiceList({ onlyAvailable: true }).some((s: { name: string }) => s.name === name);
}

/** Loosely reads a dead letter: the fields the page shows. */
function readDeadLetter(raw: unknown): { id: string; source: string; reason: string; reasonCode: string | null; recordedAt: string | null } | null {
	if (typeof raw !== "object" || raw === null) return null;
	const d = raw as Record<string, unknown>;
	if (typeof d.id !== "string" && typeof d.id !== "number") return null;
	return {
		id: String(d.id),
		source: typeof d.source === "string" ? d.source : "unknown",
		reason: typeof d.reason === "string" ? d.reason : "unknown",
		reasonCode: typeof d.reasonCode === "string" ? d.reasonCode : null,
		recordedAt: typeof d.recordedAt === "string" ? d.recordedAt : null
	};
}

const num = (v: unknown): number | null => (typeof v === "number" ? v : null);

async function nodeFigures(ctx: Context, n: NodeInfo) {
	const opts = { nodeID: n.id, timeout: NODE_CALL_TIMEOUT_MS, retries: 0 };
	const services = (n.services ?? []).map(s => s.name).filter(s => !s.startsWith("$"));
	const hostsCustomers = services.includes(Customers.service);
	const [snap, stats] = await Promise.all([
		call(ctx, NodeMetricsActions.snapshot, {}, opts).catch(() => null),
		hostsCustomers ? call(ctx, Customers.nodeStats, {}, opts).catch(() => null) : null
	]);
	return { n, services, hostsCustomers, snap, stats };
}

async function topAtRisk(ctx: Context): Promise<DashboardSummary["risk"]["top"]> {
	if (!hasService(ctx.broker, Customers.service)) return [];
	const rows = await call(ctx, Customers.listByRisk, { riskAbove: 0, limit: TOP_AT_RISK });
	return Promise.all(rows.map(async r => {
		const c = await call(ctx, Customers.get, { customerId: r.id }).catch(() => null);
		return { id: r.id, score: r.score, factors: c?.risk?.factors ?? {}, churnProbability: c?.churnProbability ?? null };
	}));
}

async function deadLetterSummary(ctx: Context, countedSinceStart: Record<string, number>): Promise<DeadLetterSummary> {
	const out: DeadLetterSummary = { available: false, scanned: 0, byReason: [], recent: [], countedSinceStart };
	if (!hasService(ctx.broker, DeadLetters.service)) return out;
	let listed: unknown;
	try {
		listed = await call(ctx, DeadLetters.list, { limit: DEAD_LETTER_SCAN }, { timeout: NODE_CALL_TIMEOUT_MS * 2, retries: 0 });
	} catch (err) {
		ctx.broker.logger.warn(`dashboard: dead letters unavailable: ${(err as Error).message}`);
		return out;
	}
	const items = (Array.isArray(listed) ? listed : []).map(readDeadLetter).filter(d => d !== null);
	const groups = new Map<string, DeadLetterSummary["byReason"][number]>();
	for (const d of items) {
		const key = `${d.source}\u0000${d.reasonCode ?? d.reason}`;
		const g = groups.get(key) ?? { source: d.source, reason: d.reasonCode ?? d.reason, count: 0, ids: [] };
		g.count++;
		g.ids.push(d.id);
		groups.set(key, g);
	}
	out.available = true;
	out.scanned = items.length;
	out.byReason = [...groups.values()].sort((a, b) => b.count - a.count);
	out.recent = items.slice(0, 10).map(d => ({ id: d.id, source: d.source, reason: d.reason, recordedAt: d.recordedAt }));
	return out;
}

/** The automation's tasks or processes of a customer when the workflows service runs, else null. */
async function workflowList(ctx: Context, list: "tasks" | "processes", customerId: string): Promise<unknown[] | null> {
	if (!hasService(ctx.broker, Workflows.service)) return null;
	try {
		const res = list === "tasks" ? await call(ctx, Workflows.tasks, { customerId }) : await call(ctx, Workflows.processes, { customerId, limit: 20 });
		return Array.isArray(res) ? res : null;
	} catch (err) {
		ctx.broker.logger.warn(`dashboard: workflows.${list} failed: ${(err as Error).message}`);
		return null;
	}
}

export function createDashboardService(_config: Config): ServiceSchema {
	let riskCache: { at: number; value: RiskDistribution | null } | null = null;

	async function riskDistribution(ctx: Context, owners: string[]): Promise<RiskDistribution | null> {
		if (riskCache && Date.now() - riskCache.at < RISK_CACHE_MS) return riskCache.value;
		// Any node hosting the actors reads the (shared) store; prefer this one.
		const nodeID = owners.includes(ctx.broker.nodeID) ? ctx.broker.nodeID : owners[0];
		if (nodeID === undefined) return null;
		const value = await call(ctx, NodeMetricsActions.riskDistribution, {}, { nodeID, timeout: 10_000, retries: 0 })
			.catch((err: unknown) => {
				ctx.broker.logger.warn(`dashboard: risk distribution unavailable: ${(err as Error).message}`);
				return null;
			});
		riskCache = { at: Date.now(), value };
		return value;
	}

	async function summary(ctx: Context): Promise<DashboardSummary> {
		const nodes = ctx.broker.registry.getNodeList({ onlyAvailable: true, withServices: true }) as unknown as NodeInfo[];
		const perNode = await Promise.all(nodes.map(n => nodeFigures(ctx, n)));
		const sources = new Set<string>();
		const buckets = new Map<number, Record<string, number>>();
		let bucketMs = 10_000;
		const totals: DashboardSummary["totals"] = { received: 0, applied: 0, duplicates: 0, failed: 0, activeActors: 0, customers: null, bySource: {} };
		const countedSinceStart: Record<string, number> = {};
		const outNodes: DashboardNode[] = perNode.map(({ n, services, hostsCustomers, snap, stats }) => {
			const sum = { received: 0, applied: 0, duplicates: 0, failed: 0 };
			if (snap) {
				bucketMs = snap.rate.bucketMs;
				for (const [source, c] of Object.entries(snap.bySource)) {
					sources.add(source);
					const t = (totals.bySource[source] ??= { received: 0, applied: 0, duplicates: 0, failed: 0 });
					t.received += c.received;
					t.applied += c.applied;
					t.duplicates += c.duplicates;
					t.failed += c.failed;
					sum.received += c.received;
					sum.applied += c.applied;
					sum.duplicates += c.duplicates;
					sum.failed += c.failed;
				}
				for (const b of snap.rate.buckets) {
					const into = buckets.get(b.t) ?? {};
					for (const [source, count] of Object.entries(b.received)) into[source] = (into[source] ?? 0) + count;
					buckets.set(b.t, into);
				}
				for (const [source, reasons] of Object.entries(snap.deadLetters)) {
					countedSinceStart[source] = (countedSinceStart[source] ?? 0) + Object.values(reasons).reduce((a, b) => a + b, 0);
				}
			}
			totals.received += sum.received;
			totals.applied += sum.applied;
			totals.duplicates += sum.duplicates;
			totals.failed += sum.failed;
			const active = num(stats?.active) ?? snap?.actors?.active ?? null;
			totals.activeActors += active ?? 0;
			return {
				nodeID: n.id,
				hostname: n.hostname ?? null,
				local: n.local === true,
				services,
				hostsCustomers,
				ownedShare: hostsCustomers ? num(stats?.ownedShare) : null,
				activeActors: active,
				memoryEstimateBytes: snap?.actors?.memoryEstimateBytes ?? null,
				heapUsedBytes: snap?.process.heapUsedBytes ?? num(stats?.heapUsedBytes),
				rssBytes: snap?.process.rssBytes ?? num(stats?.rssBytes),
				mailboxDepth: snap?.mailboxDepth ?? null,
				...sum,
				store: typeof stats?.store === "string" ? stats.store : null,
				reachable: snap !== null
			};
		});
		// Without an ownership figure from a node, the rendezvous hash gives each an equal share.
		const owners = outNodes.filter(n => n.hostsCustomers);
		for (const n of owners) if (n.ownedShare === null) n.ownedShare = 1 / owners.length;
		outNodes.sort((a, b) => a.nodeID.localeCompare(b.nodeID));
		const [risk, top, deadLetters] = await Promise.all([
			riskDistribution(ctx, owners.map(n => n.nodeID)),
			topAtRisk(ctx),
			deadLetterSummary(ctx, countedSinceStart)
		]);
		totals.customers = risk?.total ?? null;
		return {
			generatedAt: new Date().toISOString(),
			nodes: outNodes,
			sources: [...sources].sort(),
			rate: { bucketMs, buckets: [...buckets].sort((a, b) => a[0] - b[0]).map(([t, bySource]) => ({ t, bySource })) },
			totals,
			risk: { total: risk?.total ?? null, covered: risk?.covered ?? null, histogram: risk?.histogram ?? null, top },
			deadLetters
		};
	}

	return {
		name: Dashboard.service,
		settings: { rest: "/" },
		actions: {
			summary: {
				rest: "GET /dashboard/summary",
				visibility: "published",
				handler: (ctx: Context) => summary(ctx)
			},
			customer: {
				rest: "GET /dashboard/customers/:id",
				visibility: "published",
				params: { params: { type: "object", props: { id: { type: "string", min: 1, max: 128 } } } },
				async handler(ctx: Context<RestParams>) {
					const customerId = ctx.params.params.id;
					const customer = await call(ctx, Customers.get, { customerId });
					const [journal, riskHistory, tasks, processes] = await Promise.all([
						call(ctx, Customers.journal, { customerId, limit: JOURNAL_LIMIT }),
						call(ctx, Customers.riskHistory, { customerId, limit: LINEAGE_LIMIT }),
						workflowList(ctx, "tasks", customerId),
						workflowList(ctx, "processes", customerId)
					]);
					return { customer, journal, riskHistory, tasks, processes, owner: ownerOf(customerId, shardMembers(ctx.broker, Customers.handle.name)) };
				}
			}
		}
	};
}
