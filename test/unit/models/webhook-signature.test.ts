// Webhook signatures: the HMAC over timestamp + "." + raw body, checked within the skew window.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { signWebhook, verifyWebhookSignature } from "../../../models/webhook-signature.ts";

const SECRET = "whsec-0123456789abcdef";
const NOW_S = 1_780_000_000;
const BODY = '{"specversion":"1.0"}';

describe("webhook signatures", () => {
	it("signs as documented: sha256=<hex HMAC-SHA256(secret, timestamp.body)>", () => {
		const expected = createHmac("sha256", SECRET).update(`${NOW_S}.${BODY}`).digest("hex");
		assert.equal(signWebhook(SECRET, NOW_S, BODY), `sha256=${expected}`);
		assert.equal(signWebhook(SECRET, String(NOW_S), Buffer.from(BODY)), `sha256=${expected}`);
	});

	const good = { secret: SECRET, timestamp: String(NOW_S), signature: signWebhook(SECRET, NOW_S, BODY), rawBody: BODY, nowMs: NOW_S * 1000 };
	const table: Array<[string, Partial<typeof good> & { toleranceS?: number }, RegExp | undefined]> = [
		["a correct signature", {}, undefined],
		["upper-case hex", { signature: good.signature.toUpperCase().replace("SHA256=", "sha256=") }, undefined],
		["299 s of skew", { nowMs: (NOW_S + 299) * 1000 }, undefined],
		["301 s of skew", { nowMs: (NOW_S + 301) * 1000 }, /301 s away/],
		["a timestamp from the future", { nowMs: (NOW_S - 400) * 1000 }, /400 s away/],
		["a tighter tolerance", { nowMs: (NOW_S + 31) * 1000, toleranceS: 30 }, /at most 30 s/],
		["no timestamp", { timestamp: undefined }, /missing X-Crm-Timestamp/],
		["a timestamp in ms", { timestamp: `${NOW_S}000` }, /unix seconds/],
		["a timestamp that is not a number", { timestamp: "yesterday" }, /unix seconds/],
		["no signature", { signature: undefined }, /missing X-Crm-Signature/],
		["another scheme", { signature: good.signature.replace("sha256=", "sha1=") }, /sha256=<64 hex/],
		["a truncated signature", { signature: good.signature.slice(0, -2) }, /sha256=<64 hex/],
		["another secret", { secret: "another-secret-0123456789" }, /does not match/],
		["a changed body", { rawBody: BODY.replace("1.0", "1.1") }, /does not match/],
		["a changed timestamp", { timestamp: String(NOW_S + 1) }, /does not match/]
	];
	for (const [name, over, reason] of table) {
		it(`${reason === undefined ? "accepts" : "refuses"} ${name}`, () => {
			const r = verifyWebhookSignature({ ...good, ...over });
			if (reason === undefined) assert.deepEqual(r, { ok: true });
			else {
				assert.equal(r.ok, false);
				assert.match((r as { reason: string }).reason, reason);
			}
		});
	}
});
