// Settings of the pull sources: defaults, and every bad value stopping the start with the variable's name.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ConfigError } from "../../../config/env.ts";
import { loadSourcesConfig } from "../../../config/sources.config.ts";

describe("sources config", () => {
	it("defaults: ERP off, inbox under DATA_DIR with the built-in kinds, logs off", () => {
		const c = loadSourcesConfig({ DATA_DIR: "/srv/crm" });
		assert.equal(c.erp.databaseUrl, undefined);
		assert.equal(c.erp.cron, "0 2 * * *");
		assert.equal(c.erp.mapping.id.column, "customer_id");
		assert.equal(c.files.inbox, "/srv/crm/inbox");
		assert.deepEqual(c.files.kinds.map(k => k.name), ["customers", "bank-statements", "telco-customers"]);
		assert.deepEqual(c.logs.sources, []);
		assert.equal(c.concurrency, 32);
	});

	it("reads the ERP mapping inline or from a file, and log sources", () => {
		const dir = mkdtempSync(path.join(tmpdir(), "crm-cfg-"));
		const file = path.join(dir, "erp.json");
		writeFileSync(file, JSON.stringify({ id: { column: "no" }, fields: [{ column: "n", field: "name", type: "string" }] }));
		assert.equal(loadSourcesConfig({ ERP_MAPPING: file }).erp.mapping.fields[0].field, "name");
		assert.equal(loadSourcesConfig({ ERP_MAPPING: "{\"id\":{\"column\":\"x\"},\"passthrough\":true}" }).erp.mapping.id.column, "x");
		const logs = loadSourcesConfig({ LOGS_SOURCES: "nginx:/var/log/nginx/access.log, json:/tmp/app/clicks.jsonl" }).logs.sources;
		assert.deepEqual(logs.map(s => [s.name, s.format]), [["access.log", "nginx"], ["clicks.jsonl", "json"]]);
		assert.equal(loadSourcesConfig({ ERP_CRON: "off" }).erp.cron, null);
		assert.equal(loadSourcesConfig({ FILES_INBOX: "off" }).files.inbox, null);
	});

	const bad: Array<[string, Record<string, string>, RegExp]> = [
		["ERP URL scheme", { ERP_DATABASE_URL: "mysql://x/y" }, /ERP_DATABASE_URL/],
		["table with SQL in it", { ERP_TABLE: "customers; DROP TABLE x" }, /ERP_TABLE must be a plain SQL identifier/],
		["key column", { ERP_KEY_COLUMN: "id\"" }, /ERP_KEY_COLUMN/],
		["query that is not a SELECT", { ERP_QUERY: "DELETE FROM customers" }, /ERP_QUERY must be a SELECT/],
		["two statements", { ERP_QUERY: "SELECT 1; SELECT 2" }, /ERP_QUERY must be one statement/],
		["inline mapping not JSON", { ERP_MAPPING: "{nope" }, /ERP_MAPPING is not valid JSON/],
		["mapping file missing", { ERP_MAPPING: "/nonexistent/map.json" }, /ERP_MAPPING: cannot read/],
		["mapping invalid", { ERP_MAPPING: "{\"id\":{\"column\":\"x\"},\"fields\":[{\"column\":\"a\",\"field\":\"a\",\"type\":\"money\"}]}" }, /ERP_MAPPING: .*type: must be one of/],
		["cron", { ERP_CRON: "every night" }, /ERP_CRON/],
		["cron time zone", { ERP_CRON_TZ: "Mars/Olympus" }, /ERP_CRON/],
		["batch size", { ERP_BATCH_SIZE: "0" }, /ERP_BATCH_SIZE/],
		["log source without format", { LOGS_SOURCES: "/var/log/x.log" }, /LOGS_SOURCES/],
		["log format unknown", { LOGS_SOURCES: "apache:/var/log/x.log" }, /LOGS_SOURCES/],
		["two logs with one name", { LOGS_SOURCES: "json:/a/x.log,json:/b/x.log" }, /distinct names/],
		["customer param", { LOGS_CUSTOMER_PARAM: "c id" }, /LOGS_CUSTOMER_PARAM/],
		["settle time", { FILES_SETTLE_MS: "-1" }, /FILES_SETTLE_MS/],
		["concurrency", { SOURCES_CONCURRENCY: "many" }, /SOURCES_CONCURRENCY/]
	];
	for (const [name, env, re] of bad) {
		it(`rejects ${name}`, () => {
			assert.throws(() => loadSourcesConfig(env), (err: unknown) => err instanceof ConfigError && re.test(err.message));
		});
	}

	it("FILES_KINDS: own kinds come first; payment kinds only map payment fields", () => {
		const dir = mkdtempSync(path.join(tmpdir(), "crm-kinds-"));
		const file = path.join(dir, "kinds.json");
		writeFileSync(file, JSON.stringify({ kinds: [{ name: "crm-export", pattern: "^export-.*\\.csv$", delimiter: ";", encoding: "windows-1252", mapping: { id: { column: "KdNr" }, passthrough: true, decimal: "," } }] }));
		const kinds = loadSourcesConfig({ FILES_KINDS: file }).files.kinds;
		assert.deepEqual(kinds.map(k => k.name), ["crm-export", "customers", "bank-statements", "telco-customers"]);
		assert.equal(kinds[0].pattern.test("EXPORT-2026.csv"), true);
		writeFileSync(file, JSON.stringify({ kinds: [{ name: "pay", pattern: "^p.*", event: "crm.payment.failed", mapping: { id: { column: "c" }, fields: [{ column: "x", field: "creditLimit", type: "number" }] } }] }));
		assert.throws(() => loadSourcesConfig({ FILES_KINDS: file }), /crm\.payment\.failed has no field "creditLimit"/);
		writeFileSync(file, JSON.stringify({ kinds: [{ name: "x", pattern: "(" }] }));
		assert.throws(() => loadSourcesConfig({ FILES_KINDS: file }), /pattern is not a regular expression/);
	});
});
