// The message contract against the services that implement it: every action the contract names exists in its
// service's schema, every event a service listens to is one of the contract's, and the error catalogue's retry
// rule is what callers rely on.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Service } from "moleculer";
import { loadConfig } from "../../../config/index.ts";
import { createNode } from "../../../app/create-node.ts";
import * as contract from "../../../models/contract/index.ts";

type Group = { service: string } & Record<string, unknown>;

function groups(): Group[] {
	return (Object.values(contract) as unknown[]).filter((v): v is Group => typeof v === "object" && v !== null && typeof (v as Group).service === "string");
}

function eventNames(): Set<string> {
	const names = new Set<string>();
	for (const v of Object.values(contract) as unknown[]) {
		if (typeof v !== "object" || v === null || "service" in v) continue;
		for (const e of Object.values(v as Record<string, unknown>)) {
			const name = (e as { name?: unknown } | null)?.name;
			if (typeof name === "string") names.add(name);
		}
	}
	return names;
}

void describe("the message contract", () => {
	void it("names only actions the services define, and only the events the services listen to", async () => {
		const dir = await mkdtemp(path.join(tmpdir(), "crm-contract-"));
		try {
			const broker = await createNode(loadConfig({ DATA_DIR: dir, LOG_LEVEL: "fatal", CHURN_MODEL: "off", ACTOR_STORE: "memory", FILES_INBOX: "off" }));
			const services = new Map<string, Service>(broker.services.map(s => [s.name, s]));
			for (const g of groups()) {
				const svc = services.get(g.service);
				assert.ok(svc, `service ${g.service} of the contract is created by a node`);
				const defined = Object.keys(svc.schema.actions ?? {});
				for (const [key, a] of Object.entries(g)) {
					if (key === "service") continue;
					const name = (a as contract.Action<unknown, unknown>).name;
					assert.equal(name, `${g.service}.${key}`, `${g.service}: descriptor ${key} names its own action`);
					assert.ok(defined.includes(key), `${name} is defined by the ${g.service} service`);
				}
			}
			const known = eventNames();
			for (const svc of services.values()) {
				for (const name of Object.keys(svc.schema.events ?? {})) {
					if (name.startsWith("$")) continue;
					assert.ok(known.has(name), `${svc.name} listens to ${name}, which the contract names`);
				}
			}
		} finally {
			await rm(dir, { recursive: true, force: true });
		}
	});

	void it("one retry rule: retryable errors and the catalogue's transient types, nothing else", () => {
		const cases: Array<[unknown, boolean]> = [
			[{ retryable: true, type: "REQUEST_TIMEOUT" }, true],
			[{ type: "VERSION_CONFLICT" }, true],
			[{ type: "STORE_UNAVAILABLE", code: 503 }, true],
			[{ type: "DEAD_LETTERS_UNAVAILABLE" }, true],
			[{ type: "INVALID_EVENT", code: 422 }, false],
			[{ type: "CUSTOMER_NOT_FOUND", code: 404 }, false],
			[new Error("boom"), false],
			[null, false],
			["VERSION_CONFLICT", false]
		];
		for (const [err, expected] of cases) assert.equal(contract.isRetryable(err), expected, JSON.stringify(err));
	});

	void it("the catalogue is consistent: client errors are never retryable", () => {
		for (const [type, spec] of Object.entries(contract.ERRORS)) {
			assert.match(type, /^[A-Z][A-Z_]+$/, type);
			if (spec.status < 500) assert.equal(spec.retryable, false, `${type}: a ${spec.status} is the caller's, retrying cannot help`);
		}
	});
});
