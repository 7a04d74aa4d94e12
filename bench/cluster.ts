/**
 * A 3-member orrery cluster on loopback, each member its own process, under write load, next to a
 * 3-member etcd cluster under the identical load. Prints one JSON document. Run:
 * `npm run bench:cluster` (or `node --import tsx bench/cluster.ts`), with options:
 *
 * - `--seconds N` measured seconds per load (default 10), `--warmup N` unmeasured seconds before
 *   each (default 2);
 * - `--clients 1,256` concurrent clients, one load per count;
 * - `--transports tcp,http` orrery's peer transports, one cluster per transport;
 * - `--only orrery,etcd,ceiling` runs only the sections named (default all three); `--etcd PATH`
 *   picks the etcd binary;
 * - `--member-entry source|dist` runs members from the TypeScript source through `cli/bin.mjs`
 *   (default; tsx compiles on load, which costs start-up time and some memory) or from the build in
 *   `dist/` (run `npm run build` first); `--member-bin PATH` runs `node PATH node --id …` instead of
 *   `cli/bin.mjs` (a stand-in member, say);
 * - `--json` prints the document on one line (otherwise indented).
 *
 * For each orrery transport and for etcd: a fresh temp data dir, 3 members on free ports, a wait
 * until they agree on a leader, then for each client count a closed-loop load of `PUT`s of
 * 100-byte values to the leader (`bench/cluster-load.ts`), with every member's RSS sampled from
 * `/proc/<pid>/status` every 200 ms. Then SIGTERM (SIGKILL after a timeout) and the dir is removed.
 * The load generator runs in this process, on the same machine as the members, so the `ceiling`
 * section runs the same loads against a trivial `node:http` server in a child process (answers 204,
 * stores nothing, no consensus, no disk): no server on this machine can be measured faster than that
 * through this load generator. See bench/README.md.
 */
import { rmSync } from "node:fs";
import { mkdtemp, mkdir, readFile, realpath, rm } from "node:fs/promises";
import { availableParallelism, cpus, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import {
  KEYS_PER_CLIENT,
  VALUE_BYTES,
  RssSampler,
  assertRunning,
  freePorts,
  killLiveMembers,
  readMemoryMb,
  round,
  runLoad,
  spawnMember,
  stopMember,
  tryFetch,
  waitFor,
  type LoadResult,
  type MemberExit,
  type MemberMemory,
  type MemberProcess,
  type WriteTarget,
} from "./cluster-load.ts";
import { etcdPutTarget, findEtcd, startEtcdCluster, waitForEtcdLeader, type EtcdBinary } from "./etcd.ts";

/** Members per cluster, orrery and etcd alike. */
const MEMBERS = 3;
/** How often each member's VmRSS is sampled. */
const RSS_SAMPLE_MS = 200;
/** How long a new orrery cluster may take to start (tsx compiles on load) and agree on a leader. */
const ORRERY_READY_TIMEOUT_MS = 60_000;
/** How often readiness is polled. */
const POLL_INTERVAL_MS = 100;
/** How long one `/status` request may take. */
const STATUS_TIMEOUT_MS = 2_000;
/** How many lines of each member's output an error quotes. */
const OUTPUT_LINES_QUOTED = 3;
/** How long a member may take to exit after SIGTERM before it is sent SIGKILL. */
const STOP_TIMEOUT_MS = 10_000;
/** The targets, quoted in the output for reference; `targetsMet` says whether each was met. */
const TARGETS = { writesPerSecRatioAt256: ">= 2", p50MsAt1: "<= 0.6", memberRssMbMax: "<= 150" } as const;
const TARGET_RATIO_AT_256_MIN = 2;
const TARGET_P50_MS_AT_1_MAX = 0.6;
const TARGET_MEMBER_RSS_MB_MAX = 150;

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));

/** An orrery peer transport. */
export type TransportName = "tcp" | "http";

/**
 * How members are started: from the TypeScript source (`cli/bin.mjs`) or built (`build/dev/dev.js`,
 * from `npm run build:dev`: the checkout's command line with the examples' commands, bundled).
 */
