/**
 * Mutation tests: a fuzzer that never fails proves little until it is shown to catch a real bug.
 * Each test removes one rule of the Raft core by patching a prototype (see mutations.ts; the core
 * itself has no bug switch), runs the seeded fuzzer until the first seed that reports a violation,
 * restores the rule, and runs that seed again to show the violation came from the mutation.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { drawOptions, type SimOptions } from "../sim/options.ts";
import { runSimulation } from "../sim/simulator.ts";
import {
  commitWithoutCurrentTermRule,
  figureEightOptions,
  jointVotesIncomingOnly,
  membershipOptions,
  voteWithoutUpToDateCheck,
  withMutation,
  type Mutation,
} from "./mutations.ts";

/** The bar: the fuzzer finds each mutation within this many seeds. */
const SEEDS_MAX = 200;

/** Safety ticks per run: half the default, so a run takes a fraction of a second. */
const SAFETY_TICKS = 1500;

/** The first seed whose run reported a violation. */
interface Finding {
  readonly seed: number;
  readonly checker: string;
  readonly message: string;
  readonly seedsRun: number;
  readonly wallMs: number;
}

/** Runs seeds 1..`seedsMax` with `optionsFor(seed)` and stops at the first violation. */
function firstViolation(seedsMax: number, optionsFor: (seed: number) => SimOptions): Finding | null {
  const started = performance.now();
  for (let seed = 1; seed <= seedsMax; seed += 1) {
    const result = runSimulation(seed, { options: optionsFor(seed) });
    const first = result.violations[0];
    if (first !== undefined) {
      return { seed, checker: first.checker, message: first.message, seedsRun: seed, wallMs: Math.round(performance.now() - started) };
    }
  }
  return null;
}

/** The swarm's own options for `seed`, with a shorter safety phase. */
function swarmOptions(seed: number): SimOptions {
  return drawOptions(seed, { safetyTicks: SAFETY_TICKS });
}

/** The mutation test proper: found within {@link SEEDS_MAX} seeds, and gone once restored. */
function assertFuzzerFinds(
  t: { diagnostic(message: string): void },
  mutation: Mutation,
  optionsFor: (seed: number) => SimOptions,
): void {
  const finding = withMutation(mutation, () => firstViolation(SEEDS_MAX, optionsFor));
  assert.ok(finding !== null, `the fuzzer found no violation in ${SEEDS_MAX} seeds with ${mutation.description}`);
  t.diagnostic(
    `${mutation.name}: seed ${finding.seed} (${finding.seedsRun} seeds, ${finding.wallMs} ms), ` +
      `${finding.checker}: ${finding.message}`,
  );
  // The rule is restored by now (withMutation's finally); the same seed must pass, or the
  // violation was the simulator's own and not the mutation's.
  const clean = runSimulation(finding.seed, { options: optionsFor(finding.seed) });
  assert.deepEqual(
    clean.violations.map((v) => `${v.checker}: ${v.message}`),
    [],
    `seed ${finding.seed} also fails without the mutation`,
  );
}

describe("the fuzzer, against a core with one rule removed", () => {
  it("finds a violation within 200 seeds when votes ignore whether the candidate's log is up to date", (t) => {
    assertFuzzerFinds(t, voteWithoutUpToDateCheck, swarmOptions);
  });

  // The default swarm is too gentle for this one: it found no violation in 400 seeds at 3000 ticks.
  // figureEightOptions is the corner of the swarm where the rule matters; measured there, 7 of 200
  // mutated seeds fail and 200 of 200 unmutated seeds pass (the first failing seed is now 28).
  it("finds a violation within 200 seeds when a leader commits an older term's entry by counting replicas", (t) => {
    assertFuzzerFinds(t, commitWithoutCurrentTermRule, (seed) => figureEightOptions(seed, SAFETY_TICKS));
  });

  // membershipOptions: 5 members and a change requested every 300 ms on average, with partitions
  // and crashes. Measured there: the first failing mutated seed is 128 (config-election-safety: a
  // leader elected by a majority of C_new alone while C_old,new was the committed configuration).
  it("finds a violation within 200 seeds when a joint configuration's elections count only the new voters", (t) => {
    assertFuzzerFinds(t, jointVotesIncomingOnly, (seed) => membershipOptions(seed, SAFETY_TICKS));
  });
});
