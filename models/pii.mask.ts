// Masks personal data in free text (log lines, URLs) before it is stored or logged: e-mail addresses, card numbers
// (Luhn-checked, so order numbers survive), phone numbers, and the values of query/JSON keys that name such data.

export const EMAIL_MASK = "[email]";
export const CARD_MASK = "[card]";
export const PHONE_MASK = "[phone]";

// `%40` is an URL-encoded "@"; the local part allows what real addresses use. Every repetition is bounded (RFC 5321
// sizes) so that a long run of letters costs linear time, not a quadratic backtrack.
const EMAIL = /[A-Za-z0-9._%+-]{1,64}(?:@|%40)[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?![A-Za-z])/g;
// 13–19 digits, optionally grouped by single spaces or dashes, not inside a longer digit run.
const CARD_CANDIDATE = /(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])/g;
// International: "+" (or its URL encoding) and 7–15 digits with single separators.
const PHONE_INTERNATIONAL = /(?:\+|%2[Bb])[1-9](?:(?:[ ./-]|%20)?\(?[0-9]\)?){6,14}(?![0-9])/g;
// National formats with separators: (555) 123-4567, 555-123-4567, 030 1234567, 0170-1234567, 030/123 45 67.
// Dates (2026-01-31), times, IPs and plain ids do not fit: a trunk "0" or a 3-3-4 / (area) shape is required.
const PHONE_NATIONAL = /(?<![\w.+/-])(?:\([0-9]{2,5}\) ?[0-9]{3,4}[ -]?[0-9]{3,5}|[0-9]{3}[-. ][0-9]{3}[-. ][0-9]{4}|0[1-9][0-9]{1,3}[ /-][0-9]{3,8}(?:[ -][0-9]{2,5})?)(?![\w.])/g;
// key=value in query strings and cookies, "key": "value" in JSON: the value is personal whatever its shape.
const PII_KEYS = "e-?mail|mail|phone|phone_?number|tel|telephone|mobile|msisdn|fax|card|card_?number|cc|ccnum|pan|iban";
const KEY_VALUE = new RegExp(`((?:^|[?&;\\s,{])(?:${PII_KEYS})=)[^&;\\s"']*`, "gi");
const JSON_KEY_VALUE = new RegExp(`("(?:${PII_KEYS})"\\s*:\\s*)("(?:[^"\\\\]|\\\\.)*"|[0-9][0-9 +().-]*)`, "gi");

const HAS_ENCODED_AT = /%40/i;
const HAS_DIGIT = /[0-9]/;

/** The Luhn check digit test, on a string of digits. */
export function luhnValid(digits: string): boolean {
	let sum = 0;
	let double = false;
	for (let i = digits.length - 1; i >= 0; i--) {
		let d = digits.charCodeAt(i) - 48;
		if (d < 0 || d > 9) return false;
		if (double) {
			d *= 2;
			if (d > 9) d -= 9;
		}
		sum += d;
		double = !double;
	}
	return digits.length > 0 && sum % 10 === 0;
}

/** Replaces personal data in `text` with [email], [card] and [phone] markers; text without any is returned as is. */
export function maskPii(text: string): string {
	let out = text;
	// Cheap pre-checks skip the patterns that cannot match (most log text has no "@", many lines no "=").
	if (out.includes("=") || out.includes(":")) {
		out = out.replace(JSON_KEY_VALUE, (_m, key: string) => `${key}"${maskValue(key)}"`);
		out = out.replace(KEY_VALUE, (_m, key: string) => `${key}${maskValue(key)}`);
	}
	if (out.includes("@") || HAS_ENCODED_AT.test(out)) out = out.replace(EMAIL, EMAIL_MASK);
	if (HAS_DIGIT.test(out)) {
		out = out.replace(CARD_CANDIDATE, m => {
			const digits = m.replace(/[ -]/g, "");
			return digits.length >= 13 && digits.length <= 19 && luhnValid(digits) ? CARD_MASK : m;
		});
		out = out.replace(PHONE_INTERNATIONAL, PHONE_MASK);
		out = out.replace(PHONE_NATIONAL, PHONE_MASK);
	}
	return out;
}

/** The marker for the value of a key that names personal data. */
function maskValue(key: string): string {
	const k = key.toLowerCase();
	if (/mail/.test(k)) return EMAIL_MASK;
	if (/card|cc|pan|iban/.test(k)) return CARD_MASK;
	return PHONE_MASK;
}

/** Masks every string in a JSON value (keys included), returning a copy; for dead-letter payloads of parsed input. */
export function maskPiiDeep(value: unknown, depth = 0): unknown {
	if (typeof value === "string") return maskPii(value);
	if (depth > 32 || typeof value !== "object" || value === null) return value;
	if (Array.isArray(value)) return value.map(v => maskPiiDeep(v, depth + 1));
	const out: Record<string, unknown> = {};
	for (const [k, v] of Object.entries(value)) {
		// A masked copy must not gain a prototype from a "__proto__" key: define it as a plain own property.
		Object.defineProperty(out, maskPii(k), { value: maskPiiDeep(v, depth + 1), enumerable: true, writable: true, configurable: true });
	}
	return out;
}
