// `npm run schemas`: writes the published contract for clients (app/published-contract.ts) — schemas/ and
// docs/events.md. `--check` writes nothing and exits 1 when a file is not what the generator makes.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { PROJECT_ROOT, generateContract } from "../app/published-contract.ts";

async function main(): Promise<void> {
	const check = process.argv.includes("--check");
	const files = await generateContract();
	const stale: string[] = [];
	for (const [rel, content] of files) {
		const file = path.join(PROJECT_ROOT, rel);
		const current = await readFile(file, "utf8").catch(() => null);
		if (current === content) continue;
		if (check) stale.push(rel);
		else {
			await mkdir(path.dirname(file), { recursive: true });
			await writeFile(file, content);
			console.log(`wrote ${rel}`);
		}
	}
	if (check && stale.length > 0) {
		console.error(`out of date (run npm run schemas): ${stale.join(", ")}`);
		process.exit(1);
	}
	if (!check) console.log(`${files.size} files up to date`);
}

if (import.meta.main) {
	main().catch(err => {
		console.error(err);
		process.exit(1);
	});
}
