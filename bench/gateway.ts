/**
 * What a member's gateway costs, and how long a killed worker's keys stay unanswered, with real
 * processes: 3 `orrery member` processes (TCP, file WAL, gateways) and 3 `orrery worker` processes
 * serving the router example's SQLite databases (`examples/router/harness.ts`), all on loopback.
 * Prints one JSON document. Run: `npm run bench:gateway` (or `node --import tsx bench/gateway.ts`),
 * with options:
 *
 * - `--seconds N` measured seconds per mode (default 10), split evenly over that mode's rounds;
 *   `--warmup-seconds N` unmeasured seconds before every round (default 2);
 * - `--clients N` concurrent closed-loop clients (default 64); `--paths N` databases read (default 16);
 * - `--trials N` failover trials (default 20); `--lease-ms N` the lease `L` of members and workers
 *   (default 2000);
 * - `--only throughput,failover` runs only the sections named (default both);
 * - `--json` prints the document on one line (otherwise indented).
 *
 * Throughput: one item is written into each of `--paths` databases through a gateway, which also
 * tells each database's owner and epoch. Then `--clients` clients each send `GET /db/<name>?k=item`
 * and wait for the answer before the next, cycling over the databases, in two modes: `gateway`,
 * every request through one member's gateway (a follower's, when there is a leader), and `direct`,
 * each request straight to the owning worker with the `x-orrery-key`/`x-orrery-epoch` headers the
 * gateway would have added. The modes alternate in rounds `direct, gateway, gateway, direct` so
 * that a drift in the machine's other load (a test suite next door) falls on both alike.
 * `gatewayCost` is `1 - gateway requests/s ÷ direct requests/s`; the target is ≤ 0.30.
 * Each round also reports the CPU every process used (Linux `/proc`), and the machine's, so that
 * a run on a shared machine shows as one.
 *
 * Failover: each trial writes a fresh database through a gateway, SIGKILLs its owner, and polls the
 * database through a gateway every 20 ms until a different worker answers 200; the time counts from
 * the kill. The killed worker is then started again under the same name. The bound is
 * `L·(1+ρ) + 300 ms` with ρ = 0.01. See bench/README.md.
 */
import { readFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, release, totalmem } from "node:os";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { Pool } from "undici";
import { RouterCluster, sleep, type HarnessResponse } from "../examples/router/harness.ts";
import { ROUTING_HEADERS } from "../lib/host/routing.ts";
import { round } from "./cluster-load.ts";

/** Members and workers of the cluster measured. */
const MEMBERS = 3;
const WORKERS = 3;
/** The order of the throughput rounds; each mode gets half of `--seconds` in each of its two rounds. */
const ROUND_ORDER: readonly Mode[] = ["direct", "gateway", "gateway", "direct"];
/** How long one load request may take before it counts as an error. */
const REQUEST_TIMEOUT_MS = 10_000;
/** How long a load client pauses after an error before its next request. */
const ERROR_BACKOFF_MS = 10;
/** How much of the first answer (or error) of each kind is kept. */
const ERROR_EXAMPLE_CHARS_MAX = 300;
/** How long a database's first write may take to succeed (it waits for a placement). */
const SETUP_TIMEOUT_MS = 30_000;
/** The pause between tries of a database's first write. */
const SETUP_RETRY_MS = 100;
/** Fresh databases a failover trial may try before it finds one whose owner is alive. */
const TRIAL_PATH_ATTEMPTS_MAX = 5;
/** The pause between failover polls, and the timeout of each poll. */
const POLL_INTERVAL_MS = 20;
const POLL_TIMEOUT_MS = 500;
/** How long a failover trial waits for an answer before it gives up (and records `null`). */
const FAILOVER_WAIT_MS_MAX = 30_000;
/** ρ, the clock rate bound members and workers assume (their default), and the slack. */
const CLOCK_DRIFT_MAX = 0.01;
const FAILOVER_SLACK_MS = 300;
/** The target for `gatewayCost`. */
const GATEWAY_COST_MAX = 0.3;
/** The item each database holds, and its value (100 bytes, like bench/cluster's writes). */
const ITEM_KEY = "item";
const ITEM_VALUE = "v".repeat(100);
/** Linux's USER_HZ: the unit of utime and stime in /proc/<pid>/stat. */
const CLOCK_TICKS_PER_S = 100;
const NS_PER_MS = 1e6;

