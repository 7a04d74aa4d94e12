/**
 * `orrery sim` and `orrery fuzz`: run one seed (or replay a saved schedule) and print `SEED=`,
 * every option, a summary and the trace hash; or run many seeds and list the failing ones.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { OrreryError } from "../lib/errors.ts";
import { renderSpaceTime } from "../sim/html.ts";
import type { SimOptionOverrides } from "../sim/options.ts";
import { asReplayFile, type ReplayFile } from "../sim/replay.ts";
import { runSimulation, type SimResult } from "../sim/simulator.ts";
import type { CliIo, Command } from "./main.ts";

/** Trace events kept for `--html`. */
const HTML_EVENTS_MAX = 200_000;

/** Thrown for a bad command line; the message says what is wrong. */
class UsageError extends Error {}

interface Flags {
  readonly values: Map<string, string>;
  readonly switches: Set<string>;
}

function parseFlags(args: readonly string[], valued: readonly string[], switches: readonly string[]): Flags {
  const flags: Flags = { values: new Map(), switches: new Set() };
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i] as string;
    const [name, inline] = arg.startsWith("--") && arg.includes("=") ? (arg.split("=", 2) as [string, string]) : [arg, undefined];
    if (switches.includes(name)) {
      flags.switches.add(name);
    } else if (valued.includes(name)) {
      const value = inline ?? args[++i];
      if (value === undefined) throw new UsageError(`${name} needs a value`);
      flags.values.set(name, value);
    } else {
      throw new UsageError(`unknown option ${arg}`);
    }
  }
  return flags;
}

function integer(flags: Flags, name: string, min: number, max: number): number | undefined {
  const raw = flags.values.get(name);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

function overridesFrom(flags: Flags): SimOptionOverrides {
  const members = integer(flags, "--members", 1, 9);
  if (members !== undefined && ![3, 5, 7].includes(members)) {
    throw new UsageError("--members must be 3, 5 or 7");
  }
  const safetyTicks = integer(flags, "--ticks", 10, 10_000_000);
  return {
    ...(members !== undefined ? { members } : {}),
    ...(safetyTicks !== undefined ? { safetyTicks } : {}),
    ...(flags.switches.has("--workers") ? { workers: true } : {}),
  };
}

/** Flattens nested options into `a.b=c` lines, in a fixed order. */
export function flattenOptions(value: unknown, prefix = ""): string[] {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return [`${prefix}=${Array.isArray(value) ? value.join(",") : String(value)}`];
  }
  return Object.entries(value as Record<string, unknown>).flatMap(([key, inner]) =>
    flattenOptions(inner, prefix === "" ? key : `${prefix}.${key}`),
  );
}

function summaryJson(result: SimResult): Record<string, unknown> {
  return {
    seed: result.seed,
    options: result.options,
    traceHash: result.traceHash,
    violations: result.violations,
    stats: result.stats,
  };
}

function printResult(result: SimResult, io: CliIo): void {
  io.out(`SEED=${result.seed}\n`);
  for (const line of flattenOptions(result.options)) io.out(`option ${line}\n`);
  const s = result.stats;
  io.out(
    `summary simulated=${s.simulatedMs}ms wall=${s.wallMs}ms speedup=${s.speedup}x events=${s.events} ` +
      `events/s=${s.eventsPerSecond} messages=${s.messages} dropped=${s.messagesDropped} elections=${s.elections} ` +
      `commits=${s.commits} clientOps=${s.clientOps} unknown=${s.clientOpsUnknown} crashes=${s.crashes} ` +
      `torn=${s.tornWrites} partitions=${s.partitions} reads=${s.reads} transfers=${s.leaderTransfers} ` +
      `snapshotsSent=${s.snapshotsSent} snapshotsInstalled=${s.snapshotsInstalled} snapshotsTaken=${s.snapshotsTaken} ` +
      `confChanges=${s.confChanges} membersAdded=${s.membersAdded} membersRetired=${s.membersRetired} ` +
      `memberCloses=${s.memberCloses} acquisitions=${s.acquisitions} failovers=${s.failovers} handoffs=${s.handoffs} ` +
      `failoverTicksMax=${s.failoverTicksMax} routedWrites=${s.routedWrites} fencedWritesRefused=${s.fencedWritesRefused} ` +
      `workerFaults=${s.workerFaults} scenarios=${s.scenarios} crashesAfterGrant=${s.crashesAfterGrant} ` +
      `operationsSettled=${s.operationsSettled} checkQuorumChecks=${s.checkQuorumChecks} preVoteChecks=${s.preVoteChecks}\n`,
  );
  if (result.violations.length === 0) io.out("violations none\n");
  for (const v of result.violations) io.out(`VIOLATION ${v.checker} at ${(v.t / 1000).toFixed(3)}ms: ${v.message}\n`);
  io.out(`TRACE=${result.traceHash}\n`);
}

