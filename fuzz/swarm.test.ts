/**
 * The CI-bounded swarm: seeds 1..N, each drawing its own options (cluster size, which faults and
 * how often, workload, key-value or placement), run through the simulator on the real host; none
 * may report a violation. The long swarm is `npx orrery fuzz --seeds 100000`; this is the slice
 * that runs on every change.
 *
 * Bounds: `ORRERY_SWARM_SEEDS` seeds (default 200) with a safety phase of `ORRERY_SWARM_TICKS`
 * ticks (default 1500, half the simulator's default of 3000): about 95 s of one core, and every
 * kind of fault still happens (the second test checks that it does).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MEMBER_COUNTS } from "../sim/options.ts";
import { runSimulation, type SimStats } from "../sim/simulator.ts";
import { envInteger } from "./env.ts";

const SWARM_SEEDS = envInteger("ORRERY_SWARM_SEEDS", 200, 1);
const SWARM_TICKS = envInteger("ORRERY_SWARM_TICKS", 1500, 10);

/** Failing seeds listed in an assertion message, at most. */
const FAILURES_SHOWN_MAX = 20;

type Totals = Pick<
  SimStats,
  | "events"
  | "crashes"
  | "partitions"
  | "tornWrites"
  | "elections"
  | "clientOps"
  | "commits"
  | "messages"
  | "reads"
  | "leaderTransfers"
  | "snapshotsSent"
  | "snapshotsInstalled"
  | "confChanges"
  | "membersAdded"
  | "membersRetired"
  | "acquisitions"
  | "failovers"
  | "handoffs"
  | "fencedWritesRefused"
  | "memberCloses"
  | "workerFaults"
  | "scenarios"
  | "crashesAfterGrant"
  | "operationsSettled"
  | "checkQuorumChecks"
  | "preVoteChecks"
  | "routedWrites"
>;

describe(`the swarm of seeds 1..${SWARM_SEEDS} at ${SWARM_TICKS} safety ticks`, { timeout: 1_200_000 }, () => {
  const totals: Totals = {
    events: 0, crashes: 0, partitions: 0, tornWrites: 0, elections: 0, clientOps: 0, commits: 0,
    messages: 0, reads: 0, leaderTransfers: 0, snapshotsSent: 0, snapshotsInstalled: 0,
    confChanges: 0, membersAdded: 0, membersRetired: 0, acquisitions: 0, failovers: 0, handoffs: 0,
    fencedWritesRefused: 0, memberCloses: 0, workerFaults: 0, scenarios: 0, crashesAfterGrant: 0,
    operationsSettled: 0, checkQuorumChecks: 0, preVoteChecks: 0, routedWrites: 0,
  };
  const memberCounts = new Map<number, number>();
  let ran = 0;

  it("passes every checker on every seed", async (t) => {
    const failing: string[] = [];
    const started = performance.now();
    for (let seed = 1; seed <= SWARM_SEEDS; seed += 1) {
      const result = await runSimulation(seed, { overrides: { safetyTicks: SWARM_TICKS } });
      ran += 1;
      for (const key of Object.keys(totals) as (keyof Totals)[]) totals[key] += result.stats[key];
      memberCounts.set(result.options.members, (memberCounts.get(result.options.members) ?? 0) + 1);
      const first = result.violations[0];
      if (first !== undefined) {
        failing.push(`seed ${seed} (${result.violations.length} violations; first ${first.checker}: ${first.message})`);
      }
    }
    const wallMs = Math.round(performance.now() - started);
    t.diagnostic(`${ran} seeds in ${wallMs} ms; totals ${JSON.stringify(totals)}; members ${JSON.stringify(Object.fromEntries(memberCounts))}`);
    const shown = failing.slice(0, FAILURES_SHOWN_MAX);
    if (failing.length > shown.length) shown.push(`... and ${failing.length - shown.length} more`);
    assert.equal(
      failing.length,
      0,
      `${failing.length} of ${ran} seeds failed:\n  ${shown.join("\n  ")}\n` +
        `replay one with: npx orrery sim --seed <seed> --ticks ${SWARM_TICKS}`,
    );
  });

  it("exercises every kind of fault, the narrow windows, the host's API, placement and every cluster size", () => {
    // A swarm that passes because it did nothing proves nothing: these fail if the options stop
    // drawing a fault, for instance after a change to drawOptions.
    assert.ok(ran > 0, "the swarm ran first");
    assert.ok(totals.crashes > 0, "some member crashed");
    assert.ok(totals.tornWrites > 0, "some crash tore a write");
    assert.ok(totals.partitions > 0, "some partition happened");
    assert.ok(totals.reads > 0, "some gets were served by ReadIndex or lease");
    assert.ok(totals.leaderTransfers > 0, "some leader was asked to transfer leadership");
    assert.ok(totals.snapshotsSent > 0, "some leader sent a snapshot");
    assert.ok(totals.snapshotsInstalled > 0, "some member installed a snapshot");
    assert.ok(totals.confChanges > 0, "some configuration change committed");
    assert.ok(totals.membersAdded > 0, "some member joined");
    assert.ok(totals.membersRetired > 0, "some member was removed and stopped");
    assert.ok(totals.acquisitions > 0, "some key was acquired by a worker");
    assert.ok(totals.failovers > 0, "some dead worker's key failed over");
    assert.ok(totals.handoffs > 0, "some draining key was handed off");
    assert.ok(totals.fencedWritesRefused > 0, "some stale write reached the resource and was refused");
    assert.ok(totals.routedWrites > 0, "gateways routed writes to workers");
    assert.ok(totals.memberCloses > 0, "some member was closed gracefully");
    assert.ok(totals.workerFaults > 0, "some worker crashed, paused, was cut off or closed");
    assert.ok(totals.scenarios > 0, "some narrow-window scenario ran");
    assert.ok(totals.crashesAfterGrant > 0, "some member crashed right after a vote grant or an append acknowledgement");
    assert.ok(totals.operationsSettled > 0, "propose() and read() calls were checked to settle by their deadline");
    assert.ok(totals.checkQuorumChecks > 0, "some leader cut off from a quorum was checked to step down");
    assert.ok(totals.preVoteChecks > 0, "some rejoin was checked not to depose the leader");
    assert.ok(totals.elections > ran, `more elections (${totals.elections}) than seeds (${ran})`);
    assert.ok(totals.clientOps > 0, "clients ran operations");
    if (ran >= 50) {
      for (const members of MEMBER_COUNTS) assert.ok((memberCounts.get(members) ?? 0) > 0, `some run had ${members} members`);
    }
  });
});
