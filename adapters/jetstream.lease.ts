// A leader lease in a NATS KV bucket: at most one holder, renewed by compare-and-set, expiring with the bucket's
// TTL when the holder dies. The holder fences itself (stops) once it has gone `fenceAfterMs` without a successful
// renewal, which is well before the key can expire and anyone else can take it.
import { nanos, type KV, type NatsConnection } from "nats";

export interface KvLeaseOptions {
	nc: NatsConnection;
	bucket: string;
	key: string;
	/** Unique per process (a restarted process is a new holder). */
	holder: string;
	ttlMs: number;
	fenceAfterMs: number;
	now?: () => number;
}

interface LeaseValue {
	holder: string;
	acquiredAt: string;
}

function isCasFailure(err: unknown): boolean {
	return /wrong last sequence/i.test((err as Error)?.message ?? "");
}

export class KvLease {
	private readonly opts: KvLeaseOptions;
	private readonly now: () => number;
	private kv: KV | null = null;
	private revision: number | null = null;
	/** Local deadline: past it, the holder must act as if it had lost the lease. */
	private validUntil = 0;
	private value: Uint8Array = new Uint8Array();

	constructor(opts: KvLeaseOptions) {
		if (opts.fenceAfterMs >= opts.ttlMs) throw new RangeError("fenceAfterMs must be shorter than ttlMs");
		this.opts = opts;
		this.now = opts.now ?? Date.now;
	}

	/** Opens (or creates) the bucket; its TTL is set to ours if another configuration created it. */
	async open(): Promise<void> {
		const js = this.opts.nc.jetstream();
		const kv = await js.views.kv(this.opts.bucket, { history: 1, ttl: this.opts.ttlMs });
		const status = await kv.status();
		if (status.ttl !== this.opts.ttlMs) {
			const jsm = await this.opts.nc.jetstreamManager();
			await jsm.streams.update(`KV_${this.opts.bucket}`, { max_age: nanos(this.opts.ttlMs) });
		}
		this.kv = kv;
	}

	/** True while the lease is ours and not past its local deadline. */
	get held(): boolean {
		return this.revision !== null && this.now() < this.validUntil;
	}

	get deadline(): number {
		return this.validUntil;
	}

	/** Takes the lease when it is free (or already ours); false when someone else holds it. */
	async tryAcquire(): Promise<boolean> {
		const kv = this.requireKv();
		const sentAt = this.now();
		const value: LeaseValue = { holder: this.opts.holder, acquiredAt: new Date(sentAt).toISOString() };
		const bytes = new TextEncoder().encode(JSON.stringify(value));
		try {
			const entry = await kv.get(this.opts.key);
			let revision: number;
			if (entry === null || entry.operation !== "PUT") revision = await kv.create(this.opts.key, bytes);
			else if (this.holderOf(entry.value) === this.opts.holder) revision = await kv.update(this.opts.key, bytes, entry.revision);
			else return false;
			this.revision = revision;
			this.value = bytes;
			this.validUntil = sentAt + this.opts.fenceAfterMs;
			return true;
		} catch (err) {
			if (isCasFailure(err)) return false;
			throw err;
		}
	}

	/**
	 * Extends the lease. Returns false when it was lost (someone else holds it now); throws on a transport error,
	 * after which the lease may still be ours until `deadline`.
	 */
	async renew(): Promise<boolean> {
		const kv = this.requireKv();
		if (this.revision === null) return false;
		const sentAt = this.now();
		try {
			this.revision = await kv.update(this.opts.key, this.value, this.revision);
			this.validUntil = sentAt + this.opts.fenceAfterMs;
			return true;
		} catch (err) {
			if (!isCasFailure(err)) throw err;
			this.revision = null;
			this.validUntil = 0;
			return false;
		}
	}

	/** Gives the lease up at once so another node need not wait for the TTL. */
	async release(): Promise<void> {
		const revision = this.revision;
		this.revision = null;
		this.validUntil = 0;
		if (revision === null || !this.kv) return;
		try {
			await this.kv.delete(this.opts.key, { previousSeq: revision });
		} catch {
			// Lost already, or NATS is gone: the TTL frees it.
		}
	}

	/** Forgets the lease locally (after fencing) without touching the key. */
	drop(): void {
		this.revision = null;
		this.validUntil = 0;
	}

	private holderOf(value: Uint8Array): string | null {
		try {
			return (JSON.parse(new TextDecoder().decode(value)) as LeaseValue).holder;
		} catch {
			return null;
		}
	}

	private requireKv(): KV {
		if (!this.kv) throw new Error("lease bucket is not open");
		return this.kv;
	}
}
