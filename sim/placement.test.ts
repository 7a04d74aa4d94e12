/**
 * Placement in the simulator: workers under leases, clients routed to owners, a fenced resource.
 * The swarm runs it on half its seeds; these tests pin what a reader would want shown on purpose.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { drawOptions, type SimOptions } from "./options.ts";
import { runSimulation } from "./simulator.ts";

/** Seed `seed`'s options with workers on and `change` applied. */
function withWorkers(seed: number, change: (o: SimOptions) => Partial<SimOptions> = () => ({})): SimOptions {
  const o = drawOptions(seed);
  const base: SimOptions = { ...o, safetyTicks: 1500, workers: { ...o.workers, enabled: true } };
  return { ...base, ...change(base) };
}

describe("placement in the simulator", () => {
  it("acquires keys, fails over dead workers' keys and hands off drained ones, with every checker quiet", () => {
    let acquisitions = 0;
    let failovers = 0;
    let handoffs = 0;
    for (let seed = 1; seed <= 6; seed += 1) {
      const result = runSimulation(seed, { options: withWorkers(seed) });
      assert.deepEqual(result.violations.map((v) => `${v.checker}: ${v.message}`), [], `seed ${seed}`);
      acquisitions += result.stats.acquisitions;
      failovers += result.stats.failovers;
      handoffs += result.stats.handoffs;
    }
    assert.ok(acquisitions > 0 && failovers > 0 && handoffs > 0, JSON.stringify({ acquisitions, failovers, handoffs }));
  });

  // Some clocks drift up to 40 times ρ (so a worker's clock may run 40% slow and the leader's
  // 40% fast), and workers are often cut off from the members: a cut-off worker keeps believing in
  // its lease, on its slow clock, after the leader, on its fast clock, has expired it and granted
  // its keys to others. Single ownership fails; the fence still refuses every write with an older
  // epoch, so the resource's data stays safe. Seed 31 shows both (59 overlaps, 3 refused writes).
  it("with drift beyond ρ, single ownership can fail while the fence keeps the data safe", () => {
    const options = withWorkers(31, (o) => ({
      clocks: { ...o.clocks, exceedDrift: true, exceedFactorMax: 40 },
      workers: { ...o.workers, pauseMeanIntervalMs: 0, cutMeanIntervalMs: 300, faultDurationMsMax: 3 * o.workers.leaseMs },
    }));
    const result = runSimulation(31, { options });
    // Beyond ρ the lease promise does not hold, so overlaps are counted, not violations; every
    // checker that does not depend on clocks — the fence among them — must still hold.
    assert.ok(result.stats.ownershipOverlapsBeyondDrift > 0, "two workers believed they owned one key at once");
    assert.deepEqual(result.violations.map((v) => `${v.checker}: ${v.message}`), [], "the fence held, and everything else");
    assert.ok(result.stats.fencedWritesRefused > 0, "a former owner's write reached the resource and was refused");
    // With the clocks within ρ, the same seed keeps single ownership.
    const within = runSimulation(31, { options: { ...options, clocks: { ...options.clocks, exceedDrift: false } } });
    assert.deepEqual(within.violations.map((v) => v.checker), []);
  });
});
