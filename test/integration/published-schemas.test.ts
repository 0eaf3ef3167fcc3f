// The published contract (npm run schemas): the files are what the generator makes from the validators; the JSON
// Schemas, the OpenAPI 3.1 and the AsyncAPI 3.0 documents are valid against their meta-schemas; the schemas accept
// and refuse what the validator does; every example in the docs and the README is valid and applies on a node.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { Validator as OpenApiValidator } from "@seriousme/openapi-schema-validator";
import { Parser as AsyncApiParser } from "@asyncapi/parser";
import fc from "fast-check";
import { generateContract } from "../../app/published-contract.ts";
import { EVENT_TYPES } from "../../models/cloud-event.ts";
import { validateEvent } from "../../models/cloud-event.validator.ts";
import { eventTypeDocs } from "../../models/event-catalogue.ts";
import { SCHEMA_FILES } from "../../models/published-schemas.ts";
import { startTestNode, type TestNode } from "../support/node.ts";
import { waitFor } from "../harness.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const readJson = async (rel: string) => JSON.parse(await readFile(path.join(ROOT, rel), "utf8")) as Record<string, unknown>;
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => void;

async function schemaValidator() {
	const ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true });
	addFormats(ajv);
	ajv.addSchema(await readJson(`schemas/${SCHEMA_FILES.event}`));
	ajv.addSchema(await readJson(`schemas/${SCHEMA_FILES.batch}`));
	const one = ajv.getSchema(SCHEMA_FILES.event);
	const batch = ajv.getSchema(SCHEMA_FILES.batch);
	assert.ok(one && batch);
	return { ajv, one, batch };
}

/** CloudEvent examples in a markdown text: ```json blocks, and '…' arguments of shell blocks, that mention specversion. */
function examplesIn(markdown: string): { text: string; parsed: unknown }[] {
	const out: { text: string; parsed: unknown }[] = [];
	for (const block of markdown.matchAll(/```(json|sh)\n([\s\S]*?)```/g)) {
		const candidates = block[1] === "json" ? [block[2]] : [...block[2].matchAll(/'(\{[\s\S]*?\}|\[[\s\S]*?\])'/g)].map(m => m[1]);
		for (const text of candidates) {
			if (!text.includes("specversion")) continue;
			let parsed: unknown;
			try {
				parsed = JSON.parse(text);
			} catch {
				// A template with placeholders (<deviceId>, …) is not an example to send; anything else is a broken one.
				assert.match(text, /<[a-zA-Z ]+>|…/, `an example that is not JSON and has no placeholder:\n${text}`);
				continue;
			}
			if (typeof parsed === "object" && parsed !== null && ("specversion" in parsed || Array.isArray(parsed))) out.push({ text, parsed });
		}
	}
	return out;
}

