/**
 * Quorum math checked against deliberately naive versions, in the manner of etcd's
 * quorum/quick_test.go: the real functions sort and count, the naive ones try every candidate
 * answer (or every way the missing votes could go), so the two are hard to get wrong the same way.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { ConfState, NodeId } from "./messages.ts";
import {
  committedIndex,
  isQuorum,
  jointCommittedIndex,
  jointIsQuorum,
  jointVoteResult,
  majoritySize,
  voteResult,
  type VoteResult,
} from "./quorum.ts";

const NUM_RUNS = 2_000;

// ---------------------------------------------------------------------------------------------
// Naive reference versions. Slow and obvious on purpose.

/** The smallest k with 2k > n: more than half. */
function naiveMajoritySize(voterCount: number): number {
  let size = 0;
  while (2 * size <= voterCount) size += 1;
  return size;
}

/**
 * The largest acknowledged index v (or 0) such that enough voters have acknowledged at least v.
 * Non-voters never enter: candidates and counts both range over `voters` only.
 */
function naiveCommittedIndex(voters: readonly NodeId[], acked: (id: NodeId) => number): number {
  let best = 0;
  for (const candidate of voters.map(acked)) {
    let count = 0;
    for (const id of voters) if (acked(id) >= candidate) count += 1;
    if (2 * count > voters.length && candidate > best) best = candidate;
  }
  return best;
}

/** Tries every completion of the missing votes: all win, all lose, or it depends. */
function naiveVoteResult(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const missing = voters.filter((id) => !votes.has(id));
  let wins = 0;
  let losses = 0;
  for (let mask = 0; mask < 2 ** missing.length; mask += 1) {
    const completed = new Map(votes);
    missing.forEach((id, bit) => completed.set(id, (mask & (1 << bit)) !== 0));
    const granted = voters.filter((id) => completed.get(id) === true).length;
    if (2 * granted > voters.length) wins += 1;
    else losses += 1;
  }
  if (losses === 0) return "won";
  if (wins === 0) return "lost";
  return "pending";
}

/** Counts active voters and compares with half. */
function naiveIsQuorum(voters: readonly NodeId[], active: (id: NodeId) => boolean): boolean {
  const count = voters.filter(active).length;
  return 2 * count > voters.length;
}

/** Whether more than half of `half` satisfies `ok`; an empty half imposes nothing. */
function naiveHalfAgrees(half: readonly NodeId[], ok: (id: NodeId) => boolean): boolean {
  if (half.length === 0) return true;
  return 2 * half.filter(ok).length > half.length;
}

/**
 * The largest index v (or 0), among every index any member acknowledged, such that both halves have
 * a majority at v or beyond. Learners' acks are candidates too, but only voters are ever counted.
 */
function naiveJointCommittedIndex(conf: ConfState, acked: (id: NodeId) => number): number {
  const members = [...conf.voters, ...conf.outgoing, ...conf.learners];
  let best = 0;
  for (const candidate of members.map(acked)) {
    const reached = (id: NodeId): boolean => acked(id) >= candidate;
    if (naiveHalfAgrees(conf.voters, reached) && naiveHalfAgrees(conf.outgoing, reached)) {
      best = Math.max(best, candidate);
    }
  }
  return best;
}

/**
 * Tries every completion of the missing votes of every voter of either half (learners are never
 * completed, nor counted): won when every completion wins both halves, lost when none does.
 */
function naiveJointVoteResult(conf: ConfState, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const missing = [...new Set([...conf.voters, ...conf.outgoing])].filter((id) => !votes.has(id));
  let wins = 0;
  let losses = 0;
  for (let mask = 0; mask < 2 ** missing.length; mask += 1) {
    const completed = new Map(votes);
    missing.forEach((id, bit) => completed.set(id, (mask & (1 << bit)) !== 0));
    const granted = (id: NodeId): boolean => completed.get(id) === true;
    if (naiveHalfAgrees(conf.voters, granted) && naiveHalfAgrees(conf.outgoing, granted)) wins += 1;
    else losses += 1;
  }
  if (losses === 0) return "won";
  if (wins === 0) return "lost";
  return "pending";
}

