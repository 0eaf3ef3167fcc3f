// Feature extraction for the churn model: the CSV→profile mapping, its validation, and the one vectorize() that both
// training (records built from CSV rows) and online scoring (records built from an actor's state) go through.
import type { CustomerState } from "../models/customer-state.ts";

export const MAPPING_FORMAT = "crm-actors.churn-mapping";

/** A record is profile-like: field name → raw value (a CSV cell, or a profile/counter value). */
export type FeatureRecord = Record<string, unknown>;

export interface NumericMissing {
	/** Raw values that mean "missing" besides an absent/blank value (compared as-is and trimmed). */
	values?: string[];
	/** What a missing value becomes: a statistic of the training values, or a constant. Default "median". */
	fill?: "mean" | "median" | number;
	/** Add a 0/1 "<field>:missing" input. Default: true for mean/median fills, false for a constant. */
	indicator?: boolean;
}

export interface NumericFeature {
	type: "numeric";
	column: string;
	field: string;
	/** "standard": (x − mean) / std; "minmax": (x − min) / (max − min). Default "standard". */
	scale?: "standard" | "minmax";
	missing?: NumericMissing;
}

export interface BooleanFeature {
	type: "boolean";
	column: string;
	field: string;
	trueValues: string[];
	falseValues: string[];
	missing?: { values?: string[] };
}

export interface CategoricalFeature {
	type: "categorical";
	column: string;
	field: string;
	/** Levels seen fewer times than this in training go to the "other" slot. Default 1. */
	minCount?: number;
	/** More distinct levels than this fails the fit (an id-like column mapped by mistake). Default 50. */
	maxLevels?: number;
	missing?: { values?: string[] };
}

export type FeatureMapping = NumericFeature | BooleanFeature | CategoricalFeature;

export interface ChurnMapping {
	format: typeof MAPPING_FORMAT;
	version: 1;
	name: string;
	description?: string;
	/** Column identifying a row; only used in messages. */
	id?: string;
	label: { column: string; positive: string[]; negative?: string[] };
	features: FeatureMapping[];
}

export interface NumericSpec {
	kind: "numeric";
	field: string;
	missingValues: string[];
	fill: number;
	indicator: boolean;
	/** Values are clipped to [low, high] (training range, widened to include the fill) so an outlier cannot saturate. */
	low: number;
	high: number;
	center: number;
	scale: number;
}

export interface BooleanSpec {
	kind: "boolean";
	field: string;
	trueValues: string[];
	falseValues: string[];
	missingValues: string[];
	/** Share of true in training: the expected value stands in for a missing one. */
	fill: number;
}

export interface CategoricalSpec {
	kind: "categorical";
	field: string;
	missingValues: string[];
	levels: string[];
	/** Present only when training saw rare/missing values, so its weight was actually learned. */
	otherSlot: boolean;
	/** Training share of each level: used for an unknown value when there is no learned "other" slot. */
	frequencies: number[];
}

export type FieldSpec = NumericSpec | BooleanSpec | CategoricalSpec;

export interface FeatureSpec {
	version: 1;
	fields: FieldSpec[];
	/** One name per input of the network, in order. */
	names: string[];
}

export class MappingError extends Error {
	readonly problems: string[];
	constructor(source: string, problems: string[]) {
		super(`invalid churn mapping ${source}:\n  - ${problems.join("\n  - ")}`);
		this.name = "MappingError";
		this.problems = problems;
	}
}

const FIELD_RE = /^(\$counters\.)?[A-Za-z_][A-Za-z0-9_]*$/;
const NUMBER_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const COUNTER_PREFIX = "$counters.";

function isStringArray(v: unknown): v is string[] {
	return Array.isArray(v) && v.every(x => typeof x === "string");
}

function checkKeys(obj: Record<string, unknown>, allowed: string[], where: string, problems: string[]): void {
	for (const k of Object.keys(obj)) {
		if (!allowed.includes(k)) problems.push(`${where}: unknown key "${k}" (allowed: ${allowed.join(", ")})`);
	}
}

