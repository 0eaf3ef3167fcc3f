// Shared by the ERP, file-drop and log ingestion tests: a recorder for dead letters when the node has no dead-letters
// service of its own, and a capture of everything the process writes to stdout/stderr (the Console logger).
import type { ServiceBroker } from "moleculer";
import { ALL_SERVICES } from "../../app/create-node.ts";
import { waitFor } from "../harness.ts";

export interface RecordedDeadLetter {
	source: string;
	reason: string;
	payload: unknown;
	retryAction?: string;
}

export interface DeadLetterLog {
	/** True when the node runs the real dead-letters service, false for the test recorder. */
	real: boolean;
	/** Letters of one source, oldest first. */
	of(source: string): Promise<RecordedDeadLetter[]>;
}

const HAS_REAL_SERVICE = ALL_SERVICES.includes("deadLetters");

/** SERVICES for a test node: the given ones, plus the real dead-letters service once the node has one. */
export function servicesWithDeadLetters(services: string): string {
	return HAS_REAL_SERVICE ? `${services},deadLetters` : services;
}

/**
 * The dead letters a test node records: read back from the real `deadLetters` service when the node runs it, else
 * from a test-only recorder registered here (the `record` contract every source codes against).
 */
export async function recordDeadLetters(broker: ServiceBroker): Promise<DeadLetterLog> {
	const available = () => broker.registry.getServiceList({ onlyAvailable: true }).some((s: { name: string }) => s.name === "deadLetters");
	if (available()) {
		return {
			real: true,
			async of(source) {
				const list = await broker.call<RecordedDeadLetter[], unknown>("deadLetters.list", { source, limit: 500 });
				return [...list].reverse();
			}
		};
	}
	const letters: RecordedDeadLetter[] = [];
	broker.createService({
		name: "deadLetters",
		actions: {
			record: {
				params: { source: "string", reason: "string", payload: "any", retryAction: { type: "string", optional: true } },
				handler(ctx: { params: RecordedDeadLetter }) {
					// A deep copy: what the real service would persist, not a live reference into the source's objects.
					letters.push(JSON.parse(JSON.stringify(ctx.params)) as RecordedDeadLetter);
					return { id: String(letters.length) };
				}
			}
		}
	});
	await waitFor(() => broker.registry.getServiceList({ onlyAvailable: true }).some((s: { name: string }) => s.name === "deadLetters"), { message: "test deadLetters service available" });
	return { real: false, of: async source => letters.filter(l => l.source === source) };
}

export interface OutputCapture {
	text(): string;
	stop(): void;
}

/** Tees process.stdout/stderr into a buffer (the Console logger writes there) until stop(). */
export function captureOutput(): OutputCapture {
	const chunks: string[] = [];
	const originals = { out: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) };
	const tee = (original: typeof process.stdout.write) => ((chunk: string | Uint8Array, ...rest: unknown[]) => {
		chunks.push(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));
		return (original as (...a: unknown[]) => boolean)(chunk, ...rest);
	}) as typeof process.stdout.write;
	process.stdout.write = tee(originals.out);
	process.stderr.write = tee(originals.err);
	return {
		text: () => chunks.join(""),
		stop() {
			process.stdout.write = originals.out;
			process.stderr.write = originals.err;
		}
	};
}
