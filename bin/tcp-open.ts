// Whether something on this machine accepts TCP connections on a port: how the runners wait for the servers and
// nodes they spawn, and how the demo finds free ports.
import { connect } from "node:net";

export function tcpOpen(port: number, timeoutMs = 500): Promise<boolean> {
	return new Promise(resolve => {
		const socket = connect({ port, host: "127.0.0.1" });
		const done = (open: boolean) => {
			socket.destroy();
			resolve(open);
		};
		socket.setTimeout(timeoutMs, () => done(false));
		socket.once("connect", () => done(true));
		socket.once("error", () => done(false));
	});
}
