// JSON over HTTP for the routes that answer by hand (the API's errors, signed webhooks, health): UTF-8 bodies only,
// and every error as the JSON body clients rely on.
import { Buffer, isUtf8 } from "node:buffer";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Errors } from "moleculer";

/** A JSON body must be UTF-8 (RFC 8259 §8.1); refuse other charsets and invalid bytes instead of decoding them lossily. */
export function verifyUtf8Body(_req: IncomingMessage, _res: ServerResponse, buf: Buffer, encoding: string | null): void {
	if (encoding !== null && encoding.toLowerCase() !== "utf-8") {
		throw Object.assign(new Error(`unsupported charset "${encoding}": send UTF-8`), { status: 415, type: "UNSUPPORTED_CHARSET" });
	}
	if (!isUtf8(buf)) throw Object.assign(new Error("body is not valid UTF-8"), { status: 400, type: "INVALID_ENCODING" });
}

/**
 * The body-parser options of a JSON route: UTF-8 only, and no Content-Encoding (a corrupt gzip stream would
 * otherwise surface as a 500 without a status; 415 tells the client what to change).
 */
export function jsonBodyParser(limit: string) {
	return { strict: false, limit, inflate: false, verify: verifyUtf8Body };
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
	const text = JSON.stringify(body);
	res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Content-Length": Buffer.byteLength(text) });
	res.end(text);
}

/** Maps any error to the JSON error body clients rely on: `{ errors: [...] }` for invalid events, else `{ error }`. */
export function sendError(res: ServerResponse, err: Errors.MoleculerError | Error): void {
	const e = err as Errors.MoleculerError;
	let status = typeof e.code === "number" && e.code >= 400 && e.code < 600 ? e.code : 500;
	if (e.type === "VALIDATION_ERROR" || e.type === "INVALID_EVENT") status = 400;
	if (e.type === "entity.parse.failed") return sendJson(res, 400, { error: { type: "INVALID_JSON", message: `request body is not valid JSON: ${e.message}` } });
	if (e.type === "INVALID_EVENTS") return sendJson(res, 400, { errors: (e.data as { errors: unknown[] }).errors });
	if (e.type === "INVALID_EVENT") {
		const d = (e.data ?? {}) as { index?: number; reason?: string };
		return sendJson(res, 400, { errors: [{ index: d.index ?? 0, reason: d.reason ?? e.message }] });
	}
	const body: Record<string, unknown> = { error: { type: e.type ?? "INTERNAL_ERROR", message: status >= 500 && !e.retryable ? "internal error" : e.message } };
	if (status < 500 && e.data !== undefined) (body.error as Record<string, unknown>).data = e.data;
	sendJson(res, status, body);
}
