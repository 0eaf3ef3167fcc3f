// One behavioural contract for every ActorStore adapter (ARCHITECTURE §5), run against memory, NeDB files, a real
// redis-server from the harness, and MongoDB when MONGO_URL is set.
import { after, before, describe, it, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ActorStore, ActorWrite, JournalEntry } from "../../actors/host/actor-store.ts";
import { MemoryActorStore } from "../../adapters/memory.store.ts";
import { MongoActorStore } from "../../adapters/mongo.store.ts";
import { NedbActorStore } from "../../adapters/nedb.store.ts";
import { RedisActorStore } from "../../adapters/redis.store.ts";
import type { CustomerState } from "../../models/customer-state.ts";
import { startRedis, type ServerHandle } from "../harness.ts";
import { compareCursors, FEED_END, FEED_START, type ChangeRecord, type FeedItem } from "../../models/change-record.ts";

interface StoreFixture {
	store: ActorStore;
	/** Closes the store and opens a new one on the same data (after a server restart where there is one). */
	reopen?: () => Promise<ActorStore>;
	dispose(): Promise<void>;
}

interface StateOptions {
	score?: number;
	reminders?: Record<string, number>;
}

/** A full, realistic state; keys with "." and a 52-bit number catch stores that mangle field names or numbers. */
function makeState(id: string, version: number, opts: StateOptions = {}): CustomerState {
	const score = opts.score ?? 10;
	return {
		id,
		version,
		createdAt: 1_700_000_000_000,
		lastActivityAt: 1_700_000_000_000 + version * 1000,
		profile: { name: `Customer ${id}`, "address.city": "Lyon", vip: version % 2 === 0, visits: version },
		profileTimes: { name: 1_700_000_000_000, "address.city": 1_700_000_000_500 },
		counters: {
			orders: version, cancelledOrders: 1, failedPayments: 0, interactions: 2, negativeInteractions: 1,
			ticketsOpened: 1, openTickets: 1, pageViews: 7, telemetryReadings: 0
		},
		openTicketIds: ["t-1"],
		orderStatus: { "o-1": "CANCELLED" },
		telemetry: { "cpu.temp": 61.5 },
		lastSentiment: -0.25,
		risk: { score, factors: { "order.cancelled": score } },
		churnProbability: null,
		recentEventKeys: [4_503_599_627_370_495, 12_345],
		reminders: opts.reminders ?? {}
	};
}

function entry(customerId: string, version: number): JournalEntry {
	return {
		customerId,
		version,
		key: `test/e-${customerId}-${version}`,
		appliedAt: 1_700_000_000_000 + version,
		riskScore: version,
		event: {
			specversion: "1.0", id: `e-${customerId}-${version}`, source: "test", type: "crm.order.status_changed",
			subject: customerId, time: "2023-11-14T22:13:20Z", data: { orderId: `o-${version}`, newStatus: "CANCELLED" }
		}
	};
}

/** A change record as the reducer writes them, with a risk lineage on even versions. */
function change(version: number): ChangeRecord {
	const record: ChangeRecord = { version, cause: { event: { source: "test", id: `e-${version}`, type: "crm.order.status_changed" } }, fields: ["orderStatus", "counters"] };
	if (version % 2 === 0) {
		record.risk = { old: version - 1, new: version, lineage: [{ factor: "order.cancelled", delta: 1, cause: { kind: "rule", file: "rules/risk.nools", rule: "OrderCancelled" } }] };
	}
	return record;
}

/** A journal entry with its change record. */
function changed(customerId: string, version: number): JournalEntry {
	const e = entry(customerId, version);
	return { ...e, change: change(version) };
}

/** A reminder's journal entry (a decay step), with its change record. */
function reminderEntry(customerId: string, version: number): JournalEntry {
	return {
		customerId, version, key: "reminder:risk.decay", appliedAt: 1_700_000_000_000 + version, riskScore: 1, reminder: "risk.decay",
		change: { version, cause: { reminder: "risk.decay" }, fields: ["risk", "reminders"], risk: { old: 2, new: 1, lineage: [{ factor: "order.cancelled", delta: -1, cause: { kind: "decay", reminder: "risk.decay" } }] } }
	};
}

