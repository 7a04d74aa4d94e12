/**
 * Mutation tests: a fuzzer that never fails proves little until it is shown to catch a real bug.
 * Each test removes one rule — of the Raft core, or of the host the simulator runs (the Ready loop,
 * proposals and reads, the placement leader, the worker agent) — by patching a prototype (see
 * mutations.ts; neither carries a bug switch), runs the seeded swarm until the first seed that
 * reports a violation, restores the rule, and runs that seed again to show the violation came from
 * the mutation.
 *
 * Budget: each mutation must be found within {@link SEEDS_MAX} seeds of 1500 safety ticks. Measured
 * with the simulator running the real host, the first failing seeds are listed beside each test.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { drawOptions, type SimOptions } from "../sim/options.ts";
import { runSimulation } from "../sim/simulator.ts";
import {
  ackBeforePersist,
  commitWithoutCurrentTermRule,
  figureEightOptions,
  jointVotesIncomingOnly,
  leaderSkipsElectionWait,
  membershipOptions,
  proposalResolvedByAnyEntry,
  readBeforeApply,
  renewalWithoutReadIndex,
  voteWithoutUpToDateCheck,
  withMutation,
  workerServesAfterLease,
  type Mutation,
} from "./mutations.ts";

/** The fuzzer finds each mutation within this many seeds. */
const SEEDS_MAX = 200;

/** Safety ticks per run: half the default, so a run takes a fraction of a second. */
const SAFETY_TICKS = 1500;

/** Time each test may take, whatever the machine is doing (the expected time is seconds). */
const TEST_TIMEOUT_MS = 600_000;

/** The first seed whose run reported a violation. */
interface Finding {
  readonly seed: number;
  readonly checker: string;
  readonly message: string;
  readonly wallMs: number;
}

/** Runs seeds 1..`seedsMax` with `optionsFor(seed)` and stops at the first violation. */
async function firstViolation(seedsMax: number, optionsFor: (seed: number) => SimOptions): Promise<Finding | null> {
  const started = performance.now();
  for (let seed = 1; seed <= seedsMax; seed += 1) {
    const result = await runSimulation(seed, { options: optionsFor(seed) });
    const first = result.violations[0];
    if (first !== undefined) return { seed, checker: first.checker, message: first.message, wallMs: Math.round(performance.now() - started) };
  }
  return null;
}

/** The swarm's own options for `seed`, with a shorter safety phase; key-value or placement runs only. */
function swarm(kind: "kv" | "placement"): (seed: number) => SimOptions {
  return (seed) => {
    const drawn = drawOptions(seed, { safetyTicks: SAFETY_TICKS });
    return { ...drawn, workers: { ...drawn.workers, enabled: kind === "placement" } };
  };
}

/** A key-value corner (`figureEightOptions`, `membershipOptions`) with workers off. */
function keyValue(corner: (seed: number, ticks: number) => SimOptions): (seed: number) => SimOptions {
  return (seed) => {
    const options = corner(seed, SAFETY_TICKS);
    return { ...options, workers: { ...options.workers, enabled: false } };
  };
}

/** The mutation test proper: found within {@link SEEDS_MAX} seeds, and gone once restored. */
async function assertFuzzerFinds(
  t: { diagnostic(message: string): void },
  mutation: Mutation,
  optionsFor: (seed: number) => SimOptions,
): Promise<void> {
  const finding = await withMutation(mutation, () => firstViolation(SEEDS_MAX, optionsFor));
  assert.ok(finding !== null, `the fuzzer found no violation in ${SEEDS_MAX} seeds with ${mutation.description}`);
  t.diagnostic(`${mutation.name}: seed ${finding.seed} (${finding.wallMs} ms), ${finding.checker}: ${finding.message}`);
  // The rule is restored by now (withMutation's finally); the same seed must pass, or the
  // violation was the simulator's own and not the mutation's.
  const clean = await runSimulation(finding.seed, { options: optionsFor(finding.seed) });
  assert.deepEqual(
    clean.violations.map((v) => `${v.checker}: ${v.message}`),
    [],
    `seed ${finding.seed} also fails without the mutation`,
  );
}

describe("the fuzzer, against a Raft core with one rule removed", { timeout: TEST_TIMEOUT_MS }, () => {
  // Measured: seed 1 (leader-completeness).
  it("finds a violation when votes ignore whether the candidate's log is up to date", async (t) => {
    await assertFuzzerFinds(t, voteWithoutUpToDateCheck, swarm("kv"));
  });

  // figureEightOptions is the corner of the swarm where the rule matters (the default swarm is too
  // gentle for it). Measured: seed 13 (leader-completeness); about one seed in ten finds it.
  it("finds a violation when a leader commits an older term's entry by counting replicas", async (t) => {
    await assertFuzzerFinds(t, commitWithoutCurrentTermRule, keyValue(figureEightOptions));
  });

  // membershipOptions: 5 members and a change requested every 300 ms on average, with partitions
  // and crashes. Measured: seed 38 (config-election-safety).
  it("finds a violation when a joint configuration's elections count only the new voters", async (t) => {
    await assertFuzzerFinds(t, jointVotesIncomingOnly, keyValue(membershipOptions));
  });
});

describe("the fuzzer, against a host with one rule removed", { timeout: TEST_TIMEOUT_MS }, () => {
  // Found by the crash-after-grant window: a follower acknowledges, crashes before its write and
  // comes back without the entries its leader counted. Measured: seed 21 (liveness: the leader
  // cannot repair a follower that lost entries it acknowledged, so the members never converge).
  it("finds a violation when the Ready loop sends acknowledgements before its persist completes", async (t) => {
    await assertFuzzerFinds(t, ackBeforePersist, swarm("kv"));
  });

  // Measured: seed 2 (api-result: a cas resolved with another entry's result).
  it("finds a violation when a proposal resolves with whatever entry is applied at its index", async (t) => {
    await assertFuzzerFinds(t, proposalResolvedByAnyEntry, swarm("kv"));
  });

  // Measured: seed 10 (linearizability: a stale read on a lagging follower).
  it("finds a violation when a read resolves before its read index is applied", async (t) => {
    await assertFuzzerFinds(t, readBeforeApply, swarm("kv"));
  });

  // Measured: seed 26 (single-ownership).
  it("finds a violation when a new placement leader expires workers without waiting L(1+ρ)", async (t) => {
    await assertFuzzerFinds(t, leaderSkipsElectionWait, swarm("placement"));
  });

  // Found by the isolate-leader window. Measured: seed 1 (single-ownership).
  it("finds a violation when renewals are answered without a ReadIndex round", async (t) => {
    await assertFuzzerFinds(t, renewalWithoutReadIndex, swarm("placement"));
  });

  // Measured: seed 2 (single-ownership).
  it("finds a violation when a worker serves after its lease ran out", async (t) => {
    await assertFuzzerFinds(t, workerServesAfterLease, swarm("placement"));
  });
});
