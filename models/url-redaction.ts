// Credentials and personal data in request URLs: what the dashboard refuses (a key in its query string) and what the
// HTTP request log shows instead of the URL as sent (credential values cut, e-mail addresses and phone numbers masked).
import { maskPii } from "./pii.mask.ts";

/** Query parameters that carry a credential: a URL ends up in access logs, browser history and Referer headers. */
const CREDENTIAL_PARAMS: ReadonlySet<string> = new Set(["key", "apikey", "api_key", "api-key", "token", "access_token", "accesstoken", "auth", "authorization", "bearer"]);

function isCredentialParam(name: string): boolean {
	return CREDENTIAL_PARAMS.has(name.toLowerCase());
}

/** The first query parameter of `url` that names a credential (case-insensitive), or undefined. */
export function credentialParam(url: string | undefined): string | undefined {
	const q = url?.indexOf("?") ?? -1;
	if (url === undefined || q === -1) return undefined;
	for (const name of new URLSearchParams(url.slice(q + 1)).keys()) if (isCredentialParam(name)) return name;
	return undefined;
}

/** `url` as a log line may show it: credential parameter values replaced, personal data masked (customer ids can be e-mails). */
export function redactUrl(url: string | undefined): string {
	if (url === undefined) return "";
	const q = url.indexOf("?");
	if (q === -1) return maskPii(url);
	const query = url.slice(q + 1).split("&").map(pair => {
		const eq = pair.indexOf("=");
		let name = eq === -1 ? pair : pair.slice(0, eq);
		try {
			name = decodeURIComponent(name);
		} catch {
			// an undecodable name is compared as sent
		}
		return eq !== -1 && isCredentialParam(name) ? `${pair.slice(0, eq)}=[redacted]` : pair;
	}).join("&");
	return maskPii(`${url.slice(0, q)}?${query}`);
}
