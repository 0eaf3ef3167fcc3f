// Reads dropped text files as streams: one pass hashes the bytes and detects the encoding (BOM, strict UTF-8 check,
// else chardet on samples), a second pass decodes to UTF-8 with iconv-lite and yields CSV records with backpressure.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import chardet from "chardet";
import iconv from "iconv-lite";
import { CsvParser, type CsvItem } from "../models/csv.parser.ts";

export interface FileProbe {
	sha256: string;
	bytes: number;
	/** iconv-lite encoding name. */
	encoding: string;
	/** How the encoding was found: "bom", "utf-8 check", "chardet <name> <confidence>%", "fallback". */
	detectedBy: string;
	/** Bytes of byte-order mark to skip. */
	bomBytes: number;
}

const SAMPLE_BYTES = 64 * 1024;
const UNICODE_FAMILY = /^(utf-?8|ascii|utf-?16|utf-?32)/i;

function bomOf(head: Buffer): { encoding: string; bytes: number } | null {
	if (head.length >= 3 && head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) return { encoding: "utf-8", bytes: 3 };
	if (head.length >= 2 && head[0] === 0xff && head[1] === 0xfe) return { encoding: "utf-16le", bytes: 2 };
	if (head.length >= 2 && head[0] === 0xfe && head[1] === 0xff) return { encoding: "utf-16be", bytes: 2 };
	return null;
}

/**
 * Maps chardet's name to what we decode with: ISO-8859-1 text is decoded as windows-1252 (its superset, which CSV
 * exports actually use: € and typographic quotes), GB2312/GBK as GB18030 (the superset of both).
 */
function decoderName(name: string): string {
	const n = name.toLowerCase();
	if (n === "iso-8859-1") return "windows-1252";
	if (n === "gb2312" || n === "gbk") return "gb18030";
	return n;
}

/** Hashes the file and finds its encoding in one streamed pass; memory stays at two small samples. */
export async function probeFile(file: string, signal?: AbortSignal): Promise<FileProbe> {
	const hash = createHash("sha256");
	const utf8 = new TextDecoder("utf-8", { fatal: true });
	let validUtf8 = true;
	let bytes = 0;
	let head = Buffer.alloc(0);
	let nonUtf8Sample: Buffer | null = null;
	for await (const chunk of createReadStream(file, { signal, highWaterMark: SAMPLE_BYTES })) {
		const buf = chunk as Buffer;
		hash.update(buf);
		bytes += buf.length;
		if (head.length < SAMPLE_BYTES) head = Buffer.concat([head, buf.subarray(0, SAMPLE_BYTES - head.length)]);
		if (validUtf8) {
			try {
				utf8.decode(buf, { stream: true });
			} catch {
				validUtf8 = false;
				// The text around the first invalid byte is what tells the legacy encoding apart, not an ASCII header.
				nonUtf8Sample = buf.subarray(0, SAMPLE_BYTES);
			}
		}
	}
	if (validUtf8) {
		try {
			utf8.decode();
		} catch {
			validUtf8 = false;
			nonUtf8Sample = head;
		}
	}
	const sha256 = hash.digest("hex");
	const bom = bomOf(head);
	if (bom) return { sha256, bytes, encoding: bom.encoding, detectedBy: "bom", bomBytes: bom.bytes };
	if (validUtf8) return { sha256, bytes, encoding: "utf-8", detectedBy: "utf-8 check", bomBytes: 0 };
	const sample = nonUtf8Sample ?? head;
	for (const match of chardet.analyse(sample)) {
		if (UNICODE_FAMILY.test(match.name)) continue;
		const name = decoderName(match.name);
		if (iconv.encodingExists(name)) return { sha256, bytes, encoding: name, detectedBy: `chardet ${match.name} ${match.confidence}%`, bomBytes: 0 };
	}
	return { sha256, bytes, encoding: "windows-1252", detectedBy: "fallback", bomBytes: 0 };
}

export interface CsvStreamStats {
	/** Most characters the parser held for an unfinished record: bounded by the longest record, not the file. */
	maxBufferedChars: number;
	chunks: number;
	decodedChars: number;
}

/**
 * Streams a file's CSV records, decoded to UTF-8. The consumer's pace drives the read: while it awaits, the file
 * stream is paused (async iteration applies backpressure), so a file of any size needs memory for one chunk only.
 */
export async function* csvRecords(
	file: string,
	opts: { encoding: string; skipBytes?: number; delimiter?: string; maxRecordChars?: number; signal?: AbortSignal; stats?: CsvStreamStats }
): AsyncGenerator<CsvItem> {
	const parser = new CsvParser({ delimiter: opts.delimiter, maxRecordChars: opts.maxRecordChars });
	const source = createReadStream(file, { start: opts.skipBytes ?? 0, signal: opts.signal, highWaterMark: SAMPLE_BYTES });
	const decoded = source.pipe(iconv.decodeStream(opts.encoding));
	source.once("error", err => decoded.emit("error", err));
	const stats = opts.stats;
	try {
		for await (const text of decoded as AsyncIterable<string>) {
			if (stats) {
				stats.chunks++;
				stats.decodedChars += text.length;
			}
			const items = parser.push(text);
			if (stats && parser.bufferedChars > stats.maxBufferedChars) stats.maxBufferedChars = parser.bufferedChars;
			yield* items;
		}
		yield* parser.end();
	} finally {
		source.destroy();
	}
}

/** Reads a `<file>.sha256` side file: its first token, lower-cased, or null when it holds no sha-256 hex digest. */
export function parseSha256Text(text: string): string | null {
	const token = text.trim().split(/\s+/)[0]?.toLowerCase() ?? "";
	return /^[0-9a-f]{64}$/.test(token) ? token : null;
}
