// The published contract for clients, generated from the validator tables (never written by hand twice): JSON Schema
// of the CloudEvent envelope and of every event type's `data` (models/event-data.schemas.ts), OpenAPI 3.1 of the
// HTTP API (from the routes and action param schemas a node serves), AsyncAPI 3.0 of the NATS subjects, the
// dead-letter subjects and the MQTT topic, and the event catalogue (docs/events.md). Pure: callers pass in what a
// running node knows (its routes, the risk rules loaded).
import { EVENT_TYPES, type EventType } from "./cloud-event.ts";
import {
	ENVELOPE_ATTRIBUTES, EXTENSION_NAME, MAX_BATCH, MAX_DATA_BYTES, MAX_DEPTH, MAX_FUTURE_MS, MAX_ID_LENGTH, RFC3339, SOURCE_PATTERN,
	SUBJECT_PATTERN
} from "./cloud-event.validator.ts";
import { DATA_SCHEMAS, type JsonSchema } from "./event-data.schemas.ts";
import { eventTypeDocs } from "./event-catalogue.ts";
import { DECLARED_METRICS, TELEMETRY_PAYLOAD_SCHEMA } from "./telemetry.schema.ts";

export type { JsonSchema };

const DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema";

/** File names of the published JSON Schemas (`npm run schemas` writes them to schemas/). */
export const SCHEMA_FILES = {
	event: "cloudevent.schema.json",
	batch: "cloudevent-batch.schema.json",
	data: (type: EventType) => `data/${type}.schema.json`,
	openapi: "openapi.json",
	asyncapi: "asyncapi.json"
} as const;

/** The JSON Schema of one event type's `data`, as its validator checks it. */
export function eventDataSchema(type: EventType): JsonSchema {
	const doc = eventTypeDocs()[type];
	return { title: `data of ${type}`, description: doc.summary, ...DATA_SCHEMAS[type].schema };
}

/** The envelope's attributes, each as the validator checks it (without `data`, whose schema depends on `type`). */
function envelopeProperties(types: readonly EventType[]): Record<string, JsonSchema> {
	return {
		specversion: { const: "1.0", description: "CloudEvents version." },
		id: { type: "string", minLength: 1, maxLength: MAX_ID_LENGTH, description: "Unique per source: source + id is the de-duplication key (a repeated one has no second effect)." },
		source: { type: "string", pattern: SOURCE_PATTERN.source, description: "URI-reference of the producer, e.g. /shop/orders (1..512 characters, no spaces or control characters)." },
		type: types.length === 1 ? { const: types[0] } : { enum: [...types], description: "Event type; unknown types are refused (dead-lettered), never guessed." },
		subject: { type: "string", pattern: SUBJECT_PATTERN.source, description: "The customer id: 1..128 letters, digits or ._:@- starting with a letter or digit." },
		time: {
			type: "string", format: "date-time", pattern: RFC3339.source,
			description: `RFC 3339 with a time zone offset; not before 1970-01-01, not more than ${MAX_FUTURE_MS / 3_600_000} h in the future.`
		},
		datacontenttype: { const: "application/json" },
		data: { type: "object", description: `The payload, at most ${MAX_DATA_BYTES / 1024} KiB of JSON and ${MAX_DEPTH} levels deep counting the envelope.` }
	};
}

/** Extension attributes: lower-case alphanumeric names, scalar values (checked, then dropped). */
function extensionRules(): JsonSchema {
	return {
		propertyNames: { anyOf: [{ enum: [...ENVELOPE_ATTRIBUTES] }, { pattern: EXTENSION_NAME.source }] },
		additionalProperties: { type: ["string", "number", "boolean", "null"] }
	};
}

/** The envelope of one event type, with its `data` inline (for a per-type message, e.g. in AsyncAPI). */
export function typedEventSchema(type: EventType): JsonSchema {
	const props = envelopeProperties([type]);
	return {
		type: "object",
		required: ["specversion", "id", "source", "type", "subject", "time", "data"],
		properties: { ...props, data: { ...props.data, ...eventDataSchema(type) } },
		...extensionRules()
	};
}

/** The JSON Schema of one CloudEvent of any known type: `data` follows `type` (draft 2020-12, `$defs` per type). */
export function cloudEventSchema(): JsonSchema {
	return {
		$schema: DRAFT_2020_12,
		$id: SCHEMA_FILES.event,
		title: "CRM CloudEvent",
		description: "A CloudEvents 1.0 event (structured JSON mode) as every source takes it: POST /api/v1/events, webhooks, NATS crm.events.<entity>.<verb>.",
		type: "object",
		required: ["specversion", "id", "source", "type", "subject", "time", "data"],
		properties: envelopeProperties(EVENT_TYPES),
		...extensionRules(),
		allOf: EVENT_TYPES.map(type => ({
			if: { properties: { type: { const: type } }, required: ["type"] },
			then: { properties: { data: { $ref: `#/$defs/${defName(type)}` } } }
		})),
		$defs: Object.fromEntries(EVENT_TYPES.map(type => [defName(type), eventDataSchema(type)]))
	};
}

