// `npm run import:telco`: loads ml/data/telco-churn.csv as 7,043 customer profiles through the file-drop ingestion,
// so a demo has real-looking customers whose churn probability the actor computes from their profile.
//   default     drop the file into the inbox of a running node (FILES_INBOX, else DATA_DIR/inbox) and wait for its report
//   --direct    no node running: start one in this process (customers + ingest-files) and import through the same code
//   --file <csv> --inbox <dir> --timeout-ms <n> override the defaults
import { createHash } from "node:crypto";
import { copyFile, mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../config/index.ts";
import { ALL_SERVICES, createNode } from "./create-node.ts";
import { call, IngestFiles, type FileReport } from "../models/contract/index.ts";

export const TELCO_CSV = path.resolve(import.meta.dirname, "../ml/data/telco-churn.csv");
const DROP_NAME = "telco-churn.csv";

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

function printReport(report: FileReport): void {
	const r = report.rows;
	console.log(`${report.file}: ${report.status}${report.reason ? ` (${report.reason})` : ""}`);
	console.log(`rows ${r.total}: ${r.applied} applied, ${r.duplicate} duplicate, ${r.deadLettered} dead-lettered, ${r.skipped} skipped`);
	if (report.movedTo) console.log(`report: ${report.movedTo}.report.json in the inbox`);
}

async function main(): Promise<void> {
	const { values } = parseArgs({
		options: { direct: { type: "boolean" }, file: { type: "string" }, inbox: { type: "string" }, "timeout-ms": { type: "string" } }
	});
	const csv = path.resolve(values.file ?? TELCO_CSV);
	if (values.direct) {
		const services = ["customers", "ingest-files", ...ALL_SERVICES.filter(s => /dead-?letters/i.test(s))];
		const config = loadConfig({ ...process.env, SERVICES: services.join(","), ...(values.inbox ? { FILES_INBOX: values.inbox } : {}) });
		const broker = await createNode(config);
		await broker.start();
		try {
			const report = await call(broker, IngestFiles.importFile, { path: csv, kind: "telco-customers" }, { timeout: 0 });
			printReport(report);
			if (report.status === "failed") process.exitCode = 1;
		} finally {
			await broker.stop();
		}
		return;
	}
	const config = loadConfig();
	const inbox = path.resolve(values.inbox ?? config.sources.files.inbox ?? path.join(config.dataDir, "inbox"));
	const started = Date.now();
	await dropIntoInbox(inbox, csv);
	console.log(`dropped ${csv} into ${inbox}; waiting for the node to import it…`);
	const report = await waitForReport(inbox, DROP_NAME, started - 1000, values["timeout-ms"] ? Number(values["timeout-ms"]) : 600_000);
	printReport(report);
	if (report.status === "failed") process.exitCode = 1;
}

if (import.meta.main) {
	main().catch(err => {
		console.error(err instanceof ConfigError ? `configuration error: ${err.message}` : err instanceof Error ? err.message : err);
		process.exit(1);
	});
}