void describe("published schemas", () => {
	void it("schemas/ and docs/events.md are exactly what npm run schemas generates", async () => {
		const files = await generateContract();
		assert.ok(files.size >= EVENT_TYPES.length + 5);
		for (const [rel, content] of files) {
			const current = await readFile(path.join(ROOT, rel), "utf8").catch(() => "(missing)");
			assert.equal(current, content, `${rel} is out of date: run npm run schemas`);
		}
		const onDisk = await readdir(path.join(ROOT, "schemas/data"));
		assert.deepEqual(onDisk.sort(), EVENT_TYPES.map(t => `${t}.schema.json`).sort(), "no stale per-type schema is left");
	});

	void it("the JSON Schemas are valid draft 2020-12 and compile", async () => {
		const { ajv } = await schemaValidator();
		for (const type of EVENT_TYPES) {
			const schema = await readJson(`schemas/${SCHEMA_FILES.data(type)}`);
			assert.equal(ajv.validateSchema(schema), true, `${type}: ${ajv.errorsText(ajv.errors)}`);
			ajv.compile(schema);
		}
		for (const file of [SCHEMA_FILES.event, SCHEMA_FILES.batch]) assert.equal(ajv.validateSchema(await readJson(`schemas/${file}`)), true, file);
	});

	void it("the OpenAPI document is valid OpenAPI 3.1", async () => {
		const doc = await readJson(`schemas/${SCHEMA_FILES.openapi}`);
		assert.equal(doc.openapi, "3.1.0");
		const result = await new OpenApiValidator().validate(doc);
		assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
		const paths = Object.keys(doc.paths as object);
		for (const p of ["/api/v1/events", "/api/v1/customers/{id}", "/api/v1/customers/{id}/events", "/api/v1/customers", "/webhooks/{source}", "/health/ready"]) {
			assert.ok(paths.includes(p), `${p} is documented`);
		}
	});

	void it("the AsyncAPI document is valid AsyncAPI 3 (no error, no warning)", async () => {
		const text = await readFile(path.join(ROOT, `schemas/${SCHEMA_FILES.asyncapi}`), "utf8");
		const { document, diagnostics } = await new AsyncApiParser().parse(text);
		const problems = diagnostics.filter(d => d.severity <= 1).map(d => `${d.code}: ${d.message} at ${d.path.join(".")}`);
		assert.deepEqual(problems, []);
		assert.ok(document);
		assert.deepEqual(document.channels().all().map(c => c.address()).sort(), ["crm.dlq.{source}", "crm.events.{entity}.{verb}", "crm/devices/{deviceId}/telemetry"]);
	});

	void it("the schema accepts and refuses what the validator does (catalogue examples and seeded mutations of them)", async () => {
		const { one } = await schemaValidator();
		const docs = eventTypeDocs();
		const agree = (event: unknown, what: string) => {
			const byValidator = validateEvent(event).ok;
			const bySchema = one(event) === true;
			assert.equal(bySchema, byValidator, `${what}: validator ${byValidator ? "accepts" : "refuses"}, schema ${bySchema ? "accepts" : "refuses"} ${JSON.stringify(event)} ${JSON.stringify(one.errors)}`);
		};
		for (const type of EVENT_TYPES) agree(docs[type].example, `example of ${type}`);
		// Mutations that both can judge: the size, depth and "not 24 h in the future" limits are the validator's alone.
		const value = fc.oneof(fc.constant(null), fc.boolean(), fc.integer({ min: -5, max: 5000 }), fc.double({ noNaN: true, noDefaultInfinity: true }),
			fc.string({ maxLength: 20 }), fc.constantFrom("CANCELLED", "PAID", "email", "HIGH", "a@b.co", "+33 1 23", "x".repeat(600), "__proto__"),
			fc.dictionary(fc.constantFrom("a", "email", "phone", "name", "temp", "b_2", "9x"), fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.constant(null)), { maxKeys: 3 }));
		const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
		fc.assert(fc.property(fc.constantFrom(...EVENT_TYPES), fc.integer({ min: 0, max: 3 }), fc.string({ minLength: 1, maxLength: 10 }), value, (type, kind, field, v) => {
			const event = structuredClone(docs[type].example) as unknown as Record<string, unknown>;
			const data = event.data as Record<string, unknown>;
			const names = Object.keys(data);
			const target = names[field.length % names.length];
			if (kind === 0) delete data[target];
			else if (kind === 1) data[target] = v;
			else if (kind === 2) data[field] = v;
			else event[["id", "source", "subject", "type", "specversion"][field.length % 5]] = v;
			agree(event, `mutation ${kind} of ${type}`);
		}), { seed, numRuns: 2000 });
	});
});

void describe("examples in the docs", () => {
	let node: TestNode;
	before(async () => {
		node = await startTestNode();
	});
	after(async () => {
		await node.stop();
	});

	void it("every CloudEvent example in README.md and docs/ is valid by the schema and applies on a node", async () => {
		const { batch } = await schemaValidator();
		const files = ["README.md", ...(await readdir(path.join(ROOT, "docs"))).filter(f => f.endsWith(".md")).map(f => `docs/${f}`)];
		let count = 0;
		for (const file of files) {
			for (const { text, parsed } of examplesIn(await readFile(path.join(ROOT, file), "utf8"))) {
				assert.equal(batch(parsed), true, `${file}: ${text}\n${JSON.stringify(batch.errors)}`);
				const res = await node.api("/api/v1/events", { method: "POST", json: parsed });
				assert.equal(res.status, 202, `${file}: ${text} → ${JSON.stringify(res.body)}`);
				count++;
			}
		}
		assert.ok(count >= EVENT_TYPES.length + 2, `found only ${count} examples`);
	});

	void it("a node serves the published OpenAPI and AsyncAPI documents", async () => {
		const asyncapi = await readJson(`schemas/${SCHEMA_FILES.asyncapi}`);
		const served = await node.api("/api/v1/asyncapi.json");
		assert.equal(served.status, 200);
		assert.deepEqual(served.body, asyncapi);
		const openapi = await readJson(`schemas/${SCHEMA_FILES.openapi}`);
		// The services publish their routes a moment after the start: the served document converges on the file.
		await waitFor(async () => JSON.stringify((await node.api("/api/v1/openapi.json")).body) === JSON.stringify(openapi), { timeoutMs: 15_000, message: "served openapi.json ≠ schemas/openapi.json" });
		assert.equal((await node.api("/api/v1/openapi.json", { headers: { authorization: "Bearer wrong" } })).status, 401);
	});
});
