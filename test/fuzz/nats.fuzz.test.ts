// Fuzzing JetStream ingestion (crm.events.>) against a real nats-server -js: every hostile message — not UTF-8, not
// JSON, too deep, too big, prototype keys at every depth, non-numbers, impossible times, bad subjects — becomes one
// dead letter in CRM_DLQ with its reason and code, no customer changes, and a valid event published after them is
// applied. A fast-check property publishes events with one invalid field and expects a dead letter naming it.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { connect, type JetStreamClient, type NatsConnection } from "nats";
import { startNats, waitFor, type ServerHandle } from "../harness.ts";
import { startTestNode, type TestNode } from "../support/node.ts";
import { publish, subjectOf } from "../integration/ingest-nats.support.ts";
import {
	FORBIDDEN, INVALID_UTF8, NON_NUMBERS, assertNoCustomerChanged, customerSnapshot, fcParams, hostileTimes, nestedText, objectPaths,
	seedBanner, spliceIntoString, withKeyAt
} from "./fuzz.support.ts";
import { mutatedEvent, validEvent } from "./events.arbitraries.ts";

const VICTIM = "fz-nats-victim";

interface Letter { id: string; source: string; reason: string; reasonCode: string; msgId?: string; subject?: string }

describe("fuzz: NATS JetStream ingestion", () => {
	let nats: ServerHandle;
	let node: TestNode;
	let nc: NatsConnection;
	let js: JetStreamClient;
	let baseline: Map<string, string>;
	let batch = 0;

	// Market records are dead-lettered under source "market", every other subject under "nats".
	const letters = async () => [
		...await node.broker.call<Letter[], unknown>("deadLetters.list", { source: "nats", limit: 500 }),
		...await node.broker.call<Letter[], unknown>("deadLetters.list", { source: "market", limit: 500 })
	];

	/**
	 * Publishes hostile messages (each under its own Nats-Msg-Id), then a valid sentinel event; once the sentinel is
	 * applied, expects exactly one dead letter per hostile message, and returns them by message.
	 */
	async function feed(messages: Array<{ subject: string; body: string | Uint8Array }>): Promise<Letter[]> {
		const tag = `fz-${++batch}`;
		for (const [i, m] of messages.entries()) await publish(js, m.body, { subject: m.subject, msgId: `${tag}/${i}` });
		const sentinel = `fz-nats-sentinel-${batch}`;
		const event = validEvent("crm.page.viewed", sentinel);
		await publish(js, JSON.stringify(event), { subject: subjectOf("crm.page.viewed"), msgId: `${tag}/sentinel` });
		await waitFor(() => node.broker.call("customers.get", { customerId: sentinel }).then(() => true, () => false), { timeoutMs: 20_000, message: "the valid event after the hostile ones was applied" });
		let found: Letter[] = [];
		await waitFor(async () => {
			found = (await letters()).filter(l => l.msgId?.startsWith(`${tag}/`));
			return found.length >= messages.length;
		}, { timeoutMs: 20_000, message: `${messages.length} dead letters for batch ${tag}` });
		assert.equal(found.length, messages.length, "one dead letter per hostile message");
		baseline.set(sentinel, (await customerSnapshot(node.broker)).get(sentinel) as string);
		return messages.map((_, i) => found.find(l => l.msgId === `${tag}/${i}`) as Letter);
	}

	before(async () => {
		console.log(seedBanner("test/fuzz/nats.fuzz.test.ts"));
		nats = await startNats();
		node = await startTestNode({
			NATS_URL: nats.url, ACTOR_STORE: "memory", SERVICES: "customers,api,deadLetters,ingest-nats",
			INGEST_NATS_ACK_WAIT_MS: "2000", INGEST_NATS_LEASE_TTL_MS: "3000", INGEST_NATS_RETRY_MAX_MS: "300"
		});
		nc = await connect({ servers: nats.url });
		js = nc.jetstream();
		await waitFor(async () => ((await node.broker.call<{ leaderships: number } | null>("ingest-nats.stats"))?.leaderships ?? 0) > 0, { message: "ingest-nats leads" });
		await publish(js, JSON.stringify(validEvent("crm.customer.updated", VICTIM)), { subject: subjectOf("crm.customer.updated"), msgId: "seed" });
		await waitFor(() => node.broker.call("customers.get", { customerId: VICTIM }).then(() => true, () => false), { message: "victim seeded" });
		baseline = await customerSnapshot(node.broker);
	});

	after(async () => {
		await nc?.close();
		await node?.stop();
		await nats?.stop();
	});

	it("dead-letters hostile bodies with a reason and a code", async () => {
		const page = JSON.stringify(validEvent("crm.page.viewed", VICTIM));
		const order = JSON.stringify(validEvent("crm.order.status_changed", VICTIM));
		const pageSubject = subjectOf("crm.page.viewed");
		const orderSubject = subjectOf("crm.order.status_changed");
		const cases: Array<{ name: string; subject: string; body: string | Uint8Array; code: string; reason?: RegExp }> = [
			{ name: "empty", subject: pageSubject, body: "", code: "invalid_json" },
			{ name: "truncated", subject: pageSubject, body: page.slice(0, page.length - 1), code: "invalid_json" },
			{ name: "NaN literal", subject: orderSubject, body: order.replace("10.5", "NaN"), code: "invalid_json" },
			{ name: "over the message size limit", subject: pageSubject, body: JSON.stringify({ pad: "x".repeat(300_000) }), code: "oversize" },
			{ name: "data over 64 KiB", subject: pageSubject, body: page.replace("\"/pricing\"", `"/${"p".repeat(70_000)}"`), code: "oversize" },
			{ name: "nested 20000 deep", subject: pageSubject, body: page.replace("\"/pricing\"", nestedText(20_000)), code: "invalid_event", reason: /nested deeper/ },
			{ name: "10000 numbers as the url", subject: pageSubject, body: page.replace("\"/pricing\"", `[${Array.from({ length: 10_000 }, (_, i) => i).join(",")}]`), code: "invalid_event", reason: /data\.url/ },
			{ name: "30000 numbers as the url (over 64 KiB)", subject: pageSubject, body: page.replace("\"/pricing\"", `[${Array.from({ length: 30_000 }, (_, i) => i).join(",")}]`), code: "oversize" },
			{ name: "an array of events", subject: pageSubject, body: `[${page}]`, code: "invalid_event", reason: /JSON object/ },
			{ name: "unknown type on its own subject", subject: "crm.events.spaceship.launched", body: JSON.stringify({ ...JSON.parse(page), type: "crm.spaceship.launched" }), code: "unknown_type" },
			{ name: "type on the wrong subject", subject: orderSubject, body: page, code: "subject_mismatch" },
			{ name: "a subject named __proto__", subject: "crm.events.__proto__.polluted", body: page, code: "subject_mismatch" },
			{ name: "customer id with path traversal", subject: pageSubject, body: JSON.stringify({ ...JSON.parse(page), subject: "../../etc/passwd" }), code: "missing_customer" },
			{ name: "customer id __proto__", subject: pageSubject, body: JSON.stringify({ ...JSON.parse(page), subject: "__proto__" }), code: "missing_customer" }
		];
		for (const [name, bad] of INVALID_UTF8) cases.push({ name: `${name} in the url`, subject: pageSubject, body: spliceIntoString(page, "\"/pricing\"", bad), code: "invalid_encoding" });
		for (const [name, literal] of NON_NUMBERS) cases.push({ name: `amount ${name}`, subject: orderSubject, body: order.replace("10.5", literal), code: "invalid_event", reason: /amount/ });
		for (const [name, time] of hostileTimes()) cases.push({ name: `time: ${name}`, subject: pageSubject, body: JSON.stringify({ ...JSON.parse(page), time }), code: "invalid_event", reason: /time/ });
		const profile = validEvent("crm.customer.updated", VICTIM);
		for (const path of objectPaths(profile)) {
			for (const key of FORBIDDEN) cases.push({ name: `${key} at ${path.join(".") || "top"}`, subject: subjectOf("crm.customer.updated"), body: withKeyAt(profile, path, key), code: "forbidden_key", reason: new RegExp(key) });
		}
		const found = await feed(cases.map(c => ({ subject: c.subject, body: c.body })));
		for (const [i, c] of cases.entries()) {
			const letter = found[i];
			assert.ok(letter, `${c.name}: dead-lettered`);
			assert.ok(letter.reason.length > 0, `${c.name}: has a reason`);
			assert.equal(letter.reasonCode, c.code, `${c.name}: ${letter.reason}`);
			if (c.reason) assert.match(letter.reason, c.reason, c.name);
			assert.equal(letter.subject, c.subject);
		}
		assert.equal(({} as Record<string, unknown>).polluted, undefined);
		await assertNoCustomerChanged(node.broker, baseline, "hostile NATS messages");
	});

	it("a duplicate event id with a different body under a new Nats-Msg-Id changes nothing", async () => {
		const first = validEvent("crm.order.status_changed", "fz-nats-dup");
		await publish(js, JSON.stringify(first), { subject: subjectOf(first.type as string), msgId: "dup/1" });
		await waitFor(() => node.broker.call("customers.get", { customerId: "fz-nats-dup" }).then(() => true, () => false));
		const before = await customerSnapshot(node.broker);
		const stats = () => node.broker.call<{ duplicates: number }>("ingest-nats.stats");
		const dupsBefore = (await stats()).duplicates;
		await publish(js, JSON.stringify({ ...first, data: { orderId: "other", newStatus: "PAID", amount: 5 } }), { subject: subjectOf(first.type as string), msgId: "dup/2" });
		await waitFor(async () => (await stats()).duplicates > dupsBefore, { message: "the second body reached the actor as a duplicate" });
		await assertNoCustomerChanged(node.broker, before, "duplicate id");
		baseline = before;
	});

	it("property: an event with one invalid field is dead-lettered with a reason naming it", async () => {
		const samples = fc.sample(mutatedEvent(VICTIM), { ...fcParams(1), numRuns: fcParams(60).numRuns });
		const found = await feed(samples.map(m => ({ subject: m.path[0] === "type" ? subjectOf("crm.page.viewed") : subjectOf(m.type), body: m.text })));
		for (const [i, m] of samples.entries()) {
			const letter = found[i];
			assert.ok(letter, `${m.type} ${m.path.join(".")}: dead-lettered`);
			// A bad type is refused by its subject or its name; every other field by its name.
			if (m.path[0] !== "type") assert.ok(letter.reason.includes(m.names), `"${letter.reason}" names ${m.names} (seed ${fcParams(1).seed})`);
		}
		await assertNoCustomerChanged(node.broker, baseline, "mutations");
	});

	it("keeps serving: /health/ready, and a valid event is applied", async () => {
		assert.equal((await fetch(`${node.baseUrl}/health/ready`)).status, 200);
		await publish(js, JSON.stringify(validEvent("crm.order.status_changed", VICTIM)), { subject: subjectOf("crm.order.status_changed"), msgId: "final" });
		await waitFor(async () => (await customerSnapshot(node.broker)).get(VICTIM) !== baseline.get(VICTIM), { message: "the victim changed by the valid event" });
	});
});
