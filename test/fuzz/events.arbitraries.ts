// fast-check arbitraries shared by the fuzz suites: valid CloudEvents of every type, and events with exactly one
// attribute or payload field replaced by a value its schema refuses — so the expected outcome (rejected, naming that
// field) is known without asking the validator under test.
import fc from "fast-check";

let seq = 0;

/** A valid event of each type for `subject`, stamped a minute ago (inside every clock window). */
export function validEvent(type: string, subject: string, nowMs = Date.now()): Record<string, unknown> {
	seq++;
	const data: Record<string, Record<string, unknown>> = {
		"crm.customer.updated": { profile: { name: "Fuzz Target", email: "fuzz@example.com", phone: "+49 30 1234567", tier: "gold" } },
		"crm.order.status_changed": { orderId: `o-${seq}`, newStatus: "CANCELLED", amount: 10.5, currency: "EUR" },
		"crm.payment.failed": { paymentId: `p-${seq}`, amount: 20, currency: "EUR", reason: "card declined" },
		"crm.interaction.logged": { interactionId: `i-${seq}`, channel: "email", sentiment: -0.5, text: "unhappy" },
		"crm.ticket.opened": { ticketId: `t-${seq}`, priority: "HIGH", category: "BILLING" },
		"crm.ticket.resolved": { ticketId: `t-${seq}` },
		"crm.device.telemetry": { deviceId: `d-${seq}`, metrics: { temperatureC: 21.5, batteryPct: 80 } },
		"crm.page.viewed": { url: "/pricing", sessionId: `s-${seq}` },
		"crm.market.signal": { competitor: "acme", product: "fiber", price: 29.99, currency: "EUR" }
	};
	return {
		specversion: "1.0", id: `fz-${process.pid}-${seq}`, source: "/fuzz", type, subject,
		time: new Date(nowMs - 60_000).toISOString(), data: data[type]
	};
}

export const MUTABLE_TYPES = [
	"crm.customer.updated", "crm.order.status_changed", "crm.payment.failed", "crm.interaction.logged", "crm.ticket.opened",
	"crm.device.telemetry", "crm.page.viewed", "crm.market.signal"
] as const;

const nonString = fc.oneof(fc.integer(), fc.boolean(), fc.array(fc.string(), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }));
const nonNumber = fc.oneof(
	fc.double({ noNaN: true, noDefaultInfinity: true }).map(String),
	fc.constantFrom("NaN", "Infinity", "-Infinity", "1e999", ""),
	fc.boolean(),
	fc.array(fc.integer(), { minLength: 1, maxLength: 3 }),
	fc.constant({ value: 1 })
);
const tooLong = (max: number) => fc.string({ minLength: max + 1, maxLength: max + 40, unit: "grapheme-ascii" });
/** A string this enum does not contain (case variants of its values included). */
function notIn(values: readonly string[]): fc.Arbitrary<unknown> {
	// Case variants that differ from every value (a filter that rejects all it is given would never return).
	const variants = values.flatMap(v => [v.toLowerCase(), v.toUpperCase(), ` ${v}`]).filter(v => !values.includes(v));
	return fc.oneof(fc.string({ maxLength: 20 }).filter(s => !values.includes(s)), fc.constantFrom(...variants), nonString);
}

interface Target {
	/** Where the value goes: ["data", "amount"]. */
	path: string[];
	/** A text the rejection reason must contain. */
	names: string;
	bad: fc.Arbitrary<unknown>;
}

