// The incremental CSV parser: RFC 4180 quoting, line ends, chunk boundaries anywhere, line numbers, oversize records.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CsvParser, isCsvError, type CsvItem } from "../../../models/csv.parser.ts";

function parseAll(text: string, chunkSize = text.length || 1, opts = {}): CsvItem[] {
	const p = new CsvParser(opts);
	const out: CsvItem[] = [];
	for (let i = 0; i < text.length; i += chunkSize) out.push(...p.push(text.slice(i, i + chunkSize)));
	out.push(...p.end());
	return out;
}

const records = (items: CsvItem[]) => items.map(i => (isCsvError(i) ? `ERR@${i.line}: ${i.error}` : i.fields));

describe("CsvParser", () => {
	const table: Array<[string, string, unknown[]]> = [
		["plain rows, LF", "a,b\n1,2\n", [["a", "b"], ["1", "2"]]],
		["CRLF and a last line without a line end", "a,b\r\n1,2", [["a", "b"], ["1", "2"]]],
		["bare CR", "a,b\r1,2\r", [["a", "b"], ["1", "2"]]],
		["quoted delimiter, doubled quote, line break", "\"x,y\",\"say \"\"hi\"\"\",\"l1\nl2\"\n", [["x,y", "say \"hi\"", "l1\nl2"]]],
		["empty fields and an empty quoted field", ",\"\",\n", [["", "", ""]]],
		["blank lines are skipped", "a\n\n\nb\n", [["a"], ["b"]]],
		["a UTF-8 BOM is dropped", "\uFEFFid,name\n1,x\n", [["id", "name"], ["1", "x"]]],
		["a quote inside an unquoted field is kept", "ab\"c,d\n", [["ab\"c", "d"]]],
		["unterminated quote at the end", "a\n\"open,x\n", [["a"], "ERR@2: the file ends inside a quoted field"]]
	];
	for (const [name, text, expected] of table) {
		it(name, () => {
			assert.deepEqual(records(parseAll(text)), expected);
			// Every chunk boundary gives the same records: one character at a time is the hardest split.
			assert.deepEqual(records(parseAll(text, 1)), expected, "char by char");
			assert.deepEqual(records(parseAll(text, 3)), expected, "3-char chunks");
		});
	}

	it("reports the line each record starts on, across quoted line breaks", () => {
		const items = parseAll("h\n\"a\nb\"\nc\n\nd\n", 2);
		assert.deepEqual(items.map(i => i.line), [1, 2, 4, 6]);
	});

	it("uses another delimiter when told", () => {
		assert.deepEqual(records(parseAll("a;b,c\n", 100, { delimiter: ";" })), [["a", "b,c"]]);
	});

	it("reports an oversize record and carries on with the next line", () => {
		const text = `ok,1\n${"x".repeat(50)},2\nnext,3\n`;
		const items = parseAll(text, 7, { maxRecordChars: 20 });
		assert.deepEqual(records(items), [["ok", "1"], "ERR@2: record exceeds 20 characters", ["next", "3"]]);
	});

	it("holds only the unfinished record between chunks", () => {
		const p = new CsvParser();
		p.push("a,b\n1,2\npartial,fie");
		assert.equal(p.bufferedChars, "partial,fie".length);
		p.push("ld\n");
		assert.equal(p.bufferedChars, 0);
	});
});
