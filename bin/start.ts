// `npm start`: one node from the environment (embedded defaults), stopped cleanly on SIGINT/SIGTERM.
import { ConfigError, loadConfig } from "../config/index.ts";
import { createNode } from "../app/create-node.ts";

async function main(): Promise<void> {
	let config;
	try {
		config = loadConfig();
	} catch (err) {
		if (err instanceof ConfigError) {
			console.error(`configuration error: ${err.message}`);
			process.exit(2);
		}
		throw err;
	}
	const broker = await createNode(config);
	const stop = async (signal: string) => {
		broker.logger.info(`${signal}: stopping`);
		await broker.stop();
		process.exit(0);
	};
	process.once("SIGINT", () => void stop("SIGINT"));
	process.once("SIGTERM", () => void stop("SIGTERM"));
	await broker.start();
	if (process.argv.includes("--repl")) {
		// The REPL is for an operator at this node's terminal; there is no network REPL.
		if (process.stdin.isTTY) broker.repl();
		else broker.logger.warn("--repl ignored: stdin is not a terminal");
	}
	if (config.services.length === 0 || config.services.includes("api")) {
		broker.logger.info(`HTTP API on http://${config.host}:${config.port} (try GET /health/ready)`);
	}
}

main().catch(err => {
	console.error(err instanceof Error ? err.stack : err);
	process.exit(1);
});
