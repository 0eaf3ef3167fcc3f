// crm-actors operations dashboard: polls /api/v1/dashboard/* with the bearer key kept in sessionStorage and draws
// the cluster, event rates, risk and dead letters with plain DOM and SVG (every text goes in through textContent).
// The customer view does not poll: it follows the customer's change stream (Server-Sent Events read with fetch, so
// the key goes in the Authorization header, never in the URL) and redraws when a change arrives.
/* global document, window, location */

const KEY_STORAGE = "crm-actors.apiKey";
const POLL_MS = 2000;
const PALETTE = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#db2777", "#65a30d", "#7c3aed", "#475569"];
const SVG_NS = "http://www.w3.org/2000/svg";

class AuthError extends Error {}

const $ = id => document.getElementById(id);
let timer = null;
let busy = false;
const sourceColors = new Map();

function colorOf(source) {
	if (!sourceColors.has(source)) sourceColors.set(source, PALETTE[sourceColors.size % PALETTE.length]);
	return sourceColors.get(source);
}

/** Element with attributes and children (strings become text nodes, never HTML). */
function el(tag, attrs = {}, ...children) {
	const node = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs)) {
		if (v === undefined || v === null || v === false) continue;
		if (k === "class") node.className = v;
		else if (k === "onclick") node.addEventListener("click", v);
		else node.setAttribute(k, v === true ? "" : String(v));
	}
	for (const c of children) if (c !== null && c !== undefined) node.append(typeof c === "string" || typeof c === "number" ? String(c) : c);
	return node;
}

function svg(tag, attrs = {}, text) {
	const node = document.createElementNS(SVG_NS, tag);
	for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
	if (text !== undefined) node.textContent = text;
	return node;
}

