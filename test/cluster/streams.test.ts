// Change streams across a shard move and a node restart: two `node bin/start.ts` processes on NATS + Redis. Clients
// follow customers owned by the node that is killed (its customers move to the other node) and later restarted (they
// move back); a client whose node dies reconnects to the other node with Last-Event-ID. Every client must end up with
// every version of its customer exactly once, in order, and the store-wide stream with every change once.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startNats, startRedis, waitFor, type ServerHandle } from "../harness.ts";
import { API_KEY, cloudEvent } from "../support/node.ts";
import { ownerOf } from "../../actors/sharding.ts";
import { connectSse, type SseClient } from "../support/sse.ts";
import { RetryingClient, apiCall, startNodeProcess, type NodeProcess } from "./node-processes.ts";

const NODE_ENV = { CLUSTER_HEARTBEAT_INTERVAL_S: "1", CLUSTER_HEARTBEAT_TIMEOUT_S: "3", LOG_LEVEL: "warn" };
const IDS = ["stream-1", "stream-2"];

/** A client that follows one stream across nodes: when its node's stream ends it reconnects elsewhere with Last-Event-ID. */
class FollowingClient {
	readonly received: Array<{ id: string; data: any }> = [];
	private current: SseClient | null = null;
	reconnects = 0;
	private stopped = false;
	private readonly pathname: string;
	private readonly nodes: () => NodeProcess[];

	constructor(pathname: string, nodes: () => NodeProcess[]) {
		this.pathname = pathname;
		this.nodes = nodes;
	}

	async start(prefer: NodeProcess): Promise<void> {
		await this.connect(prefer, undefined);
	}

	private lastId(): string | undefined {
		return this.received.at(-1)?.id;
	}

	private async connect(node: NodeProcess, lastEventId: string | undefined): Promise<void> {
		const client = await connectSse(node.baseUrl + this.pathname, {
			apiKey: API_KEY, lastEventId,
			onEvent: e => {
				if (e.event === "change" && e.id !== null) this.received.push({ id: e.id, data: e.data });
			},
			keepEvents: true
		});
		if (client.status !== 200) throw new Error(`stream on ${node.nodeId}: HTTP ${client.status}`);
		await client.until(es => es.some(e => e.event === "ready"), 10_000, `ready on ${node.nodeId}`);
		this.current = client;
		void waitFor(() => client.ended || this.stopped, { timeoutMs: 10 * 60_000 }).then(async () => {
			if (this.stopped) return;
			// The node went away: resume on a live one from the last id received.
			await waitFor(() => this.nodes().some(n => n.alive() && n !== node), { timeoutMs: 30_000, message: "a live node" });
			const next = this.nodes().find(n => n.alive() && n !== node) as NodeProcess;
			this.reconnects++;
			await waitFor(async () => {
				try {
					await this.connect(next, this.lastId());
					return true;
				} catch {
					return false;
				}
			}, { timeoutMs: 30_000, intervalMs: 200, message: "reconnected" });
		});
	}

	stop(): void {
		this.stopped = true;
		this.current?.close();
	}
}