function isObject(v: unknown): v is Record<string, unknown> {
	return typeof v === "object" && v !== null && !Array.isArray(v);
}

function checkMissing(m: unknown, where: string, numeric: boolean, problems: string[]): void {
	if (m === undefined) return;
	if (!isObject(m)) {
		problems.push(`${where}.missing: must be an object`);
		return;
	}
	checkKeys(m, numeric ? ["values", "fill", "indicator"] : ["values"], `${where}.missing`, problems);
	if (m.values !== undefined && !isStringArray(m.values)) problems.push(`${where}.missing.values: must be an array of strings`);
	if (!numeric) return;
	const fill = m.fill;
	if (fill !== undefined && fill !== "mean" && fill !== "median" && !(typeof fill === "number" && Number.isFinite(fill))) {
		problems.push(`${where}.missing.fill: must be "mean", "median" or a finite number, got ${JSON.stringify(fill)}`);
	}
	if (m.indicator !== undefined && typeof m.indicator !== "boolean") problems.push(`${where}.missing.indicator: must be true or false`);
}

/** Validates a parsed mapping JSON; throws a MappingError listing every problem, each naming the feature/column. */
export function parseMapping(json: unknown, source = "(inline)"): ChurnMapping {
	const problems: string[] = [];
	if (!isObject(json)) throw new MappingError(source, ["the mapping must be a JSON object"]);
	checkKeys(json, ["format", "version", "name", "description", "id", "label", "features"], "mapping", problems);
	if (json.format !== MAPPING_FORMAT) problems.push(`format: must be "${MAPPING_FORMAT}", got ${JSON.stringify(json.format)}`);
	if (json.version !== 1) problems.push(`version: must be 1, got ${JSON.stringify(json.version)}`);
	if (typeof json.name !== "string" || json.name === "") problems.push("name: must be a non-empty string");
	if (json.description !== undefined && typeof json.description !== "string") problems.push("description: must be a string");
	if (json.id !== undefined && typeof json.id !== "string") problems.push("id: must be a column name");
	const label = json.label;
	if (!isObject(label)) {
		problems.push("label: must be an object { column, positive, negative? }");
	} else {
		checkKeys(label, ["column", "positive", "negative"], "label", problems);
		if (typeof label.column !== "string" || label.column === "") problems.push("label.column: must be a column name");
		if (!isStringArray(label.positive) || label.positive.length === 0) problems.push("label.positive: must be a non-empty array of strings");
		if (label.negative !== undefined && !isStringArray(label.negative)) problems.push("label.negative: must be an array of strings");
		if (isStringArray(label.positive) && isStringArray(label.negative)) {
			const both = label.positive.filter(v => (label.negative as string[]).includes(v));
			if (both.length > 0) problems.push(`label: ${JSON.stringify(both)} listed as both positive and negative`);
		}
	}
	if (!Array.isArray(json.features) || json.features.length === 0) {
		problems.push("features: must be a non-empty array");
	} else {
		const fields = new Map<string, string>();
		json.features.forEach((f: unknown, i: number) => {
			if (!isObject(f)) {
				problems.push(`features[${i}]: must be an object`);
				return;
			}
			const where = `features[${i}] (column ${JSON.stringify(f.column)})`;
			if (typeof f.column !== "string" || f.column === "") problems.push(`features[${i}].column: must be a column name`);
			if (isObject(label) && f.column === label.column) problems.push(`${where}: the label column cannot be a feature`);
			if (typeof f.field !== "string" || !FIELD_RE.test(f.field)) {
				problems.push(`${where}.field: must be a profile field name (letters, digits, _) or "$counters.<name>", got ${JSON.stringify(f.field)}`);
			} else if (fields.has(f.field)) {
				problems.push(`${where}.field: "${f.field}" is already mapped from column ${JSON.stringify(fields.get(f.field))}`);
			} else {
				fields.set(f.field, String(f.column));
			}
			switch (f.type) {
				case "numeric":
					checkKeys(f, ["type", "column", "field", "scale", "missing"], where, problems);
					if (f.scale !== undefined && f.scale !== "standard" && f.scale !== "minmax") {
						problems.push(`${where}.scale: must be "standard" or "minmax", got ${JSON.stringify(f.scale)}`);
					}
					checkMissing(f.missing, where, true, problems);
					break;
				case "boolean":
					checkKeys(f, ["type", "column", "field", "trueValues", "falseValues", "missing"], where, problems);
					if (!isStringArray(f.trueValues) || f.trueValues.length === 0) problems.push(`${where}.trueValues: must be a non-empty array of strings`);
					if (!isStringArray(f.falseValues) || f.falseValues.length === 0) problems.push(`${where}.falseValues: must be a non-empty array of strings`);
					checkMissing(f.missing, where, false, problems);
					break;
				case "categorical":
					checkKeys(f, ["type", "column", "field", "minCount", "maxLevels", "missing"], where, problems);
					if (f.minCount !== undefined && !(Number.isInteger(f.minCount) && (f.minCount as number) >= 1)) problems.push(`${where}.minCount: must be an integer ≥ 1`);
					if (f.maxLevels !== undefined && !(Number.isInteger(f.maxLevels) && (f.maxLevels as number) >= 1)) problems.push(`${where}.maxLevels: must be an integer ≥ 1`);
					checkMissing(f.missing, where, false, problems);
					break;
				default:
					problems.push(`${where}.type: must be "numeric", "boolean" or "categorical", got ${JSON.stringify(f.type)}`);
			}
		});
	}
	if (problems.length > 0) throw new MappingError(source, problems);
	return json as unknown as ChurnMapping;
}

