// File drops end to end on a real inbox folder: complete-file detection, encodings (GBK, Latin-1), .sha256 checks,
// bank statements, the bad-input corpus (each bad row dead-lettered with its reason, valid rows kept), re-imports.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { appendFile, readdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import iconv from "iconv-lite";
import { startTestNode, type TestNode } from "../support/node.ts";
import { waitFor } from "../harness.ts";
import { recordDeadLetters, servicesWithDeadLetters, type DeadLetterLog } from "./ingest-sources.support.ts";
import type { FileReport } from "../../models/contract/index.ts";

interface View { version: number; profile: Record<string, unknown>; counters: Record<string, number>; risk: { factors: Record<string, number> } }

describe("ingest-files: CSV drops in the inbox", () => {
	let node: TestNode;
	let dl: DeadLetterLog;
	let inbox: string;

	before(async () => {
		node = await startTestNode({ SERVICES: servicesWithDeadLetters("customers,ingest-files"), FILES_SETTLE_MS: "300", FILES_SCAN_INTERVAL_MS: "100" });
		dl = await recordDeadLetters(node.broker);
		inbox = path.join(node.dataDir, "inbox");
	});
	after(async () => {
		await node?.stop();
	});

	const customer = (id: string) => node.broker.call<View, unknown>("customers.get", { customerId: id });
	const exists = async (id: string) => customer(id).then(() => true, () => false);

	/** Writes under a .part name, then renames: the way a producer makes a file appear complete. */
	async function drop(name: string, content: string | Buffer, opts: { sha256?: string } = {}): Promise<void> {
		await writeFile(path.join(inbox, `${name}.part`), content);
		if (opts.sha256 !== undefined) await writeFile(path.join(inbox, `${name}.sha256`), `${opts.sha256}  ${name}\n`);
		await rename(path.join(inbox, `${name}.part`), path.join(inbox, name));
	}

	async function report(name: string): Promise<FileReport & { dir: string }> {
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
		}, { timeoutMs: 15_000, message: `report for ${name}` });
		return found as FileReport & { dir: string };
	}

	it("imports a customer list, keeps a __proto__ column harmless, and a re-drop of the same content has no second effect", async () => {
		const csv = "customerId,name,email,segment,__proto__,first name\n" +
			"f-ann,Ann Lee,ann@example.com,gold,{\"polluted\":true},Ann\n" +
			"f-bob,\"Bob \"\"B\"\" Jones\",bob@example.com,silver,x,Bob\n" +
			"f-cid,\"Cid\nSecond line\",,N/A,y,Cid\n";
		await drop("customers-2026-01.csv", csv);
		const r = await report("customers-2026-01.csv");
		assert.equal(r.status, "processed");
		assert.equal(r.dir, "processed");
		assert.deepEqual(r.rows, { total: 3, applied: 3, duplicate: 0, deadLettered: 0, skipped: 0 });
		assert.deepEqual([...r.ignoredColumns].sort(), ["__proto__", "first name"]);
		assert.equal(({} as Record<string, unknown>).polluted, undefined, "Object.prototype untouched");
		const ann = await customer("f-ann");
		assert.deepEqual(ann.profile, { name: "Ann Lee", email: "ann@example.com", segment: "gold" });
		assert.equal(Object.getPrototypeOf(ann.profile), Object.prototype);
		assert.equal((await customer("f-bob")).profile.name, "Bob \"B\" Jones");
		// Empty and N/A cells are "no value": nothing is stored for them.
		assert.deepEqual((await customer("f-cid")).profile, { name: "Cid\nSecond line" });
		assert.ok(!(await readdir(inbox)).includes("customers-2026-01.csv"), "moved out of the inbox");

		await drop("customers-copy.csv", csv);
		const again = await report("customers-copy.csv");
		assert.equal(again.status, "duplicate");
		assert.match(again.reason ?? "", /imported at .* customers-2026-01\.csv/);
		assert.equal((await customer("f-ann")).version, ann.version, "no second effect");
	});

	it("detects GBK and Latin-1 files and stores the text as UTF-8", async () => {
		const gbk = "customerId,name,city,segment\nf-gbk-1,张三,北京市,企业客户\nf-gbk-2,李四,上海市,个人客户\nf-gbk-3,王五,广州市,重要客户\n";
		await drop("customers-gbk.csv", iconv.encode(gbk, "gbk"));
		const latin = "customerId,name,city\nf-lat-1,José Müller,Zürich\nf-lat-2,François Gérard,Genève\nf-lat-3,Søren Åberg,Malmö\n";
		await drop("customers-latin1.csv", iconv.encode(latin, "latin1"));
		const rg = await report("customers-gbk.csv");
		const rl = await report("customers-latin1.csv");
		assert.equal(rg.encoding, "gb18030", rg.detectedBy);
		assert.equal(rl.encoding, "windows-1252", rl.detectedBy);
		assert.deepEqual((await customer("f-gbk-1")).profile, { name: "张三", city: "北京市", segment: "企业客户" });
		assert.equal((await customer("f-gbk-3")).profile.city, "广州市");
		assert.deepEqual((await customer("f-lat-1")).profile, { name: "José Müller", city: "Zürich" });
		assert.equal((await customer("f-lat-3")).profile.name, "Søren Åberg");
	});

	it("dead-letters each bad row with its reason and keeps every valid one", async () => {
		const long = "x".repeat(600);
		const rows = [
			"customerId,name,email,phone",
			"f-ok-1,Valid One,one@example.com,+49 30 1234567",
			",No Id,noid@example.com,",
			"bad id!,Bad Id,bad@example.com,",
			"f-bad-count,Too,Many,Fields,Here",
			`f-bad-long,${long},long@example.com,`,
			"f-bad-mail,Bad Mail,not-an-email,",
			"f-bad-phone,Bad Phone,,call me maybe",
			"f-ok-2,Valid Two,NULL,",
			"f-bad-quote,\"never closed,x,y"
		];
		const dlBefore = (await dl.of("files")).length;
		await drop("customers-bad.csv", `${rows.join("\n")}\n`);
		const r = await report("customers-bad.csv");
		assert.equal(r.status, "processed", "a file with bad rows is still processed; its bad rows are dead-lettered");
		assert.equal(r.rows.applied, 2);
		assert.equal(r.rows.deadLettered, 7);
		const letters = (await dl.of("files")).slice(dlBefore);
		assert.equal(letters.length, 7);
		const reasons = letters.map(l => l.reason);
		const expected: Array<[string, RegExp]> = [
			["missing id", /missing customer id/],
			["invalid id", /customer id "bad id!" is not valid/],
			["field count", /row has 5 fields, the header has 4/],
			["oversize", /longer than 512 characters/],
			["bad email", /email must be an email address/],
			["bad phone", /phone must be a phone number/],
			["unterminated quote", /ends inside a quoted field/]
		];
		for (const [what, re] of expected) assert.ok(reasons.some(x => re.test(x)), `${what}: ${JSON.stringify(reasons)}`);
		for (const l of letters) {
			assert.equal(l.retryAction, "ingestFiles.retryRow");
			assert.equal((l.payload as { file: string }).file, "customers-bad.csv");
		}
		assert.deepEqual(r.problems.map(p => p.line), [3, 4, 5, 6, 7, 8, 10]);
		assert.deepEqual((await customer("f-ok-1")).profile, { name: "Valid One", email: "one@example.com", phone: "+49 30 1234567" });
		assert.deepEqual((await customer("f-ok-2")).profile, { name: "Valid Two" });
		for (const id of ["f-bad-count", "f-bad-long", "f-bad-mail", "f-bad-phone"]) assert.equal(await exists(id), false, id);

		// The service keeps running: the next file is imported as usual.
		await drop("customers-after-bad.csv", "customerId,name\nf-after,After\n");
		assert.equal((await report("customers-after-bad.csv")).rows.applied, 1);

		// A dead letter can be retried once its cause is gone (here: the retry gets the row as it was: still invalid).
		const mail = letters.find(l => /email/.test(l.reason));
		await assert.rejects(node.broker.call("ingestFiles.retryRow", { payload: mail?.payload }), /still invalid: .*email/);
	});

	it("verifies a .sha256 side file: a match is imported, a mismatch goes to failed/ with nothing applied", async () => {
		const good = "customerId,name\nf-sha-ok,Checked\n";
		await drop("customers-sha-ok.csv", good, { sha256: createHash("sha256").update(good).digest("hex") });
		const ok = await report("customers-sha-ok.csv");
		assert.equal(ok.status, "processed");
		assert.equal((await customer("f-sha-ok")).profile.name, "Checked");
		const moved = await readdir(path.join(inbox, "processed"));
		assert.ok(moved.some(n => n.endsWith("-customers-sha-ok.csv.sha256")), "side file moved along");

		await drop("customers-sha-bad.csv", "customerId,name\nf-sha-bad,Tampered\n", { sha256: "0".repeat(64) });
		const bad = await report("customers-sha-bad.csv");
		assert.equal(bad.status, "failed");
		assert.equal(bad.dir, "failed");
		assert.match(bad.reason ?? "", /checksum mismatch/);
		assert.equal(await exists("f-sha-bad"), false);
	});

	it("takes only complete files: never a .part name, and not a file that is still growing", async () => {
		await writeFile(path.join(inbox, "customers-partial.csv.part"), "customerId,name\nf-part,Partial\n");
		// Written in two steps without a marker: the first sight of a file never imports it, so the scan that follows
		// the first write cannot take the half file; the second write restarts the settle time.
		const growing = path.join(inbox, "customers-growing.csv");
		await writeFile(growing, "customerId,name\nf-grow-1,First\n");
		await node.broker.call("ingestFiles.scan");
		await appendFile(growing, "f-grow-2,Second\n");
		const r = await report("customers-growing.csv");
		assert.equal(r.rows.applied, 2, "both rows: the file was taken only once complete");
		await node.broker.call("ingestFiles.scan");
		assert.ok((await readdir(inbox)).includes("customers-partial.csv.part"), ".part files are left alone");
		assert.equal(await exists("f-part"), false);
		// A .done marker makes a file ready at once.
		await writeFile(path.join(inbox, "customers-marked.csv"), "customerId,name\nf-marked,Marked\n");
		await writeFile(path.join(inbox, "customers-marked.csv.done"), "");
		assert.equal((await report("customers-marked.csv")).rows.applied, 1);
	});

	it("bank statements: failed and returned debits become payment failures, once per payment id across files", async () => {
		const header = "bookingDate,customerId,paymentId,amount,currency,status,reason";
		const first = [header,
			"2026-03-01,f-pay-1,P-100,-49.90,EUR,RETURNED,insufficient funds",
			"2026-03-02,f-pay-1,P-101,19.00,EUR,OK,",
			"2026-03-03,f-pay-2,P-102,abc,EUR,FAILED,",
			"2026-03-04,f-pay-2,P-103,12.50,EUR,failed,card expired"
		].join("\n");
		await drop("bank-statement-2026-03.csv", `${first}\n`);
		const r = await report("bank-statement-2026-03.csv");
		assert.deepEqual(r.rows, { total: 4, applied: 2, duplicate: 0, deadLettered: 1, skipped: 1 });
		assert.match(r.problems[0].reason, /column "amount": "abc" is not a number/);
		const p1 = await customer("f-pay-1");
		assert.equal(p1.counters.failedPayments, 1);
		assert.ok(p1.risk.factors["payment.failed"] > 0);
		// An overlapping statement repeats P-100: the natural key makes it a duplicate, P-104 is new.
		const second = [header, "2026-03-01,f-pay-1,P-100,-49.90,EUR,RETURNED,insufficient funds", "2026-03-05,f-pay-1,P-104,5.00,EUR,REJECTED,"].join("\n");
		await drop("bank-statement-2026-03b.csv", `${second}\n`);
		const r2 = await report("bank-statement-2026-03b.csv");
		assert.equal(r2.rows.duplicate, 1);
		assert.equal(r2.rows.applied, 1);
		assert.equal((await customer("f-pay-1")).counters.failedPayments, 2);
	});

	it("a file no kind matches goes to failed/ with the reason", async () => {
		await drop("inventory.csv", "sku,qty\nA,1\n");
		const r = await report("inventory.csv");
		assert.equal(r.status, "failed");
		assert.match(r.reason ?? "", /no file kind matches/);
	});
});
