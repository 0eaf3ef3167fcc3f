// Test helpers for the edge sources: dead-letter capture, MQTT publishers, signed webhook requests.
import mqtt from "mqtt";
import type { IClientOptions, MqttClient } from "mqtt";
import type { ServiceBroker } from "moleculer";
import { signWebhook } from "../../models/webhook-signature.ts";
import { waitFor } from "../harness.ts";
import { ALL_SERVICES } from "../../app/create-node.ts";
import type { TestNode } from "./node.ts";

/**
 * SERVICES for an edge test node: what these tests exercise, plus the dead-letter service when this build has it
 * (else deadLetterSink stands in). Fewer services start faster and keep other areas' start-up out of these tests.
 */
export function edgeServices(...names: string[]): string {
	return ["customers", "api", "devices", ...names, ...(ALL_SERVICES.includes("deadLetters") ? ["deadLetters"] : [])].join(",");
}

/** The api service publishes other services' REST actions a moment after they start: wait for one to answer. */
export async function restReady(node: TestNode, pathname: string): Promise<void> {
	await waitFor(async () => (await node.api(pathname)).status !== 404, { message: `GET ${pathname} is routed` });
}

export interface DeadLetter {
	source: string;
	reason: string;
	payload: unknown;
	retryAction?: string;
}

export interface DeadLetterSink {
	/** Dead letters recorded so far (optionally of one source), oldest first. */
	list(source?: string): Promise<DeadLetter[]>;
}

/**
 * Reads dead letters from the node's `deadLetters` service; a node started without it (SERVICES) gets a test-only
 * stand-in with the same `record` contract that collects them.
 */
export async function deadLetterSink(broker: ServiceBroker): Promise<DeadLetterSink> {
	const real = broker.registry.getServiceList({ onlyLocal: true }).some((s: { name: string }) => s.name === "deadLetters");
	if (real) {
		return {
			async list(source) {
				const newestFirst = await broker.call<DeadLetter[], unknown>("deadLetters.list", { ...(source ? { source } : {}), limit: 500 });
				return newestFirst.reverse();
			}
		};
	}
	const recorded: DeadLetter[] = [];
	broker.createService({
		name: "deadLetters",
		actions: {
			record(ctx) {
				recorded.push(ctx.params as DeadLetter);
				return { id: String(recorded.length) };
			}
		}
	});
	await broker.waitForServices(["deadLetters"], 5000);
	return {
		async list(source) {
			return source ? recorded.filter(d => d.source === source) : [...recorded];
		}
	};
}

let clientSeq = 0;

/** A device-side MQTT client (QoS 1 publisher); resolves once connected. */
export async function connectPublisher(url: string, opts: IClientOptions = {}): Promise<MqttClient> {
	clientSeq++;
	return mqtt.connectAsync(url, { clientId: `test-pub-${process.pid}-${clientSeq}`, reconnectPeriod: 200, connectTimeout: 5000, ...opts });
}

export function reading(customerId: string, ts: number, metrics: Record<string, number> = { temperatureC: 21 }): string {
	return JSON.stringify({ customerId, ts, metrics });
}

export const topicOf = (deviceId: string) => `crm/devices/${deviceId}/telemetry`;

export interface SignedPostOptions {
	secret: string;
	timestamp?: number;
	idempotencyKey?: string;
	signature?: string;
	headers?: Record<string, string>;
}

/** POSTs a raw body to /webhooks/<source>, signed as §9 says (or with the overrides given). */
export async function postWebhook(baseUrl: string, source: string, body: string, opts: SignedPostOptions): Promise<{ status: number; body: any; headers: Headers }> {
	const timestamp = opts.timestamp ?? Math.floor(Date.now() / 1000);
	const headers: Record<string, string> = {
		"content-type": "application/json",
		"x-crm-timestamp": String(timestamp),
		"x-crm-signature": opts.signature ?? signWebhook(opts.secret, timestamp, body),
		...(opts.idempotencyKey !== undefined ? { "idempotency-key": opts.idempotencyKey } : {}),
		...opts.headers
	};
	const res = await fetch(`${baseUrl}/webhooks/${source}`, { method: "POST", headers, body });
	const text = await res.text();
	let parsed: unknown = text;
	try {
		parsed = text.length > 0 ? JSON.parse(text) : null;
	} catch {
		// not JSON: keep the text for the assertion message
	}
	return { status: res.status, body: parsed, headers: res.headers };
}
