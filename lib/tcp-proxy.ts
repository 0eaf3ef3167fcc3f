// A TCP proxy the chaos runner puts between one node and a server (NATS, Redis), so that node alone can be slowed
// down or cut off without touching the host's network: added latency per chunk, a partition that holds traffic (a
// stall that a reconnect cannot escape: the bytes flow again, in order, at the heal) or drops it (every connection
// reset, new ones refused until the heal).
import { connect, createServer, type Server, type Socket } from "node:net";

export type PartitionMode = "hold" | "drop";

export interface TcpProxyOptions {
	/** Where connections go. */
	targetPort: number;
	targetHost?: string;
	/** Port to listen on (127.0.0.1); 0 or absent: a free one. */
	listenPort?: number;
}

interface Pipe {
	client: Socket;
	upstream: Socket | null;
}

/** One direction's delivery: in order, each chunk no earlier than `delayMs` after it arrived. */
class DelayedWriter {
	private chain: Promise<void> = Promise.resolve();
	write(target: () => Promise<Socket | null>, chunk: Buffer, delayMs: () => number, held: () => Promise<void>): void {
		const arrived = Date.now();
		this.chain = this.chain.then(async () => {
			await held();
			const wait = arrived + delayMs() - Date.now();
			if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait));
			await held();
			const socket = await target();
			if (socket !== null && !socket.destroyed) socket.write(chunk);
		});
	}
}

export class TcpProxy {
	private readonly opts: TcpProxyOptions;
	private server: Server | null = null;
	private readonly pipes = new Set<Pipe>();
	private delay = 0;
	private partition: PartitionMode | null = null;
	/** Resolved at the heal; what a held pipe waits on. */
	private healed: Promise<void> = Promise.resolve();
	private heal_: () => void = () => {};
	port = 0;

	constructor(opts: TcpProxyOptions) {
		this.opts = opts;
	}

	get state(): { delayMs: number; partition: PartitionMode | null; connections: number } {
		return { delayMs: this.delay, partition: this.partition, connections: this.pipes.size };
	}

	async start(): Promise<number> {
		const server = createServer(client => this.accept(client));
		this.server = server;
		await new Promise<void>((resolve, reject) => {
			server.once("error", reject);
			server.listen(this.opts.listenPort ?? 0, "127.0.0.1", () => {
				server.off("error", reject);
				resolve();
			});
		});
		const address = server.address();
		if (address === null || typeof address === "string") throw new Error("tcp proxy: could not read the bound port");
		this.port = address.port;
		return this.port;
	}

	/** Adds `ms` of latency to every chunk in both directions (0: none). */
	setDelay(ms: number): void {
		this.delay = Math.max(0, ms);
	}

	/** Cuts the node off: `hold` stalls every byte until the heal, `drop` resets every connection and refuses new ones. */
	cut(mode: PartitionMode): void {
		if (this.partition !== null) return;
		this.partition = mode;
		this.healed = new Promise(resolve => {
			this.heal_ = resolve;
		});
		if (mode === "drop") for (const pipe of this.pipes) this.close(pipe);
	}

	/** Ends a partition and a delay: held bytes flow again, in order. */
	heal(): void {
		this.delay = 0;
		if (this.partition === null) return;
		this.partition = null;
		this.heal_();
	}

	async stop(): Promise<void> {
		this.heal();
		for (const pipe of this.pipes) this.close(pipe);
		const server = this.server;
		this.server = null;
		if (server) await new Promise<void>(resolve => server.close(() => resolve()));
	}

	private close(pipe: Pipe): void {
		pipe.client.destroy();
		pipe.upstream?.destroy();
		this.pipes.delete(pipe);
	}

	private accept(client: Socket): void {
		if (this.partition === "drop") {
			client.destroy();
			return;
		}
		client.setNoDelay(true);
		const pipe: Pipe = { client, upstream: null };
		this.pipes.add(pipe);
		const toUpstream = new DelayedWriter();
		const toClient = new DelayedWriter();
		const delayMs = () => this.delay;
		const held = () => (this.partition === "hold" ? this.healed : Promise.resolve());
		// Under a hold the upstream connection is opened only at the heal: a new connection stalls like an old one.
		const upstreamReady = held().then(() => {
			if (client.destroyed) return null;
			const upstream = connect({ port: this.opts.targetPort, host: this.opts.targetHost ?? "127.0.0.1" });
			upstream.setNoDelay(true);
			pipe.upstream = upstream;
			upstream.on("data", (chunk: Buffer) => toClient.write(async () => pipe.client, chunk, delayMs, held));
			upstream.on("error", () => this.close(pipe));
			upstream.on("close", () => this.close(pipe));
			return upstream;
		});
		client.on("data", (chunk: Buffer) => toUpstream.write(() => upstreamReady, chunk, delayMs, held));
		client.on("error", () => this.close(pipe));
		client.on("close", () => this.close(pipe));
	}
}
