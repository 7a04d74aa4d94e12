/**
 * The host checkers, each handed a violating history (it must fire) and a clean one (it must not).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CheckQuorumStepDown, OperationsSettle, PreVoteStability } from "./host.ts";
import type { Violation } from "./raft-safety.ts";

function collector(): { violations: Violation[]; report: (v: Violation) => void } {
  const violations: Violation[] = [];
  return { violations, report: (v) => violations.push(v) };
}

describe("OperationsSettle", () => {
  it("fires for an operation still pending past its deadline", () => {
    const { violations, report } = collector();
    const checker = new OperationsSettle(report);
    checker.track(0, "n1", 0, "propose (100 ms)", 100_000);
    checker.check(100_000);
    assert.equal(violations.length, 0, "not before its deadline has passed");
    checker.check(100_001);
    assert.equal(violations.length, 1);
    assert.equal(violations[0]?.checker, "operations-settle");
    assert.match(violations[0]?.message ?? "", /propose \(100 ms\) on n1, called at 0.000 ms and due by 100.000 ms, had not settled/);
  });

  it("fires for an operation that settles after its deadline", () => {
    const { violations, report } = collector();
    const checker = new OperationsSettle(report);
    const id = checker.track(0, "n1", 0, "read", 50_000);
    checker.settled(id, 60_000);
    assert.equal(violations.length, 1);
    assert.match(violations[0]?.message ?? "", /settled only at 60.000 ms/);
  });

  it("is quiet for operations that settle in time, and for those of a member that died", () => {
    const { violations, report } = collector();
    const checker = new OperationsSettle(report);
    const a = checker.track(0, "n1", 0, "propose", 100_000);
    checker.track(0, "n2", 3, "propose", 100_000);
    checker.settled(a, 100_000);
    checker.died("n2", 3);
    checker.check(1_000_000);
    assert.deepEqual(violations, []);
    assert.equal(checker.settledInTime, 1);
  });

  it("checks deadlines in deadline order, whatever order the operations came in", () => {
    const { violations, report } = collector();
    const checker = new OperationsSettle(report);
    checker.track(0, "n1", 0, "long", 900_000);
    checker.track(0, "n1", 0, "short", 100_000);
    checker.track(0, "n1", 0, "middle", 500_000);
    checker.check(600_000);
    assert.deepEqual(violations.map((v) => v.message.split(" ")[0]), ["short", "middle"]);
  });
});

describe("CheckQuorumStepDown", () => {
  const leads = (still: boolean) => () => still;

  it("fires when a leader cut off from a quorum still leads past its bound", () => {
    const { violations, report } = collector();
    const checker = new CheckQuorumStepDown(report);
    checker.cutOff(1_000, "n1", 4, 221_000);
    assert.equal(checker.due(220_000, leads(true)), false, "not before the deadline");
    assert.equal(checker.due(221_000, leads(true)), true);
    assert.equal(violations.length, 1);
    assert.match(violations[0]?.message ?? "", /leader n1 \(term 4\) was cut off from a quorum at 1.000 ms and still led/);
  });

  it("is quiet when the leader steps down, reaches a quorum again, or no longer leads by the deadline", () => {
    const { violations, report } = collector();
    const checker = new CheckQuorumStepDown(report);
    checker.cutOff(0, "n1", 4, 100);
    checker.steppedDown("n1", 4);
    assert.equal(checker.due(100, leads(true)), false);
    checker.cutOff(0, "n1", 5, 100);
    checker.reachable();
    assert.equal(checker.due(100, leads(true)), false);
    checker.cutOff(0, "n1", 6, 100);
    checker.due(100, leads(false));
    assert.deepEqual(violations, []);
    assert.equal(checker.checked, 3);
  });

  it("keeps the first deadline while the same leader stays cut off", () => {
    const { violations, report } = collector();
    const checker = new CheckQuorumStepDown(report);
    checker.cutOff(0, "n1", 4, 100);
    checker.cutOff(50, "n1", 4, 150);
    assert.equal(checker.deadline, 100);
    checker.due(100, leads(true));
    assert.equal(violations.length, 1);
  });
});

describe("PreVoteStability", () => {
  it("fires when the leader a quorum followed no longer leads in its term after a rejoin", () => {
    const { violations, report } = collector();
    const checker = new PreVoteStability(report);
    checker.rejoined(1_000, "n3", "n1", 7);
    checker.check(500_000, () => false, { leader: "n1", term: 9 });
    assert.equal(violations.length, 1);
    assert.equal(violations[0]?.checker, "pre-vote");
    assert.match(violations[0]?.message ?? "", /n3 rejoined at 1.000 ms while n1 led in term 7.*the leader was n1 in term 9/);
  });

  it("is quiet when the leader keeps leading, or when something else disturbed the window", () => {
    const { violations, report } = collector();
    const checker = new PreVoteStability(report);
    checker.rejoined(0, "n3", "n1", 7);
    checker.check(10, (leader, term) => leader === "n1" && term === 7, { leader: "n1", term: 7 });
    checker.rejoined(20, "n3", "n1", 7);
    checker.disturbed();
    checker.check(30, () => false, { leader: "n2", term: 8 });
    assert.deepEqual(violations, []);
    assert.equal(checker.checked, 1);
  });
});