/** Every change of the feed from its start, page by page. */
async function wholeFeed(store: ActorStore, pageSize = 3): Promise<FeedItem[]> {
	const items: FeedItem[] = [];
	let cursor = FEED_START;
	for (;;) {
		const page = await store.changesSince(cursor, pageSize);
		assert.equal(page.trimmed, false);
		items.push(...page.items);
		if (page.items.length === 0) return items;
		cursor = page.cursor;
	}
}

function write(id: string, expectedVersion: number, state: CustomerState, journal: JournalEntry[] = []): ActorWrite {
	return { id, expectedVersion, state, journal };
}

async function saveOne(store: ActorStore, w: ActorWrite): Promise<void> {
	assert.deepEqual(await store.saveBatch([w]), [{ id: w.id, ok: true }], `saving ${w.id} v${w.state.version}`);
}

export function describeStoreContract(name: string, makeStore: () => Promise<StoreFixture>): void {
	void describe(`ActorStore contract: ${name}`, () => {
		let fixture: StoreFixture;
		let store: ActorStore;

		const fresh = async () => {
			fixture = await makeStore();
			store = fixture.store;
		};
		const dispose = async () => {
			await fixture?.dispose();
		};

		void describe("basics", () => {
			before(fresh);
			after(dispose);

			void it("loads an unknown customer as null and counts nobody", async () => {
				assert.equal(await store.load("nobody"), null);
				assert.equal(await store.count(), 0);
				assert.deepEqual(await store.journal("nobody", 10), []);
				assert.deepEqual(await store.changesSince(FEED_END, 10), { items: [], cursor: FEED_START, trimmed: false });
				assert.deepEqual(await store.changesSince(FEED_START, 10), { items: [], cursor: FEED_START, trimmed: false });
			});
		});

		void describe("compare-and-set", () => {
			before(fresh);
			after(dispose);

			void it("inserts with expected version 0 and loads exactly that state, unaffected by later mutation", async () => {
				const state = makeState("c1", 1, { score: 42, reminders: { decay: 5000 } });
				const snapshot = structuredClone(state);
				await saveOne(store, write("c1", 0, state));
				state.profile.name = "mutated after save";
				state.risk.factors["order.cancelled"] = 99;
				const loaded = await store.load("c1");
				assert.deepEqual(loaded, snapshot);
				assert.ok(loaded);
				loaded.counters.orders = 1000;
				assert.deepEqual(await store.load("c1"), snapshot, "mutating a loaded state must not change the store");
			});

			void it("refuses a second insert with expected version 0 and reports the current version", async () => {
				const results = await store.saveBatch([write("c1", 0, makeState("c1", 1, { score: 7 }))]);
				assert.deepEqual(results, [{ id: "c1", ok: false, currentVersion: 1 }]);
				assert.equal((await store.load("c1"))?.risk.score, 42);
			});

			void it("accepts the right expected version and refuses a stale one, leaving the store unchanged", async () => {
				await saveOne(store, write("c1", 1, makeState("c1", 2, { score: 50 })));
				const stale = await store.saveBatch([write("c1", 1, makeState("c1", 3, { score: 1 }))]);
				assert.deepEqual(stale, [{ id: "c1", ok: false, currentVersion: 2 }]);
				assert.deepEqual(await store.load("c1"), makeState("c1", 2, { score: 50 }));
				assert.equal(await store.count(), 1);
			});

			void it("refuses an update of a customer that does not exist, with currentVersion null", async () => {
				const results = await store.saveBatch([write("ghost", 3, makeState("ghost", 4))]);
				assert.deepEqual(results, [{ id: "ghost", ok: false, currentVersion: null }]);
				assert.equal(await store.load("ghost"), null);
				assert.equal(await store.count(), 1);
			});
		});

		void describe("batches", () => {
			before(fresh);
			after(dispose);

			void it("returns one result per write in order and persists only the ok ones", async () => {
				await saveOne(store, write("a", 0, makeState("a", 1)));
				await saveOne(store, write("b", 0, makeState("b", 1)));
				const results = await store.saveBatch([
					write("a", 1, makeState("a", 2, { score: 20 })),
					write("b", 5, makeState("b", 6, { score: 60 })),
					write("c", 0, makeState("c", 1, { score: 30 })),
					write("a-new", 0, makeState("a-new", 1)),
					write("b", 0, makeState("b", 1, { score: 61 }))
				]);
				assert.deepEqual(results, [
					{ id: "a", ok: true },
					{ id: "b", ok: false, currentVersion: 1 },
					{ id: "c", ok: true },
					{ id: "a-new", ok: true },
					{ id: "b", ok: false, currentVersion: 1 }
				]);
				assert.deepEqual(await store.load("a"), makeState("a", 2, { score: 20 }));
				assert.deepEqual(await store.load("b"), makeState("b", 1));
				assert.deepEqual(await store.load("c"), makeState("c", 1, { score: 30 }));
				assert.equal(await store.count(), 4);
			});

			void it("applies two writes of one customer in one batch in order", async () => {
				const results = await store.saveBatch([
					write("d", 0, makeState("d", 1), [entry("d", 1)]),
					write("d", 1, makeState("d", 2), [entry("d", 2)])
				]);
				assert.deepEqual(results, [{ id: "d", ok: true }, { id: "d", ok: true }]);
				assert.equal((await store.load("d"))?.version, 2);
				assert.deepEqual((await store.journal("d", 10)).map(e => e.version), [2, 1]);
			});

			void it("keeps per-write results in order across a large batch", async () => {
				const ids = Array.from({ length: 250 }, (_, i) => `bulk-${i}`);
				await store.saveBatch(ids.filter((_, i) => i % 7 === 0).map(id => write(id, 0, makeState(id, 1))));
				// Every 7th customer already exists, so its insert must be refused; the others are new.
				const results = await store.saveBatch(ids.map(id => write(id, 0, makeState(id, 2, { score: 70 }), [entry(id, 2)])));
				assert.deepEqual(results, ids.map((id, i) => i % 7 === 0 ? { id, ok: false, currentVersion: 1 } : { id, ok: true }));
				assert.equal((await store.load("bulk-249"))?.version, 2);
				assert.equal((await store.load("bulk-245"))?.version, 1);
				assert.deepEqual(await store.journal("bulk-245", 10), []);
				assert.deepEqual(await store.journal("bulk-248", 10), [entry("bulk-248", 2)]);
			});

			void it("accepts an empty batch", async () => {
				assert.deepEqual(await store.saveBatch([]), []);
			});
		});

		void describe("journal", () => {
			before(fresh);
			after(dispose);

			void it("returns entries newest first, limited, equal to what was written", async () => {
				await saveOne(store, write("j", 0, makeState("j", 3), [entry("j", 1), entry("j", 2), entry("j", 3)]));
				await saveOne(store, write("j", 3, makeState("j", 4), [entry("j", 4)]));
				assert.deepEqual(await store.journal("j", 2), [entry("j", 4), entry("j", 3)]);
				assert.deepEqual(await store.journal("j", 10), [4, 3, 2, 1].map(v => entry("j", v)));
				assert.deepEqual(await store.journal("j", 0), []);
			});

			void it("does not append the journal of a refused write", async () => {
				const results = await store.saveBatch([
					write("j", 2, makeState("j", 99), [entry("j", 99)]),
					write("k", 0, makeState("k", 1), [entry("k", 1)])
				]);
				assert.deepEqual(results, [{ id: "j", ok: false, currentVersion: 4 }, { id: "k", ok: true }]);
				assert.deepEqual((await store.journal("j", 10)).map(e => e.version), [4, 3, 2, 1]);
				assert.deepEqual(await store.journal("k", 10), [entry("k", 1)]);
			});

			void it("keeps journals of different customers apart", async () => {
				assert.deepEqual(await store.journal("unknown", 10), []);
				assert.ok((await store.journal("j", 10)).every(e => e.customerId === "j"));
			});
		});

		void describe("risk index", () => {
			before(fresh);
			after(dispose);

			void it("lists customers strictly above the threshold, highest first, up to the limit", async () => {
				await store.saveBatch([
					write("low", 0, makeState("low", 1, { score: 10 })),
					write("edge", 0, makeState("edge", 1, { score: 50 })),
					write("high", 0, makeState("high", 1, { score: 80 })),
					write("mid", 0, makeState("mid", 1, { score: 50.5 }))
				]);
				assert.deepEqual(await store.listByRisk(50, 10), [{ id: "high", score: 80 }, { id: "mid", score: 50.5 }]);
				assert.deepEqual(await store.listByRisk(50, 1), [{ id: "high", score: 80 }]);
				assert.deepEqual((await store.listByRisk(-1, 10)).map(r => r.id), ["high", "mid", "edge", "low"]);
				assert.deepEqual(await store.listByRisk(100, 10), []);
			});

			void it("follows score changes and ignores refused writes", async () => {
				await store.saveBatch([
					write("high", 1, makeState("high", 2, { score: 20 })),
					write("low", 7, makeState("low", 8, { score: 95 }))
				]);
				assert.deepEqual(await store.listByRisk(50, 10), [{ id: "mid", score: 50.5 }]);
			});
		});

		void describe("reminders index", () => {
			before(fresh);
			after(dispose);

			void it("lists customers whose earliest reminder is due, earliest first, up to the limit", async () => {
				await store.saveBatch([
					write("r1", 0, makeState("r1", 1, { reminders: { decay: 1000, followUp: 500 } })),
					write("r2", 0, makeState("r2", 1, { reminders: { decay: 2000 } })),
					write("r3", 0, makeState("r3", 1))
				]);
				assert.deepEqual(await store.dueReminders(499, 10), []);
				assert.deepEqual(await store.dueReminders(1000, 10), [{ id: "r1", dueAt: 500 }]);
				assert.deepEqual(await store.dueReminders(2000, 10), [{ id: "r1", dueAt: 500 }, { id: "r2", dueAt: 2000 }]);
				assert.deepEqual(await store.dueReminders(2000, 1), [{ id: "r1", dueAt: 500 }]);
			});

			void it("drops a customer whose reminders are cleared and moves one whose reminder changes", async () => {
				await store.saveBatch([
					write("r1", 1, makeState("r1", 2)),
					write("r2", 1, makeState("r2", 2, { reminders: { decay: 300 } }))
				]);
				assert.deepEqual(await store.dueReminders(10_000, 10), [{ id: "r2", dueAt: 300 }]);
				assert.equal(await store.count(), 3);
			});
		});

		void describe("change feed and journal since", () => {
			before(fresh);
			after(dispose);

			void it("gives one customer's entries above a version, oldest first, limited, reminders included", async () => {
				await saveOne(store, write("j1", 0, makeState("j1", 3), [changed("j1", 1), changed("j1", 2), reminderEntry("j1", 3)]));
				await saveOne(store, write("j1", 3, makeState("j1", 5), [changed("j1", 4), changed("j1", 5)]));
				assert.deepEqual(await store.journalSince("j1", 0, 100), [changed("j1", 1), changed("j1", 2), reminderEntry("j1", 3), changed("j1", 4), changed("j1", 5)]);
				assert.deepEqual(await store.journalSince("j1", 2, 2), [reminderEntry("j1", 3), changed("j1", 4)]);
				assert.deepEqual(await store.journalSince("j1", 5, 10), []);
				assert.deepEqual(await store.journalSince("nobody", 0, 10), []);
				assert.deepEqual((await store.journal("j1", 10)).map(e => e.version), [5, 4, 3, 2, 1]);
			});

			void it("lists every persisted change once, in commit order, across customers and pages; refused writes and entries without a record are not in it", async () => {
				await saveOne(store, write("j2", 0, makeState("j2", 1), [changed("j2", 1)]));
				const results = await store.saveBatch([
					write("j2", 1, makeState("j2", 2), [changed("j2", 2)]),
					write("j1", 1, makeState("j1", 9), [changed("j1", 9)]),
					write("j3", 0, makeState("j3", 2), [entry("j3", 1), changed("j3", 2)])
				]);
				assert.deepEqual(results.map(r => r.ok), [true, false, true]);
				const feed = await wholeFeed(store);
				assert.deepEqual(feed.map(i => `${i.customerId}@${i.version}`), ["j1@1", "j1@2", "j1@3", "j1@4", "j1@5", "j2@1", "j2@2", "j3@2"]);
				for (let i = 1; i < feed.length; i++) assert.ok(compareCursors(feed[i - 1].cursor, feed[i].cursor) < 0, "cursors increase");
				assert.deepEqual(feed[2].change, reminderEntry("j1", 3).change);
				assert.deepEqual(feed[1], { cursor: feed[1].cursor, customerId: "j1", version: 2, riskScore: 2, appliedAt: 1_700_000_000_002, change: change(2) });
				const tail = await store.changesSince(feed[5].cursor, 10);
				assert.deepEqual(tail.items, feed.slice(6));
				assert.equal(tail.trimmed, false);
				const none = await store.changesSince(feed.at(-1)!.cursor, 10);
				assert.deepEqual(none, { items: [], cursor: feed.at(-1)!.cursor, trimmed: false });
				assert.deepEqual(await store.changesSince(FEED_END, 10), { items: [], cursor: feed.at(-1)!.cursor, trimmed: false }, "FEED_END: the newest cursor");
			});
		});

		void describe("persistence", () => {
			before(fresh);
			after(dispose);

			void it("keeps states, journal and indexes across close and reopen", async (t) => {
				if (!fixture.reopen) {
					t.skip(`${name} keeps nothing across a reopen`);
					return;
				}
				await saveOne(store, write("p1", 0, makeState("p1", 2, { score: 70, reminders: { decay: 100 } }), [entry("p1", 1), entry("p1", 2)]));
				await saveOne(store, write("p2", 0, makeState("p2", 1, { score: 5 })));
				await saveOne(store, write("p2", 1, makeState("p2", 2, { score: 6 })));
				store = await fixture.reopen();
				assert.deepEqual(await store.load("p1"), makeState("p1", 2, { score: 70, reminders: { decay: 100 } }));
				assert.deepEqual(await store.load("p2"), makeState("p2", 2, { score: 6 }));
				assert.deepEqual(await store.journal("p1", 10), [entry("p1", 2), entry("p1", 1)]);
				assert.deepEqual(await store.listByRisk(50, 10), [{ id: "p1", score: 70 }]);
				assert.deepEqual(await store.dueReminders(100, 10), [{ id: "p1", dueAt: 100 }]);
				assert.equal(await store.count(), 2);
				// The compare-and-set still sees the persisted version.
				assert.deepEqual(await store.saveBatch([write("p2", 1, makeState("p2", 3))]), [{ id: "p2", ok: false, currentVersion: 2 }]);
			});

			void it("keeps the change feed across close and reopen, and goes on after its last cursor", async (t) => {
				if (!fixture.reopen) {
					t.skip(`${name} keeps nothing across a reopen`);
					return;
				}
				await saveOne(store, write("f1", 0, makeState("f1", 2), [changed("f1", 1), changed("f1", 2)]));
				const before = await wholeFeed(store);
				store = await fixture.reopen();
				assert.deepEqual(await wholeFeed(store), before);
				await saveOne(store, write("f1", 2, makeState("f1", 3), [changed("f1", 3)]));
				const page = await store.changesSince(before.at(-1)!.cursor, 10);
				assert.deepEqual(page.items.map(i => `${i.customerId}@${i.version}`), ["f1@3"]);
				assert.ok(compareCursors(before.at(-1)!.cursor, page.items[0].cursor) < 0);
				assert.deepEqual(await store.journalSince("f1", 1, 10), [changed("f1", 2), changed("f1", 3)]);
			});
		});
	});
}