/** How a load request reaches its database. */
export type Mode = "direct" | "gateway";

/** A part of the benchmark that `--only` can pick. */
export type Section = "throughput" | "failover";
const SECTIONS: readonly Section[] = ["throughput", "failover"];

/** The benchmark's settings, from the command line. */
export interface GatewayBenchSettings {
  /** Measured seconds per mode, split evenly over its rounds. */
  readonly seconds: number;
  /** Unmeasured seconds before every round. */
  readonly warmupSeconds: number;
  readonly clients: number;
  readonly paths: number;
  readonly trials: number;
  readonly leaseMs: number;
  readonly sections: ReadonlySet<Section>;
  readonly json: boolean;
}

function numberIn(text: string, name: string, min: number, integer: boolean): number {
  const value = Number(text);
  const ok = Number.isFinite(value) && value >= min && (!integer || Number.isSafeInteger(value));
  if (!ok) throw new Error(`--${name} must be ${integer ? "an integer" : "a number"} ≥ ${min}, not ${text}`);
  return value;
}

/** Parses the command line (see the module comment). */
export function parseSettings(args: readonly string[]): GatewayBenchSettings {
  const { values } = parseArgs({
    args: [...args],
    options: {
      seconds: { type: "string", default: "10" },
      "warmup-seconds": { type: "string", default: "2" },
      clients: { type: "string", default: "64" },
      paths: { type: "string", default: "16" },
      trials: { type: "string", default: "20" },
      "lease-ms": { type: "string", default: "2000" },
      only: { type: "string", default: SECTIONS.join(",") },
      json: { type: "boolean", default: false },
    },
  });
  const seconds = numberIn(values.seconds, "seconds", 0, false);
  if (seconds === 0) throw new Error("--seconds must be > 0");
  const sections = new Set(
    values.only.split(",").map((text) => {
      const section = SECTIONS.find((name) => name === text);
      if (section === undefined) throw new Error(`--only takes ${SECTIONS.join(", ")}, not ${text}`);
      return section;
    }),
  );
  return {
    seconds,
    warmupSeconds: numberIn(values["warmup-seconds"], "warmup-seconds", 0, false),
    clients: numberIn(values.clients, "clients", 1, true),
    paths: numberIn(values.paths, "paths", 1, true),
    trials: numberIn(values.trials, "trials", 0, true),
    leaseMs: numberIn(values["lease-ms"], "lease-ms", 1, true),
    sections,
    json: values.json,
  };
}

/** The failover bound for lease `leaseMs`: `L·(1+ρ) + 300 ms`. */
export function failoverBoundMs(leaseMs: number): number {
  return leaseMs * (1 + CLOCK_DRIFT_MAX) + FAILOVER_SLACK_MS;
}

/** The `q` quantile (0..1) of ascending `sorted`, nearest rank; `null` when empty. */
export function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1] as number;
}

function progress(line: string): void {
  process.stderr.write(`[bench/gateway] ${line}\n`);
}

// ---------------------------------------------------------------------------------------------
// Setup: databases, their owners and epochs

/** Where one database lives, as a gateway said when it was written. */
interface Route {
  readonly path: string;
  readonly owner: string;
  /** The owner's address for routed requests. */
  readonly address: string;
  readonly epoch: number;
}

/**
 * Writes the item into `path` through `gateway` until it is answered 200 (the first write of a
 * database waits for a placement, and a 503 may come first), and returns where the database lives.
 */
