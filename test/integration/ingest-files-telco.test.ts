// The Telco demo import (issue 6): all 7,043 rows of ml/data/telco-churn.csv become customers through the file drop,
// under the profile field names the churn model reads, so each actor's churn probability equals offline scoring.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { startTestNode, type TestNode } from "../support/node.ts";
import { recordDeadLetters, servicesWithDeadLetters } from "./ingest-sources.support.ts";
import { dropIntoInbox, TELCO_CSV, waitForReport } from "../../app/telco-drop.ts";
import { parseMapping, recordFromRow, vectorize } from "../../ml/features.ts";
import { loadChurnModel } from "../../ml/churn-scorer.ts";

const MODEL = "ml/models/churn-telco.json";
const MAPPING = "ml/mappings/telco-churn.mapping.json";

interface View { profile: Record<string, unknown>; churnProbability: number | null; risk: { factors: Record<string, number> } }

describe("Telco import through the file drop", () => {
	let node: TestNode;
	let header: string[];
	let rows: string[][];
	before(async () => {
		node = await startTestNode({ SERVICES: servicesWithDeadLetters("customers,ingest-files"), FILES_SETTLE_MS: "300", FILES_SCAN_INTERVAL_MS: "100", CHURN_MODEL: MODEL });
		await recordDeadLetters(node.broker);
		// The file has no quoted fields (ml/data/README.md), so a split is an exact parse.
		const lines = (await readFile(TELCO_CSV, "utf8")).trim().split("\n");
		header = lines[0].split(",");
		rows = lines.slice(1).map(l => l.split(","));
	});
	after(async () => {
		await node?.stop();
	});

	it("imports 7,043 customers whose churn probability is the model's score of their CSV row", async () => {
		const inbox = path.join(node.dataDir, "inbox");
		await dropIntoInbox(inbox);
		const report = await waitForReport(inbox, "telco-churn.csv", 0, 60_000);
		assert.equal(report.status, "processed", report.reason);
		assert.equal(report.kind, "telco-customers");
		assert.deepEqual(report.rows, { total: 7043, applied: 7043, duplicate: 0, deadLettered: 0, skipped: 0 });

		const mapping = parseMapping(JSON.parse(await readFile(MAPPING, "utf8")), MAPPING);
		const model = loadChurnModel(MODEL);
		const fields = new Set(mapping.features.map(f => f.field));
		const idIndex = header.indexOf("customerID");
		// Every 97th row, plus the tenure-0 rows whose TotalCharges is blank (a missing feature, filled by the model).
		const sample = rows.filter((r, i) => i % 97 === 0 || r[header.indexOf("TotalCharges")] === " ");
		assert.ok(sample.length > 80);
		for (const row of sample) {
			const c = await node.broker.call<View, unknown>("customers.get", { customerId: row[idIndex] });
			for (const key of Object.keys(c.profile)) assert.ok(fields.has(key), `profile field ${key} is one the model reads`);
			const expected = model.predict(vectorize(model.artifact.featureSpec, recordFromRow(mapping, header, row)));
			assert.ok(c.churnProbability !== null, `${row[idIndex]} has a churn probability`);
			assert.ok(Math.abs(c.churnProbability - expected) < 1e-9, `${row[idIndex]}: actor ${c.churnProbability} vs offline ${expected}`);
			assert.ok(c.risk.factors["churn.model"] > 0);
		}
		const first = await node.broker.call<View, unknown>("customers.get", { customerId: "7590-VHVEG" });
		assert.deepEqual({ contract: first.profile.contract, tenureMonths: first.profile.tenureMonths, seniorCitizen: first.profile.seniorCitizen, partner: first.profile.partner },
			{ contract: "Month-to-month", tenureMonths: 1, seniorCitizen: false, partner: true });
	});

	it("npm run import:telco -- --direct imports without a running node", async () => {
		const dir = await mkdtemp(path.join(tmpdir(), "crm-telco-direct-"));
		try {
			const excerpt = path.join(dir, "excerpt.csv");
			await writeFile(excerpt, `${[header, ...rows.slice(0, 25)].map(r => r.join(",")).join("\n")}\n`);
			const { stdout } = await promisify(execFile)(process.execPath, ["bin/import-telco.ts", "--direct", "--file", excerpt], {
				env: { ...process.env, DATA_DIR: path.join(dir, "data"), CHURN_MODEL: MODEL, LOG_LEVEL: "warn", PORT: "0" },
				timeout: 60_000
			});
			assert.match(stdout, /excerpt\.csv: processed/);
			assert.match(stdout, /rows 25: 25 applied/);
		} finally {
			await rm(dir, { recursive: true, force: true });
		}
	});
});
