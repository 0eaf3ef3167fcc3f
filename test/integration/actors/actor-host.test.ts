// The actor host against real stores: CAS fencing between two hosts on one Redis, reminders across a restart,
// the LRU cap, and group commit.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { ActorHost, ActorHostError } from "../../../actors/host/actor-host.ts";
import type { HandleResult } from "../../../models/contract/index.ts";
import type { ActorStore } from "../../../actors/host/actor-store.ts";
import { MemoryActorStore } from "../../../adapters/memory.store.ts";
import { NedbActorStore } from "../../../adapters/nedb.store.ts";
import { RedisActorStore } from "../../../adapters/redis.store.ts";
import { emptyCustomerState, reduce } from "../../../actors/customer.reducer.ts";
import type { ReduceContext } from "../../../actors/customer-actor.types.ts";
import type { CloudEvent } from "../../../models/cloud-event.ts";
import type { KnownCloudEvent } from "../../../models/event-data.schemas.ts";
import { known } from "../../support/known-event.ts";
import type { CustomerState } from "../../../models/customer-state.ts";
import { startRedis, type ServerHandle } from "../../harness.ts";

const DAY = 24 * 3600_000;
const T0 = Date.UTC(2026, 0, 1);

function context(now: number): ReduceContext {
	return { now, risk: { decayAfterMs: DAY, decayKeep: 0.5, churnWeight: 30 }, dedupWindow: 64 };
}

function makeHost(store: ActorStore, over: Partial<ConstructorParameters<typeof ActorHost>[0]> = {}): ActorHost {
	return new ActorHost({
		store, reduceContext: context, idleTimeoutMs: 60_000, maxActiveActors: 100_000, commitMaxBatch: 1000,
		commitIntervalMs: 0, reminderPollMs: 3600_000, ...over
	});
}

let n = 0;
function event(customerId: string, type: string, data: Record<string, unknown>, at = T0): KnownCloudEvent {
	n++;
	return known({ specversion: "1.0", id: `e${n}`, source: "/host-test", type: type as CloudEvent["type"], subject: customerId, time: new Date(at + n).toISOString(), data: data as CloudEvent["data"] });
}

function cancelled(customerId: string, orderId: string): KnownCloudEvent {
	return event(customerId, "crm.order.status_changed", { orderId, newStatus: "CANCELLED" });
}

/** What customers.handle does on a lost CAS: send the message again, possibly to another host. */
async function sendWithReroute(hosts: ActorHost[], pick: () => number, customerId: string, e: KnownCloudEvent): Promise<{ result: HandleResult; conflicts: number }> {
	let conflicts = 0;
	for (;;) {
		try {
			return { result: await hosts[pick()].tell(customerId, { kind: "event", event: e }), conflicts };
		} catch (err) {
			assert.ok(err instanceof ActorHostError, `unexpected error ${String(err)}`);
			assert.equal(err.type, "VERSION_CONFLICT");
			conflicts++;
			assert.ok(conflicts < 50, "too many conflicts");
		}
	}
}

function replay(customerId: string, events: KnownCloudEvent[]): CustomerState {
	let s = emptyCustomerState(customerId);
	for (const e of events) s = reduce(s, { kind: "event", event: e }, context(0)).state;
	return s;
}

describe("two hosts on one Redis store", () => {
	let redis: ServerHandle;
	const stores: RedisActorStore[] = [];
	before(async () => {
		redis = await startRedis();
	});
	after(async () => {
		for (const s of stores) await s.close();
		await redis?.stop();
	});

	it("a stale host loses the compare-and-set, and the re-routed event is applied exactly once", async () => {
		const [a, b] = [new RedisActorStore({ url: redis.url }), new RedisActorStore({ url: redis.url })];
		stores.push(a, b);
		await a.connect();
		await b.connect();
		const hostA = makeHost(a);
		const hostB = makeHost(b);
		const first = cancelled("cas-1", "o-1");
		const second = cancelled("cas-1", "o-2");
		// Both hosts activate the customer at version 0.
		await hostA.tell("cas-1", { kind: "event", event: event("cas-1", "crm.page.viewed", { url: "/a" }) });
		await hostB.get("cas-1");
		await hostA.tell("cas-1", { kind: "event", event: first });
		await assert.rejects(hostB.tell("cas-1", { kind: "event", event: second }), (err: unknown) => err instanceof ActorHostError && err.type === "VERSION_CONFLICT");
		assert.equal(hostB.isActive("cas-1"), false, "the loser dropped its copy");
		// Re-routed: B reloads the winner's state and applies the event on top of it.
		const retried = await hostB.tell("cas-1", { kind: "event", event: second });
		assert.equal(retried.applied, true);
		assert.equal(retried.version, 3);
		const stored = await a.load("cas-1");
		assert.equal(stored?.risk.score, 20);
		assert.equal(stored?.counters.cancelledOrders, 2);
		const journal = await a.journal("cas-1", 10);
		assert.deepEqual(journal.map(j => j.version), [3, 2, 1]);
		await hostA.stop();
		await hostB.stop();
	});

	it("events spread randomly over two hosts end in the state of applying each once, in order", async () => {
		const [a, b] = [new RedisActorStore({ url: redis.url }), new RedisActorStore({ url: redis.url })];
		stores.push(a, b);
		await a.connect();
		await b.connect();
		const hosts = [makeHost(a), makeHost(b)];
		let seed = 7;
		const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16) & 1;
		const customers = Array.from({ length: 20 }, (_, i) => `spread-${i}`);
		const sent = new Map<string, KnownCloudEvent[]>();
		let conflicts = 0;
		await Promise.all(customers.map(async (id, ci) => {
			const events: KnownCloudEvent[] = [];
			for (let k = 0; k < 15; k++) {
				const e = k % 3 === 0 ? cancelled(id, `o-${k}`) : event(id, "crm.payment.failed", { paymentId: `p-${ci}-${k}`, amount: k });
				events.push(e);
				const out = await sendWithReroute(hosts, random, id, e);
				conflicts += out.conflicts;
				// A client retry of an acknowledged event (the same id) must be a duplicate, wherever it lands.
				if (k % 5 === 4) assert.equal((await sendWithReroute(hosts, random, id, e)).result.applied, false);
			}
			sent.set(id, events);
		}));
		assert.ok(conflicts > 0, "the random spread should have produced compare-and-set conflicts");
		for (const id of customers) {
			const stored = await a.load(id);
			const expected = replay(id, sent.get(id) ?? []);
			assert.deepEqual({ ...stored, reminders: {} }, { ...expected, reminders: {} }, id);
			const journal = await a.journal(id, 100);
			assert.deepEqual(journal.filter(j => j.event !== undefined).map(j => j.event!.id).reverse(), (sent.get(id) ?? []).map(e => e.id), `${id} journal`);
		}
		for (const h of hosts) await h.stop();
	});
});

