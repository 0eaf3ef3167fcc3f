// Shared by the ERP, file-drop and log ingestion tests: a recorder for dead letters when the node has no dead-letters
// service of its own, and a capture of everything the process writes to stdout/stderr (the Console logger).
import type { ServiceBroker } from "moleculer";
import { waitFor } from "../harness.ts";

export interface RecordedDeadLetter {
	source: string;
	reason: string;
	payload: unknown;
	retryAction?: string;
}

export interface DeadLetterLog {
	letters: RecordedDeadLetter[];
	/** Letters of one source. */
	of(source: string): RecordedDeadLetter[];
}

/**
 * Registers a test-only `deadLetters` service that records `record` calls (the contract every source codes against).
 * Start the node with SERVICES that leave out the real one, so the recorder is the only `deadLetters` service.
 */
export async function recordDeadLetters(broker: ServiceBroker): Promise<DeadLetterLog> {
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
	return { letters, of: source => letters.filter(l => l.source === source) };
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
