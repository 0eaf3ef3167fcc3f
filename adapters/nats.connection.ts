// Opens the NATS connections of JetStream users (ingest-nats, dead letters): fails fast when the server is not there
// at start, then reconnects forever with a short wait, so a restarted nats-server is picked up by itself. Also how
// they make sure the streams and consumers they use exist.
import { connect, type ConnectionOptions, type NatsConnection } from "nats";

export async function connectNats(url: string, name: string): Promise<NatsConnection> {
	const u = new URL(url);
	const opts: ConnectionOptions = {
		servers: [u.host],
		name,
		maxReconnectAttempts: -1,
		reconnectTimeWait: 250,
		// A half-open connection (server gone without a FIN) is noticed within ~10 s instead of minutes.
		pingInterval: 5_000,
		// Every request (each confirmed ack) would otherwise build an Error for its stack trace: a fifth of the CPU.
		noAsyncTraces: true,
		maxPingOut: 2
	};
	if (u.username) {
		opts.user = decodeURIComponent(u.username);
		opts.pass = decodeURIComponent(u.password);
	}
	if (u.protocol === "tls:") opts.tls = {};
	return connect(opts);
}

/** True for JetStream API errors that mean "not found" (stream, consumer or message). */
export function isNotFound(err: unknown): boolean {
	const e = err as { code?: string; api_error?: { code?: number; err_code?: number }; message?: string };
	if (e?.api_error?.code === 404) return true;
	return e?.code === "404" || /not found|no message found/i.test(e?.message ?? "");
}

/**
 * Makes sure a JetStream stream or consumer exists as wanted: `read` it (a not-found error means missing), `update`
 * it when `differs` says so, else `add` it — another node adding it at the same moment is fine.
 */
export async function ensureJetStream<T>(ops: { read(): Promise<T>; differs?(existing: T): boolean; update?(): Promise<unknown>; add(): Promise<unknown> }): Promise<void> {
	try {
		const existing = await ops.read();
		if (ops.differs?.(existing)) await ops.update?.();
		return;
	} catch (err) {
		if (!isNotFound(err)) throw err;
	}
	try {
		await ops.add();
	} catch (err) {
		// Another node created it between our lookup and our add.
		await ops.read().catch(() => {
			throw err;
		});
	}
}
