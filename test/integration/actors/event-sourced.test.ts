// The actor host on an event-sourced store (Redis with a replay): journal-only writes, snapshots every N events and
// when quiet, activation = snapshot + replay, fencing on the journal append, batched activation, and the
// frequency-aware cap in actors and bytes.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { ActorHost, ActorHostError } from "../../../actors/host/actor-host.ts";
import type { ActorStore } from "../../../actors/host/actor-store.ts";
import { MemoryActorStore } from "../../../adapters/memory.store.ts";
import { RedisActorStore } from "../../../adapters/redis.store.ts";
import { journalReplay } from "../../../actors/host/replay.ts";
import { reduceContextFor } from "../../../actors/reduce-context.ts";
import type { KnownCloudEvent } from "../../../models/event-data.schemas.ts";
import { known } from "../../support/known-event.ts";
import type { CustomerState } from "../../../models/customer-state.ts";
import { randomHistory } from "../../support/random-events.ts";
import { startRedis, type ServerHandle } from "../../harness.ts";

const context = reduceContextFor({ riskDecayAfterMs: 7 * 24 * 3600_000, riskDecayKeep: 0.5, churnWeight: 30, dedupWindow: 16 }, null);
const T0 = Date.UTC(2026, 0, 1);

function makeHost(store: ActorStore, over: Partial<ConstructorParameters<typeof ActorHost>[0]> = {}): ActorHost {
	return new ActorHost({
		store, reduceContext: context, idleTimeoutMs: 60_000, maxActiveActors: 100_000, commitMaxBatch: 1000,
		commitIntervalMs: 0, reminderPollMs: 3600_000, snapshotEvery: 4, ...over
	});
}

let n = 0;
function pageView(customerId: string): KnownCloudEvent {
	n++;
	return known({ specversion: "1.0", id: `es-${n}`, source: "/es-test", type: "crm.page.viewed", subject: customerId, time: new Date(T0 + n).toISOString(), data: { url: `/p/${n}` } });
}

const json = (s: CustomerState | null) => JSON.parse(JSON.stringify(s)) as CustomerState | null;