void describe("memory store change feed bound", () => {
	void it("keeps about feedMax changes and says when a cursor is older than that", async () => {
		const store = new MemoryActorStore({ feedMax: 8 });
		await saveOne(store, write("m", 0, makeState("m", 1), [changed("m", 1)]));
		for (let v = 2; v <= 30; v++) await saveOne(store, write("m", v - 1, makeState("m", v), [changed("m", v)]));
		const page = await store.changesSince("1", 100);
		assert.equal(page.trimmed, true);
		assert.equal(page.items.at(-1)!.version, 30);
		assert.equal((await store.changesSince(page.items[0].cursor, 100)).trimmed, false);
	});
});

describeStoreContract("memory", async () => {
	const store = new MemoryActorStore();
	await store.connect();
	return { store, dispose: () => store.close() };
});

describeStoreContract("nedb", async () => {
	const dir = await mkdtemp(join(tmpdir(), "crm-nedb-store-"));
	let store = new NedbActorStore({ dir });
	await store.connect();
	return {
		get store() {
			return store;
		},
		reopen: async () => {
			await store.close();
			store = new NedbActorStore({ dir });
			await store.connect();
			return store;
		},
		dispose: async () => {
			await store.close();
			await rm(dir, { recursive: true, force: true });
		}
	};
});

