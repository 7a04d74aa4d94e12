/**
 * Membership configurations: every change either goes through a joint configuration (voters change)
 * or lands at once (learners only), every invalid change is refused with a ConfChangeError whose
 * reason says why, and configurations survive the trip through a `confChange` entry's bytes while
 * anything malformed decodes to null.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ConfChangeError, type ConfChangeReason } from "../errors.ts";
import {
  EMPTY_CONF,
  confMembers,
  confVoters,
  decodeConfState,
  describeConf,
  encodeConfState,
  enterConf,
  isJoint,
  isValidConf,
  isVoter,
  leaveConf,
  sameConf,
  type ConfChangeOp,
} from "./conf.ts";
import { VOTERS_MAX } from "./config.ts";
import type { ConfState, NodeId } from "./messages.ts";

const NUM_RUNS = 1_000;

function conf(voters: NodeId[], learners: NodeId[] = [], outgoing: NodeId[] = []): ConfState {
  return { voters, outgoing, learners };
}

const addVoter = (id: NodeId): ConfChangeOp => ({ kind: "addVoter", id });
const addLearner = (id: NodeId): ConfChangeOp => ({ kind: "addLearner", id });
const remove = (id: NodeId): ConfChangeOp => ({ kind: "remove", id });

/** Asserts that `run` throws a ConfChangeError with `reason`. */
function assertRefused(run: () => unknown, reason: ConfChangeReason): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(ConfChangeError.is(error), `expected a ConfChangeError, got ${String(error)}`);
    assert.ok(error instanceof ConfChangeError);
    assert.equal(error.code, "ORRERY_CONF_CHANGE");
    assert.equal(error.reason, reason, error.message);
    assert.match(error.message, new RegExp(`\\(${reason}\\)`));
    return true;
  });
}

function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function decodeJson(value: unknown): ConfState | null {
  return decodeConfState(bytes(JSON.stringify(value)));
}

// ---------------------------------------------------------------------------------------------
// Arbitraries.

const POOL: readonly NodeId[] = ["n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", "n10", "n11", "n12"];

/**
 * Ids of 1 to 256 UTF-16 code units, any of them (lone surrogates included), so that sorting and
 * the JSON encoding are both exercised beyond ASCII.
 */
const idArb: fc.Arbitrary<NodeId> = fc.oneof(
  fc.constantFrom(...POOL),
  fc.string({ unit: fc.nat({ max: 0xffff }).map((code) => String.fromCharCode(code)), minLength: 1, maxLength: 8 }),
  fc.string({ minLength: 256, maxLength: 256 }),
);

/** Sorts the way `isValidConf` compares: by UTF-16 code units. */
function sortedIds(ids: Iterable<NodeId>): NodeId[] {
  return [...new Set(ids)].sort();
}

/** A valid configuration, joint a third of the time, with learners that vote in neither half. */
const validConfArb: fc.Arbitrary<ConfState> = fc
  .record({
    voters: fc.uniqueArray(idArb, { minLength: 1, maxLength: VOTERS_MAX }),
    outgoing: fc.oneof(
      { arbitrary: fc.constant([] as NodeId[]), weight: 2 },
      { arbitrary: fc.uniqueArray(idArb, { minLength: 1, maxLength: VOTERS_MAX }), weight: 1 },
    ),
    learners: fc.uniqueArray(idArb, { maxLength: 6 }),
  })
  .map(({ voters, outgoing, learners }) => ({
    voters: sortedIds(voters),
    outgoing: sortedIds(outgoing),
    learners: sortedIds(learners.filter((id) => !voters.includes(id) && !outgoing.includes(id))),
  }));

/** A valid non-joint configuration over the small pool, the start of a change. */
const currentConfArb: fc.Arbitrary<ConfState> = fc
  .record({
    voters: fc.uniqueArray(fc.constantFrom(...POOL), { minLength: 1, maxLength: VOTERS_MAX }),
    learners: fc.subarray([...POOL]),
  })
  .map(({ voters, learners }) => conf(sortedIds(voters), sortedIds(learners.filter((id) => !voters.includes(id)))));

const opArb: fc.Arbitrary<ConfChangeOp> = fc.record({
  kind: fc.constantFrom("addVoter", "addLearner", "remove"),
  id: fc.constantFrom(...POOL),
});

// ---------------------------------------------------------------------------------------------

