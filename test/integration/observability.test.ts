// Metrics and tracing on a running node: the Prometheus endpoint shows the crm_* series with the values the posted
// events imply, and one trace id follows an event from the API through the actor to a service reacting to its effect.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Context } from "moleculer";
import { cloudEvent, startTestNode, type TestNode } from "../support/node.ts";
import { freePort, waitFor } from "../harness.ts";

/** Parses the Prometheus text format into `name{labels}` → value, labels without namespace/nodeID. */
function parseMetrics(text: string): Map<string, number> {
	const out = new Map<string, number>();
	for (const line of text.split("\n")) {
		const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
		if (!m) continue;
		const labels = (m[2] ?? "").replace(/^\{|\}$/g, "").split(",").filter(l => l && !/^(namespace|nodeID)=/.test(l));
		out.set(labels.length ? `${m[1]}{${labels.join(",")}}` : m[1], Number(m[3]));
	}
	return out;
}

// Event times are now: older ones would make the inactivity-decay reminders due at once, adding turns to the counts.
const now = () => ({ time: new Date().toISOString() });

describe("metrics endpoint", () => {
	let node: TestNode;
	let metricsUrl: string;
	before(async () => {
		const port = await freePort();
		metricsUrl = `http://127.0.0.1:${port}/metrics`;
		node = await startTestNode({ METRICS_PORT: String(port) });
	});
	after(async () => {
		await node?.stop();
	});

	it("shows events in, applied and duplicates per source, actor gauges and latency histograms", async () => {
		const events = Array.from({ length: 12 }, (_, i) =>
			cloudEvent("crm.order.status_changed", `met-${i % 4}`, { orderId: `o-${i}`, newStatus: i % 3 === 0 ? "CANCELLED" : "PAID" }, now()));
		assert.equal((await node.api("/api/v1/events", { method: "POST", json: events })).status, 202);
		assert.deepEqual((await node.api("/api/v1/events", { method: "POST", json: events.slice(0, 2) })).body, { accepted: 0, duplicates: 2 });
		// A call without a calling service (a script) counts as "direct"; an invalid one counts as failed.
		await assert.rejects(node.broker.call("customers.handle", { customerId: "met-0", event: { ...events[0], subject: "other" } }));

		let m = new Map<string, number>();
		await waitFor(async () => {
			m = parseMetrics(await (await fetch(metricsUrl)).text());
			return m.get("crm_actors_active") === 4;
		}, { message: "crm_actors_active never reached 4" });
		const expected: Array<[string, number]> = [
			['crm_events_received_total{source="api"}', 14],
			['crm_events_applied_total{source="api"}', 12],
			['crm_events_duplicate_total{source="api"}', 2],
			['crm_events_received_total{source="direct"}', 1],
			['crm_events_failed_total{source="direct",type="INVALID_EVENT"}', 1],
			["crm_actor_activations_total", 4],
			["crm_actor_passivations_total", 0],
			["crm_mailbox_depth", 0],
			['crm_apply_duration_seconds_bucket{le="+Inf"}', 14],
			["crm_apply_duration_seconds_count", 14]
		];
		for (const [series, value] of expected) assert.equal(m.get(series), value, series);
		assert.ok((m.get("crm_actor_memory_bytes") ?? 0) > 4 * 500, "memory estimate of 4 actors");
		assert.ok((m.get("crm_persist_duration_seconds_count") ?? 0) >= 1, "at least one group commit timed");
		assert.equal(m.get('crm_handle_duration_seconds_count{source="api"}'), 6, "one observation per handle call (4 + 2 customers)");
	});

	it("counts the risk-threshold rule when a customer's risk crosses it", async () => {
		// Seven cancelled orders: 70 points, over the default threshold of 60.
		const events = Array.from({ length: 7 }, (_, i) => cloudEvent("crm.order.status_changed", "met-hot", { orderId: `h-${i}`, newStatus: "CANCELLED" }, now()));
		assert.equal((await node.api("/api/v1/events", { method: "POST", json: events })).status, 202);
		await waitFor(async () => parseMetrics(await (await fetch(metricsUrl)).text()).get('crm_rule_firings_total{rule="risk.threshold"}') === 1,
			{ message: "no risk.threshold firing counted" });
	});

	it("the per-node window behind the dashboard counts the same events", async () => {
		type Snapshot = { bySource: Record<string, { received: number }>; actors: { active: number } };
		let snap: Snapshot | undefined;
		// The actor gauges are read once a second.
		await waitFor(async () => {
			snap = await node.broker.call<Snapshot>("$crm-metrics.snapshot");
			return snap.actors.active === 5;
		}, { message: "the snapshot never showed 5 active actors" });
		assert.equal(snap?.bySource.api.received, 21);
	});
});

describe("tracing", () => {
	let node: TestNode;
	const spans: Array<{ name: string; traceID: string; id: string; parentID: string | null }> = [];
	before(async () => {
		node = await startTestNode({ TRACING_EXPORTER: "event" });
		await node.broker.createService({
			name: "trace-probe",
			events: {
				"$tracing.spans"(ctx: Context<typeof spans>) {
					spans.push(...ctx.params);
				},
				"customer.risk.changed"() {
					// Only here so the effect has a handler whose span joins the trace.
				}
			}
		});
	});
	after(async () => {
		await node?.stop();
	});

	it("follows an event from the API through the actor to a handler of its effect under one trace id", async () => {
		const event = cloudEvent("crm.order.status_changed", "trace-1", { orderId: "o-1", newStatus: "CANCELLED" }, now());
		assert.equal((await node.api("/api/v1/events", { method: "POST", json: event })).status, 202);
		const find = (pred: (s: (typeof spans)[number]) => boolean) => spans.find(pred);
		await waitFor(() => find(s => /customer\.risk\.changed/.test(s.name)) !== undefined, { message: "no span for the effect's handler" });
		const handle = find(s => s.name === "action 'customers.handle'");
		const post = find(s => s.name === "action 'api.postEvents'");
		const effect = find(s => /customer\.risk\.changed/.test(s.name));
		assert.ok(handle && post && effect, `spans: ${spans.map(s => s.name).join(", ")}`);
		assert.equal(handle.traceID, post.traceID);
		assert.equal(effect.traceID, post.traceID, "the effect's handler is in the same trace");
		assert.equal(effect.parentID, handle.id, "the effect hangs under customers.handle");
	});
});