/** Every column the mapping reads must be in the CSV header; the error lists what the file has. */
export function checkMappingColumns(mapping: ChurnMapping, header: string[], source = "(inline)"): void {
	const wanted = [mapping.label.column, ...mapping.features.map(f => f.column), ...(mapping.id ? [mapping.id] : [])];
	const missing = wanted.filter(c => !header.includes(c));
	if (missing.length > 0) {
		throw new MappingError(source, [`column(s) ${missing.map(c => JSON.stringify(c)).join(", ")} not in the CSV header (it has: ${header.join(", ")})`]);
	}
}

/** The label of one raw cell: 1 for a positive value, 0 for a negative (or, without a negative list, any other). */
export function labelOf(mapping: ChurnMapping, raw: string): 0 | 1 {
	const v = raw.trim();
	if (mapping.label.positive.includes(v)) return 1;
	if (!mapping.label.negative || mapping.label.negative.includes(v)) return 0;
	throw new Error(`label column "${mapping.label.column}": ${JSON.stringify(raw)} is neither positive (${mapping.label.positive.join(", ")}) nor negative (${mapping.label.negative.join(", ")})`);
}

/** Builds a feature record from a CSV row: the mapping's columns under their field names, cells kept as raw strings. */
export function recordFromRow(mapping: ChurnMapping, header: string[], row: string[]): FeatureRecord {
	const record: FeatureRecord = {};
	for (const f of mapping.features) record[f.field] = row[header.indexOf(f.column)];
	return record;
}

/** Builds a feature record from an actor's live state: profile fields, and counters under "$counters.<name>". */
export function recordFromState(spec: FeatureSpec, state: Pick<CustomerState, "profile" | "counters">): FeatureRecord {
	const record: FeatureRecord = {};
	const counters = state.counters as unknown as Record<string, unknown>;
	for (const f of spec.fields) {
		record[f.field] = f.field.startsWith(COUNTER_PREFIX) ? counters[f.field.slice(COUNTER_PREFIX.length)] : state.profile[f.field];
	}
	return record;
}

/**
 * recordFromState for the actor's turn, where it runs on every relevant event: the field names are resolved once,
 * and each call writes the values into `out` (spec.fields order) instead of building a record object.
 */
