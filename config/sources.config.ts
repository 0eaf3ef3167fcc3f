// Settings of the pull sources — ERP database sync, CSV file drops, click-stream logs, the HTTP event feed — read from
// the environment, one section each; mapping files named by the environment are read and validated here too, so a
// bad mapping stops the start with its name.
import { readFileSync } from "node:fs";
import path from "node:path";
import { CronExpressionParser } from "cron-parser";
import { ConfigError, int, oneOf, str, url, type Env } from "./env.ts";
import { parseMapping as parseChurnMapping } from "../ml/features.ts";
import { LOG_FORMATS, type LogFormat } from "../models/access-log.parser.ts";
import { fieldsFromChurnFeatures, parseRowMapping, type RowMapping } from "../models/field-mapping.ts";

/** Event types a file kind can produce, and the payload fields each accepts from a mapping. */
export const FILE_EVENT_FIELDS = {
	"crm.customer.updated": null, // any profile field
	"crm.payment.failed": ["paymentId", "amount", "currency", "reason"]
} as const;
export type FileEventType = keyof typeof FILE_EVENT_FIELDS;

export interface FileKind {
	name: string;
	/** Matched against the file name (not the path). */
	pattern: RegExp;
	event: FileEventType;
	delimiter: string;
	/** An iconv-lite encoding name, or "auto" to detect it. */
	encoding: string;
	mapping: RowMapping;
	/** Only rows whose `column` holds one of `values` (trimmed, case-insensitive) become events; others are skipped. */
	filter?: { column: string; values: string[] };
	/** Event ids from this natural-key column instead of file content + row number (the same payment in two files counts once). */
	eventIdColumn?: string;
}

export interface ErpConfig {
	/** postgres:// URL; undefined = ERP sync off. */
	databaseUrl: string | undefined;
	table: string;
	/** A SELECT used instead of the table (joins, filters); it must return the key and updated_at columns. */
	query: string | undefined;
	keyColumn: string;
	updatedAtColumn: string;
	mapping: RowMapping;
	/** Where the mapping came from, for messages. */
	mappingSource: string;
	/** Cron expression (5 or 6 fields); null = no schedule, sync only on demand. */
	cron: string | null;
	cronTz: string;
	batchSize: number;
}

export interface FilesConfig {
	/** Inbox folder; null = file drops off. */
	inbox: string | null;
	/** A file without a .done/.sha256 marker is taken once its size and mtime have not changed for this long. */
	settleMs: number;
	scanIntervalMs: number;
	kinds: FileKind[];
}

export interface LogSource {
	name: string;
	format: LogFormat;
	path: string;
}

export interface LogsConfig {
	/** Empty = log ingestion off. */
	sources: LogSource[];
	pollMs: number;
	/** An open multi-line entry is closed after the file has been quiet this long. */
	flushMs: number;
	/** Query parameter / cookie naming the customer in nginx lines. */
	customerParam: string;
	/** Where a log file seen for the first time is read from. */
	startAt: "beginning" | "end";
}

export interface FeedConfig {
	/** http(s) URL of a JSON feed of CloudEvents; undefined = the feed source is off. */
	url: string | undefined;
	/** Pause between polls once the feed is caught up. */
	pollMs: number;
	/** Sent as `Authorization: Bearer <token>` when the feed needs one. */
	token: string | undefined;
	/** Timeout of one page request. */
	requestTimeoutMs: number;
}

