// Feature extraction: mapping validation messages, one-hot levels, normalisation and missing-value handling.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
	MappingError, checkMappingColumns, checkRecord, featureCoverage, fitFeatureSpec, labelOf, parseFeatureSpec, parseMapping,
	recordFromRow, recordFromState, vectorize
} from "../../../ml/features.ts";
import type { ChurnMapping, FeatureRecord } from "../../../ml/features.ts";

function mapping(features: unknown[], extra: Record<string, unknown> = {}): unknown {
	return { format: "crm-actors.churn-mapping", version: 1, name: "t", label: { column: "Churn", positive: ["Yes"], negative: ["No"] }, features, ...extra };
}

const valid = parseMapping(mapping([
	{ column: "Plan", field: "plan", type: "categorical" },
	{ column: "Tenure", field: "tenureMonths", type: "numeric" },
	{ column: "Autopay", field: "autopay", type: "boolean", trueValues: ["Yes"], falseValues: ["No"] },
	{ column: "Total", field: "totalCharges", type: "numeric", scale: "minmax", missing: { values: ["NA"], fill: 0 } }
]));

function problemsOf(json: unknown): string[] {
	try {
		parseMapping(json, "x.json");
	} catch (err) {
		assert.ok(err instanceof MappingError);
		assert.match(err.message, /x\.json/);
		return err.problems;
	}
	assert.fail("mapping was accepted");
}

void test("mapping validation names the offending feature, column and key", () => {
	const cases: { name: string; json: unknown; expect: RegExp }[] = [
		{ name: "wrong format", json: { ...(mapping([{ column: "a", field: "a", type: "numeric" }]) as object), format: "other" }, expect: /^format: must be "crm-actors.churn-mapping"/ },
		{ name: "no features", json: mapping([]), expect: /^features: must be a non-empty array/ },
		{ name: "unknown type", json: mapping([{ column: "Age", field: "age", type: "date" }]), expect: /features\[0\] \(column "Age"\)\.type: must be "numeric", "boolean" or "categorical"/ },
		{ name: "bad field name", json: mapping([{ column: "Age", field: "my age", type: "numeric" }]), expect: /features\[0\] \(column "Age"\)\.field: must be a profile field name/ },
		{ name: "duplicate field", json: mapping([{ column: "A", field: "x", type: "numeric" }, { column: "B", field: "x", type: "numeric" }]), expect: /features\[1\] \(column "B"\)\.field: "x" is already mapped from column "A"/ },
		{ name: "boolean without values", json: mapping([{ column: "P", field: "p", type: "boolean", trueValues: ["Y"] }]), expect: /column "P"\)\.falseValues: must be a non-empty array/ },
		{ name: "bad fill", json: mapping([{ column: "T", field: "t", type: "numeric", missing: { fill: "zero" } }]), expect: /column "T"\)\.missing\.fill: must be "mean", "median" or a finite number/ },
		{ name: "typo'd key", json: mapping([{ column: "T", field: "t", type: "numeric", scael: "minmax" }]), expect: /column "T"\): unknown key "scael"/ },
		{ name: "label as feature", json: mapping([{ column: "Churn", field: "churn", type: "categorical" }]), expect: /column "Churn"\): the label column cannot be a feature/ },
		{ name: "label in both lists", json: mapping([{ column: "a", field: "a", type: "numeric" }], { label: { column: "Churn", positive: ["Yes"], negative: ["Yes", "No"] } }), expect: /label: \["Yes"\] listed as both/ }
	];
	for (const c of cases) {
		const problems = problemsOf(c.json);
		assert.ok(problems.some(p => c.expect.test(p)), `${c.name}: ${JSON.stringify(problems)}`);
	}
	assert.equal(problemsOf({ ...(mapping([{ column: "A", field: "x", type: "numeric" }, { column: "B", field: "x", type: "what" }]) as object), version: 2 }).length, 3, "every problem is listed, not only the first");
	assert.doesNotThrow(() => parseMapping(mapping([{ column: "Tickets", field: "$counters.openTickets", type: "numeric" }])));
});

