// The operator REPL's commands as text: what a command is, how it becomes a moleculer-repl command, and the
// formatting they share.
import type { BrokerOptions, ServiceBroker } from "moleculer";

/** What moleculer-repl passes to a command: positional arguments by name, flags under `options`. */
export interface ReplArgs {
	options: Record<string, unknown>;
	[positional: string]: unknown;
}

/** A command whose output is returned as text (printed by the REPL, asserted by tests). */
export interface TextCommand {
	command: string;
	description: string;
	options?: Array<{ option: string; description: string }>;
	run(broker: ServiceBroker, args: ReplArgs): Promise<string>;
}

/** moleculer-repl's command definition (not exported by name from moleculer's typings). */
export type ReplCustomCommand = NonNullable<NonNullable<BrokerOptions["replOptions"]>["customCommands"]>[number];

export function errorText(err: unknown): string {
	const e = err as { type?: string; message?: string };
	return `error${e.type ? ` ${e.type}` : ""}: ${e.message ?? String(err)}`;
}

/** Plain-text table: columns padded to their widest cell, numbers right-aligned. */
export function formatTable(rows: Array<Array<string | number>>): string {
	const widths: number[] = [];
	for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, String(cell).length)));
	return rows
		.map(row => row.map((cell, i) => (typeof cell === "number" ? String(cell).padStart(widths[i]) : cell.padEnd(widths[i]))).join("  ").trimEnd())
		.join("\n");
}

/** Adapts a text command to moleculer-repl: it prints what the command returns. */
export function toReplCommand(cmd: TextCommand): ReplCustomCommand {
	return {
		command: cmd.command,
		description: cmd.description,
		options: cmd.options,
		async action(broker, args) {
			console.log(await cmd.run(broker, args as unknown as ReplArgs));
		}
	};
}
