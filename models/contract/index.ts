// The message contract in one place: every action and event name with its params/result (payload) types, and the
// error catalogue. Services import it — never each other — and call through the typed descriptors.
export * from "./contract.ts";
export * from "./errors.ts";
export * from "./customers.contract.ts";
export * from "./dead-letters.contract.ts";
export * from "./ingest.contract.ts";
export * from "./automation.contract.ts";
export * from "./entities.contract.ts";
export * from "./operations.contract.ts";
