// ERP sync end to end against a real PostgreSQL (test/harness-postgres.ts): mapping and coercion, the (updated_at, key)
// cursor at batch boundaries, re-runs and full resyncs as duplicates, key conflicts, the bad-input corpus, cron, REST.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { startPostgres, type PostgresHandle } from "../harness-postgres.ts";
import { freePort, waitFor } from "../harness.ts";
import { startTestNode, type TestNode } from "../support/node.ts";
import { recordDeadLetters, servicesWithDeadLetters, type DeadLetterLog } from "./ingest-sources.support.ts";
import type { SyncSummary } from "../../models/contract/index.ts";

interface View { version: number; profile: Record<string, unknown> }

const MAPPING = JSON.stringify({
	id: { column: "customer_no", prefix: "erp-" },
	fields: [
		{ column: "name", field: "name", type: "string" },
		{ column: "email", field: "email", type: "string" },
		{ column: "credit_limit", field: "creditLimit", type: "number" },
		{ column: "vip", field: "vip", type: "boolean" },
		{ column: "customer_since", field: "customerSince", type: "date" }
	]
});

const T = (n: number) => `2026-01-01 10:00:0${n}.123456+00`;

describe("ingest-erp against PostgreSQL", () => {
	let pgh: PostgresHandle;
	let db: pg.Client;
	let node: TestNode;
	let dl: DeadLetterLog;
	const env = () => ({
		SERVICES: servicesWithDeadLetters("customers,ingest-erp,api"), ERP_DATABASE_URL: pgh.url, ERP_TABLE: "erp.customers",
		ERP_MAPPING: MAPPING, ERP_CRON: "off", ERP_BATCH_SIZE: "2"
	});

	before(async () => {
		pgh = await startPostgres();
		db = new pg.Client({ connectionString: pgh.url });
		await db.connect();
		// A legacy ERP: the credit limit is text, so the mapping's coercion is what makes it a number.
		await db.query(`CREATE SCHEMA erp; CREATE TABLE erp.customers (
			id integer PRIMARY KEY, customer_no text, name text, email text, credit_limit text, vip boolean,
			customer_since date, "__proto__" text, updated_at timestamptz NOT NULL)`);
		node = await startTestNode(env());
		dl = await recordDeadLetters(node.broker);
	});
	after(async () => {
		await node?.stop();
		await db?.end();
		await pgh?.stop();
	});

	const insert = (id: number, no: string | null, name: string | null, updatedAt: string, extra: { email?: string | null; limit?: string | null; vip?: boolean | null; since?: string | null; proto?: string } = {}) =>
		db.query("INSERT INTO erp.customers VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", [
			id, no, name, extra.email === undefined ? `${no}@example.com` : extra.email, extra.limit === undefined ? "1000" : extra.limit,
			extra.vip === undefined ? false : extra.vip, extra.since === undefined ? "2019-04-01" : extra.since, extra.proto ?? null, updatedAt
		]);
	const sync = (full = false) => node.broker.call<SyncSummary, unknown>("ingestErp.sync", { full });
	const customer = (id: string) => node.broker.call<View, unknown>("customers.get", { customerId: id });

	it("first sync maps and coerces every row, none lost or repeated where equal timestamps straddle a batch", async () => {
		await insert(1, "a1", "  Ada  ", T(1), { limit: "2500.50", vip: true });
		// Three rows share one updated_at; with batches of 2 the boundary falls between them.
		await insert(2, "a2", "Bert", T(2), { email: null });
		await insert(3, "a3", "Cleo", T(2));
		await insert(4, "a4", "Dan", T(2), { since: null });
		await insert(5, "a5", "Eve", T(3));
		const s = await sync();
		assert.equal(s.error, undefined);
		assert.equal(s.rows, 5);
		assert.equal(s.batches, 3);
		assert.deepEqual(s.tally, { applied: 5, duplicate: 0, deadLettered: 0, skipped: 0 });
		assert.deepEqual(s.watermarkAfter && { updatedAt: s.watermarkAfter.updatedAt, key: s.watermarkAfter.key }, { updatedAt: T(3), key: "5" });
		assert.deepEqual((await customer("erp-a1")).profile, { name: "Ada", email: "a1@example.com", creditLimit: 2500.5, vip: true, customerSince: "2019-04-01" });
		assert.deepEqual((await customer("erp-a2")).profile, { name: "Bert", creditLimit: 1000, vip: false, customerSince: "2019-04-01" });
		assert.equal((await customer("erp-a4")).profile.customerSince, undefined);
	});

	it("an incremental run takes only rows after the cursor: a late row with the same timestamp, and updated rows (NULL clears)", async () => {
		await insert(6, "a6", "Finn", T(3));
		await db.query("UPDATE erp.customers SET email = NULL, name = 'Ada Lovelace', updated_at = $1 WHERE id = 1", [T(4)]);
		const before1 = await customer("erp-a1");
		const s = await sync();
		assert.equal(s.rows, 2);
		assert.equal(s.tally.applied, 2);
		const a1 = await customer("erp-a1");
		assert.equal(a1.profile.name, "Ada Lovelace");
		assert.equal(a1.profile.email, undefined, "NULL clears the field");
		assert.equal(a1.version, before1.version + 1);
		assert.equal((await customer("erp-a6")).profile.name, "Finn");
	});

	it("a re-run finds nothing; a full resync reads every row again and each is a duplicate", async () => {
		assert.equal((await sync()).rows, 0);
		const v = (await customer("erp-a3")).version;
		const full = await sync(true);
		assert.equal(full.full, true);
		assert.equal(full.rows, 6);
		assert.deepEqual(full.tally, { applied: 0, duplicate: 6, deadLettered: 0, skipped: 0 });
		assert.equal((await customer("erp-a3")).version, v);
	});

	it("two rows for one customer id in a run: the later updated_at wins, whatever the key order", async () => {
		await insert(10, "dup", "Old", T(5));
		await insert(11, "dup", "New", T(6));
		await insert(13, "dup2", "Earlier", T(7));
		await insert(12, "dup2", "Later", T(8));
		const s = await sync();
		assert.equal(s.conflicts, 2);
		assert.equal((await customer("erp-dup")).profile.name, "New");
		assert.equal((await customer("erp-dup2")).profile.name, "Later");
	});

	it("dead-letters each bad row with its reason, keeps the good ones, and moves on", async () => {
		const before1 = (await dl.of("erp")).length;
		await insert(20, "ok-1", "Good One", "2026-01-02 00:00:00+00");
		await insert(21, "bad-limit", "X", "2026-01-02 00:00:01+00", { limit: "lots" });
		await insert(22, null, "No Number", "2026-01-02 00:00:02+00");
		await insert(23, "bad id!", "X", "2026-01-02 00:00:03+00");
		await insert(24, "long", "y".repeat(600), "2026-01-02 00:00:04+00");
		await insert(25, "bad-mail", "X", "2026-01-02 00:00:05+00", { email: "not-an-email" });
		await insert(26, "proto", "Proto", "2026-01-02 00:00:06+00", { proto: "{\"polluted\":true}" });
		await insert(27, "ok-2", "Good Two", "2026-01-02 00:00:07+00");
		const s = await sync();
		assert.equal(s.error, undefined);
		assert.equal(s.rows, 8);
		assert.equal(s.tally.applied, 3);
		assert.equal(s.tally.deadLettered, 5);
		const letters = (await dl.of("erp")).slice(before1);
		const reasons = letters.map(l => l.reason);
		for (const re of [/column "credit_limit": "lots" is not a number/, /missing customer id/, /customer id "erp-bad id!" is not valid/, /longer than 512 characters/, /email must be an email address/]) {
			assert.ok(reasons.some(r => re.test(r)), `${re}: ${JSON.stringify(reasons)}`);
		}
		for (const l of letters) {
			assert.equal(l.retryAction, "ingestErp.retryRow");
			assert.equal((l.payload as { table: string }).table, "erp.customers");
		}
		assert.equal(({} as Record<string, unknown>).polluted, undefined);
		assert.deepEqual(Object.keys((await customer("erp-proto")).profile).sort(), ["creditLimit", "customerSince", "email", "name", "vip"]);
		assert.equal((await customer("erp-ok-2")).profile.name, "Good Two");
		// The watermark passed the bad rows (they are in the dead letters), so the next run does not trip on them again.
		assert.equal((await sync()).rows, 0);
		const limit = letters.find(l => /credit_limit/.test(l.reason));
		await assert.rejects(node.broker.call("ingestErp.retryRow", { payload: limit?.payload }), /still invalid/);
	});

	it("runs never overlap: a second request waits and starts where the first ended", async () => {
		await insert(30, "c1", "C1", "2026-01-03 00:00:00+00");
		const [a, b] = await Promise.all([sync(), sync()]);
		assert.equal(a.rows + b.rows, 1);
		assert.deepEqual(b.watermarkBefore, a.watermarkAfter);
		assert.ok(Date.parse(b.startedAt) >= Date.parse(a.finishedAt ?? ""));
	});

	it("POST /api/v1/erp/sync answers 202 and the run shows in GET /api/v1/erp/status", async () => {
		await insert(31, "rest", "Via REST", "2026-01-03 00:00:01+00");
		// The gateway publishes services' REST actions a moment after they start (moleculer-web debounces it).
		await waitFor(async () => (await node.api("/api/v1/erp/status")).status === 200, { message: "ERP routes published" });
		const res = await node.api("/api/v1/erp/sync", { method: "POST", json: {} });
		assert.equal(res.status, 202, JSON.stringify(res.body));
		assert.equal(res.body.accepted, true);
		await waitFor(async () => (await node.api("/api/v1/erp/status")).body.lastRun?.rows === 1, { message: "REST-triggered run finished" });
		assert.equal((await customer("erp-rest")).profile.name, "Via REST");
		const status = (await node.api("/api/v1/erp/status")).body;
		assert.equal(status.enabled, true);
		assert.equal(status.watermark.key, "31");
	});

	it("the watermark survives a restart", async () => {
		const wm = (await node.api("/api/v1/erp/status")).body.watermark;
		await node.stop({ keepData: true });
		node = await startTestNode(env(), node.dataDir);
		dl = await recordDeadLetters(node.broker);
		const status = await node.broker.call<{ watermark: { key: string; updatedAt: string } }, unknown>("ingestErp.status", {});
		assert.deepEqual(status.watermark, wm);
		assert.equal((await sync()).rows, 0);
	});

	it("the cron schedule runs the sync by itself; an unreachable database fails the run, not the service", async () => {
		const cron = await startTestNode({ ...env(), ERP_CRON: "* * * * * *" });
		const down = await startTestNode({ ...env(), ERP_CRON: "* * * * * *", ERP_DATABASE_URL: `postgres://postgres@127.0.0.1:${await freePort()}/none` });
		try {
			await waitFor(async () => {
				const s = await cron.broker.call<{ lastRun: SyncSummary | null }, unknown>("ingestErp.status", {});
				return s.lastRun?.trigger === "cron" && s.lastRun.rows > 0;
			}, { timeoutMs: 8000, message: "a cron-triggered run" });
			assert.equal((await cron.broker.call<View, unknown>("customers.get", { customerId: "erp-a5" })).profile.name, "Eve");
			await waitFor(async () => {
				const s = await down.broker.call<{ lastRun: SyncSummary | null }, unknown>("ingestErp.status", {});
				return s.lastRun?.trigger === "cron" && /ECONNREFUSED|connect/i.test(s.lastRun.error ?? "");
			}, { timeoutMs: 8000, message: "a failed cron run" });
			const again = await down.broker.call<SyncSummary, unknown>("ingestErp.sync", {});
			assert.match(again.error ?? "", /ECONNREFUSED|connect/i);
		} finally {
			await cron.stop();
			await down.stop();
		}
	});
});
