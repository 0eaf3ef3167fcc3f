// Broker options built from the config module: transporter, routing strategy, validator, metrics, logging.
import { readFileSync } from "node:fs";
import { Discoverers } from "moleculer";
import type { BrokerOptions, Middleware, ServiceSchema } from "moleculer";
import { credsAuthenticator, nkeyAuthenticator, type ConnectionOptions } from "nats";
import type { Config } from "./config/index.ts";
import type { ClusterConfig } from "./config/cluster.config.ts";
import { RendezvousStrategy } from "./runtime/rendezvous.strategy.ts";
import { REPL_COMMANDS } from "./app/repl-commands.ts";
import { MetricsMiddleware } from "./metrics/metrics.middleware.ts";
import { PrometheusReporter } from "./metrics/prometheus.reporter.ts";
import type { TracingConfig } from "./config/observability.config.ts";
import { isRetryable } from "./models/contract/index.ts";

/**
 * Moleculer checks heartbeat deadlines only once per heartbeat timeout, so a dead node could go unnoticed for
 * almost two timeouts; checking every `checkMs` bounds detection by the timeout plus about a second.
 */
class PromptDiscoverer extends Discoverers.Local {
	private readonly checkMs: number;

	constructor(opts: { heartbeatInterval: number; heartbeatTimeout: number }, checkMs: number) {
		super(opts);
		this.checkMs = checkMs;
	}

	override startHeartbeatTimers(): void {
		super.startHeartbeatTimers();
		if (!this.checkNodesTimer) return;
		clearInterval(this.checkNodesTimer);
		this.checkNodesTimer = setInterval(() => this.checkRemoteNodes(), this.checkMs);
		this.checkNodesTimer.unref();
	}
}

/** NATS connection options for the transporter, with the credentials and TLS of the cluster config. */
export function natsTransporterOptions(transporterUrl: string, cluster: ClusterConfig): ConnectionOptions {
	const url = new URL(transporterUrl);
	// Not `url`: Moleculer rebuilds user/pass from it and would overwrite the ones set here.
	const opts: ConnectionOptions = { servers: [url.host], maxReconnectAttempts: -1, name: "crm-actors transporter" };
	const auth = cluster.auth;
	if (auth.kind === "user") Object.assign(opts, { user: auth.user, pass: auth.password });
	else if (auth.kind === "token") opts.token = auth.token;
	else if (auth.kind === "creds") opts.authenticator = credsAuthenticator(readFileSync(auth.file));
	else if (auth.kind === "nkey") opts.authenticator = nkeyAuthenticator(new TextEncoder().encode(readFileSync(auth.seedFile, "utf8").trim()));
	else if (url.username) Object.assign(opts, { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) });
	if (cluster.tls) {
		const { caFile, certFile, keyFile, rejectUnauthorized } = cluster.tls;
		opts.tls = { caFile, certFile, keyFile, ...(rejectUnauthorized ? {} : { rejectUnauthorized: false }) } as ConnectionOptions["tls"];
	}
	return opts;
}

/**
 * Tracer options from TRACING_*: off by default. Actions and events are traced, so an event can be followed from
 * its source through customers.handle to the rules and workflows reacting to its effects under one trace id
 * (the actor host hands each effect the caller's context, see services/customers.service.ts).
 */
export function tracingOptions(t: TracingConfig): BrokerOptions["tracing"] {
	if (t.exporter === "off") return { enabled: false };
	const exporter =
		t.exporter === "console" ? { type: "Console", options: { width: 100, gaugeWidth: 30 } }
		: t.exporter === "event" ? { type: "Event", options: { eventName: "$tracing.spans", interval: 1 } }
		: { type: "Zipkin", options: { baseURL: t.url, interval: 5 } };
	return {
		enabled: true,
		events: true,
		sampling: { rate: t.sampleRate },
		exporter: [exporter],
		tags: { action: { params: ["customerId"] }, event: { params: ["customerId"] } }
	} as BrokerOptions["tracing"];
}

/**
 * Moleculer's own events (`$services.changed`, `$node.connected`, …) are bookkeeping, not requests: with event
 * tracing on they would bury every real trace. Their handlers are created untraced.
 */
export const UntracedInternalEvents: Middleware = {
	name: "UntracedInternalEvents",
	serviceCreating(_service, schema: ServiceSchema) {
		const events = schema.events;
		if (!events) return;
		for (const [name, def] of Object.entries(events)) {
			if (!name.startsWith("$")) continue;
			// `tracing` is read by Moleculer's tracing middleware but missing from its EventSchema type.
			events[name] = (typeof def === "function" ? { handler: def, tracing: false } : { ...def, tracing: false }) as typeof def;
		}
	}
};

export function brokerOptions(config: Config): BrokerOptions {
	const cluster = config.cluster;
	return {
		namespace: "crm",
		nodeID: config.nodeId,
		// bin/start.ts and bin/cluster.ts stop the broker on SIGINT/SIGTERM themselves; Moleculer's own handlers would
		// run a second, concurrent stop, and two stops closing the same NATS connections hang the node forever.
		skipProcessEventRegistration: true,
		transporter: config.transporter === undefined
			? null
			: { type: "NATS", options: natsTransporterOptions(config.transporter, cluster) } as BrokerOptions["transporter"],
		logger: { type: "Console", options: { level: config.logLevel, formatter: "short", colors: process.stdout.isTTY } },
		// Our own consistent hashing, and never the local shortcut: a caller hosting customers must still reach the owner.
		registry: {
			strategy: RendezvousStrategy,
			preferLocal: false,
			discoverer: new PromptDiscoverer({ heartbeatInterval: cluster.heartbeatIntervalS, heartbeatTimeout: cluster.heartbeatTimeoutS }, cluster.heartbeatCheckMs)
		},
		// Quick failure detection: a SIGKILLed node's pending calls are rejected (and retried on the new owner) once
		// its heartbeats are overdue, so its customers answer elsewhere within seconds (docs/operations.md).
		heartbeatInterval: cluster.heartbeatIntervalS,
		heartbeatTimeout: cluster.heartbeatTimeoutS,
		requestTimeout: 30_000,
		retryPolicy: { enabled: true, retries: 5, delay: 100, maxDelay: 2000, factor: 2, check: isRetryable },
		validator: true,
		// Our Prometheus reporter writes histograms completely (metrics/prometheus.reporter.ts); Moleculer's types only know
		// reporters by name, its registry takes an instance.
		metrics: config.metricsPort === undefined
			? { enabled: false }
			: { enabled: true, reporter: [new PrometheusReporter({ port: config.metricsPort, path: "/metrics" })] } as unknown as BrokerOptions["metrics"],
		tracing: tracingOptions(config.observability.tracing),
		middlewares: [MetricsMiddleware(), ...(config.observability.tracing.exporter === "off" ? [] : [UntracedInternalEvents])],
		replOptions: { customCommands: REPL_COMMANDS, delimiter: "crm $" }
	};
}
