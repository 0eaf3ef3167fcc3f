// Field mappings: validation of the mapping JSON, type coercion (numbers, booleans, dates, NULL → clear), customer id
// rules, passthrough columns, and the Telco kind derived from the churn model's own mapping.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
	CoercionError, coerceValue, fieldsFromChurnFeatures, mapRow, parseDateTimeText, parseRowMapping, type FieldRule, type FieldType
} from "../../../models/field-mapping.ts";
import { parseMapping } from "../../../ml/features.ts";

const mapping = parseRowMapping({
	id: { column: "cust_no", prefix: "erp-" },
	fields: [
		{ column: "name", field: "name", type: "string" },
		{ column: "limit", field: "creditLimit", type: "number" },
		{ column: "vip", field: "vip", type: "boolean" },
		{ column: "since", field: "customerSince", type: "date" }
	]
}, "test");

function rule(type: FieldType, extra: Partial<FieldRule> = {}): FieldRule {
	return { column: "c", field: "f", type, required: false, trueValues: ["true", "yes", "1"], falseValues: ["false", "no", "0"], maxLength: 10, absolute: false, ...extra };
}

describe("coerceValue", () => {
	const table: Array<[string, FieldRule, unknown, unknown]> = [
		["string is trimmed", rule("string"), "  Ann  ", "Ann"],
		["number to string", rule("string"), 42, "42"],
		["NULL text clears", rule("string"), "NULL", null],
		["N/A clears", rule("number"), " N/A ", null],
		["empty clears", rule("boolean"), "", null],
		["SQL NULL clears", rule("date"), null, null],
		["too long string fails", rule("string"), "x".repeat(11), CoercionError],
		["number text", rule("number"), " 1234.5 ", 1234.5],
		["numeric from pg as text", rule("number"), "-0.25", -0.25],
		["bigint", rule("number"), 12n, 12],
		["not a number", rule("number"), "12abc", CoercionError],
		["Infinity is not a number", rule("number"), Infinity, CoercionError],
		["integer", rule("integer"), "7", 7],
		["integer rejects fractions", rule("integer"), "7.5", CoercionError],
		["absolute", rule("number", { absolute: true }), "-49.90", 49.9],
		["boolean yes", rule("boolean"), "YES", true],
		["boolean 0", rule("boolean"), "0", false],
		["boolean from pg", rule("boolean"), false, false],
		["boolean unknown word", rule("boolean"), "maybe", CoercionError],
		["ISO date", rule("date"), "2026-02-28", "2026-02-28"],
		["dotted date", rule("date"), "31.12.2025", "2025-12-31"],
		["impossible date", rule("date"), "2026-02-30", CoercionError],
		["date from Date", rule("date"), new Date(Date.UTC(2026, 0, 2, 23)), "2026-01-02"],
		["datetime with offset", rule("datetime"), "2026-01-01 10:00:00+02", "2026-01-01T08:00:00.000Z"],
		["datetime with micros from pg", rule("datetime"), "2026-01-01 00:00:00.123456+00", "2026-01-01T00:00:00.123Z"],
		["garbage datetime", rule("datetime"), "yesterday", CoercionError]
	];
	for (const [name, r, input, expected] of table) {
		it(name, () => {
			const got = coerceValue(input, r, { nullValues: ["", "NULL", "N/A"], decimal: "." });
			if (expected === CoercionError) {
				assert.ok(got instanceof CoercionError, `expected a failure, got ${String(got)}`);
				assert.match(got.reason, /column "c"/);
			} else assert.deepEqual(got, expected);
		});
	}

	it("reads decimal commas with thousands groups when told", () => {
		assert.equal(coerceValue("1.234,56", rule("number"), { nullValues: [], decimal: "," }), 1234.56);
		assert.equal(coerceValue("-12,5", rule("number"), { nullValues: [], decimal: "," }), -12.5);
	});
});

