/**
 * Simulator speed: events per second and simulated time ÷ wall time, for a 5-member cluster idle,
 * under light load and under sustained client load, with faults off and on, and for placement
 * (workers under leases, routed writes). Prints one JSON object.
 *
 *     npm run bench:sim                              # this checkout's simulator
 *     npm run bench:sim -- --baseline <git-ref>      # and another commit's, at the same options
 *     npm run bench:sim -- --seconds 30              # simulated seconds per scenario (default 60)
 *
 * With `--baseline`, the other commit is checked out in a temporary git worktree (sharing this
 * checkout's node_modules) and runs the very same option objects in a child process, one after
 * the other with this checkout's runs, so both are measured on the same machine in the same run.
 * A simulator ignores options it does not know (an older one has no graceful closes, say), which
 * the scenarios below leave off.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { drawOptions, type SimOptions } from "../sim/options.ts";
import { runSimulation } from "../sim/simulator.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

interface Scenario {
  readonly name: string;
  readonly options: SimOptions;
}

interface Measure {
  readonly simulatedMs: number;
  readonly wallMs: number;
  readonly speedup: number;
  readonly events: number;
  readonly eventsPerSecond: number;
  readonly clientOpsPerSimulatedSecond: number;
  readonly violations: number;
}

/**
 * Seed 1's options for 5 members, with `clients` key-value clients (0: idle) or workers, faults on
 * or off, and every process the simulators do not share turned off.
 */
function scenario(name: string, seconds: number, load: { clients: number; workers: boolean }, faults: boolean): Scenario {
  const base = drawOptions(1, { members: 5 });
  const tickMs = 10;
  return {
    name,
    options: {
      ...base,
      tickMs,
      heartbeatTicks: 1,
      safetyTicks: Math.round((seconds * 1000) / tickMs),
      // Without faults the network is lossless too, so that client load is not throttled by
      // requests waiting out their timeout.
      network: faults ? base.network : { ...base.network, lossRate: 0, duplicateRate: 0 },
      partitions: { ...base.partitions, enabled: faults },
      crashes: { ...base.crashes, enabled: faults },
      transferMeanIntervalMs: 0,
      membership: { ...base.membership, enabled: false },
      closes: { ...base.closes, enabled: false },
      scenarios: { ...base.scenarios, enabled: false },
      workload: { ...base.workload, clients: load.clients, thinkMs: 5, requestTimeoutMs: 2 * tickMs * base.electionTicks },
      workers: {
        ...base.workers,
        enabled: load.workers,
        clients: 4,
        thinkMs: 5,
        crashMeanIntervalMs: faults ? base.workers.crashMeanIntervalMs : 0,
        pauseMeanIntervalMs: faults ? base.workers.pauseMeanIntervalMs : 0,
        cutMeanIntervalMs: faults ? base.workers.cutMeanIntervalMs : 0,
        closeMeanIntervalMs: 0,
      },
    },
  };
}

function scenarios(seconds: number): Scenario[] {
  return [
    scenario("5 members, idle (no client)", seconds, { clients: 0, workers: false }, false),
    scenario("5 members, 1 client, no faults", seconds, { clients: 1, workers: false }, false),
    scenario("5 members, 8 clients, no faults", seconds, { clients: 8, workers: false }, false),
    scenario("5 members, 8 clients, faults", seconds, { clients: 8, workers: false }, true),
    scenario("5 members, 4 workers and 4 routed clients, no faults", seconds, { clients: 0, workers: true }, false),
  ];
}

/** Runs each scenario in this checkout's simulator. */
async function measureHere(list: readonly Scenario[]): Promise<Measure[]> {
  const out: Measure[] = [];
  for (const { options } of list) {
    const result = await runSimulation(1, { options, wallClock: () => performance.now() });
    out.push(measureOf(result.stats, result.violations.length));
  }
  return out;
}

function measureOf(
  s: { simulatedMs: number; wallMs: number; speedup: number; events: number; eventsPerSecond: number; clientOps: number; routedWrites?: number },
  violations: number,
): Measure {
  const ops = s.clientOps + (s.routedWrites ?? 0);
  return {
    simulatedMs: s.simulatedMs,
    wallMs: s.wallMs,
    speedup: s.speedup,
    events: s.events,
    eventsPerSecond: s.eventsPerSecond,
    clientOpsPerSimulatedSecond: Math.round(ops / (s.simulatedMs / 1000)),
    violations,
  };
}

/** Runs the same option objects in `ref`'s simulator, in a temporary worktree. */
function measureAt(ref: string, list: readonly Scenario[]): Measure[] {
  const dir = mkdtempSync(join(tmpdir(), "orrery-baseline-"));
  const tree = join(dir, "tree");
  try {
    execFileSync("git", ["worktree", "add", "--detach", tree, ref], { cwd: ROOT, stdio: "ignore" });
    symlinkSync(join(ROOT, "node_modules"), join(tree, "node_modules"));
    const input = join(dir, "scenarios.json");
    writeFileSync(input, JSON.stringify(list.map((s) => s.options)));
    const driver = join(tree, "baseline-driver.mts");
    writeFileSync(
      driver,
      [
        `import { readFileSync } from "node:fs";`,
        `import { runSimulation } from "./sim/simulator.ts";`,
        `const all = JSON.parse(readFileSync(${JSON.stringify(input)}, "utf8"));`,
        `const out = [];`,
        `for (const options of all) {`,
        `  const result = await runSimulation(1, { options, wallClock: () => performance.now() });`,
        `  out.push({ stats: result.stats, violations: result.violations.length });`,
        `}`,
        `process.stdout.write(JSON.stringify(out));`,
      ].join("\n"),
    );
    const child = spawnSync(process.execPath, ["--import", "tsx", driver], { cwd: tree, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    if (child.status !== 0) throw new Error(`the baseline at ${ref} failed: ${child.stderr}`);
    const parsed = JSON.parse(child.stdout) as { stats: Parameters<typeof measureOf>[0]; violations: number }[];
    return parsed.map((r) => measureOf(r.stats, r.violations));
  } finally {
    spawnSync("git", ["worktree", "remove", "--force", tree], { cwd: ROOT, stdio: "ignore" });
    rmSync(dir, { recursive: true, force: true });
  }
}

const { values } = parseArgs({ options: { baseline: { type: "string" }, seconds: { type: "string", default: "60" } } });
const seconds = Number(values.seconds);
if (!Number.isFinite(seconds) || seconds <= 0) throw new RangeError(`--seconds must be a positive number, got ${values.seconds}`);
const list = scenarios(seconds);
const here = await measureHere(list);
const baseline = values.baseline === undefined ? null : measureAt(values.baseline, list);
const results = list.map(({ name }, i) => {
  const current = here[i] as Measure;
  const before = baseline?.[i];
  return {
    name,
    current,
    ...(before === undefined
      ? {}
      : {
          baseline: before,
          speedupRatio: before.speedup > 0 ? Number((current.speedup / before.speedup).toFixed(2)) : null,
          eventsPerSecondRatio: before.eventsPerSecond > 0 ? Number((current.eventsPerSecond / before.eventsPerSecond).toFixed(2)) : null,
        }),
  };
});
process.stdout.write(
  `${JSON.stringify({ bench: "sim", node: process.version, simulatedSecondsPerScenario: seconds, baselineRef: values.baseline ?? null, results }, null, 2)}\n`,
);
