// Fuzzing CSV file drops on a real inbox folder: hostile file names (traversal-looking, control characters, very long)
// and hostile contents (truncated quotes, NUL bytes, huge rows and headers, prototype-named columns, non-numbers,
// impossible dates, bad customer ids, bytes that are no text) end with a report that accounts for every row, each bad
// row dead-lettered with its reason, no customer changed, nothing written outside the inbox, no forged log line.
// Beside it, a fast-check property on the row → event step in-process and a random file end to end.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import fc from "fast-check";
import { startTestNode, type TestNode } from "../support/node.ts";
import { waitFor } from "../harness.ts";
import { captureOutput, recordDeadLetters, servicesWithDeadLetters, type DeadLetterLog, type OutputCapture } from "../integration/ingest-sources.support.ts";
import { prepareRow } from "../../edge/file-inbox.engine.ts";
import type { FileReport } from "../../models/contract/index.ts";
import { validateEvent } from "../../models/cloud-event.validator.ts";
import { assertNoCustomerChanged, customerSnapshot, fcParams, seedBanner } from "./fuzz.support.ts";

const VICTIM = "fz-file-victim";
const BANK_HEADER = "bookingDate,customerId,paymentId,amount,currency,status,reason";

describe("fuzz: CSV file drops", () => {
	let node: TestNode;
	let dl: DeadLetterLog;
	let inbox: string;
	let output: OutputCapture;
	let baseline: Map<string, string>;

	/** Drops a complete file (written under .part, renamed, .done marker) and waits for its report. */
	async function drop(name: string, content: string | Buffer): Promise<FileReport & { dir: string }> {
		await writeFile(path.join(inbox, `${name}.part`), content);
		await rename(path.join(inbox, `${name}.part`), path.join(inbox, name));
		await writeFile(path.join(inbox, `${name}.done`), "");
		let found: (FileReport & { dir: string }) | undefined;
		await waitFor(async () => {
			for (const dir of ["processed", "failed"]) {
				const n = (await readdir(path.join(inbox, dir))).find(x => x.endsWith(`-${name}.report.json`));
				if (n) {
					found = { ...(JSON.parse(await readFile(path.join(inbox, dir, n), "utf8")) as FileReport), dir };
					return true;
				}
			}
			return false;
		}, { timeoutMs: 15_000, message: `report for ${JSON.stringify(name)}` });
		const report = found as FileReport & { dir: string };
		const r = report.rows;
		assert.equal(r.applied + r.duplicate + r.deadLettered + r.skipped, r.total, `${JSON.stringify(name)}: every row accounted for`);
		return report;
	}

	before(async () => {
		console.log(seedBanner("test/fuzz/files.fuzz.test.ts"));
		output = captureOutput();
		node = await startTestNode({ SERVICES: servicesWithDeadLetters("customers,api,ingest-files"), ACTOR_STORE: "memory", FILES_SETTLE_MS: "0", FILES_SCAN_INTERVAL_MS: "100", LOG_LEVEL: "info" });
		dl = await recordDeadLetters(node.broker);
		inbox = path.join(node.dataDir, "inbox");
		await waitFor(async () => (await readdir(inbox).catch(() => [] as string[])).includes("processed"), { message: "inbox ready" });
		const seeded = await drop("customers-seed.csv", `customerId,name\n${VICTIM},Victim\n`);
		assert.equal(seeded.rows.applied, 1);
		baseline = await customerSnapshot(node.broker);
	});

	after(async () => {
		output?.stop();
		await node?.stop();
	});

	it("dead-letters each hostile customer row with its reason", async () => {
		const rows: Array<[string, string, RegExp]> = [
			["customer id with path traversal", `../../etc/passwd,x,`, /is not valid/],
			["customer id __proto__", `__proto__,x,`, /is not valid/],
			["customer id with a NUL", `${VICTIM}\u0000,x,`, /is not valid/],
			["no customer id", `,x,`, /missing customer id/],
			["a 600-character name", `${VICTIM},${"n".repeat(600)},`, /longer than 512/],
			["an invalid e-mail", `${VICTIM},x,not-an-email`, /email must be/],
			["too many fields", `${VICTIM},x,a@b.de,d,e`, /fields, the header has/],
			["an unterminated quote at the end", `${VICTIM},"never closed`, /quoted field/]
		];
		const lettersBefore = (await dl.of("files")).length;
		const r = await drop("customers-hostile.csv", `customerId,name,email\n${rows.map(([, l]) => l).join("\n")}\n`);
		assert.equal(r.status, "processed");
		assert.deepEqual({ total: r.rows.total, deadLettered: r.rows.deadLettered, applied: r.rows.applied }, { total: rows.length, deadLettered: rows.length, applied: 0 });
		const reasons = (await dl.of("files")).slice(lettersBefore).map(l => l.reason);
		assert.equal(reasons.length, rows.length);
		for (const [name, , reason] of rows) assert.ok(reasons.some(x => reason.test(x)), `${name}: ${reason} in ${JSON.stringify(reasons)}`);
		await assertNoCustomerChanged(node.broker, baseline, "hostile customer rows");
	});

	it("dead-letters bank statement rows with non-numbers and impossible dates", async () => {
		const row = (date: string, amount: string, id: string) => `${date},${VICTIM},${id},${amount},EUR,FAILED,`;
		const rows: Array<[string, string, RegExp]> = [
			["amount NaN (a null value)", row("2026-03-01", "NaN", "P-NAN"), /missing required value in column "amount"/],
			["amount Infinity", row("2026-03-01", "Infinity", "P-INF"), /"amount".*not a number/],
			["amount 1e999", row("2026-03-01", "1e999", "P-E999"), /"amount".*not a number/],
			["amount in hex", row("2026-03-01", "0x10", "P-HEX"), /"amount".*not a number/],
			["booked 31 February", row("2026-02-31", "5", "P-FEB"), /bookingDate.*not a date-time/],
			["booked in year 0001", row("0001-01-01", "5", "P-0001"), /bookingDate.*not a date-time/],
			["booked before 1970", row("1969-12-31", "5", "P-1969"), /before 1970/],
			["booked in 2999", row("2999-01-01", "5", "P-2999"), /future/],
			["a 200-character payment id", row("2026-03-01", "5", "P".repeat(200)), /paymentId.*longer than 128/]
		];
		const lettersBefore = (await dl.of("files")).length;
		const r = await drop("bank-statement-hostile.csv", `${BANK_HEADER}\n${rows.map(([, l]) => l).join("\n")}\n`);
		assert.equal(r.rows.deadLettered, rows.length, JSON.stringify(r.problems));
		const reasons = (await dl.of("files")).slice(lettersBefore).map(l => l.reason);
		for (const [name, , reason] of rows) assert.ok(reasons.some(x => reason.test(x)), `${name}: ${reason} in ${JSON.stringify(reasons)}`);
		await assertNoCustomerChanged(node.broker, baseline, "hostile bank rows");
	});

	it("a payment id seen before with a different amount is a duplicate: nothing changes", async () => {
		const first = await drop("bank-statement-dup-1.csv", `${BANK_HEADER}\n2026-03-02,fz-file-dup,P-DUP,10.00,EUR,FAILED,\n`);
		assert.equal(first.rows.applied, 1);
		const before = await customerSnapshot(node.broker);
		const again = await drop("bank-statement-dup-2.csv", `${BANK_HEADER}\n2026-03-03,fz-file-dup,P-DUP,99999.00,EUR,RETURNED,other\n`);
		assert.deepEqual({ applied: again.rows.applied, duplicate: again.rows.duplicate }, { applied: 0, duplicate: 1 });
		await assertNoCustomerChanged(node.broker, before, "duplicate payment id");
		baseline = before;
	});

	it("whole-file problems fail the file with a reason and apply nothing", async () => {
		const cases: Array<[string, string | Buffer, RegExp]> = [
			["customers-empty.csv", "", /empty/],
			["customers-dup-header.csv", `customerId,name,name\n${VICTIM},a,b\n`, /twice/],
			["customers-no-id-column.csv", `name,email\nx,a@b.de\n`, /lacks column/],
			["customers-utf16-garbage.csv", Buffer.from([0xff, 0xfe, 0x00, 0xd8, 0x41, 0x00]), /./],
			["no-kind-matches.csv", `customerId,name\n${VICTIM},x\n`, /no file kind/]
		];
		for (const [name, content, reason] of cases) {
			const r = await drop(name, content);
			assert.ok(r.status === "failed" || r.rows.applied === 0, `${name}: ${r.status}`);
			if (r.status === "failed") assert.match(r.reason ?? "", reason, name);
		}
		await assertNoCustomerChanged(node.broker, baseline, "failed files");
	});

	it("prototype-named and unusable columns are ignored; huge headers and rows are dead-lettered, not applied in part", async () => {
		const lettersBefore = (await dl.of("files")).length;
		const proto = await drop("customers-proto.csv", `customerId,__proto__,constructor,prototype,first name,tier\nfz-file-proto,{"polluted":true},x,y,z,gold\n`);
		assert.equal(proto.rows.applied, 1);
		assert.deepEqual([...proto.ignoredColumns].sort(), ["__proto__", "constructor", "first name", "prototype"]);
		const c = await node.broker.call<{ profile: Record<string, unknown> }, unknown>("customers.get", { customerId: "fz-file-proto" });
		assert.deepEqual(c.profile, { tier: "gold" });
		assert.equal(({} as Record<string, unknown>).polluted, undefined);
		baseline = await customerSnapshot(node.broker);
		// 100 passthrough columns: more fields than a profile update may carry.
		const wide = Array.from({ length: 100 }, (_, i) => `c${i}`);
		const r = await drop("customers-wide.csv", `customerId,${wide.join(",")}\n${VICTIM},${wide.map(() => "v").join(",")}\n`);
		assert.equal(r.rows.deadLettered, 1);
		assert.match((await dl.of("files")).slice(lettersBefore).map(l => l.reason).join(" "), /1\.\.64 fields/);
		const huge = await drop("customers-huge-row.csv", `customerId,name\n${VICTIM},"${"h".repeat(2_000_000)}"\n`);
		assert.equal(huge.rows.applied, 0);
		await assertNoCustomerChanged(node.broker, baseline, "columns");
	});

	it("hostile file names: imported as data, moved inside the inbox, and no forged log line", async () => {
		const names = [
			"customers-..%2F..%2Fetc%2Fpasswd.csv",
			"customers-...csv",
			"customers-x\n[forged] ERROR injected line.csv",
			"customers-x\r[forged] ERROR carriage.csv",
			"customers-\u202egnp.csv",
			"customers-$(touch pwned).csv",
			`customers-${"l".repeat(200)}.csv`
		];
		for (const [i, name] of names.entries()) {
			const r = await drop(name, `customerId,name\nfz-file-name-${i},Named\n`);
			// A name whose kind pattern cannot match (a line break) fails with that reason; the others import.
			if (/[\r\n]/.test(name)) assert.match(r.reason ?? "", /no file kind matches/, JSON.stringify(name));
			else assert.equal(r.rows.applied, 1, JSON.stringify(name));
			const moved = path.resolve(inbox, r.movedTo ?? "");
			assert.ok(moved.startsWith(path.join(inbox, r.dir) + path.sep), `${JSON.stringify(name)} moved to ${moved}`);
		}
		const logged = output.text();
		assert.ok(logged.length > 0);
		assert.ok(!logged.split(/\r?\n|\r/).some(line => line.startsWith("[forged]")), "a file name forged a log line");
		assert.ok(!(await readdir(path.dirname(inbox))).some(n => n.includes("pwned") || n === "etc"), "nothing written outside the inbox");
		baseline = await customerSnapshot(node.broker);
	});

	it("property (in-process): the row → event step never throws and lets through only valid events", () => {
		const kinds = (node.config.sources.files.kinds);
		const cell = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom("", "NULL", "NaN", "Infinity", "1e999", "-5", "2026-02-30", "1969-12-31", "2999-01-01", "__proto__", "../x", "a@b.de", VICTIM));
		const header = fc.uniqueArray(fc.oneof(fc.constantFrom("customerId", "name", "email", "phone", "bookingDate", "paymentId", "amount", "currency", "status", "reason", "__proto__", "constructor"), fc.string({ maxLength: 8 })), { minLength: 1, maxLength: 8 });
		fc.assert(fc.property(fc.constantFrom(...kinds), header.chain(h => fc.tuple(fc.constant(h), fc.array(cell, { minLength: h.length, maxLength: h.length }))), (kind, [h, fields]) => {
			const prepared = prepareRow(kind, { kind: kind.name, file: "f.csv", sha256: "0".repeat(64), row: 1, line: 2, time: "2026-03-01T00:00:00.000Z", header: h, fields });
			if (prepared.kind === "event") assert.ok(validateEvent(prepared.event).ok, JSON.stringify(prepared.event));
			else assert.ok(prepared.reason.length > 0);
		}), fcParams(1500));
	});

	it("property: a random CSV file is imported with every row accounted for, each refused row dead-lettered", async () => {
		const cell = fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom("\"", "\"\"", ",", "\n", "\r\n", "NaN", "a@b.de", "__proto__", VICTIM, "fz-file-rand"));
		const rows = fc.sample(fc.array(cell, { minLength: 1, maxLength: 4 }), { ...fcParams(1), numRuns: fcParams(80).numRuns });
		// Quoted where CSV needs it, and empty cells always (a line of one empty cell would be a blank line, no record).
		const quote = (c: string) => c === "" || /[",\r\n]/.test(c) || c !== c.trim() ? `"${c.replace(/"/g, "\"\"")}"` : c;
		const content = `customerId,name,email,tier\n${rows.map(r => r.map(quote).join(",")).join("\n")}\n`;
		const lettersBefore = (await dl.of("files")).length;
		const r = await drop("customers-random.csv", content);
		assert.equal(r.status, "processed", r.reason);
		assert.equal(r.rows.total, rows.length, "one row per record written");
		assert.equal((await dl.of("files")).length - lettersBefore, r.rows.deadLettered, "every refused row has its dead letter");
		assert.ok(r.rows.deadLettered > 0, "some rows were refused");
	});

	it("keeps importing: /health/ready, and a valid file is applied", async () => {
		assert.equal((await fetch(`${node.baseUrl}/health/ready`)).status, 200);
		const r = await drop("customers-final.csv", `customerId,name\n${VICTIM},Renamed\n`);
		assert.equal(r.rows.applied, 1);
		assert.notEqual((await customerSnapshot(node.broker)).get(VICTIM), baseline.get(VICTIM));
	});
});