void test("columns missing from the CSV header are named with what the file has", () => {
	assert.throws(() => checkMappingColumns(valid, ["Plan", "Tenure", "Churn"], "data.csv"), (err: Error) => {
		assert.match(err.message, /data\.csv/);
		assert.match(err.message, /"Autopay", "Total" not in the CSV header \(it has: Plan, Tenure, Churn\)/);
		return true;
	});
	assert.doesNotThrow(() => checkMappingColumns(valid, ["Churn", "Total", "Autopay", "Tenure", "Plan", "Extra"]));
});

void test("labels: positive and negative lists, anything else is an error naming the column", () => {
	assert.equal(labelOf(valid, "Yes"), 1);
	assert.equal(labelOf(valid, " No"), 0);
	assert.throws(() => labelOf(valid, "Maybe"), /label column "Churn": "Maybe" is neither positive/);
	const noNegatives = { ...valid, label: { column: "Churn", positive: ["1"] } } as ChurnMapping;
	assert.equal(labelOf(noNegatives, "anything"), 0);
});

const training: FeatureRecord[] = [
	{ plan: "basic", tenureMonths: "1", autopay: "Yes", totalCharges: "10" },
	{ plan: "basic", tenureMonths: "3", autopay: "No", totalCharges: "30" },
	{ plan: "pro", tenureMonths: "5", autopay: "No", totalCharges: "NA" },
	{ plan: "pro", tenureMonths: "11", autopay: "No", totalCharges: "50" }
];

void test("fitting learns sorted levels, standard and min-max scaling, and fills", () => {
	const spec = fitFeatureSpec(training, valid);
	assert.deepEqual(spec.names, ["plan=basic", "plan=pro", "tenureMonths", "autopay", "totalCharges"]);
	const tenure = spec.fields[1];
	assert.equal(tenure.kind, "numeric");
	if (tenure.kind !== "numeric") return;
	assert.equal(tenure.center, 5);
	assert.equal(tenure.scale, Math.sqrt(14));
	// minmax over the observed 10..50 widened to the declared fill 0.
	assert.deepEqual(vectorize(spec, training[0]), [1, 0, -4 / Math.sqrt(14), 1, 10 / 50]);
	assert.deepEqual(vectorize(spec, training[2]), [0, 1, 0, 0, 0]);
});

void test("scoring accepts typed profile values and treats unknown or unparsable ones as missing", () => {
	const spec = fitFeatureSpec(training, valid);
	const fromStrings = vectorize(spec, { plan: "pro", tenureMonths: "7", autopay: "Yes", totalCharges: "50" });
	const fromTypes = vectorize(spec, { plan: "pro", tenureMonths: 7, autopay: true, totalCharges: 50 });
	assert.deepEqual(fromTypes, fromStrings);
	const missing = vectorize(spec, {});
	const garbage = vectorize(spec, { plan: "enterprise", tenureMonths: "soon", autopay: "maybe", totalCharges: "abc" });
	assert.deepEqual(garbage, missing);
	// No "other" slot was learned (every training plan was known): an unknown plan gets the training frequencies.
	assert.deepEqual(missing.slice(0, 2), [0.5, 0.5]);
	assert.equal(missing[2], (4 - 5) / Math.sqrt(14), "tenure: the median of 1,3,5,11");
	assert.equal(missing[3], 0.25, "autopay: share of true in training");
	assert.equal(missing[4], 0, "total: the declared fill 0");
	assert.ok(missing.every(Number.isFinite));
});

void test("outliers are clipped to the training range", () => {
	const spec = fitFeatureSpec(training, valid);
	assert.deepEqual(vectorize(spec, { tenureMonths: 1e9 }).slice(2, 3), [6 / Math.sqrt(14)]);
	assert.deepEqual(vectorize(spec, { tenureMonths: -50 }).slice(2, 3), [-4 / Math.sqrt(14)]);
});