const fmtInt = n => (n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US"));
const fmtPct = p => (p === null || p === undefined ? "–" : `${(p * 100).toFixed(1)} %`);
function fmtBytes(b) {
	if (b === null || b === undefined) return "–";
	const units = ["B", "KB", "MB", "GB"];
	let i = 0;
	while (b >= 1024 && i < units.length - 1) {
		b /= 1024;
		i++;
	}
	return `${b.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
function fmtTime(iso) {
	if (!iso) return "–";
	const d = new Date(iso);
	return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}
function scoreClass(score) {
	return score >= 60 ? "score-high" : score >= 30 ? "score-mid" : "";
}

async function api(path, init = {}) {
	const headers = new Headers(init.headers);
	const key = sessionStorage.getItem(KEY_STORAGE);
	if (key) headers.set("Authorization", `Bearer ${key}`);
	const res = await fetch(`/api/v1${path}`, { ...init, headers, cache: "no-store" });
	if (res.status === 401) throw new AuthError("the API key was refused");
	const type = res.headers.get("content-type") ?? "";
	const body = type.includes("json") ? await res.json() : await res.text();
	if (!res.ok) throw new Error((body && body.error && body.error.message) || `HTTP ${res.status}`);
	return body;
}

function setStatus(text, ok) {
	const s = $("status");
	s.textContent = text;
	s.className = `pill ${ok ? "ok" : "bad"}`;
	$("forget-key").hidden = !sessionStorage.getItem(KEY_STORAGE);
}

function showKeyDialog(message) {
	$("key-dialog").hidden = false;
	$("overview").hidden = true;
	$("customer-view").hidden = true;
	$("key-error").textContent = message ?? "";
	setStatus("API key needed", false);
	$("key-input").focus();
}

function route() {
	const m = /^#\/customers\/(.+)$/.exec(location.hash);
	return m ? { view: "customer", id: decodeURIComponent(m[1]) } : { view: "overview" };
}

// ---- overview ------------------------------------------------------------------------------------------------

function renderCards(s) {
	const t = s.totals;
	$("card-customers").textContent = fmtInt(t.customers);
	$("card-active").textContent = fmtInt(t.activeActors);
	$("card-received").textContent = fmtInt(t.received);
	$("card-applied").textContent = fmtInt(t.applied);
	$("card-duplicates").textContent = fmtInt(t.duplicates);
	const dl = s.deadLetters;
	$("card-dead").textContent = dl.available ? fmtInt(dl.scanned) : fmtInt(Object.values(dl.countedSinceStart).reduce((a, b) => a + b, 0));
	$("card-rate").textContent = s.rate.buckets.length ? recentRate(s.rate, Date.parse(s.generatedAt)).toFixed(1) : "–";
}

/** Events per second over the last three buckets, the newest counted only for the part of it that has elapsed. */
function recentRate(rate, now, source) {
	const last = rate.buckets.slice(-3);
	if (last.length === 0) return 0;
	const count = last.reduce((a, b) => a + (source === undefined ? Object.values(b.bySource).reduce((x, y) => x + y, 0) : (b.bySource[source] ?? 0)), 0);
	const seconds = Math.max(1, (Math.min(now, last[last.length - 1].t + rate.bucketMs) - last[0].t) / 1000);
	return count / seconds;
}

function renderNodes(nodes) {
	const body = $("nodes").tBodies[0];
	body.replaceChildren(...nodes.map(n => el("tr", { "data-node": n.nodeID },
		el("td", { class: "mono" }, n.nodeID, n.local ? el("span", { class: "muted" }, " (this node)") : null, n.reachable ? null : el("span", { class: "error" }, " unreachable")),
		el("td", { class: "wrap" }, n.services.join(", ")),
		el("td", {}, n.ownedShare === null ? "–" : el("div", { class: "share" }, shareBar(n.ownedShare), el("span", { class: "owned-share" }, fmtPct(n.ownedShare)))),
		el("td", { class: "num active-actors" }, fmtInt(n.activeActors)),
		el("td", { class: "num" }, fmtBytes(n.memoryEstimateBytes)),
		el("td", { class: "num" }, fmtBytes(n.heapUsedBytes)),
		el("td", { class: "num" }, fmtInt(n.mailboxDepth)),
		el("td", { class: "num" }, fmtInt(n.received)),
		el("td", { class: "num" }, fmtInt(n.applied))
	)));
	if (nodes.length === 0) body.replaceChildren(el("tr", {}, el("td", { class: "empty", colspan: 9 }, "no nodes")));
}

function shareBar(p) {
	const fill = el("span", { class: "bar" });
	fill.style.width = `${Math.round(p * 100)}%`;
	return el("span", { class: "track" }, fill);
}

function renderRate(rate, sources, now) {
	const chart = $("rate-chart");
	const buckets = rate.buckets;
	const width = 600;
	const height = 160;
	const slot = width / Math.max(1, buckets.length);
	const totals = buckets.map(b => Object.values(b.bySource).reduce((a, c) => a + c, 0));
	const max = Math.max(1, ...totals);
	const nodes = [];
	for (const frac of [0.25, 0.5, 0.75]) nodes.push(svg("line", { class: "gridline", x1: 0, x2: width, y1: height * frac, y2: height * frac }));
	buckets.forEach((b, i) => {
		let y = height;
		for (const source of sources) {
			const n = b.bySource[source] ?? 0;
			if (n === 0) continue;
			const h = (n / max) * (height - 4);
			y -= h;
			const rect = svg("rect", { x: i * slot + 1, y, width: Math.max(1, slot - 2), height: h, fill: colorOf(source) });
			rect.append(svg("title", {}, `${source}: ${n} events in ${rate.bucketMs / 1000} s from ${new Date(b.t).toLocaleTimeString()}`));
			nodes.push(rect);
		}
	});
	chart.replaceChildren(...nodes);
	$("rate-max").textContent = `max ${fmtInt(max)} per ${rate.bucketMs / 1000} s (${(max / (rate.bucketMs / 1000)).toFixed(1)}/s)`;
	$("rate-legend").replaceChildren(...sources.map(source => {
		const perS = recentRate(rate, now, source);
		const swatch = el("span", { class: "swatch" });
		swatch.style.background = colorOf(source);
		return el("span", { "data-source": source }, swatch, `${source} `, el("b", {}, `${perS.toFixed(1)}/s`));
	}));
	if (sources.length === 0) $("rate-legend").replaceChildren(el("span", { class: "muted" }, "no events yet"));
}

function renderRisk(risk) {
	const chart = $("risk-chart");
	const h = risk.histogram;
	if (!h) {
		chart.replaceChildren(svg("text", { x: 10, y: 20 }, "no customer actors in this cluster"));
		$("risk-note").textContent = "";
		return;
	}
	const width = 500;
	const height = 180;
	const base = height - 20;
	const slot = width / h.length;
	const max = Math.max(1, ...h);
	const nodes = [];
	h.forEach((count, i) => {
		const bh = (count / max) * (base - 18);
		const rect = svg("rect", { x: i * slot + 4, y: base - bh, width: slot - 8, height: bh, fill: i >= 6 ? "#dc2626" : i >= 3 ? "#d97706" : "#2563eb", "data-band": i });
		rect.append(svg("title", {}, `${count} customers with risk ${i * 10}–${i === 9 ? 100 : i * 10 + 9}`));
		nodes.push(rect);
		nodes.push(svg("text", { x: i * slot + slot / 2, y: base - bh - 4, "text-anchor": "middle", class: "risk-count" }, fmtInt(count)));
		nodes.push(svg("text", { x: i * slot + slot / 2, y: height - 4, "text-anchor": "middle" }, `${i * 10}–${i === 9 ? 100 : i * 10 + 9}`));
	});
	chart.replaceChildren(...nodes);
	$("risk-note").textContent = risk.total === null ? "" : risk.covered < risk.total
		? `(${fmtInt(risk.covered)} highest of ${fmtInt(risk.total)} customers)`
		: `(${fmtInt(risk.total)} customers)`;
}

function topFactors(factors, n = 3) {
	return Object.entries(factors).filter(([, v]) => v !== 0).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1])).slice(0, n)
		.map(([k, v]) => `${k} ${v > 0 ? "+" : ""}${Math.round(v * 10) / 10}`).join(", ");
}

function renderTop(top) {
	const body = $("top-risk").tBodies[0];
	if (top.length === 0) {
		body.replaceChildren(el("tr", {}, el("td", { class: "empty", colspan: 4 }, "no customer at risk")));
		return;
	}
	body.replaceChildren(...top.map(c => el("tr", {},
		el("td", { class: "mono" }, el("a", { href: `#/customers/${encodeURIComponent(c.id)}`, "data-customer": c.id }, c.id)),
		el("td", { class: `num ${scoreClass(c.score)}` }, String(Math.round(c.score * 10) / 10)),
		el("td", { class: "wrap" }, topFactors(c.factors)),
		el("td", { class: "num" }, c.churnProbability === null ? "–" : c.churnProbability.toFixed(2))
	)));
}

