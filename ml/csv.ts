// A small streaming CSV reader for training data (RFC 4180 quoting, LF or CRLF), hashing the bytes as it reads so the
// artifact can name exactly which file it was trained on.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";

export interface CsvTable {
	header: string[];
	rows: string[][];
	/** sha256 (hex) of the file's bytes. */
	sha256: string;
}

/**
 * Splits CSV text into records. Quoted fields may hold commas, doubled quotes and line breaks; a bare CR before LF is
 * dropped. Returns the complete records and the unfinished tail (to prepend to the next chunk).
 */
export function parseCsvChunk(text: string, final: boolean): { records: string[][]; rest: string } {
	const records: string[][] = [];
	let record: string[] = [];
	let field = "";
	let inQuotes = false;
	let recordStart = 0;
	let i = 0;
	while (i < text.length) {
		const c = text[i];
		if (inQuotes) {
			if (c === "\"") {
				if (text[i + 1] === "\"") {
					field += "\"";
					i += 2;
					continue;
				}
				if (i + 1 === text.length && !final) break;
				inQuotes = false;
			} else {
				field += c;
			}
			i++;
			continue;
		}
		if (c === "\"" && field === "") {
			inQuotes = true;
		} else if (c === ",") {
			record.push(field);
			field = "";
		} else if (c === "\n" || c === "\r") {
			if (c === "\r" && i + 1 === text.length && !final) break;
			record.push(field);
			records.push(record);
			record = [];
			field = "";
			if (c === "\r" && text[i + 1] === "\n") i++;
			recordStart = i + 1;
		} else {
			field += c;
		}
		i++;
	}
	if (final) {
		if (inQuotes) throw new Error("CSV ends inside a quoted field");
		if (field !== "" || record.length > 0) {
			record.push(field);
			records.push(record);
		}
		return { records, rest: "" };
	}
	return { records, rest: text.slice(recordStart) };
}

/** Reads a whole CSV file (header + rows); every row must have as many cells as the header. */
export async function readCsv(path: string): Promise<CsvTable> {
	const hash = createHash("sha256");
	const all: string[][] = [];
	let rest = "";
	const stream = createReadStream(path, { encoding: undefined });
	const decoder = new TextDecoder("utf-8", { fatal: true });
	for await (const chunk of stream as AsyncIterable<Buffer>) {
		hash.update(chunk);
		const parsed = parseCsvChunk(rest + decoder.decode(chunk, { stream: true }), false);
		for (const r of parsed.records) all.push(r);
		rest = parsed.rest;
	}
	for (const r of parseCsvChunk(rest + decoder.decode(), true).records) all.push(r);
	const nonEmpty = all.filter(r => !(r.length === 1 && r[0] === ""));
	if (nonEmpty.length === 0) throw new Error(`${path}: empty CSV (no header row)`);
	const header = nonEmpty[0].map((h, i) => (i === 0 ? h.replace(/^\uFEFF/, "") : h));
	const rows = nonEmpty.slice(1);
	rows.forEach((r, i) => {
		if (r.length !== header.length) {
			throw new Error(`${path}: data row ${i + 1} has ${r.length} cells, the header has ${header.length}`);
		}
	});
	return { header, rows, sha256: hash.digest("hex") };
}