export function stateValuesReader(spec: FeatureSpec): (state: Pick<CustomerState, "profile" | "counters">, out: unknown[]) => void {
	const names = spec.fields.map(f => (f.field.startsWith(COUNTER_PREFIX) ? f.field.slice(COUNTER_PREFIX.length) : f.field));
	const fromCounters = spec.fields.map(f => f.field.startsWith(COUNTER_PREFIX));
	return (state, out) => {
		const counters = state.counters as unknown as Record<string, unknown>;
		const profile = state.profile;
		for (let j = 0; j < names.length; j++) out[j] = fromCounters[j] ? counters[names[j]] : profile[names[j]];
	};
}

function isMissing(raw: unknown, missingValues: string[]): boolean {
	if (raw === undefined || raw === null) return true;
	if (typeof raw === "number") return Number.isNaN(raw);
	if (typeof raw !== "string") return false;
	return raw.trim() === "" || missingValues.includes(raw) || missingValues.includes(raw.trim());
}

/** A numeric value, or undefined when it does not parse (a boolean, "abc", Infinity). */
function parseNumber(raw: unknown): number | undefined {
	if (typeof raw === "number") return Number.isFinite(raw) ? raw : undefined;
	if (typeof raw === "string" && NUMBER_RE.test(raw.trim())) return Number(raw.trim());
	return undefined;
}

function parseBoolean(raw: unknown, trueValues: string[], falseValues: string[]): 0 | 1 | undefined {
	if (typeof raw === "boolean") return raw ? 1 : 0;
	const s = String(raw).trim();
	if (trueValues.includes(s)) return 1;
	if (falseValues.includes(s)) return 0;
	return undefined;
}

function missingValuesOf(f: FeatureMapping): string[] {
	return f.missing?.values ?? [];
}

/**
 * Describes why a record cannot be used for training (a numeric cell that does not parse, a boolean outside its
 * lists), or returns null. Scoring is lenient instead: such a value is treated as missing.
 */
export function checkRecord(mapping: ChurnMapping, record: FeatureRecord): string | null {
	for (const f of mapping.features) {
		const raw = record[f.field];
		if (isMissing(raw, missingValuesOf(f))) continue;
		if (f.type === "numeric" && parseNumber(raw) === undefined) {
			return `column "${f.column}": ${JSON.stringify(raw)} is not a number (declare it in missing.values if it means "missing")`;
		}
		if (f.type === "boolean" && parseBoolean(raw, f.trueValues, f.falseValues) === undefined) {
			return `column "${f.column}": ${JSON.stringify(raw)} is in neither trueValues (${f.trueValues.join(", ")}) nor falseValues (${f.falseValues.join(", ")})`;
		}
	}
	return null;
}