async function writeItem(cluster: RouterCluster, gateway: string, path: string): Promise<Route> {
  const deadline = performance.now() + SETUP_TIMEOUT_MS;
  let last = "no answer";
  while (performance.now() < deadline) {
    const answer = await cluster
      .request(gateway, `${path}?k=${ITEM_KEY}`, { method: "PUT", body: ITEM_VALUE })
      .catch((error: unknown) => String(error));
    if (typeof answer !== "string" && answer.status === 200) {
      const owner = answer.headers.get(ROUTING_HEADERS.owner);
      const epoch = Number(answer.headers.get(ROUTING_HEADERS.epoch));
      if (owner === null || !Number.isSafeInteger(epoch)) throw new Error(`${path}: a 200 without owner and epoch headers`);
      return { path, owner, address: cluster.find(owner).address, epoch };
    }
    last = typeof answer === "string" ? answer : `${answer.status} ${answer.text.slice(0, ERROR_EXAMPLE_CHARS_MAX)}`;
    await sleep(SETUP_RETRY_MS);
  }
  throw new Error(`${path}: no 200 through ${gateway} in ${SETUP_TIMEOUT_MS} ms; last: ${last}`);
}

/** A live member's gateway, a follower's if there is a known leader and a live follower. */
async function followerGateway(cluster: RouterCluster): Promise<{ member: string; gateway: string; leader: string | null }> {
  const leader = await cluster.leader();
  const live = cluster.liveMembers();
  const chosen = live.find((m) => m.name !== leader) ?? live[0];
  if (chosen === undefined) throw new Error("no live member");
  return { member: chosen.name, gateway: chosen.gateway, leader };
}

// ---------------------------------------------------------------------------------------------
// Throughput: closed-loop reads, direct and through a gateway

/** One prepared request: where it goes and what it carries. */
interface Target {
  readonly pool: Pool;
  readonly path: string;
  readonly headers: Record<string, string>;
}

function newPool(address: string, clients: number): Pool {
  return new Pool(`http://${address}`, {
    connections: clients,
    pipelining: 1,
    headersTimeout: REQUEST_TIMEOUT_MS,
    bodyTimeout: REQUEST_TIMEOUT_MS,
  });
}

/** One target per database for each mode, and every pool they use (to close). */
function buildTargets(routes: readonly Route[], gateway: string, clients: number): { targets: Record<Mode, Target[]>; pools: Pool[] } {
  const gatewayPool = newPool(gateway, clients);
  const workerPools = new Map<string, Pool>();
  for (const route of routes) if (!workerPools.has(route.address)) workerPools.set(route.address, newPool(route.address, clients));
  const query = `?k=${ITEM_KEY}`;
  const targets: Record<Mode, Target[]> = {
    gateway: routes.map((r) => ({ pool: gatewayPool, path: `${r.path}${query}`, headers: {} })),
    direct: routes.map((r) => ({
      pool: workerPools.get(r.address) as Pool,
      path: `${r.path}${query}`,
      headers: { [ROUTING_HEADERS.key]: r.path, [ROUTING_HEADERS.epoch]: String(r.epoch) },
    })),
  };
  return { targets, pools: [gatewayPool, ...workerPools.values()] };
}

/** Failures by kind (`status 409`, `UND_ERR_HEADERS_TIMEOUT`, …) with the first detail of each. */
class ErrorCounts {
  readonly byKind: Record<string, number> = {};
  readonly examples: Record<string, string> = {};
  total = 0;

  add(kind: string, detail: string): void {
    this.byKind[kind] = (this.byKind[kind] ?? 0) + 1;
    this.examples[kind] ??= detail.slice(0, ERROR_EXAMPLE_CHARS_MAX);
    this.total += 1;
  }

  merge(other: ErrorCounts): void {
    for (const [kind, count] of Object.entries(other.byKind)) {
      this.byKind[kind] = (this.byKind[kind] ?? 0) + count;
      this.examples[kind] ??= other.examples[kind] ?? "";
      this.total += count;
    }
  }
}

