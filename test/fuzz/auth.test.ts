// Auth and secrets on a node running every service: each HTTP route in the api service's route table (read from it,
// not listed here) refuses a missing or wrong key except /health and /webhooks; keys and webhook signatures are
// compared in constant time (timingSafeEqual over equal-length digests, observed by a spy on node:crypto); /dashboard
// refuses a key in its URL; and no log line or dead letter carries a key, the webhook secret, or personal data.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createRequire, syncBuiltinESMExports } from "node:module";
import { API_KEY, startTestNode, type TestNode } from "../support/node.ts";
import { postWebhook } from "../support/edge.ts";
import { waitFor } from "../harness.ts";
import { captureOutput, type OutputCapture } from "../integration/ingest-sources.support.ts";
import { createKeyMatcher } from "../../services/api.service.ts";
import { signWebhook, verifyWebhookSignature } from "../../models/webhook-signature.ts";
import { assertNoCustomerChanged, customerSnapshot } from "./fuzz.support.ts";
import { validEvent } from "./events.arbitraries.ts";

const SECOND_KEY = "second-key-fedcba9876543210";
const SECRET = "whsec-auth-0123456789abcdef";
const PII = ["auth.person@example.com", "+49 170 7654321", "auth.other@example.org", "0170-7654321"];
const WRONG_KEYS = ["", "x", API_KEY.slice(0, -1), `${API_KEY}x`, API_KEY.toUpperCase(), "k".repeat(4096), `${API_KEY},${SECOND_KEY}`];

interface Alias { method: string; fullPath: string; action?: string; route: { path: string } }

/** Watches every call of crypto.timingSafeEqual (the ES module bindings follow the patched builtin). */
function spyTimingSafeEqual(): { calls: Array<[number, number]>; restore(): void } {
	const crypto = createRequire(import.meta.url)("node:crypto") as typeof import("node:crypto");
	const original = crypto.timingSafeEqual;
	const calls: Array<[number, number]> = [];
	crypto.timingSafeEqual = ((a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
		calls.push([a.byteLength, b.byteLength]);
		return original(a, b);
	}) as typeof crypto.timingSafeEqual;
	syncBuiltinESMExports();
	return {
		calls,
		restore() {
			crypto.timingSafeEqual = original;
			syncBuiltinESMExports();
		}
	};
}