async function retry(ids, button) {
	const result = $("dead-result");
	button.disabled = true;
	let ok = 0;
	const failures = [];
	for (const id of ids) {
		try {
			await api(`/dead-letters/${encodeURIComponent(id)}/retry`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
			ok++;
		} catch (err) {
			if (err instanceof AuthError) return showKeyDialog(err.message);
			failures.push(`${id}: ${err.message}`);
		}
	}
	result.className = failures.length ? "result bad" : "result ok";
	result.textContent = failures.length
		? `retried ${ok} of ${ids.length}; failed: ${failures.slice(0, 3).join("; ")}`
		: `retried ${ok} dead letter${ok === 1 ? "" : "s"}`;
	await refresh();
}

function renderDeadLetters(dl) {
	const reasons = $("dead-reasons").tBodies[0];
	const recent = $("dead-recent").tBodies[0];
	if (!dl.available) {
		const counted = Object.entries(dl.countedSinceStart);
		$("dead-note").textContent = "(the dead-letter service is not running: counts since the nodes started, no retry)";
		reasons.replaceChildren(...(counted.length ? counted.map(([source, n]) => el("tr", {}, el("td", {}, source), el("td", { class: "muted" }, "all reasons"), el("td", { class: "num" }, fmtInt(n)), el("td", {})))
			: [el("tr", {}, el("td", { class: "empty", colspan: 4 }, "no dead letters"))]));
		recent.replaceChildren();
		return;
	}
	$("dead-note").textContent = `(${fmtInt(dl.scanned)} kept)`;
	reasons.replaceChildren(...(dl.byReason.length ? dl.byReason.map(g => el("tr", { "data-reason": g.reason },
		el("td", {}, g.source),
		el("td", { class: "wrap" }, g.reason),
		el("td", { class: "num" }, fmtInt(g.count)),
		el("td", {}, el("button", { type: "button", class: "retry-reason", onclick: ev => retry(g.ids, ev.currentTarget) }, g.count === 1 ? "retry" : `retry ${g.count}`))
	)) : [el("tr", {}, el("td", { class: "empty", colspan: 4 }, "no dead letters"))]));
	recent.replaceChildren(...dl.recent.map(d => el("tr", { "data-id": d.id },
		el("td", { class: "time" }, fmtTime(d.recordedAt)),
		el("td", {}, d.source),
		el("td", { class: "wrap" }, d.reason),
		el("td", { class: "mono" }, d.id),
		el("td", {}, el("button", { type: "button", class: "retry-one", onclick: ev => retry([d.id], ev.currentTarget) }, "retry"))
	)));
}

async function renderOverview() {
	const s = await api("/dashboard/summary");
	$("overview").hidden = false;
	$("customer-view").hidden = true;
	renderCards(s);
	renderNodes(s.nodes);
	renderRate(s.rate, s.sources, Date.parse(s.generatedAt));
	renderRisk(s.risk);
	renderTop(s.risk.top);
	renderDeadLetters(s.deadLetters);
	return `${s.nodes.length} node${s.nodes.length === 1 ? "" : "s"}`;
}

// ---- customer view -------------------------------------------------------------------------------------------

function kv(dl, entries) {
	dl.replaceChildren(...entries.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v === null || v === undefined ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v))]));
	if (entries.length === 0) dl.replaceChildren(el("dt", { class: "muted" }, "none"));
}

