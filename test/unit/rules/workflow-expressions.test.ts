// Camunda-style BPMN expressions on filtrex: the conditions of bpmn/*.bpmn evaluate to what Camunda would say, an
// unknown variable or a syntax error is an error (never a silent false), engine paths keep the default handler.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createExpressions, evaluateJuel, ExpressionError, juelToFiltrex, type ExpressionsHandler } from "../../../actors/workflow-expressions.ts";

const VARS = { stage: "PROPOSAL", amount: 2500, won: false, retained: true, owner: null, opp: { score: 71 }, fields: { x: 1 } };

void describe("evaluateJuel", () => {
	const cases: [string, unknown][] = [
		["stage == 'PROPOSAL'", true],
		["stage == 'NEGOTIATION'", false],
		["stage != \"PROPOSAL\"", false],
		["amount > 1000 && stage == 'PROPOSAL'", true],
		["amount gt 3000 || won", false],
		["!won", true],
		["not won and retained", true],
		["retained == true", true],
		["owner == null", true],
		["opp.score >= 70", true],
		["amount le 2500", true],
		["stage", "PROPOSAL"]
	];
	for (const [expr, expected] of cases) {
		void it(`${expr} -> ${JSON.stringify(expected)}`, () => assert.deepEqual(evaluateJuel(expr, VARS), expected));
	}

	const errors: [string, RegExp][] = [
		["missing == 'x'", /missing/],
		["opp.nothing > 1", /has no property "nothing"/],
		["opp.constructor", /has no property "constructor"/],
		["stage == 'PROPOSAL", /unterminated string/],
		["amount >", /syntax error/],
		["fields", /fields/]
	];
	for (const [expr, reason] of errors) {
		void it(`${expr} is an error`, () => {
			assert.throws(() => evaluateJuel(expr, VARS), (err: unknown) => err instanceof ExpressionError && reason.test(err.message));
		});
	}
});

void describe("juelToFiltrex", () => {
	const cases: [string, string][] = [
		["a == 'x'", 'a == "x"'],
		["a == \"say \\\"hi\\\"\"", 'a == "say \\"hi\\""'],
		["a && !b || c", "a and not b or c"],
		["a != 1", "a != 1"],
		["x eq 1 and y ne 2", "x == 1 and y != 2"]
	];
	for (const [juel, filtrex] of cases) void it(`${juel} -> ${filtrex}`, () => assert.equal(juelToFiltrex(juel), filtrex));
});

void describe("createExpressions (the engine's handler)", () => {
	const fallback: ExpressionsHandler = {
		resolveExpression: (e: string) => `default:${e}`,
		isExpression: () => false,
		hasExpression: () => false
	};
	const ex = createExpressions(fallback);
	const ctx = { environment: { variables: VARS } };

	void it("a whole expression returns its value, not a string", () => {
		assert.equal(ex.resolveExpression("${stage == 'PROPOSAL'}", ctx), true);
		assert.equal(ex.resolveExpression("${amount}", ctx), 2500);
	});
	void it("a template puts each value in", () => {
		assert.equal(ex.resolveExpression("Deal ${stage} at ${amount} for ${owner}", ctx), "Deal PROPOSAL at 2500 for ");
	});
	void it("engine paths go to the default handler", () => {
		assert.equal(ex.resolveExpression("${environment.services.fn()}", ctx), "default:${environment.services.fn()}");
		assert.equal(ex.resolveExpression("${content.output}", ctx), "default:${content.output}");
	});
	void it("text without an expression is returned as it is", () => {
		assert.equal(ex.resolveExpression("PT4H", ctx), "PT4H");
	});
	void it("a quoted } does not end the expression", () => {
		assert.equal(ex.resolveExpression("${stage == '}'}", ctx), false);
		assert.ok(ex.isExpression("${stage == '}'}"));
		assert.ok(!ex.isExpression("a ${b}"));
		assert.ok(ex.hasExpression("a ${b}"));
	});
});