void describe("redis-server", () => {
	let redis: ServerHandle;
	let fixtures = 0;
	before(async () => {
		redis = await startRedis();
	});
	after(async () => {
		await redis?.stop();
	});

	describeStoreContract("redis", async () => {
		// Each fixture gets its own key prefix on the shared server, so the cases cannot see each other's data.
		const keyPrefix = `crm-test-${++fixtures}:`;
		let store = new RedisActorStore({ url: redis.url, keyPrefix });
		await store.connect();
		return {
			get store() {
				return store;
			},
			reopen: async () => {
				await store.close();
				await redis.restart();
				store = new RedisActorStore({ url: redis.url, keyPrefix });
				await store.connect();
				return store;
			},
			dispose: () => store.close()
		};
	});

	void it("fails the batch, naming the customer, when a stored state is not one it wrote", async () => {
		const store = new RedisActorStore({ url: redis.url, keyPrefix: "crm-corrupt:" });
		await store.connect();
		const { Redis } = await import("ioredis");
		const raw = new Redis(redis.url);
		try {
			await raw.set("crm-corrupt:customer:x", "not json");
			await assert.rejects(store.saveBatch([write("x", 1, makeState("x", 2))]), /customer x does not start with its version/);
		} finally {
			raw.disconnect();
			await store.close();
		}
	});

	void it("closes a store that never connected", async () => {
		await new RedisActorStore({ url: redis.url }).close();
	});

	void it("caps the change feed and tells a client that resumes from before the cap that changes were trimmed", async () => {
		const store = new RedisActorStore({ url: redis.url, keyPrefix: "crm-feedcap:", feedMax: 10 });
		await store.connect();
		try {
			const first = await store.changesSince(FEED_START, 1);
			assert.deepEqual(first, { items: [], cursor: FEED_START, trimmed: false });
			await saveOne(store, write("c", 0, makeState("c", 1), [changed("c", 1)]));
			const early = (await store.changesSince(FEED_START, 1)).cursor;
			for (let v = 2; v <= 400; v++) await saveOne(store, write("c", v - 1, makeState("c", v), [changed("c", v)]));
			const late = await store.changesSince(early, 1000);
			assert.equal(late.trimmed, true);
			assert.ok(late.items.length < 399 && late.items.length >= 10, `kept ${late.items.length}`);
			assert.equal(late.items.at(-1)!.version, 400);
			assert.equal((await store.changesSince(late.items[0].cursor, 1000)).trimmed, false);
		} finally {
			await store.close();
		}
	});

	void it("trims each journal to journalMax, keeping the newest", async () => {
		const store = new RedisActorStore({ url: redis.url, keyPrefix: "crm-trim:", journalMax: 3 });
		await store.connect();
		try {
			await saveOne(store, write("t", 0, makeState("t", 4), [1, 2, 3, 4].map(v => entry("t", v))));
			await saveOne(store, write("t", 4, makeState("t", 5), [entry("t", 5)]));
			assert.deepEqual((await store.journal("t", 10)).map(e => e.version), [5, 4, 3]);
		} finally {
			await store.close();
		}
	});
});

if (process.env.MONGO_URL) {
	const mongoUrl = process.env.MONGO_URL;
	let fixtures = 0;
	describeStoreContract("mongo", async () => {
		const dbName = `crm_store_test_${process.pid}_${++fixtures}`;
		let store = new MongoActorStore({ url: mongoUrl, dbName });
		await store.connect();
		return {
			get store() {
				return store;
			},
			reopen: async () => {
				await store.close();
				store = new MongoActorStore({ url: mongoUrl, dbName });
				await store.connect();
				return store;
			},
			dispose: async () => {
				await store.close();
				const { MongoClient } = await import("mongodb");
				const client = await MongoClient.connect(mongoUrl);
				await client.db(dbName).dropDatabase();
				await client.close();
			}
		};
	});
} else {
	void test("ActorStore contract: mongo", { skip: "MONGO_URL not set: MongoDB store contract skipped" }, () => {});
}