function listOf(container, items, describe) {
	if (items === null || items === undefined) {
		container.replaceChildren(el("p", { class: "muted" }, "not available on this cluster"));
		return;
	}
	container.replaceChildren(items.length === 0 ? el("p", { class: "muted" }, "none") : el("ul", {}, ...items.map(i => el("li", {}, describe(i)))));
}

function describeTask(t) {
	const name = t.name ?? t.taskName ?? t.activityId ?? t.topic ?? "task";
	const parts = [name];
	if (t.processId ?? t.processKey) parts.push(`in ${t.processId ?? t.processKey}`);
	if (t.createdAt ?? t.created) parts.push(`since ${fmtTime(t.createdAt ?? t.created)}`);
	return `${parts.join(" ")} (${t.id ?? "?"})`;
}

function describeProcess(p) {
	return `${p.processId ?? p.processKey ?? p.name ?? "process"} — ${p.state ?? p.status ?? "?"} (${p.id ?? "?"})`;
}

async function renderCustomer(id) {
	let v;
	try {
		v = await api(`/dashboard/customers/${encodeURIComponent(id)}`);
	} catch (err) {
		if (err instanceof AuthError) throw err;
		$("overview").hidden = true;
		$("customer-view").hidden = false;
		$("cv-id").textContent = id;
		$("cv-owner").textContent = `— ${err.message}`;
		return "customer not found";
	}
	$("overview").hidden = true;
	$("customer-view").hidden = false;
	const c = v.customer;
	$("cv-id").textContent = c.id;
	$("cv-owner").textContent = v.owner ? `owned by ${v.owner}` : "";
	const score = $("cv-score");
	score.textContent = String(Math.round(c.risk.score * 10) / 10);
	score.className = `value ${scoreClass(c.risk.score)}`;
	$("cv-churn").textContent = c.churnProbability === null ? "–" : c.churnProbability.toFixed(3);
	$("cv-version").textContent = String(c.version);
	$("cv-activity").textContent = fmtTime(c.lastActivityAt);
	const factors = Object.entries(c.risk.factors).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
	const maxF = Math.max(1, ...factors.map(([, p]) => Math.abs(p)));
	$("cv-factors").tBodies[0].replaceChildren(...(factors.length ? factors.map(([name, points]) => {
		const bar = el("span", { class: points < 0 ? "bar neg" : "bar risk" });
		bar.style.width = `${Math.round((Math.abs(points) / maxF) * 160)}px`;
		return el("tr", { "data-factor": name }, el("td", {}, name), el("td", { class: "num" }, String(Math.round(points * 100) / 100)), el("td", {}, bar));
	}) : [el("tr", {}, el("td", { class: "empty", colspan: 3 }, "no risk factors"))]));
	kv($("cv-counters"), Object.entries(c.counters ?? {}));
	kv($("cv-profile"), Object.entries(c.profile ?? {}));
	kv($("cv-telemetry"), Object.entries(c.telemetry ?? {}));
	kv($("cv-tickets"), (c.openTicketIds ?? []).map(id => [id, "open"]));
	renderLineage(v.riskHistory);
	follow(c.id, c.version);
	listOf($("cv-tasks"), v.tasks, describeTask);
	listOf($("cv-processes"), v.processes, describeProcess);
	$("cv-journal").tBodies[0].replaceChildren(...(v.journal.length ? v.journal.map(j => el("tr", {},
		el("td", { class: "num" }, String(j.version)),
		el("td", { class: "time" }, fmtTime(j.appliedAt)),
		el("td", { class: "mono" }, j.event.type),
		el("td", { class: "mono wrap" }, `${j.event.source} / ${j.event.id}`),
		el("td", { class: "mono wrap" }, JSON.stringify(j.event.data).slice(0, 160)),
		el("td", { class: "num" }, String(Math.round(j.riskScore * 10) / 10))
	)) : [el("tr", {}, el("td", { class: "empty", colspan: 6 }, "no events"))]));
	return `customer ${c.id}`;
}

