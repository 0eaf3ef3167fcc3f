// De-duplication of scraped market records by content before they reach the actors: the same observation scraped
// twice arrives under two envelope ids, so the key is what was observed, for whom, on which day — not the id.
import type { CloudEvent } from "../models/cloud-event.ts";
import type { MarketSignalData } from "../models/event-data.schemas.ts";
import { eventTimeMs } from "../models/cloud-event.validator.ts";
import { RotatingBloomFilter } from "../lib/bloom-filter.ts";

/** The content key of a market signal: customer, competitor, product, price, currency, segment and UTC day. */
export function marketContentKey(event: CloudEvent<"crm.market.signal", MarketSignalData>): string {
	const d = event.data;
	const day = new Date(eventTimeMs(event)).toISOString().slice(0, 10);
	// NUL cannot occur in validated strings' meaning here, so fields cannot run into each other.
	return [event.subject, d.competitor, d.product, String(d.price), d.currency, d.segment ?? "", day].join("\u0000");
}

/**
 * A Bloom filter of applied content plus the keys still in flight: a record is a duplicate when the same content
 * was applied (or probably was: a false positive drops a new record at the configured rate) or is being applied
 * right now. Keys enter the filter only once applied, so a record that fails (and is dead-lettered) does not turn
 * its later re-sends into duplicates.
 */
export class MarketDeduplicator {
	private readonly filter: RotatingBloomFilter;
	private readonly inFlight = new Set<string>();

	constructor(expectedItems: number, falsePositiveRate: number) {
		this.filter = new RotatingBloomFilter(expectedItems, falsePositiveRate);
	}

	/** True when the content was seen; otherwise the key is marked in flight until `applied` or `abandoned`. */
	isDuplicate(key: string): boolean {
		if (this.inFlight.has(key) || this.filter.has(key)) return true;
		this.inFlight.add(key);
		return false;
	}

	applied(key: string): void {
		this.inFlight.delete(key);
		this.filter.add(key);
	}

	abandoned(key: string): void {
		this.inFlight.delete(key);
	}
}
