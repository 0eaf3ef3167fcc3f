// DbMixin({ collection, config }): moleculer-db for entity services (opportunities, tickets, agents, …). NeDB files
// under DATA_DIR by default; MongoDB (official driver) when MONGO_URL is set — chosen from config, never process.env.
import { randomBytes } from "node:crypto";
import path from "node:path";
import DbService from "moleculer-db";
import type { FilterOptions, CountOptions } from "moleculer-db";
import { MongoClient, type Collection, type Document, type Filter, type Sort } from "mongodb";
import type { Service, ServiceBroker, ServiceSchema } from "moleculer";
import type { Config } from "../config/index.ts";

export interface DbMixinOptions {
	/** Collection name; the NeDB file is `<DATA_DIR>/<collection>.db`. */
	collection: string;
	/** `transporter` only sharpens the NeDB warning: in a cluster every node would keep its own file. */
	config: Pick<Config, "dataDir" | "mongoUrl"> & Partial<Pick<Config, "transporter">>;
	/** Fields to index (ascending), e.g. ["customerId"]. */
	indexes?: string[];
	/** NeDB only appends; compaction rewrites the file without superseded lines. Default 60 s (NeDB's minimum: 5 s). */
	compactionIntervalMs?: number;
}

/** The part of NeDB's Datastore (as opened by moleculer-db's MemoryAdapter) used here. */
interface NedbDatastore {
	ensureIndex(options: { fieldName: string }): Promise<void>;
	setAutocompactionInterval(ms: number): void;
	stopAutocompaction(): void;
}

type RawDoc = Document & { _id: string };
type DbHostService = Service & { adapter: { db?: NedbDatastore | null } };

/** The database named in a mongodb:// URL, if any (URL() cannot parse multi-host lists). */
function dbNameFromUrl(url: string): string | null {
	const m = /^mongodb(?:\+srv)?:\/\/[^/]+\/([^?]+)/.exec(url);
	return m ? decodeURIComponent(m[1]) : null;
}

