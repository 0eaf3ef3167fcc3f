// Settings for ERP database sync, CSV file drops, click-stream logs, read from the environment.
import type { Env } from "./env.ts";

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface SourcesConfig {}

export function loadSourcesConfig(_env: Env): SourcesConfig {
	return {};
}