/** POST /api/v1/events and webhooks: one event, or 1..MAX_BATCH of them. */
export function cloudEventBatchSchema(): JsonSchema {
	return {
		$schema: DRAFT_2020_12,
		$id: SCHEMA_FILES.batch,
		title: "CRM CloudEvent or batch",
		oneOf: [{ $ref: SCHEMA_FILES.event }, { type: "array", minItems: 1, maxItems: MAX_BATCH, items: { $ref: SCHEMA_FILES.event } }]
	};
}

function defName(type: EventType): string {
	return type.replace(/^crm\./, "").replace(/[._](.)/g, (_, c: string) => c.toUpperCase()).replace(/^./, c => c.toUpperCase()) + "Data";
}

// ---- fastest-validator (Moleculer's validator) → JSON Schema, for the actions' params ---------------------------

/** A Moleculer param rule: a shorthand string ("string|optional") or an object rule. */
export type ParamRule = string | { [key: string]: unknown };

/** The JSON Schema of a param rule, and whether the param is optional. */
export function paramRuleSchema(rule: ParamRule): { schema: JsonSchema; optional: boolean } {
	const r: Record<string, unknown> = typeof rule === "string" ? parseShorthand(rule) : rule;
	const optional = r.optional === true;
	let schema: Record<string, unknown>;
	switch (r.type) {
		case "string": {
			schema = { type: "string" };
			if (typeof r.min === "number") schema.minLength = r.min;
			if (typeof r.max === "number") schema.maxLength = r.max;
			if (typeof r.length === "number") schema.minLength = schema.maxLength = r.length;
			if (r.empty === false && schema.minLength === undefined) schema.minLength = 1;
			if (r.pattern instanceof RegExp) schema.pattern = r.pattern.source;
			else if (typeof r.pattern === "string") schema.pattern = r.pattern;
			if (Array.isArray(r.enum)) schema.enum = r.enum;
			break;
		}
		case "number": {
			schema = { type: r.integer === true ? "integer" : "number" };
			if (typeof r.min === "number") schema.minimum = r.min;
			if (typeof r.max === "number") schema.maximum = r.max;
			if (r.positive === true) schema.exclusiveMinimum = 0;
			break;
		}
		case "boolean": schema = { type: "boolean" }; break;
		case "enum": schema = { enum: Array.isArray(r.values) ? r.values : [] }; break;
		case "equal": schema = { const: r.value }; break;
		case "email": schema = { type: "string", format: "email" }; break;
		case "date": schema = { type: "string", format: "date-time" }; break;
		case "array": {
			schema = { type: "array" };
			if (r.items !== undefined) schema.items = paramRuleSchema(r.items as ParamRule).schema;
			if (typeof r.min === "number") schema.minItems = r.min;
			if (typeof r.max === "number") schema.maxItems = r.max;
			break;
		}
		case "object": {
			schema = { type: "object" };
			const props = r.props as Record<string, ParamRule> | undefined;
			if (props !== undefined) {
				const o = objectSchema(props);
				Object.assign(schema, o);
				if (r.strict === true || r.strict === "remove") schema.additionalProperties = r.strict === true ? false : true;
			}
			if (typeof r.minProps === "number") schema.minProperties = r.minProps;
			if (typeof r.maxProps === "number") schema.maxProperties = r.maxProps;
			break;
		}
		case "record": schema = { type: "object", ...(r.value !== undefined ? { additionalProperties: paramRuleSchema(r.value as ParamRule).schema } : {}) }; break;
		default: schema = {}; // "any" and custom rules: anything
	}
	if (r.nullable === true && Object.keys(schema).length > 0) schema = { anyOf: [schema, { type: "null" }] };
	if (r.default !== undefined) schema.default = r.default;
	return { schema, optional };
}

/** The object schema of a `props` table: properties and the required ones. */
export function objectSchema(props: Record<string, ParamRule>): { properties: Record<string, JsonSchema>; required?: string[] } {
	const properties: Record<string, JsonSchema> = {};
	const required: string[] = [];
	for (const [name, rule] of Object.entries(props)) {
		const { schema, optional } = paramRuleSchema(rule);
		properties[name] = schema;
		if (!optional) required.push(name);
	}
	return required.length > 0 ? { properties, required } : { properties };
}

