// Fuzzing signed webhooks (POST /webhooks/:source) over real HTTP: every hostile body that carries a valid signature
// ends as a 400 and one dead letter with its reason; unsigned or malformed requests end as 4xx and no dead letter;
// CR/LF/NUL and other junk in Idempotency-Key, X-Crm-Timestamp and X-Crm-Signature are refused; no customer changes.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { startTestNode, type TestNode } from "../support/node.ts";
import { deadLetterSink, edgeServices, postWebhook, type DeadLetter, type DeadLetterSink } from "../support/edge.ts";
import { signWebhook } from "../../models/webhook-signature.ts";
import {
	FORBIDDEN, INVALID_UTF8, assertNoCustomerChanged, customerSnapshot, fcParams, hostileTimes, nestedText, objectPaths, rawHttp, rawRequest,
	seedBanner, spliceIntoString, withKeyAt
} from "./fuzz.support.ts";
import { mutatedEvent, validEvent } from "./events.arbitraries.ts";

const SECRET = "whsec-fuzz-0123456789abcdef";
const VICTIM = "fz-wh-victim";
const MAX_BODY = 256 * 1024;

describe("fuzz: signed webhooks", () => {
	let node: TestNode;
	let port: number;
	let dead: DeadLetterSink;
	let baseline: Map<string, string>;

	async function letterFor(body: string | Buffer): Promise<DeadLetter | undefined> {
		const kept = Buffer.isBuffer(body) ? body.toString("base64") : body;
		return (await dead.list("webhook")).reverse().find(l => {
			const p = l.payload as { body: string; truncatedFrom?: number };
			return p.body === kept || (p.truncatedFrom !== undefined && kept.startsWith(p.body));
		});
	}

	/** A correctly signed hostile body: 400, a dead letter holding it with a reason, no customer changed. */
	async function deadLettered(name: string, body: string | Buffer, reason?: RegExp): Promise<void> {
		const res = await fetch(`${node.baseUrl}/webhooks/partner`, { method: "POST", headers: signed(body), body });
		const text = await res.text();
		assert.equal(res.status, 400, `${name}: ${text.slice(0, 300)}`);
		const letter = await letterFor(body);
		assert.ok(letter, `${name}: dead-lettered`);
		assert.ok(letter.reason.length > 0, `${name}: the dead letter has a reason`);
		if (reason) assert.match(letter.reason, reason, name);
	}

	function signed(body: string | Buffer, extra: Record<string, string> = {}): Record<string, string> {
		const ts = Math.floor(Date.now() / 1000);
		return { "content-type": "application/json", "x-crm-timestamp": String(ts), "x-crm-signature": signWebhook(SECRET, ts, body), ...extra };
	}

	before(async () => {
		console.log(seedBanner("test/fuzz/webhook.fuzz.test.ts"));
		node = await startTestNode({ SERVICES: edgeServices("ingest-webhook"), ACTOR_STORE: "memory", WEBHOOK_SECRET: SECRET, WEBHOOK_MAX_BODY_BYTES: String(MAX_BODY) });
		port = Number(new URL(node.baseUrl).port);
		dead = await deadLetterSink(node.broker);
		const seeded = await postWebhook(node.baseUrl, "partner", JSON.stringify(validEvent("crm.customer.updated", VICTIM)), { secret: SECRET });
		assert.equal(seeded.status, 202, JSON.stringify(seeded.body));
		baseline = await customerSnapshot(node.broker);
	});

	after(async () => {
		await node?.stop();
	});

	it("dead-letters signed hostile bodies: truncated, not UTF-8, deep, huge, prototype keys, impossible times", async () => {
		const text = JSON.stringify(validEvent("crm.page.viewed", VICTIM));
		for (const cut of [1, Math.floor(text.length / 2), text.length - 1]) await deadLettered(`truncated at ${cut}`, text.slice(0, cut), /not valid JSON/);
		await deadLettered("empty body", "", /not valid JSON/);
		for (const [name, bad] of INVALID_UTF8) await deadLettered(`${name} in data.url`, spliceIntoString(text, "\"/pricing\"", bad), /not valid UTF-8/);
		await deadLettered("data nested 20000 deep", text.replace("\"/pricing\"", nestedText(20_000)), /nested deeper/);
		await deadLettered("20000 numbers in data.url", text.replace("\"/pricing\"", `[${Array.from({ length: 20_000 }, (_, i) => i).join(",")}]`));
		await deadLettered("a batch of 1001 events", JSON.stringify(Array.from({ length: 1001 }, () => validEvent("crm.page.viewed", VICTIM))), /exceeds 1000/);
		await deadLettered("1e999 as an amount", JSON.stringify(validEvent("crm.order.status_changed", VICTIM)).replace("10.5", "1e999"), /amount/);
		await deadLettered("an amount as a string", JSON.stringify(validEvent("crm.order.status_changed", VICTIM)).replace("10.5", "\"10.5\""), /amount/);
		const profile = validEvent("crm.customer.updated", VICTIM);
		for (const path of objectPaths(profile)) {
			for (const key of FORBIDDEN) await deadLettered(`${key} at ${path.join(".") || "top"}`, withKeyAt(profile, path, key), new RegExp(key));
		}
		for (const [name, time] of hostileTimes()) await deadLettered(`time: ${name}`, JSON.stringify({ ...validEvent("crm.page.viewed", VICTIM), time }), /time/);
		// The shop mapper's own payload, hostile: a prototype key in the order, a status it does not know.
		await deadLettered("shop order with __proto__", '{"id":"evt_1","topic":"orders/updated","order":{"id":1,"customer_id":"fz-wh-victim","status":"cancelled","__proto__":{"admin":true}}}');
		assert.equal(({} as Record<string, unknown>).admin, undefined);
		await assertNoCustomerChanged(node.broker, baseline, "signed hostile bodies");
	});

	it("refuses unsigned, oversized and encoded bodies without a dead letter", async () => {
		const before = (await dead.list("webhook")).length;
		const body = JSON.stringify(validEvent("crm.page.viewed", VICTIM));
		const big = JSON.stringify({ pad: "x".repeat(MAX_BODY + 1) });
		const cases: Array<[string, string, Record<string, string>, number]> = [
			["over WEBHOOK_MAX_BODY_BYTES", big, signed(big), 413],
			["gzip Content-Encoding", body, signed(body, { "content-encoding": "gzip" }), 415],
			["signature of another body", body, { ...signed("{}") }, 401],
			["timestamp as a float", body, { ...signed(body), "x-crm-timestamp": `${Math.floor(Date.now() / 1000)}.5` }, 401],
			["timestamp in hex", body, { ...signed(body), "x-crm-timestamp": "0x10" }, 401],
			["timestamp with a sign", body, { ...signed(body), "x-crm-timestamp": `+${Math.floor(Date.now() / 1000)}` }, 401],
			["timestamp of 13 digits", body, { ...signed(body), "x-crm-timestamp": "1".repeat(13) }, 401],
			["timestamp from 1970", body, { ...signed(body), "x-crm-timestamp": "0" }, 401],
			["two signatures", body, { ...signed(body), "x-crm-signature": `${signed(body)["x-crm-signature"]}, sha256=${"0".repeat(64)}` }, 401],
			["signature in upper-case prefix", body, { ...signed(body), "x-crm-signature": signed(body)["x-crm-signature"].replace("sha256", "SHA256") }, 401]
		];
		for (const [name, b, headers, status] of cases) {
			const res = await fetch(`${node.baseUrl}/webhooks/partner`, { method: "POST", headers, body: b });
			assert.equal(res.status, status, `${name}: ${(await res.text()).slice(0, 200)}`);
		}
		assert.equal((await dead.list("webhook")).length, before, "nothing unauthenticated or unread is dead-lettered");
		await assertNoCustomerChanged(node.broker, baseline, "unsigned");
	});

	it("refuses CR, LF, NUL and other junk in Idempotency-Key, X-Crm-Timestamp and X-Crm-Signature", async () => {
		const body = JSON.stringify(validEvent("crm.page.viewed", VICTIM));
		const h = signed(body);
		const base = [`Content-Type: application/json`, `X-Crm-Timestamp: ${h["x-crm-timestamp"]}`, `X-Crm-Signature: ${h["x-crm-signature"]}`];
		const keyed = (key: string) => [...base, `Idempotency-Key: ${key}`];
		const cases: Array<[string, string[]]> = [
			["CR LF in Idempotency-Key smuggling a header", keyed("abc\r\nX-Crm-Timestamp: 0")],
			["bare CR in Idempotency-Key", keyed("abc\rdef")],
			["bare LF in Idempotency-Key", keyed("abc\ndef")],
			["NUL in Idempotency-Key", keyed("abc\u0000def")],
			["tab in Idempotency-Key", keyed("abc\tdef")],
			["space in Idempotency-Key", keyed("abc def")],
			["DEL in Idempotency-Key", keyed("abc\u007fdef")],
			["Latin-1 byte in Idempotency-Key", keyed("caf\u00e9")],
			["256 characters of Idempotency-Key", keyed("k".repeat(256))],
			["two Idempotency-Keys", [...keyed("one"), "Idempotency-Key: two"]],
			["CR LF in X-Crm-Timestamp smuggling a second one", [`Content-Type: application/json`, `X-Crm-Timestamp: ${h["x-crm-timestamp"]}\r\nX-Crm-Timestamp: 0`, `X-Crm-Signature: ${h["x-crm-signature"]}`]],
			["obs-fold in X-Crm-Signature", [`Content-Type: application/json`, `X-Crm-Timestamp: ${h["x-crm-timestamp"]}`, `X-Crm-Signature: sha256=`, ` ${h["x-crm-signature"].slice(7)}`]],
			["bare CR in X-Crm-Timestamp", [`Content-Type: application/json`, `X-Crm-Timestamp: ${h["x-crm-timestamp"]}\r1`, `X-Crm-Signature: ${h["x-crm-signature"]}`]],
			["NUL in X-Crm-Signature", [`Content-Type: application/json`, `X-Crm-Timestamp: ${h["x-crm-timestamp"]}`, `X-Crm-Signature: ${h["x-crm-signature"]}\u0000`]],
			["two X-Crm-Timestamps", [...base, `X-Crm-Timestamp: ${h["x-crm-timestamp"]}`]]
		];
		const before = (await dead.list("webhook")).length;
		for (const [name, headers] of cases) {
			const res = await rawHttp(port, rawRequest("POST", "/webhooks/partner", headers, body));
			assert.ok(res.status >= 400 && res.status < 500, `${name}: ${res.status} ${res.head.split("\r\n")[0]} ${res.body.slice(0, 200)}`);
		}
		assert.equal((await dead.list("webhook")).length, before);
		await assertNoCustomerChanged(node.broker, baseline, "header injection");
	});

	it("refuses path traversal and junk in the :source segment", async () => {
		const body = JSON.stringify(validEvent("crm.page.viewed", VICTIM));
		for (const path of ["/webhooks/..%2F..%2Fapi%2Fv1%2Fevents", "/webhooks/%2e%2e", "/webhooks/../api/v1/events", "/webhooks/a%00b", "/webhooks/" + "s".repeat(65), "/webhooks/a.b", "/webhooks/%E2%80%AE"]) {
			const res = await rawHttp(port, rawRequest("POST", path, ["Content-Type: application/json", ...Object.entries(signed(body)).filter(([k]) => k !== "content-type").map(([k, v]) => `${k}: ${v}`)], body));
			assert.ok(res.status >= 400 && res.status < 500, `${path}: ${res.status} ${res.body.slice(0, 200)}`);
			await assertNoCustomerChanged(node.broker, baseline, path);
		}
		await assertNoCustomerChanged(node.broker, baseline, "sources");
	});

	it("a duplicate id or Idempotency-Key with a different body changes nothing", async () => {
		const first = validEvent("crm.order.status_changed", "fz-wh-dup");
		assert.equal((await postWebhook(node.baseUrl, "partner", JSON.stringify(first), { secret: SECRET, idempotencyKey: "dup-1" })).status, 202);
		const before = await customerSnapshot(node.broker);
		const other = JSON.stringify({ ...first, data: { orderId: "x", newStatus: "PAID", amount: 1 } });
		const reused = await postWebhook(node.baseUrl, "partner", other, { secret: SECRET, idempotencyKey: "dup-1" });
		assert.equal(reused.status, 422);
		const sameId = await postWebhook(node.baseUrl, "partner", other, { secret: SECRET });
		assert.deepEqual(sameId.body, { accepted: 0, duplicates: 1 });
		await assertNoCustomerChanged(node.broker, before, "duplicates");
		baseline = before;
	});

	it("property: a signed event with one invalid field is refused and dead-lettered with a reason naming it", async () => {
		await fc.assert(fc.asyncProperty(mutatedEvent(VICTIM), async m => {
			const res = await fetch(`${node.baseUrl}/webhooks/partner`, { method: "POST", headers: signed(m.text), body: m.text });
			const out = await res.json() as { errors?: Array<{ reason: string }> };
			assert.equal(res.status, 400, JSON.stringify(out));
			assert.ok(out.errors?.[0]?.reason.includes(m.names), `${out.errors?.[0]?.reason} names ${m.names}`);
			const letter = await letterFor(m.text);
			assert.ok(letter?.reason.includes(m.names), `dead letter for ${m.text.slice(0, 200)}`);
		}), fcParams(80));
		await assertNoCustomerChanged(node.broker, baseline, "mutations");
	});

	it("property: any printable Idempotency-Key is answered 2xx or 4xx, replayed identically, never 5xx", async () => {
		// One body per key: a key fast-check draws twice is a replay, not a reuse with another body (that is a 422).
		const bodies = new Map<string, string>();
		await fc.assert(fc.asyncProperty(fc.string({ minLength: 1, maxLength: 300, unit: fc.integer({ min: 0x20, max: 0x7e }).map(c => String.fromCharCode(c)) }), async key => {
			// fetch() trims a header value, as any HTTP client does; what arrives is the trimmed key.
			const sent = key.trim();
			if (!bodies.has(sent)) bodies.set(sent, JSON.stringify(validEvent("crm.page.viewed", "fz-wh-keys")));
			const body = bodies.get(sent) as string;
			const first = await postWebhook(node.baseUrl, "partner", body, { secret: SECRET, idempotencyKey: key });
			const again = await postWebhook(node.baseUrl, "partner", body, { secret: SECRET, idempotencyKey: key });
			const valid = /^[\x21-\x7e]{1,255}$/.test(sent);
			assert.equal(first.status, valid ? 202 : 400, `${JSON.stringify(key)}: ${JSON.stringify(first.body)}`);
			assert.equal(again.status, first.status);
			if (valid) assert.equal(again.headers.get("idempotent-replayed"), "true");
		}), fcParams(60));
		baseline = await customerSnapshot(node.broker);
	});

	it("still answers /health/ready and applies a valid webhook afterwards", async () => {
		assert.equal((await fetch(`${node.baseUrl}/health/ready`)).status, 200);
		const res = await postWebhook(node.baseUrl, "partner", JSON.stringify(validEvent("crm.order.status_changed", VICTIM)), { secret: SECRET });
		assert.deepEqual(res.body, { accepted: 1, duplicates: 0 });
		assert.notEqual((await customerSnapshot(node.broker)).get(VICTIM), baseline.get(VICTIM));
	});
});
