// Settings for the edge sources: MQTT devices (broker, session, binding policy, telemetry ranges) and signed webhooks.
// MQTT_URL, MQTT_PORT and WEBHOOK_SECRET themselves are read by config/index.ts (ARCHITECTURE §7).
import { ConfigError, int, oneOf, str, type Env } from "./env.ts";

export type UnboundDevicePolicy = "reject" | "accept";

export interface MetricRange {
	min: number;
	max: number;
}

export interface EdgeConfig {
	mqtt: {
		/** Interface the embedded broker (MQTT_PORT without MQTT_URL) listens on. */
		host: string;
		/** Credentials: checked by the embedded broker, sent to an external one. */
		username: string | undefined;
		password: string | undefined;
		/** Session id at the broker; undefined = "crm-ingest-<node id>". Must be stable for unacked messages to survive a restart. */
		clientId: string | undefined;
		/** 5 for external brokers by default; the embedded broker (aedes) speaks 3.1.1 only. */
		protocolVersion: 4 | 5;
		/** Shared-subscription group ($share/<group>/…) so several nodes split the devices; undefined = plain subscription (single node). */
		shareGroup: string | undefined;
		/** What to do with a reading from a device that has no binding. */
		unboundDevices: UnboundDevicePolicy;
		/** Unacknowledged messages this node works on at once (MQTT 5 Receive Maximum; local cap for 3.1.1). */
		maxInflight: number;
		/** How long the broker keeps our session (subscription + unacked messages) while we are away (MQTT 5). */
		sessionExpiryS: number;
		maxPayloadBytes: number;
		/** How long a device → customer binding is cached by the ingest service. */
		bindingCacheMs: number;
	};
	telemetry: {
		/** Extra or overriding declared metric ranges (TELEMETRY_RANGES="name:min:max,…"). */
		ranges: Record<string, MetricRange>;
		/** A reading time further ahead of our clock than this is impossible. */
		maxFutureMs: number;
	};
	webhook: {
		/** Allowed distance between X-Crm-Timestamp and our clock. */
		toleranceS: number;
		/** How long an Idempotency-Key and its response are kept. */
		idempotencyTtlS: number;
		/** How long a key stays "in flight" if the node handling it dies before answering. */
		pendingTtlS: number;
		maxBodyBytes: number;
	};
}

const METRIC_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const SHARE_GROUP = /^[A-Za-z0-9_-]{1,64}$/;
const CLIENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

function parseRanges(env: Env): Record<string, MetricRange> {
	const raw = str(env, "TELEMETRY_RANGES");
	const ranges: Record<string, MetricRange> = {};
	if (raw === undefined) return ranges;
	for (const part of raw.split(",").map(s => s.trim()).filter(Boolean)) {
		const [name, minText, maxText, ...rest] = part.split(":");
		const min = Number(minText);
		const max = Number(maxText);
		if (rest.length > 0 || !METRIC_NAME.test(name ?? "") || minText === undefined || maxText === undefined || minText.trim() === "" || maxText.trim() === "" || Number.isNaN(min) || Number.isNaN(max) || min > max) {
			throw new ConfigError(`TELEMETRY_RANGES: "${part}" must be name:min:max with min <= max (e.g. pressureHpa:300:1100)`);
		}
		ranges[name] = { min, max };
	}
	return ranges;
}

export function loadEdgeConfig(env: Env): EdgeConfig {
	const host = str(env, "MQTT_HOST") ?? "127.0.0.1";
	const username = str(env, "MQTT_USERNAME");
	const password = str(env, "MQTT_PASSWORD");
	if ((username === undefined) !== (password === undefined)) throw new ConfigError("MQTT_USERNAME and MQTT_PASSWORD must be set together");
	// The embedded broker has no other access control: a reachable one must at least ask for a password.
	if (!LOOPBACK.has(host) && username === undefined && str(env, "MQTT_URL") === undefined && str(env, "MQTT_PORT") !== undefined) {
		throw new ConfigError(`MQTT_HOST=${host} exposes the embedded MQTT broker beyond this machine: set MQTT_USERNAME and MQTT_PASSWORD`);
	}
	const clientId = str(env, "MQTT_CLIENT_ID");
	if (clientId !== undefined && !CLIENT_ID.test(clientId)) throw new ConfigError(`MQTT_CLIENT_ID must be 1..128 letters, digits or ._:-, got "${clientId}"`);
	// Shared by default only in a cluster: mosquitto (2.0) does not persist shared subscriptions, so a broker restart
	// drops what devices publish until we resubscribe; a plain persistent subscription keeps it (docs/ingestion.md).
	const share = str(env, "MQTT_SHARE_GROUP") ?? (str(env, "TRANSPORTER") !== undefined ? "crm-ingest" : "off");
	if (share !== "off" && !SHARE_GROUP.test(share)) throw new ConfigError(`MQTT_SHARE_GROUP must be 1..64 letters, digits, _ or - (or "off"), got "${share}"`);
	return {
		mqtt: {
			host,
			username,
			password,
			clientId,
			protocolVersion: oneOf(env, "MQTT_PROTOCOL_VERSION", ["4", "5"] as const, "5") === "4" ? 4 : 5,
			shareGroup: share === "off" ? undefined : share,
			unboundDevices: oneOf(env, "MQTT_UNBOUND_DEVICES", ["reject", "accept"] as const, "reject"),
			maxInflight: int(env, "MQTT_MAX_INFLIGHT", 100, 1, 65535),
			sessionExpiryS: int(env, "MQTT_SESSION_EXPIRY_S", 24 * 3600, 0, 0xffffffff),
			maxPayloadBytes: int(env, "MQTT_MAX_PAYLOAD_BYTES", 16 * 1024, 64, 1024 * 1024),
			bindingCacheMs: int(env, "MQTT_BINDING_CACHE_MS", 30_000, 0, 3600_000)
		},
		telemetry: {
			ranges: parseRanges(env),
			maxFutureMs: int(env, "TELEMETRY_MAX_FUTURE_MS", 5 * 60_000, 0, 24 * 3600_000)
		},
		webhook: {
			toleranceS: int(env, "WEBHOOK_TOLERANCE_S", 300, 1, 3600),
			idempotencyTtlS: int(env, "WEBHOOK_IDEMPOTENCY_TTL_S", 24 * 3600, 60, 30 * 24 * 3600),
			pendingTtlS: int(env, "WEBHOOK_PENDING_TTL_S", 120, 5, 3600),
			maxBodyBytes: int(env, "WEBHOOK_MAX_BODY_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024)
		}
	};
}
