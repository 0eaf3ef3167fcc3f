// Turns a dead letter's reason into a short code of bounded variety — the one label of a dead letter: stored with it,
// the `reason` of crm_dead_letters_total and of the dashboard's window. Reasons quote user input (unknown type names,
// field names, ids), and one label per distinct input would grow without limit.

const CODE = /^[a-z0-9][a-z0-9_.-]{0,47}$/;
const MAX_LABEL_CHARS = 64;

/**
 * The label for a reason: the caller's `reasonCode` when it is a short lower-case code, else the reason text with
 * quoted parts, paths, numbers and identifiers-with-digits blanked ("unknown event type \"crm.x\"" →
 * "unknown event type \"\""), cut to 64 characters. Same reason shape, same label.
 */
export function reasonLabel(reason: unknown, reasonCode?: unknown): string {
	if (typeof reasonCode === "string" && CODE.test(reasonCode)) return reasonCode;
	const text = typeof reason === "string" ? reason : reason === undefined || reason === null ? "" : String(reason);
	const shape = text
		.slice(0, 512)
		.replace(/"(?:[^"\\]|\\.)*"?/g, '""')
		.replace(/'(?:[^'\\]|\\.)*'?/g, "''")
		// Dotted paths and words with digits or brackets carry data (field names, ids, sizes): keep only their place.
		.replace(/[^\s"']*[.\d[\]/:@][^\s"']*/g, "_")
		.replace(/\s+/g, " ")
		.trim()
		.toLowerCase();
	const label = shape.slice(0, MAX_LABEL_CHARS).trim();
	return label.length > 0 ? label : "unspecified";
}

/**
 * Caps the number of distinct labels a process reports: beyond `max`, new ones become "other". The reason text
 * is never lost (it is stored with the dead letter); only the metric aggregates.
 */
export class LabelBudget {
	private readonly seen = new Set<string>();
	private readonly max: number;

	constructor(max: number) {
		this.max = max;
	}

	admit(label: string): string {
		if (this.seen.has(label)) return label;
		if (this.seen.size >= this.max) return "other";
		this.seen.add(label);
		return label;
	}
}
