/**
 * The placement checkers are handed violating histories and must fire, and valid ones and must
 * not. Times are µs of simulated true time. The last block is a synthetic history of clock drift
 * beyond ρ: leases fail (two owners at once) while fencing still keeps the data safe.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { AssertionFailure } from "../../lib/assert.ts";
import { planMoves } from "../../lib/placement/balancer.ts";
import { PlacementTable } from "../../lib/placement/table.ts";
import type { PlacementCommand } from "../../lib/placement/types.ts";
import {
  FENCING_KEYS_MAX,
  FailoverBound,
  FencedResource,
  FencingEpochs,
  SingleOwnership,
  TABLE_PROBLEMS_MAX,
  TableIntegrity,
  checkBalance,
  failoverBoundUs,
  type PlacementTableView,
} from "./placement.ts";
import type { Violation } from "./raft-safety.ts";

function collector(): { report: (v: Violation) => void; violations: Violation[] } {
  const violations: Violation[] = [];
  return { report: (v) => violations.push(v), violations };
}

const MS = 1000;

describe("single ownership", () => {
  it("fires when two workers serve one key at the same instant, naming both, their epochs and times", () => {
    const { report, violations } = collector();
    const checker = new SingleOwnership(report);
    checker.onServeStart(0, "w1", "/k", 3);
    checker.onServeStart(500 * MS, "w2", "/k", 7);
    checker.onServeEnd(1200 * MS, "w1", "/k");
    assert.equal(violations.length, 1);
    assert.equal(violations[0]!.checker, "single-ownership");
    assert.equal(violations[0]!.t, 500 * MS);
    assert.match(violations[0]!.message, /two owners of \/k: w1 \(epoch 3, since 0\.000 ms\) and w2 \(epoch 7, since 500\.000 ms\)/);
    assert.equal(checker.overlaps, 1);
  });

  it("fires for an overlap with an interval still open, once time moves on", () => {
    const { report, violations } = collector();
    const checker = new SingleOwnership(report);
    checker.onServeStart(0, "w1", "/k", 3);
    checker.onServeStart(10, "w2", "/k", 7);
    assert.deepEqual(violations, [], "not yet: w1 might stop at this very instant");
    checker.settle(11);
    assert.equal(violations.length, 1);
    checker.settle(20);
    assert.equal(violations.length, 1, "each overlap is reported once");
  });

  it("fires when the new owner starts first and the old one announces the key later", () => {
    const { report, violations } = collector();
    const checker = new SingleOwnership(report);
    checker.onServeStart(0, "w2", "/k", 7);
    checker.onServeStart(10, "w1", "/k", 3);
    checker.onServeEnd(20, "w2", "/k");
    assert.equal(violations.length, 1);
    assert.match(violations[0]!.message, /w2 \(epoch 7.*\) and w1 \(epoch 3/);
  });

  it("reports each pair when three workers hold one key", () => {
    const { report, violations } = collector();
    const checker = new SingleOwnership(report);
    checker.onServeStart(0, "w1", "/k", 1);
    checker.onServeStart(5, "w2", "/k", 2);
    checker.onServeStart(9, "w3", "/k", 3);
    checker.settle(10);
    assert.equal(violations.length, 3);
  });

  it("accepts a handover at one instant, whichever of the two events comes first", () => {
    for (const endFirst of [true, false]) {
      const { report, violations } = collector();
      const checker = new SingleOwnership(report);
      checker.onServeStart(0, "w1", "/k", 3);
      if (endFirst) checker.onServeEnd(100, "w1", "/k");
      checker.onServeStart(100, "w2", "/k", 7);
      if (!endFirst) checker.onServeEnd(100, "w1", "/k");
      checker.settle(200);
      assert.deepEqual(violations, [], `end ${endFirst ? "before" : "after"} start`);
      assert.equal(checker.openIntervals, 1);
    }
  });

  it("treats a re-announcement with a new epoch as the same interval", () => {
    const { report, violations } = collector();
    const checker = new SingleOwnership(report);
    checker.onServeStart(0, "w1", "/k", 3);
    checker.onServeStart(10, "w1", "/k", 9);
    checker.onServeStart(20, "w1", "/k", 9);
    checker.settle(30);
    assert.equal(violations.length, 0);
    assert.equal(checker.openIntervals, 1);
    // The epochs it went through appear when it does overlap.
    checker.onServeStart(40, "w2", "/k", 12);
    checker.settle(50);
    assert.match(violations[0]!.message, /w1 \(epoch 3\.\.9, since 0\.000 ms\)/);
  });

  it("ends every interval of a crashed worker", () => {
    const { report, violations } = collector();
    const checker = new SingleOwnership(report);
    checker.onServeStart(0, "w1", "/a", 1);
    checker.onServeStart(0, "w1", "/b", 2);
    checker.onWorkerCrash(100, "w1");
    checker.onServeStart(100, "w2", "/a", 5);
    checker.onServeStart(150, "w3", "/b", 6);
    checker.settle(200);
    assert.deepEqual(violations, []);
    assert.equal(checker.openIntervals, 2);
  });

  it("keeps keys apart, ignores ends of intervals never started, and keeps nothing for closed ones", () => {
    const { report, violations } = collector();
    const checker = new SingleOwnership(report);
    checker.onServeStart(0, "w1", "/a", 1);
    checker.onServeStart(0, "w2", "/b", 2);
    checker.onServeEnd(5, "w3", "/a");
    checker.onServeEnd(6, "w1", "/a");
    checker.onServeEnd(6, "w2", "/b");
    checker.settle(10);
    assert.deepEqual(violations, []);
    assert.equal(checker.openIntervals, 0);
  });

  it("asserts that events come in time order", () => {
    const checker = new SingleOwnership(() => {});
    checker.onServeStart(10, "w1", "/k", 1);
    assert.throws(() => checker.onServeEnd(9, "w1", "/k"), AssertionFailure);
  });
});

describe("fenced resource", () => {
  it("accepts the highest epoch seen or an equal one, refuses a lower one", () => {
    const resource = new FencedResource();
    assert.deepEqual(resource.write("/k", 5), { key: "/k", epoch: 5, accepted: true, fenceBefore: null });
    assert.equal(resource.write("/k", 5).accepted, true);
    assert.deepEqual(resource.write("/k", 3), { key: "/k", epoch: 3, accepted: false, fenceBefore: 5 });
    assert.equal(resource.write("/k", 9).accepted, true);
    assert.equal(resource.write("/other", 1).accepted, true, "fences are per key");
    assert.equal(resource.fenceOf("/k"), 9);
    assert.equal(resource.fenceOf("/none"), null);
    assert.equal(resource.accepted, 4);
    assert.equal(resource.refused, 1);
  });

  it("never forgets a fence: a key beyond keysMax is an assertion", () => {
    const resource = new FencedResource(2);
    resource.write("/a", 1);
    resource.write("/b", 1);
    resource.write("/a", 2);
    assert.throws(() => resource.write("/c", 1), AssertionFailure);
  });
});

describe("fencing epochs", () => {
  it("fires when a key's grant epoch does not increase", () => {
    const { report, violations } = collector();
    const checker = new FencingEpochs(report);
    checker.onGrant(1, "/k", "w1", 5);
    checker.onGrant(2, "/k", "w2", 5);
    checker.onGrant(3, "/k", "w3", 4);
    assert.equal(violations.length, 2);
    assert.equal(violations[0]!.checker, "fencing-epochs");
    assert.match(violations[0]!.message, /\/k granted to w2 at epoch 5, not above its previous grant to w1 at epoch 5/);
    assert.match(violations[1]!.message, /granted to w3 at epoch 4, not above its previous grant to w2 at epoch 5/);
  });

  it("accepts increasing grants per key, independent keys, and an exact repeat", () => {
    const { report, violations } = collector();
    const checker = new FencingEpochs(report);
    checker.onGrant(1, "/a", "w1", 5);
    checker.onGrant(1, "/b", "w2", 2);
    checker.onGrant(2, "/a", "w2", 8);
    checker.onGrant(3, "/a", "w2", 8);
    checker.onGrant(4, "/a", "w1", 11);
    assert.deepEqual(violations, []);
  });

  it("fires when the resource accepts a write below an epoch it accepted", () => {
    const { report, violations } = collector();
    const checker = new FencingEpochs(report);
    checker.onWrite(1, "/k", "w2", 8, true);
    checker.onWrite(2, "/k", "w1", 5, true);
    assert.equal(violations.length, 1);
    assert.match(violations[0]!.message, /\/k accepted a write from w1 at epoch 5 after accepting epoch 8/);
  });

  it("fires on a broken fence: a refusal at or above the highest accepted epoch", () => {
    const { report, violations } = collector();
    const checker = new FencingEpochs(report);
    checker.onWrite(1, "/k", "w1", 3, false);
    checker.onWrite(2, "/k", "w1", 3, true);
    checker.onWrite(3, "/k", "w1", 3, false);
    assert.equal(violations.length, 2);
    assert.match(violations[0]!.message, /broken fence: \/k refused a write from w1 at epoch 3, highest accepted none/);
    assert.match(violations[1]!.message, /highest accepted 3/);
  });

  it("fires when a write carries the latest grant's epoch but comes from another worker", () => {
    const { report, violations } = collector();
    const checker = new FencingEpochs(report);
    checker.onGrant(1, "/k", "w2", 8);
    checker.onWrite(2, "/k", "w1", 8, true);
    assert.equal(violations.length, 1);
    assert.match(violations[0]!.message, /epoch 8, which was granted to w2/);
  });

  it("accepts what a FencedResource does with an old and a new owner's interleaved writes", () => {
    const { report, violations } = collector();
    const checker = new FencingEpochs(report);
    const resource = new FencedResource();
    const write = (t: number, worker: string, epoch: number) => {
      const result = resource.write("/k", epoch);
      checker.onWrite(t, "/k", worker, epoch, result.accepted);
    };
    checker.onGrant(0, "/k", "w1", 3);
    write(1, "w1", 3);
    write(2, "w1", 3);
    checker.onGrant(3, "/k", "w2", 7);
    write(4, "w1", 3);
    write(5, "w2", 7);
    write(6, "w1", 3);
    assert.deepEqual(violations, []);
    assert.equal(resource.refused, 1, "only the stale write after the new owner's was refused");
  });

  it("fires when a resource without a fence accepts the stale owner's write", () => {
    const { report, violations } = collector();
    const checker = new FencingEpochs(report);
    checker.onWrite(1, "/k", "w2", 7, true);
    checker.onWrite(2, "/k", "w1", 3, true); // an unfenced store takes anything
    assert.equal(violations.length, 1);
  });

  it(`remembers at most FENCING_KEYS_MAX (${FENCING_KEYS_MAX}) keys, forgetting the least recently touched`, () => {
    const { report, violations } = collector();
    const checker = new FencingEpochs(report);
    checker.onGrant(0, "/first", "w1", 10);
    for (let i = 0; i < FENCING_KEYS_MAX; i += 1) checker.onGrant(1, `/k${i}`, "w1", 1);
    assert.equal(checker.size, FENCING_KEYS_MAX);
    checker.onGrant(2, "/first", "w2", 5); // forgotten, so checked as a first grant
    checker.onGrant(2, `/k${FENCING_KEYS_MAX - 1}`, "w2", 1); // remembered
    assert.equal(violations.length, 1);
  });
});

describe("failover bound", () => {
  const settings = {
    leaseMs: 1000,
    clockDriftMax: 0.01,
    electionTimeoutMaxMs: 300,
    heartbeatMs: 50,
    renewalIntervalMs: 200,
    messageDelayMaxMs: 10,
  };

  it("states the bound: L(1+ρ), an election timeout, two heartbeats and a renewal interval on the slowest clock, plus round trips", () => {
    const k = 1 / (1 - 0.01);
    // election 300k + 4δ; expiry 1000·1.01·k; noticed 50k; commit 2·2δ; learned (200 + 50)k + 4δ.
    const expectedMs = (300 + 1010 + 50 + 250) * k + 12 * 10;
    assert.equal(failoverBoundUs(settings), Math.ceil(expectedMs * 1000));
    assert.equal(failoverBoundUs(settings), 1_746_263);
    assert.equal(
      failoverBoundUs({ ...settings, clockDriftMax: 0, messageDelayMaxMs: 0 }),
      (1000 + 300 + 50 + 200 + 50) * 1000,
    );
    assert.equal(failoverBoundUs({ ...settings, commitRoundTripsMax: 3 }) - failoverBoundUs(settings), 2 * 10 * 1000);
    assert.ok(failoverBoundUs({ ...settings, clockDriftMax: 0.05 }) > failoverBoundUs(settings));
    assert.throws(() => failoverBoundUs({ ...settings, clockDriftMax: 0.5 }), AssertionFailure);
    assert.throws(() => failoverBoundUs({ ...settings, heartbeatMs: -1 }), AssertionFailure);
  });

  it("fires when a dead worker's key has no new owner within the bound while healthy", () => {
    const { report, violations } = collector();
    const checker = new FailoverBound(report, 1000);
    checker.onClusterHealthy(0);
    checker.onWorkerDead(500, "w1", ["/a", "/b"]);
    checker.onGrant(900, "/a", "w2", 12);
    checker.check(1500);
    assert.equal(violations.length, 0, "exactly at the deadline is in time");
    checker.check(1501);
    assert.equal(violations.length, 1);
    assert.equal(violations[0]!.checker, "failover-bound");
    assert.match(violations[0]!.message, /\/b of w1 \(dead at 0\.500 ms\) has no new owner at 1\.501 ms; bound 1\.000 ms from 0\.500 ms/);
    checker.check(5000);
    assert.equal(violations.length, 1, "each key is reported once");
    assert.equal(checker.pending, 0);
  });

  it("fires when the grant itself comes too late while healthy", () => {
    const { report, violations } = collector();
    const checker = new FailoverBound(report, 1000);
    checker.onClusterHealthy(0);
    checker.onWorkerDead(0, "w1", ["/a"]);
    checker.onGrant(2000, "/a", "w2", 12);
    assert.equal(violations.length, 1);
    assert.match(violations[0]!.message, /was granted to w2 at epoch 12 only at 2\.000 ms/);
  });

  it("counts only healthy time, from the later of the death and the start of the healthy period", () => {
    const { report, violations } = collector();
    const checker = new FailoverBound(report, 1000);
    checker.onWorkerDead(0, "w1", ["/a"]);
    checker.check(50_000); // unhealthy from the start
    checker.onClusterHealthy(60_000);
    checker.onClusterUnhealthy(60_500);
    checker.check(70_000); // unhealthy again
    checker.onClusterHealthy(80_000);
    checker.check(81_000);
    assert.deepEqual(violations, []);
    checker.onGrant(80_700, "/a", "w2", 30);
    assert.deepEqual(violations, []);
    assert.equal(checker.failoverUsMax, 700);
    assert.equal(checker.failoverSinceDeathUsMax, 80_700);
    assert.equal(checker.failovers, 1);
  });

  it("fires after healing when the deadline passes", () => {
    const { report, violations } = collector();
    const checker = new FailoverBound(report, 1000);
    checker.onWorkerDead(0, "w1", ["/a"]);
    checker.onClusterHealthy(60_000);
    checker.check(61_001);
    assert.equal(violations.length, 1);
  });

  it("ignores a grant back to the dead worker, and stops waiting for a key that left the table", () => {
    const { report, violations } = collector();
    const checker = new FailoverBound(report, 1000);
    checker.onClusterHealthy(0);
    checker.onWorkerDead(0, "w1", ["/a", "/b"]);
    checker.onGrant(10, "/a", "w1", 5);
    checker.onKeyDropped("/b");
    assert.equal(checker.pending, 1);
    checker.check(2000);
    assert.equal(violations.length, 1);
    assert.match(violations[0]!.message, /\/a of w1/);
  });
});

function tableWith(commands: readonly PlacementCommand[]): PlacementTable {
  const table = new PlacementTable();
  commands.forEach((command, i) => table.apply(command, i + 1));
  return table;
}

const join = (worker: string, zone = "z"): PlacementCommand => ({ type: "join", worker, address: `${worker}:1`, capacity: 1, zone });

/** A hand-made table view: `listed` worker -> keys, `assigned` key -> assignment. */
function view(
  listed: Record<string, readonly { key: string; epoch: number; state: "active" | "draining" }[]>,
  assigned: Record<string, { owner: string; epoch: number; state: "active" | "draining"; next: string | null }>,
): PlacementTableView {
  return {
    workers: () => Object.keys(listed).map((id) => ({ id })),
    keysOf: (worker) => listed[worker] ?? [],
    assignment: (key) => assigned[key],
    size: Object.keys(assigned).length,
  };
}

