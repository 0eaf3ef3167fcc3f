// The highest acknowledgement floor a durable consumer has ever reported, kept in a NATS KV bucket beside the lease.
// nats-server 2.9 can come back from a restart with consumer state older than acknowledgements it had confirmed
// (seen by `npm run chaos`: messages acknowledged minutes before were delivered again). The actors' de-duplication
// window only remembers each customer's latest events, so the ordered consumer skips — acknowledges again without
// applying — every delivery at or below this floor. The floor is bound to the consumer's creation time: a consumer
// (or stream) deleted and created again starts from nothing.
import type { KV, NatsConnection } from "nats";

export interface AckFloor {
	/** ConsumerInfo.created of the consumer the floor belongs to. */
	consumerCreated: string;
	/** Every stream sequence at or below it was acknowledged. */
	streamSeq: number;
}

/** Parses a stored floor; null for anything that is not one (a hand-edited or foreign value is ignored, not trusted). */
export function parseAckFloor(bytes: Uint8Array): AckFloor | null {
	try {
		const v = JSON.parse(new TextDecoder().decode(bytes)) as Partial<AckFloor> | null;
		if (v === null || typeof v !== "object" || typeof v.consumerCreated !== "string") return null;
		if (typeof v.streamSeq !== "number" || !Number.isSafeInteger(v.streamSeq) || v.streamSeq < 0) return null;
		return { consumerCreated: v.consumerCreated, streamSeq: v.streamSeq };
	} catch {
		return null;
	}
}

/** The floor that holds for the consumer created at `consumerCreated`: the highest of what the server says and what was kept. */
export function effectiveFloor(serverFloor: number, kept: AckFloor | null, consumerCreated: string): number {
	return kept !== null && kept.consumerCreated === consumerCreated ? Math.max(serverFloor, kept.streamSeq) : serverFloor;
}

export class AckFloorCheckpoint {
	private readonly nc: NatsConnection;
	private readonly bucket: string;
	private readonly key: string;
	private kv: KV | null = null;
	private written: AckFloor | null = null;

	constructor(nc: NatsConnection, bucket: string, key: string) {
		this.nc = nc;
		this.bucket = bucket;
		this.key = key;
	}

	/** Opens (or creates) the bucket: one value per key, no expiry. */
	async open(): Promise<void> {
		this.kv = await this.nc.jetstream().views.kv(this.bucket, { history: 1 });
	}

	/** The kept floor, or null when there is none (or it cannot be read as one). */
	async read(): Promise<AckFloor | null> {
		const entry = await this.requireKv().get(this.key);
		if (entry === null || entry.operation !== "PUT") return null;
		const floor = parseAckFloor(entry.value);
		if (floor !== null) this.written = floor;
		return floor;
	}

	/** Keeps `floor` when it is higher than the one kept for the same consumer (only the lease holder writes). */
	async raise(floor: AckFloor): Promise<void> {
		const w = this.written;
		if (w !== null && w.consumerCreated === floor.consumerCreated && w.streamSeq >= floor.streamSeq) return;
		await this.requireKv().put(this.key, new TextEncoder().encode(JSON.stringify(floor)));
		this.written = floor;
	}

	private requireKv(): KV {
		if (this.kv === null) throw new Error("ack floor checkpoint used before open()");
		return this.kv;
	}
}
