// Reading a training CSV file (header + rows) with the one CSV parser (models/csv.parser.ts: RFC 4180 quoting, LF,
// CRLF or CR), hashing the bytes as it reads so the artifact can name exactly which file it was trained on.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { CsvParser, isCsvError, type CsvItem } from "../models/csv.parser.ts";

export interface CsvTable {
	header: string[];
	rows: string[][];
	/** sha256 (hex) of the file's bytes. */
	sha256: string;
}

function recordsOf(items: CsvItem[], where: string): string[][] {
	return items.map(item => {
		if (isCsvError(item)) throw new Error(`${where}: line ${item.line}: ${item.error}`);
		return item.fields;
	});
}

/**
 * Splits CSV text into records, statelessly: returns the complete records and the unfinished tail (to prepend to the
 * next chunk). Quoted fields may hold commas, doubled quotes and line breaks; blank lines are not records.
 */
export function parseCsvChunk(text: string, final: boolean): { records: string[][]; rest: string } {
	const parser = new CsvParser();
	const items = parser.push(text);
	if (!final) return { records: recordsOf(items, "CSV"), rest: text.slice(parser.pendingFrom) };
	const last = parser.end();
	if (last.some(isCsvError)) throw new Error("CSV ends inside a quoted field");
	return { records: recordsOf([...items, ...last], "CSV"), rest: "" };
}

/** Reads a whole CSV file (header + rows); every row must have as many cells as the header. */
export async function readCsv(path: string): Promise<CsvTable> {
	const hash = createHash("sha256");
	const parser = new CsvParser();
	const decoder = new TextDecoder("utf-8", { fatal: true });
	const all: string[][] = [];
	for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
		hash.update(chunk);
		for (const r of recordsOf(parser.push(decoder.decode(chunk, { stream: true })), path)) all.push(r);
	}
	for (const r of recordsOf([...parser.push(decoder.decode()), ...parser.end()], path)) all.push(r);
	if (all.length === 0) throw new Error(`${path}: empty CSV (no header row)`);
	const [header, ...rows] = all;
	rows.forEach((r, i) => {
		if (r.length !== header.length) {
			throw new Error(`${path}: data row ${i + 1} has ${r.length} cells, the header has ${header.length}`);
		}
	});
	return { header, rows, sha256: hash.digest("hex") };
}
