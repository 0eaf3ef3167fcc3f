// Per-source webhook mappers: turn a provider's own payload into CloudEvents (ARCHITECTURE §9). A body that already
// is a CloudEvent (or an array of them) passes through untouched; the envelope validator checks either. Pure.
import { MAX_BATCH } from "./cloud-event.validator.ts";
import { FORBIDDEN_KEYS, isPlainObject, showKey } from "./event-data.schemas.ts";
import type { OrderStatus } from "./event-data.schemas.ts";

export interface MappingError {
	index: number;
	reason: string;
}

export type MapResult = { ok: true; events: unknown } | { ok: false; errors: MappingError[] };

/** Maps one provider payload (a parsed JSON body) to CloudEvent candidates; the validator still checks them. */
export type WebhookMapper = (body: unknown, source: string) => MapResult;

const MAX_SCAN_DEPTH = 32;

/**
 * Where a prototype key hides in a JSON value, or undefined. CloudEvents get this check from the validator; a
 * provider payload gets it here, before a mapper copies fields out of it.
 */
export function findForbiddenKey(value: unknown, path = "body", depth = 0): string | undefined {
	if (typeof value !== "object" || value === null) return undefined;
	if (depth > MAX_SCAN_DEPTH) return `${path} is nested deeper than ${MAX_SCAN_DEPTH} levels`;
	if (Array.isArray(value)) {
		for (let i = 0; i < value.length; i++) {
			const found = findForbiddenKey(value[i], `${path}[${i}]`, depth + 1);
			if (found !== undefined) return found;
		}
		return undefined;
	}
	for (const key of Object.keys(value)) {
		if (FORBIDDEN_KEYS.has(key)) return `${path} has forbidden key "${key}"`;
		const found = findForbiddenKey((value as Record<string, unknown>)[key], `${path}.${showKey(key)}`, depth + 1);
		if (found !== undefined) return found;
	}
	return undefined;
}

function looksLikeCloudEvent(value: unknown): boolean {
	return isPlainObject(value) && "specversion" in value;
}

const SHOP_STATUSES: Readonly<Record<string, OrderStatus>> = {
	pending: "CREATED",
	created: "CREATED",
	paid: "PAID",
	fulfilled: "SHIPPED",
	shipped: "SHIPPED",
	delivered: "DELIVERED",
	cancelled: "CANCELLED",
	canceled: "CANCELLED",
	refunded: "RETURNED",
	returned: "RETURNED"
};

function shopStatus(value: unknown): OrderStatus | undefined {
	return typeof value === "string" && Object.hasOwn(SHOP_STATUSES, value.toLowerCase()) ? SHOP_STATUSES[value.toLowerCase()] : undefined;
}

/**
 * The example provider "shop": an order webhook `{ id, topic: "orders/updated", created_at, order: { id,
 * customer_id, status, previous_status?, total_price?, currency? } }` becomes `crm.order.status_changed`. Its
 * delivery `id` is the event id, so the provider's own retries are duplicates.
 */
function mapShopDelivery(body: unknown): unknown {
	if (!isPlainObject(body)) throw new Error("shop delivery must be a JSON object");
	const { id, topic, created_at: createdAt, order } = body;
	if (typeof topic !== "string" || !topic.startsWith("orders/")) throw new Error(`shop topic "${showKey(String(topic))}" is not mapped (only orders/*)`);
	if (!isPlainObject(order)) throw new Error("shop delivery has no order object");
	const newStatus = shopStatus(order.status);
	if (newStatus === undefined) throw new Error(`shop order status "${showKey(String(order.status))}" is not mapped`);
	const data: Record<string, unknown> = {
		orderId: typeof order.id === "number" || typeof order.id === "string" ? String(order.id) : order.id,
		newStatus
	};
	if (order.previous_status !== undefined && order.previous_status !== null) {
		const oldStatus = shopStatus(order.previous_status);
		if (oldStatus === undefined) throw new Error(`shop order previous_status "${showKey(String(order.previous_status))}" is not mapped`);
		data.oldStatus = oldStatus;
	}
	if (order.total_price !== undefined && order.total_price !== null) data.amount = typeof order.total_price === "string" ? Number(order.total_price) : order.total_price;
	if (order.currency !== undefined && order.currency !== null) data.currency = order.currency;
	return {
		specversion: "1.0",
		id: typeof id === "number" ? String(id) : id,
		source: "/webhooks/shop",
		type: "crm.order.status_changed",
		subject: order.customer_id,
		time: createdAt,
		data
	};
}

function perItem(map: (item: unknown) => unknown): WebhookMapper {
	return body => {
		const items = Array.isArray(body) ? body : [body];
		if (Array.isArray(body) && (body.length === 0 || body.length > MAX_BATCH)) return { ok: false, errors: [{ index: -1, reason: `batch must hold 1..${MAX_BATCH} deliveries` }] };
		const events: unknown[] = [];
		const errors: MappingError[] = [];
		items.forEach((item, index) => {
			const forbidden = findForbiddenKey(item, Array.isArray(body) ? `body[${index}]` : "body");
			if (forbidden !== undefined) {
				errors.push({ index, reason: forbidden });
				return;
			}
			try {
				events.push(map(item));
			} catch (err) {
				errors.push({ index, reason: (err as Error).message });
			}
		});
		if (errors.length > 0) return { ok: false, errors };
		return { ok: true, events: Array.isArray(body) ? events : events[0] };
	};
}

/** Mappers by webhook source name (the `:source` of `POST /webhooks/:source`). */
export const WEBHOOK_MAPPERS: Readonly<Record<string, WebhookMapper>> = {
	shop: perItem(mapShopDelivery)
};

/**
 * CloudEvent candidates of a webhook body: CloudEvents pass through, a source with a mapper gets its payload mapped,
 * anything else passes through for the validator to reject with a precise reason.
 */
export function mapWebhookBody(source: string, body: unknown, mappers: Readonly<Record<string, WebhookMapper>> = WEBHOOK_MAPPERS): MapResult {
	const cloudEvents = Array.isArray(body) ? body.length > 0 && body.every(looksLikeCloudEvent) : looksLikeCloudEvent(body);
	if (cloudEvents || !Object.hasOwn(mappers, source)) return { ok: true, events: body };
	return mappers[source](body, source);
}
