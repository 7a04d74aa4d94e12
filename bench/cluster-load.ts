/**
 * The harness of `bench/cluster.ts`: a closed-loop write load generator over undici, and the
 * process plumbing around the clusters it drives (free ports, spawning members, sampling their
 * memory from `/proc`, stopping them). Nothing here knows whether the cluster is orrery or etcd: a
 * {@link WriteTarget} says how one write is sent, and a {@link MemberProcess} is any child process.
 *
 * The load: `clients` concurrent clients, each sending one write and awaiting its answer before the
 * next (a closed loop, so the offered load is what the cluster can absorb at that concurrency). All
 * clients run through a warm-up, which is not measured (connections are opened and the leader's
 * caches are warm), then for the measured duration. Every measured write's latency is recorded with
 * `process.hrtime.bigint()`; throughput is measured writes divided by the measured wall time.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { Pool } from "undici";

/** Each value written, in bytes (ASCII letters, so it is the same size as a raw body and inside JSON). */
export const VALUE_BYTES = 100;
/**
 * Keys per client: client `c` writes `b<c>-0` … `b<c>-999` round robin, so keys are distinct across
 * clients and the key space stays bounded (at most 256,000 keys at 256 clients) however long the run.
 */
export const KEYS_PER_CLIENT = 1_000;
/** How long one write may take before it counts as an error (`UND_ERR_HEADERS_TIMEOUT`). */
export const REQUEST_TIMEOUT_MS = 10_000;
/** A client pauses this long after a failed write, so a dead endpoint is not hammered in a tight loop. */
export const ERROR_BACKOFF_MS = 10;
/** How much of a failed write's response body (or error message) is kept as an example. */
const ERROR_EXAMPLE_CHARS_MAX = 300;
/** How long an idle keep-alive connection is kept open. */
const KEEP_ALIVE_MS = 60_000;
/** Initial capacity of the latency buffer; it doubles as needed. */
const LATENCY_CAPACITY_INITIAL = 1 << 16;
/** How many bytes of a member's output are kept for error messages. */
const OUTPUT_TAIL_BYTES_MAX = 8_192;
const NS_PER_MS = 1e6;
const NS_PER_S = 1e9;
const KB_PER_MB = 1024;

/** One HTTP request that performs a write. */
export interface WriteRequest {
  readonly method: "PUT" | "POST";
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | Buffer;
}

/** How to write to one endpoint: orrery's `PUT /kv/<key>`, etcd's `POST /v3/kv/put`, a test server. */
export interface WriteTarget {
  /** `http://host:port`, no trailing slash. */
  readonly origin: string;
  /** Builds the request that writes `value` (ASCII, {@link VALUE_BYTES} long) under `key`. */
  readonly write: (key: string, value: string) => WriteRequest;
  /** Whether a status code means the write succeeded. */
  readonly succeeded: (statusCode: number) => boolean;
}

/** What to run: one closed-loop load against one target. */
export interface LoadOptions {
  readonly target: WriteTarget;
  /** Concurrent clients, each with at most one write outstanding. */
  readonly clients: number;
  /** Measured duration, in seconds. */
  readonly seconds: number;
  /** Unmeasured duration before it, in seconds. */
  readonly warmupSeconds: number;
}

/** The outcome of one load. Latencies are in milliseconds, rounded to microseconds. */
export interface LoadResult {
  readonly clients: number;
  /** Successful writes that started inside the measured window. */
  readonly writes: number;
  /** Measured wall time, seconds: from the end of the warm-up until the last client stopped. */
  readonly seconds: number;
  readonly writesPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
  /** Failed writes in the measured window. */
  readonly errors: number;
  /** Failed writes in the measured window by kind: `status 503`, `UND_ERR_SOCKET`, `ECONNREFUSED`, … */
  readonly errorsByKind: Readonly<Record<string, number>>;
  /** The first failure's response body or error message of each kind, warm-up included. */
  readonly errorExamples: Readonly<Record<string, string>>;
  /** Failed writes during the warm-up (not in `errors`), e.g. while a new leader settles. */
  readonly warmupErrors: number;
  /** CPU time this process (the load generator) used during the whole load, as % of one core. */
  readonly generatorCpuPercent: number;
}