describe("auth and secrets", () => {
	let node: TestNode;
	let output: OutputCapture;
	let aliases: Alias[];

	before(async () => {
		output = captureOutput();
		// Every service, as `npm start` runs them; info-level logs, as in production.
		node = await startTestNode({ API_KEYS: `${API_KEY},${SECOND_KEY}`, WEBHOOK_SECRET: SECRET, ACTOR_STORE: "memory", LOG_LEVEL: "info" });
		const api = node.broker.getLocalService("api") as unknown as { aliases: Alias[] };
		// Published REST actions are aliased a moment after their services start: wait until every one is in the table.
		type ServiceInfo = { settings?: { rest?: unknown }; actions?: Record<string, { rest?: unknown; visibility?: string }> };
		const published = () => (node.broker.registry.getServiceList({ onlyLocal: true, withActions: true }) as unknown as ServiceInfo[])
			.filter(s => s.settings?.rest !== undefined)
			.flatMap(s => Object.entries(s.actions ?? {}).filter(([, a]) => a.rest !== undefined && (a.visibility ?? "published") === "published").map(([name]) => name));
		await waitFor(() => {
			const routed = new Set(api.aliases.map(a => a.action));
			return published().length > 0 && published().every(name => routed.has(name));
		}, { timeoutMs: 15_000, message: "every published REST action is routed" });
		aliases = [...api.aliases];
	});

	after(async () => {
		output?.stop();
		await node?.stop();
	});

	function requestsOf(alias: Alias): Array<{ method: string; path: string }> {
		const path = alias.fullPath.replace(/:(\w+)\??/g, "fz-auth-probe");
		const methods = alias.method === "*" ? ["GET", "POST", "PUT", "PATCH", "DELETE"] : [alias.method];
		return methods.map(method => ({ method, path }));
	}

	it("every route but /health, /webhooks and the dashboard's static files refuses a missing or wrong key", async () => {
		const protectedAliases = aliases.filter(a => !["/health", "/webhooks", "/dashboard"].includes(a.route.path));
		const paths = protectedAliases.map(a => `${a.method} ${a.fullPath}`);
		// The table is the api's own: it lists the other services' routes too, so a new one cannot be forgotten here.
		for (const expected of ["POST /api/v1/events", "GET /api/v1/customers/:id", "GET /api/v1/dead-letters", "POST /api/v1/devices"]) {
			assert.ok(paths.includes(expected), `${expected} in ${paths.join(", ")}`);
		}
		assert.ok(protectedAliases.length >= 15, `${protectedAliases.length} protected routes`);
		assert.ok(protectedAliases.every(a => a.route.path === "/api/v1"), "every other route lives under /api/v1");
		const before = await customerSnapshot(node.broker);
		const authorizations = [undefined, ...WRONG_KEYS.map(k => `Bearer ${k}`), `bearer ${API_KEY}`, `Basic ${Buffer.from(`x:${API_KEY}`).toString("base64")}`, API_KEY, `Token ${API_KEY}`];
		for (const alias of protectedAliases) {
			for (const { method, path } of requestsOf(alias)) {
				for (const authorization of authorizations) {
					const headers: Record<string, string> = { "content-type": "application/json" };
					if (authorization !== undefined) headers.authorization = authorization;
					const body = method === "GET" || method === "DELETE" ? undefined : JSON.stringify(validEvent("crm.page.viewed", "fz-auth"));
					const res = await fetch(`${node.baseUrl}${path}?key=${API_KEY}&apiKey=${API_KEY}&token=${API_KEY}`, { method, headers, body });
					assert.equal(res.status, 401, `${method} ${path} with ${authorization === undefined ? "no Authorization" : JSON.stringify(authorization.slice(0, 40))}: ${res.status}`);
					await res.arrayBuffer();
				}
			}
		}
		// Paths that are no route (moleculer-web's own list-aliases included) answer 404 before authentication: no data.
		for (const path of ["/api/v1/nope", "/api/v1/list-aliases", "/api/v1/", "/api/v1/customers/x/../../events"]) {
			const status = (await fetch(`${node.baseUrl}${path}`)).status;
			assert.ok(status === 401 || status === 404, `${path}: ${status}`);
		}
		await assertNoCustomerChanged(node.broker, before, "requests without a valid key");
		// The same requests with either valid key get past authentication (so the 401s above were about the key).
		for (const key of [API_KEY, SECOND_KEY]) {
			const ok = await fetch(`${node.baseUrl}/api/v1/customers?limit=1`, { headers: { authorization: `Bearer ${key}` } });
			assert.equal(ok.status, 200);
		}
	});

	it("/health and /webhooks need no key; /dashboard serves its files but refuses a key in the URL", async () => {
		assert.equal((await fetch(`${node.baseUrl}/health/live`)).status, 200);
		assert.equal((await fetch(`${node.baseUrl}/health/ready`)).status, 200);
		const body = JSON.stringify(validEvent("crm.page.viewed", "fz-auth-webhook"));
		assert.equal((await postWebhook(node.baseUrl, "partner", body, { secret: SECRET })).status, 202);
		const page = await fetch(`${node.baseUrl}/dashboard/`);
		assert.equal(page.status, 200);
		assert.ok(!(await page.text()).includes(API_KEY), "the page holds no key");
		for (const param of ["key", "apiKey", "token", "access_token", "API_KEY", "Token"]) {
			for (const path of ["/dashboard", "/dashboard/", "/dashboard/index.html", "/dashboard/dashboard.js"]) {
				for (const value of [API_KEY, "wrong-key-0000000000000"]) {
					const res = await fetch(`${node.baseUrl}${path}?${param}=${value}`);
					const text = await res.text();
					assert.equal(res.status, 400, `${path}?${param}=…: ${res.status}`);
					assert.ok(!text.includes(value), "the refusal does not echo the key");
					assert.match(text, /CREDENTIAL_IN_URL/);
				}
			}
		}
		assert.equal((await fetch(`${node.baseUrl}/dashboard/?theme=dark`)).status, 200, "other parameters are fine");
	});

	it("API keys are compared in constant time: timingSafeEqual over 32-byte digests, against every configured key", () => {
		const spy = spyTimingSafeEqual();
		try {
			const matches = createKeyMatcher([API_KEY, SECOND_KEY]);
			assert.equal(matches(API_KEY), true);
			assert.equal(matches(SECOND_KEY), true);
			for (const wrong of WRONG_KEYS) assert.equal(matches(wrong), false, JSON.stringify(wrong.slice(0, 30)));
			assert.equal(spy.calls.length, 2 * (2 + WRONG_KEYS.length), "each check compares against both keys, whichever matches");
			for (const [a, b] of spy.calls) assert.deepEqual([a, b], [32, 32], "equal-length SHA-256 digests, whatever the key lengths");
		} finally {
			spy.restore();
		}
	});

	it("the running node compares keys and webhook signatures with timingSafeEqual too", async () => {
		const spy = spyTimingSafeEqual();
		try {
			for (const key of ["short", API_KEY.slice(0, -1), "z".repeat(500)]) {
				assert.equal((await fetch(`${node.baseUrl}/api/v1/customers?limit=1`, { headers: { authorization: `Bearer ${key}` } })).status, 401);
			}
			assert.ok(spy.calls.length >= 6, `${spy.calls.length} comparisons for 3 requests`);
			assert.ok(spy.calls.every(([a, b]) => a === 32 && b === 32));
			spy.calls.length = 0;
			const ts = Math.floor(Date.now() / 1000);
			const check = verifyWebhookSignature({ secret: SECRET, timestamp: String(ts), signature: signWebhook("not-the-secret-0123456789", ts, "{}"), rawBody: "{}", nowMs: Date.now() });
			assert.equal(check.ok, false);
			assert.deepEqual(spy.calls, [[32, 32]], "one comparison of two HMAC-SHA256 digests");
		} finally {
			spy.restore();
		}
	});

	it("no log line or dead letter carries an API key, the webhook secret, or an unmasked e-mail or phone number", async () => {
		const [email, phone, email2, phone2] = PII;
		// Valid personal data in: it lands in the customer's profile, not in a log line.
		const profile = { ...validEvent("crm.customer.updated", "fz-auth-pii"), data: { profile: { email, phone } } };
		assert.equal((await node.api("/api/v1/events", { method: "POST", json: profile })).status, 202);
		// Invalid input quoting personal data where a reason would quote it: a field name, a customer id, a URL.
		const hostile = [
			{ ...validEvent("crm.customer.updated", "fz-auth-pii"), data: { profile: { [email2.replace(/[@.]/g, "_")]: 1, "x-y": phone2 } } },
			{ ...validEvent("crm.page.viewed", email), data: { url: 42, referrer: `/contact?email=${email}` } },
			{ ...validEvent("crm.customer.updated", "fz-auth-pii"), data: { profile: { email: "not an email", phone } } }
		];
		for (const event of hostile) {
			assert.equal((await node.api("/api/v1/events", { method: "POST", json: event })).status, 400);
			assert.equal((await postWebhook(node.baseUrl, "partner", JSON.stringify(event), { secret: SECRET })).status, 400);
		}
		// A key for a field name: the reason quotes it.
		const keyedField = { ...validEvent("crm.customer.updated", "fz-auth-pii"), data: { profile: { [`${email}`]: "x" } } };
		assert.equal((await postWebhook(node.baseUrl, "partner", JSON.stringify(keyedField), { secret: SECRET })).status, 400);
		// Keys and secrets where careless code would log them: wrong keys, keys in URLs, a customer id that is an e-mail.
		await fetch(`${node.baseUrl}/api/v1/customers/${encodeURIComponent(email)}?apiKey=${API_KEY}`, { headers: { authorization: `Bearer ${SECOND_KEY}x` } });
		await fetch(`${node.baseUrl}/api/v1/customers/${email}`, { headers: { authorization: `Bearer ${API_KEY}` } });
		await fetch(`${node.baseUrl}/dashboard/?key=${API_KEY}`);
		await postWebhook(node.baseUrl, "partner", "{}", { secret: `${SECRET}-wrong` });
		await postWebhook(node.baseUrl, "partner", "{}", { secret: SECRET, signature: `sha256=${SECRET}` });

		const letters = await node.broker.call<Array<{ reason: string; payload: unknown }>, unknown>("deadLetters.list", { limit: 500 });
		assert.ok(letters.length >= hostile.length, "the hostile webhooks were dead-lettered");
		const logged = output.text();
		assert.ok(logged.includes("dead letter"), "the logger output is captured");
		const lettersText = JSON.stringify(letters);
		const reasons = JSON.stringify(letters.map(l => l.reason));
		for (const secret of [API_KEY, SECOND_KEY, SECRET]) {
			assert.ok(!logged.includes(secret), `a log line carries ${secret}`);
			assert.ok(!lettersText.includes(secret), `a dead letter carries ${secret}`);
		}
		for (const pii of PII) {
			assert.ok(!logged.includes(pii), `a log line carries ${pii}`);
			assert.ok(!reasons.includes(pii), `a dead-letter reason carries ${pii}`);
		}
		assert.match(reasons, /\[email\]/, "the reason that quoted an address shows it masked");
	});
});
