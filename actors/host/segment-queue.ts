// A FIFO of actors for the host's eviction segments: push at the back, take from the front, remove anywhere in O(1)
// (lazily: a removed item stays in the array, is skipped when it reaches the front, and is swept out once removed
// items outnumber live ones). A Map used as a queue costs more: every `values().next()` from the front walks the
// deleted slots a stream of deletions leaves there, until the table is rehashed; under a full cap that walk was a
// third of the host's CPU.

/** What a queue needs of an item: the queue it is in (null: none) and its place there, both owned by the queue. */
export interface QueueItem {
	queue: SegmentQueue<QueueItem> | null;
	queueSeq: number;
}

export class SegmentQueue<T extends QueueItem> {
	private items: Array<T | null> = [];
	/** The push number of each slot: a slot is live when its item is still in this queue with that number. */
	private seqs: number[] = [];
	private head = 0;
	private live = 0;
	private pushes = 0;

	get size(): number {
		return this.live;
	}

	/** Adds at the back; the item must not be in a queue. */
	push(item: T): void {
		item.queue = this as SegmentQueue<QueueItem>;
		item.queueSeq = ++this.pushes;
		this.items.push(item);
		this.seqs.push(item.queueSeq);
		this.live++;
	}

	/** Takes the item at the front, or undefined when empty. */
	shift(): T | undefined {
		const items = this.items;
		while (this.head < items.length) {
			const item = items[this.head];
			const seq = this.seqs[this.head];
			items[this.head++] = null;
			if (item !== null && this.holds(item, seq)) {
				item.queue = null;
				this.live--;
				if (this.head > 1024 && this.head * 2 > items.length) this.sweep();
				return item;
			}
		}
		this.items = [];
		this.seqs = [];
		this.head = 0;
		return undefined;
	}

	private holds(item: T, seq: number): boolean {
		return item.queue === (this as SegmentQueue<QueueItem>) && item.queueSeq === seq;
	}

	/** Removes an item wherever it is (it stays in the array, skipped, until swept). */
	remove(item: T): void {
		if (item.queue !== (this as SegmentQueue<QueueItem>)) return;
		item.queue = null;
		this.live--;
		if (this.items.length - this.head > 1024 && this.live * 2 < this.items.length - this.head) this.sweep();
	}

	clear(): void {
		for (let i = this.head; i < this.items.length; i++) {
			const item = this.items[i];
			if (item !== null && this.holds(item, this.seqs[i])) item.queue = null;
		}
		this.items = [];
		this.seqs = [];
		this.head = 0;
		this.live = 0;
	}

	/** Drops the taken and removed slots (an item removed and pushed again keeps only its newer place). */
	private sweep(): void {
		const items: Array<T | null> = [];
		const seqs: number[] = [];
		for (let i = this.head; i < this.items.length; i++) {
			const item = this.items[i];
			if (item !== null && this.holds(item, this.seqs[i])) {
				items.push(item);
				seqs.push(this.seqs[i]);
			}
		}
		this.items = items;
		this.seqs = seqs;
		this.head = 0;
	}
}
