// Operator REPL commands for automation: reload the nools rules, show them, list running workflows and open user
// tasks. Added to app/repl-commands.ts with one import; each returns its text so tests can assert it.
import type { ServiceBroker } from "moleculer";
import { call, Rules, Workflows, type ProcessFilter, type ProcessView, type RulesStatus, type TaskView } from "../models/contract/index.ts";
import { errorText, formatTable, type ReplArgs, type TextCommand } from "./repl.ts";

function describeRules(s: RulesStatus): string {
	const lines = [`rules on ${s.nodeID}, loaded ${s.loadedAt} (risk rules: ${s.riskEngine})`];
	for (const f of s.files) lines.push(`  ${f.file}: ${f.rules.map(r => `${r.name}@${r.line}`).join(", ")}`);
	return lines.join("\n");
}

const rules: TextCommand = {
	command: "rules [action]",
	description: "Show the nools rules of this node; `rules reload` compiles rules/*.nools again (a broken file keeps the previous rules)",
	async run(broker: ServiceBroker, args: ReplArgs) {
		const action = args.action === undefined ? "show" : String(args.action);
		if (action !== "show" && action !== "reload") return `unknown action "${action}": use "rules" or "rules reload"`;
		try {
			const status = await call(broker, action === "reload" ? Rules.reload : Rules.status, {});
			return `${action === "reload" ? "reloaded; other nodes reload theirs\n" : ""}${describeRules(status)}`;
		} catch (err) {
			return errorText(err);
		}
	}
};

const workflows: TextCommand = {
	command: "workflows",
	description: "Workflow instances (running ones unless --all), with the activities they wait in",
	options: [
		{ option: "-c, --customer <id>", description: "only this customer's" },
		{ option: "-a, --all", description: "also completed and failed ones" }
	],
	async run(broker: ServiceBroker, args: ReplArgs) {
		const params: ProcessFilter = { limit: 200 };
		if (typeof args.options.customer === "string") params.customerId = args.options.customer;
		if (!args.options.all) params.state = "running";
		let list: ProcessView[];
		try {
			list = await call(broker, Workflows.processes, params);
		} catch (err) {
			return errorText(err);
		}
		if (list.length === 0) return args.options.all ? "no workflow instances" : "no running workflow instances";
		const rows = [["id", "process", "customer", "state", "waiting in", "started"]];
		for (const p of list) rows.push([p.id, p.processKey, p.customerId ?? "-", p.state + (p.error ? ` (${p.error})` : ""), p.activeActivities.join(",") || "-", p.startedAt ?? "-"]);
		return formatTable(rows);
	}
};

const tasks: TextCommand = {
	command: "tasks",
	description: "Open user tasks of the workflows (complete them with POST /api/v1/tasks/:id/complete)",
	options: [{ option: "-c, --customer <id>", description: "only this customer's" }],
	async run(broker: ServiceBroker, args: ReplArgs) {
		const params: { customerId?: string } = {};
		if (typeof args.options.customer === "string") params.customerId = args.options.customer;
		let list: TaskView[];
		try {
			list = await call(broker, Workflows.tasks, params);
		} catch (err) {
			return errorText(err);
		}
		if (list.length === 0) return "no open user tasks";
		const rows = [["id", "task", "process", "customer", "assignee", "since"]];
		for (const t of list) rows.push([t.id, t.name, t.processKey, t.customerId ?? "-", t.assignee ?? "-", t.createdAt ?? "-"]);
		return formatTable(rows);
	}
};

export const AUTOMATION_COMMANDS: TextCommand[] = [rules, workflows, tasks];