/** Sends one GET; `null` on a 200, else what went wrong. Never rejects. */
async function getOnce(target: Target): Promise<{ kind: string; detail: string } | null> {
  try {
    const response = await target.pool.request({ method: "GET", path: target.path, headers: target.headers });
    // The body is read either way so that the connection is reused.
    if (response.statusCode === 200) {
      await response.body.dump();
      return null;
    }
    return { kind: `status ${response.statusCode}`, detail: await response.body.text() };
  } catch (error) {
    const code = error instanceof Error ? (error as { code?: unknown }).code : undefined;
    const kind = typeof code === "string" ? code : error instanceof Error ? error.name : "unknown";
    return { kind, detail: error instanceof Error ? error.message : String(error) };
  }
}

/** utime + stime of a process in seconds (Linux), or `null`. */
function cpuSecondsOf(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) start at field 3; utime is 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
  } catch {
    return null;
  }
}

/** Machine-wide CPU seconds so far (all cores, Linux `/proc/stat`), or `null`. */
function machineCpuSeconds(): { busy: number; idle: number; steal: number } | null {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    // cpu  user nice system idle iowait irq softirq steal …
    const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
    if (ticks.length < 8 || ticks.some((t) => !Number.isFinite(t))) return null;
    const [user, nice, system, idle, iowait, irq, softirq, steal] = ticks as [number, number, number, number, number, number, number, number];
    const busy = user + nice + system + irq + softirq;
    return { busy: busy / CLOCK_TICKS_PER_S, idle: (idle + iowait) / CLOCK_TICKS_PER_S, steal: steal / CLOCK_TICKS_PER_S };
  } catch {
    return null;
  }
}

/** CPU seconds so far: every member and worker process by name, this process, the machine. */
interface CpuSample {
  readonly processes: ReadonlyMap<string, number | null>;
  readonly selfSeconds: number;
  readonly machine: ReturnType<typeof machineCpuSeconds>;
  readonly atMs: number;
}

function cpuSample(cluster: RouterCluster): CpuSample {
  const processes = new Map<string, number | null>();
  for (const p of [...cluster.members, ...cluster.workers]) processes.set(p.name, cpuSecondsOf(p.process?.pid));
  const self = process.cpuUsage();
  return { processes, selfSeconds: (self.user + self.system) / 1e6, machine: machineCpuSeconds(), atMs: performance.now() };
}

/** CPU used between two samples, in seconds: by process (this one as `load-generator`) and machine-wide. */
interface CpuUsed {
  readonly seconds: number;
  readonly byProcess: Record<string, number | null>;
  readonly machine: { busy: number; idle: number; steal: number } | null;
}

function cpuUsed(before: CpuSample, after: CpuSample): CpuUsed {
  const byProcess: Record<string, number | null> = {};
  for (const [name, start] of before.processes) {
    const end = after.processes.get(name);
    byProcess[name] = start === null || end === null || end === undefined ? null : end - start;
  }
  byProcess["load-generator"] = after.selfSeconds - before.selfSeconds;
  const machine =
    before.machine === null || after.machine === null
      ? null
      : { busy: after.machine.busy - before.machine.busy, idle: after.machine.idle - before.machine.idle, steal: after.machine.steal - before.machine.steal };
  return { seconds: (after.atMs - before.atMs) / 1000, byProcess, machine };
}

/**
 * `used` as % of one core: by process, and machine-wide busy, idle and stolen (up to cpus × 100).
 * `outsideBench` is machine-wide busy time not charged to the benchmark's processes: other
 * processes (a test suite next door), and kernel interrupt work that no process is charged for.
 * It can come out negative when the hypervisor steals much time, part of which the kernel charges
 * to whatever process was running.
 */
