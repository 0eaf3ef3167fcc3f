// The CloudEvents envelope validator: a valid event per type, a corpus of bad input with its reasons, size,
// prototype-pollution and nesting guards, time bounds, and batches that report every invalid index.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { EVENT_TYPES } from "../../../models/cloud-event.ts";
import type { EventType } from "../../../models/cloud-event.ts";
import { eventTimeMs, jsonByteLength, validateEvent, validateEvents } from "../../../models/cloud-event.validator.ts";

const NOW = Date.parse("2025-03-01T12:00:00Z");
const HOUR = 3600_000;

const DATA: Record<EventType, Record<string, unknown>> = {
	"crm.customer.updated": { profile: { email: "ada@example.com", contract: "One year", tenureMonths: 14 } },
	"crm.order.status_changed": { orderId: "o-1", newStatus: "CANCELLED", oldStatus: "PAID", amount: 20, currency: "EUR" },
	"crm.payment.failed": { paymentId: "p-1", amount: 15.5, reason: "insufficient funds" },
	"crm.interaction.logged": { interactionId: "i-1", channel: "email", sentiment: 0.8, direction: "outbound" },
	"crm.ticket.opened": { ticketId: "t-1", priority: "CRITICAL", category: "network" },
	"crm.ticket.resolved": { ticketId: "t-1" },
	"crm.device.telemetry": { deviceId: "modem-1", metrics: { rssi: -67, uptimeS: 86400 } },
	"crm.page.viewed": { url: "/pricing", sessionId: "sess-9" },
	"crm.market.signal": { competitor: "Acme", product: "fibre-100", price: 29.99, currency: "EUR" }
};

function event(overrides: Record<string, unknown> = {}): Record<string, unknown> {
	return {
		specversion: "1.0",
		id: "evt-1",
		source: "/crm/erp",
		type: "crm.order.status_changed",
		subject: "cust-42",
		time: "2025-03-01T11:59:00Z",
		data: structuredClone(DATA["crm.order.status_changed"]),
		...overrides
	};
}

function without(name: string): Record<string, unknown> {
	const e = event();
	delete e[name];
	return e;
}

function nested(levels: number): Record<string, unknown> {
	let value: Record<string, unknown> = {};
	for (let i = 1; i < levels; i++) value = { a: value };
	return value;
}

function reasonOf(input: unknown, now = NOW): string {
	const r = validateEvent(input, { now });
	assert.equal(r.ok, false, "the event was accepted");
	return r.ok ? "" : r.reason;
}

/** A customer.updated payload whose JSON is exactly `bytes` long (UTF-8), built against the real JSON.stringify. */
function dataOfBytes(bytes: number): Record<string, unknown> {
	const profile: Record<string, string> = {};
	const data = { profile };
	const size = () => Buffer.byteLength(JSON.stringify(data));
	// Long values mixing 1-, 2-, 3-, 4- and 6-byte encodings, so the count is checked on each of them.
	const filler = "aé€😀\n\u0001".repeat(70);
	for (let i = 0; size() < bytes - 2000; i++) profile[`f${i}`] = filler;
	const pads = ["padA", "padB", "padC", "padD", "padE"];
	for (const pad of pads) profile[pad] = "";
	let missing = bytes - size();
	for (const pad of pads) {
		const n = Math.min(missing, 512);
		profile[pad] = "x".repeat(n);
		missing -= n;
	}
	assert.equal(size(), bytes, "test helper built the wrong size");
	return data;
}

