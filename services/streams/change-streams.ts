// Change streams: every persisted change of a customer (or of all customers) to Server-Sent Events clients, in order,
// resumable by cursor with no gap and no duplicate across restarts and shard moves. The store is the one ordered
// source: a client first replays what it missed from the store (the customer's journal, or the store-wide feed),
// then follows one tailer per node that reads the store's feed whenever a node says it persisted changes
// (`customer.changes.persisted`, plus a slow poll in case a signal is lost). Live items are de-duplicated by cursor;
// a per-customer item that skips a version makes that client re-read the journal. See docs/streams.md.
import { compareCursors, FEED_END, type FeedItem, type FeedPage } from "../../models/change-record.ts";
import type { ChangeView } from "../../models/contract/index.ts";
import type { SseStream } from "../../runtime/sse.ts";

/** Where the streams read: the customers service's actions on any node (the store is shared). */
export interface ChangeSource {
	/** One customer's changes above a version, oldest first. */
	changesSince(customerId: string, afterVersion: number, limit: number): Promise<ChangeView[]>;
	/** The store-wide feed after a cursor (FEED_END: only the newest cursor). */
	feed(cursor: string, limit: number): Promise<FeedPage>;
	/** A customer's current version (0 for one never seen). */
	version(customerId: string): Promise<number>;
}

export interface ChangeHubOptions {
	source: ChangeSource;
	/** Safety net: the feed is read at least this often while clients are connected, even without a signal. */
	pollMs?: number;
	/** Items per read of the store. */
	pageSize?: number;
	onError?: (message: string, err: unknown) => void;
}

const DEFAULTS = { pollMs: 1000, pageSize: 500 };

/** What a store-wide client wants: changes of customers whose score is above it, or was before the change. */
function passes(item: FeedItem, riskAbove: number | null): boolean {
	if (riskAbove === null) return true;
	return item.riskScore > riskAbove || (item.change.risk !== undefined && item.change.risk.old > riskAbove);
}

function viewOf(item: FeedItem): ChangeView {
	return { customerId: item.customerId, version: item.version, appliedAt: new Date(item.appliedAt).toISOString(), riskScore: item.riskScore, change: item.change };
}

/** One client of one customer's stream: its cursor is the last version it was sent. */
class CustomerSubscription {
	private reading = false;
	private again = false;
	readonly hub: ChangeHub;
	readonly customerId: string;
	last: number;
	readonly stream: SseStream;
	constructor(hub: ChangeHub, customerId: string, last: number, stream: SseStream) {
		this.hub = hub;
		this.customerId = customerId;
		this.last = last;
		this.stream = stream;
	}

	/** A live item of this customer from the tailer. */
	offer(item: FeedItem): void {
		if (item.version <= this.last) return;
		if (!this.reading && item.version === this.last + 1) {
			this.deliver(viewOf(item));
			return;
		}
		// Ahead of what this client has (it missed one, or is still catching up): the journal has them all, in order.
		void this.catchUp();
	}

	/** Reads the journal from `last` until it has nothing newer; a read asked for meanwhile runs after it. */
	async catchUp(): Promise<void> {
		if (this.reading) {
			this.again = true;
			return;
		}
		this.reading = true;
		try {
			do {
				this.again = false;
				for (;;) {
					if (this.stream.isClosed) return;
					const page = await this.hub.source.changesSince(this.customerId, this.last, this.hub.pageSize);
					for (const view of page) {
						if (view.version <= this.last) continue;
						if (view.version > this.last + 1) {
							// The journal's bound dropped versions this client never got: say so, then go on from what is kept.
							this.stream.send("reset", null, { reason: "journal trimmed", missedFrom: this.last + 1, resumesAt: view.version });
						}
						const wait = this.stream.paced();
						if (wait !== null) await wait;
						if (!this.deliver(view)) return;
					}
					if (page.length < this.hub.pageSize) break;
				}
			} while (this.again);
		} catch (err) {
			this.hub.onError("change stream: reading a customer's journal failed", err);
			this.stream.cut("error", "reading the journal failed: reconnect with Last-Event-ID to resume");
		} finally {
			this.reading = false;
		}
	}

