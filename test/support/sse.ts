// A Server-Sent Events client for tests and benches: fetch with the bearer key (and Last-Event-ID to resume), the
// events parsed as they arrive, waits with deadlines.
import { waitFor } from "../../lib/processes.ts";

export interface SseEvent {
	event: string;
	id: string | null;
	data: any;
	/** performance.now() when the event was parsed. */
	at: number;
}

export interface SseClient {
	status: number;
	contentType: string | null;
	events: SseEvent[];
	/** The id of the last event that had one (what a browser would send back as Last-Event-ID). */
	lastEventId: string | null;
	/** True once the server ended the stream (or the connection failed). */
	ended: boolean;
	/** Resolves when `predicate` holds for the events received so far (deadline: timeoutMs). */
	until(predicate: (events: SseEvent[]) => boolean, timeoutMs?: number, message?: string): Promise<void>;
	close(): void;
}

export interface SseConnectOptions {
	apiKey?: string;
	lastEventId?: string;
	/** Called for each event as it arrives (benches measure latency here). */
	onEvent?: (e: SseEvent) => void;
	/** Keep only the count, not the events (benches with many clients). */
	keepEvents?: boolean;
}

export async function connectSse(url: string, opts: SseConnectOptions = {}): Promise<SseClient> {
	const abort = new AbortController();
	const headers: Record<string, string> = { accept: "text/event-stream" };
	if (opts.apiKey) headers.authorization = `Bearer ${opts.apiKey}`;
	if (opts.lastEventId !== undefined) headers["last-event-id"] = opts.lastEventId;
	const res = await fetch(url, { headers, signal: abort.signal });
	const client: SseClient = {
		status: res.status,
		contentType: res.headers.get("content-type"),
		events: [],
		lastEventId: opts.lastEventId ?? null,
		ended: false,
		async until(predicate, timeoutMs = 10_000, message = "SSE events") {
			await waitFor(() => predicate(client.events) || (client.ended && predicate(client.events)), { timeoutMs, intervalMs: 5, message });
		},
		close() {
			abort.abort();
		}
	};
	if (!res.ok || res.body === null) {
		client.ended = true;
		client.events.push({ event: "http-error", id: null, data: await res.text().catch(() => ""), at: performance.now() });
		return client;
	}
	const keep = opts.keepEvents ?? true;
	void (async () => {
		const decoder = new TextDecoder();
		let buffer = "";
		try {
			for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
				buffer += decoder.decode(chunk, { stream: true });
				let end: number;
				while ((end = buffer.indexOf("\n\n")) >= 0) {
					const block = buffer.slice(0, end);
					buffer = buffer.slice(end + 2);
					let event = "message";
					let id: string | null = null;
					const data: string[] = [];
					for (const line of block.split("\n")) {
						if (line.startsWith(":")) continue;
						const colon = line.indexOf(":");
						const field = colon < 0 ? line : line.slice(0, colon);
						const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
						if (field === "event") event = value;
						else if (field === "id") id = value;
						else if (field === "data") data.push(value);
					}
					if (data.length === 0) continue;
					const text = data.join("\n");
					let parsed: unknown = text;
					try {
						parsed = JSON.parse(text);
					} catch {
						// not JSON: kept as text
					}
					const e: SseEvent = { event, id, data: parsed, at: performance.now() };
					if (id !== null) client.lastEventId = id;
					if (keep) client.events.push(e);
					opts.onEvent?.(e);
				}
			}
		} catch {
			// aborted or connection lost
		} finally {
			client.ended = true;
		}
	})();
	return client;
}

/** The `change` events' data. */
export function changes(events: SseEvent[]): any[] {
	return events.filter(e => e.event === "change").map(e => e.data);
}