void describe("event-sourced Redis store under the actor host", () => {
	let redis: ServerHandle;
	let admin: Redis;
	const stores: RedisActorStore[] = [];
	const open = async (journalMax = 1000) => {
		const store = new RedisActorStore({ url: redis.url, journalMax, replay: journalReplay(context) });
		stores.push(store);
		await store.connect();
		return store;
	};
	/** The version of the stored snapshot (0 when there is none). */
	const snapshotVersion = async (id: string) => {
		const raw = await admin.get(`crm:customer:${id}`);
		return raw === null ? 0 : (JSON.parse(raw) as CustomerState).version;
	};
	before(async () => {
		redis = await startRedis();
		admin = new Redis(redis.url);
	});
	after(async () => {
		for (const s of stores) await s.close();
		admin?.disconnect();
		await redis?.stop();
	});

	void it("writes a snapshot every N events and rebuilds the same state from snapshot + tail on another node", async () => {
		const store = await open();
		const history = randomHistory(42, "es-1", 40);
		let clockAt = T0;
		const clocked = makeHost(store, { now: () => clockAt });
		for (const { msg, now } of history) {
			clockAt = now;
			await clocked.tell("es-1", msg);
		}
		const live = json(clocked.peek("es-1"));
		assert.ok(live && live.version > 20, `applied ${live?.version}`);
		const snap = await snapshotVersion("es-1");
		assert.ok(snap < live.version, "the newest events are in the journal only");
		assert.ok(live.version - snap < 4, `tail of ${live.version - snap} events, snapshotEvery 4`);
		await clocked.stop();

		const other = await open();
		assert.deepEqual(json(await other.load("es-1")), live, "snapshot + replayed tail equals the live state");
		const [loaded] = await other.loadMany(["es-1"]);
		assert.equal(loaded?.sinceSnapshot, live.version - snap);
		const journal = await other.journal("es-1", 1000);
		assert.equal(journal[0].version, live.version, "newest first, one entry per applied event");
	});

	void it("keeps exactly once across passivation: a redelivery replayed from the tail is a duplicate", async () => {
		const store = await open();
		const host = makeHost(store, { snapshotEvery: 100 });
		const events = Array.from({ length: 5 }, () => pageView("es-2"));
		for (const e of events) await host.tell("es-2", { kind: "event", event: e });
		assert.equal(await snapshotVersion("es-2"), 0, "no snapshot yet: the state lives in the journal");
		assert.equal(host.passivate("es-2"), true);
		const again = await host.tell("es-2", { kind: "event", event: events[2] });
		assert.deepEqual({ applied: again.applied, version: again.version }, { applied: false, version: 5 });
		assert.equal((await host.get("es-2"))?.counters.pageViews, 5);
		await host.stop();
	});

	void it("snapshots a quiet actor with a long enough tail; a reminder is journaled like an event and replays", async () => {
		let clock = T0;
		const store = await open();
		const host = makeHost(store, { snapshotEvery: 100, snapshotMinTail: 2, now: () => clock });
		const cancel = known({ ...pageView("es-3"), type: "crm.order.status_changed", data: { orderId: "o-1", newStatus: "CANCELLED" } });
		await host.tell("es-3", { kind: "event", event: cancel });
		await host.tell("es-3", { kind: "event", event: pageView("es-3") });
		await host.tell("es-3b", { kind: "event", event: pageView("es-3b") });
		assert.equal(await snapshotVersion("es-3"), 0);
		clock += 10_000;
		host.snapshotQuiet(Infinity, 5000);
		await host.drain();
		assert.equal(await snapshotVersion("es-3"), 2, "the quiet actor's state became its snapshot");
		assert.equal(await snapshotVersion("es-3b"), 0, "a tail of one event is shorter than snapshotMinTail: left to replay");
		clock += 8 * 24 * 3600_000;
		assert.equal(await host.deliverDueReminders(), 1);
		assert.equal(await snapshotVersion("es-3"), 2, "the reminder's write is journal-only: it has an entry of its own");
		const [entry] = await store.journalSince("es-3", 2, 10);
		assert.equal(entry.reminder, "risk.decay");
		assert.deepEqual(entry.change?.cause, { reminder: "risk.decay" });
		assert.equal(entry.change?.risk?.lineage[0].cause.kind, "decay");
		const live = await host.get("es-3");
		await host.stop();
		const [reloaded] = await store.loadMany(["es-3"]);
		assert.equal(reloaded?.sinceSnapshot, 1);
		assert.deepEqual(reloaded?.state, JSON.parse(JSON.stringify(live)), "snapshot + the reminder's entry replay to the live state");
	});

	void it("snapshots an actor passivated with a long enough tail, so its next activation replays nothing", async () => {
		const store = await open();
		const host = makeHost(store, { snapshotEvery: 100, snapshotMinTail: 3 });
		for (let i = 0; i < 3; i++) await host.tell("es-8", { kind: "event", event: pageView("es-8") });
		for (let i = 0; i < 2; i++) await host.tell("es-9", { kind: "event", event: pageView("es-9") });
		assert.equal(host.passivate("es-8"), true);
		assert.equal(host.passivate("es-9"), true);
		await host.drain();
		assert.equal(await snapshotVersion("es-8"), 3, "three events past the snapshot: written as it left");
		assert.equal(await snapshotVersion("es-9"), 0, "two: left to replay");
		const loaded = await store.loadMany(["es-8", "es-9"]);
		assert.deepEqual(loaded.map(l => l?.sinceSnapshot), [0, 2]);
		assert.equal((await host.get("es-8"))?.counters.pageViews, 3);
		await host.stop();
	});

	void it("fences journal-only writes: a stale node loses the compare-and-set and the re-routed event applies once", async () => {
		const [a, b] = [await open(), await open()];
		const hostA = makeHost(a, { snapshotEvery: 100 });
		const hostB = makeHost(b, { snapshotEvery: 100 });
		await hostA.tell("es-4", { kind: "event", event: pageView("es-4") });
		await hostB.get("es-4");
		await hostA.tell("es-4", { kind: "event", event: pageView("es-4") });
		const late = pageView("es-4");
		await assert.rejects(hostB.tell("es-4", { kind: "event", event: late }), (err: unknown) => err instanceof ActorHostError && err.type === "VERSION_CONFLICT");
		const retried = await hostB.tell("es-4", { kind: "event", event: late });
		assert.deepEqual({ applied: retried.applied, version: retried.version }, { applied: true, version: 3 });
		assert.deepEqual((await a.journal("es-4", 10)).map(j => j.version), [3, 2, 1]);
		assert.equal((await a.load("es-4"))?.counters.pageViews, 3);
		await hostA.stop();
		await hostB.stop();
	});

	void it("sends an actor's next write while the previous one is unacknowledged, fenced on its newest entry", async () => {
		const store = await open();
		const saveBatch = store.saveBatch.bind(store);
		let release: () => void = () => {};
		const gate = new Promise<void>(resolve => (release = resolve));
		const chained: number[] = [];
		let calls = 0;
		/** Yields to the event loop until `calls` reaches `n` (bounded: fails instead of hanging). */
		const sent = async (n: number) => {
			for (let i = 0; calls < n && i < 10_000; i++) await new Promise(resolve => setImmediate(resolve));
			assert.equal(calls, n, `store calls`);
		};
		store.saveBatch = async writes => {
			calls++;
			for (const w of writes) if (w.after) chained.push(w.after.version);
			// Sent to Redis now; the first batch's acknowledgement is held back until the second one was sent.
			const results = saveBatch(writes);
			if (chained.length === 0) await gate;
			return results;
		};
		const host = makeHost(store, { snapshotEvery: 100 });
		const first = host.tell("es-6", { kind: "event", event: pageView("es-6") });
		await sent(1);
		const second = host.tell("es-6", { kind: "event", event: pageView("es-6") });
		await sent(2);
		assert.deepEqual(chained, [1], "the second write went out chained on the first (v1)");
		release();
		assert.deepEqual((await Promise.all([first, second])).map(r => r.version), [1, 2]);
		assert.equal((await store.load("es-6"))?.counters.pageViews, 2);
		await host.stop();
	});

	void it("refuses a chained write whose base entry is another writer's, even at the expected version", async () => {
		const store = await open();
		const host = makeHost(store, { snapshotEvery: 100 });
		await host.tell("es-7", { kind: "event", event: pageView("es-7") });
		const state = host.peek("es-7") as CustomerState;
		await host.stop();
		const [mine] = await store.journal("es-7", 1);
		const e = pageView("es-7");
		const next = { customerId: "es-7", version: 2, key: `${e.source}/${e.id}`, appliedAt: T0, riskScore: 0, event: e };
		const write = { id: "es-7", expectedVersion: 1, state: { ...state, version: 2 }, journal: [next], snapshot: false };
		const stranger = { ...mine, appliedAt: mine.appliedAt + 1 };
		assert.deepEqual(await store.saveBatch([{ ...write, after: stranger }]), [{ id: "es-7", ok: false, currentVersion: 1 }]);
		assert.deepEqual(await store.saveBatch([{ ...write, after: mine }]), [{ id: "es-7", ok: true }]);
	});

	void it("refuses to rebuild a customer whose journal was trimmed below its snapshot, naming it", async () => {
		const store = await open(3);
		const host = makeHost(store, { snapshotEvery: 100 });
		for (let i = 0; i < 6; i++) await host.tell("es-5", { kind: "event", event: pageView("es-5") });
		await host.stop();
		await assert.rejects((await open(3)).load("es-5"), /customer es-5: journal entry v4 does not follow state v0/);
	});

	void it("activates the cold customers of one tick in batched store calls (one per 200 customers)", async () => {
		const store = await open();
		let calls = 0;
		const loadMany = store.loadMany.bind(store);
		store.loadMany = ids => {
			calls++;
			return loadMany(ids);
		};
		const host = makeHost(store);
		await Promise.all(Array.from({ length: 300 }, (_, i) => host.tell(`cold-${i}`, { kind: "event", event: pageView(`cold-${i}`) })));
		assert.equal(calls, 2, "300 cold customers told in one tick: a call of 200 as soon as it filled, then the other 100");
		await host.stop();
	});
});

