// Lint rules; the restricted-imports block keeps the pure domain free of I/O: actors/ (the reducer, risk, the actor
// host), models/ (types, validators, the contract), and the ml/ code that runs in the actor's turn.
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import globals from "globals";

const ioModules = [
	"moleculer", "moleculer-web", "moleculer-db", "moleculer-repl", "ioredis", "nats", "mqtt", "mongodb", "pg", "aedes",
	"fs", "node:fs", "fs/promises", "node:fs/promises", "net", "node:net", "http", "node:http", "https", "node:https",
	"child_process", "node:child_process", "dgram", "node:dgram", "tls", "node:tls", "dns", "node:dns",
	"worker_threads", "node:worker_threads", "cluster", "node:cluster", "readline", "node:readline"
];

export default tseslint.config(
	{ ignores: ["node_modules/**", "data/**", ".tmp/**", "test-artifacts/**"] },
	js.configs.recommended,
	...tseslint.configs.recommended,
	{
		files: ["**/*.ts"],
		languageOptions: {
			parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
			globals: { ...globals.node }
		},
		rules: {
			"@typescript-eslint/no-floating-promises": ["error", {
				// node:test's describe/it return promises the runner itself tracks.
				allowForKnownSafeCalls: [{ from: "package", package: "node:test", name: ["describe", "it", "test", "suite", "before", "after", "beforeEach", "afterEach"] }]
			}],
			"@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: false }],
			"@typescript-eslint/no-explicit-any": "off",
			"@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }]
		}
	},
	{
		files: ["actors/**/*.ts", "models/**/*.ts", "ml/features.ts", "ml/model.ts"],
		rules: {
			"no-restricted-imports": ["error", {
				paths: ioModules.map(name => ({ name, message: "actors/, models/ and the actor's ml/ code are pure: I/O belongs in adapters/, edge/ or services/." }))
			}]
		}
	},
	{
		files: ["**/*.js"],
		languageOptions: { globals: { ...globals.node } }
	}
);