const ATTRIBUTES: Target[] = [
	{ path: ["specversion"], names: "specversion", bad: fc.oneof(fc.constantFrom("1", "1.0 ", "0.3", "2.0", ""), fc.integer(), fc.constant(1.0)) },
	{ path: ["id"], names: "\"id\"", bad: fc.oneof(fc.constant(""), tooLong(256), fc.integer(), fc.boolean(), fc.array(fc.string(), { maxLength: 2 })) },
	{ path: ["source"], names: "\"source\"", bad: fc.oneof(fc.constantFrom("", "/a b", "/tab\there", "/nl\n", "/nul\u0000"), tooLong(512), fc.integer()) },
	{ path: ["type"], names: "type", bad: fc.oneof(fc.constantFrom("crm.order", "CRM.PAGE.VIEWED", "crm.page.viewed ", "crm.__proto__.x"), fc.stringMatching(/^crm\.[a-z]{1,8}\.[a-z_]{1,12}$/).filter(t => !MUTABLE_TYPES.includes(t as never) && t !== "crm.ticket.resolved"), fc.integer()) },
	{ path: ["subject"], names: "\"subject\"", bad: fc.oneof(fc.constantFrom("", " c-1", "../c-1", "c 1", "c/1", "-c", ".c", "c\u0000", "ç"), tooLong(128).map(s => `a${s.replace(/[^A-Za-z0-9]/g, "x")}`), fc.integer(), fc.array(fc.constant("c-1"), { minLength: 1, maxLength: 2 })) },
	{ path: ["time"], names: "\"time\"", bad: fc.oneof(
		fc.constantFrom("2026-02-30T00:00:00Z", "2026-01-01T00:00:00", "2026-01-01", "0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "9999-12-31T23:59:59Z", "yesterday", ""),
		fc.integer({ min: 0 }), fc.date({ min: new Date(Date.now() + 2 * 86400_000), max: new Date(Date.UTC(9999, 0, 1)), noInvalidDate: true }).map(d => d.toISOString())
	) },
	{ path: ["data"], names: "\"data\"", bad: fc.oneof(fc.string(), fc.integer(), fc.array(fc.integer(), { maxLength: 3 }), fc.boolean()) }
];

const DATA_FIELDS: Record<(typeof MUTABLE_TYPES)[number], Target[]> = {
	"crm.customer.updated": [
		{ path: ["data", "profile", "email"], names: "data.profile.email", bad: fc.oneof(fc.constantFrom("no-at-sign", "a@b", "a b@c.de", "@x.de", "a@@b.de"), nonString) },
		{ path: ["data", "profile", "phone"], names: "data.profile.phone", bad: fc.oneof(fc.constantFrom("call me", "+-()", "12345678901234567890123456789012345", "1\n2"), nonString) },
		{ path: ["data", "profile", "name"], names: "data.profile.name", bad: fc.oneof(tooLong(512), fc.integer(), fc.array(fc.string(), { minLength: 1, maxLength: 2 })) }
	],
	"crm.order.status_changed": [
		{ path: ["data", "orderId"], names: "data.orderId", bad: fc.oneof(fc.constant(""), tooLong(128), nonString) },
		{ path: ["data", "newStatus"], names: "data.newStatus", bad: notIn(["CREATED", "PAID", "SHIPPED", "DELIVERED", "CANCELLED", "RETURNED"]) },
		{ path: ["data", "amount"], names: "data.amount", bad: fc.oneof(nonNumber, fc.double({ max: -Number.MIN_VALUE, noNaN: true, noDefaultInfinity: true })) },
		{ path: ["data", "currency"], names: "data.currency", bad: fc.oneof(fc.constantFrom("eur", "EURO", "E1R", ""), nonString) }
	],
	"crm.payment.failed": [
		{ path: ["data", "paymentId"], names: "data.paymentId", bad: fc.oneof(fc.constant(""), tooLong(128), nonString) },
		{ path: ["data", "amount"], names: "data.amount", bad: nonNumber }
	],
	"crm.interaction.logged": [
		{ path: ["data", "channel"], names: "data.channel", bad: notIn(["email", "phone", "chat", "meeting", "social"]) },
		{ path: ["data", "sentiment"], names: "data.sentiment", bad: fc.oneof(nonNumber, fc.double({ min: 1.000001, noNaN: true, noDefaultInfinity: true }), fc.double({ max: -1.000001, noNaN: true, noDefaultInfinity: true })) },
		{ path: ["data", "text"], names: "data.text", bad: fc.oneof(tooLong(4096), fc.integer()) }
	],
	"crm.ticket.opened": [
		{ path: ["data", "priority"], names: "data.priority", bad: notIn(["LOW", "MEDIUM", "HIGH", "CRITICAL"]) },
		{ path: ["data", "category"], names: "data.category", bad: fc.oneof(fc.constant(""), tooLong(64), nonString) }
	],
	"crm.device.telemetry": [
		{ path: ["data", "metrics", "temperatureC"], names: "data.metrics.temperatureC", bad: nonNumber },
		{ path: ["data", "metrics"], names: "data.metrics", bad: fc.oneof(fc.constant({}), fc.integer(), fc.string()) }
	],
	"crm.page.viewed": [
		{ path: ["data", "url"], names: "data.url", bad: fc.oneof(fc.constant(""), tooLong(2048), nonString) }
	],
	"crm.market.signal": [
		{ path: ["data", "price"], names: "data.price", bad: fc.oneof(nonNumber, fc.double({ max: -Number.MIN_VALUE, noNaN: true, noDefaultInfinity: true })) },
		{ path: ["data", "currency"], names: "data.currency", bad: fc.oneof(fc.constantFrom("usd", "US", "€"), nonString) }
	]
};

export interface Mutated {
	/** The event as JSON text: values like 1e999 or "NaN" as a bare literal are spliced in as text. */
	text: string;
	/** Text the rejection reason must contain (the mutated attribute or field). */
	names: string;
	type: string;
	path: string[];
	value: unknown;
}

/** A bare literal that JSON.stringify cannot produce (it would write null): kept as text in the body. */
const LITERALS: ReadonlySet<string> = new Set(["1e999", "-1e999"]);

/** A valid event of a random type with exactly one attribute or payload field made invalid. */
export function mutatedEvent(subject: string): fc.Arbitrary<Mutated> {
	return fc.constantFrom(...MUTABLE_TYPES).chain(type =>
		fc.constantFrom(...ATTRIBUTES, ...DATA_FIELDS[type]).chain(target => target.bad.map(value => {
			const event = validEvent(type, subject);
			let at = event as Record<string, unknown>;
			for (const p of target.path.slice(0, -1)) at = at[p] as Record<string, unknown>;
			const last = target.path[target.path.length - 1];
			const literal = typeof value === "string" && LITERALS.has(value) && target.path[0] === "data";
			at[last] = literal ? "\u0000LITERAL\u0000" : value;
			let text = JSON.stringify(event);
			if (literal) text = text.replace("\"\\u0000LITERAL\\u0000\"", value as string);
			return { text, names: target.names, type, path: target.path, value };
		}))
	);
}
