// Parsing helpers for environment variables: each failure names the variable and the value it got.

export class ConfigError extends Error {
	override name = "ConfigError";
}

export type Env = Record<string, string | undefined>;

export function str(env: Env, name: string): string | undefined {
	const v = env[name];
	return v === undefined || v.trim() === "" ? undefined : v.trim();
}

export function int(env: Env, name: string, def: number, min: number, max: number): number {
	const raw = str(env, name);
	if (raw === undefined) return def;
	if (!/^-?\d+$/.test(raw)) throw new ConfigError(`${name} must be an integer, got "${raw}"`);
	const n = Number(raw);
	if (n < min || n > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${n}`);
	return n;
}

export function num(env: Env, name: string, def: number, min: number, max: number): number {
	const raw = str(env, name);
	if (raw === undefined) return def;
	const n = Number(raw);
	if (!Number.isFinite(n)) throw new ConfigError(`${name} must be a number, got "${raw}"`);
	if (n < min || n > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${n}`);
	return n;
}

export function url(env: Env, name: string, protocols: string[]): string | undefined {
	const raw = str(env, name);
	if (raw === undefined) return undefined;
	let parsed: URL;
	try {
		parsed = new URL(raw);
	} catch {
		throw new ConfigError(`${name} must be a URL, got "${raw}"`);
	}
	const proto = parsed.protocol.replace(/:$/, "");
	if (!protocols.includes(proto)) throw new ConfigError(`${name} must use ${protocols.join(" or ")}://, got "${proto}://"`);
	return raw;
}

export function oneOf<T extends string>(env: Env, name: string, values: readonly T[], def: T): T {
	const raw = str(env, name);
	if (raw === undefined) return def;
	if (!(values as readonly string[]).includes(raw)) throw new ConfigError(`${name} must be one of ${values.join(", ")}, got "${raw}"`);
	return raw as T;
}

export function bool(env: Env, name: string, def: boolean): boolean {
	const raw = str(env, name);
	if (raw === undefined) return def;
	if (/^(1|true|yes|on)$/i.test(raw)) return true;
	if (/^(0|false|no|off)$/i.test(raw)) return false;
	throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

/** Comma-separated list, trimmed, empty entries dropped. */
export function list(env: Env, name: string): string[] {
	return (str(env, name) ?? "").split(",").map(s => s.trim()).filter(s => s.length > 0);
}
