// Online churn scoring end to end with the shipped Telco model: a full profile gets a probability and a churn.model
// risk factor, a two-year contract lowers it, page views do not re-score, a bad artifact stops the start, "off" disables it.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadConfig } from "../../config/index.ts";
import { createNode } from "../../app/create-node.ts";
import { createChurnScorer } from "../../ml/model.ts";
import { loadChurnModel } from "../../ml/churn-scorer.ts";
import { emptyCustomerState } from "../../actors/customer.reducer.ts";
import { waitFor } from "../harness.ts";
import { cloudEvent, startTestNode, type TestNode } from "../support/node.ts";

const SHIPPED = "ml/models/churn-telco.json";
const SERVICES = "customers,api,scoring";

/** Telco row 9237-HQITU (churned): new fiber customer, month-to-month, electronic check. Fields per the mapping. */
const PROFILE = {
	gender: "Female", seniorCitizen: "0", partner: "No", dependents: "No", tenureMonths: 2, phoneService: "Yes",
	multipleLines: "No", internetService: "Fiber optic", onlineSecurity: "No", onlineBackup: "No", deviceProtection: "No",
	techSupport: "No", streamingTv: "No", streamingMovies: "No", contract: "Month-to-month", paperlessBilling: "Yes",
	paymentMethod: "Electronic check", monthlyCharges: 70.7, totalCharges: 151.65
};

let clock = Date.parse("2026-02-01T00:00:00.000Z");
/** Events of one customer in publication order (event time matters: profile fields are last-writer-wins by it). */
const next = (type: string, customerId: string, data: Record<string, unknown>) =>
	cloudEvent(type, customerId, data, { time: new Date((clock += 1000)).toISOString() });

interface Customer { version: number; churnProbability: number | null; risk: { score: number; factors: Record<string, number> } }

async function post(node: TestNode, event: unknown): Promise<void> {
	const r = await node.api("/api/v1/events", { method: "POST", json: event });
	assert.equal(r.status, 202, JSON.stringify(r.body));
}

async function customer(node: TestNode, id: string): Promise<Customer> {
	const r = await node.api(`/api/v1/customers/${id}`);
	assert.equal(r.status, 200, JSON.stringify(r.body));
	return r.body as Customer;
}

void describe("online churn scoring with the shipped Telco model", () => {
	let node: TestNode;
	before(async () => {
		node = await startTestNode({ SERVICES, CHURN_MODEL: SHIPPED });
	});
	after(async () => {
		await node?.stop();
	});

	it("a full profile gets the model's probability and a churn.model factor; a two-year contract lowers it", async () => {
		await post(node, next("crm.customer.updated", "telco-1", { profile: PROFILE }));
		const c1 = await customer(node, "telco-1");
		assert.ok(c1.churnProbability !== null && c1.churnProbability > 0 && c1.churnProbability < 1, `p = ${c1.churnProbability}`);
		// Same number as scoring the profile offline with the artifact: the actor runs the shipped model, not an approximation.
		const offline = createChurnScorer(loadChurnModel(SHIPPED))({ ...emptyCustomerState("telco-1"), profile: PROFILE });
		assert.ok(Math.abs(c1.churnProbability - offline) < 1e-9, `${c1.churnProbability} vs offline ${offline}`);
		assert.ok(c1.churnProbability > 0.5, "a churned Telco customer's profile scores high");
		assert.equal(c1.risk.factors["churn.model"], Math.round(c1.churnProbability * 30 * 10) / 10);
		assert.equal(c1.risk.score, Math.round(c1.risk.factors["churn.model"]));

		await post(node, next("crm.customer.updated", "telco-1", { profile: { contract: "Two year" } }));
		const c2 = await customer(node, "telco-1");
		assert.ok(c2.churnProbability! < c1.churnProbability - 0.2, `two-year contract: ${c2.churnProbability} vs ${c1.churnProbability}`);
		assert.ok(c2.risk.factors["churn.model"] < c1.risk.factors["churn.model"]);
		assert.ok(c2.risk.score < c1.risk.score);
	});

	it("a sparse profile is not scored (no made-up customer)", async () => {
		await post(node, next("crm.customer.updated", "telco-sparse", { profile: { contract: "Month-to-month", name: "Ann" } }));
		const c = await customer(node, "telco-sparse");
		assert.equal(c.churnProbability, null);
		assert.equal(c.risk.factors["churn.model"], undefined);
	});

	it("GET /api/v1/scoring/model reports the shipped artifact's metadata and metrics", async () => {
		const artifact = JSON.parse(await readFile(SHIPPED, "utf8"));
		await waitFor(async () => (await node.api("/api/v1/scoring/model")).status === 200, { message: "scoring route" });
		const info = (await node.api("/api/v1/scoring/model")).body;
		assert.equal(info.enabled, true);
		assert.equal(info.trainedAt, artifact.createdAt);
		assert.equal(info.data.sha256, artifact.dataSha256);
		assert.equal(info.threshold, artifact.threshold);
		assert.deepEqual(info.metrics, artifact.metrics);
		assert.ok(info.metrics.test.rocAuc >= 0.84, `test ROC AUC ${info.metrics.test.rocAuc}`);
		assert.deepEqual(info.features.map((f: { field: string }) => f.field), Object.keys(PROFILE));
		assert.equal(info.inputs.length, artifact.network.sizes[0]);
	});
});