function parseShorthand(rule: string): Record<string, unknown> {
	const [type, ...modifiers] = rule.split("|");
	const out: Record<string, unknown> = { type: type.trim() };
	for (const m of modifiers) {
		const [key, value] = m.split(":").map(x => x.trim());
		if (value === undefined) out[key] = true;
		else out[key] = /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value === "true" ? true : value === "false" ? false : value;
	}
	return out;
}

// ---- OpenAPI 3.1 ----------------------------------------------------------------------------------------------

/** One HTTP route a node serves: what moleculer-web's listAliases reports, with its action's param schema. */
export interface RouteInfo {
	method: string;
	/** Full path as moleculer-web writes it: /api/v1/customers/:id */
	path: string;
	action?: string;
	/** The action's `params` (fastest-validator), when it has any. */
	params?: Record<string, ParamRule>;
	/** Whether the route needs `Authorization: Bearer <key>`. */
	auth: boolean;
}

const ERROR_BODY: JsonSchema = {
	type: "object",
	required: ["error"],
	properties: { error: { type: "object", required: ["type", "message"], properties: { type: { type: "string" }, message: { type: "string" }, data: {} } } }
};
const VALIDATION_ERRORS: JsonSchema = {
	type: "object",
	required: ["errors"],
	properties: {
		errors: {
			type: "array",
			items: { type: "object", required: ["index", "reason"], properties: { index: { type: "integer", description: "Index in the batch (0 for a single event; -1: the batch itself)." }, reason: { type: "string" } } }
		}
	}
};
const RISK: JsonSchema = {
	type: "object",
	required: ["score", "factors"],
	properties: {
		score: { type: "number", minimum: 0, maximum: 100 },
		factors: { type: "object", additionalProperties: { type: "number" }, description: "Named contributions in points, e.g. order.cancelled, churn.model." }
	}
};
/** A customer as `GET /api/v1/customers/:id` returns it (the actor's last persisted state). */
const CUSTOMER: JsonSchema = {
	type: "object",
	required: ["id", "version", "profile", "risk"],
	properties: {
		id: { type: "string" },
		version: { type: "integer", description: "Messages applied so far." },
		createdAt: { type: "number", description: "Event time (ms) of the first event." },
		lastActivityAt: { type: "number" },
		profile: { type: "object", additionalProperties: { type: ["string", "number", "boolean"] } },
		counters: { type: "object", additionalProperties: { type: "integer" } },
		openTicketIds: { type: "array", items: { type: "string" } },
		orderStatus: { type: "object", additionalProperties: { type: "string" } },
		telemetry: { type: "object", additionalProperties: { type: "number" } },
		lastSentiment: { type: ["number", "null"] },
		risk: RISK,
		churnProbability: { type: ["number", "null"], minimum: 0, maximum: 1 },
		reminders: { type: "object", additionalProperties: { type: "number" } }
	}
};
const JOURNAL_ENTRY: JsonSchema = {
	type: "object",
	required: ["customerId", "version", "key", "appliedAt", "riskScore", "event"],
	properties: {
		customerId: { type: "string" }, version: { type: "integer" }, key: { type: "string", description: "source/id" },
		appliedAt: { type: "number" }, riskScore: { type: "number" }, event: { $ref: "#/components/schemas/CloudEvent" }
	}
};

/** The body of a Server-Sent Events response: text, one event per blank-line-separated block (docs/streams.md). */
const SSE_BODY: JsonSchema = {
	type: "string",
	description: "Server-Sent Events: `ready` (where the stream starts), `change` (id = the cursor to resume from; data = { customerId, version, appliedAt, riskScore, change }), `reset` (a bound trimmed what was asked for), `error` (then the server closes: reason `slow consumer` or `error`); `: heartbeat` comments and `retry:`."
};
const SSE_RESPONSES = {
	200: { description: "A stream of the changes as they persist, resumable with Last-Event-ID.", schema: SSE_BODY, mediaType: "text/event-stream" },
	400: { description: "Invalid parameters or Last-Event-ID.", schema: ERROR_BODY }
};
/** Routes that answer Server-Sent Events and resume from the `Last-Event-ID` header. */
const SSE_ROUTES: ReadonlySet<string> = new Set(["GET /api/v1/customers/{id}/stream", "GET /api/v1/stream"]);