describe("table integrity", () => {
  it("accepts a real table through joins, acquires, a drain, a release and an expiry", () => {
    const { report, violations } = collector();
    const checker = new TableIntegrity(report);
    const table = tableWith([
      join("w1", "a"),
      join("w2", "b"),
      join("w3", "a"),
      ...["/1", "/2", "/3", "/4", "/5", "/6"].map((key): PlacementCommand => ({ type: "acquire", key })),
      { type: "drain", worker: "w2" },
      { type: "expire", worker: "w3" },
    ]);
    assert.ok(table.drainingKeys().length > 0, "the history leaves some keys draining");
    checker.check(0, table, 6);
    const key = table.keysOf("w1")[0]!;
    table.apply({ type: "release", worker: "w1", key: key.key, epoch: key.epoch }, table.appliedIndex + 1);
    checker.check(1, table, key.state === "active" ? 5 : 6);
    assert.deepEqual(violations, []);
  });

  it("fires when a key is listed under two workers", () => {
    const { report, violations } = collector();
    const table = view(
      { w1: [{ key: "/k", epoch: 3, state: "active" }], w2: [{ key: "/k", epoch: 3, state: "active" }] },
      { "/k": { owner: "w1", epoch: 3, state: "active", next: null } },
    );
    new TableIntegrity(report).check(7, table, 1);
    assert.equal(violations.length, 1);
    assert.equal(violations[0]!.checker, "table-integrity");
    assert.equal(violations[0]!.t, 7);
    assert.match(violations[0]!.message, /\/k is listed under both w1 and w2/);
    assert.match(violations[0]!.message, /listed under w2 at epoch 3 \(active\) but assigned to w1/);
  });

  it("fires when an owner is not a known worker", () => {
    const { report, violations } = collector();
    const table = view({ w1: [] }, { "/k": { owner: "ghost", epoch: 3, state: "active", next: null } });
    new TableIntegrity(report).check(0, table, 1);
    assert.match(violations[0]!.message, /the table holds 1 keys but its workers list 0/);
  });

  it("fires when a draining key's next owner is unknown, missing or itself, or an active key has one", () => {
    const { report, violations } = collector();
    const table = view(
      {
        w1: [
          { key: "/a", epoch: 1, state: "draining" },
          { key: "/b", epoch: 2, state: "draining" },
          { key: "/c", epoch: 3, state: "draining" },
          { key: "/d", epoch: 4, state: "active" },
        ],
      },
      {
        "/a": { owner: "w1", epoch: 1, state: "draining", next: "ghost" },
        "/b": { owner: "w1", epoch: 2, state: "draining", next: null },
        "/c": { owner: "w1", epoch: 3, state: "draining", next: "w1" },
        "/d": { owner: "w1", epoch: 4, state: "active", next: "w1" },
      },
    );
    new TableIntegrity(report).check(0, table, 4);
    const message = violations[0]!.message;
    assert.match(message, /\/a drains from w1 to ghost/);
    assert.match(message, /\/b drains from w1 to nobody/);
    assert.match(message, /\/c drains from w1 to w1/);
    assert.match(message, /\/d is active with a next owner w1/);
  });

  it("fires when the key count differs from what the history implies", () => {
    const { report, violations } = collector();
    const table = tableWith([join("w1"), { type: "acquire", key: "/a" }, { type: "acquire", key: "/b" }]);
    new TableIntegrity(report).check(0, table, 3);
    assert.equal(violations.length, 1);
    assert.match(violations[0]!.message, /the table holds 2 keys; the history implies 3/);
  });

  it(`lists at most TABLE_PROBLEMS_MAX (${TABLE_PROBLEMS_MAX}) problems in one violation`, () => {
    const { report, violations } = collector();
    const keys = Array.from({ length: TABLE_PROBLEMS_MAX + 3 }, (_, i) => `/k${i}`);
    const table = view(
      { w1: keys.map((key) => ({ key, epoch: 1, state: "active" as const })) },
      Object.fromEntries(keys.map((key) => [key, { owner: "w1", epoch: 2, state: "active" as const, next: null }])),
    );
    new TableIntegrity(report).check(0, table, keys.length);
    assert.equal(violations.length, 1);
    assert.match(violations[0]!.message, /; and 3 more$/);
  });
});

