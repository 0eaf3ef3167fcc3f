// Membership changes on in-process nodes over real NATS + Redis, made deterministic: a node that believes it owns
// a customer while another writes it (views disagree) loses the compare-and-set and re-routes the message; actors
// move on join and leave; reminders are delivered by the owner only; the operator REPL commands tell the truth.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startNats, startRedis, waitFor, type ServerHandle } from "../harness.ts";
import { cloudEvent, startTestNode, type TestNode } from "../support/node.ts";
import { ownerOf } from "../../actors/sharding.ts";
import type { ShardedActorService } from "../../mixins/sharded-actor.mixin.ts";
import { CLUSTER_COMMANDS } from "../../app/repl-commands.ts";
import { expectedView, referenceContext, referenceState, type RawEvent } from "./workload.ts";

function svc(node: TestNode): ShardedActorService {
	return node.broker.getLocalService("customers") as unknown as ShardedActorService;
}

function command(name: string) {
	const cmd = CLUSTER_COMMANDS.find(c => c.command.split(" ")[0] === name);
	assert.ok(cmd, name);
	return cmd;
}

describe("cluster membership on in-process nodes", () => {
	let nats: ServerHandle;
	let redis: ServerHandle;
	let a: TestNode;
	let b: TestNode;
	let env: Record<string, string>;
	const A = "fence-a";
	const B = "fence-b";

	// Current event times: activity older than RISK_DECAY_AFTER_MS would make decay reminders fire during the test.
	const cancel = (customerId: string, orderId: string) =>
		cloudEvent("crm.order.status_changed", customerId, { orderId, newStatus: "CANCELLED" }, { time: new Date().toISOString() }) as RawEvent;
	const post = (node: TestNode, event: unknown) => node.api("/api/v1/events", { method: "POST", json: event });
	/** What a caller with a stale membership view does: deliver to a node that is not the owner (anymore). */
	const deliverTo = (node: TestNode, nodeID: string, event: RawEvent) =>
		node.broker.call<{ applied: boolean; version: number }, unknown>("customers.handle", { customerId: event.subject, event }, { nodeID });
	const members = (node: TestNode) => svc(node).membership.nodes.join(",");

	before(async () => {
		[nats, redis] = await Promise.all([startNats(), startRedis()]);
		env = { TRANSPORTER: nats.url, REDIS_URL: redis.url, CLUSTER_HEARTBEAT_INTERVAL_S: "1", CLUSTER_HEARTBEAT_TIMEOUT_S: "3", ACTOR_REMINDER_POLL_MS: "200", LOG_LEVEL: "error" };
		[a, b] = await Promise.all([startTestNode({ ...env, NODE_ID: A }), startTestNode({ ...env, NODE_ID: B })]);
		await waitFor(() => members(a) === `${A},${B}` && members(b) === `${A},${B}`, { message: "both nodes see each other" });
	});

	after(async () => {
		await Promise.all([a?.stop(), b?.stop()]);
		await Promise.all([nats?.stop(), redis?.stop()]);
	});

	it("a node holding a stale copy loses the CAS; the message is re-routed and applied once, in order", async () => {
		const id = ["x-1", "x-2", "x-3", "x-4", "x-5", "x-6"].find(c => ownerOf(c, [A, B]) === A) as string;
		const e1 = cancel(id, "o-1");
		const e2 = cancel(id, "o-2");
		const e3 = cancel(id, "o-3");
		assert.equal((await post(a, e1)).status, 202);
		assert.equal(svc(a).host.peek(id)?.version, 1, "the owner caches the customer");

		// B writes the customer while A still holds it: what a caller that has not seen the current members causes.
		const viaB = await deliverTo(b, B, e2);
		assert.deepEqual([viaB.applied, viaB.version], [true, 2]);
		assert.equal(svc(b).host.isActive(id), false, "a node that does not own the customer drops it after the write");
		assert.equal(svc(a).host.peek(id)?.version, 1, "precondition: A's copy is now stale");

		const conflictsBefore = svc(a).host.stats.conflicts;
		const third = await post(a, e3);
		assert.deepEqual([third.status, third.body], [202, { accepted: 1, duplicates: 0 }]);
		assert.equal(svc(a).host.stats.conflicts, conflictsBefore + 1, "A's write on the stale copy failed its compare-and-set");

		const expected = expectedView(referenceState(id, [e1, e2, e3], referenceContext(a.config)));
		for (const node of [a, b]) assert.deepEqual((await node.api(`/api/v1/customers/${id}`)).body, expected);
		const journal = await a.api(`/api/v1/customers/${id}/events`);
		assert.deepEqual(journal.body.map((j: { event: { id: string } }) => j.event.id), [e3.id, e2.id, e1.id]);

		// The same with a redelivery: the stale copy does not know the event, the store does.
		const e4 = cancel(id, "o-4");
		await deliverTo(b, B, e4);
		const again = await post(a, e4);
		assert.deepEqual([again.status, again.body], [202, { accepted: 0, duplicates: 1 }]);
		assert.equal(svc(a).host.stats.conflicts, conflictsBefore + 2);
		assert.equal((await a.api(`/api/v1/customers/${id}`)).body.version, 4, "the redelivered event was not applied twice");
	});

	it("a read never serves a stale copy: it comes from the store and evicts the stale actor", async () => {
		const id = ["y-1", "y-2", "y-3", "y-4", "y-5", "y-6"].find(c => ownerOf(c, [A, B]) === A) as string;
		await post(a, cancel(id, "o-1"));
		assert.equal(svc(a).host.peek(id)?.version, 1);
		await deliverTo(b, B, cancel(id, "o-2"));
		const read = await a.api(`/api/v1/customers/${id}`);
		assert.equal(read.body.version, 2);
		assert.equal(svc(a).host.isActive(id), false, "the stale copy was dropped");
	});

	it("a joining node takes over about a third of the customers and a leaving one hands them back, nothing lost", { timeout: 60_000 }, async () => {
		const ids = Array.from({ length: 300 }, (_, i) => `move-${i}`);
		for (const [i, id] of ids.entries()) assert.equal((await post(i % 2 === 0 ? a : b, cancel(id, "o-1"))).status, 202);
		const C = "fence-c";
		const c = await startTestNode({ ...env, NODE_ID: C });
		try {
			const all = `${A},${B},${C}`;
			await waitFor(() => [a, b, c].every(n => members(n) === all && svc(n).membership.strayIds().length === 0), { message: "all three agree, no stray actors" });
			const moved = ids.filter(id => ownerOf(id, [A, B, C]) === C);
			assert.ok(moved.length > 60 && moved.length < 140, `about a third moved to the new node (${moved.length}/300)`);
			for (const n of [a, b]) assert.ok(svc(n).host.activeIds().every(id => ownerOf(id, [A, B, C]) === n.broker.nodeID), "old owners released what they lost");
			const inspect = await a.broker.call<{ nodeID: string; persisted: { version: number } }, unknown>("customers.inspect", { customerId: moved[0] });
			assert.deepEqual([inspect.nodeID, inspect.persisted.version], [C, 1], "the new owner answers from the store");

			for (const id of ids) assert.equal((await post(b, cancel(id, "o-2"))).status, 202);
			assert.equal(svc(c).host.activeIds().filter(id => id.startsWith("move-")).length, moved.length, "the new owner activated exactly its customers");
		} finally {
			await c.stop();
		}
		await waitFor(() => members(a) === `${A},${B}` && members(b) === `${A},${B}`, { message: "the leaver is gone from both views" });
		for (const id of ids) assert.equal((await a.api(`/api/v1/customers/${id}`)).body.version, 2, id);
	});

	it("due reminders are delivered by the owner only", { timeout: 30_000 }, async () => {
		const decayAfterMs = a.config.actor.riskDecayAfterMs;
		const ids = Array.from({ length: 40 }, (_, i) => `rem-${i}`);
		const before = [a, b].map(n => ({ delivered: svc(n).host.stats.remindersDelivered, conflicts: svc(n).host.stats.conflicts }));
		// Activity long enough ago that the decay reminder is due as soon as the event is applied.
		for (const id of ids) {
			const event = cloudEvent("crm.order.status_changed", id, { orderId: "o-1", newStatus: "CANCELLED" }, { time: new Date(Date.now() - decayAfterMs - 1000).toISOString() });
			assert.equal((await post(a, event)).status, 202);
		}
		await waitFor(async () => {
			const reads = await Promise.all(ids.map(id => b.api(`/api/v1/customers/${id}`)));
			return reads.every(r => r.body.version === 2 && r.body.risk.factors["order.cancelled"] === 5);
		}, { timeoutMs: 10_000, message: "every reminder delivered" });
		for (const [i, n] of [a, b].entries()) {
			const owned = ids.filter(id => ownerOf(id, [A, B]) === n.broker.nodeID).length;
			assert.equal(svc(n).host.stats.remindersDelivered - before[i].delivered, owned, `${n.broker.nodeID} delivered exactly the reminders of its ${owned} customers`);
			assert.equal(svc(n).host.stats.conflicts - before[i].conflicts, 0, `${n.broker.nodeID} never raced the owner`);
		}
	});

	it("REPL commands show the owner, the live state, shards and members, and passivate on the owner", async () => {
		const id = ["r-1", "r-2", "r-3", "r-4", "r-5"].find(c => ownerOf(c, [A, B]) === B) as string;
		await post(a, cancel(id, "o-1"));
		const customer = await command("customer").run(a.broker, { id, options: {} });
		assert.match(customer, new RegExp(`answered by ${B} \\(owner in its view: ${B}`));
		assert.match(customer, /active in memory at version 1; persisted version 1/);
		assert.match(customer, /risk\s+10 \(order\.cancelled 10\)/);
		assert.match(customer, /lineage +v1 \S+ 0→10 after crm\.order\.status_changed \/test\/\S+: order\.cancelled \+10 by rule OrderCancelled \(rules\/risk\.nools\)/);
		const asJson = JSON.parse(await command("customer").run(a.broker, { id, options: { json: true } })) as { nodeID: string; riskHistory: Array<{ lineage: Array<{ cause: { rule?: string } }> }> };
		assert.equal(asJson.nodeID, B);
		assert.equal(asJson.riskHistory[0].lineage[0].cause.rule, "OrderCancelled", "--json carries the lineage too");
		assert.match(await command("owner").run(a.broker, { id, options: {} }), new RegExp(`-> ${B} `));
		const shards = await command("shards").run(a.broker, { options: {} });
		assert.match(shards, /all 2 nodes agree/);
		for (const n of [A, B]) assert.match(shards, new RegExp(`^${n} +\\d+ +[\\d.]+% +[\\d.]+% +0 `, "m"));
		assert.match(await command("members").run(a.broker, { options: {} }), new RegExp(`${B} +${A}, ${B}`));
		assert.equal(await command("passivate").run(a.broker, { id, options: {} }), `${B}: passivated`);
		assert.equal(svc(b).host.isActive(id), false);
		assert.match(await command("customer").run(a.broker, { id, options: {} }), /not active \(passivated/);
		assert.match(await command("customer").run(a.broker, { id: "never-seen", options: {} }), /never seen/);
	});
});