describe("reminders", () => {
	let dir: string;
	before(async () => {
		dir = await mkdtemp(path.join(tmpdir(), "crm-host-"));
	});
	after(async () => {
		await rm(dir, { recursive: true, force: true });
	});

	it("a decay reminder scheduled before a restart fires after it", async () => {
		let clock = T0;
		const store1 = new NedbActorStore({ dir });
		await store1.connect();
		const host1 = makeHost(store1, { now: () => clock });
		await host1.tell("rem-1", { kind: "event", event: { ...cancelled("rem-1", "o-1"), time: new Date(T0).toISOString() } });
		assert.equal((await host1.get("rem-1"))?.risk.score, 10);
		await host1.stop();
		await store1.close();

		clock = T0 + DAY + 1;
		const store2 = new NedbActorStore({ dir });
		await store2.connect();
		const host2 = makeHost(store2, { now: () => clock });
		const delivered = await host2.deliverDueReminders();
		assert.equal(delivered, 1);
		const after = await store2.load("rem-1");
		assert.equal(after?.risk.score, 5, "half of the cancelled-order factor is kept after one decay step");
		assert.equal(await host2.deliverDueReminders(), 0, "not due again until another decay period passes");
		await host2.stop();
		await store2.close();
	});
});

describe("capacity and batching", () => {
	it("keeps at most maxActiveActors in memory and loses no state when evicting", async () => {
		const store = new MemoryActorStore();
		await store.connect();
		const host = makeHost(store, { maxActiveActors: 10 });
		for (let round = 0; round < 2; round++) {
			await Promise.all(Array.from({ length: 50 }, (_, i) => host.tell(`cap-${i}`, { kind: "event", event: cancelled(`cap-${i}`, `o-${round}`) })));
			assert.ok(host.stats.active <= 10 + 1, `active ${host.stats.active}`);
		}
		for (let i = 0; i < 50; i++) assert.equal((await store.load(`cap-${i}`))?.risk.score, 20, `cap-${i}`);
		assert.ok(host.stats.passivations >= 80);
		await host.stop();
	});

	it("snapshots quiet actors, keeps their state, and skips actors with a write in the last quiet period", async () => {
		let clock = T0;
		const store = new MemoryActorStore();
		await store.connect();
		const host = makeHost(store, { now: () => clock, snapshotMinTail: 1 });
		await Promise.all(Array.from({ length: 20 }, (_, i) => host.tell(`cmp-${i}`, { kind: "event", event: cancelled(`cmp-${i}`, "o-1") })));
		const before = await Promise.all(Array.from({ length: 20 }, (_, i) => host.get(`cmp-${i}`)));
		assert.equal(host.snapshotQuiet(Infinity, 1000), 0, "nothing has been quiet for a second yet");
		clock += 1001;
		await host.tell("cmp-19", { kind: "event", event: cancelled("cmp-19", "o-2") });
		assert.equal(host.snapshotQuiet(Infinity, 1000), 19, "cmp-19 was written within the quiet period");
		await host.drain();
		assert.equal(host.stats.snapshots, 19);
		assert.equal(host.snapshotQuiet(Infinity, 1000), 0, "a snapshot is written once");
		const after = await Promise.all(Array.from({ length: 19 }, (_, i) => host.get(`cmp-${i}`)));
		assert.deepEqual(after, before.slice(0, 19));
		const next = await host.tell("cmp-0", { kind: "event", event: cancelled("cmp-0", "o-2") });
		assert.equal(next.riskScore, 20, "an event after the snapshot applies on top of it");
		await host.stop();
	});

	it("group-commits concurrent events into few store writes", async () => {
		const store = new MemoryActorStore();
		await store.connect();
		let calls = 0;
		const saveBatch = store.saveBatch.bind(store);
		store.saveBatch = writes => {
			calls++;
			return saveBatch(writes);
		};
		const host = makeHost(store);
		const results = await Promise.all(Array.from({ length: 2000 }, (_, i) => host.tell(`gc-${i % 100}`, { kind: "event", event: event(`gc-${i % 100}`, "crm.page.viewed", { url: `/p/${i}` }) })));
		assert.equal(results.filter(r => r.applied).length, 2000);
		assert.ok(calls <= 20, `2000 events took ${calls} store calls`);
		for (let i = 0; i < 100; i++) assert.equal((await store.load(`gc-${i}`))?.counters.pageViews, 20);
		await host.stop();
	});
});