function cpuPercents(used: CpuUsed): Record<string, unknown> {
  const percent = (value: number | null) => (value === null || used.seconds <= 0 ? null : round((100 * value) / used.seconds, 1));
  const own = Object.values(used.byProcess);
  const ownSeconds = own.some((v) => v === null) ? null : (own as number[]).reduce((sum, v) => sum + v, 0);
  const machine =
    used.machine === null
      ? null
      : {
          busy: percent(used.machine.busy),
          idle: percent(used.machine.idle),
          steal: percent(used.machine.steal),
          outsideBench: ownSeconds === null ? null : percent(used.machine.busy - ownSeconds),
        };
  return { byProcess: Object.fromEntries(Object.entries(used.byProcess).map(([name, value]) => [name, percent(value)])), machine };
}

/** What one round measured; `latenciesMs` is merged into its mode's summary and not printed. */
interface RoundResult {
  readonly mode: Mode;
  readonly requests: number;
  readonly seconds: number;
  readonly latenciesMs: number[];
  readonly errors: ErrorCounts;
  readonly warmupErrors: number;
  readonly cpu: CpuUsed;
}

/**
 * One round: `clients` closed-loop clients, client `c`'s `n`-th request going to database
 * `(c + n) mod paths`. Requests that *start* during the warm-up are not measured.
 */
async function runRound(cluster: RouterCluster, mode: Mode, targets: readonly Target[], settings: GatewayBenchSettings, seconds: number): Promise<RoundResult> {
  const latenciesMs: number[] = [];
  const errors = new ErrorCounts();
  const warmupErrors = new ErrorCounts();
  const startedNs = process.hrtime.bigint();
  const measureFromNs = startedNs + BigInt(Math.round(settings.warmupSeconds * 1000 * NS_PER_MS));
  const deadlineNs = measureFromNs + BigInt(Math.round(seconds * 1000 * NS_PER_MS));
  // CPU is sampled at the end of the warm-up, when measuring starts.
  const cpuAtStart = sleep(settings.warmupSeconds * 1000).then(() => cpuSample(cluster));
  const client = async (id: number): Promise<void> => {
    for (let n = 0; ; n += 1) {
      const sentNs = process.hrtime.bigint();
      if (sentNs >= deadlineNs) return;
      const failure = await getOnce(targets[(id + n) % targets.length] as Target);
      const measured = sentNs >= measureFromNs;
      if (failure === null) {
        if (measured) latenciesMs.push(Number(process.hrtime.bigint() - sentNs) / NS_PER_MS);
        continue;
      }
      (measured ? errors : warmupErrors).add(failure.kind, failure.detail);
      await sleep(ERROR_BACKOFF_MS);
    }
  };
  await Promise.all(Array.from({ length: settings.clients }, (_, id) => client(id)));
  const cpuAtEnd = cpuSample(cluster);
  const measuredSeconds = Number(process.hrtime.bigint() - measureFromNs) / (1000 * NS_PER_MS);
  return {
    mode,
    requests: latenciesMs.length,
    seconds: measuredSeconds,
    latenciesMs,
    errors,
    warmupErrors: warmupErrors.total,
    cpu: cpuUsed(await cpuAtStart, cpuAtEnd),
  };
}

/** Requests/s and latency quantiles of a set of measured requests. */
function summarize(requests: number, seconds: number, latenciesMs: number[]): Record<string, number | null> {
  const sorted = latenciesMs.slice().sort((a, b) => a - b);
  const ms = (value: number | null) => (value === null ? null : round(value, 2));
  return {
    requestsPerSec: seconds > 0 ? Math.round(requests / seconds) : 0,
    p50Ms: ms(quantile(sorted, 0.5)),
    p99Ms: ms(quantile(sorted, 0.99)),
    maxMs: ms(sorted.at(-1) ?? null),
    meanMs: ms(sorted.length === 0 ? null : sorted.reduce((sum, v) => sum + v, 0) / sorted.length),
  };
}

/**
 * CPU milliseconds per measured request over `rounds`, by process and in total: on a machine
 * where everything shares the cores, requests/s follows this more than anything else.
 */
