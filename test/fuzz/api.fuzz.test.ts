// Fuzzing POST /api/v1/events over real HTTP: a hand-written hostile corpus (truncated, oversized and non-UTF-8 bodies,
// deep nesting, huge arrays, prototype keys at every depth, numbers as strings, non-finite numbers, impossible times,
// CR/LF and NUL in header values) and fast-check properties beside it. Every input must end as a 4xx, change no
// customer, and leave the node answering /health/ready and applying the next valid event.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { API_KEY, startTestNode, type TestNode } from "../support/node.ts";
import {
	FORBIDDEN, INVALID_UTF8, NON_NUMBERS, assertNoCustomerChanged, customerSnapshot, fcParams, hostileTimes, nestedArrayText, nestedText,
	objectPaths, rawHttp, rawRequest, seedBanner, spliceIntoString, withKeyAt
} from "./fuzz.support.ts";
import { mutatedEvent, validEvent } from "./events.arbitraries.ts";
import { validateEvents } from "../../models/cloud-event.validator.ts";

const VICTIM = "fz-api-victim";

interface Posted { status: number; body: any; text: string }

describe("fuzz: POST /api/v1/events", () => {
	let node: TestNode;
	let port: number;
	let baseline: Map<string, string>;

	async function post(body: string | Buffer, headers: Record<string, string> = {}): Promise<Posted> {
		const res = await fetch(`${node.baseUrl}/api/v1/events`, {
			method: "POST", headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json", ...headers }, body
		});
		const text = await res.text();
		let parsed: unknown = null;
		try {
			parsed = JSON.parse(text);
		} catch {
			// kept as text for the message
		}
		return { status: res.status, body: parsed, text };
	}

	/** Posts one hostile body: a 4xx with a JSON error naming why, and no customer changed. */
	async function refused(name: string, body: string | Buffer, opts: { status?: number; reason?: RegExp; headers?: Record<string, string> } = {}): Promise<Posted> {
		const res = await post(body, opts.headers);
		assert.ok(res.status >= 400 && res.status < 500, `${name}: expected a 4xx, got ${res.status} ${res.text.slice(0, 300)}`);
		if (opts.status !== undefined) assert.equal(res.status, opts.status, `${name}: ${res.text.slice(0, 300)}`);
		assert.ok(res.body !== null && (Array.isArray(res.body.errors) || typeof res.body.error === "object"), `${name}: a JSON error body, got ${res.text.slice(0, 200)}`);
		if (opts.reason) assert.match(res.text, opts.reason, name);
		return res;
	}

	before(async () => {
		console.log(seedBanner("test/fuzz/api.fuzz.test.ts"));
		node = await startTestNode({ SERVICES: "customers,api", ACTOR_STORE: "memory" });
		port = Number(new URL(node.baseUrl).port);
		// The customer most hostile events name: any of them applied would bump its version.
		const seeded = await post(JSON.stringify(validEvent("crm.customer.updated", VICTIM)));
		assert.equal(seeded.status, 202, seeded.text);
		baseline = await customerSnapshot(node.broker);
	});

	after(async () => {
		await node?.stop();
	});

	it("refuses truncated, empty, oversized and non-JSON bodies", async () => {
		const text = JSON.stringify([validEvent("crm.order.status_changed", VICTIM), validEvent("crm.page.viewed", VICTIM)]);
		for (const cut of [1, 2, 17, Math.floor(text.length / 2), text.length - 2, text.length - 1]) {
			await refused(`truncated at ${cut} of ${text.length}`, text.slice(0, cut), { status: 400 });
		}
		await refused("empty body", "", { status: 400 });
		await refused("whitespace", " \r\n\t ", { status: 400 });
		await refused("a NUL byte", "\u0000", { status: 400, reason: /not valid JSON/ });
		await refused("NaN literal", JSON.stringify(validEvent("crm.order.status_changed", VICTIM)).replace("10.5", "NaN"), { status: 400, reason: /not valid JSON/ });
		await refused("a number", "42", { status: 400 });
		await refused("null", "null", { status: 400 });
		await refused("an empty batch", "[]", { status: 400, reason: /batch is empty/ });
		await refused("9 MB body (over the 8 MB limit)", JSON.stringify({ pad: "x".repeat(9 * 1024 * 1024) }), { status: 413 });
		const bigData = validEvent("crm.page.viewed", VICTIM);
		(bigData.data as Record<string, unknown>).referrer = "r".repeat(70_000);
		await refused("data over 64 KiB", JSON.stringify(bigData), { status: 400, reason: /exceeds 64 KiB/ });
		await refused("gzip header on a plain body", text, { status: 415, headers: { "content-encoding": "gzip" } });
		await refused("UTF-16 charset", text, { status: 415, headers: { "content-type": "application/json; charset=utf-16" } });
		await refused("Latin-1 charset", text, { status: 415, headers: { "content-type": "application/json; charset=latin1" } });
		await refused("text/plain", text, { status: 400, headers: { "content-type": "text/plain" } });
		await assertNoCustomerChanged(node.broker, baseline, "bodies");
	});

	it("refuses bodies that are not UTF-8, wherever the bad bytes are", async () => {
		const text = JSON.stringify(validEvent("crm.page.viewed", VICTIM));
		for (const [name, bad] of INVALID_UTF8) {
			await refused(`${name} inside data.url`, spliceIntoString(text, "\"/pricing\"", bad), { status: 400, reason: /not valid UTF-8/ });
			await refused(`${name} at the end`, Buffer.concat([Buffer.from(text), bad]), { status: 400 });
		}
		await assertNoCustomerChanged(node.broker, baseline, "invalid UTF-8");
	});

	it("refuses deep nesting and huge arrays", async () => {
		const event = validEvent("crm.page.viewed", VICTIM);
		const eventText = JSON.stringify(event);
		for (const depth of [16, 100, 10_000, 100_000]) {
			await refused(`data nested ${depth} deep`, eventText.replace("\"/pricing\"", nestedText(depth)), { status: 400 });
		}
		await refused("an array nested 100000 deep", nestedArrayText(100_000), { status: 400 });
		await refused("100000 numbers in data.url", eventText.replace("\"/pricing\"", `[${Array.from({ length: 100_000 }, (_, i) => i).join(",")}]`), { status: 400 });
		await refused("a batch of 1001 events", JSON.stringify(Array.from({ length: 1001 }, () => validEvent("crm.page.viewed", VICTIM))), { status: 400, reason: /exceeds 1000/ });
		// All-or-nothing: 999 valid events and one bad one apply nothing.
		const batch = Array.from({ length: 1000 }, (_, i) => validEvent("crm.page.viewed", i % 2 ? VICTIM : `fz-api-batch-${i}`));
		(batch[999].data as Record<string, unknown>).url = 42;
		const res = await refused("a 1000-event batch with its last event invalid", JSON.stringify(batch), { status: 400 });
		assert.deepEqual(res.body.errors.map((e: { index: number }) => e.index), [999]);
		await assertNoCustomerChanged(node.broker, baseline, "nesting and arrays");
	});

	it("refuses __proto__, constructor and prototype keys at every depth of an event", async () => {
		const event = validEvent("crm.customer.updated", VICTIM);
		const paths = objectPaths(event);
		assert.ok(paths.length >= 3, "the top level, data and data.profile");
		for (const path of paths) {
			for (const key of FORBIDDEN) {
				await refused(`${key} at ${path.join(".") || "the top level"}`, withKeyAt(event, path, key), { status: 400, reason: new RegExp(`forbidden key \\\\"${key}\\\\"|invalid field name \\\\"${key}\\\\"`) });
				// One level deeper than the event has: inside a new object under each path.
				await refused(`${key} one level below ${path.join(".") || "the top level"}`, withKeyAt(event, [...path, "nested"], key), { status: 400 });
			}
		}
		assert.equal(({} as Record<string, unknown>).polluted, undefined, "Object.prototype untouched");
		await assertNoCustomerChanged(node.broker, baseline, "prototype keys");
	});

	it("refuses numbers as strings and non-finite numbers in every numeric field", async () => {
		const fields: Array<[string, string, string]> = [
			["crm.order.status_changed", "amount", "10.5"],
			["crm.interaction.logged", "sentiment", "-0.5"],
			["crm.device.telemetry", "temperatureC", "21.5"],
			["crm.market.signal", "price", "29.99"],
			["crm.payment.failed", "amount", "20"]
		];
		for (const [type, field, valid] of fields) {
			const text = JSON.stringify(validEvent(type, VICTIM));
			for (const [name, literal] of NON_NUMBERS) {
				const body = text.replace(`"${field}":${valid}`, `"${field}":${literal}`);
				assert.notEqual(body, text, `${type}.${field} found`);
				await refused(`${type} ${field} = ${name}`, body, { status: 400, reason: new RegExp(field) });
			}
		}
		await assertNoCustomerChanged(node.broker, baseline, "numbers");
	});

	it("refuses future, pre-1970 and impossible event times", async () => {
		for (const [name, time] of hostileTimes()) {
			await refused(`time: ${name}`, JSON.stringify({ ...validEvent("crm.page.viewed", VICTIM), time }), { status: 400, reason: /time/ });
		}
		await assertNoCustomerChanged(node.broker, baseline, "times");
	});

	it("a duplicate id with a different body is a duplicate: the first body stays", async () => {
		const first = validEvent("crm.order.status_changed", "fz-api-dup");
		assert.deepEqual((await post(JSON.stringify(first))).body, { accepted: 1, duplicates: 0 });
		const before = await customerSnapshot(node.broker);
		const changed = { ...first, data: { orderId: "other", newStatus: "PAID", amount: 99999 } };
		for (const body of [changed, { ...first, type: "crm.payment.failed", data: { paymentId: "p", amount: 1 } }]) {
			const res = await post(JSON.stringify(body));
			assert.equal(res.status, 202, res.text);
			assert.deepEqual(res.body, { accepted: 0, duplicates: 1 });
		}
		// In one batch: the first of two bodies with one id is applied, the second is its duplicate.
		const twin = validEvent("crm.page.viewed", "fz-api-dup");
		const batch = await post(JSON.stringify([twin, { ...twin, data: { url: "/other" } }]));
		assert.deepEqual(batch.body, { accepted: 1, duplicates: 1 });
		const journal = await node.api("/api/v1/customers/fz-api-dup/events?limit=10");
		assert.deepEqual(journal.body.map((e: { event: { data: unknown } }) => e.event.data), [twin.data, first.data]);
		const after = await customerSnapshot(node.broker);
		assert.notEqual(after.get("fz-api-dup"), before.get("fz-api-dup"), "the new page view was applied");
		baseline = after;
	});

	it("customer ids that name Object.prototype members are ordinary customers of their own", async () => {
		// Valid ids by the contract (a letter first): any store or cache keyed by a plain object would confuse them.
		const ids = ["constructor", "toString", "hasOwnProperty", "valueOf", "isPrototypeOf", "propertyIsEnumerable"];
		for (const id of ids) {
			const res = await post(JSON.stringify(validEvent("crm.order.status_changed", id)));
			assert.deepEqual(res.body, { accepted: 1, duplicates: 0 }, id);
		}
		for (const id of ids) {
			const c = await node.api(`/api/v1/customers/${id}`);
			assert.equal(c.status, 200, id);
			assert.equal(c.body.id, id);
			assert.equal(c.body.version, 1, `${id}: exactly its own event`);
			assert.equal(c.body.risk.score, 10, id);
		}
		assert.equal(typeof ({} as { constructor: unknown }).constructor, "function", "Object.prototype untouched");
		assert.equal((await node.api("/api/v1/customers/__proto__")).status, 400, "__proto__ is not a customer id");
		baseline = await customerSnapshot(node.broker);
	});

	it("refuses CR, LF and NUL inside header values before anything is read", async () => {
		const body = JSON.stringify(validEvent("crm.page.viewed", VICTIM));
		const cases: Array<[string, string[]]> = [
			["bare CR in Authorization", [`Authorization: Bearer ${API_KEY}\rX-Injected: 1`, "Content-Type: application/json"]],
			["NUL in Content-Type", [`Authorization: Bearer ${API_KEY}`, "Content-Type: application/json\u0000"]],
			["LF-only line break with an injected header", [`Authorization: Bearer ${API_KEY}\nX-Injected: 1`, "Content-Type: application/json"]],
			["obs-fold continuation of Authorization", [`Authorization: Bearer`, ` ${API_KEY}`, "Content-Type: application/json"]],
			["a key followed by CR and a second key", [`Authorization: Bearer wrong-key-000000000000\r${API_KEY}`, "Content-Type: application/json"]]
		];
		for (const [name, headers] of cases) {
			const res = await rawHttp(port, rawRequest("POST", "/api/v1/events", headers, body));
			assert.ok(res.status >= 400 && res.status < 500, `${name}: ${res.status} ${res.head}`);
		}
		await assertNoCustomerChanged(node.broker, baseline, "header injection");
	});

	it("property: any strict prefix of a valid batch is refused", async () => {
		await fc.assert(fc.asyncProperty(
			fc.array(fc.constantFrom("crm.page.viewed", "crm.order.status_changed", "crm.customer.updated"), { minLength: 1, maxLength: 4 }),
			fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
			async (types, at) => {
				const text = JSON.stringify(types.map(t => validEvent(t, VICTIM)));
				const cut = Math.floor(at * (text.length - 1)) + 1;
				await refused(`prefix ${cut}/${text.length}`, text.slice(0, cut), { status: 400 });
			}
		), fcParams(40));
		await assertNoCustomerChanged(node.broker, baseline, "prefixes");
	});

	it("property: one invalid attribute or payload field is refused with a reason naming it", async () => {
		await fc.assert(fc.asyncProperty(mutatedEvent(VICTIM), async m => {
			const res = await refused(`${m.type} ${m.path.join(".")} = ${JSON.stringify(m.value)?.slice(0, 80)}`, m.text, { status: 400 });
			assert.equal(res.body.errors.length, 1);
			assert.ok(res.body.errors[0].reason.includes(m.names), `reason "${res.body.errors[0].reason}" names ${m.names}`);
		}), fcParams(150));
		await assertNoCustomerChanged(node.broker, baseline, "mutations");
	});

	it("property: arbitrary JSON never gets a 5xx, and is applied only when it is a valid event", async () => {
		const eventish = fc.record({
			specversion: fc.oneof(fc.constant("1.0"), fc.jsonValue({ maxDepth: 2 })),
			id: fc.oneof(fc.string(), fc.jsonValue({ maxDepth: 2 })),
			source: fc.oneof(fc.constant("/fuzz"), fc.jsonValue({ maxDepth: 2 })),
			type: fc.oneof(fc.constantFrom("crm.page.viewed", "crm.customer.updated"), fc.jsonValue({ maxDepth: 2 })),
			subject: fc.oneof(fc.constant(VICTIM), fc.jsonValue({ maxDepth: 2 })),
			time: fc.oneof(fc.constant(new Date(Date.now() - 60_000).toISOString()), fc.jsonValue({ maxDepth: 2 })),
			data: fc.jsonValue({ maxDepth: 4 })
		}, { requiredKeys: [] });
		await fc.assert(fc.asyncProperty(fc.oneof(fc.jsonValue({ maxDepth: 5 }), eventish, fc.array(eventish, { maxLength: 3 })), async value => {
			const text = JSON.stringify(value);
			const expectedValid = validateEvents(JSON.parse(text)).ok;
			const res = await post(text);
			assert.ok(res.status < 500, `5xx for ${text.slice(0, 300)}: ${res.text.slice(0, 300)}`);
			if (expectedValid) {
				assert.equal(res.status, 202, res.text);
				baseline = await customerSnapshot(node.broker);
			} else {
				assert.ok(res.status >= 400, `${res.status} for ${text.slice(0, 300)}`);
				await assertNoCustomerChanged(node.broker, baseline, text.slice(0, 200));
			}
		}), fcParams(150));
	});

	it("property: invalid UTF-8 anywhere inside a string value is refused", async () => {
		const text = JSON.stringify(validEvent("crm.customer.updated", VICTIM));
		// Positions just inside a string value: after a `":"` opening quote.
		const starts = [...text.matchAll(/":"/g)].map(m => (m.index ?? 0) + 3);
		await fc.assert(fc.asyncProperty(fc.constantFrom(...starts), fc.constantFrom(...INVALID_UTF8), async (at, [, bad]) => {
			const body = Buffer.concat([Buffer.from(text.slice(0, at)), bad, Buffer.from(text.slice(at))]);
			await refused(`invalid UTF-8 at ${at}`, body, { status: 400, reason: /not valid UTF-8/ });
		}), fcParams(30));
		await assertNoCustomerChanged(node.broker, baseline, "UTF-8 property");
	});

	it("still answers /health/ready and applies a valid event afterwards", async () => {
		assert.equal((await fetch(`${node.baseUrl}/health/ready`)).status, 200);
		const before = await customerSnapshot(node.broker);
		const res = await post(JSON.stringify(validEvent("crm.order.status_changed", VICTIM)));
		assert.deepEqual(res.body, { accepted: 1, duplicates: 0 });
		const after = await customerSnapshot(node.broker);
		assert.notEqual(after.get(VICTIM), before.get(VICTIM), "the valid event changed the victim");
	});
});
