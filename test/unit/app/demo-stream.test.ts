// The demo's event stream and progress output: every generated event is one the API accepts, the stream is
// reproducible from its seed, and churners get the worse side of it.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { DemoStream, Progress } from "../../../app/demo-stream.ts";
import { subjectForType as subjectOf } from "../../../models/contract/index.ts";
import { validateEvent } from "../../../models/cloud-event.validator.ts";

const customers = Array.from({ length: 1000 }, (_, i) => ({ id: `C-${i}`, churner: i % 4 === 0 }));

describe("DemoStream", () => {
	it("produces only valid CloudEvents of every kind, with unique ids", () => {
		const stream = new DemoStream(customers, 7, "t");
		const ids = new Set<string>();
		const types = new Set<string>();
		for (let i = 0; i < 5000; i++) {
			const e = stream.next();
			const v = validateEvent(e);
			assert.ok(v.ok, `event ${i} (${e.type}) invalid: ${v.ok ? "" : v.reason}`);
			assert.ok(!ids.has(e.id), `duplicate id ${e.id}`);
			ids.add(e.id);
			types.add(e.type);
		}
		assert.deepEqual([...types].sort(), [
			"crm.device.telemetry", "crm.interaction.logged", "crm.order.status_changed", "crm.page.viewed",
			"crm.payment.failed", "crm.ticket.opened", "crm.ticket.resolved"
		]);
	});

	it("is reproducible from its seed", () => {
		const strip = (e: { time: string }) => ({ ...e, time: "" });
		const a = new DemoStream(customers, 11, "r");
		const b = new DemoStream(customers, 11, "r");
		for (let i = 0; i < 200; i++) assert.deepEqual(strip(a.next()), strip(b.next()));
	});

	it("gives churners more cancellations and failed payments than loyal customers", () => {
		const churner = new Set(customers.filter(c => c.churner).map(c => c.id));
		const bad = { churner: 0, loyal: 0 };
		const all = { churner: 0, loyal: 0 };
		const stream = new DemoStream(customers, 3, "c");
		for (let i = 0; i < 20_000; i++) {
			const e = stream.next();
			const who = churner.has(e.subject) ? "churner" : "loyal";
			all[who]++;
			if (e.type === "crm.payment.failed" || (e.type === "crm.order.status_changed" && e.data.newStatus === "CANCELLED")) bad[who]++;
		}
		assert.ok(bad.churner / all.churner > 2 * (bad.loyal / all.loyal), JSON.stringify({ bad, all }));
	});

	it("maps event types to the JetStream subjects of the contract", () => {
		assert.equal(subjectOf("crm.order.status_changed"), "crm.events.order.status_changed");
		assert.equal(subjectOf("crm.device.telemetry"), "crm.events.device.telemetry");
	});
});

describe("Progress without a terminal", () => {
	it("prints one line per 10 % and a final line", () => {
		let text = "";
		const out = new Writable({ write(chunk, _enc, cb) { text += String(chunk); cb(); } }) as unknown as NodeJS.WriteStream;
		const p = new Progress("import", out);
		for (let i = 0; i <= 100; i++) p.update(i / 100, `${i}`);
		p.finish("all done");
		const lines = text.trim().split("\n");
		assert.equal(lines.length, 12);
		assert.equal(lines[0], "import: 0% 0");
		assert.equal(lines[10], "import: 100% 100");
		assert.equal(lines[11], "import: done, all done");
	});
});
