// Settings for cluster membership (failure detection) and the transporter's NATS security (credentials, TLS), read
// from the environment. TRANSPORTER, REDIS_URL and MONGO_URL themselves are read by config/index.ts.
import { existsSync } from "node:fs";
import { ConfigError, bool, num, str, type Env } from "./env.ts";

export interface TransporterTls {
	/** PEM files; any of them set (or a tls:// TRANSPORTER) turns TLS on. */
	caFile: string | undefined;
	certFile: string | undefined;
	keyFile: string | undefined;
	/** False only for test setups with self-signed servers; never in production. */
	rejectUnauthorized: boolean;
}

/** How the node authenticates to the transporter's NATS servers: at most one method. */
export type TransporterAuth =
	| { kind: "none" }
	| { kind: "user"; user: string; password: string }
	| { kind: "token"; token: string }
	/** A NATS .creds file (JWT + nkey seed), e.g. issued by nsc for an operator/account setup. */
	| { kind: "creds"; file: string }
	/** A file holding an nkey user seed (SU...). */
	| { kind: "nkey"; seedFile: string };

export interface ClusterConfig {
	/** Seconds between heartbeats sent to the other nodes. */
	heartbeatIntervalS: number;
	/** Seconds without a heartbeat after which a node is taken out of the cluster (its customers move). */
	heartbeatTimeoutS: number;
	/** How often (ms) the heartbeat deadlines are checked; Moleculer's own check runs only once per timeout. */
	heartbeatCheckMs: number;
	auth: TransporterAuth;
	/** Null when the transporter connection is plain TCP. */
	tls: TransporterTls | null;
}

function file(env: Env, name: string): string | undefined {
	const path = str(env, name);
	if (path !== undefined && !existsSync(path)) throw new ConfigError(`${name}: file "${path}" does not exist`);
	return path;
}

function loadAuth(env: Env): TransporterAuth {
	const user = str(env, "TRANSPORTER_USER");
	const password = str(env, "TRANSPORTER_PASSWORD");
	const token = str(env, "TRANSPORTER_TOKEN");
	const credsFile = file(env, "TRANSPORTER_CREDS_FILE");
	const nkeySeedFile = file(env, "TRANSPORTER_NKEY_SEED_FILE");
	if ((user === undefined) !== (password === undefined)) throw new ConfigError("TRANSPORTER_USER and TRANSPORTER_PASSWORD must be set together");
	const chosen = [user && "TRANSPORTER_USER", token && "TRANSPORTER_TOKEN", credsFile && "TRANSPORTER_CREDS_FILE", nkeySeedFile && "TRANSPORTER_NKEY_SEED_FILE"].filter(Boolean);
	if (chosen.length > 1) throw new ConfigError(`transporter authentication: set only one of ${chosen.join(", ")}`);
	if (user !== undefined && password !== undefined) return { kind: "user", user, password };
	if (token !== undefined) return { kind: "token", token };
	if (credsFile !== undefined) return { kind: "creds", file: credsFile };
	if (nkeySeedFile !== undefined) return { kind: "nkey", seedFile: nkeySeedFile };
	return { kind: "none" };
}

function loadTls(env: Env): TransporterTls | null {
	const caFile = file(env, "TRANSPORTER_TLS_CA_FILE");
	const certFile = file(env, "TRANSPORTER_TLS_CERT_FILE");
	const keyFile = file(env, "TRANSPORTER_TLS_KEY_FILE");
	if ((certFile === undefined) !== (keyFile === undefined)) throw new ConfigError("TRANSPORTER_TLS_CERT_FILE and TRANSPORTER_TLS_KEY_FILE must be set together");
	const tlsScheme = /^tls:\/\//i.test(str(env, "TRANSPORTER") ?? "");
	if (!tlsScheme && caFile === undefined && certFile === undefined) return null;
	return { caFile, certFile, keyFile, rejectUnauthorized: bool(env, "TRANSPORTER_TLS_REJECT_UNAUTHORIZED", true) };
}

export function loadClusterConfig(env: Env): ClusterConfig {
	const heartbeatIntervalS = num(env, "CLUSTER_HEARTBEAT_INTERVAL_S", 1, 0.2, 60);
	const heartbeatTimeoutS = num(env, "CLUSTER_HEARTBEAT_TIMEOUT_S", 4, 1, 600);
	if (heartbeatTimeoutS < 2 * heartbeatIntervalS) {
		throw new ConfigError(`CLUSTER_HEARTBEAT_TIMEOUT_S (${heartbeatTimeoutS}) must be at least twice CLUSTER_HEARTBEAT_INTERVAL_S (${heartbeatIntervalS}): one late heartbeat must not evict a node`);
	}
	return {
		heartbeatIntervalS,
		heartbeatTimeoutS,
		heartbeatCheckMs: 1000,
		auth: loadAuth(env),
		tls: loadTls(env)
	};
}
