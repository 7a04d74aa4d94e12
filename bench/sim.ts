/**
 * Simulator speed: a 5-member cluster under client load, faults off and on, at two tick lengths.
 * Prints one JSON object. Run: `npm run bench:sim` (or `node --import tsx bench/sim.ts`).
 *
 * "Speed-up" is simulated time divided by wall time on one core; the aim is 1000x for a
 * 5-member cluster under load.
 */
import { performance } from "node:perf_hooks";
import { drawOptions, type SimOptions } from "../sim/options.ts";
import { runSimulation } from "../sim/simulator.ts";

interface Scenario {
  readonly name: string;
  readonly options: SimOptions;
}

function scenario(name: string, tickMs: number, faults: boolean): Scenario {
  const base = drawOptions(1, { members: 5 });
  const simulatedMs = 60_000;
  return {
    name,
    options: {
      ...base,
      tickMs,
      heartbeatTicks: 1,
      safetyTicks: Math.round(simulatedMs / tickMs),
      // Without faults the network is lossless too, so that client load is not throttled by
      // requests waiting out their timeout.
      network: faults ? base.network : { ...base.network, lossRate: 0, duplicateRate: 0 },
      partitions: { ...base.partitions, enabled: faults },
      crashes: { ...base.crashes, enabled: faults },
      workload: { ...base.workload, clients: 8, thinkMs: 5, requestTimeoutMs: 2 * tickMs * base.electionTicks },
    },
  };
}

const scenarios = [
  scenario("5 members, 8 clients, 10 ms ticks, no faults", 10, false),
  scenario("5 members, 8 clients, 10 ms ticks, faults", 10, true),
  scenario("5 members, 8 clients, 100 ms ticks, no faults", 100, false),
  scenario("5 members, 8 clients, 100 ms ticks, faults", 100, true),
];

const results = [];
for (const { name, options } of scenarios) {
  const result = await runSimulation(1, { options, wallClock: () => performance.now() });
  const s = result.stats;
  results.push({
    name,
    simulatedMs: s.simulatedMs,
    wallMs: s.wallMs,
    speedup: s.speedup,
    eventsPerSecond: s.eventsPerSecond,
    events: s.events,
    clientOpsPerSimulatedSecond: Math.round(s.clientOps / (s.simulatedMs / 1000)),
    violations: result.violations.length,
  });
}

process.stdout.write(`${JSON.stringify({ bench: "sim", node: process.version, results }, null, 2)}\n`);
