// Broker options built from the config module: transporter, routing strategy, validator, metrics, logging.
import type { BrokerOptions } from "moleculer";
import type { Config } from "./config/index.ts";
import { RendezvousStrategy } from "./mixins/rendezvous.strategy.ts";

export function brokerOptions(config: Config): BrokerOptions {
	return {
		namespace: "crm",
		nodeID: config.nodeId,
		transporter: (config.transporter ?? null) as BrokerOptions["transporter"],
		logger: { type: "Console", options: { level: config.logLevel, formatter: "short", colors: process.stdout.isTTY } },
		// Our own consistent hashing, and never the local shortcut: a caller hosting customers must still reach the owner.
		registry: { strategy: RendezvousStrategy, preferLocal: false },
		// Quick failure detection: a SIGKILLed node's customers must answer elsewhere within seconds.
		heartbeatInterval: 2,
		heartbeatTimeout: 6,
		requestTimeout: 30_000,
		retryPolicy: { enabled: true, retries: 5, delay: 100, maxDelay: 2000, factor: 2, check: (err: Error) => (err as { retryable?: boolean }).retryable === true },
		validator: true,
		metrics: config.metricsPort === undefined
			? { enabled: false }
			: { enabled: true, reporter: [{ type: "Prometheus", options: { port: config.metricsPort, path: "/metrics" } }] },
		tracing: { enabled: false }
	};
}
