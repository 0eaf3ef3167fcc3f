// The edge's rules, table-driven: what a failed call to the actors means (the one retry rule), and the typed code
// the validator gives each kind of invalid input (dead-letter reason codes are never guessed from text).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Errors } from "moleculer";
import { classifyFailure } from "../../../edge/event.sink.ts";
import { validateEvent } from "../../../models/cloud-event.validator.ts";

void describe("classifyFailure", () => {
	const cases: Array<[string, unknown, ReturnType<typeof classifyFailure>["kind"], string?]> = [
		["a lost compare-and-set", new Errors.MoleculerRetryableError("conflict", 503, "VERSION_CONFLICT"), "retry"],
		["a timeout", new Errors.RequestTimeoutError({ action: "customers.handle", nodeID: "n1" }), "retry"],
		["no customers node", new Errors.ServiceNotAvailableError({ action: "customers.handle" }), "retry"],
		["a plain object crossing the wire", { type: "STORE_UNAVAILABLE", message: "down" }, "retry"],
		["the validator's refusal", new Errors.MoleculerClientError("bad", 422, "INVALID_EVENT", { code: "forbidden_key", reason: "data has forbidden key" }), "rejected", "forbidden_key"],
		["an old refusal without a code", new Errors.MoleculerClientError("bad", 422, "INVALID_EVENT"), "rejected", "invalid_event"],
		["another client error", new Errors.MoleculerClientError("read-only", 409, "READ_ONLY"), "rejected", "rejected"],
		["a bug", new TypeError("x is undefined"), "fault"]
	];
	for (const [name, err, kind, code] of cases) {
		void it(`${name} → ${kind}${code ? ` (${code})` : ""}`, () => {
			const r = classifyFailure(err);
			assert.equal(r.kind, kind);
			if (code !== undefined) assert.equal(r.kind === "rejected" ? r.code : undefined, code);
			if (r.kind === "rejected") assert.match(r.reason, /^rejected by the customer actor: /);
		});
	}
});

void describe("validateEvent codes", () => {
	const ok = { specversion: "1.0", id: "e1", source: "/t", type: "crm.page.viewed", subject: "c-1", time: "2026-01-01T00:00:00Z", data: { url: "/" } };
	const cases: Array<[string, unknown, string]> = [
		["not an object", [1], "invalid_event"],
		["unknown type", { ...ok, type: "crm.x.y" }, "unknown_type"],
		["no subject", { ...ok, subject: undefined }, "missing_customer"],
		["a bad subject", { ...ok, subject: "../etc" }, "missing_customer"],
		["data over 64 KiB", { ...ok, data: { url: "x".repeat(70_000) } }, "oversize"],
		["__proto__ in data", JSON.parse('{"specversion":"1.0","id":"e1","source":"/t","type":"crm.page.viewed","subject":"c-1","time":"2026-01-01T00:00:00Z","data":{"url":"/","__proto__":{}}}'), "forbidden_key"],
		["constructor at the top", { ...ok, constructor: 1 }, "forbidden_key"],
		["a bad payload field", { ...ok, data: { url: 5 } }, "invalid_event"],
		["a time in the future", { ...ok, time: "2999-01-01T00:00:00Z" }, "invalid_event"]
	];
	for (const [name, input, code] of cases) {
		void it(`${name} → ${code}`, () => {
			const v = validateEvent(input);
			assert.equal(v.ok, false);
			if (!v.ok) assert.equal(v.code, code, v.reason);
		});
	}
});