export type MemberEntry = "source" | "dist";

/** A part of the benchmark that `--only` can pick. */
export type Section = "orrery" | "etcd" | "ceiling";
const SECTIONS: readonly Section[] = ["orrery", "etcd", "ceiling"];

/** The benchmark's settings, from the command line. */
export interface BenchSettings {
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly clients: readonly number[];
  readonly transports: readonly TransportName[];
  /** Which sections run. */
  readonly sections: ReadonlySet<Section>;
  readonly etcdPath: string | null;
  readonly memberEntry: MemberEntry;
  /** The script run as `node <memberBin> node --id …` when `memberEntry` is "source". */
  readonly memberBin: string;
  readonly json: boolean;
}

function positiveNumber(text: string, name: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number, not ${text}`);
  return value;
}

function nonNegativeNumber(text: string, name: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a number ≥ 0, not ${text}`);
  return value;
}

/** Parses the command line (see the module comment). */
export function parseSettings(args: readonly string[]): BenchSettings {
  const { values } = parseArgs({
    args: [...args],
    options: {
      seconds: { type: "string", default: "10" },
      warmup: { type: "string", default: "2" },
      clients: { type: "string", default: "1,256" },
      transports: { type: "string", default: "tcp,http" },
      only: { type: "string", default: SECTIONS.join(",") },
      etcd: { type: "string" },
      "member-entry": { type: "string", default: "source" },
      "member-bin": { type: "string", default: join(REPO_ROOT, "cli/bin.mjs") },
      json: { type: "boolean", default: false },
    },
  });
  const clients = values.clients.split(",").map((text) => positiveNumber(text, "clients"));
  if (!clients.every(Number.isInteger)) throw new Error(`--clients must be integers, not ${values.clients}`);
  const transports = values.transports.split(",").map((text) => {
    if (text !== "tcp" && text !== "http") throw new Error(`--transports takes tcp and http, not ${text}`);
    return text;
  });
  const sections = new Set(
    values.only.split(",").map((text) => {
      const section = SECTIONS.find((name) => name === text);
      if (section === undefined) throw new Error(`--only takes ${SECTIONS.join(", ")}, not ${text}`);
      return section;
    }),
  );
  const memberEntry = values["member-entry"];
  if (memberEntry !== "source" && memberEntry !== "dist") throw new Error(`--member-entry takes source or dist, not ${memberEntry}`);
  return {
    seconds: positiveNumber(values.seconds, "seconds"),
    warmupSeconds: nonNegativeNumber(values.warmup, "warmup"),
    clients,
    transports,
    sections,
    etcdPath: values.etcd ?? null,
    memberEntry,
    memberBin: values["member-bin"],
    json: values.json,
  };
}

/** One orrery member's place in the cluster. */
export interface OrreryMemberSpec {
  readonly id: string;
  readonly peerPort: number;
  readonly clientPort: number;
}

/**
 * The command that starts one orrery member (the only place that knows the member command line):
 * `node <bin> node --id … --members … --client … --data … --transport … --cluster bench
 * --log-level warn` with `bin` usually `cli/bin.mjs`, or the same arguments to the bundled
 * `build/dev/dev.js`'s `main` for `entry: "dist"`.
 */
export function orreryMemberCommand(
  member: OrreryMemberSpec,
  all: readonly OrreryMemberSpec[],
  options: { dataDir: string; transport: TransportName; entry: MemberEntry; bin: string },
): { command: string; args: string[] } {
  const cliArgs = [
    "node",
    "--id", member.id,
    "--members", all.map((m) => `${m.id}=127.0.0.1:${m.peerPort}`).join(","),
    "--client", `127.0.0.1:${member.clientPort}`,
    "--data", options.dataDir,
    "--transport", options.transport,
    "--cluster", "bench",
    "--log-level", "warn",
  ];
  if (options.entry === "source") return { command: process.execPath, args: [options.bin, ...cliArgs] };
  const cli = pathToFileURL(join(REPO_ROOT, "build/dev/dev.js")).href;
  const script = `const { main } = await import(${JSON.stringify(cli)}); process.exitCode = await main(process.argv.slice(1));`;
  return { command: process.execPath, args: ["--input-type=module", "--eval", script, ...cliArgs] };
}

