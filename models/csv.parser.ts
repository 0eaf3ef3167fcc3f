// Incremental CSV parser (RFC 4180 quoting; LF, CRLF or CR line ends) for text that arrives in chunks of a stream:
// it holds only the record being read, so a file of any size passes through in bounded memory.

export interface CsvRecord {
	fields: string[];
	/** 1-based line on which the record starts (a quoted field can span lines). */
	line: number;
}

export interface CsvRecordError {
	error: string;
	line: number;
}

export type CsvItem = CsvRecord | CsvRecordError;

export interface CsvParserOptions {
	delimiter?: string;
	/** A record longer than this (characters) is reported as an error and skipped up to the next line end. */
	maxRecordChars?: number;
}

export const DEFAULT_MAX_RECORD_CHARS = 1 << 20;

const FIELD = 0; // inside an unquoted field (or at its start)
const QUOTED = 1; // inside a quoted field
const QUOTE_IN_QUOTED = 2; // saw a quote inside a quoted field: a second one is a literal quote, else the field ends
const SKIP = 3; // discarding an oversize record up to the next line end

export function isCsvError(item: CsvItem): item is CsvRecordError {
	return "error" in item;
}

export class CsvParser {
	private readonly delimiter: string;
	private readonly maxRecordChars: number;
	private state = FIELD;
	private field = "";
	private fieldStarted = false;
	private record: string[] = [];
	private recordChars = 0;
	private line = 1;
	private recordLine = 1;
	private afterCR = false;
	private atStart = true;
	/** Characters pushed before the current chunk, and the offset just past the last line end seen (or skipped). */
	private pushedBefore = 0;
	private lineEndAt = 0;

	constructor(opts: CsvParserOptions = {}) {
		this.delimiter = opts.delimiter ?? ",";
		if (this.delimiter.length !== 1 || this.delimiter === "\"" || this.delimiter === "\n" || this.delimiter === "\r") {
			throw new Error(`CSV delimiter must be one character other than a quote or line end, got ${JSON.stringify(this.delimiter)}`);
		}
		this.maxRecordChars = opts.maxRecordChars ?? DEFAULT_MAX_RECORD_CHARS;
	}

	/** Characters held for the record not yet complete: what the parser keeps in memory between chunks. */
	get bufferedChars(): number {
		return this.recordChars;
	}

	/**
	 * Offset, in all the text pushed so far, where the record not yet complete begins (just past the last line end
	 * outside quotes): the text from here on is what a stateless caller would keep for the next chunk.
	 */
	get pendingFrom(): number {
		return this.lineEndAt;
	}

	/** Parses the next chunk; returns the records completed by it. */
	push(text: string): CsvItem[] {
		const out: CsvItem[] = [];
		let i = 0;
		if (this.atStart && text.length > 0) {
			this.atStart = false;
			if (text.charCodeAt(0) === 0xfeff) i = 1;
		}
		const n = text.length;
		const d = this.delimiter;
		while (i < n) {
			const c = text[i];
			if (this.afterCR) {
				this.afterCR = false;
				if (c === "\n") {
					i++;
					continue;
				}
			}
			switch (this.state) {
				case SKIP: {
					if (c === "\n" || c === "\r") {
						this.line++;
						this.afterCR = c === "\r";
						this.lineEndAt = this.pushedBefore + i + 1;
						this.resetRecord();
						this.state = FIELD;
					}
					i++;
					continue;
				}
				case QUOTED: {
					// Copy up to the next quote in one slice.
					const q = text.indexOf("\"", i);
					const end = q === -1 ? n : q;
					if (end > i) {
						const part = text.slice(i, end);
						this.field += part;
						this.recordChars += part.length;
						this.line += countLineEnds(part);
					}
					i = end;
					if (q !== -1) {
						this.state = QUOTE_IN_QUOTED;
						i++;
					}
					break;
				}
				case QUOTE_IN_QUOTED: {
					if (c === "\"") {
						this.field += "\"";
						this.recordChars++;
						this.state = QUOTED;
						i++;
						break;
					}
					// The quoted part is over; anything other than a delimiter or line end is kept literally (lenient).
					this.state = FIELD;
					continue;
				}
				default: {
					if (c === d) {
						this.endField();
						i++;
					} else if (c === "\n" || c === "\r") {
						this.endRecord(out);
						this.line++;
						this.recordLine = this.line;
						this.afterCR = c === "\r";
						this.lineEndAt = this.pushedBefore + i + 1;
						i++;
					} else if (c === "\"" && !this.fieldStarted) {
						this.fieldStarted = true;
						this.state = QUOTED;
						i++;
					} else {
						let j = i + 1;
						while (j < n) {
							const cj = text[j];
							if (cj === d || cj === "\n" || cj === "\r") break;
							j++;
						}
						const part = text.slice(i, j);
						this.field += part;
						this.fieldStarted = true;
						this.recordChars += part.length;
						i = j;
					}
				}
			}
			if (this.recordChars > this.maxRecordChars && this.state !== SKIP) {
				out.push({ error: `record exceeds ${this.maxRecordChars} characters`, line: this.recordLine });
				this.state = SKIP;
				this.field = "";
				this.record = [];
			}
		}
		this.pushedBefore += n;
		return out;
	}

	/** Ends the input: the last record, if the text did not end with a line break. */
	end(): CsvItem[] {
		const out: CsvItem[] = [];
		if (this.state === QUOTED) {
			out.push({ error: "the file ends inside a quoted field", line: this.recordLine });
			this.resetRecord();
		} else if (this.state !== SKIP) {
			this.endRecord(out);
		}
		this.state = FIELD;
		return out;
	}

	private endField(): void {
		this.record.push(this.field);
		this.field = "";
		this.fieldStarted = false;
		this.state = FIELD;
		this.recordChars++;
	}

	private endRecord(out: CsvItem[]): void {
		const blank = this.record.length === 0 && !this.fieldStarted && this.field === "";
		if (!blank) {
			this.record.push(this.field);
			out.push({ fields: this.record, line: this.recordLine });
		}
		this.resetRecord();
		this.state = FIELD;
	}

	/** Forgets the record; the next one starts on the current line. */
	private resetRecord(): void {
		this.record = [];
		this.field = "";
		this.fieldStarted = false;
		this.recordChars = 0;
		this.recordLine = this.line;
	}
}

function countLineEnds(s: string): number {
	let count = 0;
	for (let i = 0; i < s.length; i++) {
		const c = s.charCodeAt(i);
		if (c === 10) count++;
		else if (c === 13 && s.charCodeAt(i + 1) !== 10) count++;
	}
	return count;
}