const wallClock = (): number => performance.now();

async function runOne(flags: Flags): Promise<{ seed: number; result: SimResult }> {
  const replayPath = flags.values.get("--replay");
  const keepTraceEventsMax = flags.values.has("--html") ? HTML_EVENTS_MAX : 0;
  if (replayPath !== undefined) {
    let replay: ReplayFile | null;
    try {
      replay = asReplayFile(JSON.parse(readFileSync(replayPath, "utf8")));
    } catch (error) {
      throw new UsageError(`${replayPath}: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (replay === null) throw new UsageError(`${replayPath} is not a replay file (needs seed and options)`);
    try {
      const result = await runSimulation(replay.seed, {
        options: replay.options,
        ...(replay.schedule !== undefined ? { schedule: replay.schedule } : {}),
        keepTraceEventsMax,
        wallClock,
      });
      return { seed: replay.seed, result };
    } catch (error) {
      // Options a replay file brings are input: a bad one is the file's fault, said plainly.
      if (OrreryError.isOrreryError(error)) throw new UsageError(`${replayPath}: ${error.message}`);
      throw error;
    }
  }
  const seed = integer(flags, "--seed", 0, Number.MAX_SAFE_INTEGER);
  if (seed === undefined) throw new UsageError("--seed N is required (or --replay FILE)");
  return { seed, result: await runSimulation(seed, { overrides: overridesFrom(flags), keepTraceEventsMax, wallClock }) };
}

/** The `orrery` executable beside this file: in the source (`cli/bin.mjs`) or in the package (`dist/cli.js` -> `cli/bin.mjs`). */
function binPath(): string {
  for (const candidate of ["./bin.mjs", "../cli/bin.mjs"]) {
    const path = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new Error("cannot find the orrery executable to run a second process");
}

/** Runs the same seed in a separate process and returns its trace hash. */
function hashInChildProcess(args: readonly string[]): string {
  const bin = binPath();
  const child = spawnSync(process.execPath, [bin, "sim", ...args.filter((a) => a !== "--check-determinism"), "--json"], {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  const parsed = JSON.parse(child.stdout) as { traceHash?: string };
  return parsed.traceHash ?? "(none)";
}

async function sim(args: readonly string[], io: CliIo): Promise<number> {
  const flags = parseFlags(args, ["--seed", "--members", "--ticks", "--html", "--replay"], ["--json", "--check-determinism", "--workers"]);
  const { result } = await runOne(flags);
  const htmlPath = flags.values.get("--html");
  if (htmlPath !== undefined) {
    writeFileSync(htmlPath, renderSpaceTime(result.trace, {
      title: `orrery sim --seed ${result.seed}`,
      members: Array.from({ length: result.options.members }, (_, i) => `n${i + 1}`),
      summary: { seed: result.seed, traceHash: result.traceHash, violations: result.violations.length, ...result.stats },
    }));
  }
  let deterministic = true;
  let otherHash: string | undefined;
  if (flags.switches.has("--check-determinism")) {
    otherHash = hashInChildProcess(args);
    deterministic = otherHash === result.traceHash;
  }
  if (flags.switches.has("--json")) {
    io.out(`${JSON.stringify({ ...summaryJson(result), ...(otherHash !== undefined ? { deterministic, otherProcessTraceHash: otherHash } : {}) })}\n`);
  } else {
    printResult(result, io);
    if (htmlPath !== undefined) io.out(`html ${htmlPath}\n`);
    if (otherHash !== undefined) {
      io.out(deterministic ? `determinism ok: a second process produced TRACE=${otherHash}\n` : `DETERMINISM FAILED: a second process produced TRACE=${otherHash}\n`);
    }
  }
  return result.violations.length === 0 && deterministic ? 0 : 1;
}

async function fuzz(args: readonly string[], io: CliIo): Promise<number> {
  const flags = parseFlags(args, ["--seeds", "--start", "--members", "--ticks", "--save"], ["--json", "--workers"]);
  const count = integer(flags, "--seeds", 1, 10_000_000) ?? 100;
  const start = integer(flags, "--start", 0, Number.MAX_SAFE_INTEGER) ?? 1;
  const overrides = overridesFrom(flags);
  const savePrefix = flags.values.get("--save");
  const json = flags.switches.has("--json");
  const tty = !json && process.stderr.isTTY === true;
  const failing: { seed: number; violations: string[] }[] = [];
  const began = wallClock();
  let events = 0;
  let simulatedMs = 0;
  for (let i = 0; i < count; i += 1) {
    const seed = start + i;
    const result = await runSimulation(seed, { overrides, wallClock });
    events += result.stats.events;
    simulatedMs += result.stats.simulatedMs;
    if (result.violations.length > 0) {
      failing.push({ seed, violations: result.violations.map((v) => `${v.checker}: ${v.message}`) });
      if (savePrefix !== undefined) {
        const file: ReplayFile = { seed, options: result.options };
        writeFileSync(`${savePrefix}${seed}.json`, `${JSON.stringify(file, null, 2)}\n`);
      }
      if (!json) io.err(`${tty ? "\r\x1b[K" : ""}seed ${seed} FAILED: ${result.violations[0]?.checker}: ${result.violations[0]?.message}\n`);
    }
    if (tty) io.err(progressBar(i + 1, count, failing.length));
  }
  const wallMs = Math.round(wallClock() - began);
  if (tty) io.err("\n");
  const summary = { seeds: count, start, failed: failing.length, failing, wallMs, events, simulatedMs };
  if (json) io.out(`${JSON.stringify(summary)}\n`);
  else {
    io.out(`fuzz seeds=${count} start=${start} passed=${count - failing.length} failed=${failing.length} wall=${wallMs}ms events=${events} simulated=${simulatedMs}ms\n`);
    if (failing.length > 0) io.out(`failing seeds: ${failing.map((f) => f.seed).join(" ")}\nreplay one with: npx orrery sim --seed <seed>\n`);
  }
  return failing.length === 0 ? 0 : 1;
}

function progressBar(done: number, total: number, failed: number): string {
  const width = 30;
  const filled = Math.round((done / total) * width);
  return `\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total} failed=${failed}`;
}

function guard(run: (args: readonly string[], io: CliIo) => Promise<number>) {
  return async (args: readonly string[], io: CliIo): Promise<number> => {
    try {
      return await run(args, io);
    } catch (error) {
      if (error instanceof UsageError) {
        io.err(`orrery: ${error.message}\n`);
        return 2;
      }
      throw error;
    }
  };
}

/** `orrery sim`. */
export const simCommand: Command = {
  name: "sim",
  summary: "run the deterministic simulator on one seed",
  usage: [
    "Usage: orrery sim --seed N [--members 3|5|7] [--ticks T] [--workers] [--json] [--html out.html] [--check-determinism]",
    "       orrery sim --replay FILE [--json] [--html out.html]",
    "",
    "Runs one seeded simulation: a safety phase of T ticks (default 3000) with the faults the seed",
    "draws, then a liveness phase that heals everything. Prints SEED=, every option, a summary,",
    "any violations and TRACE= (the trace hash). Exit status 1 on any violation.",
    "",
    "  --json               one JSON object: { seed, options, traceHash, violations, stats }",
    "  --html FILE          write a space-time diagram of the run",
    "  --check-determinism  run the seed again in a separate process and compare trace hashes",
    "  --workers            run workers under leases (placement) whatever the seed draws",
    "  --replay FILE        run a saved schedule (written by the fuzzer) instead of a seed",
    "",
  ].join("\n"),
  run: guard(sim),
};

/** `orrery fuzz`. */
export const fuzzCommand: Command = {
  name: "fuzz",
  summary: "run the simulator over many seeds and list failing ones",
  usage: [
    "Usage: orrery fuzz --seeds N [--start S] [--members 3|5|7] [--ticks T] [--workers] [--json] [--save PREFIX]",
    "",
    "Runs seeds S..S+N-1 (default S=1), showing progress on a terminal, and ends with a summary",
    "listing failing seeds. Exit status 1 if any failed. --save PREFIX writes PREFIX<seed>.json",
    "replay files for failures.",
    "",
  ].join("\n"),
  run: guard(fuzz),
};
