/**
 * Real processes for the path-routed example: `orrery member` processes (TCP or HTTP transport,
 * file WAL, gateway) and `orrery worker` processes (SQLite databases in one shared folder), on
 * loopback under one temporary folder. Processes can be killed (SIGKILL), paused (SIGSTOP),
 * resumed (SIGCONT) and stopped gracefully (SIGTERM). Used by `orrery demo`, the integration tests
 * and `bench/gateway`. Every wait is on a condition and bounded, generously, so that the tests pass
 * on a machine whose cores are busy with other work; a cluster whose start fails kills what it
 * started, and {@link RouterCluster.destroy} waits for every process to be gone.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePorts } from "../../lib/free-ports.ts";
import { sleep, withDeadline } from "../deadline.ts";

export { sleep };

const BIN = fileURLToPath(new URL("../../cli/bin.mjs", import.meta.url));

/**
 * How long a process may take to start (members: ready gateway; workers: joined): several
 * processes compiling TypeScript on two busy cores take many seconds.
 */
export const PROCESS_START_MS_MAX = 60_000;

/** How long a signalled process may take to exit. */
const EXIT_MS_MAX = 30_000;

/** How long a request made by the harness may take. */
export const HARNESS_REQUEST_MS_MAX = 10_000;

/** One member or worker process. */
export interface RouterProcess {
  readonly name: string;
  readonly kind: "member" | "worker";
  /** Members: the transport address. Workers: where routed requests arrive (known once ready). */
  address: string;
  /** Members only: the gateway's address. */
  readonly gateway: string;
  process: ChildProcess | null;
  /** What the process wrote to stderr (its JSON log), for failure messages. */
  log: string;
  /** Whether it is paused with SIGSTOP. */
  stopped: boolean;
}

/** What to start. */
export interface RouterClusterOptions {
  readonly members?: number;
  readonly workers?: number;
  readonly transport?: "tcp" | "http";
  readonly leaseMs?: number;
  readonly logLevel?: string;
  /** Parent folder for the temporary folder. @defaultValue os.tmpdir() */
  readonly parentDir?: string;
}

/** An answer to a harness request. */
export interface HarnessResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** The parsed JSON body, or `null` when it is not JSON. */
  readonly json: any;
}

/** Member and worker processes of one example cluster. */
export class RouterCluster {
  readonly dir: string;
  readonly databases: string;
  readonly secretFile: string;
  readonly members: RouterProcess[] = [];
  readonly workers: RouterProcess[] = [];
  readonly transport: "tcp" | "http";
  readonly leaseMs: number;
  private readonly logLevel: string;

  private constructor(options: RouterClusterOptions) {
    this.dir = mkdtempSync(join(options.parentDir ?? tmpdir(), "orrery-router-"));
    this.databases = join(this.dir, "databases");
    mkdirSync(this.databases);
    this.secretFile = join(this.dir, "secret");
    writeFileSync(this.secretFile, `secret-${process.pid}-${Date.now()}\n`, { mode: 0o600 });
    this.transport = options.transport ?? "tcp";
    this.leaseMs = options.leaseMs ?? 2000;
    this.logLevel = options.logLevel ?? "info";
  }

  /** Starts the members, waits for a ready gateway on each, then starts the workers and waits for them to join. */
  static async start(options: RouterClusterOptions = {}): Promise<RouterCluster> {
    const cluster = new RouterCluster(options);
    const memberCount = options.members ?? 3;
    const workerCount = options.workers ?? 3;
    const ports = await freePorts(memberCount * 2);
    for (let i = 0; i < memberCount; i += 1) {
      cluster.members.push({
        name: `m${i + 1}`,
        kind: "member",
        address: `127.0.0.1:${ports[i]}`,
        gateway: `127.0.0.1:${ports[memberCount + i]}`,
        process: null,
        log: "",
        stopped: false,
      });
    }
    try {
      for (const member of cluster.members) cluster.spawnMember(member);
      await Promise.all(cluster.members.map((m) => cluster.waitReady(m)));
      for (let i = 0; i < workerCount; i += 1) await cluster.addWorker(`w${i + 1}`);
    } catch (error) {
      await cluster.destroy();
      throw error;
    }
    return cluster;
  }

  /** Every member's transport address, `ID=HOST:PORT,...`. */
  memberList(): string {
    return this.members.map((m) => `${m.name}=${m.address}`).join(",");
  }

