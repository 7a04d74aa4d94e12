/**
 * The balancer checked by hand-picked cases and against deliberately naive versions: the naive
 * `chooseOwner` sorts every candidate by exact rational scores (cross-multiplied, no division), and
 * the properties of `planMoves` replay its moves one by one and check each against the loads of
 * that moment.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { chooseOwner, planMoves, type Candidate, type Move } from "./balancer.ts";
import type { ResourceKey, WorkerId } from "./types.ts";

const NUM_RUNS = 500;

// ---------------------------------------------------------------------------------------------
// Helpers and naive reference versions.

function candidate(id: WorkerId, capacity: number, load: number, zone = "z"): Candidate {
  return { id, capacity, zone, load };
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Compares (loadA + 1) / capacityA with (loadB + 1) / capacityB exactly. */
function compareNextScore(loadA: number, capacityA: number, loadB: number, capacityB: number): number {
  return (loadA + 1) * capacityB - (loadB + 1) * capacityA;
}

/**
 * Sorts the zones by (zone load + 1) / zone capacity, then name; in the first, sorts the workers by
 * (load + 1) / capacity, then id.
 */
function naiveChooseOwner(candidates: readonly Candidate[]): WorkerId | null {
  if (candidates.length === 0) return null;
  const zoneNames = [...new Set(candidates.map((c) => c.zone))];
  const zoneOf = (name: string) => {
    const members = candidates.filter((c) => c.zone === name);
    return {
      name,
      load: members.reduce((sum, c) => sum + c.load, 0),
      capacity: members.reduce((sum, c) => sum + c.capacity, 0),
    };
  };
  const zones = zoneNames
    .map(zoneOf)
    .sort((a, b) => compareNextScore(a.load, a.capacity, b.load, b.capacity) || compareStrings(a.name, b.name));
  const best = zones[0]!.name;
  const workers = candidates
    .filter((c) => c.zone === best)
    .sort((a, b) => compareNextScore(a.load, a.capacity, b.load, b.capacity) || compareStrings(a.id, b.id));
  return workers[0]!.id;
}

/** `count` keys named after `worker`, in key order (zero-padded so that string order is numeric). */
function keysFor(worker: WorkerId, count: number): ResourceKey[] {
  return Array.from({ length: count }, (_, i) => `${worker}/k${String(i).padStart(4, "0")}`);
}

/** A `movable` function that lists `load` keys for every candidate. */
function allMovable(candidates: readonly Candidate[]): (worker: WorkerId) => readonly ResourceKey[] {
  const byWorker = new Map(candidates.map((c) => [c.id, keysFor(c.id, c.load)]));
  return (worker) => byWorker.get(worker) ?? [];
}

/** The loads after `moves`. */
function loadsAfter(candidates: readonly Candidate[], moves: readonly Move[]): Map<WorkerId, number> {
  const loads = new Map(candidates.map((c) => [c.id, c.load]));
  for (const move of moves) {
    loads.set(move.from, loads.get(move.from)! - 1);
    loads.set(move.to, loads.get(move.to)! + 1);
  }
  return loads;
}

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let state = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Arbitraries.

const ZONES = ["a", "b", "c"] as const;

/** 1..6 candidates with unique ids, small capacities and loads so that ties occur. */
const candidatesArb: fc.Arbitrary<Candidate[]> = fc.uniqueArray(
  fc.record({
    id: fc.constantFrom("w1", "w2", "w3", "w4", "w5", "w6", "w10"),
    capacity: fc.integer({ min: 1, max: 4 }),
    zone: fc.constantFrom(...ZONES),
    load: fc.nat({ max: 20 }),
  }),
  { selector: (c) => c.id, minLength: 1, maxLength: 6 },
);

// ---------------------------------------------------------------------------------------------

