// Dropping the Telco sample into a file inbox the way a careful producer does, and waiting for its import report:
// used by `npm run import:telco`, the demo and the Telco import test.
import { createHash } from "node:crypto";
import { copyFile, mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import type { FileReport } from "../models/contract/index.ts";

export const TELCO_CSV = path.resolve(import.meta.dirname, "../ml/data/telco-churn.csv");
export const DROP_NAME = "telco-churn.csv";

/**
 * Copies `csv` into `inbox` the way a careful producer does: under a .part name, then its .sha256 side file, then an
 * atomic rename; the service takes the file as soon as it sees the marker and verifies the checksum.
 */
export async function dropIntoInbox(inbox: string, csv = TELCO_CSV, name = DROP_NAME): Promise<string> {
	await mkdir(inbox, { recursive: true });
	const target = path.join(inbox, name);
	const sha = createHash("sha256").update(await readFile(csv)).digest("hex");
	await copyFile(csv, `${target}.part`);
	await writeFile(`${target}.sha256`, `${sha}  ${name}\n`);
	await rename(`${target}.part`, target);
	return target;
}

/** Waits for the report of a dropped file in processed/ or failed/ (reports are named <stamp>-<name>.report.json). */
export async function waitForReport(inbox: string, name = DROP_NAME, after = 0, timeoutMs = 600_000): Promise<FileReport> {
	const deadline = Date.now() + timeoutMs;
	let lastNote = Date.now();
	for (;;) {
		for (const dir of ["processed", "failed"]) {
			const names = await readdir(path.join(inbox, dir)).catch(() => [] as string[]);
			for (const n of names.filter(x => x.endsWith(`-${name}.report.json`)).sort().reverse()) {
				const report = JSON.parse(await readFile(path.join(inbox, dir, n), "utf8")) as FileReport;
				if (Date.parse(report.startedAt) >= after) return report;
			}
		}
		if (Date.now() > deadline) throw new Error(`no report for ${name} in ${inbox} after ${timeoutMs} ms: is a node with ingest-files running on this inbox? (or use --direct)`);
		if (Date.now() - lastNote > 10_000) {
			lastNote = Date.now();
			const waiting = (await readdir(inbox).catch(() => [] as string[])).includes(name);
			console.log(waiting ? `waiting: ${name} is still in ${inbox} — is a node with ingest-files running on it?` : "importing…");
		}
		await new Promise(resolve => setTimeout(resolve, 250));
	}
}