/** Latencies in nanoseconds, in a growable typed array (no per-sample allocation). */
class LatencyRecorder {
  private values = new Float64Array(LATENCY_CAPACITY_INITIAL);
  private size = 0;

  get count(): number {
    return this.size;
  }

  add(ns: number): void {
    if (this.size === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.size] = ns;
    this.size += 1;
  }

  /** Quantiles (0 < p ≤ 1, nearest rank) in ms; zeros when nothing was recorded. */
  summaryMs(): { p50Ms: number; p99Ms: number; p999Ms: number; maxMs: number; meanMs: number } {
    const sorted = this.values.slice(0, this.size).sort();
    const at = (p: number): number => {
      if (sorted.length === 0) return 0;
      const rank = Math.max(1, Math.ceil(p * sorted.length));
      return msOf(sorted[rank - 1] as number);
    };
    const total = sorted.reduce((sum, ns) => sum + ns, 0);
    return {
      p50Ms: at(0.5),
      p99Ms: at(0.99),
      p999Ms: at(0.999),
      maxMs: at(1),
      meanMs: sorted.length === 0 ? 0 : msOf(total / sorted.length),
    };
  }
}

function msOf(ns: number): number {
  return Math.round(ns / 1_000) / 1_000;
}

/** Rounds to `digits` decimals. */
export function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** A value of {@link VALUE_BYTES} random ASCII letters. */
export function makeValue(): string {
  const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  return Array.from(randomBytes(VALUE_BYTES), (byte) => letters[byte % letters.length]).join("");
}

/** The key client `client` writes at its `seq`-th write. */
export function loadKey(client: number, seq: number): string {
  return `b${client}-${seq % KEYS_PER_CLIENT}`;
}

/** A name for a failure: the HTTP status, or the error's code (undici `UND_ERR_*`, `ECONNREFUSED`). */
function errorKind(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" ? code : error.name;
  }
  return "unknown";
}

/** A failed write: its kind (`status 503`, `UND_ERR_SOCKET`, …) and what the server or socket said. */
interface Failure {
  readonly kind: string;
  readonly detail: string;
}

/** Sends one write; resolves to `null` on success or to what went wrong. Never rejects. */
async function writeOnce(pool: Pool, target: WriteTarget, request: WriteRequest): Promise<Failure | null> {
  try {
    const response = await pool.request({
      method: request.method,
      path: request.path,
      headers: request.headers,
      body: request.body,
    });
    // The body must be consumed for the connection to be reused.
    if (target.succeeded(response.statusCode)) {
      await response.body.dump();
      return null;
    }
    return { kind: `status ${response.statusCode}`, detail: await response.body.text() };
  } catch (error) {
    return { kind: errorKind(error), detail: error instanceof Error ? error.message : String(error) };
  }
}

/** Counts of failures by kind, with the first one's detail of each kind. */
class ErrorCounts {
  readonly byKind: Record<string, number> = {};
  readonly examples: Record<string, string> = {};
  total = 0;

  add(failure: Failure): void {
    const { kind } = failure;
    this.byKind[kind] = (this.byKind[kind] ?? 0) + 1;
    this.examples[kind] ??= failure.detail.slice(0, ERROR_EXAMPLE_CHARS_MAX);
    this.total += 1;
  }
}