	private deliver(view: ChangeView): boolean {
		this.last = view.version;
		return this.stream.send("change", String(view.version), view);
	}
}

/** One client of the store-wide stream: its cursor is the last feed position it has seen (sent or filtered out). */
class FeedSubscription {
	attached = false;
	cursor: string;
	readonly riskAbove: number | null;
	readonly stream: SseStream;
	constructor(cursor: string, riskAbove: number | null, stream: SseStream) {
		this.cursor = cursor;
		this.riskAbove = riskAbove;
		this.stream = stream;
	}

	offer(item: FeedItem): void {
		if (compareCursors(item.cursor, this.cursor) <= 0) return;
		this.cursor = item.cursor;
		if (passes(item, this.riskAbove)) this.stream.send("change", item.cursor, item);
	}
}

/** The streams of one node: one tailer of the store's feed, fanned out to every connected client. */
export class ChangeHub {
	readonly source: ChangeSource;
	readonly pageSize: number;
	private readonly pollMs: number;
	private readonly errorHandler: (message: string, err: unknown) => void;
	/** Where the tailer has read the feed to (null until it first asks the store for the newest cursor). */
	private tail: string | null = null;
	private tailing: Promise<void> | null = null;
	private pumping = false;
	private pumpAgain = false;
	private readonly byCustomer = new Map<string, Set<CustomerSubscription>>();
	private readonly feedSubs = new Set<FeedSubscription>();
	private poll: NodeJS.Timeout | null = null;
	private stopped = false;

	constructor(opts: ChangeHubOptions) {
		this.source = opts.source;
		this.pageSize = opts.pageSize ?? DEFAULTS.pageSize;
		this.pollMs = opts.pollMs ?? DEFAULTS.pollMs;
		this.errorHandler = opts.onError ?? (() => undefined);
	}

	/** Connected clients (per-customer and store-wide). */
	get clients(): number {
		let n = this.feedSubs.size;
		for (const subs of this.byCustomer.values()) n += subs.size;
		return n;
	}

	onError(message: string, err: unknown): void {
		this.errorHandler(message, err);
	}

	/** A node persisted changes: read the feed (coalesced: one read at a time, one more if asked meanwhile). */
	wake(): void {
		if (this.clients === 0 || this.stopped) return;
		void this.pump();
	}

	/**
	 * Streams one customer's changes to `stream`: after `lastVersion` when the client resumes (Last-Event-ID), else from
	 * its current version on.
	 */
	async openCustomer(customerId: string, lastVersion: number | null, stream: SseStream): Promise<void> {
		await this.ensureTail();
		const from = lastVersion ?? (await this.source.version(customerId));
		if (stream.isClosed) return;
		const sub = new CustomerSubscription(this, customerId, from, stream);
		let subs = this.byCustomer.get(customerId);
		if (subs === undefined) this.byCustomer.set(customerId, (subs = new Set()));
		subs.add(sub);
		this.startPolling();
		stream.onClose(() => {
			const set = this.byCustomer.get(customerId);
			set?.delete(sub);
			if (set?.size === 0) this.byCustomer.delete(customerId);
			this.stopPollingIfIdle();
		});
		stream.send("ready", null, { customerId, version: from });
		// Registered first, then the journal read: whatever the tailer sees meanwhile is either read here or after.
		await sub.catchUp();
	}

