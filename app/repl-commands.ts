// Custom commands of the operator REPL (`npm run repl`, `npm run cluster -- --repl`), wired into moleculer.config.ts.
// Each area adds its commands to REPL_COMMANDS with one import; the cluster's commands are defined here.
import type { ServiceBroker } from "moleculer";
import { shardMembers } from "../mixins/sharded-actor.mixin.ts";
import { ownerOf } from "../actors/sharding.ts";
import { call, Customers, type CustomerView, type InspectResult, type NodeStats, type RiskHistoryItem } from "../models/contract/index.ts";
import type { FactorDelta } from "../models/change-record.ts";
import { AUTOMATION_COMMANDS } from "./automation.repl.ts";
import { errorText, formatTable, toReplCommand, type ReplCustomCommand, type TextCommand } from "./repl.ts";

const CUSTOMERS_ACTION = Customers.handle.name;

function mb(bytes: number): string {
	return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function pct(share: number): string {
	return `${(share * 100).toFixed(1)}%`;
}

function describeState(s: CustomerView): string[] {
	const counters = Object.entries(s.counters).filter(([, n]) => n !== 0).map(([k, n]) => `${k}=${n}`).join(" ") || "(none)";
	const factors = Object.entries(s.risk.factors).map(([k, n]) => `${k} ${n}`).join(", ") || "no factors";
	return [
		`  risk       ${s.risk.score} (${factors})${s.churnProbability === null ? "" : `, churn probability ${s.churnProbability.toFixed(3)}`}`,
		`  counters   ${counters}`,
		`  profile    ${JSON.stringify(s.profile)}`,
		`  activity   last ${s.lastActivityAt}; open tickets ${s.openTicketIds.length}; reminders ${JSON.stringify(s.reminders)}`
	];
}

const customer: TextCommand = {
	command: "customer <id>",
	description: "Live state of a customer from the node that owns it, which node that is, and its last five risk changes with their lineage",
	options: [{ option: "--json", description: "print the whole answer as JSON" }],
	async run(broker, args) {
		const id = String(args.id);
		let r: InspectResult;
		try {
			r = await call(broker, Customers.inspect, { customerId: id });
		} catch (err) {
			return errorText(err);
		}
		const history = r.persisted || r.memory ? await call(broker, Customers.riskHistory, { customerId: id, limit: LINEAGE_LINES }).catch(() => null) : null;
		if (args.options.json) return JSON.stringify({ ...r, riskHistory: history }, null, 2);
		const lines = [`customer ${id}: answered by ${r.nodeID} (owner in its view: ${r.ownerInView}; members: ${r.members.join(", ")})`];
		if (r.ownerInView !== r.nodeID) lines.push("  ! views disagree: the answering node does not think it owns this customer (membership is changing)");
		if (!r.persisted && !r.memory) return `${lines[0]}\n  never seen: nothing stored`;
		const memVersion = r.memory ? `active in memory at version ${r.memory.version}` : r.active ? "activating" : "not active (passivated: loads from the store on its next message)";
		lines.push(`  actor      ${memVersion}; persisted version ${r.persisted?.version ?? "none"}`);
		lines.push(...describeState((r.memory ?? r.persisted) as CustomerView));
		if (history !== null) lines.push(...describeLineage(history));
		return lines.join("\n");
	}
};

/** Risk changes the `customer` command prints. */
const LINEAGE_LINES = 5;

function causeText(c: FactorDelta["cause"]): string {
	switch (c.kind) {
		case "rule": return `rule ${c.rule} (${c.file})`;
		case "model": return `model ${c.artifact} trained ${c.trainedAt} sha256 ${c.sha256.slice(0, 12)}`;
		case "tickets.open": return `${c.openTickets} open tickets`;
		case "decay": return `decay (${c.reminder})`;
		case "merge": return `merge of ${c.from}`;
	}
}

/** The last risk changes, newest first: score old→new, what caused it, and each factor's delta with its cause. */
export function describeLineage(history: RiskHistoryItem[]): string[] {
	if (history.length === 0) return ["  lineage    no risk change recorded"];
	return history.map((h, i) => {
		const by = h.event ? `${h.event.type} ${h.event.source}/${h.event.id}`
			: h.merge ? `merge ${h.merge.step}${h.merge.from ? ` of ${h.merge.from}` : ""}` : `reminder ${h.reminder ?? "?"}`;
		const deltas = h.lineage.map(d => `${d.factor} ${d.delta > 0 ? "+" : ""}${d.delta} by ${causeText(d.cause)}`).join("; ");
		return `  ${i === 0 ? "lineage   " : "          "} v${h.version} ${h.appliedAt} ${h.oldScore}→${h.newScore} after ${by}: ${deltas}`;
	});
}

const owner: TextCommand = {
	command: "owner <id>",
	description: "Which node owns a customer, as this node's membership view computes it (no call)",
	async run(broker, args) {
		const id = String(args.id);
		const members = shardMembers(broker, CUSTOMERS_ACTION);
		if (members.length === 0) return "no node hosts the customers service";
		return `customer ${id} -> ${ownerOf(id, members)} (rendezvous hash over ${members.length} nodes: ${members.join(", ")})`;
	}
};

interface Unreachable { nodeID: string; error: string }

function unreachable(s: NodeStats | Unreachable): s is Unreachable {
	return typeof (s as Partial<Unreachable>).error === "string";
}

async function statsOfAll(broker: ServiceBroker): Promise<Array<NodeStats | Unreachable>> {
	const members = shardMembers(broker, CUSTOMERS_ACTION);
	return Promise.all(members.map(nodeID =>
		call(broker, Customers.nodeStats, {}, { nodeID, timeout: 5000, retries: 0 })
			.catch((err: unknown) => ({ nodeID, error: errorText(err) }))
	));
}

const shards: TextCommand = {
	command: "shards",
	description: "Per node: active actors, owned share of the key space, stray actors, conflicts, memory",
	async run(broker) {
		const all = await statsOfAll(broker);
		if (all.length === 0) return "no node hosts the customers service";
		const ok = all.filter((s): s is NodeStats => !unreachable(s));
		const totalActive = ok.reduce((n, s) => n + s.active, 0);
		const rows: Array<Array<string | number>> = [["node", "active", "of active", "owned share", "stray", "pending", "conflicts", "released", "heap", "rss"]];
		for (const s of all) {
			if (unreachable(s)) rows.push([s.nodeID, s.error]);
			else rows.push([s.nodeID, s.active, pct(totalActive === 0 ? 0 : s.active / totalActive), pct(s.ownedShare), s.strayActors, s.pendingWrites, s.conflicts, s.released, mb(s.heapUsedBytes), mb(s.rssBytes)]);
		}
		const views = new Set(ok.map(s => s.members.join(",")));
		const footer = views.size <= 1
			? `all ${ok.length} nodes agree on the members; owned share is over 10,000 sample ids (ideal ${pct(1 / Math.max(1, ok.length))})`
			: "! nodes disagree on the members (a join or failure is being detected): run `members`";
		return `${formatTable(rows)}\n${footer}`;
	}
};

const members: TextCommand = {
	command: "members",
	description: "Each node's view of the cluster members that host customers (they should agree)",
	async run(broker) {
		const mine = shardMembers(broker, CUSTOMERS_ACTION);
		const all = await statsOfAll(broker);
		const rows: Array<Array<string | number>> = [["node", "its view of the members"], [`${broker.nodeID} (this REPL)`, mine.join(", ")]];
		for (const s of all) rows.push([s.nodeID, unreachable(s) ? s.error : s.members.join(", ")]);
		return formatTable(rows);
	}
};

const passivate: TextCommand = {
	command: "passivate <id>",
	description: "Drop a customer's actor from memory on its owner (state is already persisted; reloads on next message)",
	options: [{ option: "--everywhere", description: "ask every node, not only the owner (clears stray copies)" }],
	async run(broker, args) {
		const id = String(args.id);
		try {
			const targets = args.options.everywhere ? shardMembers(broker, CUSTOMERS_ACTION) : [undefined];
			const results = await Promise.all(targets.map(nodeID => call(broker, Customers.passivate, { customerId: id }, nodeID ? { nodeID } : {})));
			return results.map(r => `${r.nodeID}: ${r.passivated ? "passivated" : "not active there, or busy with a write (try again)"}`).join("\n");
		} catch (err) {
			return errorText(err);
		}
	}
};

export const CLUSTER_COMMANDS: TextCommand[] = [customer, owner, shards, members, passivate];

/** Every custom REPL command (moleculer.config.ts `replOptions.customCommands`); add your area's with one import. */
export const REPL_COMMANDS: ReplCustomCommand[] = [
	...CLUSTER_COMMANDS.map(toReplCommand),
	...AUTOMATION_COMMANDS.map(toReplCommand)
];