void describe("validateEvent", () => {
	for (const type of EVENT_TYPES) {
		void it(`accepts a valid ${type} event`, () => {
			const input = event({ type, data: structuredClone(DATA[type]) });
			const r = validateEvent(input, { now: NOW });
			assert.ok(r.ok, r.ok ? "" : r.reason);
			assert.deepEqual(r.event, input);
		});
	}

	void it("returns a fresh copy with only the known attributes", () => {
		const input = event({ datacontenttype: "application/json", traceparent: "00-abc-01", seq: 7, replay: false });
		const r = validateEvent(input, { now: NOW });
		assert.ok(r.ok, r.ok ? "" : r.reason);
		assert.deepEqual(Object.keys(r.event), ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"]);
		(input.data as Record<string, unknown>).newStatus = "PAID";
		assert.equal((r.event.data as Record<string, unknown>).newStatus, "CANCELLED");
		assert.equal(r.event.time, input.time, "time is kept as given");
	});

	void it("accepts attributes at their length limits", () => {
		for (const overrides of [
			{ id: "i".repeat(256) },
			{ source: `https://example.com/${"s".repeat(492)}` },
			{ subject: `c${"9".repeat(127)}` },
			{ subject: "tenant:acme@x.y-z_" }
		]) {
			const r = validateEvent(event(overrides), { now: NOW });
			assert.ok(r.ok, `${JSON.stringify(overrides).slice(0, 60)}: ${r.ok ? "" : r.reason}`);
		}
	});

	const bad: [string, unknown, string][] = [
		["null", null, "event must be a JSON object"],
		["a string", "{}", "event must be a JSON object"],
		["an array", [event()], "event must be a JSON object"],
		["a Date", new Date(), "event must be a JSON object"],
		["a missing specversion", without("specversion"), `missing required attribute "specversion"`],
		["specversion 0.3", event({ specversion: "0.3" }), `attribute "specversion" must be "1.0"`],
		["numeric specversion", event({ specversion: 1 }), `attribute "specversion" must be "1.0"`],
		["a missing id", without("id"), `missing required attribute "id"`],
		["a null id", event({ id: null }), `missing required attribute "id"`],
		["an empty id", event({ id: "" }), `attribute "id" must be a string of 1..256`],
		["a 257-character id", event({ id: "i".repeat(257) }), `attribute "id" must be a string of 1..256`],
		["a numeric id", event({ id: 12 }), `attribute "id" must be a string`],
		["a missing source", without("source"), `missing required attribute "source"`],
		["a source with a space", event({ source: "/crm erp" }), `attribute "source" must be a URI-reference`],
		["a source with a newline", event({ source: "/crm\nerp" }), `attribute "source" must be a URI-reference`],
		["a source with a DEL", event({ source: "/crm\u007f" }), `attribute "source" must be a URI-reference`],
		["an empty source", event({ source: "" }), `attribute "source" must be a URI-reference`],
		["a 513-character source", event({ source: "s".repeat(513) }), `attribute "source" must be a URI-reference of 1..512`],
		["a missing type", without("type"), `missing required attribute "type"`],
		["an unknown type", event({ type: "crm.order.deleted" }), `unknown event type "crm.order.deleted"`],
		["a near-miss type", event({ type: "crm.order.status-changed" }), `unknown event type "crm.order.status-changed"`],
		["a numeric type", event({ type: 3 }), `attribute "type" must be a string`],
		["a missing subject", without("subject"), `missing required attribute "subject"`],
		["an empty subject", event({ subject: "" }), `attribute "subject" must be a customer id`],
		["a subject with a space", event({ subject: "cust 42" }), `attribute "subject" must be a customer id`],
		["a subject with a slash", event({ subject: "cust/42" }), `attribute "subject" must be a customer id`],
		["a subject starting with a dot", event({ subject: ".cust" }), `attribute "subject" must be a customer id`],
		["a 129-character subject", event({ subject: "c".repeat(129) }), `attribute "subject" must be a customer id`],
		["a numeric subject", event({ subject: 42 }), `attribute "subject" must be a customer id`],
		["a missing time", without("time"), `missing required attribute "time"`],
		["a time without a zone", event({ time: "2025-03-01T11:59:00" }), `attribute "time" must be an RFC 3339 date-time`],
		["a date only", event({ time: "2025-03-01" }), `attribute "time" must be an RFC 3339 date-time`],
		["February 30", event({ time: "2025-02-30T10:00:00Z" }), `attribute "time" must be an RFC 3339 date-time`],
		["February 29 in a common year", event({ time: "2023-02-29T10:00:00Z" }), `attribute "time" must be an RFC 3339 date-time`],
		["hour 24", event({ time: "2025-03-01T24:00:00Z" }), `attribute "time" must be an RFC 3339 date-time`],
		["an offset without a colon", event({ time: "2025-03-01T10:00:00+0100" }), `attribute "time" must be an RFC 3339 date-time`],
		["an offset of 24 h", event({ time: "2025-03-01T10:00:00+24:00" }), `attribute "time" must be an RFC 3339 date-time`],
		["epoch milliseconds", event({ time: NOW }), `attribute "time" must be an RFC 3339 date-time`],
		["an English date", event({ time: "Sat, 01 Mar 2025 11:59:00 GMT" }), `attribute "time" must be an RFC 3339 date-time`],
		["a time 25 h ahead", event({ time: new Date(NOW + 25 * HOUR).toISOString() }), `attribute "time" is more than 24 h in the future`],
		["a time 24 h + 1 ms ahead", event({ time: new Date(NOW + 24 * HOUR + 1).toISOString() }), `attribute "time" is more than 24 h in the future`],
		["a far-future time behind an offset", event({ time: "2025-03-02T23:00:00-02:00" }), `attribute "time" is more than 24 h in the future`],
		["a placeholder date 0001-01-01", event({ time: "0001-01-01T00:00:00Z" }), `attribute "time" is before 1970-01-01T00:00:00Z (a placeholder date or a clock that was never set)`],
		["a time 1 ms before the epoch", event({ time: "1969-12-31T23:59:59.999Z" }), `attribute "time" is before 1970-01-01T00:00:00Z (a placeholder date or a clock that was never set)`],
		["the epoch behind a negative offset", event({ time: "1969-12-31T23:00:00-00:59" }), `attribute "time" is before 1970-01-01T00:00:00Z (a placeholder date or a clock that was never set)`],
		["another content type", event({ datacontenttype: "text/plain" }), `attribute "datacontenttype" must be "application/json"`],
		["a missing data", without("data"), `missing required attribute "data"`],
		["a null data", event({ data: null }), `missing required attribute "data"`],
		["data as a string", event({ data: "{}" }), `attribute "data" must be a JSON object`],
		["data as an array", event({ data: [] }), `attribute "data" must be a JSON object`],
		["an unknown attribute", event({ customerId: "c" }), `unknown attribute "customerId"`],
		["an extension name with a dash", event({ "trace-id": "x" }), `unknown attribute "trace-id"`],
		["a 21-character extension name", event({ ["e".repeat(21)]: "x" }), `unknown attribute "eeeeeeeeeeeeeeeeeeeee"`],
		["data_base64", event({ data_base64: "AAAA" }), `unknown attribute "data_base64"`],
		["an object extension", event({ trace: { id: 1 } }), `extension attribute "trace" must be a string, number or boolean`],
		["a NaN extension", event({ seq: NaN }), `extension attribute "seq" must be a string, number or boolean`],
		["an unknown data field", event({ data: { orderId: "o", newStatus: "PAID", note: "x" } }), "unknown field data.note"],
		["a bad order status", event({ data: { orderId: "o", newStatus: "GONE" } }), "data.newStatus must be one of CREATED, PAID, SHIPPED"],
		["data for another type", event({ type: "crm.ticket.resolved" }), "unknown field data.orderId"],
		["a function in data", event({ data: { orderId: "o", newStatus: "PAID", f: () => 1 } }), "data.f is not a JSON value"],
		["a Map in data", event({ data: { orderId: "o", newStatus: "PAID", m: new Map() } }), "data.m is not a JSON value"],
		["a bigint in data", event({ data: { orderId: "o", newStatus: "PAID", n: 1n } }), "data.n is not a JSON value"],
		["an undefined array item", event({ data: { orderId: "o", newStatus: "PAID", l: [1, undefined] } }), "data.l[1] is not a JSON value"],
		["Infinity deep in data", event({ data: { x: [{ y: Infinity }] } }), "data.x[0].y must be a finite number"]
	];
	for (const [name, input, reason] of bad) {
		void it(`rejects ${name}`, () => {
			const got = reasonOf(input);
			assert.ok(got.includes(reason), `reason "${got}" lacks "${reason}"`);
		});
	}

	void it("accepts a time exactly 24 h ahead, with lower-case t/z, a leap second, or any offset", () => {
		for (const time of [
			new Date(NOW + 24 * HOUR).toISOString(),
			"2025-03-01t11:00:00z",
			"2016-12-31T23:59:60Z",
			"2025-03-02T13:59:59.999999999+02:00",
			"1999-12-31T23:59:59-12:00",
			"2024-02-29T00:00:00Z"
		]) {
			const r = validateEvent(event({ time }), { now: NOW });
			assert.ok(r.ok, `${time}: ${r.ok ? "" : r.reason}`);
		}
	});

	void it("bounds the future by the real clock when no `now` is given", () => {
		const r = validateEvent(event({ time: new Date(Date.now() + 25 * HOUR).toISOString() }));
		assert.ok(!r.ok && r.reason.includes("future"));
		assert.ok(validateEvent(event({ time: new Date().toISOString() })).ok);
	});

	void it("names the attribute in every reason for a missing required attribute", () => {
		for (const name of ["specversion", "id", "source", "type", "subject", "time", "data"]) {
			assert.equal(reasonOf(without(name)), `missing required attribute "${name}"`);
		}
	});

	void describe("data size", () => {
		void it("accepts data of exactly 64 KiB of JSON and rejects one byte more", () => {
			const fits = event({ type: "crm.customer.updated", data: dataOfBytes(65536) });
			const r = validateEvent(fits, { now: NOW });
			assert.ok(r.ok, r.ok ? "" : r.reason);
			assert.equal(reasonOf(event({ type: "crm.customer.updated", data: dataOfBytes(65537) })), "data exceeds 64 KiB");
		});

		void it("rejects megabytes of data, in many fields or in one string", () => {
			const big: Record<string, string> = {};
			for (let i = 0; i < 100_000; i++) big[`k${i}`] = "v".repeat(50);
			assert.equal(reasonOf(event({ data: big })), "data exceeds 64 KiB");
			assert.equal(reasonOf(event({ data: { s: "x".repeat(10_000_000) } })), "data exceeds 64 KiB");
			assert.equal(reasonOf(event({ data: { a: ["é".repeat(40_000)] } })), "data exceeds 64 KiB");
		});

		const values: [string, unknown][] = [
			["ASCII", "hello"],
			["quotes and backslashes", "a\"b\\c"],
			["short escapes", "\b\f\n\r\t"],
			["control characters", "\u0000\u0001\u001f\u007f"],
			["2-byte characters", "é ß ø"],
			["3-byte characters", "€ 中文 \u2028"],
			["a surrogate pair", "😀🎉"],
			["lone surrogates", "\ud800 x \udfff \ud83d"],
			["numbers", [0, -0, 1.5, -1e-7, 1e21, 123456789.125, Number.MAX_SAFE_INTEGER]],
			["literals", [true, false, null]],
			["empty containers", { a: {}, b: [], c: "" }],
			["nesting", { a: [{ b: [1, { c: "d" }] }], "kéy\n": 2 }],
			["undefined members are skipped", { a: undefined, b: 1, c: undefined }],
			["only undefined members", { a: undefined }]
		];
		for (const [name, value] of values) {
			void it(`counts the JSON bytes of ${name} as JSON.stringify does`, () => {
				assert.equal(jsonByteLength(value), Buffer.byteLength(JSON.stringify(value)));
			});
		}
	});

	void describe("prototype pollution and nesting", () => {
		const polluted: [string, string, string][] = [
			["__proto__ at the top (JSON.parse makes it an own key)", `{"__proto__":{"admin":true},"specversion":"1.0"}`, `event has forbidden key "__proto__"`],
			["constructor at the top", `{"constructor":{"prototype":{}}}`, `event has forbidden key "constructor"`],
			["__proto__ in data", `{"orderId":"o","newStatus":"PAID","__proto__":{"x":1}}`, `data has forbidden key "__proto__"`],
			["__proto__ in the profile", `{"profile":{"__proto__":{"isAdmin":true}}}`, `data.profile has forbidden key "__proto__"`],
			["constructor in the profile", `{"profile":{"constructor":"x"}}`, `data.profile has forbidden key "constructor"`],
			["prototype deep inside an array", `{"a":[{"b":{"prototype":1}}]}`, `data.a[0].b has forbidden key "prototype"`]
		];
		for (const [name, json, reason] of polluted) {
			void it(`rejects ${name}`, () => {
				const parsed: unknown = JSON.parse(json);
				const input = name.includes("at the top") ? { ...event(), ...(parsed as object) } : event({ data: parsed });
				if (name.includes("__proto__ at the top")) assert.ok(json.includes("__proto__") && Object.hasOwn(parsed as object, "__proto__"));
				assert.equal(reasonOf(input), reason);
				assert.equal(({} as Record<string, unknown>).admin, undefined);
			});
		}

		void it("rejects a whole JSON.parse'd event carrying an own __proto__ key", () => {
			const input: unknown = JSON.parse(JSON.stringify(event()).replace("{", `{"__proto__":{"polluted":1},`));
			assert.ok(Object.hasOwn(input as object, "__proto__"));
			assert.equal(reasonOf(input), `event has forbidden key "__proto__"`);
		});

		void it("rejects a __proto__ key hidden in an extension attribute's object", () => {
			assert.equal(reasonOf(event({ ext: JSON.parse(`{"__proto__":1}`) })), `ext has forbidden key "__proto__"`);
		});

		void it("allows 16 levels of nesting (the event being level 1) and rejects 17", () => {
			// data is level 2, so nested(15) ends at level 16 and fails only on the schema.
			assert.equal(reasonOf(event({ data: nested(15) })), "unknown field data.a");
			assert.match(reasonOf(event({ data: nested(16) })), /^data(\.a){15} is nested deeper than 16 levels$/);
		});

		void it("counts arrays as levels too", () => {
			let deep: unknown = [];
			for (let i = 0; i < 20; i++) deep = [deep];
			assert.match(reasonOf(event({ data: { x: deep } })), /^data\.x(\[0\])+ is nested deeper than 16 levels$/);
		});

		void it("rejects a cyclic object instead of overflowing the stack", () => {
			const data: Record<string, unknown> = { orderId: "o", newStatus: "PAID" };
			data.self = data;
			assert.match(reasonOf(event({ data })), /nested deeper than 16 levels/);
		});
	});
});

void describe("eventTimeMs", () => {
	const times = [
		"2025-03-01T11:59:00Z",
		"2025-03-01T11:59:00.123Z",
		"2025-03-01T11:59:00.1+05:30",
		"2025-03-01T11:59:00.987654-08:00",
		"2000-02-29T23:59:59.999+00:00",
		"1970-01-01T00:00:00Z",
		"1969-07-20T20:17:40Z",
		"0050-06-15T00:00:00Z"
	];
	for (const time of times) {
		void it(`agrees with Date.parse on ${time}`, () => {
			assert.equal(eventTimeMs({ ...event(), time } as never), Date.parse(time));
		});
	}

	void it("reads lower-case separators like their upper-case forms", () => {
		assert.equal(eventTimeMs({ ...event(), time: "2025-03-01t11:59:00z" } as never), Date.parse("2025-03-01T11:59:00Z"));
	});
});

void describe("validateEvents", () => {
	const valid = () => EVENT_TYPES.map((type, i) => event({ id: `e-${i}`, type, data: structuredClone(DATA[type]) }));

	void it("accepts a single event as a batch of one", () => {
		const r = validateEvents(event(), { now: NOW });
		assert.ok(r.ok);
		assert.equal(r.events.length, 1);
		assert.equal(r.events[0].id, "evt-1");
	});

	void it("reports a single invalid event at index 0", () => {
		assert.deepEqual(validateEvents(without("subject"), { now: NOW }), {
			ok: false, errors: [{ index: 0, reason: `missing required attribute "subject"` }]
		});
	});

	void it("accepts a batch of one event of every type, in order", () => {
		const r = validateEvents(valid(), { now: NOW });
		assert.ok(r.ok, r.ok ? "" : JSON.stringify(r.errors));
		assert.deepEqual(r.events.map(e => e.type), [...EVENT_TYPES]);
	});

	void it("reports the index of the one invalid event in a batch", () => {
		const batch = valid();
		batch[3] = { ...batch[3], type: "crm.lead.created" };
		assert.deepEqual(validateEvents(batch, { now: NOW }), {
			ok: false, errors: [{ index: 3, reason: `unknown event type "crm.lead.created"` }]
		});
	});

	void it("reports every invalid event, not just the first", () => {
		const batch: unknown[] = valid();
		batch[0] = without("subject");
		batch[5] = JSON.parse(`{"__proto__":{}}`);
		batch[7] = "not an event";
		const r = validateEvents(batch, { now: NOW });
		assert.ok(!r.ok);
		assert.deepEqual(r.errors.map(e => e.index), [0, 5, 7]);
		assert.match(r.errors[1].reason, /forbidden key "__proto__"/);
	});

	void it("accepts 1000 events and rejects 1001 as a whole", () => {
		const batch = Array.from({ length: 1000 }, (_, i) => event({ id: `e-${i}` }));
		const r = validateEvents(batch, { now: NOW });
		assert.ok(r.ok);
		assert.equal(r.events.length, 1000);
		batch.push(event({ id: "e-1000" }));
		assert.deepEqual(validateEvents(batch, { now: NOW }), { ok: false, errors: [{ index: -1, reason: "batch exceeds 1000 events" }] });
	});

	void it("rejects an empty batch", () => {
		assert.deepEqual(validateEvents([], { now: NOW }), { ok: false, errors: [{ index: -1, reason: "batch is empty" }] });
	});

	void it("applies one clock to the whole batch", () => {
		const r = validateEvents([event({ time: new Date(NOW + 23 * HOUR).toISOString() })], { now: NOW });
		assert.ok(r.ok);
		const late = validateEvents([event({ time: new Date(NOW + 23 * HOUR).toISOString() })], { now: NOW - 2 * HOUR });
		assert.ok(!late.ok && late.errors[0].reason.includes("future"));
	});
});