/** Responses of the routes whose results are part of the contract (ARCHITECTURE §9); others answer JSON. */
const KNOWN_RESPONSES: Record<string, Record<string, { description: string; schema?: JsonSchema; mediaType?: string }>> = {
	"GET /api/v1/customers/{id}/stream": SSE_RESPONSES,
	"GET /api/v1/stream": SSE_RESPONSES,
	"POST /api/v1/events": {
		202: { description: "Every event persisted by its actor (duplicates had no effect).", schema: { type: "object", required: ["accepted", "duplicates"], properties: { accepted: { type: "integer" }, duplicates: { type: "integer" } } } },
		400: { description: "At least one event is invalid: nothing was applied.", schema: VALIDATION_ERRORS },
		415: { description: "Not JSON in UTF-8, or a compressed body.", schema: ERROR_BODY }
	},
	"GET /api/v1/customers/{id}": {
		200: { description: "The customer's last persisted state.", schema: { $ref: "#/components/schemas/Customer" } },
		404: { description: "A customer never seen.", schema: ERROR_BODY }
	},
	"GET /api/v1/customers/{id}/events": {
		200: { description: "Its journal, newest first.", schema: { type: "array", items: JOURNAL_ENTRY } }
	},
	"GET /api/v1/customers": {
		200: { description: "Customers by descending risk score.", schema: { type: "array", items: { type: "object", required: ["id", "score"], properties: { id: { type: "string" }, score: { type: "number" } } } } }
	}
};

function openApiPath(path: string): string {
	return path.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, "{$1}");
}

function operationId(method: string, path: string, action?: string): string {
	const base = action ?? `${method.toLowerCase()}${path.replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ? c.toUpperCase() : ""))}`;
	return base.replace(/[^A-Za-z0-9_.-]/g, "_");
}

