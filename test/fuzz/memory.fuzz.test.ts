// Memory under a flood of bad input: 10⁵ hostile events through the API's action in-process (broker.call("api.postEvents")
// — the Moleculer context, parameter validation, the envelope and payload validator, the 400 error object, metrics), plus
// the same inputs through the MQTT payload parser and the log-entry step; the heap after a forced GC stays within 10 % of
// the heap before. In-process rather than 10⁵ HTTP round trips, which would take minutes on two cores; the HTTP layer
// in front of this path is fuzzed (for status codes, not memory) by api.fuzz.test.ts.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { startTestNode, type TestNode } from "../support/node.ts";
import { parseTelemetry } from "../../models/telemetry.schema.ts";
import { prepareEntry } from "../../edge/log-tail.engine.ts";
import { FORBIDDEN, assertNoCustomerChanged, customerSnapshot, hostileTimes, nestedText, withKeyAt } from "./fuzz.support.ts";
import { validEvent } from "./events.arbitraries.ts";

const INPUTS = 100_000;
const WARM_UP = 10_000;
const CONCURRENCY = 200;

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** Heap in use after full collections (several: weak references and finalizers need more than one pass). */
async function settledHeap(): Promise<number> {
	for (let i = 0; i < 4; i++) {
		gc();
		await new Promise(resolve => setImmediate(resolve));
	}
	return process.memoryUsage().heapUsed;
}

/** The hostile inputs, each a distinct value (ids and counters vary per call, as real junk does). */
function hostile(i: number): { body: unknown; mqtt: Buffer; log: string } {
	const base = validEvent("crm.order.status_changed", `fz-mem-${i % 1000}`);
	const times = hostileTimes();
	const variants: unknown[] = [
		{ ...base, id: `m-${i}`, data: { ...(base.data as object), amount: `${i}` } },
		{ ...base, id: `m-${i}`, time: times[i % times.length][1] },
		JSON.parse(withKeyAt(base, i % 2 ? ["data"] : [], FORBIDDEN[i % 3])),
		{ ...base, id: `m-${i}`, data: JSON.parse(nestedText(20 + (i % 30))) },
		{ ...base, id: `m-${i}`, type: `crm.junk.t${i}` },
		{ ...base, id: `m-${i}`, subject: `../${i}` },
		Array.from({ length: 3 }, (_, k) => ({ ...base, id: `m-${i}-${k}`, specversion: k })),
		`not an event ${i}`
	];
	return {
		body: variants[i % variants.length],
		mqtt: Buffer.from(`{"customerId":"c-${i}","ts":${i},"metrics":{"m${i % 50}":"${i}"}}`),
		log: `{"time":${1e20 + i},"customerId":"c-${i}","url":"/p/${i}"}`
	};
}

describe("memory under 10⁵ bad inputs", () => {
	let node: TestNode;

	before(async () => {
		node = await startTestNode({ SERVICES: "customers,api", ACTOR_STORE: "memory", METRICS_PORT: "0" });
	});

	after(async () => {
		await node?.stop();
	});

	async function flood(from: number, to: number): Promise<void> {
		for (let start = from; start < to; start += CONCURRENCY) {
			const calls: Array<Promise<void>> = [];
			for (let i = start; i < Math.min(to, start + CONCURRENCY); i++) {
				const h = hostile(i);
				calls.push(node.broker.call("api.postEvents", { body: h.body, query: {}, params: {} }).then(
					() => assert.fail(`input ${i} was accepted`),
					(err: { code?: number; type?: string }) => assert.ok(err.code === 400 || err.code === 422, `input ${i}: ${err.type} ${err.code}`)
				));
				assert.equal(parseTelemetry("crm/devices/d-1/telemetry", h.mqtt, { now: Date.now(), maxFutureMs: 300_000, maxPayloadBytes: 16384 }).ok, false);
				assert.equal(prepareEntry({ name: "clicks.jsonl", format: "json" }, { text: h.log, start: i, end: i + 1 }, 1, "cid").kind, "fail");
			}
			await Promise.all(calls);
		}
	}

	it(`keeps the heap within 10 % after ${INPUTS} bad inputs (forced GC before and after)`, async () => {
		const customers = await customerSnapshot(node.broker);
		await flood(0, WARM_UP);
		const heapBefore = await settledHeap();
		const t0 = Date.now();
		await flood(WARM_UP, WARM_UP + INPUTS);
		const heapAfter = await settledHeap();
		const growth = (heapAfter - heapBefore) / heapBefore;
		console.log(`memory: heap ${(heapBefore / 1048576).toFixed(1)} MB before, ${(heapAfter / 1048576).toFixed(1)} MB after ${INPUTS} bad inputs in ${Date.now() - t0} ms (${(growth * 100).toFixed(1)} %)`);
		assert.ok(heapAfter <= heapBefore * 1.1, `heap grew ${(growth * 100).toFixed(1)} %: ${heapBefore} → ${heapAfter} bytes`);
		await assertNoCustomerChanged(node.broker, customers, "the flood");
		assert.equal((await fetch(`${node.baseUrl}/health/ready`)).status, 200);
	});
});