/** Counts each half's active voters and compares with half of it. */
function naiveJointIsQuorum(conf: ConfState, active: (id: NodeId) => boolean): boolean {
  return naiveHalfAgrees(conf.voters, active) && naiveHalfAgrees(conf.outgoing, active);
}

// ---------------------------------------------------------------------------------------------
// Arbitraries: voters drawn from a larger pool, so that acks and votes also come from non-voters.

const POOL: readonly NodeId[] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"];

/** 1..9 unique voters in random (usually unsorted) order. */
const votersArb = fc.uniqueArray(fc.constantFrom(...POOL), { minLength: 1, maxLength: 9 });

/** An ack (or none) for every member of the pool, voter or not; small values so that ties occur. */
const ackedArb = fc
  .array(fc.option(fc.nat({ max: 12 }), { nil: undefined }), {
    minLength: POOL.length,
    maxLength: POOL.length,
  })
  .map((values) => {
    const acks = new Map<NodeId, number>();
    POOL.forEach((id, i) => {
      const value = values[i];
      if (value !== undefined) acks.set(id, value);
    });
    return acks;
  });

/** A vote (or none) for every member of the pool, voter or not. */
const votesArb = fc
  .array(fc.constantFrom(true, false, undefined), { minLength: POOL.length, maxLength: POOL.length })
  .map((values) => {
    const votes = new Map<NodeId, boolean>();
    POOL.forEach((id, i) => {
      const value = values[i];
      if (value !== undefined) votes.set(id, value);
    });
    return votes;
  });

/** The lookup raft.ts uses: a member with no ack counts as 0. */
function ackLookup(acks: ReadonlyMap<NodeId, number>): (id: NodeId) => number {
  return (id) => acks.get(id) ?? 0;
}

function orders(voters: readonly NodeId[]): NodeId[][] {
  return [[...voters], [...voters].sort(), [...voters].sort().reverse()];
}

/**
 * A configuration over the pool: 1..9 incoming voters; an outgoing half that is empty a third of the
 * time and otherwise drawn independently, so that the halves overlap partly, fully or not at all;
 * and learners among the remaining members. Lists come in random order: the math must not care.
 */
const confArb: fc.Arbitrary<ConfState> = fc
  .record({
    voters: votersArb,
    outgoing: fc.oneof(
      { arbitrary: fc.constant([] as NodeId[]), weight: 1 },
      { arbitrary: votersArb, weight: 2 },
    ),
    learnerPool: fc.subarray([...POOL]),
  })
  .map(({ voters, outgoing, learnerPool }) => ({
    voters,
    outgoing,
    learners: learnerPool.filter((id) => !voters.includes(id) && !outgoing.includes(id)),
  }));

/** The configuration as given, with its lists sorted (as ConfState promises), and reversed. */
function confOrders(conf: ConfState): ConfState[] {
  const sorted = (ids: readonly NodeId[]): NodeId[] => [...ids].sort();
  const reversed = (ids: readonly NodeId[]): NodeId[] => [...ids].sort().reverse();
  return [
    conf,
    { voters: sorted(conf.voters), outgoing: sorted(conf.outgoing), learners: sorted(conf.learners) },
    { voters: reversed(conf.voters), outgoing: reversed(conf.outgoing), learners: reversed(conf.learners) },
  ];
}

/** Every member of the pool that is not a voter of either half: learners and strangers. */
function nonVoters(conf: ConfState): NodeId[] {
  return POOL.filter((id) => !conf.voters.includes(id) && !conf.outgoing.includes(id));
}

function joint(voters: NodeId[], outgoing: NodeId[], learners: NodeId[] = []): ConfState {
  return { voters, outgoing, learners };
}

// ---------------------------------------------------------------------------------------------

describe("majoritySize", () => {
  it("is more than half of the voters", () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 8, 9].map(majoritySize),
      [1, 2, 2, 3, 3, 4, 4, 5, 5],
    );
  });

  it("equals the naive version for every cluster size up to 100", () => {
    for (let n = 1; n <= 100; n += 1) assert.equal(majoritySize(n), naiveMajoritySize(n), `n = ${n}`);
  });
});