/** orrery's write: `PUT /kv/<key>` with the value as the raw body, answered 204. */
export function orreryPutTarget(origin: string): WriteTarget {
  const headers = { "content-type": "application/octet-stream" };
  return {
    origin,
    write: (key, value) => ({ method: "PUT", path: `/kv/${encodeURIComponent(key)}`, headers, body: value }),
    succeeded: (statusCode) => statusCode >= 200 && statusCode < 300,
  };
}

/** A running cluster, orrery or etcd, as the measuring code sees it. */
interface RunningCluster {
  readonly members: readonly MemberProcess[];
  /** Finds the current leader; resolves to its name and a target that writes to it. */
  readonly leader: () => Promise<{ id: string; target: WriteTarget }>;
}

/** A running orrery cluster's `GET /status`. */
interface OrreryStatus {
  readonly id?: string;
  readonly leader?: string | null;
  readonly role?: string;
  readonly term?: number;
}

async function orreryStatus(origin: string): Promise<OrreryStatus | null> {
  const response = await tryFetch(`${origin}/status`, {}, STATUS_TIMEOUT_MS);
  if (response === null || response.status !== 200) return null;
  try {
    return (await response.json()) as OrreryStatus;
  } catch {
    return null;
  }
}

/** The leader every member agrees on, if they all answer and all name the same known member. */
async function orreryAgreedLeader(
  members: readonly MemberProcess[],
  origins: ReadonlyMap<string, string>,
  seen: Map<string, OrreryStatus | null>,
): Promise<string | null> {
  assertRunning(members);
  for (const [id, origin] of origins) seen.set(id, await orreryStatus(origin));
  const leaders = new Set([...seen.values()].map((status) => status?.leader));
  const [leader] = leaders;
  return leaders.size === 1 && typeof leader === "string" && origins.has(leader) ? leader : null;
}

/** Why the members have no agreed leader: each one's last status and the end of its output. */
function describeNoLeader(members: readonly MemberProcess[], seen: ReadonlyMap<string, OrreryStatus | null>): string {
  const lines = members.map((member) => {
    const status = seen.get(member.id);
    const tail = member.outputTail().trim().split("\n").slice(-OUTPUT_LINES_QUOTED).join(" | ");
    return `${member.id}: status ${status === undefined || status === null ? "unanswered" : JSON.stringify(status)}; output: ${tail || "none"}`;
  });
  return `the orrery members did not agree on a leader in ${ORRERY_READY_TIMEOUT_MS} ms. ${lines.join(". ")}`;
}

/** Starts 3 orrery members over `transport` with data under `dir`. */
async function startOrreryCluster(transport: TransportName, dir: string, settings: BenchSettings): Promise<RunningCluster> {
  const ports = await freePorts(2 * MEMBERS);
  const specs = Array.from({ length: MEMBERS }, (_, i) => ({
    id: `n${i + 1}`,
    peerPort: ports[2 * i] as number,
    clientPort: ports[2 * i + 1] as number,
  }));
  const members: MemberProcess[] = [];
  for (const spec of specs) {
    const dataDir = join(dir, spec.id);
    await mkdir(dataDir, { recursive: true });
    const entry = { entry: settings.memberEntry, bin: settings.memberBin };
    const { command, args } = orreryMemberCommand(spec, specs, { dataDir, transport, ...entry });
    members.push(spawnMember(spec.id, command, args));
  }
  const origins = new Map(specs.map((spec) => [spec.id, `http://127.0.0.1:${spec.clientPort}`]));
  const seen = new Map<string, OrreryStatus | null>();
  const leader = async (): Promise<{ id: string; target: WriteTarget }> => {
    const id = await waitFor(() => orreryAgreedLeader(members, origins, seen), {
      timeoutMs: ORRERY_READY_TIMEOUT_MS,
      intervalMs: POLL_INTERVAL_MS,
      describe: () => describeNoLeader(members, seen),
    });
    return { id, target: orreryPutTarget(origins.get(id) as string) };
  };
  return { members, leader };
}