// ---- risk lineage and the customer's change stream --------------------------------------------------------------

function causeText(c) {
	switch (c.kind) {
		case "rule": return `rule ${c.rule} (${c.file})`;
		case "model": return `model ${c.artifact}, trained ${fmtTime(c.trainedAt)}, sha256 ${String(c.sha256).slice(0, 12)}…`;
		case "tickets.open": return `${c.openTickets} open tickets`;
		case "decay": return `inactivity decay (${c.reminder})`;
		case "merge": return `merge of ${c.from}`;
		default: return String(c.kind);
	}
}

/** What a change was applied for: an event, a reminder or a merge step. */
function causeOf(c) {
	if (c.event) return `${c.event.type} ${c.event.source} / ${c.event.id}`;
	if (c.merge) return `merge ${c.merge.step}${c.merge.from ? ` of ${c.merge.from}` : ""}`;
	return `reminder ${c.reminder}`;
}

function renderLineage(history) {
	const body = $("cv-lineage").tBodies[0];
	if (!history || history.length === 0) {
		body.replaceChildren(el("tr", {}, el("td", { class: "empty", colspan: 5 }, "no risk change recorded")));
		return;
	}
	body.replaceChildren(...history.map(h => el("tr", { "data-version": h.version },
		el("td", { class: "num" }, String(h.version)),
		el("td", { class: "time" }, fmtTime(h.appliedAt)),
		el("td", { class: "num" }, `${h.oldScore} → ${h.newScore}`),
		el("td", { class: "mono wrap" }, causeOf(h)),
		el("td", { class: "wrap" }, h.lineage.map(d => `${d.factor} ${d.delta > 0 ? "+" : ""}${d.delta} by ${causeText(d.cause)}`).join("; "))
	)));
}

/** The customer whose stream is followed: { id, last (version), abort }, or null. */
let live = null;
const LIVE_ITEMS = 20;

function describeChange(c) {
	const ch = c.change;
	const by = causeOf(ch.cause);
	const risk = ch.risk ? `; risk ${ch.risk.old} → ${ch.risk.new}` : "";
	return `v${c.version} ${fmtTime(c.appliedAt)} · ${by} · ${ch.fields.join(", ") || "no field"}${risk}`;
}

