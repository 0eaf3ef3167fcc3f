// The curl examples of docs/streams.md and docs/lineage.md run as written against a started node (its address in
// place of localhost:3000, its key as $API_KEY); each block's output must match the `<!-- expect: … -->` lines below it.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { API_KEY, startTestNode, type TestNode } from "../support/node.ts";

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "../..");
const DOCS = ["docs/streams.md", "docs/lineage.md"];

interface Example { doc: string; script: string; expect: RegExp[] }

/** Every ```sh block of a doc with the expectations that follow it. */
export function examplesOf(doc: string, text: string): Example[] {
	const out: Example[] = [];
	const block = /```sh\n([\s\S]*?)```\n((?:<!-- expect: .* -->\n)*)/g;
	for (const m of text.matchAll(block)) {
		const expect = [...m[2].matchAll(/<!-- expect: (.*) -->/g)].map(e => new RegExp(e[1]));
		out.push({ doc, script: m[1], expect });
	}
	return out;
}

const skip = existsSync("/usr/bin/curl") ? false : "curl is not installed";

describe("curl examples of the streams and lineage docs", { skip }, () => {
	let node: TestNode;
	before(async () => {
		// The examples' event times are fixed: no inactivity decay may step in between them, however old they get.
		node = await startTestNode({ RISK_DECAY_AFTER_MS: String(10 * 365 * 24 * 3600_000) });
	});
	after(async () => {
		await node?.stop();
	});

	it("every block runs and prints what the doc says", async () => {
		let blocks = 0;
		for (const doc of DOCS) {
			const examples = examplesOf(doc, await readFile(path.join(ROOT, doc), "utf8"));
			assert.ok(examples.length >= 1, `${doc} has curl examples`);
			for (const ex of examples) {
				assert.ok(ex.expect.length > 0, `${doc}: every example says what it prints`);
				const script = ex.script.replaceAll("http://localhost:3000", node.baseUrl);
				// curl --max-time ends a stream with exit code 28: that is how the examples stop following.
				const { stdout } = await run("bash", ["-c", `${script}\ntrue`], { env: { ...process.env, API_KEY }, timeout: 20_000 });
				for (const re of ex.expect) assert.match(stdout, re, `${doc}, block ${blocks + 1}:\n${ex.script}\nprinted:\n${stdout}`);
				blocks++;
			}
		}
		assert.ok(blocks >= 4, `ran ${blocks} blocks`);
	});
});