/** An OpenAPI 3.1 document of the routes a node serves, plus the fixed ones (§9: health, signed webhooks). */
export function openApiDocument(routes: readonly RouteInfo[], info: { version: string }): JsonSchema {
	const paths: Record<string, Record<string, unknown>> = {};
	const add = (method: string, path: string, op: Record<string, unknown>) => {
		const p = openApiPath(path);
		(paths[p] ??= {})[method.toLowerCase()] = op;
	};
	for (const route of [...routes].sort((a, b) => a.path.localeCompare(b.path) || a.method.localeCompare(b.method))) {
		const p = openApiPath(route.path);
		const key = `${route.method.toUpperCase()} ${p}`;
		const parameters: unknown[] = [];
		for (const name of [...p.matchAll(/\{([^}]+)\}/g)].map(m => m[1])) {
			const rule = (route.params?.params as { props?: Record<string, ParamRule> } | undefined)?.props?.[name];
			parameters.push({ name, in: "path", required: true, schema: rule ? paramRuleSchema(rule).schema : { type: "string" } });
		}
		const queryProps = (route.params?.query as { props?: Record<string, ParamRule> } | undefined)?.props;
		if (queryProps) {
			for (const [name, rule] of Object.entries(queryProps)) {
				const { schema, optional } = paramRuleSchema(rule);
				parameters.push({ name, in: "query", required: !optional, schema });
			}
		}
		if (SSE_ROUTES.has(key)) {
			parameters.push({ name: "Last-Event-ID", in: "header", required: false, schema: { type: "string" }, description: "The id of the last change received: the stream resumes after it." });
			parameters.push({ name: "since", in: "query", required: false, schema: { type: "string" }, description: "Like Last-Event-ID, for clients that cannot set headers." });
			if (key === "GET /api/v1/stream") parameters.push({ name: "riskAbove", in: "query", required: false, schema: { type: "number", minimum: -1, maximum: 100 }, description: "Only changes of customers whose score after (or before) the change is above it." });
		}
		const op: Record<string, unknown> = { operationId: operationId(route.method, route.path, route.action), summary: route.action ? `action ${route.action}` : `${route.method} ${p}` };
		if (parameters.length > 0) op.parameters = parameters;
		let body: JsonSchema | undefined;
		if (key === "POST /api/v1/events") body = { $ref: "#/components/schemas/CloudEventOrBatch" };
		else if (route.params?.body !== undefined && route.method !== "GET") body = paramRuleSchema(route.params.body as ParamRule).schema;
		if (body !== undefined) op.requestBody = { required: true, content: { "application/json": { schema: body } } };
		const responses: Record<string, unknown> = {};
		for (const [status, r] of Object.entries(KNOWN_RESPONSES[key] ?? { 200: { description: "OK (JSON)." } })) {
			responses[status] = r.schema ? { description: r.description, content: { [r.mediaType ?? "application/json"]: { schema: r.schema } } } : { description: r.description };
		}
		if (!responses["400"]) responses["400"] = { description: "Invalid parameters.", content: { "application/json": { schema: ERROR_BODY } } };
		if (route.auth) responses["401"] = { description: "Missing or wrong API key.", content: { "application/json": { schema: ERROR_BODY } } };
		op.responses = responses;
		op.security = route.auth ? [{ apiKey: [] }] : [];
		add(route.method, route.path, op);
	}
	for (const which of ["live", "ready"] as const) {
		add("GET", `/health/${which}`, {
			operationId: `health${which === "live" ? "Live" : "Ready"}`,
			summary: which === "live" ? "200 while the process serves HTTP." : "200 once every service of the node is started and every route it serves answers; else 503.",
			security: [],
			responses: { 200: { description: which }, 503: { description: `not ${which}` } }
		});
	}
	add("POST", "/webhooks/:source", {
		operationId: "postWebhook",
		summary: "Signed webhook: a CloudEvent or a batch (or a provider payload with a per-source mapper).",
		description: "Signature: `X-Crm-Signature: sha256=<hex HMAC-SHA256(WEBHOOK_SECRET, timestamp + \".\" + raw body)>` with `X-Crm-Timestamp` (unix seconds, at most 300 s off). Idempotent on `Idempotency-Key` (else on the event id).",
		security: [],
		parameters: [
			{ name: "source", in: "path", required: true, schema: { type: "string", pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$" } },
			{ name: "X-Crm-Timestamp", in: "header", required: true, schema: { type: "string", pattern: "^[0-9]{1,12}$" } },
			{ name: "X-Crm-Signature", in: "header", required: true, schema: { type: "string", pattern: "^sha256=[0-9a-f]{64}$" } },
			{ name: "Idempotency-Key", in: "header", required: false, schema: { type: "string", maxLength: 256 } }
		],
		requestBody: { required: true, content: { "application/json": { schema: { $ref: "#/components/schemas/CloudEventOrBatch" } } } },
		responses: {
			202: { description: "Persisted (or a repeated Idempotency-Key: the first answer)." },
			400: { description: "Invalid events or body.", content: { "application/json": { schema: VALIDATION_ERRORS } } },
			401: { description: "Bad signature or timestamp skew over 300 s." },
			503: { description: "WEBHOOK_SECRET is not set: unsigned webhooks are never accepted." }
		}
	});
	return {
		openapi: "3.1.0",
		info: { title: "crm-actors HTTP API", version: info.version, description: "Generated from the node's routes and validators (`npm run schemas`). Every /api/v1 route needs `Authorization: Bearer <key>` (API_KEYS)." },
		jsonSchemaDialect: DRAFT_2020_12,
		servers: [{ url: "http://localhost:3000" }],
		paths,
		components: {
			securitySchemes: { apiKey: { type: "http", scheme: "bearer", description: "A key from API_KEYS." } },
			schemas: {
				CloudEvent: componentSchema(cloudEventSchema(), "#/components/schemas/"),
				CloudEventOrBatch: { oneOf: [{ $ref: "#/components/schemas/CloudEvent" }, { type: "array", minItems: 1, maxItems: MAX_BATCH, items: { $ref: "#/components/schemas/CloudEvent" } }] },
				Customer: CUSTOMER,
				...Object.fromEntries(EVENT_TYPES.map(type => [defName(type), eventDataSchema(type)]))
			}
		}
	};
}

/** A standalone schema as an OpenAPI component: its `$defs` live beside it in components/schemas. */
function componentSchema(schema: JsonSchema, base: string): JsonSchema {
	const { $schema: _s, $id: _i, $defs: _d, ...rest } = schema as Record<string, unknown>;
	return JSON.parse(JSON.stringify(rest).replaceAll("\"#/$defs/", `"${base}`)) as JsonSchema;
}

// ---- AsyncAPI 3.0 ---------------------------------------------------------------------------------------------

/** The dead-letter record published on crm.dlq.<source> (stream CRM_DLQ). */
const DEAD_LETTER: JsonSchema = {
	type: "object",
	required: ["v", "source", "reason", "reasonCode", "payload", "recordedAt"],
	properties: {
		v: { const: 1, description: "Format version of the record." },
		source: { type: "string", description: "The source that refused the input: api, webhook, nats, mqtt, erp, files, logs." },
		reason: { type: "string", description: "Human-readable reason (personal data masked)." },
		reasonCode: { type: "string", description: "Short code for metrics and filtering, e.g. invalid_json, invalid_event, max_deliveries." },
		payload: { description: "The original input, as a string or JSON (a prefix of its JSON text when truncated)." },
		payloadEncoding: { const: "base64", description: "Set when payload is the base64 of bytes that were not UTF-8." },
		truncated: { type: "boolean" },
		retryAction: { type: "string" },
		subject: { type: "string", description: "NATS subject of the original message (retry republishes there)." },
		msgId: { type: "string", description: "Nats-Msg-Id of the original message." },
		recordedAt: { type: "string", format: "date-time" }
	}
};

/** An AsyncAPI 3.0 document: what the CRM receives on NATS and MQTT, and the dead letters it publishes. */
export function asyncApiDocument(info: { version: string }): JsonSchema {
	const docs = eventTypeDocs();
	const messages: Record<string, unknown> = {};
	const eventMessages: Record<string, unknown> = {};
	for (const type of EVENT_TYPES) {
		const name = defName(type).replace(/Data$/, "");
		messages[name] = {
			name: type,
			title: type,
			summary: docs[type].summary,
			description: `${docs[type].effect} Published on \`${docs[type].subject}\` with header \`Nats-Msg-Id: <source>/<id>\`.`,
			contentType: "application/json",
			headers: { type: "object", properties: { "Nats-Msg-Id": { type: "string", description: "<source>/<id>: JetStream de-duplicates on it within its window." } } },
			payload: typedEventSchema(type),
			examples: [{ name: "example", headers: { "Nats-Msg-Id": `${docs[type].example.source}/${docs[type].example.id}` }, payload: docs[type].example }]
		};
		eventMessages[name] = { $ref: `#/components/messages/${name}` };
	}
	messages.DeadLetter = {
		name: "crm.dlq",
		title: "Dead letter",
		summary: "An input a source could not take, with the reason; nothing is dropped silently.",
		contentType: "application/json",
		headers: {
			type: "object",
			properties: {
				"Crm-Dlq-Source": { type: "string" },
				"Crm-Dlq-Reason-Code": { type: "string" },
				"Nats-Msg-Id": { type: "string", description: "The dedup key of the refused input: a redelivered bad message makes one dead letter." }
			}
		},
		payload: DEAD_LETTER
	};
	messages.DeviceTelemetry = {
		name: "device.telemetry",
		title: "Device telemetry",
		summary: "A device reading; QoS 1, acknowledged (PUBACK) only once persisted. Impossible readings are dead-lettered.",
		contentType: "application/json",
		payload: TELEMETRY_PAYLOAD_SCHEMA,
		examples: [{ name: "example", payload: { customerId: "cust-42", ts: "2026-11-24T10:00:00Z", metrics: { signalDbm: -71, batteryPct: 88 } } }]
	};
	return {
		asyncapi: "3.0.0",
		info: {
			title: "crm-actors event contract",
			version: info.version,
			description: "Generated from the validators (`npm run schemas`). Publishers send CloudEvents to JetStream (stream CRM_EVENTS) and device readings over MQTT; sources publish what they refuse to the dead-letter stream CRM_DLQ."
		},
		defaultContentType: "application/json",
		servers: {
			nats: { host: "localhost:4222", protocol: "nats", description: "JetStream: stream CRM_EVENTS on crm.events.>, stream CRM_DLQ on crm.dlq.>." },
			mqtt: { host: "localhost:1883", protocol: "mqtt", description: "mosquitto (MQTT_URL), or the embedded broker on MQTT_PORT." }
		},
		channels: {
			events: {
				address: "crm.events.{entity}.{verb}",
				title: "Customer events",
				description: "One subject per event type: crm.<entity>.<verb> → crm.events.<entity>.<verb>. The subject's type must match the event's type.",
				parameters: {
					entity: { enum: [...new Set(EVENT_TYPES.map(t => t.split(".")[1]))], description: "The entity of the event type." },
					verb: { enum: [...new Set(EVENT_TYPES.map(t => t.split(".")[2]))], description: "The verb of the event type." }
				},
				messages: eventMessages,
				servers: [{ $ref: "#/servers/nats" }]
			},
			deadLetters: {
				address: "crm.dlq.{source}",
				title: "Dead letters",
				parameters: { source: { enum: ["api", "webhook", "nats", "mqtt", "erp", "files", "logs"], description: "The source that refused the input." } },
				messages: { DeadLetter: { $ref: "#/components/messages/DeadLetter" } },
				servers: [{ $ref: "#/servers/nats" }]
			},
			deviceTelemetry: {
				address: "crm/devices/{deviceId}/telemetry",
				title: "Device telemetry",
				parameters: { deviceId: { description: "1..128 letters, digits or ._:@-, starting with a letter or digit." } },
				messages: { DeviceTelemetry: { $ref: "#/components/messages/DeviceTelemetry" } },
				servers: [{ $ref: "#/servers/mqtt" }]
			}
		},
		operations: {
			receiveEvents: {
				action: "receive",
				channel: { $ref: "#/channels/events" },
				summary: "The CRM consumes every customer event (one leased puller, per-customer order kept), applies it once, and acks only once persisted.",
				messages: Object.keys(eventMessages).map(name => ({ $ref: `#/channels/events/messages/${name}` }))
			},
			sendDeadLetters: {
				action: "send",
				channel: { $ref: "#/channels/deadLetters" },
				summary: "Every source publishes what it cannot take, with the reason.",
				messages: [{ $ref: "#/channels/deadLetters/messages/DeadLetter" }]
			},
			receiveTelemetry: {
				action: "receive",
				channel: { $ref: "#/channels/deviceTelemetry" },
				summary: "Device readings, converted to crm.device.telemetry events.",
				messages: [{ $ref: "#/channels/deviceTelemetry/messages/DeviceTelemetry" }],
				bindings: { mqtt: { qos: 1 } }
			}
		},
		components: { messages }
	};
}

// ---- docs/events.md -------------------------------------------------------------------------------------------

/** A risk rule as the catalogue shows it: name, where it is, its condition text and what it adds. */
export interface RiskRuleDoc {
	name: string;
	file: string;
	line: number;
	eventType?: string;
	condition: string;
	deltas: readonly { factor: string; points: number }[];
}

/** The factors the reducer derives itself (actors/risk.ts), for the catalogue. */
export interface DerivedRiskDoc {
	/** Event types after which the churn model re-scores (factor churn.model). */
	churnRelevant: readonly string[];
	churnWeight: number;
	openTicketsFree: number;
	openTicketsPointsEach: number;
}

function fieldRows(schema: JsonSchema): string[] {
	const props = (schema.properties ?? {}) as Record<string, JsonSchema>;
	const required = new Set((schema.required ?? []) as string[]);
	return Object.entries(props).map(([name, s]) => `| \`${name}\` | ${required.has(name) ? "yes" : "no"} | ${describeSchema(s)} |`);
}

function describeSchema(s: JsonSchema): string {
	const parts: string[] = [];
	if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
	if (Array.isArray(s.enum)) return `one of ${(s.enum as unknown[]).map(v => `\`${String(v)}\``).join(", ")}`;
	if (Array.isArray(s.anyOf)) return (s.anyOf as JsonSchema[]).map(describeSchema).join(" or ");
	const type = s.type;
	if (type === "string") {
		parts.push("string");
		if (s.format === "email") parts.push("(e-mail address)");
		if (s.minLength !== undefined || s.maxLength !== undefined) parts.push(`of ${String(s.minLength ?? 0)}..${String(s.maxLength)} characters`);
		if (s.pattern !== undefined && s.format === undefined) parts.push(`matching \`${String(s.pattern)}\``);
		if (Array.isArray(s.allOf)) parts.push(`matching ${(s.allOf as JsonSchema[]).map(p => `\`${String(p.pattern)}\``).join(" and ")}`);
	} else if (type === "number" || type === "integer") {
		parts.push(type);
		if (s.minimum !== undefined && s.maximum !== undefined) parts.push(`from ${String(s.minimum)} to ${String(s.maximum)}`);
		else if (s.minimum !== undefined) parts.push(`≥ ${String(s.minimum)}`);
		else if (s.maximum !== undefined) parts.push(`≤ ${String(s.maximum)}`);
	} else if (type === "object") {
		parts.push(`object of ${String(s.minProperties ?? 0)}..${String(s.maxProperties ?? "any")} fields`);
		const names = s.propertyNames as JsonSchema | undefined;
		if (names?.pattern) parts.push(`(names matching \`${String(names.pattern)}\`)`);
		const known = s.properties as Record<string, JsonSchema> | undefined;
		if (known) parts.push(`; ${Object.entries(known).map(([k, v]) => `\`${k}\`: ${describeSchema(v)}`).join("; ")}; others:`);
		else parts.push("; values:");
		parts.push(describeSchema((s.additionalProperties ?? {}) as JsonSchema));
	} else if (type === "null") {
		return "`null`";
	} else if (type === "boolean") {
		return "boolean";
	} else {
		return "any JSON value";
	}
	return parts.join(" ");
}

/** docs/events.md: every event type with its fields, an example, and its effect on the customer and its risk. */
export function eventsCatalogueMarkdown(rules: readonly RiskRuleDoc[], derived: DerivedRiskDoc): string {
	const docs = eventTypeDocs();
	const envelope = cloudEventSchema();
	const out: string[] = [];
	out.push("# Events: the catalogue");
	out.push("");
	out.push("<!-- Generated by `npm run schemas` from models/event-data.schemas.ts (fields), models/event-catalogue.ts (prose, examples) and rules/*.nools (risk rules). Do not edit: a test compares it with the generator. -->");
	out.push("");
	out.push("Every source takes the same envelope, a [CloudEvents 1.0](https://cloudevents.io) event in structured JSON mode:");
	out.push("`POST /api/v1/events` (one event or an array of up to " + MAX_BATCH + "), signed webhooks `POST /webhooks/:source`, and NATS JetStream");
	out.push("subjects `crm.events.<entity>.<verb>` with header `Nats-Msg-Id: <source>/<id>`. Machine-readable: `schemas/` (JSON Schema");
	out.push("draft 2020-12, OpenAPI 3.1, AsyncAPI 3.0), also served by a node at `GET /api/v1/openapi.json` and `GET /api/v1/asyncapi.json`.");
	out.push("An event that does not validate is refused as a whole (HTTP 400 with the reason) or dead-lettered with the reason; an");
	out.push("event whose `source` + `id` was applied before has no second effect.");
	out.push("");
	out.push("## The envelope");
	out.push("");
	out.push("| attribute | required | value |");
	out.push("|---|---|---|");
	const envProps = envelope.properties as Record<string, JsonSchema>;
	for (const [name, s] of Object.entries(envProps)) {
		out.push(`| \`${name}\` | ${(envelope.required as string[]).includes(name) ? "yes" : "no"} | ${name === "type" ? "one of the types below" : `${describeSchema(s)}${s.description ? `. ${String(s.description)}` : ""}`} |`);
	}
	out.push("");
	out.push("Extension attributes (lower-case letters and digits, at most 20) may carry a string, number or boolean; they are checked and dropped.");
	out.push("Unknown `data` fields are refused, not ignored, so that a typo surfaces.");
	out.push("");
	out.push("## Risk score");
	out.push("");
	out.push("The score is 0–100, the clamped sum of named factors. Rule factors come from the rule files (below, per event type);");
	out.push(`the reducer adds \`tickets.open\` (${derived.openTicketsPointsEach} points per open ticket above ${derived.openTicketsFree}) and \`churn.model\``);
	out.push(`(churn probability × ${derived.churnWeight}, re-scored after ${derived.churnRelevant.map(t => `\`${t}\``).join(", ")}).`);
	out.push("Event-driven factors decay by half after 30 days without activity (settings RISK_DECAY_AFTER_MS, RISK_DECAY_KEEP).");
	out.push("Every change of the score emits `customer.risk.changed` (old and new score, factors).");
	out.push("");
	for (const type of EVENT_TYPES) {
		const doc = docs[type];
		const data = eventDataSchema(type);
		out.push(`## \`${type}\``);
		out.push("");
		out.push(doc.summary);
		out.push("");
		out.push(`NATS subject: \`${doc.subject}\`.`);
		out.push("");
		out.push("| `data` field | required | value |");
		out.push("|---|---|---|");
		out.push(...fieldRows(data));
		out.push("");
		out.push(`**Effect.** ${doc.effect}`);
		out.push("");
		const typeRules = rules.filter(r => r.eventType === type || r.eventType === undefined);
		if (typeRules.length > 0) {
			out.push("**Risk rules.**");
			out.push("");
			for (const r of typeRules) {
				const adds = r.deltas.map(d => `${d.points >= 0 ? "+" : ""}${d.points} to \`${d.factor}\``).join(", ");
				out.push(`- \`${r.name}\` (${r.file}:${r.line}): when \`${r.condition}\`: ${adds}.`);
			}
		} else {
			out.push("**Risk rules.** None.");
		}
		out.push("");
		out.push("Example:");
		out.push("");
		out.push("```json");
		out.push(JSON.stringify(doc.example, null, 2));
		out.push("```");
		out.push("");
	}
	out.push("## Device telemetry over MQTT");
	out.push("");
	out.push(`Topic \`crm/devices/<deviceId>/telemetry\`, QoS 1, payload \`{ customerId, ts, metrics }\` (\`ts\`: ms since the epoch or RFC 3339).`);
	out.push(`Declared metrics and their possible ranges (a reading outside is dead-lettered): ${Object.entries(DECLARED_METRICS).map(([k, r]) => `\`${k}\` ${r.counter ? "(counter, ≥ 0)" : `${r.min}..${r.max}`}`).join(", ")}.`);
	out.push("Each reading becomes a `crm.device.telemetry` event.");
	out.push("");
	return out.join("\n");
}
