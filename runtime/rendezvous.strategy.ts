// Moleculer load-balancing strategy that sends every call carrying `customerId` to the node owning that customer
// (rendezvous hashing, actors/sharding.ts); calls without it are spread round-robin.
import { Strategies } from "moleculer";
import type { Context, Endpoint } from "moleculer";
import { ownerOf } from "../actors/sharding.ts";

export class RendezvousStrategy extends Strategies.Base {
	private counter = 0;

	override select(list: Endpoint[], ctx?: Context): Endpoint {
		const params = ctx?.params as { customerId?: unknown } | undefined;
		const key = params?.customerId;
		if (typeof key === "string" && key.length > 0) {
			const owner = ownerOf(key, list.map(ep => ep.id));
			const ep = list.find(e => e.id === owner);
			if (ep) return ep;
		}
		this.counter = (this.counter + 1) % list.length;
		return list[this.counter];
	}
}
