import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { effectiveFloor, parseAckFloor } from "../../../adapters/jetstream.ack-floor.ts";

const bytes = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));

void describe("kept acknowledgement floor", () => {
	void it("reads a floor and refuses anything else", () => {
		assert.deepEqual(parseAckFloor(bytes({ consumerCreated: "2026-12-07T00:00:00Z", streamSeq: 42 })), { consumerCreated: "2026-12-07T00:00:00Z", streamSeq: 42 });
		for (const bad of ["not json", "null", "[]", { streamSeq: 4 }, { consumerCreated: "x", streamSeq: -1 }, { consumerCreated: "x", streamSeq: 1.5 }, { consumerCreated: "x", streamSeq: "7" }]) {
			assert.equal(parseAckFloor(bytes(bad)), null, JSON.stringify(bad));
		}
	});

	void it("holds the higher of the server's floor and the kept one, only for the same consumer", () => {
		const kept = { consumerCreated: "c1", streamSeq: 100 };
		assert.equal(effectiveFloor(40, kept, "c1"), 100, "the server forgot acknowledgements: the kept floor holds");
		assert.equal(effectiveFloor(140, kept, "c1"), 140, "the server is ahead: its floor holds");
		assert.equal(effectiveFloor(40, kept, "c2"), 40, "another consumer: the kept floor is ignored");
		assert.equal(effectiveFloor(40, null, "c1"), 40);
	});
});