describe("change streams across a shard move and a node restart (2 node processes, Redis)", () => {
	let nats: ServerHandle;
	let redis: ServerHandle;
	let env: Record<string, string>;
	const nodes = new Map<string, NodeProcess>();
	const live = () => [...nodes.values()];

	before(async () => {
		[nats, redis] = await Promise.all([startNats(), startRedis()]);
		env = { TRANSPORTER: nats.url, REDIS_URL: redis.url, ...NODE_ENV };
		for (const n of await Promise.all(IDS.map(id => startNodeProcess(id, env)))) nodes.set(n.nodeId, n);
	});

	after(async () => {
		await Promise.all(live().map(n => n.kill("SIGTERM")));
		await Promise.all([nats?.stop(), redis?.stop()]);
	});

	it("every client gets every change once, in order: through a SIGKILL (shard move) and a restart (move back)", async () => {
		// Customers the node that gets killed owns: they move to the survivor, and back when it restarts.
		const moving = Array.from({ length: 40 }, (_, i) => `mv-${i}`).filter(id => ownerOf(id, IDS) === "stream-2").slice(0, 3);
		const staying = Array.from({ length: 40 }, (_, i) => `st-${i}`).filter(id => ownerOf(id, IDS) === "stream-1").slice(0, 2);
		const customers = [...moving, ...staying];
		const [n1, n2] = IDS.map(id => nodes.get(id) as NodeProcess);

		// Per customer: one client on the node that dies (it must reconnect), one on the survivor (it must not miss).
		const followers = customers.flatMap(id => [
			{ id, client: new FollowingClient(`/api/v1/customers/${id}/stream`, live), on: n2 },
			{ id, client: new FollowingClient(`/api/v1/customers/${id}/stream`, live), on: n1 }
		]);
		const feed = new FollowingClient("/api/v1/stream", live);
		await Promise.all([...followers.map(f => f.client.start(f.on)), feed.start(n2)]);

		const client = new RetryingClient(live());
		let sent = 0;
		const writer = async (rounds: number) => {
			for (let r = 0; r < rounds; r++) {
				const batch = customers.map(id => cloudEvent("crm.page.viewed", id, { url: `/p/${sent}` }, { time: new Date().toISOString() }));
				const res = await client.call("/api/v1/events", { method: "POST", json: batch });
				assert.equal(res.status, 202, JSON.stringify(res.body));
				sent++;
			}
		};

		await writer(5);
		// Shard move: the owner of `moving` dies; the survivor takes them over (after the heartbeat timeout).
		const killing = n2.kill("SIGKILL");
		nodes.delete("stream-2");
		client.setNodes(live());
		await killing;
		await writer(5);
		// Restart: the node comes back under its id and takes its customers back.
		const back = await startNodeProcess("stream-2", env);
		nodes.set("stream-2", back);
		client.setNodes(live());
		await waitFor(async () => {
			const stats = await apiCall(back.baseUrl, `/api/v1/customers/${moving[0]}`);
			return stats.status === 200;
		}, { timeoutMs: 20_000, message: "the restarted node serves" });
		await writer(5);

		const versions = new Map<string, number>();
		for (const id of customers) {
			const res = await apiCall(n1.baseUrl, `/api/v1/customers/${id}`);
			assert.equal(res.status, 200);
			versions.set(id, res.body.version as number);
			assert.equal(res.body.version, 15, `${id}: one version per event sent`);
		}
		const expected = (id: string) => Array.from({ length: versions.get(id) as number }, (_, i) => i + 1);
		await waitFor(() => followers.every(f => f.client.received.length >= (versions.get(f.id) as number)), { timeoutMs: 30_000, message: "every follower caught up" });
		for (const f of followers) {
			assert.deepEqual(f.client.received.map(r => r.data.version), expected(f.id), `${f.id} followed on ${f.on.nodeId} (reconnects: ${f.client.reconnects})`);
			assert.deepEqual(f.client.received.map(r => r.id), expected(f.id).map(String));
		}
		assert.ok(followers.filter(f => f.on === n2).every(f => f.client.reconnects >= 1), "the clients on the killed node reconnected");

		const total = customers.length * 15;
		await waitFor(() => feed.received.filter(r => customers.includes(r.data.customerId)).length >= total, { timeoutMs: 30_000, message: "the store-wide stream caught up" });
		const ours = feed.received.filter(r => customers.includes(r.data.customerId));
		assert.equal(new Set(feed.received.map(r => r.id)).size, feed.received.length, "no cursor twice");
		for (const id of customers) assert.deepEqual(ours.filter(r => r.data.customerId === id).map(r => r.data.version), expected(id), `${id} in the store-wide stream`);
		assert.ok(feed.reconnects >= 1, "the store-wide client reconnected");

		for (const f of followers) f.client.stop();
		feed.stop();
	});
});
