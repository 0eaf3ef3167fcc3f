// Customer merge through the HTTP API on one node (memory and Redis stores): the merge rule as a client sees it,
// reads and events of the merged id going to the survivor, the defined refusals, and a merge under concurrent events
// (with redeliveries) for both ids: nothing lost, nothing applied twice, the merge happens once.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startRedis, type ServerHandle } from "../harness.ts";
import { cloudEvent, startTestNode, type TestNode } from "../support/node.ts";

type Ev = ReturnType<typeof cloudEvent>;

/** Event times a few hours back (older activity would make decay reminders fire during the test), `h` hours on. */
const BASE = Date.now() - 6 * 3600_000;
const at = (h: number) => ({ time: new Date(BASE + h * 3600_000).toISOString() });
const iso = (h: number) => new Date(BASE + h * 3600_000).toISOString();

for (const store of ["memory", "redis"] as const) {
	describe(`customer merge on one node (${store} store)`, () => {
		let node: TestNode;
		let redis: ServerHandle | undefined;
		const post = (events: unknown) => node.api("/api/v1/events", { method: "POST", json: events });
		const merge = (id: string, from: string) => node.api(`/api/v1/customers/${id}/merge`, { method: "POST", json: { from } });
		const get = (id: string) => node.api(`/api/v1/customers/${id}`);

		before(async () => {
			const env: Record<string, string> = { ACTOR_STORE: store };
			if (store === "redis") {
				redis = await startRedis();
				env.REDIS_URL = redis.url;
			}
			node = await startTestNode(env);
		});

		after(async () => {
			await node?.stop();
			await redis?.stop();
		});

		it("merges profiles, counters, tickets and risk by the documented rule; the old id reads and writes the survivor", async () => {
			const A = `m-a-${store}`;
			const B = `m-b-${store}`;
			const a1 = cloudEvent("crm.customer.updated", A, { profile: { name: "Ann", email: "ann@old.example", tier: "gold" } }, at(0));
			const a2 = cloudEvent("crm.order.status_changed", A, { orderId: "o-1", newStatus: "CANCELLED" }, at(1));
			const b1 = cloudEvent("crm.customer.updated", B, { profile: { email: "ann@new.example", phone: "+49 1" } }, at(3));
			const b2 = cloudEvent("crm.ticket.opened", B, { ticketId: "t-1", priority: "HIGH", category: "billing" }, at(0.5));
			const b3 = cloudEvent("crm.order.status_changed", B, { orderId: "o-2", newStatus: "CANCELLED" }, at(2));
			assert.equal((await post([a1, a2, b1, b2, b3])).status, 202);

			const res = await merge(A, B);
			assert.equal(res.status, 200, JSON.stringify(res.body));
			assert.deepEqual({ ...res.body, version: undefined, riskScore: undefined }, { survivor: A, from: B, merged: true, aliases: [B], version: undefined, riskScore: undefined });

			const view = (await get(A)).body;
			assert.deepEqual(view.profile, { name: "Ann", email: "ann@new.example", tier: "gold", phone: "+49 1" }, "per field the newer event time wins");
			assert.equal(view.counters.orders, 2);
			assert.equal(view.counters.cancelledOrders, 2);
			assert.equal(view.counters.openTickets, 1);
			assert.deepEqual(view.openTicketIds, ["t-1"]);
			assert.deepEqual(view.risk.factors, { "order.cancelled": 20, "ticket.high_priority": 4 }, "event-driven factors add up");
			assert.equal(view.risk.score, 24);
			assert.equal(view.createdAt, iso(0));
			assert.equal(view.lastActivityAt, iso(3));
			assert.deepEqual(view.aliases, [B]);

			const viaB = (await get(B)).body;
			assert.deepEqual(viaB, { ...view, resolvedFrom: B }, "a read of the merged id answers with the survivor");

			const journal = (await node.api(`/api/v1/customers/${A}/events`)).body as Array<{ event: { id: string } }>;
			assert.deepEqual(journal.map(j => j.event.id), [b1.id, b3.id, a2.id, b2.id, a1.id], "both journals interleaved by event time, newest first");
			assert.deepEqual((await node.api(`/api/v1/customers/${B}/events?limit=2`)).body.map((j: { event: { id: string } }) => j.event.id), [b1.id, b3.id]);
			// The risk history of either id is the survivor's, the merge's risk change on top with its lineage.
			const history = (await node.api(`/api/v1/customers/${A}/risk/history`)).body as Array<{ merge?: { step: string; from?: string }; newScore: number; lineage: Array<{ cause: { kind: string; from?: string } }> }>;
			assert.equal(history[0].merge?.step, "absorb");
			assert.equal(history[0].newScore, 24);
			assert.ok(history[0].lineage.some(d => d.cause.kind === "merge" && d.cause.from === B), JSON.stringify(history[0]));
			assert.deepEqual((await node.api(`/api/v1/customers/${B}/risk/history`)).body, history, "the merged id's history follows the alias");

			// A later event for the old id goes to the survivor; a redelivery of one the old id applied is a duplicate.
			const b4 = cloudEvent("crm.ticket.resolved", B, { ticketId: "t-1" }, at(4));
			assert.deepEqual((await post([b4, b2])).body, { accepted: 1, duplicates: 1 });
			const after = (await get(A)).body;
			assert.equal(after.counters.openTickets, 0);
			assert.equal(after.counters.ticketsOpened, 1);
			assert.equal(after.lastActivityAt, iso(4));

			// The same request again changes nothing.
			const again = await merge(A, B);
			assert.deepEqual([again.status, again.body.merged, again.body.version], [200, false, after.version]);
		});

		it("answers the edge cases: itself, unknown ids, merged elsewhere, chains, cycles", async () => {
			const [A, B, C, D, E] = ["a", "b", "c", "d", "e"].map(x => `edge-${x}-${store}`);
			for (const id of [A, B, C, D, E]) assert.equal((await post(cloudEvent("crm.page.viewed", id, { url: "/" }))).status, 202);

			assert.deepEqual([(await merge(A, A)).status, (await merge(A, A)).body.error.type], [400, "INVALID_MERGE"]);
			assert.deepEqual([(await merge(A, "edge-nobody")).status, (await merge(A, "edge-nobody")).body.error.type], [404, "CUSTOMER_NOT_FOUND"]);
			assert.equal((await merge("edge-nobody", A)).status, 404);
			assert.equal((await merge(A, B)).status, 200);

			const elsewhere = await merge(C, B);
			assert.deepEqual([elsewhere.status, elsewhere.body.error.type, elsewhere.body.error.data.mergedInto], [409, "CUSTOMER_MERGED", A]);
			const backwards = await merge(B, A);
			assert.deepEqual([backwards.status, backwards.body.error.type], [400, "INVALID_MERGE"], "the survivor cannot be merged into its alias");

			// A merged into C: a merge into A follows the alias to C, and B's events now reach C through two hops.
			assert.equal((await merge(C, A)).status, 200);
			const chain = await merge(A, D);
			assert.deepEqual([chain.status, chain.body.survivor, chain.body.aliases], [200, C, [A, B, D]]);
			assert.deepEqual((await post(cloudEvent("crm.page.viewed", B, { url: "/late" }))).body, { accepted: 1, duplicates: 0 });
			const c = (await get(C)).body;
			assert.equal(c.counters.pageViews, 5);
			assert.deepEqual([(await get(B)).body.id, (await get(B)).body.resolvedFrom], [C, B]);
			assert.equal((await merge(C, B)).body.merged, false, "B is already in C through A");
			// E into C, then C into E is a cycle: refused.
			assert.equal((await merge(C, E)).status, 200);
			assert.equal((await merge(E, C)).status, 400);
		});

		it("under concurrent events and redeliveries for both ids, every event is applied once and the merge happens once", async () => {
			const A = `conc-a-${store}`;
			const B = `conc-b-${store}`;
			const events = (id: string, n: number): Ev[] => Array.from({ length: n }, (_, i) =>
				cloudEvent("crm.page.viewed", id, { url: `/p/${i}` }, at(i / 100)));
			const ea = events(A, 24);
			const eb = events(B, 24);
			assert.equal((await post([ea[0], eb[0]])).status, 202);

			// Events one at a time per id (a source's order), each sent twice, while the merge runs (and is requested twice).
			const sendAll = async (list: Ev[]) => {
				for (const e of list.slice(1)) {
					const [r1, r2] = await Promise.all([post(e), post(e)]);
					assert.deepEqual([r1.status, r2.status], [202, 202]);
				}
			};
			const [, , m1, m2] = await Promise.all([sendAll(ea), sendAll(eb), merge(A, B), merge(A, B)]);
			assert.deepEqual([m1.status, m2.status], [200, 200]);
			assert.equal([m1.body.merged, m2.body.merged].filter(Boolean).length >= 1, true);

			const view = (await get(A)).body;
			assert.equal(view.counters.pageViews, 48, "every event counted once");
			assert.deepEqual(view.aliases, [B], "merged once");
			// Redelivered again after the merge: all duplicates (within the dedup window of the survivor).
			const redelivered = await post([...ea.slice(-16), ...eb.slice(-16)]);
			assert.deepEqual(redelivered.body, { accepted: 0, duplicates: 32 });
			assert.equal((await get(A)).body.counters.pageViews, 48);
			const journal = (await node.api(`/api/v1/customers/${A}/events?limit=1000`)).body as Array<{ event: { id: string } }>;
			const ids = journal.map(j => j.event.id);
			assert.equal(new Set(ids).size, 48, "each event journaled once, by one of the two");
		});
	});
}
