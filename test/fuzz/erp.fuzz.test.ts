// Fuzzing the ERP row mapping against a real PostgreSQL: hostile rows (bad customer ids, numbers as text, non-finite
// numbers, infinite / pre-1970 / far-future / BC timestamps, over-long values, invalid e-mail and phone, prototype-named
// columns, deep JSON) are each dead-lettered with a reason or, for columns that cannot be fields, ignored — never
// applied half-way, no customer changed, the sync's counts add up. A fast-check property drives the running node's own
// row → event step in-process, and a sampled batch of random rows goes through the database end to end.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import fc from "fast-check";
import { startPostgres, type PostgresHandle } from "../harness-postgres.ts";
import { startTestNode, type TestNode } from "../support/node.ts";
import { recordDeadLetters, servicesWithDeadLetters, type DeadLetterLog } from "../integration/ingest-sources.support.ts";
import type { ErpRowPayload, SyncSummary } from "../../models/contract/index.ts";
import { validateEvent } from "../../models/cloud-event.validator.ts";
import { assertNoCustomerChanged, customerSnapshot, fcParams, nestedText, seedBanner } from "./fuzz.support.ts";

const MAPPING = JSON.stringify({
	id: { column: "customer_id" },
	fields: [
		{ column: "credit", field: "creditLimit", type: "number" },
		{ column: "vip", field: "vip", type: "boolean" },
		{ column: "since", field: "since", type: "date" }
	],
	passthrough: true
});

const COLUMNS = ["id", "customer_id", "credit", "vip", "since", "email", "phone", "name", "__proto__", "constructor", "payload", "updated_at"] as const;
type Row = Partial<Record<(typeof COLUMNS)[number], unknown>>;

type Prepare = (p: ErpRowPayload) => { kind: "event"; event: unknown } | { kind: "fail"; reason: string };