	/**
	 * Streams the store-wide feed (filtered by riskAbove) to `stream`: after `cursor` when the client resumes, else
	 * from now on. The client replays from the store until it has caught up with the tailer, then follows it.
	 */
	async openFeed(cursor: string | null, riskAbove: number | null, stream: SseStream): Promise<void> {
		await this.ensureTail();
		const sub = new FeedSubscription(cursor ?? (this.tail as string), riskAbove, stream);
		stream.onClose(() => {
			this.feedSubs.delete(sub);
			this.stopPollingIfIdle();
		});
		stream.send("ready", null, { cursor: sub.cursor, riskAbove });
		try {
			for (;;) {
				if (stream.isClosed) return;
				// Attach once the tailer has not read past this client: it then sends everything after its own cursor,
				// and the client drops what it already has.
				if (this.tail !== null && compareCursors(this.tail, sub.cursor) <= 0) {
					sub.attached = true;
					this.feedSubs.add(sub);
					this.startPolling();
					return;
				}
				const page = await this.source.feed(sub.cursor, this.pageSize);
				if (page.trimmed) stream.send("reset", null, { reason: "feed trimmed", missedAfter: sub.cursor });
				for (const item of page.items) {
					const wait = stream.paced();
					if (wait !== null) await wait;
					sub.offer(item);
				}
				// Nothing newer in the store, yet the tailer is past this client (a store whose feed can hold a newer change
				// back, MongoDB's numbering): give it a moment rather than spin.
				if (page.items.length === 0 && this.tail !== null && compareCursors(this.tail, sub.cursor) > 0) await new Promise(r => setTimeout(r, 50));
			}
		} catch (err) {
			this.onError("change stream: reading the feed failed", err);
			stream.cut("error", "reading the change feed failed: reconnect with Last-Event-ID to resume");
		}
	}

	stop(): void {
		this.stopped = true;
		if (this.poll) clearInterval(this.poll);
		this.poll = null;
		for (const sub of this.feedSubs) sub.stream.close();
		for (const subs of this.byCustomer.values()) for (const sub of subs) sub.stream.close();
		this.feedSubs.clear();
		this.byCustomer.clear();
	}

	/** The tailer's starting point: the newest cursor the first time a client connects. */
	private ensureTail(): Promise<void> {
		if (this.tail !== null) return Promise.resolve();
		this.tailing ??= this.source.feed(FEED_END, 1).then(
			page => {
				this.tail ??= page.cursor;
			},
			(err: unknown) => {
				this.tailing = null;
				throw err;
			}
		);
		return this.tailing;
	}

	private startPolling(): void {
		if (this.poll !== null || this.stopped) return;
		this.poll = setInterval(() => this.wake(), this.pollMs);
		this.poll.unref();
	}

	private stopPollingIfIdle(): void {
		if (this.clients > 0 || this.poll === null) return;
		clearInterval(this.poll);
		this.poll = null;
	}

	private async pump(): Promise<void> {
		if (this.pumping) {
			this.pumpAgain = true;
			return;
		}
		this.pumping = true;
		try {
			await this.ensureTail();
			do {
				this.pumpAgain = false;
				for (;;) {
					const page = await this.source.feed(this.tail as string, this.pageSize);
					if (page.trimmed) {
						// The tailer fell behind the feed's bound: store-wide clients may have missed changes. Per-customer
						// clients notice by themselves (a version gap makes them re-read the journal).
						for (const sub of this.feedSubs) sub.stream.send("reset", null, { reason: "feed trimmed", missedAfter: this.tail });
					}
					for (const item of page.items) {
						this.tail = item.cursor;
						this.fanOut(item);
					}
					if (page.items.length < this.pageSize) break;
				}
			} while (this.pumpAgain && this.clients > 0);
		} catch (err) {
			// The next signal or poll tries again from the same cursor: nothing is skipped.
			this.onError("change stream: reading the feed failed", err);
		} finally {
			this.pumping = false;
		}
	}

	private fanOut(item: FeedItem): void {
		const subs = this.byCustomer.get(item.customerId);
		if (subs !== undefined) for (const sub of subs) sub.offer(item);
		for (const sub of this.feedSubs) sub.offer(item);
	}
}

/** The SSE id a per-customer client sends back: the version, or `<customerId>:<version>`. Null when absent or bad. */
export function parseVersionId(lastEventId: string | undefined): number | null {
	if (lastEventId === undefined || lastEventId === "") return null;
	const m = /^(?:.*:)?(\d{1,15})$/.exec(lastEventId.trim());
	return m ? Number(m[1]) : null;
}
