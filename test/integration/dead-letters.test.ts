// Dead letters on embedded defaults (no NATS_URL): the NeDB file under DATA_DIR offers the same record, list,
// inspect and retry as CRM_DLQ, survives a restart, keeps one dead letter per dedup key, and the node says NATS is off.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Context } from "moleculer";
import { waitFor } from "../harness.ts";
import { startTestNode, type TestNode } from "../support/node.ts";

interface DeadLetterView { id: string; source: string; reason: string; reasonCode: string; payload: unknown; retryAction?: string; truncated?: boolean }

void describe("dead letters on the embedded store", () => {
	let dir: string;
	let node: TestNode;
	const reprocessed: unknown[] = [];
	let failNext = false;

	const start = async () => {
		node = await startTestNode({ SERVICES: "customers,api,deadLetters,ingest-nats", DEAD_LETTERS_MAX_PAYLOAD_BYTES: "2048" }, dir);
		// Stands in for a source's re-processing action (an MQTT or webhook mapper).
		node.broker.createService({
			name: "probeSource",
			actions: {
				reprocess: {
					visibility: "public",
					handler(ctx: Context<{ payload: unknown }>) {
						if (failNext) {
							failNext = false;
							throw new Error("still broken");
						}
						reprocessed.push(ctx.params.payload);
						return { ok: true };
					}
				}
			}
		});
		// The API publishes services' REST actions once it has seen them.
		await waitFor(async () => (await node.api("/api/v1/dead-letters?limit=1")).status === 200, { message: "dead-letter routes never appeared" });
	};

	before(async () => {
		dir = await mkdtemp(path.join(tmpdir(), "crm-dlq-"));
		await start();
	});

	after(async () => {
		await node?.stop({ keepData: true });
		await rm(dir, { recursive: true, force: true });
	});

	const record = (params: Record<string, unknown>) => node.broker.call<DeadLetterView, unknown>("deadLetters.record", params);

	void it("keeps dead letters in a NeDB file under DATA_DIR, newest first, filtered by source", async () => {
		const a = await record({ source: "mqtt", reason: 'reading "temperature" of 900 is out of range', payload: { customerId: "c-1", metrics: { temperature: 900 } }, retryAction: "probeSource.reprocess" });
		const b = await record({ source: "webhook", reason: "bad signature", payload: "raw body" });
		const c = await record({ source: "mqtt", reason: "device d-9 is not bound", payload: "{}", reasonCode: "unbound_device" });
		assert.ok(existsSync(path.join(dir, "dead-letters.db")));

		const all = await node.api("/api/v1/dead-letters");
		assert.equal(all.status, 200);
		assert.deepEqual(all.body.map((d: DeadLetterView) => d.id), [c.id, b.id, a.id]);
		const mqtt = await node.api("/api/v1/dead-letters?source=mqtt&limit=1");
		assert.deepEqual(mqtt.body.map((d: DeadLetterView) => d.id), [c.id]);

		const shown = await node.api(`/api/v1/dead-letters/${a.id}`);
		assert.equal(shown.status, 200);
		assert.deepEqual(shown.body.payload, { customerId: "c-1", metrics: { temperature: 900 } });
		assert.equal(shown.body.reasonCode, 'reading "" of _ is out of range');
		assert.equal(c.reasonCode, "unbound_device");
		assert.equal((await node.api("/api/v1/dead-letters/nope")).status, 404);
		assert.equal((await node.api("/api/v1/dead-letters?source=Not%20A%20Source")).status, 400);
	});

	void it("retries through the source's action: kept when it fails again, removed when it succeeds", async () => {
		const dl = await record({ source: "mqtt", reason: "store down", payload: { customerId: "c-2" }, retryAction: "probeSource.reprocess" });
		failNext = true;
		const failed = await node.api(`/api/v1/dead-letters/${dl.id}/retry`, { method: "POST" });
		assert.equal(failed.status, 502);
		assert.equal(failed.body.error.type, "DEAD_LETTER_RETRY_FAILED");
		// Callers inside the cluster (the REPL) see why.
		failNext = true;
		await assert.rejects(node.broker.call("deadLetters.retry", { id: dl.id }), /still broken/);
		assert.equal((await node.api(`/api/v1/dead-letters/${dl.id}`)).status, 200, "still there after a failed retry");

		const ok = await node.api(`/api/v1/dead-letters/${dl.id}/retry`, { method: "POST" });
		assert.equal(ok.status, 200);
		assert.deepEqual(ok.body, { id: dl.id, retried: true, via: "action" });
		assert.deepEqual(reprocessed.at(-1), { customerId: "c-2" });
		assert.equal((await node.api(`/api/v1/dead-letters/${dl.id}`)).status, 404);
	});

	void it("refuses to retry what it cannot: no action, a NATS origin without NATS, a truncated payload", async () => {
		const none = await record({ source: "logs", reason: "unparsable line", payload: "GET / HTTP/1.1 ???" });
		const nats = await record({ source: "nats", reason: "x", payload: "{}", subject: "crm.events.page.viewed" });
		const big = await record({ source: "files", reason: "row too long", payload: "x".repeat(5000), retryAction: "probeSource.reprocess" });
		assert.equal(big.truncated, true, "payloads beyond DEAD_LETTERS_MAX_PAYLOAD_BYTES are cut and marked");
		for (const id of [none.id, nats.id, big.id]) {
			const res = await node.api(`/api/v1/dead-letters/${id}/retry`, { method: "POST" });
			assert.equal(res.status, 409, JSON.stringify(res.body));
		}
	});

	void it("records one dead letter per dedup key (a redelivered input) and survives a restart", async () => {
		const first = await record({ source: "webhook", reason: "bad", payload: "p", dedupKey: "webhook/evt-77" });
		const again = await record({ source: "webhook", reason: "bad", payload: "p", dedupKey: "webhook/evt-77" });
		assert.equal(again.id, first.id);
		const before = (await node.api("/api/v1/dead-letters?limit=500")).body as DeadLetterView[];
		await node.stop({ keepData: true });
		await start();
		const afterRestart = (await node.api("/api/v1/dead-letters?limit=500")).body as DeadLetterView[];
		assert.deepEqual(afterRestart.map(d => d.id), before.map(d => d.id));
		const third = await record({ source: "webhook", reason: "bad", payload: "p", dedupKey: "webhook/evt-77" });
		assert.equal(third.id, first.id, "the dedup key index is persisted too");
	});

	void it("runs without NATS: ingest-nats is off and says so, the API still serves dead letters", async () => {
		assert.equal(await node.broker.call("ingest-nats.stats"), null);
		assert.equal((await node.api("/api/v1/dead-letters?limit=1")).status, 200);
	});

	void it("offers the dead-letters command in the node's REPL", () => {
		const commands = (node.broker.options.replOptions as { customCommands?: Array<{ command: string }> }).customCommands ?? [];
		assert.equal(commands.filter(c => c.command.startsWith("dead-letters ")).length, 1);
	});
});
