// The chaos runner's TCP proxy on loopback sockets: it forwards both ways, adds latency, holds traffic during a
// `hold` partition (delivering it in order at the heal) and resets connections during a `drop` partition.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type Server, type Socket } from "node:net";
import { TcpProxy } from "../../../lib/tcp-proxy.ts";
import { waitFor } from "../../../lib/processes.ts";

/** An echo server: every chunk comes back. */
function echoServer(): Promise<{ server: Server; port: number }> {
	return new Promise(resolve => {
		const server = createServer(socket => socket.on("data", chunk => socket.write(chunk)).on("error", () => undefined));
		server.listen(0, "127.0.0.1", () => resolve({ server, port: (server.address() as { port: number }).port }));
	});
}

function client(port: number): Promise<{ socket: Socket; received: () => string; closed: () => boolean }> {
	return new Promise((resolve, reject) => {
		let data = "";
		let closed = false;
		const socket = connect({ port, host: "127.0.0.1" }, () => resolve({ socket, received: () => data, closed: () => closed }));
		socket.on("data", chunk => (data += chunk.toString()));
		socket.on("close", () => (closed = true));
		socket.on("error", err => (closed ? undefined : reject(err)));
	});
}

describe("TcpProxy", () => {
	let echo: { server: Server; port: number };
	let proxy: TcpProxy;

	before(async () => {
		echo = await echoServer();
		proxy = new TcpProxy({ targetPort: echo.port });
		await proxy.start();
	});
	after(async () => {
		await proxy.stop();
		echo.server.close();
	});

	it("forwards both ways", async () => {
		const c = await client(proxy.port);
		c.socket.write("hello");
		await waitFor(() => c.received() === "hello", { timeoutMs: 2_000 });
		c.socket.destroy();
	});

	it("adds the configured latency", async () => {
		const c = await client(proxy.port);
		proxy.setDelay(150);
		const start = Date.now();
		c.socket.write("slow");
		await waitFor(() => c.received() === "slow", { timeoutMs: 3_000 });
		assert.ok(Date.now() - start >= 290, "delayed on the way there and back");
		proxy.heal();
		c.socket.destroy();
	});

	it("holds traffic while partitioned (hold) and delivers it in order at the heal", async () => {
		const c = await client(proxy.port);
		proxy.cut("hold");
		c.socket.write("a");
		c.socket.write("b");
		const late = await client(proxy.port);
		late.socket.write("c");
		await new Promise(resolve => setTimeout(resolve, 200));
		assert.equal(c.received(), "", "nothing passes a held partition");
		assert.equal(late.received(), "", "not even on a new connection");
		proxy.heal();
		await waitFor(() => c.received() === "ab" && late.received() === "c", { timeoutMs: 2_000 });
		c.socket.destroy();
		late.socket.destroy();
	});

	it("resets connections and refuses new ones while partitioned (drop), and serves again after the heal", async () => {
		const c = await client(proxy.port);
		proxy.cut("drop");
		await waitFor(() => c.closed(), { timeoutMs: 2_000, message: "the open connection was reset" });
		const refused = await client(proxy.port).then(x => new Promise<boolean>(resolve => {
			if (x.closed()) resolve(true);
			x.socket.on("close", () => resolve(true));
		}));
		assert.equal(refused, true, "a new connection is closed at once");
		proxy.heal();
		const again = await client(proxy.port);
		again.socket.write("back");
		await waitFor(() => again.received() === "back", { timeoutMs: 2_000 });
		again.socket.destroy();
	});
});