void test("a statistic-filled numeric that was missing in training gets a learned indicator; rare levels share an other slot", () => {
	const m = parseMapping(mapping([
		{ column: "T", field: "t", type: "numeric", missing: { fill: "mean" } },
		{ column: "C", field: "c", type: "categorical", minCount: 2 }
	]));
	const spec = fitFeatureSpec([{ t: "2", c: "a" }, { t: "", c: "a" }, { t: "4", c: "b" }, { t: " ", c: "" }], m);
	assert.deepEqual(spec.names, ["t", "t:missing", "c=a", "c=<other>"]);
	const t = spec.fields[0];
	assert.ok(t.kind === "numeric" && t.fill === 3);
	assert.deepEqual(vectorize(spec, { t: "", c: "b" }).slice(1), [1, 0, 1]);
	assert.deepEqual(vectorize(spec, { t: "3", c: "a" }).slice(1), [0, 1, 0]);
});

void test("a column with too many levels (an id mapped by mistake) fails the fit", () => {
	const m = parseMapping(mapping([{ column: "Id", field: "id", type: "categorical", maxLevels: 3 }]));
	assert.throws(() => fitFeatureSpec(["a", "b", "c", "d"].map(id => ({ id })), m), /column "Id" \(field id\): 4 distinct values exceed maxLevels 3/);
});

void test("training rows must parse; missing values declared in the mapping are fine", () => {
	assert.equal(checkRecord(valid, { plan: "x", tenureMonths: "3", autopay: "No", totalCharges: "NA" }), null);
	assert.equal(checkRecord(valid, { plan: "x", tenureMonths: " ", autopay: "", totalCharges: "" }), null);
	assert.match(checkRecord(valid, { tenureMonths: "3 months" }) ?? "", /column "Tenure": "3 months" is not a number/);
	assert.match(checkRecord(valid, { autopay: "Y" }) ?? "", /column "Autopay": "Y" is in neither trueValues/);
});

void test("records come from CSV rows by column, and from actor state by field (counters under $counters.)", () => {
	assert.deepEqual(recordFromRow(valid, ["Total", "Churn", "Plan", "Tenure", "Autopay"], ["5", "No", "pro", "2", "Yes"]),
		{ plan: "pro", tenureMonths: "2", autopay: "Yes", totalCharges: "5" });
	const m = parseMapping(mapping([{ column: "P", field: "plan", type: "categorical" }, { column: "F", field: "$counters.failedPayments", type: "numeric" }]));
	const spec = fitFeatureSpec([{ plan: "a", "$counters.failedPayments": "0" }, { plan: "b", "$counters.failedPayments": "2" }], m);
	const record = recordFromState(spec, { profile: { plan: "b", other: 1 }, counters: { failedPayments: 2 } as never });
	assert.deepEqual(record, { plan: "b", "$counters.failedPayments": 2 });
	assert.deepEqual(vectorize(spec, record), [0, 1, 1]);
	assert.equal(featureCoverage(spec, record), 1);
	assert.equal(featureCoverage(spec, { plan: "b" }), 0.5);
});

void test("a stored spec is checked field by field", () => {
	const spec = fitFeatureSpec(training, valid);
	assert.deepEqual(parseFeatureSpec(JSON.parse(JSON.stringify(spec))), spec);
	const broken = JSON.parse(JSON.stringify(spec));
	broken.fields[1].scale = null;
	assert.throws(() => parseFeatureSpec(broken), /featureSpec fields\[1\]\.scale: must be a finite number/);
	const renamed = JSON.parse(JSON.stringify(spec));
	renamed.names = renamed.names.slice(1);
	assert.throws(() => parseFeatureSpec(renamed), /featureSpec names: do not match the fields \(expected 5 inputs/);
});
