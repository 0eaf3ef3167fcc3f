// Settings for NATS/JetStream ingestion, dead letters, MQTT devices, signed webhooks, read from the environment.
import type { Env } from "./env.ts";

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface IngestConfig {}

export function loadIngestConfig(_env: Env): IngestConfig {
	return {};
}
