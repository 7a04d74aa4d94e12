/**
 * Every checker is handed a violating history and must fire, and a valid one and must not.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Entry } from "../../lib/raft/messages.ts";
import {
  CommittedLog,
  DurableAcks,
  ElectionSafety,
  LogMatching,
  checkLiveness,
  type Violation,
} from "./raft-safety.ts";

function entry(index: number, term: number, text = `${index}@${term}`): Entry {
  return { index, term, type: "normal", data: new TextEncoder().encode(text) };
}

function log(...terms: number[]): Entry[] {
  return terms.map((term, i) => entry(i + 1, term));
}

function collector(): { report: (v: Violation) => void; violations: Violation[] } {
  const violations: Violation[] = [];
  return { report: (v) => violations.push(v), violations };
}

describe("election safety", () => {
  it("fires when two members lead the same term", () => {
    const { report, violations } = collector();
    const checker = new ElectionSafety(report);
    checker.onLeader(1, 3, "n1");
    checker.onLeader(2, 3, "n2");
    assert.equal(violations.length, 1);
    assert.match(violations[0]!.message, /two leaders in term 3: n1 and n2/);
  });

  it("accepts one leader per term, repeated announcements and later terms", () => {
    const { report, violations } = collector();
    const checker = new ElectionSafety(report);
    checker.onLeader(1, 3, "n1");
    checker.onLeader(2, 3, "n1");
    checker.onLeader(3, 4, "n2");
    assert.deepEqual(violations, []);
    assert.equal(checker.elections, 2);
  });
});

describe("log matching", () => {
  it("fires when two logs share an (index, term) but differ before it", () => {
    const { report, violations } = collector();
    const a = log(1, 1, 2);
    const b = [entry(1, 1), entry(2, 1, "something else"), entry(3, 2)];
    new LogMatching(report).check(0, new Map([["n1", a], ["n2", b]]));
    assert.equal(violations.length, 1);
    assert.match(violations[0]!.message, /differ at index 2/);
  });

  it("fires when the same (index, term) holds different data", () => {
    const { report, violations } = collector();
    new LogMatching(report).check(0, new Map([["n1", [entry(1, 1, "x")]], ["n2", [entry(1, 1, "y")]]]));
    assert.equal(violations.length, 1);
  });

  it("accepts logs that diverge only after their last common (index, term)", () => {
    const { report, violations } = collector();
    // Figure 7 style: a shared prefix, then different terms.
    new LogMatching(report).check(0, new Map([["n1", log(1, 1, 4, 4)], ["n2", log(1, 1, 2, 2, 3)], ["n3", log(1)]]));
    assert.deepEqual(violations, []);
  });
});

describe("state machine safety and leader completeness", () => {
  it("fires when a member commits another entry at an index already committed", () => {
    const { report, violations } = collector();
    const committed = new CommittedLog(report);
    committed.onCommit(1, "n1", 2, log(1, 1));
    committed.onCommit(2, "n2", 2, [entry(1, 1), entry(2, 2)]);
    assert.equal(violations.length, 1);
    assert.equal(violations[0]!.checker, "state-machine-safety");
  });

  it("fires when a member applies an entry that differs from the committed one", () => {
    const { report, violations } = collector();
    const committed = new CommittedLog(report);
    committed.onCommit(1, "n1", 1, [entry(1, 1, "a")]);
    committed.onApply(2, "n2", entry(1, 1, "b"));
    assert.equal(violations.length, 1);
  });

  it("fires when a member applies an index nobody committed", () => {
    const { report, violations } = collector();
    new CommittedLog(report).onApply(1, "n1", entry(1, 1));
    assert.equal(violations.length, 1);
  });

  it("fires when a new leader lacks a committed entry", () => {
    const { report, violations } = collector();
    const committed = new CommittedLog(report);
    committed.onCommit(1, "n1", 3, log(1, 1, 2));
    committed.onLeader(2, 3, "n2", log(1, 1));
    assert.equal(violations.length, 1);
    assert.equal(violations[0]!.checker, "leader-completeness");
  });

  it("accepts leaders and members that hold the committed prefix", () => {
    const { report, violations } = collector();
    const committed = new CommittedLog(report);
    const shared = log(1, 1, 2);
    committed.onCommit(1, "n1", 2, shared);
    committed.onCommit(2, "n2", 3, [...shared]);
    committed.onApply(3, "n3", shared[0]!);
    committed.onLeader(4, 3, "n3", [...shared, entry(4, 3)]);
    committed.onRestart("n2");
    committed.onCommit(5, "n2", 3, shared);
    assert.deepEqual(violations, []);
    assert.equal(committed.commitIndex, 3);
  });
});

describe("acknowledged writes survive", () => {
  it("fires when an acknowledged command is missing from a member's committed log", () => {
    const { report, violations } = collector();
    const acks = new DurableAcks(report);
    acks.onAck(1000, "1:1");
    acks.onAck(2000, "1:2");
    acks.check(3000, "n2", new Set(["1:1"]));
    assert.equal(violations.length, 1);
    assert.match(violations[0]!.message, /1:2/);
  });

  it("accepts logs holding every acknowledged command", () => {
    const { report, violations } = collector();
    const acks = new DurableAcks(report);
    acks.onAck(1000, "1:1");
    acks.check(3000, "n1", new Set(["1:1", "2:7"]));
    assert.deepEqual(violations, []);
  });
});

describe("liveness bound", () => {
  const base = { healedAt: 1_000_000, boundUs: 500_000 };

  it("fires when no leader emerges within the bound", () => {
    const violations = checkLiveness({ ...base, leaderAt: null, opsDoneAt: 1_100_000, convergedAt: null });
    assert.ok(violations.some((v) => /leader/.test(v.message)));
  });

  it("fires when operations finish or members converge too late", () => {
    const violations = checkLiveness({ ...base, leaderAt: 1_100_000, opsDoneAt: 1_600_000, convergedAt: 1_600_001 });
    assert.equal(violations.length, 2);
    assert.ok(violations.every((v) => v.checker === "liveness"));
  });

  it("accepts recovery within the bound", () => {
    assert.deepEqual(checkLiveness({ ...base, leaderAt: 1_100_000, opsDoneAt: 1_200_000, convergedAt: 1_500_000 }), []);
  });
});
