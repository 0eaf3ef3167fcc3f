// A FIFO of actors for the host's eviction segments: push at the back, take from the front, remove anywhere in O(1).
// Each item knows its slot; removing it empties the slot at once (a removed actor must not stay reachable: it holds
// its state), and the empty slots are swept out once they outnumber the live ones. A Map used as a queue costs more:
// every `values().next()` from the front walks the deleted slots a stream of deletions leaves there, until the table
// is rehashed; under a full cap that walk was a third of the host's CPU.

/** What a queue needs of an item: the queue it is in (null: none) and its slot there, both owned by the queue. */
export interface QueueItem {
	queue: SegmentQueue<QueueItem> | null;
	queueSlot: number;
}

export class SegmentQueue<T extends QueueItem> {
	private items: Array<T | null> = [];
	private head = 0;
	private live = 0;

	get size(): number {
		return this.live;
	}

	/** Adds at the back; the item must not be in a queue. */
	push(item: T): void {
		item.queue = this as SegmentQueue<QueueItem>;
		item.queueSlot = this.items.length;
		this.items.push(item);
		this.live++;
	}

	/** Takes the item at the front, or undefined when empty. */
	shift(): T | undefined {
		const items = this.items;
		while (this.head < items.length) {
			const item = items[this.head];
			items[this.head++] = null;
			if (item !== null) {
				item.queue = null;
				this.live--;
				if (this.head > 1024 && this.head * 2 > items.length) this.sweep();
				return item;
			}
		}
		this.items = [];
		this.head = 0;
		return undefined;
	}

	/** Removes an item wherever it is. */
	remove(item: T): void {
		if (item.queue !== (this as SegmentQueue<QueueItem>)) return;
		this.items[item.queueSlot] = null;
		item.queue = null;
		this.live--;
		if (this.items.length - this.head > 1024 && this.live * 2 < this.items.length - this.head) this.sweep();
	}

	clear(): void {
		for (let i = this.head; i < this.items.length; i++) {
			const item = this.items[i];
			if (item !== null) item.queue = null;
		}
		this.items = [];
		this.head = 0;
		this.live = 0;
	}

	/** Drops the empty slots; every live item gets its new slot. */
	private sweep(): void {
		const items: Array<T | null> = [];
		for (let i = this.head; i < this.items.length; i++) {
			const item = this.items[i];
			if (item !== null) {
				item.queueSlot = items.length;
				items.push(item);
			}
		}
		this.items = items;
		this.head = 0;
	}
}