function cpuMsPerRequest(rounds: readonly RoundResult[]): Record<string, number | null> {
  const requests = rounds.reduce((sum, r) => sum + r.requests, 0);
  const totals = new Map<string, number | null>();
  for (const r of rounds) {
    for (const [name, seconds] of Object.entries(r.cpu.byProcess)) {
      const sum = totals.has(name) ? totals.get(name) ?? null : 0;
      totals.set(name, sum === null || seconds === null ? null : sum + seconds);
    }
  }
  const perRequest = (seconds: number | null) => (seconds === null || requests === 0 ? null : round((1000 * seconds) / requests, 3));
  const result: Record<string, number | null> = {};
  for (const [name, seconds] of totals) result[name] = perRequest(seconds);
  const values = [...totals.values()];
  result.total = values.some((v) => v === null) ? null : perRequest((values as number[]).reduce((sum, v) => sum + v, 0));
  return result;
}

/** One mode's rounds merged: requests/s over all its measured time, quantiles over all its requests. */
function summarizeMode(rounds: readonly RoundResult[]): Record<string, unknown> {
  const requests = rounds.reduce((sum, r) => sum + r.requests, 0);
  const seconds = rounds.reduce((sum, r) => sum + r.seconds, 0);
  const errors = new ErrorCounts();
  for (const r of rounds) errors.merge(r.errors);
  return {
    ...summarize(requests, seconds, rounds.flatMap((r) => r.latenciesMs)),
    requests,
    seconds: round(seconds, 3),
    errors: errors.total,
    errorsByKind: errors.byKind,
    errorExamples: errors.examples,
    warmupErrors: rounds.reduce((sum, r) => sum + r.warmupErrors, 0),
    cpuMsPerRequest: cpuMsPerRequest(rounds),
    rounds: rounds.map((r) => ({
      ...summarize(r.requests, r.seconds, r.latenciesMs),
      errors: r.errors.total,
      cpuMsPerRequest: cpuMsPerRequest([r]).total,
      cpuPercent: cpuPercents(r.cpu),
    })),
  };
}

/** The throughput section (see the module comment). */
async function measureThroughput(cluster: RouterCluster, settings: GatewayBenchSettings): Promise<Record<string, unknown>> {
  const { member, gateway, leader } = await followerGateway(cluster);
  progress(`throughput: writing ${settings.paths} databases through ${member}'s gateway (leader: ${leader ?? "unknown"})`);
  const routes: Route[] = [];
  for (let i = 0; i < settings.paths; i += 1) routes.push(await writeItem(cluster, gateway, `/db/bench-${i}`));
  const { targets, pools } = buildTargets(routes, gateway, settings.clients);
  const perRoundSeconds = settings.seconds / (ROUND_ORDER.length / 2);
  const results: RoundResult[] = [];
  try {
    for (const [i, mode] of ROUND_ORDER.entries()) {
      progress(`throughput round ${i + 1}/${ROUND_ORDER.length}: ${mode}, ${settings.clients} clients, ${settings.warmupSeconds} s warm-up + ${perRoundSeconds} s`);
      const result = await runRound(cluster, mode, targets[mode], settings, perRoundSeconds);
      progress(`  ${Math.round(result.requests / result.seconds)} requests/s, ${result.errors.total} errors`);
      results.push(result);
    }
  } finally {
    await Promise.all(pools.map((pool) => pool.close()));
  }
  const direct = summarizeMode(results.filter((r) => r.mode === "direct"));
  const viaGateway = summarizeMode(results.filter((r) => r.mode === "gateway"));
  const directRps = direct.requestsPerSec as number;
  const gatewayCost = directRps > 0 ? round(1 - (viaGateway.requestsPerSec as number) / directRps, 3) : null;
  return {
    gatewayMember: member,
    leader,
    order: ROUND_ORDER,
    paths: routes.map(({ path, owner, epoch }) => ({ path, owner, epoch })),
    direct,
    gateway: viaGateway,
    gatewayCost,
    target: GATEWAY_COST_MAX,
    met: gatewayCost === null ? null : gatewayCost <= GATEWAY_COST_MAX,
  };
}