function median(sorted: number[]): number {
	const mid = sorted.length >> 1;
	return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Learns normalisation, fills and levels from the training records (never from validation or test rows). */
export function fitFeatureSpec(records: FeatureRecord[], mapping: ChurnMapping): FeatureSpec {
	if (records.length === 0) throw new Error("fitFeatureSpec: no training records");
	const fields: FieldSpec[] = [];
	for (const f of mapping.features) {
		const missingValues = missingValuesOf(f);
		if (f.type === "numeric") {
			const values: number[] = [];
			let missing = 0;
			for (const r of records) {
				const raw = r[f.field];
				const v = isMissing(raw, missingValues) ? undefined : parseNumber(raw);
				if (v === undefined) missing++;
				else values.push(v);
			}
			if (values.length === 0) throw new Error(`column "${f.column}" (field ${f.field}): no numeric value in the training rows`);
			values.sort((a, b) => a - b);
			const mean = values.reduce((s, v) => s + v, 0) / values.length;
			const rule = f.missing?.fill ?? "median";
			const fill = rule === "mean" ? mean : rule === "median" ? median(values) : rule;
			const low = Math.min(values[0], fill);
			const high = Math.max(values[values.length - 1], fill);
			let center: number;
			let scale: number;
			if ((f.scale ?? "standard") === "minmax") {
				center = low;
				scale = high - low;
			} else {
				// Statistics of the imputed column, so the inputs the network trains on are centred.
				const all = values.concat(new Array<number>(missing).fill(fill));
				center = all.reduce((s, v) => s + v, 0) / all.length;
				scale = Math.sqrt(all.reduce((s, v) => s + (v - center) ** 2, 0) / all.length);
			}
			// An indicator that never fired in training would keep its random initial weight: only add a learned one.
			const indicator = (f.missing?.indicator ?? typeof rule !== "number") && missing > 0;
			fields.push({ kind: "numeric", field: f.field, missingValues, fill, indicator, low, high, center, scale: scale > 0 ? scale : 1 });
		} else if (f.type === "boolean") {
			let ones = 0;
			let seen = 0;
			for (const r of records) {
				const raw = r[f.field];
				const v = isMissing(raw, missingValues) ? undefined : parseBoolean(raw, f.trueValues, f.falseValues);
				if (v !== undefined) {
					seen++;
					ones += v;
				}
			}
			fields.push({ kind: "boolean", field: f.field, trueValues: f.trueValues, falseValues: f.falseValues, missingValues, fill: seen > 0 ? ones / seen : 0.5 });
		} else {
			const counts = new Map<string, number>();
			for (const r of records) {
				const raw = r[f.field];
				if (isMissing(raw, missingValues)) continue;
				const v = String(raw).trim();
				counts.set(v, (counts.get(v) ?? 0) + 1);
			}
			const maxLevels = f.maxLevels ?? 50;
			if (counts.size > maxLevels) {
				throw new Error(`column "${f.column}" (field ${f.field}): ${counts.size} distinct values exceed maxLevels ${maxLevels} — is it an id? Raise maxLevels in the mapping if intended`);
			}
			const minCount = f.minCount ?? 1;
			// Sorted so the input order does not depend on row order.
			const levels = [...counts.keys()].filter(l => (counts.get(l) ?? 0) >= minCount).sort();
			const inLevels = levels.reduce((s, l) => s + (counts.get(l) ?? 0), 0);
			const otherSlot = inLevels < records.length;
			fields.push({
				kind: "categorical", field: f.field, missingValues, levels, otherSlot,
				frequencies: levels.map(l => (counts.get(l) ?? 0) / records.length)
			});
		}
	}
	return { version: 1, fields, names: featureNames(fields) };
}

function featureNames(fields: FieldSpec[]): string[] {
	const names: string[] = [];
	for (const f of fields) {
		if (f.kind === "numeric") {
			names.push(f.field);
			if (f.indicator) names.push(`${f.field}:missing`);
		} else if (f.kind === "boolean") {
			names.push(f.field);
		} else {
			for (const l of f.levels) names.push(`${f.field}=${l}`);
			if (f.otherSlot) names.push(`${f.field}=<other>`);
		}
	}
	return names;
}

/** Number of network inputs a spec produces (recomputed, not trusted from the stored names). */
export function featureCount(spec: FeatureSpec): number {
	return featureNames(spec.fields).length;
}

/** Share of the spec's fields present (not missing) in a record: lets a caller refuse to score an almost-empty profile. */
export function featureCoverage(spec: FeatureSpec, record: FeatureRecord): number {
	return valuesCoverage(spec, valuesOf(spec, record));
}

/** featureCoverage over values in spec.fields order (see stateValuesReader). */
export function valuesCoverage(spec: FeatureSpec, values: ArrayLike<unknown>): number {
	if (spec.fields.length === 0) return 0;
	let present = 0;
	for (let j = 0; j < spec.fields.length; j++) if (!isMissing(values[j], spec.fields[j].missingValues)) present++;
	return present / spec.fields.length;
}

/** Writes a record's input vector into `out` (length featureCount(spec)); unparsable values count as missing. */
export function vectorizeInto(spec: FeatureSpec, record: FeatureRecord, out: number[] | Float64Array): void {
	vectorizeValues(spec, valuesOf(spec, record), out);
}

function valuesOf(spec: FeatureSpec, record: FeatureRecord): unknown[] {
	return spec.fields.map(f => record[f.field]);
}

/** vectorizeInto over values in spec.fields order: the one encoding, for training and for scoring in the actor's turn. */
export function vectorizeValues(spec: FeatureSpec, values: ArrayLike<unknown>, out: number[] | Float64Array): void {
	let i = 0;
	const fields = spec.fields;
	for (let j = 0; j < fields.length; j++) {
		const f = fields[j];
		const raw = values[j];
		const missing = isMissing(raw, f.missingValues);
		if (f.kind === "numeric") {
			const parsed = missing ? undefined : parseNumber(raw);
			const v = parsed === undefined ? f.fill : Math.min(f.high, Math.max(f.low, parsed));
			out[i++] = (v - f.center) / f.scale;
			if (f.indicator) out[i++] = parsed === undefined ? 1 : 0;
		} else if (f.kind === "boolean") {
			const v = missing ? undefined : parseBoolean(raw, f.trueValues, f.falseValues);
			out[i++] = v === undefined ? f.fill : v;
		} else {
			const idx = missing ? -1 : f.levels.indexOf(typeof raw === "string" ? raw.trim() : String(raw).trim());
			const known = idx >= 0;
			for (let l = 0; l < f.levels.length; l++) {
				out[i + l] = known ? (l === idx ? 1 : 0) : f.otherSlot ? 0 : f.frequencies[l];
			}
			i += f.levels.length;
			if (f.otherSlot) out[i++] = known ? 0 : 1;
		}
	}
}

/** A record's input vector for the network (spec.names.length long). */
export function vectorize(spec: FeatureSpec, record: FeatureRecord): number[] {
	const out = new Array<number>(spec.names.length);
	vectorizeInto(spec, record, out);
	return out;
}

function fail(where: string, what: string): never {
	throw new Error(`featureSpec ${where}: ${what}`);
}

function isFiniteNumber(v: unknown): v is number {
	return typeof v === "number" && Number.isFinite(v);
}

/** Checks a stored spec (from an artifact) field by field, so a corrupt file fails at load, not at scoring. */
export function parseFeatureSpec(json: unknown): FeatureSpec {
	if (!isObject(json)) fail("", "must be an object");
	if (json.version !== 1) fail("version", `must be 1, got ${JSON.stringify(json.version)}`);
	if (!Array.isArray(json.fields) || json.fields.length === 0) fail("fields", "must be a non-empty array");
	json.fields.forEach((f: unknown, i: number) => {
		const where = `fields[${i}]`;
		if (!isObject(f)) fail(where, "must be an object");
		if (typeof f.field !== "string" || !FIELD_RE.test(f.field)) fail(`${where}.field`, `bad field name ${JSON.stringify(f.field)}`);
		if (!isStringArray(f.missingValues)) fail(`${where}.missingValues`, "must be an array of strings");
		if (f.kind === "numeric") {
			for (const k of ["fill", "low", "high", "center", "scale"]) if (!isFiniteNumber(f[k])) fail(`${where}.${k}`, "must be a finite number");
			if ((f.scale as number) <= 0) fail(`${where}.scale`, "must be > 0");
			if (typeof f.indicator !== "boolean") fail(`${where}.indicator`, "must be a boolean");
		} else if (f.kind === "boolean") {
			if (!isStringArray(f.trueValues) || !isStringArray(f.falseValues)) fail(where, "trueValues/falseValues must be arrays of strings");
			if (!isFiniteNumber(f.fill)) fail(`${where}.fill`, "must be a finite number");
		} else if (f.kind === "categorical") {
			if (!isStringArray(f.levels)) fail(`${where}.levels`, "must be an array of strings");
			if (typeof f.otherSlot !== "boolean") fail(`${where}.otherSlot`, "must be a boolean");
			if (!Array.isArray(f.frequencies) || f.frequencies.length !== f.levels.length || !f.frequencies.every(isFiniteNumber)) {
				fail(`${where}.frequencies`, "must be one finite number per level");
			}
		} else {
			fail(`${where}.kind`, `unknown kind ${JSON.stringify(f.kind)}`);
		}
	});
	const names = featureNames(json.fields as FieldSpec[]);
	if (!isStringArray(json.names) || json.names.length !== names.length || json.names.some((n, i) => n !== names[i])) {
		fail("names", `do not match the fields (expected ${names.length} inputs: ${names.join(", ")})`);
	}
	return json as unknown as FeatureSpec;
}
