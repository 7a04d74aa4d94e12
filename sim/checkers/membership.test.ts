/**
 * The membership checkers (and the snapshot check of the committed log) are handed violating
 * histories and must fire, and valid ones and must not.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeConfState } from "../../lib/raft/conf.ts";
import type { ConfState, Entry } from "../../lib/raft/messages.ts";
import { ConfChangeInFlight, ConfigElectionSafety } from "./membership.ts";
import { CommittedLog, type Violation } from "./raft-safety.ts";

function entry(index: number, term: number): Entry {
  return { index, term, type: "normal", data: new TextEncoder().encode(`${index}@${term}`) };
}

function confEntry(index: number, term: number, conf: ConfState): Entry {
  return { index, term, type: "confChange", data: encodeConfState(conf) };
}

function collector(): { report: (v: Violation) => void; violations: Violation[] } {
  const violations: Violation[] = [];
  return { report: (v) => violations.push(v), violations };
}

const OLD: ConfState = { voters: ["n1", "n2", "n3"], outgoing: [], learners: [] };
const JOINT: ConfState = { voters: ["n1", "n4", "n5"], outgoing: ["n1", "n2", "n3"], learners: [] };
const NEW: ConfState = { voters: ["n1", "n4", "n5"], outgoing: [], learners: [] };

describe("one configuration change in flight", () => {
  const log = [entry(1, 1), confEntry(2, 1, JOINT), entry(3, 1), confEntry(4, 1, NEW)];

  it("fires when a leader appends a change while an earlier one is unapplied", () => {
    const { report, violations } = collector();
    new ConfChangeInFlight(report).onAppend(10, "n1", log[3] as Entry, log, 1);
    assert.equal(violations.length, 1);
    assert.equal(violations[0]?.checker, "one-conf-change-in-flight");
    assert.match(violations[0]?.message ?? "", /entry 4 while the one at 2 was not applied \(applied 1\)/);
  });

  it("accepts a change appended once the earlier one is applied, and a first change", () => {
    const { report, violations } = collector();
    const checker = new ConfChangeInFlight(report);
    checker.onAppend(10, "n1", log[3] as Entry, log, 2);
    checker.onAppend(10, "n1", log[1] as Entry, log, 0);
    assert.deepEqual(violations, []);
  });
});

describe("election safety across configuration changes", () => {
  it("fires when a leader wins with a superseded configuration's majority", () => {
    const { report, violations } = collector();
    const checker = new ConfigElectionSafety(report, OLD);
    checker.onCommitted([entry(1, 1), confEntry(2, 1, JOINT), confEntry(3, 1, NEW)]);
    // n2 and n3 form a majority of the old voters, not of the committed n1,n4,n5.
    checker.onGrant(2, "n2", "n3");
    checker.onLeader(20, 2, "n2");
    assert.equal(violations.length, 1);
    assert.equal(violations[0]?.checker, "config-election-safety");
    assert.match(violations[0]?.message ?? "", /n2 leads term 2 with votes from n2,n3, not a majority of n1,n4,n5/);
  });

  it("fires when, in a committed joint configuration, the old half's majority is missing", () => {
    const { report, violations } = collector();
    const checker = new ConfigElectionSafety(report, OLD);
    checker.onCommitted([confEntry(1, 1, JOINT)]);
    checker.onGrant(2, "n4", "n5");
    checker.onLeader(20, 2, "n4");
    assert.equal(violations.length, 1);
  });

  it("counts only grants for that candidate in that term", () => {
    const { report, violations } = collector();
    const checker = new ConfigElectionSafety(report, OLD);
    checker.onGrant(2, "n2", "n1"); // another candidate
    checker.onGrant(1, "n1", "n2"); // another term
    checker.onLeader(20, 2, "n1");
    assert.equal(violations.length, 1);
  });

  it("accepts leaders elected by a majority of the committed configuration", () => {
    const { report, violations } = collector();
    const checker = new ConfigElectionSafety(report, OLD);
    checker.onGrant(1, "n1", "n2");
    checker.onLeader(10, 1, "n1");
    checker.onCommitted([confEntry(1, 1, JOINT)]);
    checker.onGrant(2, "n1", "n2");
    checker.onLeader(20, 2, "n1"); // n1,n2 is a majority of the outgoing half
    checker.onCommitted([confEntry(2, 2, NEW)]);
    checker.onGrant(3, "n4", "n5");
    checker.onLeader(30, 3, "n4");
    assert.deepEqual(violations, []);
    assert.deepEqual(checker.committedConf, NEW);
  });

  it("keeps the grants of a low term while a cut-off minority runs its terms far ahead", () => {
    const { report, violations } = collector();
    const checker = new ConfigElectionSafety(report, OLD);
    checker.onGrant(24, "n1", "n2");
    for (let term = 25; term < 60; term += 1) checker.onGrant(term, "n4", "n5");
    checker.onGrant(24, "n1", "n3");
    checker.onLeader(10, 24, "n1");
    assert.deepEqual(violations, []);
  });

  it("ignores configuration entries it already saw, and malformed ones", () => {
    const { report } = collector();
    const checker = new ConfigElectionSafety(report, OLD);
    checker.onCommitted([confEntry(2, 1, NEW)]);
    checker.onCommitted([confEntry(2, 1, JOINT)]);
    checker.onCommitted([{ index: 3, term: 1, type: "confChange", data: new Uint8Array([1, 2]) }]);
    assert.deepEqual(checker.committedConf, NEW);
  });
});

describe("installed snapshots stand for committed entries", () => {
  it("fires for a snapshot beyond the commit index or with another term", () => {
    const { report, violations } = collector();
    const committed = new CommittedLog(report);
    committed.onCommit(1, "n1", 2, [entry(1, 1), entry(2, 2)]);
    committed.onSnapshot(2, "n2", 3, 2);
    committed.onSnapshot(3, "n3", 2, 1);
    assert.equal(violations.length, 2);
    assert.match(violations[0]?.message ?? "", /n2 installed a snapshot at 3, beyond anything committed/);
    assert.match(violations[1]?.message ?? "", /n3 installed a snapshot at 2 of term 1; the committed entry there has term 2/);
  });

  it("accepts a snapshot at a committed entry", () => {
    const { report, violations } = collector();
    const committed = new CommittedLog(report);
    committed.onCommit(1, "n1", 2, [entry(1, 1), entry(2, 2)]);
    committed.onSnapshot(2, "n2", 2, 2);
    assert.deepEqual(violations, []);
  });
});
