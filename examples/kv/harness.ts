/**
 * Test support: a cluster of `orrery node` processes on loopback, each with its own WAL directory
 * under one temporary folder, that can be killed (SIGKILL), stopped (SIGTERM) and restarted from
 * its WAL. Used by the integration tests. Every wait is on a condition and bounded, generously, so
 * that the tests pass on a machine whose cores are busy with other work; a cluster whose start
 * fails kills what it started.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePorts } from "../../lib/free-ports.ts";
import { sleep, withDeadline } from "../deadline.ts";

export { sleep };

const BIN = fileURLToPath(new URL("../../cli/bin.mjs", import.meta.url));

/**
 * How long a member may take to start and answer `/status`, and the default bound of every other
 * wait: three processes compiling TypeScript on two busy cores take many seconds.
 */
export const START_TIMEOUT_MS = 60_000;

/** How long one `/status` request may take. */
const STATUS_TIMEOUT_MS = 5_000;

/** How long a signalled process may take to exit; after it, a SIGTERM is followed by SIGKILL. */
const EXIT_TIMEOUT_MS = 30_000;

/** What `/status` answers. */
export interface MemberStatus {
  readonly id: string;
  readonly leader: string | null;
  readonly role: string;
  readonly term: number;
  readonly commit: number;
  readonly applied: number;
}

/** One member process. */
export interface ProcessMember {
  readonly id: string;
  readonly peer: string;
  readonly api: string;
  readonly dataDir: string;
  process: ChildProcess | null;
  /** Everything the process wrote to stderr (its JSON log), for failure messages. */
  log: string;
}

/** A cluster of member processes. */
export class ProcessCluster {
  readonly dir = mkdtempSync(join(tmpdir(), "orrery-cluster-"));
  readonly members: ProcessMember[] = [];

  private constructor(
    readonly transport: "tcp" | "http",
    private readonly extraArgs: readonly string[],
  ) {}

  /** Starts `size` members and waits until every one knows a leader. */
  static async start(size: number, transport: "tcp" | "http", extraArgs: readonly string[] = []): Promise<ProcessCluster> {
    const cluster = new ProcessCluster(transport, extraArgs);
    const ports = await freePorts(size * 2);
    for (let i = 0; i < size; i += 1) {
      const id = `n${i + 1}`;
      cluster.members.push({
        id,
        peer: `127.0.0.1:${ports[i]}`,
        api: `127.0.0.1:${ports[size + i]}`,
        dataDir: join(cluster.dir, id),
        process: null,
        log: "",
      });
    }
    try {
      for (const m of cluster.members) cluster.spawn(m);
      await cluster.waitForLeader();
    } catch (error) {
      // The caller never gets the cluster to destroy, so it is destroyed here.
      await cluster.destroy();
      throw error;
    }
    return cluster;
  }

  /** The API URL of member `id`. */
  url(id: string): string {
    return `http://${this.member(id).api}`;
  }

  member(id: string): ProcessMember {
    const m = this.members.find((x) => x.id === id);
    if (m === undefined) throw new Error(`no member ${id}`);
    return m;
  }

  /** Starts (or restarts) a member's process on its WAL. */
  spawn(m: ProcessMember): void {
    const members = this.members.map((x) => `${x.id}=${x.peer}`).join(",");
    const clients = this.members.map((x) => `${x.id}=${x.api}`).join(",");
    const child = spawn(
      process.execPath,
      [BIN, "node", "--id", m.id, "--members", members, "--clients", clients, "--client", m.api,
        "--data", m.dataDir, "--transport", this.transport, "--log-level", "info", ...this.extraArgs],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (text: string) => {
      m.log = (m.log + text).slice(-200_000);
    });
    m.process = child;
  }

  /** SIGKILLs a member and waits for the process to be gone. */
  async kill(id: string): Promise<void> {
    await this.signal(id, "SIGKILL");
  }

  /** SIGTERMs a member (graceful) and waits for it to exit; resolves to its exit code. */
  async stop(id: string): Promise<number | null> {
    return this.signal(id, "SIGTERM");
  }

  private async signal(id: string, signal: NodeJS.Signals): Promise<number | null> {
    const m = this.member(id);
    const child = m.process;
    if (child === null) return null;
    if (child.exitCode !== null || child.signalCode !== null) {
      m.process = null;
      return child.exitCode;
    }
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill(signal);
    try {
      return await withDeadline(exited, EXIT_TIMEOUT_MS, `${id} exiting after ${signal}`);
    } catch (error) {
      // A process that ignores SIGTERM must not outlive the test; SIGKILL cannot be ignored.
      child.kill("SIGKILL");
      await exited;
      throw error;
    } finally {
      m.process = null;
    }
  }

  /** `/status` of a member, or null when it does not answer. */
  async status(id: string): Promise<MemberStatus | null> {
    try {
      const res = await fetch(`${this.url(id)}/status`, { signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
      return res.ok ? ((await res.json()) as MemberStatus) : null;
    } catch {
      return null;
    }
  }

  /** Waits until every running member reports the same leader; returns its id. */
  async waitForLeader(timeoutMs = START_TIMEOUT_MS): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const running = this.members.filter((m) => m.process !== null);
      const statuses = await Promise.all(running.map((m) => this.status(m.id)));
      const leaders = new Set(statuses.map((s) => s?.leader ?? null));
      const [leader] = [...leaders];
      const leaderRunning = running.some((m) => m.id === leader);
      if (leaders.size === 1 && leader !== null && leader !== undefined && leaderRunning) {
        const own = statuses.find((s) => s?.id === leader);
        if (own?.role === "leader") return leader;
      }
      await sleep(50);
    }
    throw new Error(`no agreed leader within ${timeoutMs} ms\n${this.logs()}`);
  }

  /** Waits until member `id` has applied at least `index`. */
  async waitForApplied(id: string, index: number, timeoutMs = START_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const s = await this.status(id);
      if (s !== null && s.applied >= index) return;
      await sleep(50);
    }
    throw new Error(`${id} did not apply ${index} within ${timeoutMs} ms\n${this.logs()}`);
  }

  /** The last lines of every member's log, for failure messages. */
  logs(lines = 15): string {
    return this.members
      .map((m) => `--- ${m.id}\n${m.log.trim().split("\n").slice(-lines).join("\n")}`)
      .join("\n");
  }

  /** Kills every member and removes the data, even when a kill fails. */
  async destroy(): Promise<void> {
    try {
      await Promise.allSettled(this.members.map((m) => this.kill(m.id)));
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/** Polls `done` every 50 ms until it holds; throws naming `what` (and `details()`) after `timeoutMs`. */
export async function waitUntil(
  what: string,
  done: () => boolean | Promise<boolean>,
  options: { readonly timeoutMs?: number; readonly details?: () => string } = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? START_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${options.details?.() ?? ""}`);
    await sleep(50);
  }
}
