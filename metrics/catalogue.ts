// The crm_* metrics in one place: their Prometheus names, types, labels and meaning (docs/operations.md mirrors the
// table). Whoever feeds a metric names it through `M`.

type MetricType = "counter" | "gauge" | "histogram";

export interface MetricDefinition {
	name: string;
	type: MetricType;
	labelNames: string[];
	description: string;
	/** Histogram bucket upper bounds (base units). */
	buckets?: number[];
}

const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const REDUCER_BUCKETS_S = [0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01];

/** Names used in code; the table below is the one list of what exists (docs/operations.md mirrors it). */
export const M = {
	eventsReceived: "crm_events_received_total",
	eventsApplied: "crm_events_applied_total",
	eventsDuplicate: "crm_events_duplicate_total",
	eventsFailed: "crm_events_failed_total",
	deadLetters: "crm_dead_letters_total",
	// Counted by every source through its event sink (edge/event.sink.ts).
	sourceItems: "crm_source_items_total",
	activations: "crm_actor_activations_total",
	passivations: "crm_actor_passivations_total",
	conflicts: "crm_actor_conflicts_total",
	actorsActive: "crm_actors_active",
	actorMemory: "crm_actor_memory_bytes",
	mailboxDepth: "crm_mailbox_depth",
	pendingWrites: "crm_actor_pending_writes",
	handleDuration: "crm_handle_duration_seconds",
	applyDuration: "crm_apply_duration_seconds",
	persistDuration: "crm_persist_duration_seconds",
	commitBatch: "crm_persist_batch_writes",
	// Set by services/ingest-nats.service.ts on the node leading the shared consumer.
	jetstreamLag: "crm_jetstream_consumer_lag",
	ruleFirings: "crm_rule_firings_total",
	workflowInstances: "crm_workflow_instances"
} as const;

export const METRIC_DEFINITIONS: readonly MetricDefinition[] = [
	{ name: M.eventsReceived, type: "counter", labelNames: ["source"], description: "Events handed to a customer actor, by ingestion source (api, nats, mqtt, webhook, erp, files, logs, …)" },
	{ name: M.eventsApplied, type: "counter", labelNames: ["source"], description: "Events applied and persisted by their actor" },
	{ name: M.eventsDuplicate, type: "counter", labelNames: ["source"], description: "Events recognised as already applied (same source + id) and acknowledged without effect" },
	{ name: M.eventsFailed, type: "counter", labelNames: ["source", "type"], description: "Calls to the actors that failed, by error type (INVALID_EVENT, VERSION_CONFLICT, STORE_UNAVAILABLE, …)" },
	{ name: M.deadLetters, type: "counter", labelNames: ["source", "reason"], description: "Inputs sent to the dead-letter stream, by source and (normalised) reason" },
	{ name: M.sourceItems, type: "counter", labelNames: ["source", "outcome"], description: "Input items of every source (events, rows, log entries, readings, messages) by outcome: applied, duplicate, dead_lettered, skipped, market_duplicate" },
	{ name: M.activations, type: "counter", labelNames: [], description: "Actors activated (loaded into memory) on this node" },
	{ name: M.passivations, type: "counter", labelNames: [], description: "Actors passivated (dropped from memory: idle timeout, LRU cap, moved to another node)" },
	{ name: M.conflicts, type: "counter", labelNames: [], description: "Writes that lost their compare-and-set (another node wrote the customer); re-routed" },
	{ name: M.actorsActive, type: "gauge", labelNames: [], description: "Customer actors in memory on this node" },
	{ name: M.actorMemory, type: "gauge", labelNames: [], description: "Estimated bytes held by this node's active actors (sampled serialized state size x active)" },
	{ name: M.mailboxDepth, type: "gauge", labelNames: [], description: "Events accepted by this node's actors and not yet persisted and acknowledged" },
	{ name: M.pendingWrites, type: "gauge", labelNames: [], description: "Actor writes waiting for the next group commit" },
	{ name: M.handleDuration, type: "histogram", labelNames: ["source"], buckets: LATENCY_BUCKETS_S, description: "Time from an event reaching its actor's node to its persisted acknowledgement" },
	{ name: M.applyDuration, type: "histogram", labelNames: [], buckets: REDUCER_BUCKETS_S, description: "Time one message spends in the actor's reducer (the turn, without persistence)" },
	{ name: M.persistDuration, type: "histogram", labelNames: [], buckets: LATENCY_BUCKETS_S, description: "Time of one group commit in the actor store" },
	{ name: M.commitBatch, type: "histogram", labelNames: [], buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000], description: "Writes per group commit" },
	{ name: M.jetstreamLag, type: "gauge", labelNames: [], description: "Messages of CRM_EVENTS not yet acknowledged by the ingest consumer (reported by the node leading it)" },
	{ name: M.ruleFirings, type: "counter", labelNames: ["rule"], description: "Rules fired: the ticket-routing rule that assigned or queued a ticket, and the risk-threshold rule" },
	{ name: M.workflowInstances, type: "gauge", labelNames: ["state"], description: "Workflow (BPMN) process instances by state, as the node's workflows service lists them (at most 1000 per state)" }
];