/** One client count's load against a cluster, with each member's memory during it. */
export interface ClusterLoad extends LoadResult {
  readonly leader: string;
  readonly members: readonly MemberMemory[];
}

/** What one cluster did: its loads by client count and each member's peak memory and exit. */
export interface ClusterRun {
  readonly startupMs: number;
  readonly loads: Readonly<Record<string, ClusterLoad>>;
  /** Each member's VmHWM (peak RSS since it started, MB) after the last load, and how it stopped. */
  readonly members: readonly { id: string; rssPeakMb: number | null; exit: MemberExit }[];
}

/** Runs each client count's load against `cluster`'s current leader, sampling memory throughout. */
async function measure(cluster: RunningCluster, settings: BenchSettings): Promise<Record<string, ClusterLoad>> {
  const loads: Record<string, ClusterLoad> = {};
  for (const clients of settings.clients) {
    const leader = await cluster.leader();
    const sampler = new RssSampler(cluster.members, RSS_SAMPLE_MS);
    const options = { target: leader.target, clients, seconds: settings.seconds, warmupSeconds: settings.warmupSeconds };
    // The sampler is stopped on failure too, so that its timer does not keep the process alive.
    let members: MemberMemory[] = [];
    const result = await runLoad(options).finally(async () => {
      members = await sampler.stop();
    });
    assertRunning(cluster.members);
    loads[String(clients)] = { ...result, leader: leader.id, members };
  }
  return loads;
}