// ---------------------------------------------------------------------------------------------
// Failover: SIGKILL a database's owner, poll until another worker answers

/** One failover trial. `failoverMs` is `null` when no other worker answered in time. */
interface FailoverTrial {
  readonly trial: number;
  readonly path: string;
  readonly gatewayMember: string;
  readonly killed: string;
  readonly epochBefore: number;
  readonly failoverMs: number | null;
  readonly newOwner: string | null;
  readonly epochAfter: number | null;
  readonly polls: number;
  /** Answers before the first good one, by status or `error`. */
  readonly answersBefore: Record<string, number>;
}

/** A fresh database of trial `trial` whose owner is a live worker. */
async function trialRoute(cluster: RouterCluster, gateway: string, trial: number): Promise<Route> {
  for (let attempt = 0; attempt < TRIAL_PATH_ATTEMPTS_MAX; attempt += 1) {
    const route = await writeItem(cluster, gateway, `/db/failover-${trial}-${attempt}`);
    const owner = cluster.workers.find((w) => w.name === route.owner);
    if (owner !== undefined && owner.process !== null && !owner.stopped) return route;
    progress(`  ${route.path} is owned by ${route.owner}, which is not running; trying another database`);
  }
  throw new Error(`trial ${trial}: no database of ${TRIAL_PATH_ATTEMPTS_MAX} found a live owner`);
}

/** Polls `route`'s database through `gateway` from `killedAt` until a worker other than its owner answers 200. */
async function pollUntilMoved(cluster: RouterCluster, gateway: string, route: Route, killedAt: number): Promise<Omit<FailoverTrial, "trial" | "path" | "gatewayMember" | "killed" | "epochBefore">> {
  const answersBefore: Record<string, number> = {};
  let polls = 0;
  while (performance.now() - killedAt < FAILOVER_WAIT_MS_MAX) {
    polls += 1;
    const answer: HarnessResponse | null = await cluster
      .request(gateway, `${route.path}?k=${ITEM_KEY}`, { timeoutMs: POLL_TIMEOUT_MS })
      .catch(() => null);
    const owner = answer?.headers.get(ROUTING_HEADERS.owner) ?? null;
    if (answer?.status === 200 && owner !== null && owner !== route.owner) {
      const failoverMs = round(performance.now() - killedAt, 1);
      return { failoverMs, newOwner: owner, epochAfter: Number(answer.headers.get(ROUTING_HEADERS.epoch)), polls, answersBefore };
    }
    const kind = answer === null ? "error" : String(answer.status);
    answersBefore[kind] = (answersBefore[kind] ?? 0) + 1;
    await sleep(POLL_INTERVAL_MS);
  }
  return { failoverMs: null, newOwner: null, epochAfter: null, polls, answersBefore };
}

async function failoverTrial(cluster: RouterCluster, trial: number): Promise<FailoverTrial> {
  const live = cluster.liveMembers();
  const member = live[trial % live.length];
  if (member === undefined) throw new Error("no live member");
  const route = await trialRoute(cluster, member.gateway, trial);
  const killedAt = performance.now();
  // signal() sends SIGKILL before its first await, then waits for the exit.
  await cluster.signal(route.owner, "SIGKILL");
  const moved = await pollUntilMoved(cluster, member.gateway, route, killedAt);
  await cluster.addWorker(route.owner);
  return { trial, path: route.path, gatewayMember: member.name, killed: route.owner, epochBefore: route.epoch, ...moved };
}