/** Runs one closed-loop load (see the module comment) and summarises it. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const { target, clients } = options;
  if (!Number.isInteger(clients) || clients < 1) throw new Error(`clients must be a positive integer, not ${clients}`);
  const pool = new Pool(target.origin, {
    connections: clients,
    pipelining: 1,
    keepAliveTimeout: KEEP_ALIVE_MS,
    keepAliveMaxTimeout: KEEP_ALIVE_MS,
    headersTimeout: REQUEST_TIMEOUT_MS,
    bodyTimeout: REQUEST_TIMEOUT_MS,
  });
  const value = makeValue();
  const latencies = new LatencyRecorder();
  const errors = new ErrorCounts();
  const warmupErrors = new ErrorCounts();
  const cpuBefore = process.cpuUsage();
  const startedNs = process.hrtime.bigint();
  const measureFromNs = startedNs + BigInt(Math.round(options.warmupSeconds * NS_PER_S));
  const deadlineNs = measureFromNs + BigInt(Math.round(options.seconds * NS_PER_S));

  const client = async (id: number): Promise<void> => {
    for (let seq = 0; ; seq += 1) {
      const sentNs = process.hrtime.bigint();
      if (sentNs >= deadlineNs) return;
      const failure = await writeOnce(pool, target, target.write(loadKey(id, seq), value));
      const measured = sentNs >= measureFromNs;
      if (failure === null) {
        if (measured) latencies.add(Number(process.hrtime.bigint() - sentNs));
        continue;
      }
      (measured ? errors : warmupErrors).add(failure);
      await sleep(ERROR_BACKOFF_MS);
    }
  };
  try {
    await Promise.all(Array.from({ length: clients }, (_, id) => client(id)));
  } finally {
    await pool.close();
  }
  const endedNs = process.hrtime.bigint();
  const cpu = process.cpuUsage(cpuBefore);
  const seconds = Number(endedNs - measureFromNs) / NS_PER_S;
  const wallUs = Number(endedNs - startedNs) / 1_000;
  return {
    clients,
    writes: latencies.count,
    seconds: round(seconds, 3),
    writesPerSec: seconds > 0 ? Math.round(latencies.count / seconds) : 0,
    ...latencies.summaryMs(),
    errors: errors.total,
    errorsByKind: errors.byKind,
    errorExamples: { ...warmupErrors.examples, ...errors.examples },
    warmupErrors: warmupErrors.total,
    generatorCpuPercent: round((100 * (cpu.user + cpu.system)) / wallUs, 1),
  };
}

export { freePorts } from "../lib/free-ports.ts";

/** How a member process ended. */
export interface MemberExit {
  readonly code: number | null;
  readonly signal: string | null;
  /** Whether it had to be sent SIGKILL because SIGTERM did not end it in time. */
  readonly killed: boolean;
  /** How long it took to end after SIGTERM, ms. */
  readonly stopMs: number;
}

/** A running cluster member (orrery or etcd) as a child process. */
export interface MemberProcess {
  readonly id: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  /** The last {@link OUTPUT_TAIL_BYTES_MAX} bytes of its stdout and stderr, for error messages. */
  outputTail(): string;
}

/** Children still running, killed if this process exits first (a crash or Ctrl-C mid-run). */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", killLiveMembers);
}

/** Sends SIGKILL to every member still running; for exit paths that cannot wait for a clean stop. */
export function killLiveMembers(): void {
  for (const child of liveChildren) child.kill("SIGKILL");
}

/** Starts `command args` with its output captured (never on this process's stdout). */
export function spawnMember(id: string, command: string, args: readonly string[]): MemberProcess {
  installExitHook();
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  if (child.pid === undefined) throw new Error(`could not start ${command} for member ${id}`);
  liveChildren.add(child);
  let tail = "";
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString("utf8")).slice(-OUTPUT_TAIL_BYTES_MAX);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      liveChildren.delete(child);
      resolve({ code, signal });
    });
  });
  return { id, pid: child.pid, child, exited, outputTail: () => tail };
}