function escapeRegExp(s: string): string {
	return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** A random 16-hex-character id, so ids are strings on both backends (NeDB makes its own 16-character ones). */
function newId(): string {
	return randomBytes(8).toString("hex");
}

/**
 * moleculer-db adapter on the official MongoDB driver (moleculer-db-adapter-mongodb pins an old driver).
 * Ids are strings, as with NeDB, so REST paths and cross-service references look the same on either backend.
 */
export class MongoEntityAdapter {
	private readonly url: string;
	private readonly collectionName: string;
	private readonly indexes: string[];
	private client: MongoClient | null = null;
	private coll: Collection<RawDoc> | null = null;

	constructor(url: string, collectionName: string, indexes: string[] = []) {
		this.url = url;
		this.collectionName = collectionName;
		this.indexes = indexes;
	}

	init(_broker: ServiceBroker, _service: Service): void {}

	async connect(): Promise<void> {
		const client = new MongoClient(this.url);
		await client.connect();
		const coll = client.db(dbNameFromUrl(this.url) ?? "crm").collection<RawDoc>(this.collectionName);
		for (const field of this.indexes) await coll.createIndex({ [field]: 1 }, { name: field });
		this.client = client;
		this.coll = coll;
	}

	async disconnect(): Promise<void> {
		const client = this.client;
		this.client = null;
		this.coll = null;
		await client?.close();
	}

	private get collection(): Collection<RawDoc> {
		if (!this.coll) throw new Error(`MongoEntityAdapter(${this.collectionName}): not connected`);
		return this.coll;
	}

	private filterOf(params: CountOptions & { searchFields?: string | string[] } = {}): Filter<RawDoc> {
		const query = (params.query ?? {}) as Filter<RawDoc>;
		if (typeof params.search !== "string" || params.search === "") return query;
		const fields = typeof params.searchFields === "string" ? params.searchFields.split(/\s+/) : params.searchFields ?? [];
		if (fields.length === 0) throw new Error("search needs searchFields on MongoDB");
		const re = new RegExp(escapeRegExp(params.search), "i");
		return { $and: [query, { $or: fields.map(f => ({ [f]: re })) }] } as Filter<RawDoc>;
	}

	async find(filters: FilterOptions & { sort?: string | string[] }): Promise<object[]> {
		let cursor = this.collection.find(this.filterOf(filters));
		const sort = typeof filters.sort === "string" ? filters.sort.split(/[,\s]+/) : filters.sort;
		if (Array.isArray(sort) && sort.length > 0) {
			const spec: Sort = Object.fromEntries(sort.map(f => (f.startsWith("-") ? [f.slice(1), -1] : [f, 1])));
			cursor = cursor.sort(spec);
		}
		if (typeof filters.offset === "number" && filters.offset > 0) cursor = cursor.skip(filters.offset);
		if (typeof filters.limit === "number" && filters.limit > 0) cursor = cursor.limit(filters.limit);
		return cursor.toArray();
	}

	async findOne(query: object): Promise<object> {
		return (await this.collection.findOne(query as Filter<RawDoc>)) as object;
	}

	async findById(id: unknown): Promise<object> {
		return (await this.collection.findOne({ _id: id } as Filter<RawDoc>)) as object;
	}

	async findByIds(ids: (string | number)[]): Promise<object[]> {
		return this.collection.find({ _id: { $in: ids } } as Filter<RawDoc>).toArray();
	}

	count(filters?: CountOptions): Promise<number> {
		return this.collection.countDocuments(this.filterOf(filters));
	}

	async insert(entity: object): Promise<object> {
		const doc = { _id: newId(), ...entity } as RawDoc;
		await this.collection.insertOne(doc);
		return doc;
	}

	async insertMany(entities: object[]): Promise<object[]> {
		const docs = entities.map(e => ({ _id: newId(), ...e }) as RawDoc);
		if (docs.length > 0) await this.collection.insertMany(docs);
		return docs;
	}

	async updateMany<Q extends object>(query: Q, update: object): Promise<number> {
		const r = await this.collection.updateMany(query as Filter<RawDoc>, update);
		return r.modifiedCount;
	}

	async updateById(id: string | number, update: object): Promise<object> {
		return (await this.collection.findOneAndUpdate({ _id: id } as Filter<RawDoc>, update, { returnDocument: "after" })) as object;
	}

	async removeMany(query: object): Promise<number> {
		return (await this.collection.deleteMany(query as Filter<RawDoc>)).deletedCount;
	}

	async removeById(id: string | number): Promise<object> {
		return (await this.collection.findOneAndDelete({ _id: id } as Filter<RawDoc>)) as object;
	}

	async clear(): Promise<void> {
		await this.collection.deleteMany({});
	}

	entityToObject(entity: object): object {
		return { ...entity };
	}

	beforeSaveTransformID(entity: object, idField: string): object {
		const e = { ...(entity as Record<string, unknown>) };
		if (idField !== "_id" && e[idField] !== undefined) {
			e._id = e[idField];
			delete e[idField];
		}
		return e;
	}

	afterRetrieveTransformID(entity: object, idField: string): object {
		const e = entity as Record<string, unknown>;
		if (idField !== "_id") {
			e[idField] = e._id;
			delete e._id;
		}
		return e;
	}
}

/** moleculer-db's generic actions, kept callable by other services but never published as REST routes. */
const DB_ACTIONS = ["find", "count", "list", "create", "insert", "get", "update", "remove"] as const;

/**
 * The generic CRUD actions stay internal (`visibility: "public"`): the API route passes `{ body, query, params }`
 * (mergeParams: false), which their flat params do not fit, and an entity's REST surface should be its own
 * validated actions. Ids are exposed as `id`.
 */
export function DbMixin(opts: DbMixinOptions): Partial<ServiceSchema> {
	const { collection, config } = opts;
	const indexes = opts.indexes ?? [];
	const compactionIntervalMs = opts.compactionIntervalMs ?? 60_000;
	const mongoUrl = config.mongoUrl;
	const file = path.join(config.dataDir, `${collection}.db`);
	const actions = Object.fromEntries(DB_ACTIONS.map(name => [name, { visibility: "public" }]));
	return {
		mixins: [DbService as unknown as ServiceSchema],
		adapter: mongoUrl ? new MongoEntityAdapter(mongoUrl, collection, indexes) : new DbService.MemoryAdapter({ filename: file } as never),
		settings: { idField: "id" },
		actions,
		// Lifecycle handlers of mixins run in order, so moleculer-db's own `started` (connect) has finished here.
		async started(this: DbHostService) {
			if (mongoUrl) {
				this.logger.info(`${collection}: MongoDB collection "${collection}" (MONGO_URL is set)`);
				return;
			}
			const db = this.adapter.db;
			if (db) {
				for (const fieldName of indexes) await db.ensureIndex({ fieldName });
				db.setAutocompactionInterval(compactionIntervalMs);
			}
			if (config.transporter) {
				this.logger.warn(`${collection}: NeDB file ${file} on a clustered node (TRANSPORTER is set): each node keeps its own ${collection}; set MONGO_URL to share them`);
			} else {
				this.logger.info(`${collection}: NeDB file ${file} (single node only: set MONGO_URL to share it across nodes)`);
			}
		},
		stopped(this: DbHostService) {
			this.adapter.db?.stopAutocompaction();
		}
	} as unknown as Partial<ServiceSchema>;
}
