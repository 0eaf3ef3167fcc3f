// The chaos run's verdict: what the publishers had acknowledged against what every customer's journal and state hold.
// Pure: the runner gathers the publish log and the journals, this decides.
//
// The promise checked (ARCHITECTURE §4), per customer: every acknowledged event is in its journal exactly once, the
// journal holds the customer's events in the order its one publisher sent them (each customer is written by one
// publisher over one source, which sends its next event only once the previous one is acknowledged), nothing is in
// it that nobody published, and the state the cluster serves equals the pure replay of that journal.

export const SOURCES = ["jetstream", "http", "webhook", "mqtt"] as const;
export type SourceKind = (typeof SOURCES)[number];

/** One event a publisher sent (and maybe sent again): its dedup key, its place in the customer's sequence, whether acked. */
export interface Published {
	customerId: string;
	source: SourceKind;
	/** `source/id` of the CloudEvent (the actor's dedup key). */
	key: string;
	/** 1, 2, 3… in publish order per customer. */
	seq: number;
	acked: boolean;
}

/** What the store holds for a customer: its journal oldest first (version and dedup key of each entry). */
export interface JournalRow {
	version: number;
	key: string;
}

export interface CustomerReading {
	customerId: string;
	journal: readonly JournalRow[];
	/** The journal holds every entry since the first (else the replay starts from a snapshot the checker cannot see). */
	complete: boolean;
	/** The state the cluster serves (GET /api/v1/customers/:id), or null when it answered 404. */
	state: unknown;
	/** The pure replay of the journal as the same view, or the replay's error. */
	replayed: unknown;
	replayError?: string;
}

export interface Violation {
	kind: "lost" | "duplicate" | "out-of-order" | "replay-mismatch" | "unexpected";
	customerId: string;
	detail: string;
}

export interface Verdict {
	customers: number;
	acknowledged: number;
	/** Journal entries of events this run published (each counted once). */
	applied: number;
	/** Applied although their publisher never saw the ack (in flight when a node died, or at the end of the run). */
	appliedUnacked: number;
	lost: number;
	duplicates: number;
	outOfOrder: number;
	replayMismatches: number;
	unexpected: number;
	perSource: Record<SourceKind, { acknowledged: number; applied: number }>;
	violations: Violation[];
}

const MAX_LISTED = 50;

function sameJson(a: unknown, b: unknown): boolean {
	return JSON.stringify(a) === JSON.stringify(b);
}

export function check(published: readonly Published[], readings: readonly CustomerReading[]): Verdict {
	const byCustomer = new Map<string, Map<string, Published>>();
	for (const p of published) {
		let m = byCustomer.get(p.customerId);
		if (!m) byCustomer.set(p.customerId, (m = new Map()));
		const seen = m.get(p.key);
		// A key sent more than once (a retry) is one event; acked if any attempt was.
		m.set(p.key, seen ? { ...seen, acked: seen.acked || p.acked } : p);
	}
	const readingOf = new Map(readings.map(r => [r.customerId, r]));
	const v: Verdict = {
		customers: byCustomer.size, acknowledged: 0, applied: 0, appliedUnacked: 0, lost: 0, duplicates: 0, outOfOrder: 0,
		replayMismatches: 0, unexpected: 0,
		perSource: Object.fromEntries(SOURCES.map(s => [s, { acknowledged: 0, applied: 0 }])) as Verdict["perSource"],
		violations: []
	};
	const report = (violation: Violation) => {
		if (v.violations.length < MAX_LISTED) v.violations.push(violation);
	};
	for (const [customerId, events] of byCustomer) {
		const reading = readingOf.get(customerId);
		const journal = reading?.journal ?? [];
		const counts = new Map<string, number>();
		let highestSeq = 0;
		let highestKey = "";
		for (const row of journal) {
			const n = (counts.get(row.key) ?? 0) + 1;
			counts.set(row.key, n);
			const p = events.get(row.key);
			if (!p) {
				v.unexpected++;
				report({ kind: "unexpected", customerId, detail: `journal v${row.version} holds ${row.key}, which no publisher of this run sent` });
				continue;
			}
			if (n > 1) {
				v.duplicates++;
				report({ kind: "duplicate", customerId, detail: `${row.key} (seq ${p.seq}) applied ${n} times (again at v${row.version})` });
				continue;
			}
			if (p.seq < highestSeq) {
				v.outOfOrder++;
				report({ kind: "out-of-order", customerId, detail: `${row.key} (seq ${p.seq}) applied at v${row.version} after ${highestKey} (seq ${highestSeq})` });
			} else {
				highestSeq = p.seq;
				highestKey = row.key;
			}
		}
		for (const p of events.values()) {
			const applied = counts.has(p.key);
			if (applied) {
				v.applied++;
				v.perSource[p.source].applied++;
			}
			if (p.acked) {
				v.acknowledged++;
				v.perSource[p.source].acknowledged++;
				if (!applied) {
					v.lost++;
					report({ kind: "lost", customerId, detail: `${p.key} (seq ${p.seq}, ${p.source}) was acknowledged but is not in the journal` });
				}
			} else if (applied) {
				v.appliedUnacked++;
			}
		}
		// Unread (never written): its acknowledged events are already counted as lost.
		if (!reading) continue;
		if (reading.replayError !== undefined) {
			v.replayMismatches++;
			report({ kind: "replay-mismatch", customerId, detail: `the journal does not replay: ${reading.replayError}` });
		} else if (reading.complete && !sameJson(reading.state, reading.replayed)) {
			v.replayMismatches++;
			report({ kind: "replay-mismatch", customerId, detail: `served state ${JSON.stringify(reading.state).slice(0, 300)} ≠ replay ${JSON.stringify(reading.replayed).slice(0, 300)}` });
		}
	}
	return v;
}

/** Violations a run must not have (events applied without an ack are not one: their publisher just never heard back). */
export function violationCount(v: Verdict): number {
	return v.lost + v.duplicates + v.outOfOrder + v.replayMismatches + v.unexpected;
}
