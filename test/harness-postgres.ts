// Test harness for PostgreSQL: initdb into a temp dir, postgres on a free port (trust auth, loopback only), one
// database created; stopped and removed afterwards. As root, both run as the `postgres` user (postgres refuses root).
import { execFile } from "node:child_process";
import { chownSync, readFileSync, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { freePort, launch, requireBinary, waitFor } from "../lib/processes.ts";

export interface PostgresHandle {
	/** postgres://postgres@127.0.0.1:<port>/<database> */
	url: string;
	port: number;
	database: string;
	dir: string;
	stop(): Promise<void>;
}

const run = promisify(execFile);
const STARTUP_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 5_000;

// Debian keeps the server binaries out of PATH, one directory per major version: prefer the newest.
const PG_DIRS = ["/usr/local/bin", ...["17", "16", "15", "14", "13"].map(major => `/usr/lib/postgresql/${major}/bin`)];

function findPgBinary(name: string): string {
	return requireBinary(name, "install Debian's postgresql package to run the ERP tests", PG_DIRS);
}

/** uid/gid of the `postgres` user when we are root (postgres will not run as root), else undefined (run as ourselves). */
function postgresUser(): { uid: number; gid: number } | undefined {
	if (typeof process.getuid !== "function" || process.getuid() !== 0) return undefined;
	const line = readFileSync("/etc/passwd", "utf8").split("\n").find(l => l.startsWith("postgres:"));
	if (!line) throw new Error("running as root, but there is no `postgres` user to run the server as");
	const [, , uid, gid] = line.split(":");
	return { uid: Number(uid), gid: Number(gid) };
}

// The toolkit kills a server left running when the test process exits; its data directory goes too.
const liveDirs = new Set<string>();
let hooked = false;
function installExitHook(): void {
	if (hooked) return;
	hooked = true;
	process.on("exit", () => {
		for (const dir of liveDirs) {
			try {
				rmSync(dir, { recursive: true, force: true });
			} catch {
				// Best effort on the way out.
			}
		}
	});
}

async function canQuery(url: string): Promise<boolean> {
	const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
	client.on("error", () => undefined);
	try {
		await client.connect();
		await client.query("SELECT 1");
		return true;
	} catch {
		return false;
	} finally {
		await client.end().catch(() => undefined);
	}
}

/** Starts a throwaway PostgreSQL server and creates `database` in it. */
export async function startPostgres(database = "crm_test"): Promise<PostgresHandle> {
	installExitHook();
	const initdb = findPgBinary("initdb");
	const postgres = findPgBinary("postgres");
	const user = postgresUser();
	const dir = await mkdtemp(join(tmpdir(), "crm-postgres-"));
	if (user) chownSync(dir, user.uid, user.gid);
	const dataDir = join(dir, "pgdata");
	const asUser = user ? { uid: user.uid, gid: user.gid } : {};
	try {
		await run(initdb, ["-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"], { ...asUser, cwd: dir, env: { ...process.env, LC_ALL: "C" } });
	} catch (err) {
		await rm(dir, { recursive: true, force: true });
		const e = err as { stderr?: string; message: string };
		throw new Error(`initdb failed: ${e.stderr || e.message}`, { cause: err });
	}

	let lastError: Error | undefined;
	for (let attempt = 0; attempt < 3; attempt++) {
		const port = await freePort();
		let output = "";
		// fsync off: a test database needs no crash safety, and it makes every commit far cheaper.
		const server = launch(postgres, [
			"-D", dataDir, "-p", String(port), "-h", "127.0.0.1", "-k", dir,
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=50"
		], { ...asUser, cwd: dir, detached: false, unref: true, onLine: line => { output = `${output}${line}\n`.slice(-4000); } });
		liveDirs.add(dir);
		void server.exited.then(() => liveDirs.delete(dir));
		const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
		try {
			await waitFor(async () => {
				if (!server.alive()) throw new Error("postgres exited");
				return canQuery(adminUrl);
			}, { timeoutMs: STARTUP_TIMEOUT_MS, intervalMs: 50, message: "postgres ready" });
		} catch (err) {
			await server.stop(0, "SIGKILL");
			lastError = new Error(`postgres on port ${port} did not start: ${(err as Error).message}\n${output}`);
			continue;
		}
		const admin = new pg.Client({ connectionString: adminUrl });
		await admin.connect();
		await admin.query(`CREATE DATABASE ${database}`);
		await admin.end();
		const stop = async () => {
			// SIGINT is postgres' "fast" shutdown: abort open sessions, then exit cleanly.
			await server.stop(STOP_GRACE_MS, "SIGINT");
			await rm(dir, { recursive: true, force: true });
		};
		return { url: `postgres://postgres@127.0.0.1:${port}/${database}`, port, database, dir, stop };
	}
	await rm(dir, { recursive: true, force: true });
	throw lastError ?? new Error("postgres did not start");
}