describe("enterConf", () => {
  const current = conf(["n1", "n2", "n3"], ["n5"]);

  it("enters a joint configuration whose outgoing half is the old voters when a voter is added", () => {
    const next = enterConf(current, [addVoter("n4")]);
    assert.deepEqual(next, conf(["n1", "n2", "n3", "n4"], ["n5"], ["n1", "n2", "n3"]));
    assert.ok(isJoint(next));
  });

  it("enters a joint configuration when a voter is removed", () => {
    const next = enterConf(current, [remove("n2")]);
    assert.deepEqual(next, conf(["n1", "n3"], ["n5"], ["n1", "n2", "n3"]));
    assert.ok(isJoint(next));
  });

  it("enters a joint configuration when one voter replaces another", () => {
    const next = enterConf(current, [remove("n1"), addVoter("n4")]);
    assert.deepEqual(next, conf(["n2", "n3", "n4"], ["n5"], ["n1", "n2", "n3"]));
  });

  it("lands at once, without a joint configuration, when only learners change", () => {
    assert.deepEqual(enterConf(current, [addLearner("n4")]), conf(["n1", "n2", "n3"], ["n4", "n5"]));
    assert.deepEqual(enterConf(current, [remove("n5")]), conf(["n1", "n2", "n3"]));
    assert.deepEqual(enterConf(current, [remove("n5"), addLearner("n6")]), conf(["n1", "n2", "n3"], ["n6"]));
  });

  it("promotes a learner to voter through a joint configuration in which it is no longer a learner", () => {
    const next = enterConf(current, [addVoter("n5")]);
    assert.deepEqual(next, conf(["n1", "n2", "n3", "n5"], [], ["n1", "n2", "n3"]));
    assert.ok(isValidConf(next));
    assert.deepEqual(leaveConf(next), conf(["n1", "n2", "n3", "n5"]));
  });

  it("sorts the resulting lists whatever the order of the operations", () => {
    const next = enterConf(conf(["n2"]), [addLearner("n9"), addVoter("n3"), addLearner("n1"), addVoter("n10")]);
    assert.deepEqual(next, conf(["n10", "n2", "n3"], ["n1", "n9"], ["n2"]));
    assert.ok(isValidConf(next));
  });

  it("does not modify the configuration it starts from", () => {
    const start = conf(["n1", "n2", "n3"], ["n5"]);
    enterConf(start, [remove("n1"), addVoter("n5"), addLearner("n6")]);
    assert.deepEqual(start, conf(["n1", "n2", "n3"], ["n5"]));
  });

  it("refuses any change while the joint configuration has not been left (pending)", () => {
    const jointConf = enterConf(current, [addVoter("n4")]);
    assertRefused(() => enterConf(jointConf, [addLearner("n6")]), "pending");
    assertRefused(() => enterConf(jointConf, []), "pending");
    assert.doesNotThrow(() => enterConf(leaveConf(jointConf), [addLearner("n6")]));
  });

  it("refuses to remove the last voter (last-voter)", () => {
    assertRefused(() => enterConf(conf(["n1"]), [remove("n1")]), "last-voter");
    assertRefused(() => enterConf(conf(["n1", "n2"], ["n3"]), [remove("n1"), remove("n2")]), "last-voter");
  });

  it("allows the last voter to be removed when another is added in the same change", () => {
    assert.deepEqual(enterConf(conf(["n1"]), [remove("n1"), addVoter("n2")]), conf(["n2"], [], ["n1"]));
  });

  it("refuses to remove a member it does not know (unknown-member)", () => {
    assertRefused(() => enterConf(current, [remove("n9")]), "unknown-member");
    assertRefused(() => enterConf(current, [addVoter("n4"), remove("n9")]), "unknown-member");
  });

  it("refuses to add a member already there in that role, or to demote a voter (already-member)", () => {
    assertRefused(() => enterConf(current, [addVoter("n1")]), "already-member");
    assertRefused(() => enterConf(current, [addLearner("n5")]), "already-member");
    assertRefused(() => enterConf(current, [addLearner("n1")]), "already-member");
  });

  it("refuses an empty change (malformed)", () => {
    assertRefused(() => enterConf(current, []), "malformed");
  });

  it("refuses a change that names a member twice, even in two different operations (malformed)", () => {
    assertRefused(() => enterConf(current, [addVoter("n4"), addVoter("n4")]), "malformed");
    assertRefused(() => enterConf(current, [remove("n1"), addLearner("n1")]), "malformed");
    assertRefused(() => enterConf(current, [addLearner("n4"), addVoter("n4")]), "malformed");
  });

  it("refuses an id that is not a non-empty string (malformed)", () => {
    for (const id of ["", 7, null, undefined, ["n4"]]) {
      assertRefused(() => enterConf(current, [{ kind: "addVoter", id } as unknown as ConfChangeOp]), "malformed");
    }
  });

  it("refuses an unknown operation (malformed)", () => {
    assertRefused(
      () => enterConf(current, [{ kind: "demote", id: "n1" } as unknown as ConfChangeOp]),
      "malformed",
    );
  });

  it(`refuses more than ${VOTERS_MAX} voters (too-many-voters), and allows exactly ${VOTERS_MAX}`, () => {
    const full = conf(POOL.slice(0, VOTERS_MAX).sort());
    assertRefused(() => enterConf(full, [addVoter("x")]), "too-many-voters");
    const almost = conf(POOL.slice(0, VOTERS_MAX - 1).sort(), ["x"]);
    const next = enterConf(almost, [addVoter("x")]);
    assert.equal(next.voters.length, VOTERS_MAX);
    assertRefused(() => enterConf(almost, [addVoter("x"), addVoter("y")]), "too-many-voters");
    // A learner does not count toward the limit.
    assert.doesNotThrow(() => enterConf(full, [addLearner("x")]));
  });

  it("returns a valid configuration or refuses with a ConfChangeError, for random changes", () => {
    fc.assert(
      fc.property(currentConfArb, fc.array(opArb, { maxLength: 5 }), (start, ops) => {
        let next: ConfState;
        try {
          next = enterConf(start, ops);
        } catch (error) {
          assert.ok(ConfChangeError.is(error), String(error));
          return;
        }
        assert.ok(isValidConf(next), describeConf(next));
        const votersChanged = next.voters.join(",") !== start.voters.join(",");
        assert.equal(isJoint(next), votersChanged);
        if (votersChanged) assert.deepEqual(next.outgoing, start.voters);
        // Every member the operations did not name keeps its role.
        const named = new Set(ops.map((op) => op.id));
        for (const id of confMembers(start).filter((member) => !named.has(member))) {
          assert.equal(next.voters.includes(id), start.voters.includes(id), id);
          assert.equal(next.learners.includes(id), start.learners.includes(id), id);
        }
        const left = leaveConf(next);
        assert.ok(isValidConf(left));
        assert.ok(!isJoint(left));
        assert.ok(sameConf(decodeConfState(encodeConfState(next)) ?? EMPTY_CONF, next));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  // An id decodeConfState would refuse must never reach the log as an undecodable entry.
  it("refuses an id longer than decodeConfState accepts (malformed)", () => {
    assertRefused(() => enterConf(current, [addLearner("x".repeat(257))]), "malformed");
  });
});

describe("leaveConf", () => {
  it("drops the outgoing half and keeps the incoming voters and the learners", () => {
    const jointConf = conf(["n1", "n2", "n4"], ["n5"], ["n1", "n2", "n3"]);
    assert.deepEqual(leaveConf(jointConf), conf(["n1", "n2", "n4"], ["n5"]));
  });

  it("makes a configuration from which the next change may start", () => {
    const start = conf(["n1", "n2", "n3"]);
    const jointConf = enterConf(start, [remove("n3")]);
    const left = leaveConf(jointConf);
    assert.ok(!isJoint(left));
    assert.deepEqual(enterConf(left, [addVoter("n3")]), conf(["n1", "n2", "n3"], [], ["n1", "n2"]));
  });

  it("leaves a non-joint configuration as it is", () => {
    fc.assert(
      fc.property(currentConfArb, (start) => assert.ok(sameConf(leaveConf(start), start))),
      { numRuns: NUM_RUNS },
    );
  });
});

describe("encodeConfState and decodeConfState", () => {
  it("round-trip every valid configuration", () => {
    fc.assert(
      fc.property(validConfArb, (original) => {
        assert.ok(isValidConf(original), describeConf(original));
        const decoded = decodeConfState(encodeConfState(original));
        assert.deepEqual(decoded, original);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("decode to null or to a valid configuration, never throwing, for random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (data) => {
        const decoded = decodeConfState(data);
        if (decoded !== null) assert.ok(isValidConf(decoded));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("refuse a valid configuration once any list of two or more ids is reversed", () => {
    fc.assert(
      fc.property(validConfArb, fc.constantFrom("voters", "outgoing", "learners"), (original, field) => {
        const list = original[field];
        fc.pre(list.length >= 2);
        assert.equal(decodeJson({ ...original, [field]: [...list].reverse() }), null);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("refuse bytes that are not UTF-8 or not JSON", () => {
    assert.equal(decodeConfState(new Uint8Array([0xff, 0xfe, 0x00])), null);
    assert.equal(decodeConfState(new Uint8Array([0x7b, 0xc3])), null);
    assert.equal(decodeConfState(new Uint8Array()), null);
    assert.equal(decodeConfState(bytes("voters=n1")), null);
    assert.equal(decodeConfState(bytes('{"voters":["n1"],"outgoing":[],"learners":[]')), null);
  });

  it("refuse JSON that is not a configuration object", () => {
    for (const value of [null, 3, "n1", true, [], [["n1"], [], []], {}]) {
      assert.equal(decodeJson(value), null, JSON.stringify(value));
    }
    assert.equal(decodeJson({ voters: ["n1"], learners: [] }), null);
    assert.equal(decodeJson({ voters: ["n1"], outgoing: [] }), null);
    assert.equal(decodeJson({ voters: "n1", outgoing: [], learners: [] }), null);
    assert.equal(decodeJson({ voters: ["n1"], outgoing: null, learners: [] }), null);
  });

  it("refuse ids that are not strings of 1 to 256 characters", () => {
    for (const id of [1, null, "", ["n2"], "x".repeat(257)]) {
      assert.equal(decodeJson({ voters: ["n1"], outgoing: [], learners: [id] }), null, JSON.stringify(id));
    }
    assert.deepEqual(decodeJson(conf(["x".repeat(256)])), conf(["x".repeat(256)]));
  });

  it("refuse unsorted lists", () => {
    assert.equal(decodeJson(conf(["n2", "n1"])), null);
    assert.equal(decodeJson(conf(["n1"], [], ["n3", "n2"])), null);
    assert.equal(decodeJson(conf(["n1"], ["n3", "n2"])), null);
  });

  it("refuse duplicate ids within a list", () => {
    assert.equal(decodeJson(conf(["n1", "n1"])), null);
    assert.equal(decodeJson(conf(["n1"], [], ["n2", "n2"])), null);
    assert.equal(decodeJson(conf(["n1"], ["n2", "n2"])), null);
  });

  it("refuse a learner that also votes, in either half", () => {
    assert.equal(decodeJson(conf(["n1", "n2"], ["n2"])), null);
    assert.equal(decodeJson(conf(["n1"], ["n2"], ["n2", "n3"])), null);
  });

  it("accept a voter that sits in both halves of a joint configuration", () => {
    const jointConf = conf(["n1", "n2"], ["n3"], ["n1", "n4"]);
    assert.deepEqual(decodeJson(jointConf), jointConf);
  });

  it("refuse a configuration without incoming voters", () => {
    assert.equal(decodeJson(conf([])), null);
    assert.equal(decodeJson(conf([], ["n1"])), null);
    assert.equal(decodeJson(conf([], [], ["n1"])), null);
    assert.equal(decodeConfState(encodeConfState(EMPTY_CONF)), null);
  });

  it(`refuse more than ${VOTERS_MAX} voters in either half`, () => {
    const tooMany = POOL.slice(0, VOTERS_MAX + 1).sort();
    assert.equal(decodeJson(conf(tooMany)), null);
    assert.equal(decodeJson(conf(["n1"], [], tooMany)), null);
  });

  it("ignore fields other than the three lists", () => {
    assert.deepEqual(decodeJson({ ...conf(["n1"]), extra: 1 }), conf(["n1"]));
  });
});

describe("configuration helpers", () => {
  const jointConf = conf(["n1", "n2", "n4"], ["n5"], ["n1", "n2", "n3"]);

  it("tell joint configurations and voters of either half apart", () => {
    assert.ok(isJoint(jointConf));
    assert.ok(!isJoint(conf(["n1"])));
    assert.ok(!isJoint(EMPTY_CONF));
    assert.deepEqual(["n1", "n3", "n4", "n5", "n6"].map((id) => isVoter(jointConf, id)), [true, true, true, false, false]);
  });

  it("list members and voters sorted, each once", () => {
    assert.deepEqual(confMembers(jointConf), ["n1", "n2", "n3", "n4", "n5"]);
    assert.deepEqual(confVoters(jointConf), ["n1", "n2", "n3", "n4"]);
    assert.deepEqual(confMembers(EMPTY_CONF), []);
  });

  it("compare configurations list by list", () => {
    assert.ok(sameConf(jointConf, conf(["n1", "n2", "n4"], ["n5"], ["n1", "n2", "n3"])));
    assert.ok(!sameConf(jointConf, leaveConf(jointConf)));
    assert.ok(!sameConf(conf(["n1"], ["n2"]), conf(["n1", "n2"])));
  });

  it("describe a configuration on one line, omitting empty halves", () => {
    assert.equal(describeConf(jointConf), "voters=n1,n2,n4 outgoing=n1,n2,n3 learners=n5");
    assert.equal(describeConf(conf(["n1", "n2"])), "voters=n1,n2");
  });
});