void describe("frequency-aware cap", () => {
	void it("keeps customers used again through a scan of one-off customers (plain LRU would evict them)", async () => {
		const store = new MemoryActorStore();
		const host = makeHost(store, { maxActiveActors: 20 });
		const hot = Array.from({ length: 5 }, (_, i) => `hot-${i}`);
		for (let round = 0; round < 3; round++) await Promise.all(hot.map(id => host.tell(id, { kind: "event", event: pageView(id) })));
		for (let i = 0; i < 100; i++) await host.tell(`once-${i}`, { kind: "event", event: pageView(`once-${i}`) });
		assert.ok(host.stats.active <= 21, `active ${host.stats.active}`);
		assert.deepEqual(hot.filter(id => !host.isActive(id)), [], "the working set survived the scan");
		for (let i = 0; i < 100; i++) assert.equal((await store.load(`once-${i}`))?.counters.pageViews, 1, "evicted actors lost nothing");
		await host.stop();
	});

	void it("caps active actors by estimated bytes when maxActiveBytes is the tighter cap", async () => {
		const store = new MemoryActorStore();
		const host = makeHost(store, { maxActiveBytes: 16 * 2048 });
		for (let i = 0; i < 100; i++) await host.tell(`b-${i}`, { kind: "event", event: pageView(`b-${i}`) });
		assert.ok(host.stats.active <= 17, `active ${host.stats.active} with room for 16`);
		assert.ok(host.stats.passivations >= 80);
		await host.stop();
	});
});