describe("mapRow", () => {
	const row = (entries: Record<string, unknown>) => new Map(Object.entries(entries));

	it("maps a row to a prefixed customer id and typed fields", () => {
		const r = mapRow(mapping, row({ cust_no: 17, name: " Ann ", limit: "5000", vip: "yes", since: "2020-05-01", other: "x" }));
		assert.deepEqual(r, { ok: true, customerId: "erp-17", values: { name: "Ann", creditLimit: 5000, vip: true, customerSince: "2020-05-01" }, ignoredColumns: [] });
	});

	it("a NULL value clears the field (null), a column absent from the source leaves it alone", () => {
		const r = mapRow(mapping, row({ cust_no: "A1", name: null, limit: "NULL" }));
		assert.ok(r.ok);
		assert.deepEqual(r.values, { name: null, creditLimit: null });
	});

	const failures: Array<[string, Record<string, unknown>, RegExp]> = [
		["missing id", { cust_no: null, name: "x" }, /missing customer id/],
		["blank id", { cust_no: "  ", name: "x" }, /missing customer id/],
		["id with spaces", { cust_no: "a b", name: "x" }, /customer id "erp-a b" is not valid/],
		["id of the wrong type", { cust_no: { x: 1 }, name: "x" }, /not a text or number/],
		["wrong type", { cust_no: 1, limit: "lots" }, /column "limit": "lots" is not a number/],
		["oversize", { cust_no: 1, name: "y".repeat(600) }, /longer than 512 characters/]
	];
	for (const [name, input, reason] of failures) {
		it(`fails: ${name}`, () => {
			const r = mapRow(mapping, row(input));
			assert.equal(r.ok, false);
			assert.match((r as { reason: string }).reason, reason);
		});
	}

	it("passthrough keeps valid column names and ignores __proto__ and names that cannot be fields", () => {
		const m = parseRowMapping({ id: { column: "id" }, passthrough: true }, "t");
		const r = mapRow(m, new Map<string, unknown>([["id", "c1"], ["__proto__", "{\"admin\":true}"], ["first name", "A"], ["city", " Oslo "], ["updated_at", "x"]]), { exclude: new Set(["updated_at"]) });
		assert.ok(r.ok);
		assert.deepEqual(r.values, { city: "Oslo" });
		assert.deepEqual(r.ignoredColumns, ["__proto__", "first name"]);
		assert.equal(Object.getPrototypeOf(r.values), Object.prototype);
		assert.equal(({} as Record<string, unknown>).admin, undefined);
	});

	it("a time column gives the event time; a missing one fails the row", () => {
		const m = parseRowMapping({ id: { column: "id" }, time: { column: "t" }, passthrough: true }, "t");
		const ok = mapRow(m, row({ id: "c", t: "2026-03-01", x: "1" }));
		assert.ok(ok.ok);
		assert.equal(ok.timeMs, Date.UTC(2026, 2, 1));
		const bad = mapRow(m, row({ id: "c", t: "", x: "1" }));
		assert.match((bad as { reason: string }).reason, /missing change time/);
	});
});

describe("parseRowMapping", () => {
	const bad: Array<[string, unknown, RegExp]> = [
		["not an object", [], /must be a JSON object/],
		["no id", { fields: [{ column: "a", field: "a", type: "string" }] }, /id: must be/],
		["unknown type", { id: { column: "i" }, fields: [{ column: "a", field: "a", type: "money" }] }, /type: must be one of/],
		["forbidden field name", { id: { column: "i" }, fields: [{ column: "a", field: "__proto__", type: "string" }] }, /field: must be a field name/],
		["field twice", { id: { column: "i" }, fields: [{ column: "a", field: "x", type: "string" }, { column: "b", field: "x", type: "string" }] }, /mapped twice/],
		["maps nothing", { id: { column: "i" } }, /maps nothing/],
		["typo in a key", { id: { column: "i" }, passthru: true }, /unknown key "passthru"/]
	];
	for (const [name, json, reason] of bad) {
		it(`rejects: ${name}`, () => assert.throws(() => parseRowMapping(json, "m.json"), reason));
	}
});

describe("fields from the churn model's mapping", () => {
	it("stores every Telco feature column under the field the model reads, typed as it parses it", () => {
		const churn = parseMapping(JSON.parse(readFileSync("ml/mappings/telco-churn.mapping.json", "utf8")), "telco");
		const { fields, nullValues } = fieldsFromChurnFeatures(churn.features);
		assert.deepEqual(fields.map(f => f.field), churn.features.map(f => f.field));
		const byField = new Map(fields.map(f => [f.field, f]));
		assert.equal(byField.get("tenureMonths")?.type, "number");
		assert.equal(byField.get("seniorCitizen")?.type, "boolean");
		assert.deepEqual(byField.get("seniorCitizen")?.trueValues, ["1"]);
		assert.equal(byField.get("contract")?.type, "string");
		// TotalCharges " " (not billed yet) is declared missing by the model: it clears the field instead of failing.
		assert.ok(nullValues.includes(""));
		const m = parseRowMapping({ id: { column: "customerID" }, fields: fields.map(f => ({ column: f.column, field: f.field, type: f.type, trueValues: f.trueValues, falseValues: f.falseValues })), nullValues }, "t");
		const r = mapRow(m, new Map([["customerID", "0001-A"], ["SeniorCitizen", "1"], ["TotalCharges", " "], ["tenure", "0"]]));
		assert.ok(r.ok);
		assert.deepEqual(r.values, { seniorCitizen: true, tenureMonths: 0, totalCharges: null });
	});
});

describe("parseDateTimeText", () => {
	it("reads RFC 3339, SQL-style and date-only texts as UTC unless an offset says otherwise", () => {
		assert.equal(parseDateTimeText("2026-01-01T00:00:00Z"), Date.UTC(2026, 0, 1));
		assert.equal(parseDateTimeText("2026-01-01 01:00:00+0100"), Date.UTC(2026, 0, 1));
		assert.equal(parseDateTimeText("2026-01-01 00:00"), Date.UTC(2026, 0, 1));
		assert.ok(Number.isNaN(parseDateTimeText("2026-13-01")));
	});
});
