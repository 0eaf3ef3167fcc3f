// devices: which customer an MQTT device speaks for (device → customer binding), an entity service on DbMixin (NeDB
// under DATA_DIR, MongoDB with MONGO_URL). REST under /api/v1/devices; ingest-mqtt asks (and caches) `devices.lookup`.
import { join } from "node:path";
import type { Context, Errors, Service, ServiceSchema } from "moleculer";
import type { Config } from "../config/index.ts";
import { DbMixin } from "../mixins/db.mixin.ts";
import { broadcast, DeviceEvents, Devices } from "../models/contract/index.ts";
import type { DeviceBinding } from "../models/entities/device-binding.entity.ts";
import { contractError } from "../runtime/contract-error.ts";

const ID = { type: "string", min: 1, max: 128, pattern: /^[A-Za-z0-9][A-Za-z0-9._:@-]*$/ } as const;

interface DeviceDoc {
	_id: string;
	customerId: string;
	boundAt: string;
}

interface RestParams<B = unknown, Q = Record<string, unknown>, P = Record<string, string>> { body: B; query: Q; params: P }

interface Adapter {
	findById(id: string): Promise<DeviceDoc | null>;
	find(filters: { query?: object; limit?: number; sort?: string[] }): Promise<DeviceDoc[]>;
	insert(doc: DeviceDoc): Promise<DeviceDoc>;
	updateById(id: string, update: object): Promise<DeviceDoc | null>;
	removeById(id: string): Promise<DeviceDoc | null>;
}

type DevicesService = Service & { adapter: Adapter };

function toBinding(doc: DeviceDoc): DeviceBinding {
	return { deviceId: doc._id, customerId: doc.customerId, boundAt: doc.boundAt };
}

function notFound(deviceId: string): Errors.MoleculerError {
	return contractError("DEVICE_NOT_FOUND", `device ${deviceId} is not bound`, { deviceId });
}

export function createDevicesService(config: Config): ServiceSchema {
	const schema = {
		name: Devices.service,
		// The device id is the document id, so a binding is found by key on either backend.
		mixins: [DbMixin({ collection: "devices", config, indexes: ["customerId"] }) as ServiceSchema],
		settings: { rest: "/" },
		actions: {
			bind: {
				visibility: "published",
				rest: "POST /devices",
				params: { body: { type: "object", strict: "remove", props: { deviceId: ID, customerId: ID } } },
				async handler(this: DevicesService, ctx: Context<RestParams<{ deviceId: string; customerId: string }>>): Promise<DeviceBinding> {
					const { deviceId, customerId } = ctx.params.body;
					const doc: DeviceDoc = { _id: deviceId, customerId, boundAt: new Date().toISOString() };
					const existing = await this.adapter.findById(deviceId);
					if (existing === null) {
						try {
							await this.adapter.insert(doc);
						} catch {
							// A concurrent bind of the same device inserted first: ours is the later word.
							await this.adapter.updateById(deviceId, { $set: { customerId, boundAt: doc.boundAt } });
						}
					} else if (existing.customerId !== customerId) {
						await this.adapter.updateById(deviceId, { $set: { customerId, boundAt: doc.boundAt } });
					} else {
						return toBinding(existing);
					}
					await broadcast(ctx, DeviceEvents.bindingChanged, { deviceId });
					return toBinding(doc);
				}
			},
			binding: {
				visibility: "published",
				rest: "GET /devices/:id",
				params: { params: { type: "object", props: { id: ID } } },
				async handler(this: DevicesService, ctx: Context<RestParams>): Promise<DeviceBinding> {
					const doc = await this.adapter.findById(ctx.params.params.id);
					if (doc === null) throw notFound(ctx.params.params.id);
					return toBinding(doc);
				}
			},
			bindings: {
				visibility: "published",
				rest: "GET /devices",
				params: {
					query: {
						type: "object",
						props: { customerId: { ...ID, optional: true }, limit: { type: "number", integer: true, min: 1, max: 1000, optional: true, convert: true } }
					}
				},
				async handler(this: DevicesService, ctx: Context<RestParams<unknown, { customerId?: string; limit?: number }>>): Promise<DeviceBinding[]> {
					const { customerId, limit } = ctx.params.query;
					const docs = await this.adapter.find({ query: customerId === undefined ? {} : { customerId }, limit: limit ?? 100, sort: ["_id"] });
					return docs.map(toBinding);
				}
			},
			unbind: {
				visibility: "published",
				rest: "DELETE /devices/:id",
				params: { params: { type: "object", props: { id: ID } } },
				async handler(this: DevicesService, ctx: Context<RestParams>): Promise<DeviceBinding> {
					const doc = await this.adapter.findById(ctx.params.params.id);
					if (doc === null) throw notFound(ctx.params.params.id);
					await this.adapter.removeById(doc._id);
					await broadcast(ctx, DeviceEvents.bindingChanged, { deviceId: doc._id });
					return toBinding(doc);
				}
			},
			lookup: {
				visibility: "public",
				params: { deviceId: ID },
				async handler(this: DevicesService, ctx: Context<{ deviceId: string }>): Promise<{ customerId: string | null }> {
					const doc = await this.adapter.findById(ctx.params.deviceId);
					return { customerId: doc?.customerId ?? null };
				}
			}
		},
		started(this: Service) {
			if (config.transporter !== undefined && config.mongoUrl === undefined) {
				this.logger.warn(`devices: bindings live in ${join(config.dataDir, "devices.db")} on this node only; in a cluster run the "devices" service on ONE node (SERVICES) so every node sees the same bindings`);
			}
		}
	};
	return schema as unknown as ServiceSchema;
}