/** Starts a cluster in a fresh temp dir, measures it, stops it and removes the dir. */
async function runCluster(
  name: string,
  start: (dir: string) => Promise<RunningCluster>,
  settings: BenchSettings,
): Promise<ClusterRun> {
  const dir = await mkdtemp(join(tmpdir(), `orrery-cluster-bench-${name}-`));
  tempDirs.add(dir);
  const started = performance.now();
  let cluster: RunningCluster | null = null;
  try {
    cluster = await start(dir);
    await cluster.leader();
    const startupMs = Math.round(performance.now() - started);
    const loads = await measure(cluster, settings);
    const peaks = await Promise.all(cluster.members.map(async (m) => (await readMemoryMb(m.pid))?.hwmMb ?? null));
    const lastLeader = Object.values(loads).at(-1)?.leader;
    const exits = await stopAll(cluster.members, lastLeader);
    const members = cluster.members.map((m, i) => ({ id: m.id, rssPeakMb: peaks[i] ?? null, exit: exits[i] as MemberExit }));
    return { startupMs, loads, members };
  } finally {
    if (cluster !== null) await stopAll(cluster.members);
    await rm(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  }
}

/**
 * Stops the members one at a time, the leader first. A leader told to stop hands its leadership to
 * a live follower first (etcd does, and orrery's `close()` does); if that follower were stopping at
 * the same time, the leader would wait for it until its own timeout (7 s in etcd).
 */
async function stopAll(members: readonly MemberProcess[], leaderId?: string): Promise<MemberExit[]> {
  const order = [...members].sort((a, b) => Number(b.id === leaderId) - Number(a.id === leaderId));
  const exits = new Map<MemberProcess, MemberExit>();
  for (const member of order) exits.set(member, await stopMember(member, STOP_TIMEOUT_MS));
  return members.map((member) => exits.get(member) as MemberExit);
}

/** A cluster's run, or why it could not be measured. */
type Outcome<T> = T | { readonly error: string };

async function attempt<T>(run: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return await run();
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

/** etcd's section of the output: which etcd, then its run as for each orrery transport. */
type EtcdSection = {
  readonly binary: string;
  readonly version: string;
  readonly gatewayPrefix: string;
  /** Whether the JSON gateway is served under `/v3/` (etcd ≥ 3.4). */
  readonly gatewayIsV3: boolean;
} & Outcome<ClusterRun>;

async function runEtcd(binary: EtcdBinary, settings: BenchSettings): Promise<EtcdSection> {
  const start = async (dir: string): Promise<RunningCluster> => {
    const etcd = await startEtcdCluster(binary, dir, MEMBERS);
    const leader = async (): Promise<{ id: string; target: WriteTarget }> => {
      const id = await waitForEtcdLeader(etcd, binary.gatewayPrefix);
      return { id, target: etcdPutTarget(etcd.clientOrigins.get(id) as string, binary.gatewayPrefix) };
    };
    return { members: etcd.members, leader };
  };
  return {
    binary: binary.path,
    version: binary.version,
    gatewayPrefix: binary.gatewayPrefix,
    gatewayIsV3: binary.gatewayPrefix === "/v3/",
    ...(await attempt(() => runCluster("etcd", start, settings))),
  };
}

function isRun(outcome: Outcome<ClusterRun> | undefined): outcome is ClusterRun {
  return outcome !== undefined && !("error" in outcome);
}

/** orrery writes/s over etcd's, per transport and client count; `null` where either is missing. */
function ratios(
  orrery: Readonly<Record<string, Outcome<ClusterRun>>>,
  etcd: Outcome<ClusterRun> | undefined,
  settings: BenchSettings,
): Record<string, Record<string, number | null>> {
  const result: Record<string, Record<string, number | null>> = {};
  for (const [transport, outcome] of Object.entries(orrery)) {
    result[transport] = {};
    for (const clients of settings.clients.map(String)) {
      const mine = isRun(outcome) ? outcome.loads[clients]?.writesPerSec : undefined;
      const theirs = isRun(etcd) ? etcd.loads[clients]?.writesPerSec : undefined;
      const ratio = mine === undefined || theirs === undefined || theirs === 0 ? null : round(mine / theirs, 2);
      (result[transport] as Record<string, number | null>)[clients] = ratio;
    }
  }
  return result;
}

/** Whether each of {@link TARGETS} was met, per transport: `null` where it was not measured. */
function targetsMet(
  orrery: Readonly<Record<string, Outcome<ClusterRun>>>,
  ratio: Record<string, Record<string, number | null>>,
): Record<string, Record<keyof typeof TARGETS, boolean | null>> {
  const result: Record<string, Record<keyof typeof TARGETS, boolean | null>> = {};
  for (const [transport, outcome] of Object.entries(orrery)) {
    const ratioAt256 = ratio[transport]?.["256"] ?? null;
    const p50At1 = isRun(outcome) ? outcome.loads["1"]?.p50Ms : undefined;
    const peaks = isRun(outcome) ? outcome.members.map((m) => m.rssPeakMb) : [];
    const peakKnown = peaks.length > 0 && peaks.every((peak) => peak !== null);
    result[transport] = {
      writesPerSecRatioAt256: ratioAt256 === null ? null : ratioAt256 >= TARGET_RATIO_AT_256_MIN,
      p50MsAt1: p50At1 === undefined ? null : p50At1 <= TARGET_P50_MS_AT_1_MAX,
      memberRssMbMax: peakKnown ? Math.max(...(peaks as number[])) <= TARGET_MEMBER_RSS_MB_MAX : null,
    };
  }
  return result;
}

/** The filesystem holding `path`, from /proc/mounts (Linux): fsync costs depend on it. */
async function filesystemOf(path: string): Promise<string> {
  try {
    const real = await realpath(path);
    let best = { mount: "", filesystem: "unknown" };
    for (const line of (await readFile("/proc/mounts", "utf8")).split("\n")) {
      const [, mount, filesystem] = line.split(" ");
      if (mount === undefined || filesystem === undefined) continue;
      const inside = real === mount || real.startsWith(mount.endsWith("/") ? mount : `${mount}/`);
      if (inside && mount.length >= best.mount.length) best = { mount, filesystem };
    }
    return `${best.filesystem} at ${best.mount}`;
  } catch {
    return "unknown";
  }
}

async function machineInfo(): Promise<Record<string, unknown>> {
  return {
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryMb: Math.round(totalmem() / 2 ** 20),
    node: process.version,
    platform: `${process.platform} ${release()}`,
    tmpdir: tmpdir(),
    tmpFilesystem: await filesystemOf(tmpdir()),
  };
}

/** Temp dirs in use, removed on an abrupt exit (Ctrl-C) after the members are killed. */
const tempDirs = new Set<string>();

function installCleanup(): void {
  process.on("exit", () => {
    killLiveMembers();
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));
}

async function runOrrery(settings: BenchSettings): Promise<Record<string, Outcome<ClusterRun>>> {
  const results: Record<string, Outcome<ClusterRun>> = {};
  for (const transport of settings.transports) {
    const start = (dir: string): Promise<RunningCluster> => startOrreryCluster(transport, dir, settings);
    results[transport] = await attempt(() => runCluster(`orrery-${transport}`, start, settings));
  }
  return results;
}

/** The `ceiling` section's server: answers every request 204 once its body is read. CommonJS. */
const CEILING_SERVER_SCRIPT = `
const port = Number(process.argv[1]);
require("node:http")
  .createServer((req, res) => { req.resume(); req.on("end", () => { res.statusCode = 204; res.end(); }); })
  .listen(port, "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));
`;

/** Starts the `ceiling` section's trivial server as a one-member "cluster". */
async function startCeilingServer(): Promise<RunningCluster> {
  const [port] = await freePorts(1);
  const origin = `http://127.0.0.1:${port}`;
  const server = spawnMember("server", process.execPath, ["--eval", CEILING_SERVER_SCRIPT, String(port)]);
  const leader = async (): Promise<{ id: string; target: WriteTarget }> => {
    await waitFor(
      async () => {
        assertRunning([server]);
        return (await tryFetch(origin, {}, STATUS_TIMEOUT_MS)) === null ? null : true;
      },
      { timeoutMs: ORRERY_READY_TIMEOUT_MS, intervalMs: POLL_INTERVAL_MS, describe: () => "the ceiling server did not start" },
    );
    return { id: server.id, target: orreryPutTarget(origin) };
  };
  return { members: [server], leader };
}

/** Finds etcd and runs it, or says why not. */
async function etcdSection(settings: BenchSettings): Promise<{ etcd: EtcdSection | null; etcdReason?: string }> {
  if (!settings.sections.has("etcd")) return { etcd: null, etcdReason: "not among --only" };
  const binary = await findEtcd(settings.etcdPath ?? undefined);
  if ("reason" in binary) return { etcd: null, etcdReason: binary.reason };
  return { etcd: await runEtcd(binary, settings) };
}

async function main(): Promise<void> {
  const settings = parseSettings(process.argv.slice(2));
  installCleanup();
  const machine = await machineInfo();
  const orrery = settings.sections.has("orrery") ? await runOrrery(settings) : null;
  const { etcd, etcdReason } = await etcdSection(settings);
  const ceiling = settings.sections.has("ceiling")
    ? await attempt(() => runCluster("ceiling", startCeilingServer, settings))
    : null;
  const ratio = orrery === null ? null : ratios(orrery, etcd ?? undefined, settings);
  const document = {
    bench: "cluster",
    machine,
    settings: {
      ...settings,
      sections: [...settings.sections],
      members: MEMBERS,
      valueBytes: VALUE_BYTES,
      keysPerClient: KEYS_PER_CLIENT,
      rssSampleMs: RSS_SAMPLE_MS,
    },
    orrery,
    ...(orrery === null ? { orreryReason: "not among --only" } : {}),
    etcd,
    ...(etcdReason === undefined ? {} : { etcdReason }),
    ceiling,
    orreryOverEtcd: ratio,
    targets: TARGETS,
    targetsMet: orrery === null || ratio === null ? null : targetsMet(orrery, ratio),
  };
  process.stdout.write(`${JSON.stringify(document, null, settings.json ? undefined : 2)}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
