// The streaming path of file drops on real files: records come out of a decode stream chunk by chunk, the parser holds
// one record at most, memory does not follow the file size, and multi-byte GBK text split across chunks decodes intact.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import iconv from "iconv-lite";
import { csvRecords, probeFile, type CsvStreamStats } from "../../adapters/text-file.reader.ts";
import { isCsvError } from "../../models/csv.parser.ts";

// A full collection before each heap reading, so the reading is live memory and not garbage awaiting the collector.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const liveHeap = () => {
	gc();
	return process.memoryUsage().heapUsed;
};

describe("file drops: the stream path", () => {
	let dir: string;
	before(async () => {
		dir = await mkdtemp(path.join(tmpdir(), "crm-stream-"));
	});
	after(async () => {
		await rm(dir, { recursive: true, force: true });
	});

	it("streams a 24 MB file with one record in memory at a time and a flat heap", async () => {
		const file = path.join(dir, "customers-big.csv");
		const out = createWriteStream(file);
		out.write("customerId,name,email,segment,notes\n");
		const rows = 240_000;
		for (let i = 0; i < rows; i++) {
			if (!out.write(`c-${i},Customer number ${i},c${i}@example.com,${i % 2 ? "gold" : "silver"},"quoted, with comma ${"x".repeat(i % 40)}"\n`)) await once(out, "drain");
		}
		out.end();
		await once(out, "finish");
		const bytes = (await stat(file)).size;
		assert.ok(bytes > 20e6, `${bytes} bytes`);

		const probe = await probeFile(file);
		assert.equal(probe.encoding, "utf-8");
		const stats: CsvStreamStats = { maxBufferedChars: 0, chunks: 0, decodedChars: 0 };
		const heapBefore = liveHeap();
		let heapPeak = heapBefore;
		let count = 0;
		let last = "";
		for await (const item of csvRecords(file, { encoding: probe.encoding, stats })) {
			assert.ok(!isCsvError(item));
			count++;
			last = item.fields[0];
			// A slow consumer now and then: the reader must wait for it, not run ahead and buffer the file.
			if (count % 20_000 === 0) {
				await new Promise(resolve => setImmediate(resolve));
				heapPeak = Math.max(heapPeak, liveHeap());
			}
		}
		assert.equal(count, rows + 1);
		assert.equal(last, `c-${rows - 1}`);
		assert.ok(stats.chunks > 300, `read in ${stats.chunks} chunks, not at once`);
		assert.equal(stats.decodedChars, bytes);
		assert.ok(stats.maxBufferedChars < 200, `parser held at most ${stats.maxBufferedChars} characters`);
		// Holding the file would take > 24 MB of heap; the stream holds a chunk or two.
		assert.ok(heapPeak - heapBefore < 8e6, `heap grew by ${Math.round((heapPeak - heapBefore) / 1e6)} MB for a ${Math.round(bytes / 1e6)} MB file`);
	});

	it("decodes GBK text whose multi-byte characters straddle chunk boundaries", async () => {
		const file = path.join(dir, "customers-gbk-big.csv");
		const names = ["张三", "李四", "王五", "赵六", "钱七"];
		const lines = ["customerId,name,city"];
		for (let i = 0; i < 30_000; i++) lines.push(`g-${i},${names[i % 5]}${i},北京市朝阳区${i % 7}号`);
		await writeFile(file, iconv.encode(`${lines.join("\n")}\n`, "gbk"));
		const probe = await probeFile(file);
		assert.equal(probe.encoding, "gb18030", probe.detectedBy);
		let i = -1;
		const stats: CsvStreamStats = { maxBufferedChars: 0, chunks: 0, decodedChars: 0 };
		for await (const item of csvRecords(file, { encoding: probe.encoding, stats })) {
			assert.ok(!isCsvError(item));
			if (i >= 0) assert.deepEqual(item.fields, [`g-${i}`, `${names[i % 5]}${i}`, `北京市朝阳区${i % 7}号`]);
			i++;
		}
		assert.equal(i, 30_000);
		assert.ok(stats.chunks > 5);
	});
});