  /** Starts worker `name` and waits until it has joined. */
  async addWorker(name: string, extraArgs: readonly string[] = []): Promise<RouterProcess> {
    const worker: RouterProcess = { name, kind: "worker", address: "", gateway: "", process: null, log: "", stopped: false };
    const existing = this.workers.findIndex((w) => w.name === name);
    if (existing === -1) this.workers.push(worker);
    else this.workers[existing] = worker;
    const args = [
      "worker",
      "--id", name,
      "--members", this.memberList(),
      "--dir", this.databases,
      "--transport", this.transport,
      "--secret-file", this.secretFile,
      "--lease-ms", String(this.leaseMs),
      "--log-level", this.logLevel,
      ...extraArgs,
    ];
    const child = this.spawn(worker, args);
    await new Promise<void>((resolve, reject) => {
      let buffered = "";
      const timer = setTimeout(() => reject(new Error(`worker ${name} did not join within ${PROCESS_START_MS_MAX} ms\n${worker.log.slice(-4000)}`)), PROCESS_START_MS_MAX);
      child.stdout?.on("data", (chunk: Buffer) => {
        buffered += chunk.toString();
        const line = buffered.split("\n").find((l) => l.includes('"event":"ready"'));
        if (line === undefined) return;
        worker.address = (JSON.parse(line) as { address: string }).address;
        clearTimeout(timer);
        resolve();
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`worker ${name} exited with ${code} before joining\n${worker.log.slice(-4000)}`));
      });
    });
    return worker;
  }

  /** Sends `signal` to a process (by name). SIGKILL and SIGTERM wait for the exit. */
  async signal(name: string, signal: NodeJS.Signals): Promise<number | null> {
    const target = this.find(name);
    const child = target.process;
    if (child === null) return null;
    if (signal === "SIGSTOP") {
      child.kill("SIGSTOP");
      target.stopped = true;
      return null;
    }
    if (signal === "SIGCONT") {
      child.kill("SIGCONT");
      target.stopped = false;
      return null;
    }
    const exited = new Promise<number | null>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
      else child.once("exit", (code) => resolve(code));
    });
    if (target.stopped) child.kill("SIGCONT");
    child.kill(signal);
    try {
      return await withDeadline(exited, EXIT_MS_MAX, `${name} exiting after ${signal}`);
    } catch (error) {
      // A process that ignores SIGTERM must not outlive the caller; SIGKILL cannot be ignored.
      child.kill("SIGKILL");
      throw error;
    } finally {
      target.process = null;
    }
  }

  /** Restarts a member from its WAL (same addresses). */
  async restartMember(name: string): Promise<void> {
    const member = this.find(name);
    if (member.kind !== "member" || member.process !== null) throw new Error(`${name} is not a stopped member`);
    this.spawnMember(member);
    await this.waitReady(member);
  }

  /** The member processes that run. */
  liveMembers(): RouterProcess[] {
    return this.members.filter((m) => m.process !== null && !m.stopped);
  }

  /** The id of the leader as a live member reports it, or `null`. */
  async leader(): Promise<string | null> {
    for (const member of this.liveMembers()) {
      try {
        const status = await this.get(member.gateway, "/status");
        if (status.status === 200 && typeof status.json?.leader === "string") return status.json.leader as string;
      } catch {
        // try the next member
      }
    }
    return null;
  }

  /** The gateway status of a live member (workers, keys). */
  async status(): Promise<any> {
    for (const member of this.liveMembers()) {
      try {
        const answer = await this.get(member.gateway, "/status");
        if (answer.status === 200) return answer.json;
      } catch {
        // try the next member
      }
    }
    throw new Error("no member answered /status");
  }

  /** A request through gateway `gateway` (an address). */
  async request(
    gateway: string,
    path: string,
    init: { method?: string; body?: string; headers?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<HarnessResponse> {
    const response = await fetch(`http://${gateway}${path}`, {
      method: init.method ?? "GET",
      ...(init.body === undefined ? {} : { body: init.body }),
      headers: init.headers ?? {},
      signal: AbortSignal.timeout(init.timeoutMs ?? HARNESS_REQUEST_MS_MAX),
    });
    const text = await response.text();
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
    return { status: response.status, headers: response.headers, text, json };
  }

  /** A GET through `gateway`. */
  get(gateway: string, path: string): Promise<HarnessResponse> {
    return this.request(gateway, path);
  }

  /** Kills every process, waits for them to be gone, and removes the folder. */
  async destroy(): Promise<void> {
    const exits: Promise<unknown>[] = [];
    for (const p of [...this.workers, ...this.members]) {
      const child = p.process;
      if (child === null) continue;
      if (child.exitCode === null && child.signalCode === null) {
        exits.push(withDeadline(new Promise((resolve) => child.once("exit", resolve)), EXIT_MS_MAX, `${p.name} exiting after SIGKILL`));
      }
      if (p.stopped) child.kill("SIGCONT");
      child.kill("SIGKILL");
    }
    try {
      // The folder goes once nothing writes to it any more; a SIGKILL takes effect at once, so the
      // bound only keeps a broken machine from holding the caller.
      await Promise.allSettled(exits);
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  /** The last lines of every process's log, for a failure message. */
  logs(lines = 20): string {
    return [...this.members, ...this.workers]
      .map((p) => `--- ${p.name}\n${p.log.split("\n").slice(-lines).join("\n")}`)
      .join("\n");
  }

  find(name: string): RouterProcess {
    const found = [...this.members, ...this.workers].find((p) => p.name === name);
    if (found === undefined) throw new Error(`no process named ${name}`);
    return found;
  }

  private spawnMember(member: RouterProcess): void {
    this.spawn(member, [
      "member",
      "--id", member.name,
      "--members", this.memberList(),
      "--data", join(this.dir, member.name),
      "--gateway", member.gateway,
      "--transport", this.transport,
      "--secret-file", this.secretFile,
      "--workers", Array.from({ length: 32 }, (_, i) => `w${i + 1}`).join(","),
      "--lease-ms", String(this.leaseMs),
      "--log-level", this.logLevel,
    ]);
  }

  private spawn(target: RouterProcess, args: readonly string[]): ChildProcess {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    target.process = child;
    target.stopped = false;
    target.log = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      target.log += chunk.toString();
      if (target.log.length > 1_000_000) target.log = target.log.slice(-500_000);
    });
    child.once("exit", () => {
      if (target.process === child) target.process = null;
    });
    return child;
  }

  private async waitReady(member: RouterProcess): Promise<void> {
    const deadline = Date.now() + PROCESS_START_MS_MAX;
    while (Date.now() < deadline) {
      if (member.process === null) throw new Error(`${member.name} exited while starting\n${member.log.slice(-4000)}`);
      try {
        const answer = await this.get(member.gateway, "/health/ready");
        if (answer.status === 200) return;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    throw new Error(`${member.name} was not ready within ${PROCESS_START_MS_MAX} ms\n${member.log.slice(-4000)}`);
  }
}
