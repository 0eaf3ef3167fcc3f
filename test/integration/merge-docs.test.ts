// docs/merge.md runs as written: every curl command of its sh blocks is run (bash, curl) against a started node with
// the docs' settings (no API key), in order, and each answer must hold the fields of the `# {...}` comment under it.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { startTestNode, type TestNode } from "../support/node.ts";

const run = promisify(execFile);
const DOC = path.resolve(import.meta.dirname, "../../docs/merge.md");

interface Step { command: string; expected: unknown }

/** The curl commands of the sh blocks with the JSON comment that follows each (null when none). */
export function curlSteps(markdown: string): Step[] {
	const steps: Step[] = [];
	for (const block of markdown.matchAll(/```sh\n([\s\S]*?)```/g)) {
		let current: string[] | null = null;
		const close = (expected: unknown) => {
			if (current !== null) steps.push({ command: current.join("\n"), expected });
			current = null;
		};
		for (const line of block[1].split("\n")) {
			if (line.startsWith("curl ")) {
				close(null);
				current = [line];
			} else if (line.startsWith("# ")) {
				close(JSON.parse(line.slice(2)));
			} else if (current !== null && line.length > 0) {
				current.push(line);
			}
		}
		close(null);
	}
	return steps;
}

/** `expected` is a part of `actual`: every field it names has that value; arrays match item by item. */
function assertHolds(actual: unknown, expected: unknown, where: string): void {
	if (Array.isArray(expected)) {
		assert.ok(Array.isArray(actual), `${where}: an array`);
		assert.equal(actual.length, expected.length, `${where}: length`);
		expected.forEach((e, i) => assertHolds(actual[i], e, `${where}[${i}]`));
	} else if (expected !== null && typeof expected === "object") {
		assert.ok(actual !== null && typeof actual === "object", `${where}: an object`);
		for (const [k, v] of Object.entries(expected)) assertHolds((actual as Record<string, unknown>)[k], v, `${where}.${k}`);
	} else {
		assert.deepEqual(actual, expected, where);
	}
}

describe("docs/merge.md runs as written", () => {
	let node: TestNode;

	before(async () => {
		// As `npm start` without API_KEYS; decay far off, so the docs' fixed event times stay undecayed whenever this runs.
		node = await startTestNode({ API_KEYS: "", ACTOR_STORE: "memory", RISK_DECAY_AFTER_MS: String(5 * 365 * 24 * 3600_000) });
	});

	after(async () => {
		await node?.stop();
	});

	it("every curl block answers what the page says", async () => {
		const steps = curlSteps(await readFile(DOC, "utf8"));
		assert.ok(steps.filter(s => s.expected !== null).length >= 8, "the page has its examples");
		const host = new URL(node.baseUrl).host;
		for (const step of steps) {
			const command = step.command.replaceAll("localhost:3000", host);
			const { stdout } = await run("bash", ["-c", command], { timeout: 20_000 });
			if (step.expected === null) continue;
			assertHolds(JSON.parse(stdout), step.expected, step.command.split("\n")[0]);
		}
	});
});
