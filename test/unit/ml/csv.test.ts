// CSV reading: quoting, CRLF, chunk boundaries, ragged rows, and the file hash.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseCsvChunk, readCsv } from "../../../ml/csv.ts";

void test("quoted fields may hold commas, doubled quotes and line breaks", () => {
	const { records } = parseCsvChunk("a,\"b,c\",\"say \"\"hi\"\"\"\r\n\"multi\nline\",,x\n", true);
	assert.deepEqual(records, [["a", "b,c", "say \"hi\""], ["multi\nline", "", "x"]]);
});

void test("a record cut by a chunk boundary is kept for the next chunk, wherever the cut falls", () => {
	const text = "id,name\r\n1,\"a \"\"b\"\"\"\r\n2,plain\r\n";
	for (let cut = 0; cut <= text.length; cut++) {
		const first = parseCsvChunk(text.slice(0, cut), false);
		const second = parseCsvChunk(first.rest + text.slice(cut), true);
		assert.deepEqual([...first.records, ...second.records], [["id", "name"], ["1", "a \"b\""], ["2", "plain"]], `cut at ${cut}`);
	}
});

void test("readCsv returns header, rows and the sha256 of the bytes; ragged rows fail with their number", async () => {
	const dir = mkdtempSync(join(tmpdir(), "csv-test-"));
	try {
		const body = "\uFEFFa,b\n1, \n3,4\n";
		writeFileSync(join(dir, "ok.csv"), body);
		const table = await readCsv(join(dir, "ok.csv"));
		assert.deepEqual(table.header, ["a", "b"]);
		assert.deepEqual(table.rows, [["1", " "], ["3", "4"]]);
		assert.equal(table.sha256, createHash("sha256").update(body).digest("hex"));
		writeFileSync(join(dir, "bad.csv"), "a,b\n1,2\n3\n");
		await assert.rejects(readCsv(join(dir, "bad.csv")), /bad\.csv: data row 2 has 1 cells, the header has 2/);
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
});
