// The embedded engine on its own (store in memory, handlers faked): a handler running when the engine stops runs
// again on resume and its late answer is ignored; failures are retried, then fail the instance with the reason.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { waitFor } from "../harness.ts";
import type { TopicTask, Vars } from "../../actors/workflow-topics.ts";
import { loadBpmnDir } from "../../services/workflows/definitions.ts";
import { EmbeddedWorkflowEngine, type InstanceDoc, type InstanceStore } from "../../services/workflows/embedded.engine.ts";
import type { TopicRunner } from "../../services/workflows/workflow-engine.ts";

function memoryStore(): InstanceStore & { docs: Map<string, InstanceDoc> } {
	const docs = new Map<string, InstanceDoc>();
	return {
		docs,
		async running() {
			return [...docs.values()].filter(d => d.status === "running").map(d => ({ ...d }));
		},
		async find(filter) {
			return [...docs.values()].filter(d => filter.customerId === undefined || d.customerId === filter.customerId).map(d => ({ ...d }));
		},
		async save(doc) {
			docs.set(doc._id, { ...doc });
		}
	};
}

const quiet = { info() {}, warn() {}, error() {} };
const definitions = await loadBpmnDir(path.resolve("bpmn"));

function engine(store: InstanceStore, runTopic: TopicRunner, maxRetries = 0): EmbeddedWorkflowEngine {
	return new EmbeddedWorkflowEngine({ definitions, store, runTopic, maxRetries, retryTimeoutMs: 10, logger: quiet });
}

void describe("embedded engine: stop and resume", () => {
	void it("a handler running at stop runs again on resume; the stopped run's late answer changes nothing", async () => {
		const store = memoryStore();
		const calls: TopicTask[] = [];
		let answerFirst: (v: Vars) => void = () => {};
		const first = engine(store, (_topic, task) => {
			calls.push(task);
			return new Promise<Vars>(resolve => {
				answerFirst = resolve;
			});
		});
		await first.start();
		const view = await first.startProcess("churn-retention", { businessKey: "c-1", customerId: "c-1" });
		await waitFor(() => calls.length === 1, { message: "crm-assign-owner called" });
		assert.equal(calls[0].topic, "crm-assign-owner");
		await first.stop();
		const saved = store.docs.get(view.id)!;
		assert.equal(saved.status, "running");
		assert.ok(saved.state !== null, "the engine state was saved");

		const second = engine(store, async (topic, task) => {
			calls.push(task);
			return topic === "crm-assign-owner" ? { owner: "sam" } : {};
		});
		await second.start();
		await waitFor(async () => (await second.listTasks({ customerId: "c-1" })).length === 1, { message: "the contact task after resume" });
		assert.equal(calls.length, 2, "the interrupted task ran again");
		assert.equal(calls[1].activityId, "AssignOwner");

		answerFirst({ owner: "late" });
		await new Promise(resolve => setImmediate(resolve));
		const [task] = await second.listTasks({ customerId: "c-1" });
		assert.equal(task.assignee, "sam", "the stopped engine's late answer was dropped");
		await second.stop();
	});
});

void describe("embedded engine: handler failures", () => {
	void it("retries a failing handler, then continues", async () => {
		let attempts = 0;
		const e = engine(memoryStore(), async topic => {
			if (topic === "crm-assign-owner" && ++attempts < 3) throw new Error("agents unreachable");
			return { owner: "sam" };
		}, 2);
		await e.start();
		await e.startProcess("churn-retention", { businessKey: "c-2", customerId: "c-2" });
		await waitFor(async () => (await e.listTasks({ customerId: "c-2" })).length === 1, { message: "continues after two retries" });
		assert.equal(attempts, 3);
		await e.stop();
	});

	void it("fails the instance with the handler's reason once the retries are spent", async () => {
		const store = memoryStore();
		const e = engine(store, async () => {
			throw new Error("agents.candidates is not available");
		}, 1);
		await e.start();
		const view = await e.startProcess("churn-retention", { businessKey: "c-3", customerId: "c-3" });
		await waitFor(() => store.docs.get(view.id)?.status === "failed", { message: "instance failed" });
		assert.match(store.docs.get(view.id)!.error ?? "", /agents\.candidates is not available/);
		const [listed] = await e.listProcesses({ customerId: "c-3" });
		assert.equal(listed.state, "failed");
		await e.stop();
	});

	void it("starting an unknown process is a 404 naming the known ones", async () => {
		const e = engine(memoryStore(), async () => ({}));
		await assert.rejects(e.startProcess("nope", { businessKey: "b", customerId: "c" }), (err: { status?: number; message: string }) =>
			err.status === 404 && /churn-retention/.test(err.message));
	});
});
