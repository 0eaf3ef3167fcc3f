// Opportunities and their scoring through the HTTP API on embedded defaults: CRUD, bad input, and scores that follow
// the sentiment of the customer's interactions as they arrive as CloudEvents.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { waitFor } from "../harness.ts";
import { API_KEY, cloudEvent, startTestNode, type TestNode } from "../support/node.ts";

const SERVICES = "customers,api,opportunities,scoring";

/** moleculer-web adds other services' REST routes up to 500 ms after they start. */
async function routesReady(node: TestNode): Promise<void> {
	await waitFor(async () => (await node.api("/api/v1/scoring/model")).status === 200 && (await node.api("/api/v1/opportunities")).status === 200, {
		message: "opportunities and scoring routes"
	});
}

const deal = (over: Record<string, unknown> = {}) => ({ customerId: "cust-opp", title: "Fleet renewal", amount: 20_000, currency: "EUR", stage: "PROPOSAL", ...over });

void describe("opportunities API", () => {
	let node: TestNode;
	before(async () => {
		node = await startTestNode({ SERVICES });
		await routesReady(node);
	});
	after(async () => {
		await node?.stop();
	});

	const post = (body: unknown) => node.api("/api/v1/opportunities", { method: "POST", json: body });
	const patch = (id: string, body: unknown) => node.api(`/api/v1/opportunities/${id}`, { method: "PATCH", json: body });
	const score = async (id: string) => {
		const r = await node.api(`/api/v1/opportunities/${id}/score`, { method: "POST" });
		assert.equal(r.status, 200, JSON.stringify(r.body));
		return r.body as { opportunityId: string; score: number; probability: number; factors: Record<string, number> };
	};
	const interaction = (customerId: string, data: Record<string, unknown>, time = new Date()) =>
		node.api("/api/v1/events", { method: "POST", json: cloudEvent("crm.interaction.logged", customerId, { channel: "email", ...data }, { time: time.toISOString() }) });

	it("creates, reads, lists and patches an opportunity", async () => {
		const created = await post(deal({ stage: undefined, customerId: "cust-crud" }));
		assert.equal(created.status, 201, JSON.stringify(created.body));
		const o = created.body;
		assert.equal(typeof o.id, "string");
		assert.equal(o.stage, "QUALIFICATION", "stage defaults to QUALIFICATION");
		assert.equal(o.sentiment, null);
		assert.equal(o.latestInteraction, null);
		assert.equal(o.lastActivityAt, o.createdAt);

		const raw = await fetch(`${node.baseUrl}/api/v1/opportunities`, {
			method: "POST", headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" }, body: JSON.stringify(deal({ customerId: "cust-loc" }))
		});
		const rawBody = await raw.json() as { id: string };
		assert.equal(raw.headers.get("location"), `/api/v1/opportunities/${rawBody.id}`);
		assert.deepEqual((await node.api(`/api/v1/opportunities/${o.id}`)).body, o);
		await post(deal({ customerId: "cust-other" }));
		const listed = await node.api("/api/v1/opportunities?customerId=cust-crud");
		assert.equal(listed.status, 200);
		assert.deepEqual(listed.body.map((x: { id: string }) => x.id), [o.id]);

		const renamed = await patch(o.id, { title: "Fleet renewal 2027" });
		assert.equal(renamed.status, 200);
		assert.equal(renamed.body.title, "Fleet renewal 2027");
		assert.equal(renamed.body.lastActivityAt, o.lastActivityAt, "editing the title is not sales activity");
		const moved = await patch(o.id, { stage: "NEGOTIATION", amount: 25_000 });
		assert.equal(moved.body.stage, "NEGOTIATION");
		assert.equal(moved.body.amount, 25_000);
		assert.ok(moved.body.lastActivityAt > o.lastActivityAt, "a stage change is sales activity");
		const byStage = await node.api("/api/v1/opportunities?customerId=cust-crud&stage=NEGOTIATION");
		assert.equal(byStage.body.length, 1);
	});

	it("rejects bad input with 400 and the reason, unknown ids with 404", async () => {
		const { body: existing } = await post(deal({ customerId: "cust-bad" }));
		const cases: [string, () => Promise<{ status: number; body: any }>, number, RegExp][] = [
			["missing title", () => post(deal({ title: undefined })), 400, /title/],
			["empty title", () => post(deal({ title: "" })), 400, /title/],
			["negative amount", () => post(deal({ amount: -5 })), 400, /amount/],
			["amount as text", () => post(deal({ amount: "lots" })), 400, /amount/],
			["lower-case currency", () => post(deal({ currency: "eur" })), 400, /currency/],
			["unknown stage", () => post(deal({ stage: "MAYBE" })), 400, /stage/],
			["bad customer id", () => post(deal({ customerId: "has space" })), 400, /customerId/],
			["bad createdAt", () => post(deal({ createdAt: "yesterday" })), 400, /createdAt/],
			["unknown field", () => post(deal({ probability: 1 })), 400, /probability/],
			["not an object", () => post([deal()]), 400, /body/],
			["empty patch", () => patch(existing.id, {}), 400, /body/],
			["patch of customerId", () => patch(existing.id, { customerId: "someone-else" }), 400, /customerId/],
			["patch with bad stage", () => patch(existing.id, { stage: "won" }), 400, /stage/],
			["list with limit 0", () => node.api("/api/v1/opportunities?limit=0"), 400, /limit/],
			["get unknown id", () => node.api("/api/v1/opportunities/no-such-opp"), 404, /OPPORTUNITY_NOT_FOUND/],
			["patch unknown id", () => patch("no-such-opp", { stage: "WON" }), 404, /OPPORTUNITY_NOT_FOUND/],
			["score unknown id", () => node.api("/api/v1/opportunities/no-such-opp/score", { method: "POST" }), 404, /OPPORTUNITY_NOT_FOUND/]
		];
		for (const [name, call, status, reason] of cases) {
			const res = await call();
			assert.equal(res.status, status, `${name}: ${JSON.stringify(res.body)}`);
			assert.match(JSON.stringify(res.body), reason, name);
		}
		assert.equal((await node.api(`/api/v1/opportunities/${existing.id}`)).body.stage, "PROPOSAL", "rejected patches changed nothing");
	});

	it("a negative interaction lowers the score of the customer's open opportunity, not of a decided one", async () => {
		const customerId = "cust-mood";
		const open = (await post(deal({ customerId }))).body;
		const won = (await post(deal({ customerId, stage: "WON", title: "Last year's deal" }))).body;
		const before = await score(open.id);
		assert.equal(before.factors.sentiment, 0);

		// No numeric sentiment: the service reads it from the text.
		assert.equal((await interaction(customerId, { interactionId: "i-angry", text: "This is terrible, we want to cancel the contract." })).status, 202);
		await waitFor(async () => (await node.api(`/api/v1/opportunities/${open.id}`)).body.latestInteraction?.interactionId === "i-angry", { message: "interaction recorded" });
		const o = (await node.api(`/api/v1/opportunities/${open.id}`)).body;
		assert.ok(o.sentiment < -0.2, `sentiment ${o.sentiment}`);
		assert.equal(o.latestInteraction.sentimentSource, "text");
		assert.equal(o.latestInteraction.text, "This is terrible, we want to cancel the contract.");
		const after = await score(open.id);
		assert.ok(after.score < before.score, `score ${after.score} should be below ${before.score}`);
		assert.ok(after.factors.sentiment < 0);
		assert.equal((await node.api(`/api/v1/opportunities/${won.id}`)).body.latestInteraction, null, "a won deal does not follow interactions");
		assert.equal((await score(won.id)).score, 100);

		// A numeric sentiment on the event wins over its text; a positive one raises the score again.
		await interaction(customerId, { interactionId: "i-happy", sentiment: 0.8, text: "ok" }, new Date(Date.now() + 1000));
		await waitFor(async () => (await node.api(`/api/v1/opportunities/${open.id}`)).body.sentiment === 0.8, { message: "positive sentiment recorded" });
		assert.ok((await score(open.id)).score > before.score);
	});

	it("an older interaction delivered late, or one that says nothing about the mood, keeps the known sentiment", async () => {
		const customerId = "cust-order";
		const open = (await post(deal({ customerId }))).body;
		const t0 = Date.now();
		await interaction(customerId, { interactionId: "i-new", sentiment: -0.6 }, new Date(t0));
		await waitFor(async () => (await node.api(`/api/v1/opportunities/${open.id}`)).body.sentiment === -0.6);
		await interaction(customerId, { interactionId: "i-old", sentiment: 0.9 }, new Date(t0 - 3600_000));
		await interaction(customerId, { interactionId: "i-plain", text: "We will sign next week." }, new Date(t0 + 1000));
		await waitFor(async () => (await node.api(`/api/v1/opportunities/${open.id}`)).body.latestInteraction?.interactionId === "i-plain");
		const o = (await node.api(`/api/v1/opportunities/${open.id}`)).body;
		assert.equal(o.sentiment, -0.6, "neither the late older interaction nor a mood-less text replaced it");
		assert.equal(o.latestInteraction.sentiment, null);
	});

	it("scoring.opportunity takes exactly one of { opportunityId } and { opportunity }", async () => {
		const inline = { stage: "NEGOTIATION", amount: 5_000, createdAt: new Date().toISOString(), sentiment: -1 };
		const r = await node.broker.call<{ opportunityId: string | null; score: number; factors: Record<string, number> }, object>("scoring.opportunity", { opportunity: inline });
		assert.equal(r.opportunityId, null);
		assert.deepEqual(r.factors, { stage: 60, amount: 0, age: 0, activity: 10, sentiment: -15 });
		assert.equal(r.score, 55);
		await assert.rejects(node.broker.call("scoring.opportunity", {}), /exactly one/);
		const id = (await post(deal({ customerId: "cust-both" }))).body.id;
		await assert.rejects(node.broker.call("scoring.opportunity", { opportunityId: id, opportunity: inline }), /exactly one/);
		await assert.rejects(node.broker.call("scoring.opportunity", { opportunity: { ...inline, stage: "SOMEDAY" } }), (err: { type: string; data: unknown }) => {
			return err.type === "VALIDATION_ERROR" && /opportunity\.stage/.test(JSON.stringify(err.data));
		});
	});

	it("reports the churn model as disabled under CHURN_MODEL=off", async () => {
		const res = await node.api("/api/v1/scoring/model");
		assert.equal(res.status, 200);
		assert.equal(res.body.enabled, false);
		assert.match(res.body.reason, /CHURN_MODEL=off/);
	});
});