void describe("when the churn model runs", () => {
	let dir: string;
	let node: TestNode;
	before(async () => {
		// The shipped network with its tenure input rebound to the page-view counter: a re-score after page views
		// would change the probability, so an unchanged one proves page views are not scored.
		dir = await mkdtemp(path.join(tmpdir(), "crm-churn-"));
		const artifact = JSON.parse(await readFile(SHIPPED, "utf8"));
		const rebind = (field: string) => (field === "tenureMonths" ? "$counters.pageViews" : field);
		for (const f of artifact.mapping.features) f.field = rebind(f.field);
		for (const f of artifact.featureSpec.fields) f.field = rebind(f.field);
		artifact.featureSpec.names = artifact.featureSpec.names.map((n: string) => n.replace(/^tenureMonths(?=$|:)/, "$counters.pageViews"));
		const file = path.join(dir, "pageviews-as-tenure.json");
		await writeFile(file, JSON.stringify(artifact));
		node = await startTestNode({ SERVICES, CHURN_MODEL: file });
	});
	after(async () => {
		await node?.stop();
		await rm(dir, { recursive: true, force: true });
	});

	it("page views do not re-score; the next relevant event does, with the counters it has by then", async () => {
		const { tenureMonths: _, ...profile } = PROFILE;
		await post(node, next("crm.customer.updated", "telco-pv", { profile }));
		const before = await customer(node, "telco-pv");
		assert.ok(before.churnProbability !== null);
		for (let i = 0; i < 24; i++) await post(node, next("crm.page.viewed", "telco-pv", { url: `/plans/${i}` }));
		const viewed = await customer(node, "telco-pv");
		assert.equal(viewed.version, before.version + 24, "the page views were applied");
		assert.equal(viewed.churnProbability, before.churnProbability, "but not scored");

		await post(node, next("crm.interaction.logged", "telco-pv", { interactionId: "i-1", channel: "chat" }));
		const after = await customer(node, "telco-pv");
		assert.ok(after.churnProbability! < before.churnProbability! - 0.05, `24 "months" of tenure lower it: ${after.churnProbability} vs ${before.churnProbability}`);
	});
});

void describe("CHURN_MODEL at start", () => {
	let dir: string;
	before(async () => {
		dir = await mkdtemp(path.join(tmpdir(), "crm-churn-bad-"));
	});
	after(async () => {
		await rm(dir, { recursive: true, force: true });
	});

	const config = (churnModel: string, services = "customers,api,scoring") =>
		loadConfig({ DATA_DIR: dir, PORT: "0", LOG_LEVEL: "fatal", SERVICES: services, CHURN_MODEL: churnModel });

	it("a missing or incompatible artifact fails the start with a message naming the file and the problem", async () => {
		const artifact = JSON.parse(await readFile(SHIPPED, "utf8"));
		const write = async (name: string, content: string) => {
			const file = path.join(dir, name);
			await writeFile(file, content);
			return file;
		};
		const missing = path.join(dir, "no-such-model.json");
		const cases: [string, string, RegExp][] = [
			["missing file", missing, /churn model .*no-such-model\.json: file not found/],
			["not JSON", await write("garbage.json", "{ not json"), /garbage\.json: not valid JSON/],
			["newer format version", await write("v99.json", JSON.stringify({ ...artifact, version: 99 })), /v99\.json: version 99 is not supported/],
			["network for other features", await write("inputs.json", JSON.stringify({ ...artifact, network: { ...artifact.network, sizes: [3, ...artifact.network.sizes.slice(1)] } })), /inputs\.json: network takes 3 inputs but the feature spec produces \d+/]
		];
		for (const [name, file, message] of cases) {
			await assert.rejects(createNode(config(file)), message, name);
		}
		// The scoring service checks the same artifact on a node without customers.
		await assert.rejects(createNode(config(missing, "api,scoring")), /no-such-model\.json: file not found/);
	});

	it("CHURN_MODEL=off disables the factor: a full profile gets no probability", async () => {
		const node = await startTestNode({ SERVICES, CHURN_MODEL: "off" });
		try {
			await post(node, next("crm.customer.updated", "telco-off", { profile: PROFILE }));
			const c = await customer(node, "telco-off");
			assert.equal(c.churnProbability, null);
			assert.deepEqual(c.risk, { score: 0, factors: {} });
		} finally {
			await node.stop();
		}
	});
});