describe("balance", () => {
  it("accepts loads in proportion to capacity, a single worker, and no workers", () => {
    const workers = [
      { id: "w1", capacity: 1, load: 10 },
      { id: "w2", capacity: 2, load: 20 },
      { id: "w3", capacity: 3, load: 30 },
    ];
    assert.deepEqual(checkBalance(0, workers, 0), []);
    assert.deepEqual(checkBalance(0, [{ id: "w1", capacity: 5, load: 1000 }], 0), []);
    assert.deepEqual(checkBalance(0, [], 0), []);
  });

  it("fires for every worker further than 2·capacity/smallest capacity + slack from its share", () => {
    const workers = [
      { id: "w1", capacity: 1, load: 0 },
      { id: "w2", capacity: 1, load: 0 },
      { id: "w3", capacity: 1, load: 9 },
    ];
    const violations = checkBalance(42, workers, 0);
    assert.equal(violations.length, 3);
    assert.equal(violations[2]!.checker, "balance");
    assert.equal(violations[2]!.t, 42);
    assert.match(violations[2]!.message, /w3 \(capacity 1\) holds 9 keys; its share of 9 is 3\.00, allowed ±2\.00/);
  });

  it("allows exactly the bound, and slack widens it", () => {
    const at = [
      { id: "w1", capacity: 1, load: 1 },
      { id: "w2", capacity: 1, load: 1 },
      { id: "w3", capacity: 1, load: 4 },
    ];
    assert.deepEqual(checkBalance(0, at, 0), [], "4 is 2 above the share of 2");
    const beyond = [
      { id: "w1", capacity: 1, load: 0 },
      { id: "w2", capacity: 1, load: 1 },
      { id: "w3", capacity: 1, load: 5 },
    ];
    assert.equal(checkBalance(0, beyond, 0).length, 1);
    assert.deepEqual(checkBalance(0, beyond, 1), []);
  });

  it("scales the bound with capacity", () => {
    // Shares of 60 keys over capacities 1, 1, 4 are 10, 10, 40; w3 may stray by 2·4/1 = 8.
    const workers = [
      { id: "w1", capacity: 1, load: 12 },
      { id: "w2", capacity: 1, load: 12 },
      { id: "w3", capacity: 4, load: 36 },
    ];
    assert.deepEqual(checkBalance(0, workers, 0), []);
    const skewed = [{ id: "w1", capacity: 1, load: 0 }, { id: "w3", capacity: 4, load: 60 }];
    assert.match(checkBalance(0, skewed, 0)[1]!.message, /w3 \(capacity 4\) holds 60 keys; its share of 60 is 48\.00, allowed ±8\.00/);
  });

  it("holds, with no slack, wherever the balancer's rebalancing comes to rest", () => {
    const workersArb = fc.uniqueArray(
      fc.record({ id: fc.constantFrom<string>("w1", "w2", "w3", "w4", "w5", "w6"), capacity: fc.integer({ min: 1, max: 4 }), load: fc.nat({ max: 30 }) }),
      { selector: (w) => w.id, minLength: 1 },
    );
    fc.assert(
      fc.property(workersArb, (workers) => {
        const candidates = workers.map((w) => ({ ...w, zone: "z" }));
        const keys = new Map(workers.map((w) => [w.id, Array.from({ length: w.load }, (_, i) => `/${w.id}/${i}`)]));
        const total = workers.reduce((sum, w) => sum + w.load, 0);
        const loads = new Map(workers.map((w) => [w.id, w.load]));
        for (const move of planMoves(candidates, (id) => keys.get(id) ?? [], total + 1)) {
          loads.set(move.from, loads.get(move.from)! - 1);
          loads.set(move.to, loads.get(move.to)! + 1);
        }
        const rested = workers.map((w) => ({ ...w, load: loads.get(w.id)! }));
        assert.deepEqual(checkBalance(0, rested, 0), []);
      }),
      { numRuns: 500 },
    );
  });
});

