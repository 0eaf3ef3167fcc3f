// /health/ready tells the truth: a node started with every service is polled from its first moment, and the instant
// ready turns 200 every documented route (docs/operations.md, "Readiness and the HTTP routes") is hit and must be
// answered by its service — never by "no such route" or "no such service". The table is also held against the routes
// the API really serves, so the documentation cannot drift from them.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Service, ServiceBroker } from "moleculer";
import { loadConfig } from "../../config/index.ts";
import { createNode } from "../../app/create-node.ts";
import { freePort, waitFor } from "../harness.ts";
import { API_KEY } from "../support/node.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const ROUTE_ROW = /^\| `(GET|POST|PUT|PATCH|DELETE) (\/[^`]*)` \|/;
/** What "this route is not served (yet)" looks like: moleculer-web's own 404, or no endpoint for the action. */
const NOT_SERVED = new Set(["NOT_FOUND", "SERVICE_NOT_FOUND", "SERVICE_NOT_AVAILABLE"]);
const SAMPLE: Record<string, string> = { id: "readiness-probe", source: "probe", file: "dashboard.js" };

interface Route { method: string; path: string }

async function documentedRoutes(): Promise<Route[]> {
	const text = await readFile(path.join(ROOT, "docs/operations.md"), "utf8");
	const section = text.slice(text.indexOf("## Readiness and the HTTP routes"));
	const routes: Route[] = [];
	for (const line of section.split("\n")) {
		const m = ROUTE_ROW.exec(line);
		if (m) routes.push({ method: m[1], path: m[2] });
	}
	return routes;
}

/** Every route the API serves right now, as `METHOD /path` with `:params` (from moleculer-web's alias table). */
function servedRoutes(broker: ServiceBroker): Set<string> {
	const api = broker.getLocalService("api") as Service & { aliases: Array<{ method: string; fullPath: string }> };
	return new Set(api.aliases.map(a => `${a.method} ${a.fullPath.replace(/\/+$/, "") || "/"}`));
}

describe("/health/ready", () => {
	let dir: string;
	let broker: ServiceBroker;
	let baseUrl: string;
	let starting: Promise<void>;
	const waited = new Set<string>();

	before(async () => {
		dir = await mkdtemp(path.join(tmpdir(), "crm-ready-"));
		const port = await freePort();
		baseUrl = `http://127.0.0.1:${port}`;
		const config = loadConfig({
			DATA_DIR: dir, PORT: String(port), HOST: "127.0.0.1", API_KEYS: API_KEY, WEBHOOK_SECRET: "readiness-secret-0123456789",
			LOG_LEVEL: "warn", CHURN_MODEL: "off"
		});
		broker = await createNode(config);
		// Not awaited: the test watches the node come up.
		starting = broker.start();
	});
	after(async () => {
		await starting.catch(() => undefined);
		await broker?.stop();
		await rm(dir, { recursive: true, force: true });
	});

	it("is 200 only once every documented route is answered by its service", async () => {
		const routes = await documentedRoutes();
		assert.ok(routes.length >= 40, `the routes table lists the API (found ${routes.length})`);
		await waitFor(async () => {
			const res = await fetch(`${baseUrl}/health/ready`);
			if (res.status === 200) return true;
			const body = (await res.json()) as { waiting?: string[] };
			for (const w of body.waiting ?? []) waited.add(w);
			return false;
		}, { timeoutMs: 60_000, intervalMs: 2, message: "ready" });
		// The moment it is ready: every route at once.
		const answers = await Promise.all(routes.map(async r => {
			const url = baseUrl + r.path.replace(/:([a-z]+)/gi, (_, name: string) => SAMPLE[name] ?? "probe");
			const abort = new AbortController();
			const res = await fetch(url, {
				method: r.method,
				headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
				signal: abort.signal,
				...(r.method === "GET" || r.method === "DELETE" ? {} : { body: "{}" })
			});
			// A change stream answers with an open event stream that never ends by itself: its headers are the answer.
			if (res.status === 200 && res.headers.get("content-type")?.startsWith("text/event-stream")) {
				abort.abort();
				return { route: `${r.method} ${r.path}`, status: res.status, type: undefined };
			}
			const text = await res.text();
			let type: string | undefined;
			try {
				type = (JSON.parse(text) as { error?: { type?: string } }).error?.type;
			} catch {
				type = undefined;
			}
			return { route: `${r.method} ${r.path}`, status: res.status, type };
		}));
		const unserved = answers.filter(a => (a.type !== undefined && NOT_SERVED.has(a.type)) || a.status === 502);
		assert.deepEqual(unserved, [], `routes not served the moment /health/ready said 200 (it waited for: ${[...waited].join("; ") || "nothing"})`);
	});

	it("documents exactly the routes the API serves", async () => {
		await starting;
		const documented = new Set((await documentedRoutes()).map(r => `${r.method} ${r.path}`));
		const served = servedRoutes(broker);
		assert.deepEqual([...served].filter(r => !documented.has(r)).sort(), [], "served but not documented in docs/operations.md");
		assert.deepEqual([...documented].filter(r => !served.has(r)).sort(), [], "documented but not served");
	});

	it("said what it was waiting for while not ready (the node, its services, their routes), and is plainly ready now", async () => {
		await starting;
		assert.ok(waited.size > 0, "while starting, /health/ready answered 503 with what it waited for");
		const res = await fetch(`${baseUrl}/health/ready`);
		assert.equal(res.status, 200);
		assert.deepEqual(await res.json(), { status: "ready" });
	});
});
