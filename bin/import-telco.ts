// `npm run import:telco`: loads ml/data/telco-churn.csv as 7,043 customer profiles through the file-drop ingestion,
// so a demo has real-looking customers whose churn probability the actor computes from their profile.
//   default     drop the file into the inbox of a running node (FILES_INBOX, else DATA_DIR/inbox) and wait for its report
//   --direct    no node running: start one in this process (customers + ingest-files) and import through the same code
//   --file <csv> --inbox <dir> --timeout-ms <n> override the defaults
import path from "node:path";
import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../config/index.ts";
import { ALL_SERVICES, createNode } from "../app/create-node.ts";
import { call, IngestFiles, type FileReport } from "../models/contract/index.ts";
import { dropIntoInbox, DROP_NAME, TELCO_CSV, waitForReport } from "../app/telco-drop.ts";

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