export interface SourcesConfig {
	/** Rows/lines in flight to the actors per source (order per customer is kept regardless). */
	concurrency: number;
	erp: ErpConfig;
	files: FilesConfig;
	logs: LogsConfig;
	feed: FeedConfig;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const TABLE = /^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/;
const PROJECT_ROOT = path.resolve(import.meta.dirname, "..");
export const TELCO_CHURN_MAPPING = path.join(PROJECT_ROOT, "ml/mappings/telco-churn.mapping.json");

function readJson(file: string, variable: string): unknown {
	let text: string;
	try {
		text = readFileSync(file, "utf8");
	} catch (err) {
		throw new ConfigError(`${variable}: cannot read ${file}: ${(err as Error).message}`);
	}
	try {
		return JSON.parse(text);
	} catch (err) {
		throw new ConfigError(`${variable}: ${file} is not valid JSON: ${(err as Error).message}`);
	}
}

function identifier(env: Env, name: string, def: string, pattern = IDENT): string {
	const v = str(env, name) ?? def;
	if (!pattern.test(v)) throw new ConfigError(`${name} must be a plain SQL identifier (letters, digits, _${pattern === TABLE ? "; optionally schema.table" : ""}), got "${v}"`);
	return v;
}

function rowMapping(json: unknown, variable: string, where: string): RowMapping {
	try {
		return parseRowMapping(json, where);
	} catch (err) {
		throw new ConfigError(`${variable}: ${(err as Error).message}`);
	}
}

function loadErp(env: Env): ErpConfig {
	const databaseUrl = url(env, "ERP_DATABASE_URL", ["postgres", "postgresql"]);
	const table = identifier(env, "ERP_TABLE", "customers", TABLE);
	const keyColumn = identifier(env, "ERP_KEY_COLUMN", "id");
	const updatedAtColumn = identifier(env, "ERP_UPDATED_AT_COLUMN", "updated_at");
	const query = str(env, "ERP_QUERY");
	if (query !== undefined && !/^\s*(select|with)\b/i.test(query)) throw new ConfigError(`ERP_QUERY must be a SELECT (or WITH … SELECT) statement`);
	if (query !== undefined && query.includes(";")) throw new ConfigError("ERP_QUERY must be one statement without ';'");
	const rawMapping = str(env, "ERP_MAPPING");
	let mappingJson: unknown;
	let mappingSource: string;
	if (rawMapping === undefined) {
		mappingJson = { id: { column: "customer_id" }, passthrough: true };
		mappingSource = "(default: customer_id + passthrough)";
	} else if (rawMapping.startsWith("{")) {
		try {
			mappingJson = JSON.parse(rawMapping);
		} catch (err) {
			throw new ConfigError(`ERP_MAPPING is not valid JSON: ${(err as Error).message}`);
		}
		mappingSource = "(inline)";
	} else {
		mappingSource = path.resolve(rawMapping);
		mappingJson = readJson(mappingSource, "ERP_MAPPING");
	}
	const mapping = rowMapping(mappingJson, "ERP_MAPPING", mappingSource);
	const rawCron = str(env, "ERP_CRON") ?? "0 2 * * *";
	const cronTz = str(env, "ERP_CRON_TZ") ?? "UTC";
	let cron: string | null = null;
	if (!/^off$/i.test(rawCron)) {
		try {
			CronExpressionParser.parse(rawCron, { tz: cronTz }).next();
		} catch (err) {
			throw new ConfigError(`ERP_CRON / ERP_CRON_TZ: "${rawCron}" (${cronTz}) is not a valid cron expression: ${(err as Error).message}`);
		}
		cron = rawCron;
	}
	return {
		databaseUrl, table, query, keyColumn, updatedAtColumn, mapping, mappingSource, cron, cronTz,
		batchSize: int(env, "ERP_BATCH_SIZE", 500, 1, 100_000)
	};
}

/** The churn model's mapping as a file kind's fields: the profile field names the model reads, typed as it parses them. */
export function churnKindMapping(file: string, variable: string, overrides: Record<string, unknown> = {}): RowMapping {
	let churn;
	try {
		churn = parseChurnMapping(readJson(file, variable), file);
	} catch (err) {
		if (err instanceof ConfigError) throw err;
		throw new ConfigError(`${variable}: ${(err as Error).message}`);
	}
	const { fields, nullValues } = fieldsFromChurnFeatures(churn.features);
	const idColumn = churn.id;
	if (idColumn === undefined && overrides.id === undefined) throw new ConfigError(`${variable}: ${file} names no id column; give the kind a mapping.id`);
	return rowMapping({ id: { column: idColumn }, ...overrides, fields: fields.map(f => ({ column: f.column, field: f.field, type: f.type, trueValues: f.trueValues, falseValues: f.falseValues })), nullValues }, variable, file);
}

function builtInKinds(): FileKind[] {
	return [
		{
			name: "customers",
			pattern: /^customers?([-_. ].*)?\.csv$/i,
			event: "crm.customer.updated",
			delimiter: ",",
			encoding: "auto",
			mapping: parseRowMapping({ id: { column: "customerId" }, passthrough: true }, "built-in customers")
		},
		{
			name: "bank-statements",
			pattern: /^bank[-_]?statements?([-_. ].*)?\.csv$/i,
			event: "crm.payment.failed",
			delimiter: ",",
			encoding: "auto",
			mapping: parseRowMapping({
				id: { column: "customerId" },
				time: { column: "bookingDate" },
				fields: [
					{ column: "paymentId", field: "paymentId", type: "string", required: true, maxLength: 128 },
					{ column: "amount", field: "amount", type: "number", required: true, absolute: true },
					{ column: "currency", field: "currency", type: "string", maxLength: 3 },
					{ column: "reason", field: "reason", type: "string", maxLength: 256 }
				]
			}, "built-in bank-statements"),
			filter: { column: "status", values: ["failed", "returned", "rejected", "chargeback"] },
			eventIdColumn: "paymentId"
		},
		{
			name: "telco-customers",
			pattern: /^telco([-_. ].*)?\.csv$/i,
			event: "crm.customer.updated",
			delimiter: ",",
			encoding: "auto",
			mapping: churnKindMapping(TELCO_CHURN_MAPPING, "built-in telco-customers")
		}
	];
}

function isObject(v: unknown): v is Record<string, unknown> {
	return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Parses the FILES_KINDS file: `{ "kinds": [ { name, pattern, event, mapping | churnMapping, … } ] }`. */
export function parseFileKinds(json: unknown, file: string): FileKind[] {
	const V = "FILES_KINDS";
	if (!isObject(json) || !Array.isArray(json.kinds)) throw new ConfigError(`${V}: ${file} must be { "kinds": [ … ] }`);
	const names = new Set<string>();
	return json.kinds.map((k: unknown, i: number): FileKind => {
		const at = `${V}: ${file} kinds[${i}]`;
		if (!isObject(k)) throw new ConfigError(`${at} must be an object`);
		for (const key of Object.keys(k)) {
			if (!["name", "pattern", "event", "delimiter", "encoding", "mapping", "churnMapping", "filter", "eventIdColumn"].includes(key)) throw new ConfigError(`${at}: unknown key "${key}"`);
		}
		if (typeof k.name !== "string" || !/^[a-z0-9][a-z0-9-]{0,63}$/.test(k.name)) throw new ConfigError(`${at}.name must be lower-case letters, digits and -`);
		if (names.has(k.name)) throw new ConfigError(`${at}.name "${k.name}" is defined twice`);
		names.add(k.name);
		let pattern: RegExp;
		try {
			pattern = new RegExp(String(k.pattern), "i");
		} catch (err) {
			throw new ConfigError(`${at}.pattern is not a regular expression: ${(err as Error).message}`);
		}
		if (typeof k.pattern !== "string") throw new ConfigError(`${at}.pattern must be a regular expression text`);
		const event = k.event ?? "crm.customer.updated";
		if (typeof event !== "string" || !Object.hasOwn(FILE_EVENT_FIELDS, event)) throw new ConfigError(`${at}.event must be one of ${Object.keys(FILE_EVENT_FIELDS).join(", ")}`);
		const delimiter = k.delimiter ?? ",";
		if (typeof delimiter !== "string" || delimiter.length !== 1 || /["\r\n]/.test(delimiter)) throw new ConfigError(`${at}.delimiter must be one character`);
		const encoding = k.encoding ?? "auto";
		if (typeof encoding !== "string") throw new ConfigError(`${at}.encoding must be an encoding name or "auto"`);
		let mapping: RowMapping;
		if (k.churnMapping !== undefined) {
			if (typeof k.churnMapping !== "string") throw new ConfigError(`${at}.churnMapping must be a path`);
			const overrides = isObject(k.mapping) ? { ...k.mapping } : {};
			delete overrides.fields;
			mapping = churnKindMapping(path.resolve(path.dirname(file), k.churnMapping), `${at}.churnMapping`, overrides);
		} else {
			mapping = rowMapping(k.mapping, V, `${file} kinds[${i}].mapping`);
		}
		const allowed = FILE_EVENT_FIELDS[event as FileEventType];
		if (allowed !== null) {
			if (mapping.passthrough) throw new ConfigError(`${at}: passthrough is only for crm.customer.updated`);
			for (const f of mapping.fields) {
				if (!(allowed as readonly string[]).includes(f.field)) throw new ConfigError(`${at}: ${event} has no field "${f.field}" (fields: ${allowed.join(", ")})`);
			}
		}
		let filter: FileKind["filter"];
		if (k.filter !== undefined) {
			const f = k.filter;
			if (!isObject(f) || typeof f.column !== "string" || !Array.isArray(f.values) || !f.values.every(v => typeof v === "string")) {
				throw new ConfigError(`${at}.filter must be { "column": "…", "values": ["…"] }`);
			}
			filter = { column: f.column, values: (f.values as string[]).map(v => v.trim().toLowerCase()) };
		}
		if (k.eventIdColumn !== undefined && typeof k.eventIdColumn !== "string") throw new ConfigError(`${at}.eventIdColumn must be a column name`);
		return {
			name: k.name, pattern, event: event as FileEventType, delimiter, encoding, mapping,
			...(filter ? { filter } : {}),
			...(typeof k.eventIdColumn === "string" ? { eventIdColumn: k.eventIdColumn } : {})
		};
	});
}

function loadFiles(env: Env): FilesConfig {
	const dataDir = path.resolve(str(env, "DATA_DIR") ?? "./data");
	const rawInbox = str(env, "FILES_INBOX");
	const inbox = rawInbox !== undefined && /^off$/i.test(rawInbox) ? null : path.resolve(rawInbox ?? path.join(dataDir, "inbox"));
	const kindsFile = str(env, "FILES_KINDS");
	const own = kindsFile === undefined ? [] : parseFileKinds(readJson(path.resolve(kindsFile), "FILES_KINDS"), path.resolve(kindsFile));
	const ownNames = new Set(own.map(k => k.name));
	return {
		inbox,
		settleMs: int(env, "FILES_SETTLE_MS", 2000, 0, 3600_000),
		scanIntervalMs: int(env, "FILES_SCAN_INTERVAL_MS", 5000, 10, 3600_000),
		// A file's own kinds come first, so they can take over a built-in name or pattern.
		kinds: [...own, ...builtInKinds().filter(k => !ownNames.has(k.name))]
	};
}

function loadLogs(env: Env): LogsConfig {
	const sources: LogSource[] = [];
	for (const item of (str(env, "LOGS_SOURCES") ?? "").split(",").map(s => s.trim()).filter(Boolean)) {
		const colon = item.indexOf(":");
		const format = colon === -1 ? "" : item.slice(0, colon);
		const file = colon === -1 ? "" : item.slice(colon + 1).trim();
		if (!(LOG_FORMATS as readonly string[]).includes(format) || file === "") {
			throw new ConfigError(`LOGS_SOURCES: "${item}" must be <format>:<path> with format ${LOG_FORMATS.join(" or ")}`);
		}
		const name = path.basename(file);
		if (sources.some(s => s.name === name)) throw new ConfigError(`LOGS_SOURCES: two files are named "${name}"; log files need distinct names`);
		sources.push({ name, format: format as LogFormat, path: path.resolve(file) });
	}
	const customerParam = str(env, "LOGS_CUSTOMER_PARAM") ?? "cid";
	if (!/^[A-Za-z0-9_.-]{1,64}$/.test(customerParam)) throw new ConfigError(`LOGS_CUSTOMER_PARAM must be a query parameter name, got "${customerParam}"`);
	return {
		sources,
		pollMs: int(env, "LOGS_POLL_MS", 1000, 10, 3600_000),
		flushMs: int(env, "LOGS_MULTILINE_FLUSH_MS", 2000, 10, 3600_000),
		customerParam,
		startAt: oneOf(env, "LOGS_START_AT", ["beginning", "end"] as const, "beginning")
	};
}

function loadFeed(env: Env): FeedConfig {
	return {
		url: url(env, "FEED_URL", ["http", "https"]),
		pollMs: int(env, "FEED_POLL_MS", 30_000, 100, 24 * 3600_000),
		token: str(env, "FEED_TOKEN"),
		requestTimeoutMs: int(env, "FEED_REQUEST_TIMEOUT_MS", 10_000, 100, 600_000)
	};
}

export function loadSourcesConfig(env: Env): SourcesConfig {
	return {
		concurrency: int(env, "SOURCES_CONCURRENCY", 32, 1, 10_000),
		erp: loadErp(env),
		files: loadFiles(env),
		logs: loadLogs(env),
		feed: loadFeed(env)
	};
}
