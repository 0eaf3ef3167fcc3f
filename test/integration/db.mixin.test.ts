// DbMixin: the same entity behaviour on NeDB files (always) and MongoDB (when MONGO_URL is set); data survives a
// restart; the generic CRUD actions are callable by services but not published as REST routes.
import { after, before, describe, it, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { ServiceBroker } from "moleculer";
import type { ServiceSchema } from "moleculer";
import { DbMixin } from "../../mixins/db.mixin.ts";

interface Thing { id: string; kind: string; at: string; n: number }

function thingsService(dataDir: string, mongoUrl: string | undefined, collection: string): ServiceSchema {
	return { name: "things", mixins: [DbMixin({ collection, config: { dataDir, mongoUrl }, indexes: ["kind"] }) as ServiceSchema] };
}

async function startBroker(dataDir: string, mongoUrl: string | undefined, collection: string): Promise<ServiceBroker> {
	const broker = new ServiceBroker({ logger: false, validator: true });
	broker.createService(thingsService(dataDir, mongoUrl, collection));
	await broker.start();
	return broker;
}

function contract(backend: string, mongoUrl: string | undefined): void {
	void describe(`DbMixin on ${backend}`, () => {
		let dir: string;
		let broker: ServiceBroker;
		const collection = `things_${process.pid}_${Date.now()}`;
		before(async () => {
			dir = await mkdtemp(path.join(tmpdir(), "crm-dbmixin-"));
			broker = await startBroker(dir, mongoUrl, collection);
		});
		after(async () => {
			if (mongoUrl) await broker.call("things.find", { query: {} }).then(all => Promise.all((all as Thing[]).map(t => broker.call("things.remove", { id: t.id }))));
			await broker.stop();
			await rm(dir, { recursive: true, force: true });
		});

		it("creates with a string id, reads, updates and finds by query", async () => {
			const a = await broker.call<Thing, object>("things.create", { kind: "a", at: "2026-01-01T00:00:00.000Z", n: 1 });
			assert.equal(typeof a.id, "string");
			assert.ok(a.id.length > 0);
			assert.deepEqual(await broker.call("things.get", { id: a.id }), a);
			const b = await broker.call<Thing, object>("things.update", { id: a.id, n: 2 });
			assert.equal(b.n, 2);
			await broker.call("things.create", { kind: "b", at: "2026-01-02T00:00:00.000Z", n: 3 });
			const onlyA = await broker.call<Thing[], object>("things.find", { query: { kind: "a" } });
			assert.deepEqual(onlyA.map(t => t.id), [a.id]);
			const sorted = await broker.call<Thing[], object>("things.find", { query: {}, sort: "-n" });
			assert.deepEqual(sorted.map(t => t.n), [3, 2]);
		});

		it("a missing id is a 404 EntityNotFound", async () => {
			await assert.rejects(broker.call("things.get", { id: "no-such-id" }), (err: { code: number }) => err.code === 404);
		});

		it("conditional updateMany with $max only moves a value forward", async () => {
			const t = await broker.call<Thing, object>("things.create", { kind: "c", at: "2026-03-01T00:00:00.000Z", n: 0 });
			type Adapter = { updateMany(q: object, u: object): Promise<number> };
			const svc = broker.getLocalService("things") as unknown as { adapter: Adapter };
			await svc.adapter.updateMany({ kind: "c" }, { $max: { at: "2026-02-01T00:00:00.000Z" } });
			assert.equal((await broker.call<Thing, object>("things.get", { id: t.id })).at, "2026-03-01T00:00:00.000Z");
			await svc.adapter.updateMany({ kind: "c" }, { $max: { at: "2026-04-01T00:00:00.000Z" } });
			assert.equal((await broker.call<Thing, object>("things.get", { id: t.id })).at, "2026-04-01T00:00:00.000Z");
		});

		it("keeps its data across a restart", async () => {
			const t = await broker.call<Thing, object>("things.create", { kind: "d", at: "2026-05-01T00:00:00.000Z", n: 7 });
			await broker.stop();
			broker = await startBroker(dir, mongoUrl, collection);
			assert.equal((await broker.call<Thing, object>("things.get", { id: t.id })).n, 7);
		});

		it("publishes none of the generic CRUD actions as REST routes", () => {
			const svc = broker.getLocalService("things") as unknown as { schema: { actions: Record<string, { visibility?: string }> } };
			for (const name of ["find", "count", "list", "create", "insert", "get", "update", "remove"]) {
				assert.equal(svc.schema.actions[name].visibility, "public", name);
			}
		});
	});
}

contract("NeDB", undefined);
if (process.env.MONGO_URL) contract("MongoDB", process.env.MONGO_URL);
else void test("DbMixin on MongoDB", { skip: "MONGO_URL not set: MongoDB entity adapter tests skipped" }, () => {});
