// Helpers for the ingest-nats tests: servers whose restart can keep them down for a while, publishing CloudEvents
// the way §9 says (subject from the type, Nats-Msg-Id <source>/<id>), and reading a customer's applied events.
import { join } from "node:path";
import type { ServiceBroker } from "moleculer";
import { headers, type JetStreamClient, type PubAck } from "nats";
import { findBinary, startServer, waitFor, type ServerHandle } from "../harness.ts";
import { natsReady, natsServerArgs, redisReady, redisServerArgs } from "../../lib/servers.ts";

export interface PausableServer extends ServerHandle {
	/** Stops the server, keeps it down for `downMs`, then starts it again on the same port and data. */
	bounce(downMs: number): Promise<void>;
}

function pausable(start: (hold: () => Promise<void>) => Promise<ServerHandle>): Promise<PausableServer> {
	let downMs = 0;
	const hold = async () => {
		if (downMs > 0) await new Promise(resolve => setTimeout(resolve, downMs));
		downMs = 0;
	};
	return start(hold).then(handle => Object.assign(handle, {
		async bounce(ms: number) {
			downMs = ms;
			await handle.restart();
		}
	}));
}

/** redis-server as the harness starts it (AOF, fsync always), with a restart that can stay down. */
export function startPausableRedis(): Promise<PausableServer> {
	return pausable(hold => startServer({
		name: "redis-server",
		binary: findBinary("redis-server", ["/usr/bin", "/usr/local/bin"]),
		prepare: async (port, dir) => {
			await hold();
			return redisServerArgs(port, dir, { appendfsync: "always" });
		},
		url: port => `redis://127.0.0.1:${port}`,
		ready: redisReady
	}));
}

/** nats-server -js as the harness starts it, with a restart that can stay down. */
export function startPausableNats(): Promise<PausableServer> {
	return pausable(hold => startServer({
		name: "nats-server",
		binary: findBinary("nats-server", ["/usr/sbin", "/usr/local/bin", "/usr/bin"]),
		prepare: async (port, dir) => {
			await hold();
			return natsServerArgs(port, join(dir, "jetstream"));
		},
		url: port => `nats://127.0.0.1:${port}`,
		ready: natsReady
	}));
}

export interface TestEvent {
	specversion: string;
	id: string;
	source: string;
	type: string;
	subject?: string;
	time: string;
	data: Record<string, unknown>;
}

/** The §9 subject of an event type. */
export const subjectOf = (type: string) => `crm.events.${type.slice("crm.".length)}`;

export function pageView(customerId: string, n: number, source = "/test/nats"): TestEvent {
	return {
		specversion: "1.0", id: `${customerId}-${n}`, source, type: "crm.page.viewed", subject: customerId,
		time: new Date(Date.UTC(2026, 0, 1) + n * 1000).toISOString(), data: { url: `/seq/${n}` }
	};
}

/** Publishes like any §9 publisher: JSON body, subject from the type, Nats-Msg-Id <source>/<id> unless given. */
export function publish(js: JetStreamClient, body: TestEvent | string | Uint8Array, opts: { subject?: string; msgId?: string } = {}): Promise<PubAck> {
	const h = headers();
	let subject = opts.subject;
	let data: Uint8Array;
	if (typeof body === "object" && !(body instanceof Uint8Array)) {
		subject ??= subjectOf(body.type);
		h.set("Nats-Msg-Id", opts.msgId ?? `${body.source}/${body.id}`);
		data = new TextEncoder().encode(JSON.stringify(body));
	} else {
		if (!subject) throw new Error("publish: raw bodies need a subject");
		if (opts.msgId) h.set("Nats-Msg-Id", opts.msgId);
		data = typeof body === "string" ? new TextEncoder().encode(body) : body;
	}
	return js.publish(subject, data, { headers: h });
}

/** Publishes, retrying with the same Nats-Msg-Id while NATS is away (JetStream drops the copy if one got through). */
export async function publishSurely(js: JetStreamClient, event: TestEvent, deadlineMs = 60_000): Promise<void> {
	const deadline = Date.now() + deadlineMs;
	for (;;) {
		try {
			await publish(js, event);
			return;
		} catch (err) {
			if (Date.now() > deadline) throw err;
			await new Promise(resolve => setTimeout(resolve, 100));
		}
	}
}

/** Ids of the customer's applied events, oldest first (its journal). */
export async function appliedIds(broker: ServiceBroker, customerId: string): Promise<string[]> {
	try {
		const entries = await broker.call<Array<{ event: { id: string } }>, unknown>("customers.journal", { customerId, limit: 1000 });
		return entries.map(e => e.event.id).reverse();
	} catch (err) {
		if ((err as { code?: number }).code === 404) return [];
		throw err;
	}
}

/** Waits until every customer's journal holds as many events as expected (or more: then the test's check fails). */
export async function waitForApplied(broker: ServiceBroker, expected: Map<string, string[]>, timeoutMs: number): Promise<void> {
	const pending = new Set(expected.keys());
	await waitFor(async () => {
		for (const id of [...pending]) {
			if ((await appliedIds(broker, id)).length >= (expected.get(id)?.length ?? 0)) pending.delete(id);
		}
		return pending.size === 0;
	}, { timeoutMs, intervalMs: 200, message: "not every customer has all its events applied" });
}
