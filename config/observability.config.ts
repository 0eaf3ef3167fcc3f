// Settings for tracing (Moleculer's tracer and its exporter), read from the environment. Metrics only need
// METRICS_PORT, which config/index.ts reads.
import { ConfigError, num, oneOf, url, type Env } from "./env.ts";

/**
 * Where finished spans go. `jaeger` sends Zipkin v2 JSON to Jaeger's Zipkin-compatible collector (Moleculer's own
 * Jaeger exporter needs the retired `jaeger-client` package); `event` emits them as `$tracing.spans` Moleculer events.
 */
export const TRACING_EXPORTERS = ["off", "console", "event", "zipkin", "jaeger"] as const;
export type TracingExporterKind = (typeof TRACING_EXPORTERS)[number];

export interface TracingConfig {
	exporter: TracingExporterKind;
	/** Collector base URL for zipkin/jaeger, e.g. http://127.0.0.1:9411. */
	url: string | undefined;
	/** Share of traces recorded, 0–1. */
	sampleRate: number;
}

export interface ObservabilityConfig {
	tracing: TracingConfig;
}

const DEFAULT_COLLECTOR_URL = "http://127.0.0.1:9411";

export function loadObservabilityConfig(env: Env): ObservabilityConfig {
	const exporter = oneOf(env, "TRACING_EXPORTER", TRACING_EXPORTERS, "off");
	const collector = url(env, "TRACING_URL", ["http", "https"]);
	if (collector !== undefined && exporter !== "zipkin" && exporter !== "jaeger") {
		throw new ConfigError(`TRACING_URL is only used with TRACING_EXPORTER=zipkin or jaeger (TRACING_EXPORTER is "${exporter}")`);
	}
	return {
		tracing: {
			exporter,
			url: exporter === "zipkin" || exporter === "jaeger" ? (collector ?? DEFAULT_COLLECTOR_URL) : undefined,
			sampleRate: num(env, "TRACING_SAMPLE_RATE", 1, 0, 1)
		}
	};
}

