// Credentials in URLs: which query parameters count as one, and how a URL is shown in the request log.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { credentialParam, redactUrl } from "../../../models/url-redaction.ts";

void describe("credentialParam", () => {
	const cases: Array<[string, string | undefined]> = [
		["/dashboard", undefined],
		["/dashboard?theme=dark", undefined],
		["/dashboard?key=abc", "key"],
		["/dashboard/?x=1&apiKey=abc", "apiKey"],
		["/dashboard?TOKEN=abc", "TOKEN"],
		["/dashboard?access_token=", "access_token"],
		["/dashboard?%61piKey=abc", "apiKey"],
		["/dashboard?keys=abc", undefined]
	];
	for (const [url, expected] of cases) void it(url, () => assert.equal(credentialParam(url), expected));
});

void describe("redactUrl", () => {
	void it("cuts credential values, keeps other parameters", () => {
		assert.equal(redactUrl("/api/v1/customers?limit=5&apiKey=secret-0123456789&token=t"), "/api/v1/customers?limit=5&apiKey=[redacted]&token=[redacted]");
	});
	void it("masks personal data in the path and the query", () => {
		assert.equal(redactUrl("/api/v1/customers/jane.doe@example.com"), "/api/v1/customers/[email]");
		assert.equal(redactUrl("/x?phone=%2B49%20170%201234567"), "/x?phone=[phone]");
	});
	void it("leaves a plain URL as it is", () => {
		assert.equal(redactUrl("/health/ready"), "/health/ready");
	});
});