function onStreamEvent(event, id, data) {
	if (!live) return;
	if (event === "change") {
		live.last = id;
		const list = $("cv-live");
		list.prepend(el("li", { "data-version": data.version }, describeChange(data)));
		while (list.children.length > LIVE_ITEMS) list.lastElementChild.remove();
		// Redraw the view (score, factors, lineage, journal) from the persisted state: it holds this change now.
		void refresh();
	} else if (event === "ready") {
		$("cv-live-state").textContent = "(following live)";
	} else if (event === "error" || event === "reset") {
		$("cv-live-state").textContent = `(${data && data.reason ? data.reason : event}; resuming)`;
	}
}

function stopFollowing() {
	if (live) live.abort.abort();
	live = null;
}

/** Follows a customer's change stream from `version` on, reconnecting with Last-Event-ID when it drops. */
function follow(id, version) {
	if (live && live.id === id) return;
	stopFollowing();
	const abort = new AbortController();
	const me = { id, last: String(version), abort };
	live = me;
	$("cv-live").replaceChildren();
	void (async () => {
		while (!abort.signal.aborted) {
			try {
				const headers = new Headers({ Accept: "text/event-stream", "Last-Event-ID": me.last });
				const key = sessionStorage.getItem(KEY_STORAGE);
				if (key) headers.set("Authorization", `Bearer ${key}`);
				const res = await fetch(`/api/v1/customers/${encodeURIComponent(id)}/stream`, { headers, signal: abort.signal, cache: "no-store" });
				if (res.status === 401) {
					stopFollowing();
					showKeyDialog("the API key was refused");
					return;
				}
				if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
				const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
				let buffer = "";
				for (;;) {
					const { value, done } = await reader.read();
					if (done) break;
					buffer += value;
					let end;
					while ((end = buffer.indexOf("\n\n")) >= 0) {
						const block = buffer.slice(0, end);
						buffer = buffer.slice(end + 2);
						let event = "message";
						let eventId = null;
						const data = [];
						for (const line of block.split("\n")) {
							if (line.startsWith(":")) continue;
							const colon = line.indexOf(":");
							const field = colon < 0 ? line : line.slice(0, colon);
							const v = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
							if (field === "event") event = v;
							else if (field === "id") eventId = v;
							else if (field === "data") data.push(v);
						}
						if (data.length > 0 && live === me) onStreamEvent(event, eventId, JSON.parse(data.join("\n")));
					}
				}
			} catch (err) {
				if (abort.signal.aborted) return;
				$("cv-live-state").textContent = `(stream: ${err.message}; reconnecting)`;
			}
			if (abort.signal.aborted) return;
			await new Promise(resolve => setTimeout(resolve, 2000));
		}
	})();
}

// ---- loop ----------------------------------------------------------------------------------------------------

let again = false;

async function refresh() {
	if (busy) {
		again = true;
		return;
	}
	busy = true;
	again = false;
	clearTimeout(timer);
	try {
		const r = route();
		if (r.view !== "customer") stopFollowing();
		const what = r.view === "customer" ? await renderCustomer(r.id) : await renderOverview();
		$("key-dialog").hidden = true;
		setStatus(`live · ${what} · ${new Date().toLocaleTimeString()}`, true);
	} catch (err) {
		if (err instanceof AuthError) {
			busy = false;
			showKeyDialog(sessionStorage.getItem(KEY_STORAGE) ? err.message : "");
			return;
		}
		setStatus(`error: ${err.message}`, false);
	}
	busy = false;
	// The customer view is redrawn by its change stream; only the overview polls.
	if (again) timer = setTimeout(() => void refresh(), 0);
	else if (!live) timer = setTimeout(() => void refresh(), POLL_MS);
}

$("key-form").addEventListener("submit", ev => {
	ev.preventDefault();
	sessionStorage.setItem(KEY_STORAGE, $("key-input").value.trim());
	$("key-input").value = "";
	void refresh();
});
$("forget-key").addEventListener("click", () => {
	sessionStorage.removeItem(KEY_STORAGE);
	clearTimeout(timer);
	stopFollowing();
	showKeyDialog("");
});
window.addEventListener("hashchange", () => void refresh());
document.addEventListener("visibilitychange", () => {
	if (!document.hidden) void refresh();
});
void refresh();
