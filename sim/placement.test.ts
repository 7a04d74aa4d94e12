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

  // Seed 30, clocks allowed to drift up to 10x beyond ρ and no pauses: a worker whose clock runs
  // slow keeps believing in its lease after the leader, whose clock runs fast, has expired it and
  // granted its key to another worker. Single ownership fails; the fence still refuses every write
  // with an older epoch, so the resource's data stays safe. Found by searching seeds 1..40 with
  // these options (1 of 40 shows it).
  it("with drift beyond ρ, single ownership can fail while the fence keeps the data safe", () => {
    const options = withWorkers(30, (o) => ({
      clocks: { ...o.clocks, exceedDrift: true },
      workers: { ...o.workers, pauseMeanIntervalMs: 0 },
    }));
    const result = runSimulation(30, { options });
    const checkers = new Set(result.violations.map((v) => v.checker));
    assert.ok(checkers.has("single-ownership"), `single ownership fired: ${[...checkers].join(", ") || "nothing"}`);
    assert.ok(!checkers.has("fencing-epochs"), "the fence held");
    // With the clocks within ρ, the same seed keeps single ownership.
    const within = runSimulation(30, { options: { ...options, clocks: { ...options.clocks, exceedDrift: false } } });
    assert.deepEqual(within.violations.map((v) => v.checker), []);
  });
});
