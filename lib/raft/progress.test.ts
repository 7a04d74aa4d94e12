/**
 * The leader's per-follower bookkeeping: the inflight window (checked against a naive array model)
 * and the probe/replicate state machine of Progress, after etcd-io/raft's tracker package.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { AssertionFailure } from "../assert.ts";
import { Inflights, Progress } from "./progress.ts";

const NUM_RUNS = 500;

/** Adds appends `first..last` of `bytes` each. */
function fill(inflights: Inflights, first: number, last: number, bytes = 1): void {
  for (let index = first; index <= last; index += 1) inflights.add(index, bytes);
}

/** A progress in replicate that matches up to `match`, with a window of `messagesMax`/`bytesMax`. */
function replicating(match: number, messagesMax = 4, bytesMax = 1_000): Progress {
  const progress = new Progress(match + 1, messagesMax, bytesMax);
  progress.maybeUpdate(match);
  progress.becomeReplicate();
  return progress;
}

/** A progress in probe with `match` and `next`, not paused. */
function probing(match: number, next: number): Progress {
  const progress = new Progress(next, 4, 1_000);
  progress.maybeUpdate(match);
  progress.next = next;
  progress.paused = false;
  return progress;
}

// ---------------------------------------------------------------------------------------------

describe("Inflights", () => {
  it("starts empty and not full", () => {
    const inflights = new Inflights(3, 100);
    assert.equal(inflights.count(), 0);
    assert.equal(inflights.full(), false);
  });

  it("fills by count and frees the acknowledged prefix", () => {
    const inflights = new Inflights(3, 100);
    fill(inflights, 1, 2);
    assert.equal(inflights.full(), false);
    inflights.add(3, 1);
    assert.equal(inflights.full(), true);
    inflights.freeLE(1);
    assert.equal(inflights.count(), 2);
    assert.equal(inflights.full(), false);
  });

  it("fills by bytes once the bytes in flight reach bytesMax", () => {
    const inflights = new Inflights(100, 10);
    inflights.add(1, 4);
    assert.equal(inflights.full(), false);
    inflights.add(2, 5);
    assert.equal(inflights.full(), false);
    inflights.add(3, 1);
    assert.equal(inflights.full(), true);
    inflights.freeLE(1);
    assert.equal(inflights.full(), false);
  });

  it("takes one append larger than bytesMax into an empty window, then is full", () => {
    const inflights = new Inflights(100, 10);
    inflights.add(7, 50);
    assert.equal(inflights.full(), true);
    inflights.freeLE(7);
    assert.equal(inflights.full(), false);
    assert.equal(inflights.count(), 0);
  });

  it("frees every append at or below the index and nothing above", () => {
    const inflights = new Inflights(10, 1_000);
    inflights.add(3, 1);
    inflights.add(6, 1);
    inflights.add(9, 1);
    inflights.freeLE(2);
    assert.equal(inflights.count(), 3);
    inflights.freeLE(7);
    assert.equal(inflights.count(), 1);
    inflights.freeLE(100);
    assert.equal(inflights.count(), 0);
  });

  it("asserts when an append is added to a window full by count", () => {
    const inflights = new Inflights(2, 100);
    fill(inflights, 1, 2);
    assert.throws(() => inflights.add(3, 1), AssertionFailure);
  });

  it("asserts when an append is added to a window full by bytes", () => {
    const inflights = new Inflights(100, 10);
    inflights.add(1, 10);
    assert.throws(() => inflights.add(2, 1), AssertionFailure);
  });

  it("asserts when an added index does not increase", () => {
    const inflights = new Inflights(10, 100);
    inflights.add(5, 1);
    assert.throws(() => inflights.add(5, 1), AssertionFailure);
    assert.throws(() => inflights.add(4, 1), AssertionFailure);
    assert.equal(inflights.count(), 1);
  });

  it("empties on reset", () => {
    const inflights = new Inflights(2, 10);
    inflights.add(1, 10);
    inflights.reset();
    assert.equal(inflights.count(), 0);
    assert.equal(inflights.full(), false);
    inflights.add(1, 1);
    assert.equal(inflights.count(), 1);
  });

  it("asserts that the window holds at least one message", () => {
    assert.throws(() => new Inflights(0, 10), AssertionFailure);
  });

  it("behaves like a naive array of appends under any sequence of operations", () => {
    type Op =
      | { kind: "add"; step: number; bytes: number }
      | { kind: "freeLE"; index: number }
      | { kind: "reset" };
    // A step of -1 or 0 from the last added index provokes the "indexes increase" assertion.
    const addArb = fc.record({
      kind: fc.constant("add" as const),
      step: fc.integer({ min: -1, max: 3 }),
      bytes: fc.nat({ max: 8 }),
    });
    const freeArb = fc.record({ kind: fc.constant("freeLE" as const), index: fc.nat({ max: 60 }) });
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      { weight: 6, arbitrary: addArb },
      { weight: 3, arbitrary: freeArb },
      { weight: 1, arbitrary: fc.constant({ kind: "reset" as const }) },
    );
    const messagesMaxArb = fc.integer({ min: 1, max: 6 });
    const bytesMaxArb = fc.integer({ min: 1, max: 24 });
    fc.assert(
      fc.property(messagesMaxArb, bytesMaxArb, fc.array(opArb, { maxLength: 60 }), (messagesMax, bytesMax, ops) => {
        const inflights = new Inflights(messagesMax, bytesMax);
        let model: Array<{ index: number; bytes: number }> = [];
        let lastAdded = 0;
        const modelFull = (): boolean =>
          model.length >= messagesMax || model.reduce((sum, a) => sum + a.bytes, 0) >= bytesMax;
        for (const op of ops) {
          if (op.kind === "add") {
            const index = lastAdded + op.step;
            const last = model[model.length - 1];
            const allowed = !modelFull() && (last === undefined || index > last.index);
            if (allowed) {
              inflights.add(index, op.bytes);
              model.push({ index, bytes: op.bytes });
              lastAdded = index;
            } else {
              assert.throws(() => inflights.add(index, op.bytes), AssertionFailure);
            }
          } else if (op.kind === "freeLE") {
            inflights.freeLE(op.index);
            model = model.filter((a) => a.index > op.index);
          } else {
            inflights.reset();
            model = [];
          }
          assert.equal(inflights.count(), model.length);
          assert.equal(inflights.full(), modelFull());
        }
      }),
      { numRuns: NUM_RUNS },
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe("Progress in probe", () => {
  it("starts probing at next with nothing matched", () => {
    const progress = new Progress(5, 4, 100);
    assert.equal(progress.state, "probe");
    assert.equal(progress.match, 0);
    assert.equal(progress.next, 5);
    assert.equal(progress.isPaused(), false);
    assert.equal(progress.isThrottled(), false);
  });

  it("asserts that next starts at 1 or later", () => {
    assert.throws(() => new Progress(0, 4, 100), AssertionFailure);
  });

  it("pauses after one send without moving next or filling the window", () => {
    const progress = new Progress(5, 4, 100);
    progress.sentEntries(7, 30);
    assert.equal(progress.isPaused(), true);
    assert.equal(progress.next, 5);
    assert.equal(progress.inflights.count(), 0);
    assert.equal(progress.isThrottled(), false);
  });

  it("unpauses when an acknowledgement raises match", () => {
    const progress = new Progress(5, 4, 100);
    progress.sentEntries(7, 30);
    assert.equal(progress.maybeUpdate(4), true);
    assert.equal(progress.isPaused(), false);
    assert.equal(progress.match, 4);
    assert.equal(progress.next, 5);
  });

  it("stays paused on an acknowledgement that is not news", () => {
    const progress = probing(4, 5);
    progress.sentEntries(5, 1);
    assert.equal(progress.maybeUpdate(3), false);
    assert.equal(progress.isPaused(), true);
  });

  it("unpauses when the latest probe is rejected", () => {
    const progress = probing(0, 10);
    progress.sentEntries(10, 1);
    assert.equal(progress.maybeDecreaseTo(9, 9), true);
    assert.equal(progress.isPaused(), false);
  });

  it("ignores a rejection of anything but the latest probe", () => {
    const progress = probing(2, 10);
    progress.sentEntries(10, 1);
    for (const rejected of [8, 10, 2, 0]) {
      assert.equal(progress.maybeDecreaseTo(rejected, 0), false, `rejected ${rejected}`);
      assert.equal(progress.next, 10);
      assert.equal(progress.isPaused(), true);
    }
  });

  it("moves next to just past the follower's hint", () => {
    const progress = probing(2, 10);
    assert.equal(progress.maybeDecreaseTo(9, 5), true);
    assert.equal(progress.next, 6);
  });

  it("moves next back by at least one when the hint is at or past the rejected index", () => {
    const progress = probing(2, 10);
    assert.equal(progress.maybeDecreaseTo(9, 20), true);
    assert.equal(progress.next, 9);
  });

  it("never moves next to or below match", () => {
    const progress = probing(4, 10);
    assert.equal(progress.maybeDecreaseTo(9, 0), true);
    assert.equal(progress.next, 5);
  });

  it("sets next to max(min(rejected, hint + 1), match + 1) for any latest-probe rejection", () => {
    fc.assert(
      fc.property(fc.nat({ max: 50 }), fc.integer({ min: 1, max: 50 }), fc.nat({ max: 120 }), (match, gap, hint) => {
        const next = match + gap;
        const progress = probing(match, next);
        const rejected = next - 1;
        const expected = Math.max(Math.min(rejected, hint + 1), match + 1);
        // A rejection that cannot move next (the member rejects at its own match) is not acted on.
        assert.equal(progress.maybeDecreaseTo(rejected, hint), expected !== next);
        assert.equal(progress.next, expected);
        assert.equal(progress.match, match);
        assert.ok(progress.match < progress.next);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("does not re-probe at once a member that rejects its own match point", () => {
    const progress = probing(5, 6);
    progress.sentEntries(5, 0);
    assert.equal(progress.isPaused(), true);
    assert.equal(progress.maybeDecreaseTo(5, 4), false);
    assert.equal(progress.next, 6);
    assert.equal(progress.isPaused(), true, "it waits for a heartbeat answer to unpause");
  });
});

describe("Progress in replicate", () => {
  it("streams appends, advancing next, until the window is full", () => {
    const progress = replicating(5, 3);
    progress.sentEntries(7, 10);
    assert.equal(progress.next, 8);
    assert.equal(progress.isPaused(), false);
    progress.sentEntries(9, 10);
    assert.equal(progress.isPaused(), false);
    assert.equal(progress.isThrottled(), false);
    progress.sentEntries(10, 10);
    assert.equal(progress.next, 11);
    assert.equal(progress.inflights.count(), 3);
    assert.equal(progress.isPaused(), true);
    assert.equal(progress.isThrottled(), true);
  });

  it("pauses when the window is full by bytes", () => {
    const progress = replicating(0, 100, 50);
    progress.sentEntries(3, 30);
    assert.equal(progress.isPaused(), false);
    progress.sentEntries(6, 20);
    assert.equal(progress.isPaused(), true);
    assert.equal(progress.isThrottled(), true);
  });

  it("does not fill the window with an empty append", () => {
    const progress = replicating(5, 1);
    progress.sentEntries(5, 0);
    assert.equal(progress.inflights.count(), 0);
    assert.equal(progress.next, 6);
    assert.equal(progress.isPaused(), false);
  });

  it("stays throttled after a heartbeat answer unpauses it, until the window frees", () => {
    const progress = replicating(0, 1);
    progress.sentEntries(4, 1);
    progress.paused = false; // what a heartbeat response does
    assert.equal(progress.isThrottled(), true);
    progress.sentEntries(4, 0); // the empty append a throttled leader sends
    assert.equal(progress.isPaused(), true);
    progress.maybeUpdate(4);
    progress.inflights.freeLE(4);
    assert.equal(progress.isThrottled(), false);
  });

  it("ignores a rejection at or below match", () => {
    const progress = replicating(5);
    progress.sentEntries(8, 1);
    for (const rejected of [5, 3, 0]) {
      assert.equal(progress.maybeDecreaseTo(rejected, 0), false);
      assert.equal(progress.next, 9);
      assert.equal(progress.inflights.count(), 1);
    }
  });

  it("falls back to match + 1 on a rejection above match, whatever the hint", () => {
    const progress = replicating(5);
    progress.sentEntries(8, 1);
    assert.equal(progress.maybeDecreaseTo(7, 2), true);
    assert.equal(progress.next, 6);
  });
});

describe("Progress state changes", () => {
  it("resets next to match + 1 and clears the window on becomeProbe", () => {
    const progress = replicating(5, 2);
    progress.sentEntries(7, 1);
    progress.sentEntries(9, 1);
    assert.equal(progress.isPaused(), true);
    progress.becomeProbe();
    assert.equal(progress.state, "probe");
    assert.equal(progress.next, 6);
    assert.equal(progress.inflights.count(), 0);
    assert.equal(progress.isPaused(), false);
    assert.equal(progress.isThrottled(), false);
  });

  it("resets next to match + 1 and clears the window on becomeReplicate", () => {
    const progress = replicating(5, 2);
    progress.sentEntries(7, 1);
    progress.sentEntries(9, 1);
    progress.becomeReplicate();
    assert.equal(progress.state, "replicate");
    assert.equal(progress.next, 6);
    assert.equal(progress.inflights.count(), 0);
    assert.equal(progress.isPaused(), false);
  });

  it("resets a paused probe on becomeReplicate", () => {
    const progress = probing(3, 8);
    progress.sentEntries(8, 1);
    progress.becomeReplicate();
    assert.equal(progress.next, 4);
    assert.equal(progress.isPaused(), false);
  });
});

describe("Progress.maybeUpdate", () => {
  it("never lowers match and never lowers next", () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 40 }), { minLength: 1, maxLength: 30 }), (indexes) => {
        const progress = new Progress(1, 4, 100);
        let highest = 0;
        for (const index of indexes) {
          const before = { match: progress.match, next: progress.next };
          const updated = progress.maybeUpdate(index);
          assert.equal(updated, index > before.match);
          highest = Math.max(highest, index);
          assert.equal(progress.match, highest);
          assert.equal(progress.next, Math.max(before.next, index + 1));
          assert.ok(progress.match < progress.next);
        }
      }),
      { numRuns: NUM_RUNS },
    );
  });
});

describe("Progress under a leader's sequence of calls", () => {
  it("keeps match < next, an empty window in probe, and never lowers match", () => {
    type Op =
      | { kind: "send"; entries: number; bytes: number }
      | { kind: "ack"; back: number }
      | { kind: "reject"; back: number; hint: number }
      | { kind: "heartbeat" }
      | { kind: "probe" }
      | { kind: "replicate" };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constant("send" as const), entries: fc.nat({ max: 3 }), bytes: fc.nat({ max: 10 }) }),
      fc.record({ kind: fc.constant("ack" as const), back: fc.nat({ max: 4 }) }),
      fc.record({ kind: fc.constant("reject" as const), back: fc.nat({ max: 4 }), hint: fc.nat({ max: 30 }) }),
      fc.constant({ kind: "heartbeat" as const }),
      fc.constant({ kind: "probe" as const }),
      fc.constant({ kind: "replicate" as const }),
    );
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 80 }), (ops) => {
        const progress = new Progress(1, 3, 20);
        for (const op of ops) {
          const matchBefore = progress.match;
          // Drive it the way raft.ts does: nothing while paused, only empty appends while throttled.
          if (op.kind === "send" && !progress.isPaused()) {
            const entries = progress.isThrottled() ? 0 : op.entries;
            progress.sentEntries(progress.next - 1 + entries, entries === 0 ? 0 : op.bytes);
          } else if (op.kind === "ack") {
            const index = Math.max(0, progress.next - 1 - op.back);
            if (progress.maybeUpdate(index)) {
              if (progress.state === "probe") progress.becomeReplicate();
              else progress.inflights.freeLE(index);
            }
          } else if (op.kind === "reject") {
            const rejected = Math.max(0, progress.next - 1 - op.back);
            if (progress.maybeDecreaseTo(rejected, op.hint) && progress.state === "replicate") {
              progress.becomeProbe();
            }
          } else if (op.kind === "heartbeat") {
            progress.paused = false;
          } else if (op.kind === "probe") {
            progress.becomeProbe();
          } else if (op.kind === "replicate") {
            progress.becomeReplicate();
          }
          assert.ok(progress.match < progress.next, `match ${progress.match} < next ${progress.next}`);
          assert.ok(progress.match >= matchBefore, "match never decreases");
          if (progress.state === "probe") assert.equal(progress.inflights.count(), 0);
          if (progress.isThrottled()) assert.equal(progress.state, "replicate");
        }
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