describe("chooseOwner", () => {
  it("returns null when there is no candidate", () => {
    assert.equal(chooseOwner([]), null);
  });

  it("picks the worker with the lowest (load + 1) / capacity", () => {
    const candidates = [candidate("w1", 1, 1), candidate("w2", 3, 3), candidate("w3", 2, 1)];
    // Scores: w1 2, w2 4/3, w3 1.
    assert.equal(chooseOwner(candidates), "w3");
  });

  it("scores the load after the new key, not the load before it", () => {
    // load / capacity would pick w1 (0 < 1/4); (load + 1) / capacity picks w2 (1 > 1/2).
    assert.equal(chooseOwner([candidate("w1", 1, 0), candidate("w2", 4, 1)]), "w2");
  });

  it("picks a worker of the least loaded zone relative to zone capacity, even if another zone has an emptier worker", () => {
    const candidates = [
      candidate("w1", 1, 0, "a"),
      candidate("w2", 1, 4, "a"), // zone a: (4 + 1) / 2 = 2.5
      candidate("w3", 1, 1, "b"), // zone b: (1 + 1) / 1 = 2
    ];
    assert.equal(chooseOwner(candidates), "w3");
  });

  it("weighs a zone by its total capacity", () => {
    const candidates = [
      candidate("w1", 3, 3, "a"), // zone a: 4 / 3
      candidate("w2", 1, 0, "b"),
      candidate("w3", 1, 2, "b"), // zone b: 3 / 2
    ];
    assert.equal(chooseOwner(candidates), "w1");
  });

  it("breaks a tie between zones by zone name", () => {
    const candidates = [candidate("w1", 1, 0, "b"), candidate("w2", 1, 0, "a")];
    assert.equal(chooseOwner(candidates), "w2");
    assert.equal(chooseOwner([...candidates].reverse()), "w2");
  });

  it("breaks a tie between zones with equal fractions written differently (1/3 and 2/6)", () => {
    const candidates = [candidate("w1", 6, 1, "b"), candidate("w2", 3, 0, "a")];
    assert.equal(chooseOwner(candidates), "w2");
  });

  it("breaks a tie within a zone by worker id, in string order", () => {
    const candidates = [candidate("w2", 1, 0), candidate("w10", 1, 0), candidate("w3", 1, 0)];
    assert.equal(chooseOwner(candidates), "w10");
    assert.equal(chooseOwner([...candidates].reverse()), "w10");
  });

  it("agrees with a naive sort by exact scores", () => {
    fc.assert(
      fc.property(candidatesArb, (candidates) => {
        assert.equal(chooseOwner(candidates), naiveChooseOwner(candidates));
      }),
      { numRuns: 2_000 },
    );
  });

  it("does not depend on the order of the candidates", () => {
    fc.assert(
      fc.property(candidatesArb, fc.nat(), (candidates, seed) => {
        assert.equal(chooseOwner(shuffled(candidates, seed)), chooseOwner(candidates));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("places keys one at a time in proportion to capacity (1, 2, 3), within one key", () => {
    const capacities = [1, 2, 3];
    const loads = [0, 0, 0];
    const total = capacities.reduce((a, b) => a + b, 0);
    for (let placed = 1; placed <= 600; placed++) {
      const id = chooseOwner(capacities.map((capacity, i) => candidate(`w${i + 1}`, capacity, loads[i]!)));
      assert.ok(id !== null);
      loads[Number(id.slice(1)) - 1]! += 1;
      capacities.forEach((capacity, i) => {
        const fair = (placed * capacity) / total;
        assert.ok(Math.abs(loads[i]! - fair) <= 1, `after ${placed} keys w${i + 1} has ${loads[i]}, fair ${fair}`);
      });
    }
    assert.deepEqual(loads, [100, 200, 300]);
  });

  it("keeps zone loads in proportion to zone capacity: zone a of two workers, zone b of one", () => {
    const workers = [candidate("w1", 1, 0, "a"), candidate("w2", 1, 0, "a"), candidate("w3", 1, 0, "b")];
    const loads = new Map(workers.map((w) => [w.id, 0]));
    for (let placed = 1; placed <= 300; placed++) {
      const id = chooseOwner(workers.map((w) => ({ ...w, load: loads.get(w.id)! })));
      assert.ok(id !== null);
      loads.set(id, loads.get(id)! + 1);
      const zoneA = loads.get("w1")! + loads.get("w2")!;
      const zoneB = loads.get("w3")!;
      assert.ok(Math.abs(zoneA - (placed * 2) / 3) <= 1, `after ${placed} keys zone a has ${zoneA}`);
      assert.ok(Math.abs(zoneB - placed / 3) <= 1, `after ${placed} keys zone b has ${zoneB}`);
      // Within zone a the two workers stay level too.
      assert.ok(Math.abs(loads.get("w1")! - loads.get("w2")!) <= 1);
    }
  });

  it("keeps every worker within one key of its fair share when placing from any start of equal loads", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 120 }),
        (capacities, count) => {
          const loads = capacities.map(() => 0);
          const total = capacities.reduce((a, b) => a + b, 0);
          for (let placed = 1; placed <= count; placed++) {
            const id = chooseOwner(capacities.map((capacity, i) => candidate(`w${i}`, capacity, loads[i]!)))!;
            loads[Number(id.slice(1))]! += 1;
          }
          capacities.forEach((capacity, i) => {
            // D'Hondt-style greedy placement never falls a whole key below its share.
            assert.ok(loads[i]! > (count * capacity) / total - 1, `w${i} has ${loads[i]} of ${count}`);
          });
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });
});

describe("planMoves", () => {
  it("plans nothing when movesMax is 0", () => {
    const candidates = [candidate("w1", 1, 10), candidate("w2", 1, 0)];
    assert.deepEqual(planMoves(candidates, allMovable(candidates), 0), []);
  });

  it("plans nothing for a single candidate or none", () => {
    const one = [candidate("w1", 1, 10)];
    assert.deepEqual(planMoves(one, allMovable(one), 10), []);
    assert.deepEqual(planMoves([], () => [], 10), []);
  });

  it("plans at most movesMax moves", () => {
    const candidates = [candidate("w1", 1, 10), candidate("w2", 1, 0)];
    const moves = planMoves(candidates, allMovable(candidates), 3);
    assert.equal(moves.length, 3);
    assert.deepEqual(
      moves.map((m) => m.key),
      keysFor("w1", 3),
    );
  });

  it("takes the first movable keys of the most loaded worker to the least loaded one", () => {
    const candidates = [candidate("w1", 1, 3), candidate("w2", 1, 6), candidate("w3", 1, 0)];
    const moves = planMoves(candidates, allMovable(candidates), 1);
    assert.deepEqual(moves, [{ key: "w2/k0000", from: "w2", to: "w3" }]);
  });

  it("stops once equal-capacity loads differ by at most one", () => {
    const candidates = [candidate("w1", 1, 7), candidate("w2", 1, 0)];
    const moves = planMoves(candidates, allMovable(candidates), 100);
    assert.equal(moves.length, 3);
    assert.deepEqual([...loadsAfter(candidates, moves).values()], [4, 3]);
    // Already balanced: nothing to do.
    const level = [candidate("w1", 1, 4), candidate("w2", 1, 3), candidate("w3", 1, 4)];
    assert.deepEqual(planMoves(level, allMovable(level), 100), []);
  });

  it("balances relative to capacity", () => {
    const candidates = [candidate("w1", 1, 6), candidate("w2", 2, 0)];
    const moves = planMoves(candidates, allMovable(candidates), 100);
    assert.deepEqual(Object.fromEntries(loadsAfter(candidates, moves)), { w1: 2, w2: 4 });
  });

  it("moves only movable keys, and stops when the most loaded worker has none left", () => {
    const candidates = [candidate("w1", 1, 10), candidate("w2", 1, 0)];
    const movable = (worker: WorkerId) => (worker === "w1" ? ["b", "d"] : []);
    const moves = planMoves(candidates, movable, 100);
    assert.deepEqual(moves, [
      { key: "b", from: "w1", to: "w2" },
      { key: "d", from: "w1", to: "w2" },
    ]);
  });

  it("regression: keeps moving from another overloaded worker when the most loaded one has no movable key", () => {
    // w1's load is all incoming keys (draining towards it), so it has nothing movable; w2 has ten
    // movable keys and w3 none at all. planMoves picks w1 as the most loaded (tie with w2, then
    // id order), finds no key and stops, so nothing moves.
    const candidates = [candidate("w1", 1, 10), candidate("w2", 1, 10), candidate("w3", 1, 0)];
    const movable = (worker: WorkerId) => (worker === "w2" ? keysFor("w2", 10) : []);
    const moves = planMoves(candidates, movable, 100);
    assert.ok(moves.length >= 3, `planned ${moves.length} moves`);
    for (const move of moves) assert.equal(move.from, "w2");
  });

  it("never moves a key twice, and every move narrows the gap it is taken across", () => {
    fc.assert(
      fc.property(candidatesArb, fc.nat({ max: 40 }), (candidates, movesMax) => {
        const movable = allMovable(candidates);
        const moves = planMoves(candidates, movable, movesMax);
        assert.ok(moves.length <= movesMax);
        assert.equal(new Set(moves.map((m) => m.key)).size, moves.length, "a key moved twice");
        const capacity = new Map(candidates.map((c) => [c.id, c.capacity]));
        const loads = new Map(candidates.map((c) => [c.id, c.load]));
        for (const move of moves) {
          assert.notEqual(move.from, move.to);
          assert.ok(movable(move.from).includes(move.key), `${move.key} is not a movable key of ${move.from}`);
          const ratio = (id: WorkerId) => loads.get(id)! / capacity.get(id)!;
          const nextRatio = (id: WorkerId) => (loads.get(id)! + 1) / capacity.get(id)!;
          // From a most loaded worker, to a worker that is least loaded after taking a key.
          for (const c of candidates) {
            assert.ok(ratio(move.from) >= ratio(c.id), `${move.from} is not the most loaded`);
            assert.ok(nextRatio(move.to) <= nextRatio(c.id), `${move.to} is not the least loaded`);
          }
          // The source is left no less loaded than the target becomes.
          assert.ok((loads.get(move.from)! - 1) / capacity.get(move.from)! >= nextRatio(move.to));
          loads.set(move.from, loads.get(move.from)! - 1);
          loads.set(move.to, loads.get(move.to)! + 1);
        }
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("with enough moves, leaves the load ratios within 2 / (smallest capacity) of each other", () => {
    fc.assert(
      fc.property(candidatesArb, (candidates) => {
        const total = candidates.reduce((sum, c) => sum + c.load, 0);
        const moves = planMoves(candidates, allMovable(candidates), total + 1);
        const loads = loadsAfter(candidates, moves);
        const ratios = candidates.map((c) => loads.get(c.id)! / c.capacity);
        const capacityMin = Math.min(...candidates.map((c) => c.capacity));
        const gap = Math.max(...ratios) - Math.min(...ratios);
        assert.ok(gap < 2 / capacityMin, `gap ${gap} with capacities ${candidates.map((c) => c.capacity)}`);
        // Nothing left to gain: one more move would not keep the source at or above the target.
        const again = candidates.map((c) => ({ ...c, load: loads.get(c.id)! }));
        assert.deepEqual(planMoves(again, allMovable(again), total + 1), []);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("with equal capacities and enough moves, leaves loads within one of each other", () => {
    fc.assert(
      fc.property(candidatesArb, fc.integer({ min: 1, max: 3 }), (raw, capacity) => {
        const candidates = raw.map((c) => ({ ...c, capacity }));
        const total = candidates.reduce((sum, c) => sum + c.load, 0);
        const loads = [...loadsAfter(candidates, planMoves(candidates, allMovable(candidates), total)).values()];
        assert.ok(Math.max(...loads) - Math.min(...loads) <= 1, `loads ${loads}`);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("is deterministic, whatever the order of the candidates", () => {
    fc.assert(
      fc.property(candidatesArb, fc.nat({ max: 30 }), fc.nat(), (candidates, movesMax, seed) => {
        const first = planMoves(candidates, allMovable(candidates), movesMax);
        assert.deepEqual(planMoves(candidates, allMovable(candidates), movesMax), first);
        const other = shuffled(candidates, seed);
        assert.deepEqual(planMoves(other, allMovable(other), movesMax), first);
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
