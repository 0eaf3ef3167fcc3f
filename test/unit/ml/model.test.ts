// The shipped Telco artifact: it loads, reproduces its stored test metrics, and scores known customers sensibly
// through the actor-side scorer (live state → record → the training vectorize → network).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { readCsv } from "../../../ml/csv.ts";
import { recordFromRow, vectorize } from "../../../ml/features.ts";
import { createChurnScorer } from "../../../ml/model.ts";
import { loadChurnModel } from "../../../ml/churn-scorer.ts";
import { evaluateOnTestSplit } from "../../../ml/training.ts";
import type { CustomerCounters, CustomerState, ProfileValue } from "../../../models/customer-state.ts";

const root = (path: string): string => fileURLToPath(new URL(`../../../${path}`, import.meta.url));
const model = loadChurnModel(root("ml/models/churn-telco.json"));
const { artifact } = model;

const counters: CustomerCounters = {
	orders: 0, cancelledOrders: 0, failedPayments: 0, interactions: 0, negativeInteractions: 0, ticketsOpened: 0,
	openTickets: 0, pageViews: 0, telemetryReadings: 0
};

function stateWith(profile: Record<string, ProfileValue>): CustomerState {
	return {
		id: "c1", version: 1, createdAt: 0, lastActivityAt: 0, profile, profileTimes: {}, counters, openTicketIds: [],
		orderStatus: {}, telemetry: {}, lastSentiment: null, risk: { score: 0, factors: {} }, churnProbability: null,
		recentEventKeys: [], reminders: {}
	};
}

// Both customers have every Telco field, as an actor's profile would after a crm.customer.updated event.
const common = {
	gender: "Female", seniorCitizen: false, partner: "No", dependents: "No", phoneService: "Yes", multipleLines: "No",
	onlineBackup: "No", deviceProtection: "No", streamingTv: "No", streamingMovies: "No"
};
const newFiberMonthly = stateWith({
	...common, tenureMonths: 2, internetService: "Fiber optic", onlineSecurity: "No", techSupport: "No", contract: "Month-to-month",
	paperlessBilling: "Yes", paymentMethod: "Electronic check", monthlyCharges: 85.5, totalCharges: 171
});
const loyalTwoYear = stateWith({
	...common, partner: "Yes", dependents: "Yes", tenureMonths: 68, internetService: "DSL", onlineSecurity: "Yes", techSupport: "Yes",
	contract: "Two year", paperlessBilling: "No", paymentMethod: "Bank transfer (automatic)", monthlyCharges: 60.1, totalCharges: 4087
});

void test("the shipped artifact was trained on the shipped data and reaches the published ~0.84 ROC AUC on its test split", () => {
	const shipped = createHash("sha256").update(readFileSync(root("ml/data/telco-churn.csv"))).digest("hex");
	assert.equal(shipped, "16320c9c1ec72448db59aa0a26a0b95401046bef5d02fd3aeb906448e3055e91", "the IBM file, byte for byte");
	assert.equal(artifact.dataSha256, shipped);
	assert.equal(artifact.dataPath, "ml/data/telco-churn.csv");
	assert.equal(artifact.rows, 7043);
	assert.ok(artifact.metrics.test.rocAuc >= 0.84, `test ROC AUC ${artifact.metrics.test.rocAuc}`);
	assert.equal(artifact.metrics.test.n, 1056);
});

void test("re-evaluating the shipped artifact reproduces its stored test metrics exactly", async () => {
	const table = await readCsv(root("ml/data/telco-churn.csv"));
	const metrics = evaluateOnTestSplit(model, { ...table, path: "ml/data/telco-churn.csv" });
	assert.deepEqual(JSON.parse(JSON.stringify(metrics)), artifact.metrics.test);
});

void test("a short-tenure month-to-month fiber customer paying by electronic check scores far above a loyal two-year one", () => {
	const score = createChurnScorer(model);
	const risky = score(newFiberMonthly);
	const safe = score(loyalTwoYear);
	assert.ok(risky > 0.5, `risky ${risky}`);
	assert.ok(safe < 0.05, `safe ${safe}`);
	assert.ok(risky > artifact.threshold && safe < artifact.threshold);
});

void test("the actor scorer gives what training's row path gives for known Telco rows, typed or as text", async () => {
	const table = await readCsv(root("ml/data/telco-churn.csv"));
	const score = createChurnScorer(model);
	const rows = ["7590-VHVEG", "5575-GNVDE", "3668-QPYBK", "9237-HQITU"].map(id => table.rows.find(r => r[0] === id) ?? assert.fail(id));
	for (const row of rows) {
		const record = recordFromRow(artifact.mapping, table.header, row);
		const expected = model.predict(vectorize(artifact.featureSpec, record));
		const asText = score(stateWith(record as Record<string, string>));
		const typed = score(stateWith(Object.fromEntries(Object.entries(record).map(([k, v]) => {
			const s = String(v);
			return [k, /^[\d.]+$/.test(s) ? Number(s) : s];
		}))));
		assert.equal(asText, expected, row[0]);
		assert.equal(typed, expected, row[0]);
	}
	// Known outcomes in the data: 3668-QPYBK and 9237-HQITU churned, 5575-GNVDE (one-year contract) stayed.
	const p = rows.map(row => score(stateWith(recordFromRow(artifact.mapping, table.header, row) as Record<string, string>)));
	assert.ok(p[2] > p[1] && p[3] > p[1], JSON.stringify(p));
});

void test("a profile that knows too little gets no estimate (NaN, which the reducer ignores) unless configured otherwise", () => {
	assert.ok(Number.isNaN(createChurnScorer(model)(stateWith({ email: "a@b.c", contract: "Month-to-month" }))));
	const lenient = createChurnScorer(model, { minCoverage: 0 })(stateWith({}));
	assert.ok(lenient >= 0 && lenient <= 1);
	const outlier = createChurnScorer(model)(stateWith({ ...newFiberMonthly.profile, monthlyCharges: 1e12, totalCharges: "n/a" }));
	assert.ok(outlier >= 0 && outlier <= 1);
});
