// PII masking of free text: what is masked (emails, Luhn-valid card numbers, phone numbers, values of PII-named keys)
// and, as important, what is not (dates, times, IPs, ids, order numbers).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { luhnValid, maskPii, maskPiiDeep } from "../../../models/pii.mask.ts";

describe("maskPii", () => {
	const masked: Array<[string, string, string]> = [
		["email", "mail jane.doe+crm@example.co.uk now", "mail [email] now"],
		["URL-encoded email", "/p?e=jane%40example.com&x=1", "/p?e=[email]&x=1"],
		["card with spaces (Luhn ok)", "card 4111 1111 1111 1111.", "card [card]."],
		["card with dashes", "5555-5555-5555-4444", "[card]"],
		["card digits", "pan=x 378282246310005 y", "pan=[card] 378282246310005 y".replace("378282246310005", "[card]")],
		["international phone", "call +49 170 1234567 today", "call [phone] today"],
		["URL-encoded international phone", "?q=%2B49%20170%201234567", "?q=[phone]"],
		["US phone", "(555) 123-4567 or 555-123-4567", "[phone] or [phone]"],
		["national phone with trunk 0", "tel 030 1234567, mobile 0170-1234567", "tel [phone], mobile [phone]"],
		["query key names phone", "/c?phone=0301234567&cid=c1", "/c?phone=[phone]&cid=c1"],
		["JSON key names email", "{\"email\": \"x@y.z\", \"a\": 1}", "{\"email\": \"[email]\", \"a\": 1}"],
		["JSON phone number value", "{\"mobile\":4917012345678}", "{\"mobile\":\"[phone]\"}"]
	];
	for (const [name, input, expected] of masked) it(`masks ${name}`, () => assert.equal(maskPii(input), expected));

	const kept = [
		"2026-01-31T12:00:00Z and 2026-01-31 12:00:00",
		"[10/Oct/2026:13:55:36 -0700] 200 2326",
		"from 192.168.100.200 port 8080",
		"customer 7590-VHVEG order 2026-000123 version 15.20.0",
		"order 4111111111111112 (fails Luhn) total 1.234,56",
		"epoch 1767225600 ms 1767225600123"
	];
	for (const text of kept) it(`keeps: ${text}`, () => assert.equal(maskPii(text), text));

	it("Luhn", () => {
		assert.equal(luhnValid("4111111111111111"), true);
		assert.equal(luhnValid("4111111111111112"), false);
		assert.equal(luhnValid("79927398713"), true);
		assert.equal(luhnValid(""), false);
	});

	it("masks every string of a parsed value without giving the copy a prototype from a __proto__ key", () => {
		const input = JSON.parse("{\"note\":\"a@b.co\",\"__proto__\":{\"x\":\"+49 170 1234567\"},\"list\":[\"4111 1111 1111 1111\"]}");
		const out = maskPiiDeep(input) as Record<string, unknown>;
		assert.equal(JSON.stringify(out), "{\"note\":\"[email]\",\"__proto__\":{\"x\":\"[phone]\"},\"list\":[\"[card]\"]}");
		assert.equal(Object.getPrototypeOf(out), Object.prototype);
	});
});
