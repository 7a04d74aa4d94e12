/**
 * Property tests over explicit fault schedules: fast-check draws a seed, a cluster size and a
 * schedule of cuts, heals, crashes and restarts; the simulator must report no violation. A
 * failure shrinks to a small schedule and is saved as a replay file.
 *
 * CI bounds: `ORRERY_FUZZ_RUNS` runs (default 30, about 7 s) from the fixed fast-check seed
 * `ORRERY_FUZZ_SEED`, so CI draws the same runs every time; set another seed to explore.
 * `ORRERY_FUZZ_SAVE_DIR` says where replay files go (default: the system's temporary folder).
 * `ORRERY_FUZZ_TIME_LIMIT_MS` (default 120000) bounds drawing and shrinking together: a failure
 * found in CI is shrunk for at most that long, then reported as it stands.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import type { ReplayFile } from "../sim/replay.ts";
import type { FaultEvent } from "../sim/simulator.ts";
import { checkSchedules } from "./check-schedules.ts";
import { envInteger } from "./env.ts";
import {
  RUN_SAFETY_TICKS_MIN,
  SCHEDULE_EVENTS_MAX,
  arbitraryFaultSchedule,
  runOptions,
  runScheduled,
  saveReplay,
  type ScheduledRun,
} from "./schedule.ts";

const FUZZ_RUNS = envInteger("ORRERY_FUZZ_RUNS", 30, 1);
/** A fixed default, so that CI is reproducible; any other value explores new schedules. */
const FUZZ_SEED = envInteger("ORRERY_FUZZ_SEED", 20_240_603, -(2 ** 31), 2 ** 31 - 1);
const SAVE_DIR = process.env.ORRERY_FUZZ_SAVE_DIR || tmpdir();
const TIME_LIMIT_MS = envInteger("ORRERY_FUZZ_TIME_LIMIT_MS", 120_000, 1);
const BIN = fileURLToPath(new URL("../cli/bin.mjs", import.meta.url));

describe("fuzzed fault schedules", () => {
  it("never make the simulation report a violation", async (t) => {
    const check = await checkSchedules({ numRuns: FUZZ_RUNS, seed: FUZZ_SEED, saveDir: SAVE_DIR, timeLimitMs: TIME_LIMIT_MS });
    if (!check.passed) assert.fail(check.message);
    t.diagnostic(`${check.numRuns} runs from fast-check seed ${check.seed}`);
  });

  it("are sorted, within the safety phase and bounded, and restart every member they crash", () => {
    for (const members of [3, 5, 7]) {
      const safetyMs = 6000;
      fc.assert(
        fc.property(arbitraryFaultSchedule(members, safetyMs), (schedule) => {
          assert.ok(schedule.length <= SCHEDULE_EVENTS_MAX);
          const ids = new Set(Array.from({ length: members }, (_, i) => `n${i + 1}`));
          let previous = 0;
          const crashed: string[] = [];
          for (const event of schedule) {
            assert.ok(event.atMs >= previous && event.atMs < safetyMs, `time ${event.atMs} in order and in range`);
            previous = event.atMs;
            if (event.kind === "cut") {
              assert.ok(event.links.length > 0, "a cut cuts at least one link");
              for (const [from, to] of event.links) assert.ok(ids.has(from) && ids.has(to) && from !== to);
            }
            if (event.kind === "crash") crashed.push(event.member);
            if (event.kind === "restart") {
              const at = crashed.indexOf(event.member);
              assert.ok(at >= 0, `restart of ${event.member} follows its crash`);
              crashed.splice(at, 1);
            }
          }
          assert.deepEqual(crashed, [], "every crash has its restart");
        }),
        { seed: FUZZ_SEED, numRuns: 300 },
      );
    }
  });

  it("replay from a saved file in another process with the same trace hash", async () => {
    // Every shape of fault, with a crash overlapping a cut, so the replay exercises all of them.
    const schedule: FaultEvent[] = [
      { atMs: 400, kind: "cut", links: [["n1", "n2"], ["n2", "n1"], ["n1", "n3"], ["n3", "n1"]] },
      { atMs: 900, kind: "crash", member: "n2" },
      { atMs: 1500, kind: "cut", links: [["n4", "n5"]] },
      { atMs: 2100, kind: "restart", member: "n2" },
      { atMs: 2600, kind: "heal" },
      { atMs: 3000, kind: "crash", member: "n5" },
      { atMs: 3500, kind: "restart", member: "n5" },
    ];
    const run: ScheduledRun = { seed: 4242, members: 5, safetyTicks: RUN_SAFETY_TICKS_MIN, schedule };
    const here = await runScheduled(run);
    assert.equal(here.stats.crashes, 2, "both scheduled crashes happened");
    assert.equal(here.stats.partitions, 2, "both scheduled cuts happened");

    const dir = mkdtempSync(join(tmpdir(), "orrery-replay-"));
    try {
      const file = saveReplay(join(dir, "replay.json"), run.seed, runOptions(run), schedule);
      const child = spawnSync(process.execPath, [BIN, "sim", "--replay", file, "--json"], {
        encoding: "utf8",
        maxBuffer: 64 * 1024 * 1024,
      });
      assert.equal(child.error, undefined, "the child process started");
      const there = JSON.parse(child.stdout) as { traceHash: string; violations: unknown[]; stats: { crashes: number; partitions: number } };
      assert.equal(there.traceHash, here.traceHash, `same trace hash in a separate process (stderr: ${child.stderr})`);
      assert.equal(there.violations.length, here.violations.length);
      assert.equal(there.stats.crashes, here.stats.crashes);
      assert.equal(there.stats.partitions, here.stats.partitions);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("shrink a failing run to its smallest schedule and save it as a replay file", async () => {
    // A stand-in property that fails whenever a member crashes, so that the failure path (shrink,
    // save, explain) is exercised without a bug: the smallest failing run is one crash and its
    // restart, in the smallest cluster, with the shortest safety phase and seed 0.
    const dir = mkdtempSync(join(tmpdir(), "orrery-shrink-"));
    try {
      const check = await checkSchedules({
        numRuns: 50,
        seed: FUZZ_SEED,
        saveDir: dir,
        timeLimitMs: 60_000,
        property: (result) => result.stats.crashes === 0,
      });
      assert.ok(!check.passed, "some drawn schedule crashes a member");
      assert.deepEqual(
        { seed: check.run.seed, members: check.run.members, safetyTicks: check.run.safetyTicks },
        { seed: 0, members: 3, safetyTicks: RUN_SAFETY_TICKS_MIN },
      );
      assert.deepEqual(check.run.schedule.map((event) => event.kind), ["crash", "restart"]);
      assert.ok(check.message.includes(`npx orrery sim --replay ${check.replayPath}`), check.message);

      const replay = JSON.parse(readFileSync(check.replayPath, "utf8")) as ReplayFile;
      assert.deepEqual(replay, { seed: check.run.seed, options: runOptions(check.run), schedule: check.run.schedule });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
