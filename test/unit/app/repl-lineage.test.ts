// The REPL `customer` command's lineage lines: newest first, the event or reminder, each factor's delta and cause.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { describeLineage } from "../../../app/repl-commands.ts";

void describe("describeLineage", () => {
	void it("prints one line per risk change with every cause kind", () => {
		const lines = describeLineage([
			{
				version: 3, appliedAt: "2026-01-01T00:00:03.000Z", reminder: "risk.decay", oldScore: 20, newScore: 10,
				lineage: [{ factor: "order.cancelled", delta: -10, cause: { kind: "decay", reminder: "risk.decay" } }]
			},
			{
				version: 2, appliedAt: "2026-01-01T00:00:02.000Z", event: { source: "/shop", id: "e-2", type: "crm.ticket.opened" }, oldScore: 4, newScore: 20,
				lineage: [
					{ factor: "tickets.open", delta: 5, cause: { kind: "tickets.open", openTickets: 3 } },
					{ factor: "churn.model", delta: 11, cause: { kind: "model", artifact: "churn-telco.json", trainedAt: "2025-12-01T00:00:00.000Z", sha256: "0123456789abcdef".repeat(4) } }
				]
			}
		]);
		assert.deepEqual(lines, [
			"  lineage    v3 2026-01-01T00:00:03.000Z 20→10 after reminder risk.decay: order.cancelled -10 by decay (risk.decay)",
			"             v2 2026-01-01T00:00:02.000Z 4→20 after crm.ticket.opened /shop/e-2: tickets.open +5 by 3 open tickets; churn.model +11 by model churn-telco.json trained 2025-12-01T00:00:00.000Z sha256 0123456789ab"
		]);
		assert.deepEqual(describeLineage([]), ["  lineage    no risk change recorded"]);
	});
});
