// Starts an in-process node for integration tests: config from an env map, free HTTP port, temp data dir.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { ServiceBroker } from "moleculer";
import { loadConfig, type Config } from "../../config/index.ts";
import { createNode } from "../../app/create-node.ts";
import { freePort } from "../harness.ts";

export const API_KEY = "test-key-0123456789abcdef";

export interface TestNode {
	broker: ServiceBroker;
	config: Config;
	baseUrl: string;
	dataDir: string;
	/** fetch against the node's API with the bearer key. */
	api(pathname: string, init?: RequestInit & { json?: unknown }): Promise<{ status: number; body: any }>;
	stop(opts?: { keepData?: boolean }): Promise<void>;
}

export async function startTestNode(env: Record<string, string> = {}, dataDir?: string): Promise<TestNode> {
	const dir = dataDir ?? (await mkdtemp(path.join(tmpdir(), "crm-node-")));
	const port = await freePort();
	const config = loadConfig({ DATA_DIR: dir, PORT: String(port), API_KEYS: API_KEY, HOST: "127.0.0.1", LOG_LEVEL: "warn", CHURN_MODEL: "off", ...env });
	const broker = await createNode(config);
	await broker.start();
	const baseUrl = `http://127.0.0.1:${port}`;
	return {
		broker,
		config,
		baseUrl,
		dataDir: dir,
		async api(pathname, init = {}) {
			const headers = new Headers(init.headers);
			if (!headers.has("authorization")) headers.set("authorization", `Bearer ${API_KEY}`);
			let body = init.body;
			if (init.json !== undefined) {
				headers.set("content-type", "application/json");
				body = JSON.stringify(init.json);
			}
			const res = await fetch(baseUrl + pathname, { ...init, headers, body });
			const text = await res.text();
			let parsed: unknown = text;
			try {
				parsed = text.length > 0 ? JSON.parse(text) : null;
			} catch {
				// not JSON: keep the text so the assertion shows it
			}
			return { status: res.status, body: parsed };
		},
		async stop(opts = {}) {
			await broker.stop();
			if (!opts.keepData && !dataDir) await rm(dir, { recursive: true, force: true });
		}
	};
}

let seq = 0;
/** A valid CloudEvent for tests; `overrides` replace top-level attributes. */
export function cloudEvent(type: string, subject: string, data: Record<string, unknown>, overrides: Record<string, unknown> = {}) {
	seq++;
	return {
		specversion: "1.0",
		id: `evt-${process.pid}-${seq}`,
		source: "/test",
		type,
		subject,
		time: new Date(Date.UTC(2026, 0, 1, 0, 0, seq % 60, seq % 1000)).toISOString(),
		data,
		...overrides
	};
}
