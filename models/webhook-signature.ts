// Webhook request signatures (ARCHITECTURE §9): `X-Crm-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw
// body)>` with `X-Crm-Timestamp` in unix seconds, checked in constant time and within a clock-skew window. Pure.
import { createHmac, timingSafeEqual } from "node:crypto";

export const SIGNATURE_HEADER = "x-crm-signature";
export const TIMESTAMP_HEADER = "x-crm-timestamp";
export const DEFAULT_TOLERANCE_S = 300;

const TIMESTAMP = /^\d{1,12}$/;
const SIGNATURE = /^sha256=([0-9a-fA-F]{64})$/;

export type SignatureCheck = { ok: true } | { ok: false; reason: string };

function hmac(secret: string, timestamp: string, rawBody: Uint8Array | string): Buffer {
	return createHmac("sha256", secret).update(`${timestamp}.`).update(rawBody).digest();
}

/** The `X-Crm-Signature` value a sender puts on a request: for clients, tests and the benchmark. */
export function signWebhook(secret: string, timestamp: string | number, rawBody: Uint8Array | string): string {
	return `sha256=${hmac(secret, String(timestamp), rawBody).toString("hex")}`;
}

export interface VerifyInput {
	secret: string;
	timestamp: string | undefined;
	signature: string | undefined;
	rawBody: Uint8Array | string;
	/** Our clock in ms since epoch. */
	nowMs: number;
	toleranceS?: number;
}

/**
 * Checks a request's signature and timestamp. The reason names what is wrong (for the log and the 401 body) but
 * never the expected signature. The HMAC is compared with timingSafeEqual so its bytes cannot be found by timing.
 */
export function verifyWebhookSignature(input: VerifyInput): SignatureCheck {
	const tolerance = input.toleranceS ?? DEFAULT_TOLERANCE_S;
	if (input.timestamp === undefined || input.timestamp === "") return { ok: false, reason: "missing X-Crm-Timestamp header" };
	if (!TIMESTAMP.test(input.timestamp)) return { ok: false, reason: "X-Crm-Timestamp must be unix seconds" };
	const skewS = Math.abs(input.nowMs / 1000 - Number(input.timestamp));
	if (skewS > tolerance) return { ok: false, reason: `X-Crm-Timestamp is ${Math.round(skewS)} s away from the server clock (at most ${tolerance} s allowed)` };
	if (input.signature === undefined || input.signature === "") return { ok: false, reason: "missing X-Crm-Signature header" };
	const m = SIGNATURE.exec(input.signature);
	if (m === null) return { ok: false, reason: "X-Crm-Signature must be sha256=<64 hex digits>" };
	const given = Buffer.from(m[1], "hex");
	const expected = hmac(input.secret, input.timestamp, input.rawBody);
	if (!timingSafeEqual(given, expected)) return { ok: false, reason: "X-Crm-Signature does not match the body and timestamp" };
	return { ok: true };
}
