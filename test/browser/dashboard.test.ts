// The operator dashboard in a real browser (playwright-core driving Debian's /usr/bin/chromium) against an
// in-process node: posted events show up in the numbers and the customer view, a dead letter is retried with a
// click, and screenshots land in test-artifacts/.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { API_KEY, cloudEvent, startTestNode, type TestNode } from "../support/node.ts";
import { connectPublisher, reading, restReady, topicOf } from "../support/edge.ts";
import { freePort, waitFor } from "../harness.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = path.resolve("test-artifacts");
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install chromium; .ci/run installs it)`;

// Event times are now: older ones would make the actors' inactivity decay due at once and move the scores.
const now = () => ({ time: new Date().toISOString() });
const order = (customerId: string, orderId: string, newStatus: string) =>
	cloudEvent("crm.order.status_changed", customerId, { orderId, newStatus, amount: 49.9, currency: "EUR" }, { source: "/shop/orders", ...now() });

describe("dashboard in a browser", { skip }, () => {
	let node: TestNode;
	let mqttPort: number;
	let context: BrowserContext;
	let page: Page;
	let profileDir: string;
	const pageErrors: string[] = [];

	before(async () => {
		mqttPort = await freePort();
		node = await startTestNode({ MQTT_PORT: String(mqttPort) });
		await restReady(node, "/api/v1/dashboard/summary");
		await restReady(node, "/api/v1/devices");
		profileDir = await mkdtemp(path.join(tmpdir(), "crm-chromium-"));
		context = await chromium.launchPersistentContext(profileDir, {
			executablePath: CHROMIUM,
			headless: true,
			viewport: { width: 1280, height: 900 },
			args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
				"--disable-component-update", "--disable-sync"]
		});
		page = context.pages()[0] ?? await context.newPage();
		page.on("pageerror", err => pageErrors.push(`pageerror: ${err.message}`));
		page.on("console", msg => {
			// A CSP violation or a failed script shows up as a console error.
			if (msg.type() === "error" && !/401 \(Unauthorized\)/.test(msg.text())) pageErrors.push(`console: ${msg.text()}`);
		});
		await mkdir(ARTIFACTS, { recursive: true });
	});

	after(async () => {
		await context?.close();
		await node?.stop();
		if (profileDir) await rm(profileDir, { recursive: true, force: true });
	});

	const text = (selector: string) => page.locator(selector).first().innerText();
	const waitText = async (selector: string, expected: string | RegExp, what: string) => {
		let seen = "";
		await waitFor(async () => {
			seen = (await text(selector)).trim();
			return typeof expected === "string" ? seen === expected : expected.test(seen);
		}, { timeoutMs: 10_000, message: `${what}: ${selector} never showed ${String(expected)}` }).catch((err: Error) => {
			throw new Error(`${err.message}; last: "${seen}"`);
		});
	};

	it("serves the page with a CSP and asks for the API key once", async () => {
		const res = await fetch(`${node.baseUrl}/dashboard`);
		assert.equal(res.status, 200);
		assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
		assert.match(res.headers.get("content-security-policy") ?? "", /default-src 'none'; script-src 'self'/);
		assert.equal((await fetch(`${node.baseUrl}/dashboard/dashboard.js`)).headers.get("content-type"), "text/javascript; charset=utf-8");
		// The data behind it needs the key like the rest of the API.
		assert.equal((await fetch(`${node.baseUrl}/api/v1/dashboard/summary`)).status, 401);

		await page.goto(`${node.baseUrl}/dashboard`);
		await page.locator("#key-dialog").waitFor({ state: "visible" });
		await page.fill("#key-input", API_KEY);
		await page.click("#key-form button[type=submit]");
		await page.locator("#overview").waitFor({ state: "visible" });
		await waitText("#status", /^live/, "status");
	});

	it("shows posted events in the numbers, the nodes, the risk histogram and the top at-risk list, live", async () => {
		const events = [
			order("dash-risky", "o-1", "CANCELLED"), order("dash-risky", "o-2", "CANCELLED"), order("dash-risky", "o-3", "CANCELLED"),
			cloudEvent("crm.payment.failed", "dash-risky", { paymentId: "p-1", amount: 20 }, now()),
			order("dash-mid", "o-4", "CANCELLED"), order("dash-mid", "o-5", "PAID"),
			...["dash-a", "dash-b", "dash-c", "dash-d"].map((id, i) => order(id, `o-${10 + i}`, "PAID"))
		];
		assert.deepEqual((await node.api("/api/v1/events", { method: "POST", json: events })).body, { accepted: 10, duplicates: 0 });
		await waitText("#card-received", "10", "events received");
		assert.equal(await text("#card-applied"), "10");
		await waitText("#card-customers", "6", "customers");
		assert.equal(await text("#nodes tbody tr[data-node] .active-actors"), "6");
		assert.equal(await text("#nodes tbody tr[data-node] .owned-share"), "100.0 %");
		assert.match(await text("#rate-legend"), /api/);
		// Risk bands: four customers at 0, dash-mid at 10, dash-risky at 38.
		assert.deepEqual(await page.locator("#risk-chart .risk-count").allTextContents(), ["4", "1", "0", "1", "0", "0", "0", "0", "0", "0"]);
		assert.equal(await text("#top-risk tbody tr td a"), "dash-risky");
		assert.match(await text("#top-risk tbody tr"), /38/);

		// A duplicate and new events arrive while the page is open: the numbers follow without a reload.
		await node.api("/api/v1/events", { method: "POST", json: [events[0], order("dash-a", "o-20", "CANCELLED")] });
		await waitText("#card-received", "12", "events received after a second post");
		await waitText("#card-duplicates", "1", "duplicates");
	});

	it("retries a dead letter with a click once its cause is fixed", async () => {
		// A reading from a device bound to no customer is dead-lettered…
		const device = await connectPublisher(`mqtt://127.0.0.1:${mqttPort}`);
		try {
			await device.publishAsync(topicOf("dash-thermo-1"), reading("dash-risky", Date.now() - 1000, { temperatureC: 22.5 }), { qos: 1 });
		} finally {
			await device.endAsync();
		}
		await waitFor(async () => (await page.locator("#dead-recent tbody tr").count()) > 0, { message: "the dead letter never showed" });
		assert.match(await text("#dead-reasons tbody"), /unbound_device/);
		await waitText("#card-dead", "1", "dead letters");
		await page.screenshot({ path: path.join(ARTIFACTS, "dashboard.png"), fullPage: true });
		const id = await page.locator("#dead-recent tbody tr").first().getAttribute("data-id");
		assert.ok(id);

		// …the operator binds the device, then retries it from the page.
		assert.equal((await node.api("/api/v1/devices", { method: "POST", json: { deviceId: "dash-thermo-1", customerId: "dash-risky" } })).status, 200);
		await page.locator(`#dead-recent tbody tr[data-id="${id}"] button.retry-one`).click();
		await waitText("#dead-result", "retried 1 dead letter", "retry result");
		await waitFor(async () => (await page.locator(`#dead-recent tbody tr[data-id="${id}"]`).count()) === 0, { message: "the retried dead letter is still listed" });
		// The reading reached its actor as an MQTT event.
		await waitFor(async () => /mqtt/.test(await text("#rate-legend")), { message: "no mqtt events in the rate legend" });
		await waitText("#card-received", "13", "events received after the retry");
		const customer = await node.api("/api/v1/customers/dash-risky");
		assert.equal(customer.body.telemetry.temperatureC, 22.5);
	});

	it("opens a customer view with state, factors and journal from the top at-risk list", async () => {
		await page.click("#top-risk a[data-customer='dash-risky']");
		await page.locator("#customer-view").waitFor({ state: "visible" });
		await waitText("#cv-id", "dash-risky", "customer id");
		assert.equal(await text("#cv-score"), "38");
		assert.equal(await text("#cv-factors tr[data-factor='order.cancelled'] td.num"), "30");
		assert.equal(await text("#cv-factors tr[data-factor='payment.failed'] td.num"), "8");
		assert.match(await text("#cv-counters"), /telemetryReadings\s+1/);
		assert.match(await text("#cv-telemetry"), /temperatureC\s+22\.5/);
		const journal = await page.locator("#cv-journal tbody tr").allInnerTexts();
		assert.equal(journal.length, 5, "four posted events and the retried reading");
		assert.match(journal[0], /crm\.device\.telemetry/, "newest first");
		assert.match(await text("#cv-tasks"), /none|not available/);
		await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-customer.png"), fullPage: true });
		await page.click("text=← overview");
		await page.locator("#overview").waitFor({ state: "visible" });
		assert.deepEqual(pageErrors, []);
	});

	it("the customer view follows the change stream: a posted change appears within 1 s, with its lineage beside the score", async () => {
		await page.evaluate("location.hash = '#/customers/dash-risky'");
		await page.locator("#customer-view").waitFor({ state: "visible" });
		await waitText("#cv-live-state", "(following live)", "the stream is connected");
		assert.match(await text("#cv-lineage tbody"), /order\.cancelled \+10 by rule OrderCancelled \(rules\/risk\.nools\)/);
		const before = Number(await text("#cv-version"));
		const posted = await node.api("/api/v1/events", { method: "POST", json: order("dash-risky", "dash-o-live", "CANCELLED") });
		assert.equal(posted.status, 202);
		const acceptedAt = Date.now();
		await page.locator(`#cv-live li[data-version='${before + 1}']`).waitFor({ state: "attached", timeout: 5000 });
		const shownAfterMs = Date.now() - acceptedAt;
		assert.ok(shownAfterMs < 1000, `the change appeared ${shownAfterMs} ms after the POST's 202`);
		assert.match(await text(`#cv-live li[data-version='${before + 1}']`), /crm\.order\.status_changed .*risk 38 → 48/);
		// The view redraws from the persisted state: score, version and the lineage row of the new change.
		await waitText("#cv-score", "48", "score after the change");
		await waitText("#cv-version", String(before + 1), "version after the change");
		assert.match(await page.locator(`#cv-lineage tr[data-version='${before + 1}']`).innerText(), /38 → 48/);
		await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-customer-live.png"), fullPage: true });
		assert.deepEqual(pageErrors, []);
	});
});