describe("committedIndex", () => {
  it("equals the naive version for random voters and acks, ignoring non-voters", () => {
    fc.assert(
      fc.property(votersArb, ackedArb, (voters, acks) => {
        const expected = naiveCommittedIndex(voters, ackLookup(acks));
        for (const order of orders(voters)) {
          assert.equal(committedIndex(order, ackLookup(acks)), expected);
        }
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("does not change when a non-voter acknowledges more", () => {
    fc.assert(
      fc.property(votersArb, ackedArb, (voters, acks) => {
        const before = committedIndex(voters, ackLookup(acks));
        const boosted = new Map(acks);
        for (const id of POOL) if (!voters.includes(id)) boosted.set(id, 1_000);
        assert.equal(committedIndex(voters, ackLookup(boosted)), before);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("commits the middle index of three voters acknowledging 5, 3 and 1", () => {
    const acks = new Map([["a", 5], ["b", 3], ["c", 1]]);
    assert.equal(committedIndex(["c", "a", "b"], ackLookup(acks)), 3);
  });

  it("needs three of four voters", () => {
    assert.equal(committedIndex(["a", "b", "c", "d"], ackLookup(new Map([["a", 5], ["b", 4], ["c", 3], ["d", 2]]))), 3);
    assert.equal(committedIndex(["a", "b", "c", "d"], ackLookup(new Map([["a", 5], ["b", 4]]))), 0);
  });

  it("needs three of five voters", () => {
    const acks = new Map([["a", 9], ["b", 7], ["c", 5], ["d", 3], ["e", 1]]);
    assert.equal(committedIndex(["e", "d", "c", "b", "a"], ackLookup(acks)), 5);
  });

  it("counts a voter that acknowledged nothing as 0", () => {
    assert.equal(committedIndex(["a", "b", "c"], ackLookup(new Map([["a", 5]]))), 0);
    assert.equal(committedIndex(["a", "b", "c"], ackLookup(new Map([["a", 5], ["b", 4]]))), 4);
  });

  it("returns the single voter's own index", () => {
    assert.equal(committedIndex(["a"], ackLookup(new Map([["a", 7]]))), 7);
  });

  it("returns Infinity for an empty voter set, as documented for joint configurations", () => {
    assert.equal(committedIndex([], () => 3), Infinity);
  });
});

describe("voteResult", () => {
  it("equals the naive enumeration of every completion of the missing votes", () => {
    fc.assert(
      fc.property(votersArb, votesArb, (voters, votes) => {
        const expected = naiveVoteResult(voters, votes);
        for (const order of orders(voters)) assert.equal(voteResult(order, votes), expected);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("ignores votes from non-voters", () => {
    const votes = new Map([["a", true], ["x", true], ["y", true]]);
    assert.equal(voteResult(["a", "b", "c"], votes), "pending");
    const rejections = new Map([["a", true], ["x", false], ["y", false]]);
    assert.equal(voteResult(["a", "b", "c"], rejections), "pending");
  });

  it("wins with two of three, and loses with two rejections of three", () => {
    assert.equal(voteResult(["a", "b", "c"], new Map([["a", true], ["c", true]])), "won");
    assert.equal(voteResult(["a", "b", "c"], new Map([["b", false], ["c", false]])), "lost");
  });

  it("stays pending with two of four granted and two missing, and loses with two rejected", () => {
    const voters = ["a", "b", "c", "d"];
    assert.equal(voteResult(voters, new Map([["a", true], ["b", true]])), "pending");
    assert.equal(
      voteResult(voters, new Map([["a", true], ["b", true], ["c", false], ["d", false]])),
      "lost",
    );
  });

  it("wins with three of five granted and loses with three of five rejected", () => {
    const voters = ["a", "b", "c", "d", "e"];
    assert.equal(voteResult(voters, new Map([["a", true], ["c", true], ["e", true]])), "won");
    assert.equal(voteResult(voters, new Map([["a", false], ["c", false], ["e", false]])), "lost");
  });

  it("wins on an empty voter set, the same convention as committedIndex's Infinity", () => {
    assert.equal(voteResult([], new Map([["a", false]])), "won");
  });
});

describe("isQuorum", () => {
  it("equals the naive count for random voters and active sets, ignoring non-voters", () => {
    fc.assert(
      fc.property(votersArb, fc.subarray([...POOL]), (voters, activeIds) => {
        const active = new Set(activeIds);
        const expected = naiveIsQuorum(voters, (id) => active.has(id));
        for (const order of orders(voters)) {
          assert.equal(isQuorum(order, (id) => active.has(id)), expected);
        }
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("needs three of four active voters", () => {
    const voters = ["a", "b", "c", "d"];
    assert.equal(isQuorum(voters, (id) => id === "a" || id === "b"), false);
    assert.equal(isQuorum(voters, (id) => id !== "d"), true);
  });

  it("does not count active non-voters", () => {
    assert.equal(isQuorum(["a", "b", "c"], (id) => id === "a" || id === "x" || id === "y"), false);
  });

  it("holds for an empty voter set, the same convention as committedIndex's Infinity", () => {
    assert.equal(isQuorum([], () => false), true);
  });
});

describe("jointCommittedIndex", () => {
  it("equals the naive version for random joint configurations and acks", () => {
    fc.assert(
      fc.property(confArb, ackedArb, (conf, acks) => {
        const expected = naiveJointCommittedIndex(conf, ackLookup(acks));
        for (const order of confOrders(conf)) {
          assert.equal(jointCommittedIndex(order, ackLookup(acks)), expected);
        }
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("does not change when learners and non-members acknowledge far ahead", () => {
    fc.assert(
      fc.property(confArb, ackedArb, (conf, acks) => {
        const before = jointCommittedIndex(conf, ackLookup(acks));
        const boosted = new Map(acks);
        for (const id of nonVoters(conf)) boosted.set(id, 1_000);
        assert.equal(jointCommittedIndex(conf, ackLookup(boosted)), before);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("equals committedIndex of the voters when the outgoing half is empty", () => {
    fc.assert(
      fc.property(confArb, ackedArb, (conf, acks) => {
        const simple = { ...conf, outgoing: [] };
        assert.equal(jointCommittedIndex(simple, ackLookup(acks)), committedIndex(conf.voters, ackLookup(acks)));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("is the lower of the two halves, whichever half is called incoming", () => {
    fc.assert(
      fc.property(confArb, ackedArb, (conf, acks) => {
        const index = jointCommittedIndex(conf, ackLookup(acks));
        if (conf.outgoing.length === 0) return;
        const swapped = { ...conf, voters: conf.outgoing, outgoing: conf.voters };
        assert.equal(jointCommittedIndex(swapped, ackLookup(acks)), index);
        assert.ok(index <= committedIndex(conf.voters, ackLookup(acks)));
        assert.ok(index <= committedIndex(conf.outgoing, ackLookup(acks)));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("waits for the outgoing majority even when the incoming majority is ahead", () => {
    const acks = new Map([["a", 9], ["b", 9], ["c", 9], ["d", 2], ["e", 1]]);
    // Incoming a,b,c has 9; outgoing c,d,e has only c at 9, and its majority (c, d) at 2.
    assert.equal(jointCommittedIndex(joint(["a", "b", "c"], ["c", "d", "e"]), ackLookup(acks)), 2);
  });

  it("does not let a learner that acknowledged everything complete a majority", () => {
    const acks = new Map([["a", 7], ["l", 100]]);
    assert.equal(jointCommittedIndex(joint(["a", "b", "c"], [], ["l"]), ackLookup(acks)), 0);
    assert.equal(jointCommittedIndex(joint(["a", "b"], ["a", "c"], ["l"]), ackLookup(acks)), 0);
  });

  it("counts a voter missing from the acks as 0 in whichever half it sits", () => {
    const acks = new Map([["a", 5], ["b", 5], ["c", 5]]);
    // Outgoing b,d,e: d and e acknowledged nothing, so the outgoing majority is at 0.
    assert.equal(jointCommittedIndex(joint(["a", "b", "c"], ["b", "d", "e"]), ackLookup(acks)), 0);
    assert.equal(jointCommittedIndex(joint(["a", "b", "c"], ["b", "c", "e"]), ackLookup(acks)), 5);
  });

  it("commits nothing under a configuration with no voter in either half", () => {
    assert.equal(jointCommittedIndex(joint([], [], ["l"]), () => 4), 0);
  });
});

describe("jointVoteResult", () => {
  it("equals the naive enumeration of every completion of both halves' missing votes", () => {
    fc.assert(
      fc.property(confArb, votesArb, (conf, votes) => {
        const expected = naiveJointVoteResult(conf, votes);
        for (const order of confOrders(conf)) assert.equal(jointVoteResult(order, votes), expected);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("ignores votes from learners and non-members, granted or rejected", () => {
    fc.assert(
      fc.property(confArb, votesArb, (conf, votes) => {
        const expected = jointVoteResult(conf, votes);
        for (const granted of [true, false]) {
          const swayed = new Map(votes);
          for (const id of nonVoters(conf)) swayed.set(id, granted);
          assert.equal(jointVoteResult(conf, swayed), expected);
        }
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("equals voteResult of the voters when the outgoing half is empty", () => {
    fc.assert(
      fc.property(confArb, votesArb, (conf, votes) => {
        assert.equal(jointVoteResult({ ...conf, outgoing: [] }, votes), voteResult(conf.voters, votes));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("loses when the outgoing half rejects although the incoming half won", () => {
    const votes = new Map([["a", true], ["b", true], ["d", false], ["e", false]]);
    assert.equal(voteResult(["a", "b", "c"], votes), "won");
    assert.equal(jointVoteResult(joint(["a", "b", "c"], ["c", "d", "e"]), votes), "lost");
  });

  it("stays pending while the outgoing half is undecided although the incoming half won", () => {
    const votes = new Map([["a", true], ["b", true], ["d", false]]);
    assert.equal(jointVoteResult(joint(["a", "b", "c"], ["c", "d", "e"]), votes), "pending");
  });

  it("wins once a vote shared by both halves completes both majorities", () => {
    const votes = new Map([["a", true], ["c", true], ["d", true]]);
    assert.equal(jointVoteResult(joint(["a", "b", "c"], ["c", "d", "e"]), votes), "won");
  });

  it("does not let learners' grants win an election", () => {
    const votes = new Map([["a", true], ["l", true], ["m", true]]);
    assert.equal(jointVoteResult(joint(["a", "b", "c"], [], ["l", "m"]), votes), "pending");
    const allVoters = new Map([["a", false], ["b", false], ["l", true], ["m", true]]);
    assert.equal(jointVoteResult(joint(["a", "b", "c"], [], ["l", "m"]), allVoters), "lost");
  });
});

describe("jointIsQuorum", () => {
  it("equals the naive count of each half for random configurations and active sets", () => {
    fc.assert(
      fc.property(confArb, fc.subarray([...POOL]), (conf, activeIds) => {
        const active = new Set(activeIds);
        const expected = naiveJointIsQuorum(conf, (id) => active.has(id));
        for (const order of confOrders(conf)) {
          assert.equal(jointIsQuorum(order, (id) => active.has(id)), expected);
        }
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("does not change when every learner and non-member becomes active", () => {
    fc.assert(
      fc.property(confArb, fc.subarray([...POOL]), (conf, activeIds) => {
        const active = new Set(activeIds);
        const expected = jointIsQuorum(conf, (id) => active.has(id));
        const everyone = new Set([...activeIds, ...nonVoters(conf)]);
        assert.equal(jointIsQuorum(conf, (id) => everyone.has(id)), expected);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("equals isQuorum of the voters when the outgoing half is empty", () => {
    fc.assert(
      fc.property(confArb, fc.subarray([...POOL]), (conf, activeIds) => {
        const active = (id: NodeId): boolean => activeIds.includes(id);
        assert.equal(jointIsQuorum({ ...conf, outgoing: [] }, active), isQuorum(conf.voters, active));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("needs a majority of the outgoing half too", () => {
    const conf = joint(["a", "b", "c"], ["c", "d", "e"], ["l"]);
    assert.equal(jointIsQuorum(conf, (id) => ["a", "b", "c", "l"].includes(id)), false);
    assert.equal(jointIsQuorum(conf, (id) => ["a", "c", "d"].includes(id)), true);
  });
});
