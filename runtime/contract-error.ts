// Moleculer errors of the contract's catalogue (models/contract/errors.ts): the status and whether a caller may retry
// come from the catalogue, so an error type means the same wherever it is thrown.
import { Errors } from "moleculer";
import { ERRORS, type ErrorType } from "../models/contract/index.ts";

export function contractError(type: ErrorType, message: string, data?: unknown): Errors.MoleculerError {
	const spec = ERRORS[type];
	if (spec.retryable) return new Errors.MoleculerRetryableError(message, spec.status, type, data);
	if (spec.status >= 400 && spec.status < 500) return new Errors.MoleculerClientError(message, spec.status, type, data);
	return new Errors.MoleculerError(message, spec.status, type, data);
}