/** Sends SIGTERM, then SIGKILL if the member has not exited after `timeoutMs`. */
export async function stopMember(member: MemberProcess, timeoutMs: number): Promise<MemberExit> {
  const started = performance.now();
  if (member.child.exitCode === null && member.child.signalCode === null) member.child.kill("SIGTERM");
  // The timer is cancelled once the member exits, so that it does not hold this process open.
  const cancel = new AbortController();
  const timeout = sleep(timeoutMs, "timeout" as const, { signal: cancel.signal }).catch(() => "cancelled" as const);
  let killed = false;
  if ((await Promise.race([member.exited, timeout])) === "timeout") {
    killed = true;
    member.child.kill("SIGKILL");
  }
  cancel.abort();
  const { code, signal } = await member.exited;
  return { code, signal, killed, stopMs: Math.round(performance.now() - started) };
}

/** A process's resident memory from `/proc/<pid>/status`, MB; `null` if unreadable (not Linux, gone). */
export async function readMemoryMb(pid: number): Promise<{ rssMb: number; hwmMb: number } | null> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/status`, "utf8");
  } catch {
    return null;
  }
  const field = (name: string): number | null => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(text);
    return match === null ? null : Number(match[1]) / KB_PER_MB;
  };
  const rss = field("VmRSS");
  const hwm = field("VmHWM");
  return rss === null || hwm === null ? null : { rssMb: round(rss, 1), hwmMb: round(hwm, 1) };
}

/** One member's memory over a sampling period, MB. */
export interface MemberMemory {
  readonly id: string;
  /** VmHWM at the end of the period: the peak RSS since the process started. */
  readonly rssPeakMb: number | null;
  /** The largest VmRSS sampled during the period. */
  readonly rssSampledMaxMb: number | null;
  /** The mean VmRSS sampled during the period. */
  readonly rssSampledMeanMb: number | null;
}

/** Samples members' VmRSS every `intervalMs` until `stop()`, which also reads VmHWM. */
export class RssSampler {
  private readonly samples = new Map<string, number[]>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly members: readonly MemberProcess[],
    intervalMs: number,
  ) {
    for (const member of members) this.samples.set(member.id, []);
    void this.sample();
    this.timer = setInterval(() => void this.sample(), intervalMs);
  }

  private async sample(): Promise<void> {
    for (const member of this.members) {
      const memory = await readMemoryMb(member.pid);
      if (memory !== null) this.samples.get(member.id)?.push(memory.rssMb);
    }
  }

  /** Stops sampling; returns each member's memory over the period. */
  async stop(): Promise<MemberMemory[]> {
    clearInterval(this.timer);
    return Promise.all(
      this.members.map(async (member) => {
        const samples = this.samples.get(member.id) ?? [];
        const memory = await readMemoryMb(member.pid);
        return {
          id: member.id,
          rssPeakMb: memory?.hwmMb ?? null,
          rssSampledMaxMb: samples.length === 0 ? null : Math.max(...samples),
          rssSampledMeanMb: samples.length === 0 ? null : round(samples.reduce((a, b) => a + b, 0) / samples.length, 1),
        };
      }),
    );
  }
}

/** Polls `check` every `intervalMs` until it returns a value, or throws `describe()` after `timeoutMs`. */
export async function waitFor<T>(
  check: () => Promise<T | null>,
  options: { timeoutMs: number; intervalMs: number; describe: () => string },
): Promise<T> {
  const deadline = performance.now() + options.timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== null) return value;
    if (performance.now() >= deadline) throw new Error(options.describe());
    await sleep(options.intervalMs);
  }
}

/** Throws if a member has already exited, naming it and quoting the end of its output. */
export function assertRunning(members: readonly MemberProcess[]): void {
  for (const member of members) {
    const { exitCode, signalCode } = member.child;
    if (exitCode !== null || signalCode !== null) {
      const how = exitCode !== null ? `code ${exitCode}` : `signal ${signalCode}`;
      throw new Error(`member ${member.id} exited with ${how}: ${member.outputTail().trim().slice(-2_000)}`);
    }
  }
}

/** `fetch` with a timeout; resolves to `null` instead of rejecting (refused, timed out, …). */
export async function tryFetch(url: string, init: RequestInit, timeoutMs: number): Promise<Response | null> {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  } catch {
    return null;
  }
}
