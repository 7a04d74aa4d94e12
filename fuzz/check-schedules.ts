/**
 * The scheduled fuzzer as a function: fast-check draws runs with explicit fault schedules, checks
 * that none breaks a property, and on failure shrinks the run, saves it as a replay file and
 * explains how to run it again. The property test calls it with CI bounds; a person can call it
 * with more runs.
 */
import { join } from "node:path";
import fc from "fast-check";
import type { SimResult } from "../sim/simulator.ts";
import { arbitraryRun, runOptions, runScheduled, saveReplay, type ScheduledRun } from "./schedule.ts";

/** How much to fuzz, and where a failure goes. */
export interface CheckSchedulesOptions {
  /** Runs to draw before declaring success. */
  readonly numRuns: number;
  /** fast-check's seed: the same seed draws the same runs. */
  readonly seed: number;
  /** Where the shrunk counterexample's replay file is written. */
  readonly saveDir: string;
  /**
   * Wall-clock budget in ms for drawing and shrinking together; shrinking stops at the best
   * counterexample found so far when it runs out. @defaultValue 300000
   */
  readonly timeLimitMs?: number;
  /**
   * What must hold of every run. @defaultValue no checker reported a violation
   */
  readonly property?: (result: SimResult) => boolean;
}

/** What {@link checkSchedules} found. */
export type ScheduleCheck =
  | { readonly passed: true; readonly numRuns: number; readonly seed: number }
  | {
      readonly passed: false;
      readonly run: ScheduledRun;
      /** The counterexample's result, or `null` when running it threw. */
      readonly result: SimResult | null;
      readonly replayPath: string;
      /** Everything a person needs: what broke, the replay file and the commands to rerun. */
      readonly message: string;
    };

const TIME_LIMIT_MS_DEFAULT = 300_000;

/** The default property: no checker reported a violation. */
const noViolations = (result: SimResult): boolean => result.violations.length === 0;

/** Runs `run` again and lists what it broke; an exception counts as a failure too. */
async function failuresOf(
  run: ScheduledRun,
  property: (result: SimResult) => boolean,
): Promise<{ result: SimResult | null; lines: string[] }> {
  let result: SimResult;
  try {
    result = await runScheduled(run);
  } catch (error) {
    return { result: null, lines: [`the simulator threw: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`] };
  }
  const lines = result.violations.map((v) => `${v.checker} at ${(v.t / 1000).toFixed(3)} ms: ${v.message}`);
  if (property(result)) {
    lines.push("it passed when run again: the simulator is not deterministic for this run");
  } else if (lines.length === 0) {
    lines.push("the property does not hold, though no checker reported a violation");
  }
  return { result, lines };
}

/**
 * Fuzzes fault schedules: the property (by default, that no checker reports a violation) must
 * hold of every run of {@link arbitraryRun}. On failure the shrunk run is written to `saveDir` as
 * a replay file for `npx orrery sim --replay FILE`. When the time limit interrupts the search
 * before any failure, the check passes with the runs done so far (`numRuns` says how many).
 */
export async function checkSchedules(options: CheckSchedulesOptions): Promise<ScheduleCheck> {
  const holds = options.property ?? noViolations;
  const property = fc.asyncProperty(arbitraryRun(), async (run) => holds(await runScheduled(run)));
  const details = await fc.check(property, {
    numRuns: options.numRuns,
    seed: options.seed,
    interruptAfterTimeLimit: options.timeLimitMs ?? TIME_LIMIT_MS_DEFAULT,
    markInterruptAsFailure: false,
  });
  if (!details.failed || details.counterexample === null) {
    return { passed: true, numRuns: details.numRuns, seed: details.seed };
  }
  const [run] = details.counterexample;
  const { result, lines } = await failuresOf(run, holds);
  const replayPath = saveReplay(
    join(options.saveDir, `orrery-replay-${details.seed}-${run.seed}.json`),
    run.seed,
    runOptions(run),
    run.schedule,
  );
  const shown = lines.slice(0, 10);
  if (lines.length > shown.length) shown.push(`... and ${lines.length - shown.length} more`);
  const message = [
    `a fuzzed fault schedule broke the simulation after ${details.numRuns} runs ` +
      `(${details.numShrinks} shrinks${details.interrupted ? ", shrinking cut short by the time limit" : ""}):`,
    `  seed=${run.seed} members=${run.members} safetyTicks=${run.safetyTicks}, ${run.schedule.length} scheduled faults`,
    ...shown.map((line) => `  ${line}`),
    `replay file: ${replayPath}`,
    `replay it:   npx orrery sim --replay ${replayPath}`,
    `draw it again: ORRERY_FUZZ_SEED=${details.seed} (fast-check path ${details.counterexamplePath})`,
  ].join("\n");
  return { passed: false, run, result, replayPath, message };
}
