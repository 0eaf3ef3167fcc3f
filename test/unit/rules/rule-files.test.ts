// Broken rule files are reported with the file, the line and the reason; a reload with a broken file keeps the
// previous rules running.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadRuleFile, RuleFileError, scanBlocks } from "../../../services/rules/nools-loader.ts";
import { loadRiskRules, RiskEvent, RiskRulesHolder } from "../../../services/rules/risk-rules.ts";
import { Agent, Ticket } from "../../../services/rules/ticket-router.ts";

let dir: string;
before(async () => {
	dir = await mkdtemp(path.join(tmpdir(), "crm-rulefiles-"));
});
after(async () => {
	await rm(dir, { recursive: true, force: true });
});

async function write(name: string, text: string): Promise<string> {
	const file = path.join(dir, name);
	await writeFile(file, text);
	return file;
}

const GOOD_RULE = (name: string, points = 10) => `rule ${name} {
    when {
        e: RiskEvent e.type == 'crm.payment.failed';
    }
    then {
        addPoints('payment.failed', ${points});
    }
}
`;

interface BrokenCase { name: string; text: string; line: number; reason: RegExp; risk?: boolean }

const BROKEN: BrokenCase[] = [
	{
		name: "a condition that does not parse",
		text: `// header\n${GOOD_RULE("A")}\nrule B {\n    when {\n        e: RiskEvent e.type == && e.data.x;\n    }\n    then { addPoints('x', 1); }\n}\n`,
		line: 13, reason: /rule "B": invalid condition .*Expecting/
	},
	{
		name: "an unknown fact type",
		text: `${GOOD_RULE("A")}rule B {\n  when { e: Customer e.risk > 3; }\n  then { addPoints('x', 1); }\n}\n`,
		line: 9, reason: /unknown fact type "Customer"/
	},
	{
		name: "a syntax error in an action, on its own line",
		text: `rule A {\n  when { e: RiskEvent e.type == 'x'; }\n  then {\n    addPoints('x', 1);\n    addPoints('y' 2);\n  }\n}\n`,
		line: 5, reason: /syntax error in then/
	},
	{
		name: "a missing closing brace",
		text: `${GOOD_RULE("A")}\nrule B {\n  when { e: RiskEvent e.type == 'x'; }\n  then { addPoints('x', 1); }\n`,
		line: 10, reason: /missing closing "}"/
	},
	{
		name: "a rule defined twice",
		text: `${GOOD_RULE("A")}${GOOD_RULE("A", 3)}`,
		line: 9, reason: /already defined on line 1/
	},
	{
		name: "from over a property (crashes on null in nools)",
		text: `rule A {\n  when {\n    t: Ticket;\n    s: String s == 'x' from t.skills;\n  }\n  then { }\n}\n`,
		line: 4, reason: /"from" is not supported/
	},
	{
		name: "a risk action other than addPoints",
		text: `${GOOD_RULE("A")}rule B {\n  when { e: RiskEvent e.type == 'crm.x'; }\n  then {\n    console.log(e);\n  }\n}\n`,
		line: 11, reason: /only addPoints/, risk: true
	},
	{
		name: "a risk rule over two facts",
		text: `rule A {\n  when { e: RiskEvent; f: RiskEvent f != e; }\n  then { addPoints('x', 1); }\n}\n`,
		line: 1, reason: /exactly one pattern/, risk: true
	},
	{
		name: "text outside any block",
		text: `${GOOD_RULE("A")}\nrul B { }\n`,
		line: 10, reason: /./
	}
];

void describe("a broken rule file names the file, the line and the reason", () => {
	for (const c of BROKEN) {
		void it(c.name, async () => {
			const file = await write(`case-${BROKEN.indexOf(c)}.nools`, c.text);
			const load = () => c.risk ? loadRiskRules(file, "table") : loadRuleFile(file, { define: { RiskEvent, Ticket, Agent } });
			assert.throws(load, (err: unknown) => {
				assert.ok(err instanceof RuleFileError, String(err));
				assert.equal(err.file, file);
				assert.equal(err.line, c.line, `${err.message}`);
				assert.match(err.reason, c.reason);
				assert.ok(err.message.includes(`case-${BROKEN.indexOf(c)}.nools:${c.line}: `), err.message);
				return true;
			});
		});
	}

	void it("a missing file says so", () => {
		assert.throws(() => loadRuleFile(path.join(dir, "nope.nools")), /nope\.nools:0: cannot read the rule file/);
	});

	void it("the shipped files load", () => {
		assert.doesNotThrow(() => loadRuleFile(path.resolve("rules/ticket-routing.nools"), { define: { Ticket, Agent } }).dispose());
		assert.doesNotThrow(() => loadRiskRules(path.resolve("rules/risk.nools"), "nools").dispose());
	});
});

void describe("scanBlocks", () => {
	void it("finds each top-level block and its line, skipping comments and strings", () => {
		const src = "// a { comment\nglobal X = 3;\n\n/* block\n { */\nrule \"Two words\" {\n  when { t: T t.s == '}'; }\n  then { }\n}\nrule B { when {} then {} }\n";
		assert.deepEqual(scanBlocks(src).map(b => [b.kind, b.name, b.line]), [["global", "X", 2], ["rule", "Two words", 6], ["rule", "B", 10]]);
	});
});

void describe("RiskRulesHolder.reload", () => {
	void it("swaps in a good file and keeps the previous rules when the new file is broken", async () => {
		const file = await write("risk.nools", GOOD_RULE("PaymentFailed", 8));
		const holder = new RiskRulesHolder(file, "table");
		try {
			const evaluate = holder.evaluate;
			assert.deepEqual(evaluate({}, "crm.payment.failed", {}), { "payment.failed": 8 });

			await writeFile(file, GOOD_RULE("PaymentFailed", 12));
			holder.reload();
			assert.deepEqual(evaluate({}, "crm.payment.failed", {}), { "payment.failed": 12 }, "the same function sees the new rules");

			const good = await readFile(file, "utf8");
			await writeFile(file, good.replace("addPoints('payment.failed', 12);", "addPoints('payment.failed', 12"));
			assert.throws(() => holder.reload(), RuleFileError);
			assert.deepEqual(evaluate({}, "crm.payment.failed", {}), { "payment.failed": 12 }, "still the previous rules");
		} finally {
			holder.dispose();
		}
	});
});