describe("clock drift beyond ρ: leases fail, fencing holds", () => {
  // A synthetic history standing in for a simulator run with drift beyond ρ (the lead will add the
  // simulator-driven version). w1's clock runs 30% slow, far beyond ρ = 1%: it believes its lease of
  // 1000 ms lasts until 1300 ms of true time. The leader, whose clock is right, expires w1 at
  // 1010 ms and grants /k to w2 at epoch 9, which starts serving at 1020 ms. From 1020 to 1300 ms
  // both believe they own /k: the lease guarantee is gone. Yet every write goes through the fence,
  // which has seen epoch 9 and refuses w1's epoch 5: the data stays safe.
  it("shows single ownership firing while fencing epochs hold", () => {
    const { report, violations } = collector();
    const ownership = new SingleOwnership(report);
    const fencing = new FencingEpochs(report);
    const resource = new FencedResource();
    const write = (t: number, worker: string, epoch: number): boolean => {
      const { accepted } = resource.write("/k", epoch);
      fencing.onWrite(t, "/k", worker, epoch, accepted);
      return accepted;
    };

    fencing.onGrant(0, "/k", "w1", 5);
    ownership.onServeStart(10 * MS, "w1", "/k", 5);
    assert.equal(write(500 * MS, "w1", 5), true);
    fencing.onGrant(1010 * MS, "/k", "w2", 9);
    ownership.onServeStart(1020 * MS, "w2", "/k", 9);
    assert.equal(write(1100 * MS, "w2", 9), true);
    assert.equal(write(1200 * MS, "w1", 5), false, "the stale owner's write is refused");
    assert.equal(write(1250 * MS, "w2", 9), true);
    ownership.onServeEnd(1300 * MS, "w1", "/k");
    ownership.settle(2000 * MS);

    assert.deepEqual(
      violations.map((v) => v.checker),
      ["single-ownership"],
      "only the lease guarantee broke; fencing kept every accepted write's epoch from going back",
    );
    assert.equal(violations[0]!.t, 1020 * MS);
    assert.equal(resource.fenceOf("/k"), 9);
  });
});