/** The failover section (see the module comment). */
async function measureFailover(cluster: RouterCluster, settings: GatewayBenchSettings): Promise<Record<string, unknown>> {
  const boundMs = round(failoverBoundMs(settings.leaseMs), 1);
  const trials: FailoverTrial[] = [];
  for (let trial = 0; trial < settings.trials; trial += 1) {
    const result = await failoverTrial(cluster, trial);
    progress(`failover trial ${trial + 1}/${settings.trials}: killed ${result.killed}, ${result.failoverMs ?? "no answer"} ms, now ${result.newOwner ?? "nobody"} (bound ${boundMs} ms)`);
    trials.push(result);
  }
  const times = trials.flatMap((t) => (t.failoverMs === null ? [] : [t.failoverMs])).sort((a, b) => a - b);
  const completed = times.length;
  const maxMs = times.at(-1) ?? null;
  return {
    leaseMs: settings.leaseMs,
    clockDriftMax: CLOCK_DRIFT_MAX,
    slackMs: FAILOVER_SLACK_MS,
    boundMs,
    trials,
    completed,
    minMs: times[0] ?? null,
    p50Ms: quantile(times, 0.5),
    maxMs,
    metCount: times.filter((ms) => ms <= boundMs).length,
    met: trials.length === 0 ? null : completed === trials.length && maxMs !== null && maxMs <= boundMs,
  };
}

// ---------------------------------------------------------------------------------------------
// The run

function machineInfo(): Record<string, unknown> {
  return {
    cpus: cpus().length,
    availableParallelism: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryMb: Math.round(totalmem() / 2 ** 20),
    node: process.version,
    platform: `${process.platform} ${release()}`,
    loadAverageAtStart: loadavg().map((value) => round(value, 2)),
  };
}

/** A section's result, or why it could not be measured. */
async function attempt(name: string, run: () => Promise<Record<string, unknown>>): Promise<Record<string, unknown>> {
  try {
    return await run();
  } catch (error) {
    progress(`${name} failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
    process.exitCode = 1;
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

/** The cluster being started or running, for the signal handler. */
let starting: Promise<RouterCluster> | null = null;

/** On SIGINT or SIGTERM: kill the cluster's processes, remove its folder, exit 130. */
function destroyOnInterrupt(): void {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      progress(`${signal}: destroying the cluster`);
      const cluster = starting?.catch(() => null) ?? Promise.resolve(null);
      void cluster.then((c) => c?.destroy()).finally(() => process.exit(130));
    });
  }
}

async function main(): Promise<void> {
  const settings = parseSettings(process.argv.slice(2));
  destroyOnInterrupt();
  const machine = machineInfo();
  const startedAt = performance.now();
  progress(`starting ${MEMBERS} members and ${WORKERS} workers (lease ${settings.leaseMs} ms)`);
  starting = RouterCluster.start({ members: MEMBERS, workers: WORKERS, transport: "tcp", leaseMs: settings.leaseMs, logLevel: "warn" });
  const cluster = await starting;
  try {
    const startupMs = Math.round(performance.now() - startedAt);
    const throughput = settings.sections.has("throughput") ? await attempt("throughput", () => measureThroughput(cluster, settings)) : null;
    const failover = settings.sections.has("failover") ? await attempt("failover", () => measureFailover(cluster, settings)) : null;
    const document = {
      bench: "gateway",
      machine: { ...machine, loadAverageAtEnd: loadavg().map((value) => round(value, 2)) },
      settings: { ...settings, sections: [...settings.sections], members: MEMBERS, workers: WORKERS, transport: "tcp", itemValueBytes: ITEM_VALUE.length },
      startupMs,
      throughput,
      failover,
      targets: { gatewayCost: `<= ${GATEWAY_COST_MAX}`, failoverMsMax: `<= L*(1+${CLOCK_DRIFT_MAX}) + ${FAILOVER_SLACK_MS}` },
      targetsMet: {
        gatewayCost: (throughput?.met as boolean | null | undefined) ?? null,
        failover: (failover?.met as boolean | null | undefined) ?? null,
      },
    };
    process.stdout.write(`${JSON.stringify(document, null, settings.json ? undefined : 2)}\n`);
  } finally {
    await cluster.destroy();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
