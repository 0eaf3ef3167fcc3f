// One Server-Sent Events response: the headers, `retry:`, heartbeat comments, events with ids, and a bounded send
// buffer — a client that does not read is cut with an `event: error` and a reason instead of letting memory grow.
import type { IncomingMessage, ServerResponse } from "node:http";

export interface SseOptions {
	/** Bytes the response may hold unsent (Node's write buffer) before the client is cut. */
	maxBufferedBytes: number;
	/** Interval of `: heartbeat` comments, which keep proxies from closing an idle stream. */
	heartbeatMs: number;
	/** The reconnection delay the client is told (`retry:`). */
	retryMs: number;
}

export const SSE_DEFAULTS: SseOptions = { maxBufferedBytes: 1 << 20, heartbeatMs: 15_000, retryMs: 2000 };

/** Why a stream ended, for logs and tests. */
export type SseCloseReason = "client closed" | "slow consumer" | "server closed" | "error";

export class SseStream {
	private readonly res: ServerResponse;
	private readonly opts: SseOptions;
	private heartbeat: NodeJS.Timeout | null = null;
	private closed = false;
	private readonly closeListeners: Array<(reason: SseCloseReason) => void> = [];

	constructor(req: IncomingMessage, res: ServerResponse, opts: SseOptions = SSE_DEFAULTS) {
		this.res = res;
		this.opts = opts;
		res.writeHead(200, {
			"Content-Type": "text/event-stream; charset=utf-8",
			"Cache-Control": "no-store",
			Connection: "keep-alive",
			// nginx and similar proxies buffer responses unless told not to.
			"X-Accel-Buffering": "no"
		});
		res.write(`retry: ${opts.retryMs}\n\n`);
		this.heartbeat = setInterval(() => this.comment("heartbeat"), opts.heartbeatMs);
		this.heartbeat.unref();
		req.socket.setNoDelay(true);
		// "close" of the response fires when the client goes away (or after end()).
		res.on("close", () => this.finish("client closed"));
		res.on("error", () => this.finish("error"));
	}

	get isClosed(): boolean {
		return this.closed;
	}

	/** Bytes written but not yet taken by the socket. */
	get bufferedBytes(): number {
		return this.res.writableLength;
	}

	onClose(listener: (reason: SseCloseReason) => void): void {
		if (this.closed) listener("client closed");
		else this.closeListeners.push(listener);
	}

	/** Sends one event; false when the stream is closed (or was just cut for not keeping up). */
	send(event: string, id: string | null, data: unknown): boolean {
		if (this.closed) return false;
		if (this.res.writableLength > this.opts.maxBufferedBytes) {
			this.cut("slow consumer", `more than ${this.opts.maxBufferedBytes} bytes unread: reconnect with Last-Event-ID to resume`);
			return false;
		}
		const head = id === null ? `event: ${event}\n` : `id: ${id}\nevent: ${event}\n`;
		this.res.write(`${head}data: ${JSON.stringify(data)}\n\n`);
		return true;
	}

	/**
	 * Resolves once the unsent bytes are below half the bound (at once when they are): a reader that replays history
	 * waits here between events, so a replay goes at the client's pace instead of cutting it. Live events never wait.
	 */
	paced(): Promise<void> | null {
		if (this.closed || this.res.writableLength <= this.opts.maxBufferedBytes / 2) return null;
		return new Promise(resolve => {
			const done = () => {
				this.res.off("drain", done);
				this.res.off("close", done);
				resolve();
			};
			this.res.on("drain", done);
			this.res.on("close", done);
		});
	}

	comment(text: string): void {
		if (!this.closed) this.res.write(`: ${text}\n\n`);
	}

	/** Ends the stream with an `event: error` naming the reason (the client may reconnect with Last-Event-ID). */
	cut(reason: SseCloseReason, message: string): void {
		if (this.closed) return;
		this.res.write(`event: error\ndata: ${JSON.stringify({ reason, message })}\n\n`);
		this.finish(reason);
		this.res.end();
	}

	close(): void {
		if (this.closed) return;
		this.finish("server closed");
		this.res.end();
	}

	private finish(reason: SseCloseReason): void {
		if (this.closed) return;
		this.closed = true;
		if (this.heartbeat) clearInterval(this.heartbeat);
		this.heartbeat = null;
		for (const l of this.closeListeners.splice(0)) l(reason);
	}
}
