// How the runners, benchmarks and tests start the servers they need on a free port of 127.0.0.1 — nats-server with
// JetStream, redis-server with an append-only file, mosquitto — and how each tells that it serves: one place for
// their command lines and readiness probes.
import { userInfo } from "node:os";
import { probeTcp } from "./processes.ts";

/** nats-server with JetStream, its store under `storeDir`. */
export function natsServerArgs(port: number, storeDir: string): string[] {
	return ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir];
}

/**
 * redis-server in the foreground with an append-only file under `dir` and no RDB snapshots. `appendfsync: "always"`
 * makes a restart (even a SIGKILL) keep every acknowledged write; Redis' default (every second) otherwise.
 */
export function redisServerArgs(port: number, dir: string, opts: { appendfsync?: "always" } = {}): string[] {
	return [
		"--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--daemonize", "no", "--save", "", "--appendonly", "yes",
		...(opts.appendfsync ? ["--appendfsync", opts.appendfsync] : [])
	];
}

/** mosquitto.conf: anonymous on 127.0.0.1:`port`, persistent under `dir`, running as the current user (started as root, mosquitto would otherwise switch to a user who cannot write `dir`). */
export function mosquittoConfig(port: number, dir: string): string {
	return [
		`listener ${port} 127.0.0.1`,
		"allow_anonymous true",
		"persistence true",
		`persistence_location ${dir}/`,
		`user ${userInfo().username}`,
		"log_dest stderr",
		""
	].join("\n");
}

/** The server greets every client with INFO once it accepts them. */
export const natsReady = (port: number): Promise<boolean> => probeTcp(port, undefined, /^INFO /);
/** Redis accepts connections while it loads the AOF; PONG means it serves commands. */
export const redisReady = (port: number): Promise<boolean> => probeTcp(port, "PING\r\n", /\+PONG/);