describe("fuzz: ERP row mapping", () => {
	let pgh: PostgresHandle;
	let db: pg.Client;
	let node: TestNode;
	let dl: DeadLetterLog;
	let nextId = 1;
	let baseline: Map<string, string>;

	// Full syncs over a table holding only the rows under test: hostile times sort before any watermark ("-infinity",
	// BC) or after all ("infinity"), so an incremental cursor would skip them or stop there.
	const sync = () => node.broker.call<SyncSummary, unknown>("ingestErp.sync", { full: true });
	const fresh = () => db.query("DELETE FROM erp_fuzz");
	const valid = (over: Row = {}): Row => ({
		customer_id: "fz-erp-victim", credit: "1000", vip: "yes", since: "2019-04-01", email: "erp@example.com", phone: "+49 30 123456",
		name: "ERP Victim", updated_at: "2026-01-01 10:00:00+00", ...over
	});

	async function insert(rows: Row[]): Promise<number[]> {
		const ids: number[] = [];
		for (const r of rows) {
			const id = nextId++;
			ids.push(id);
			const cols = COLUMNS.filter(c => c === "id" || r[c] !== undefined);
			await db.query(`INSERT INTO erp_fuzz (${cols.map(c => `"${c}"`).join(", ")}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(", ")})`, cols.map(c => c === "id" ? id : r[c]));
		}
		return ids;
	}

	before(async () => {
		console.log(seedBanner("test/fuzz/erp.fuzz.test.ts"));
		pgh = await startPostgres();
		db = new pg.Client({ connectionString: pgh.url });
		await db.connect();
		await db.query(`CREATE TABLE erp_fuzz (id integer PRIMARY KEY, customer_id text, credit text, vip text, since text, email text, phone text,
			name text, "__proto__" text, "constructor" text, payload jsonb, updated_at timestamptz NOT NULL)`);
		node = await startTestNode({
			SERVICES: servicesWithDeadLetters("customers,ingest-erp"), ACTOR_STORE: "memory", ERP_DATABASE_URL: pgh.url, ERP_TABLE: "erp_fuzz",
			ERP_MAPPING: MAPPING, ERP_CRON: "off", ERP_BATCH_SIZE: "7"
		});
		dl = await recordDeadLetters(node.broker);
		await insert([valid()]);
		const first = await sync();
		assert.equal(first.tally.applied, 1, JSON.stringify(first));
		baseline = await customerSnapshot(node.broker);
	});

	after(async () => {
		await node?.stop();
		await db?.end();
		await pgh?.stop();
	});

	it("dead-letters hostile rows with their reason; the sync accounts for every row", async () => {
		const cases: Array<[string, Row, RegExp]> = [
			["no customer id", valid({ customer_id: null }), /missing customer id/],
			["empty customer id", valid({ customer_id: "   " }), /missing customer id/],
			["customer id with path traversal", valid({ customer_id: "../../etc/passwd" }), /is not valid/],
			["customer id __proto__", valid({ customer_id: "__proto__" }), /is not valid/],
			["customer id with a space", valid({ customer_id: "a b" }), /is not valid/],
			["customer id of 129 characters", valid({ customer_id: "c".repeat(129) }), /is not valid/],
			["credit NaN-like text 'Infinity'", valid({ credit: "Infinity" }), /credit.*not a number/],
			["credit 1e999", valid({ credit: "1e999" }), /credit.*not a number/],
			["credit in hex", valid({ credit: "0x10" }), /credit.*not a number/],
			["credit with letters", valid({ credit: "12abc" }), /credit.*not a number/],
			["vip neither true nor false", valid({ vip: "maybe" }), /vip.*not a boolean/],
			["since 31 February", valid({ since: "2026-02-31" }), /since.*not a date/],
			["since year 0001", valid({ since: "0001-01-01" }), /since.*not a date/],
			["updated_at infinity", valid({ updated_at: "infinity" }), /updated_at.*not a date-time/],
			["updated_at -infinity", valid({ updated_at: "-infinity" }), /updated_at.*not a date-time/],
			["updated_at year 0001", valid({ updated_at: "0001-01-01 00:00:00+00" }), /updated_at.*not a date-time/],
			["updated_at BC", valid({ updated_at: "0044-03-15 00:00:00+00 BC" }), /updated_at.*not a date-time/],
			["updated_at before 1970", valid({ updated_at: "1969-12-31 23:59:59+00" }), /before 1970/],
			["updated_at in 4000", valid({ updated_at: "4000-01-01 00:00:00+00" }), /future/],
			["invalid e-mail", valid({ email: "not-an-email" }), /email must be an email/],
			["invalid phone", valid({ phone: "call me" }), /phone must be a phone/],
			["name over 512 characters", valid({ name: "n".repeat(513) }), /longer than 512/]
		];
		const lettersBefore = (await dl.of("erp")).length;
		await fresh();
		await insert(cases.map(([, r]) => r));
		const summary = await sync();
		assert.equal(summary.error, undefined, summary.error);
		assert.equal(summary.rows, cases.length);
		assert.deepEqual(summary.tally, { applied: 0, duplicate: 0, deadLettered: cases.length, skipped: 0 });
		const reasons = (await dl.of("erp")).slice(lettersBefore).map(l => l.reason);
		assert.equal(reasons.length, cases.length);
		for (const [name, , reason] of cases) assert.ok(reasons.some(r => reason.test(r)), `${name}: ${reason} in ${JSON.stringify(reasons)}`);
		await assertNoCustomerChanged(node.broker, baseline, "hostile rows");
	});

	it("prototype-named columns and deep JSON are ignored, never copied onto the profile or a prototype", async () => {
		await fresh();
		// Computed keys: a literal `__proto__:` would set the row object's prototype instead of naming a column.
		await insert([valid({ customer_id: "fz-erp-proto", ["__proto__"]: "{\"polluted\":true}", ["constructor"]: "x", payload: JSON.parse(nestedText(500, "{\"__proto__\":{\"polluted\":true}}")) })]);
		const summary = await sync();
		assert.equal(summary.tally.applied, 1, JSON.stringify(summary));
		const c = await node.broker.call<{ profile: Record<string, unknown> }, unknown>("customers.get", { customerId: "fz-erp-proto" });
		assert.deepEqual(Object.keys(c.profile).sort(), ["creditLimit", "email", "name", "phone", "since", "vip"]);
		assert.equal(Object.getPrototypeOf(c.profile), Object.prototype);
		assert.equal(({} as Record<string, unknown>).polluted, undefined);
		baseline = await customerSnapshot(node.broker);
	});

	it("two rows for one customer: the later one wins, counted as a conflict", async () => {
		await fresh();
		await insert([valid({ customer_id: "fz-erp-twice", name: "First", updated_at: "2026-01-02 10:00:00+00" }), valid({ customer_id: "fz-erp-twice", name: "Second", updated_at: "2026-01-02 11:00:00+00" })]);
		const summary = await sync();
		assert.equal(summary.conflicts, 1);
		const c = await node.broker.call<{ profile: { name: string } }, unknown>("customers.get", { customerId: "fz-erp-twice" });
		assert.equal(c.profile.name, "Second");
		baseline = await customerSnapshot(node.broker);
	});

	const text = fc.oneof(
		fc.string({ maxLength: 20 }), fc.constantFrom("", " ", "NULL", "NaN", "Infinity", "-1e999", "1e999", "0x1f", "1,5", "1.234,56", "yes", "t", "2026-02-30", "31.12.1999", "__proto__", "../x", "a@b.c", "+49 1"),
		fc.double().map(String), fc.integer().map(String)
	);

	it("property (in-process): the running node's row → event step never throws and lets through only valid events", async () => {
		const svc = node.broker.getLocalService("ingestErp") as unknown as { erp: { prepare: Prepare } };
		const prepare = svc.erp.prepare.bind(svc.erp);
		const row = fc.record({
			customer_id: fc.oneof(fc.constant("fz-erp-p"), text), credit: text, vip: text, since: text, email: text, phone: text, name: text,
			protoColumn: text, payload: fc.jsonValue({ maxDepth: 3 }),
			updated_at: fc.oneof(fc.constantFrom("2026-01-01 10:00:00+00", "infinity", "1969-12-31 23:59:59+00", "9999-12-31 23:59:59+00", "2026-01-01 10:00:00.123456+05:30"), text)
		}, { requiredKeys: [] });
		fc.assert(fc.property(row, r => {
			const keys = ["id", ...Object.keys(r), "updated_at"].filter((k, i, a) => a.indexOf(k) === i);
			const values = keys.map(k => k === "id" ? 1 : (r as Record<string, unknown>)[k] ?? null);
			const columns = keys.map(k => k === "protoColumn" ? "__proto__" : k);
			const updatedAt = String(values[columns.indexOf("updated_at")]);
			const prepared = prepare({ table: "erp_fuzz", key: "1", updatedAt, columns, values });
			if (prepared.kind === "event") assert.ok(validateEvent(prepared.event).ok, `let through ${JSON.stringify(prepared.event)}`);
			else assert.ok(prepared.reason.length > 0);
		}), fcParams(1000));
	});

	it("property: a sampled batch of random rows syncs end to end, each row applied or dead-lettered as predicted", async () => {
		const svc = node.broker.getLocalService("ingestErp") as unknown as { erp: { prepare: Prepare } };
		const rows = fc.sample(fc.record({ customer_id: fc.oneof(fc.constant("fz-erp-rand"), text), credit: text, vip: text, since: text, email: text, name: text }, { requiredKeys: [] }), { ...fcParams(1), numRuns: fcParams(60).numRuns });
		const lettersBefore = (await dl.of("erp")).length;
		const stamped = rows.map((r, i) => ({ ...r, updated_at: `2026-02-01 10:00:${String(i % 60).padStart(2, "0")}.${String(i).padStart(3, "0")}+00` }));
		await fresh();
		const ids = await insert(stamped);
		// What the mapping says about each row as the database hands it back.
		const expectDead = stamped.filter((r, i) => {
			const columns = [...COLUMNS];
			const values = columns.map(c => c === "id" ? ids[i] : (r as Record<string, unknown>)[c] ?? null);
			values[columns.indexOf("updated_at")] = r.updated_at;
			return svc.erp.prepare({ table: "erp_fuzz", key: String(ids[i]), updatedAt: r.updated_at, columns, values }).kind === "fail";
		}).length;
		const summary = await sync();
		assert.equal(summary.error, undefined, summary.error);
		assert.equal(summary.rows, rows.length);
		const t = summary.tally;
		assert.equal(t.applied + t.duplicate + t.deadLettered + t.skipped, rows.length, "every row accounted for");
		assert.equal(t.deadLettered, expectDead, `${expectDead} rows the mapping refuses (seed ${fcParams(1).seed})`);
		const letters = (await dl.of("erp")).slice(lettersBefore);
		assert.equal(letters.length, expectDead);
		for (const l of letters) assert.ok(l.reason.length > 0);
	});

	it("keeps syncing: a valid row afterwards is applied", async () => {
		await fresh();
		await insert([valid({ name: "Changed", updated_at: "2026-03-01 10:00:00+00" })]);
		const summary = await sync();
		assert.equal(summary.tally.applied, 1);
		assert.notEqual((await customerSnapshot(node.broker)).get("fz-erp-victim"), baseline.get("fz-erp-victim"));
	});
});
