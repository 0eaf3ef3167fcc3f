// Settings for cluster membership, transport security (NATS credentials/TLS, Redis password/TLS), read from the environment.
import type { Env } from "./env.ts";

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ClusterConfig {}

export function loadClusterConfig(_env: Env): ClusterConfig {
	return {};
}
