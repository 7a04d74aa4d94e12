/**
 * `orrery demo` (and `npm start`): three members and three SQLite workers on loopback, requests to
 * many paths through every member's gateway, then a worker and the leader are SIGKILLed; the demo
 * shows the paths served again by new owners at higher epochs, prints how long each failover took,
 * and checks that every acknowledged write is still there. Exits 0 when nothing was lost.
 */
import { parseArgs } from "node:util";
import { ConfigError } from "../../lib/errors.ts";
import { RouterCluster, sleep, type HarnessResponse } from "./harness.ts";

/** The usage text of `orrery demo`. */
export const DEMO_USAGE = `Usage: orrery demo [--keep] [--paths N] [--transport tcp|http] [--lease-ms N]

Starts 3 members (TCP, file WAL in a temporary folder) and 3 workers that own SQLite databases,
sends writes to many /db/<name> paths through every member's gateway, prints who owns what, then
SIGKILLs a worker and then the leader, and shows the paths answered again by new owners with
new epochs and nothing acknowledged lost. Prints the failover times.

Options:
  --keep                  leave the cluster running afterwards and print its URLs (Ctrl-C stops it)
  --paths N               how many databases to write to (default 12)
  --transport tcp|http    how members and workers talk (default tcp)
  --lease-ms N            the worker lease (default 2000)
`;

/** How long the demo waits for a failover before it calls it failed (ms). */
export const DEMO_FAILOVER_MS_MAX = 30_000;

interface Ack {
  readonly path: string;
  readonly k: string;
  readonly v: string;
}

/** Runs the demo; resolves to the exit status. */
export async function runDemo(argv: readonly string[], out: (text: string) => void, err: (text: string) => void): Promise<number> {
  let keep: boolean;
  let paths: string[];
  let transport: "tcp" | "http";
  let leaseMs: number;
  try {
    const { values } = parseArgs({
      args: [...argv],
      strict: true,
      options: {
        keep: { type: "boolean", default: false },
        paths: { type: "string", default: "12" },
        transport: { type: "string", default: "tcp" },
        "lease-ms": { type: "string", default: "2000" },
      },
    });
    const count = Number(values.paths);
    if (!Number.isSafeInteger(count) || count < 1 || count > 1000) throw new ConfigError("--paths", "is an integer in [1, 1000]");
    if (values.transport !== "tcp" && values.transport !== "http") throw new ConfigError("--transport", "is tcp or http");
    leaseMs = Number(values["lease-ms"]);
    if (!Number.isSafeInteger(leaseMs) || leaseMs < 100) throw new ConfigError("--lease-ms", "is an integer >= 100");
    keep = values.keep as boolean;
    transport = values.transport;
    paths = Array.from({ length: count }, (_, i) => `/db/demo-${String(i).padStart(2, "0")}`);
  } catch (error) {
    err(`orrery demo: ${(error as Error).message}\n\n${DEMO_USAGE}`);
    return 2;
  }
  const say = (line = "") => out(`${line}\n`);
  say(`Starting 3 members (${transport}, file WAL) and 3 workers (SQLite) on loopback...`);
  const cluster = await RouterCluster.start({ members: 3, workers: 3, transport, leaseMs, logLevel: "warn" });
  let ok = false;
  try {
    say(`  folder ${cluster.dir}`);
    for (const m of cluster.members) say(`  member ${m.name}: gateway http://${m.gateway}`);
    for (const w of cluster.workers) say(`  worker ${w.name}: http://${w.address}`);
    const acks: Ack[] = [];
    let seq = 0;
    const writeAll = async (round: string): Promise<Map<string, { worker: string; epoch: number }>> => {
      const owners = new Map<string, { worker: string; epoch: number }>();
      for (const path of paths) {
        const k = `${round}-${seq}`;
        seq += 1;
        const answer = await writeUntilAcked(cluster, path, k, `value of ${k}`);
        acks.push({ path, k, v: `value of ${k}` });
        owners.set(path, { worker: answer.headers.get("x-orrery-owner") ?? "?", epoch: Number(answer.headers.get("x-orrery-epoch")) });
      }
      return owners;
    };

    say();
    say(`Writing to ${paths.length} paths through all three gateways...`);
    const before = await writeAll("first");
    printOwners(say, before);

    const counts = new Map<string, number>();
    for (const { worker } of before.values()) counts.set(worker, (counts.get(worker) ?? 0) + 1);
    const victim = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]?.[0] as string;
    const victimPaths = paths.filter((p) => before.get(p)?.worker === victim);
    say();
    say(`SIGKILL worker ${victim} (owner of ${victimPaths.length} paths)...`);
    const killedAt = performance.now();
    await cluster.signal(victim, "SIGKILL");
    const workerFailover = await failover(cluster, victimPaths, killedAt);
    say(`  its paths answer again after ${workerFailover.allMs.toFixed(0)} ms (first after ${workerFailover.firstMs.toFixed(0)} ms; lease ${leaseMs} ms x (1 + 0.01) bounds the wait)`);
    const afterWorker = await writeAll("after-worker");
    printOwners(say, afterWorker, before);

    const leader = await cluster.leader();
    if (leader === null) throw new Error("no leader known");
    say();
    say(`SIGKILL the leader, member ${leader}...`);
    const leaderKilledAt = performance.now();
    await cluster.signal(leader, "SIGKILL");
    const leaderFailover = await failover(cluster, paths, leaderKilledAt);
    const newLeader = await waitForLeader(cluster);
    say(`  new leader ${newLeader}; every path answers again after ${leaderFailover.allMs.toFixed(0)} ms (first after ${leaderFailover.firstMs.toFixed(0)} ms)`);
    const afterLeader = await writeAll("after-leader");
    printOwners(say, afterLeader, afterWorker);

    say();
    say("Checking every acknowledged write...");
    const lost = await findLost(cluster, acks);
    say(`  ${acks.length} writes acknowledged, ${acks.length - lost.length} found, ${lost.length} lost`);
    for (const ack of lost.slice(0, 10)) say(`  LOST ${ack.path} ${ack.k}`);
    say();
    say("Failover times (ms):");
    say(`  worker SIGKILL -> its paths served elsewhere: ${workerFailover.allMs.toFixed(0)}`);
    say(`  leader SIGKILL -> every path served:          ${leaderFailover.allMs.toFixed(0)}`);
    ok = lost.length === 0;
    if (keep) {
      say();
      say("Still running (--keep). Try:");
      const live = cluster.liveMembers()[0];
      say(`  curl -X PUT 'http://${live?.gateway}/db/mine?k=hello' -d world`);
      say(`  curl 'http://${live?.gateway}/db/mine'`);
      say(`  curl 'http://${live?.gateway}/status'`);
      say("Ctrl-C stops it and removes the folder.");
      await new Promise<void>((resolve) => {
        process.once("SIGINT", () => resolve());
        process.once("SIGTERM", () => resolve());
      });
    }
  } catch (error) {
    err(`orrery demo failed: ${(error as Error).message}\n${cluster.logs(10)}\n`);
    ok = false;
  } finally {
    await cluster.destroy();
  }
  say(ok ? "Demo passed." : "Demo FAILED.");
  return ok ? 0 : 1;
}

/** PUTs one item through a live gateway, retrying (another gateway, after Retry-After) until a 200. */
async function writeUntilAcked(cluster: RouterCluster, path: string, k: string, v: string): Promise<HarnessResponse> {
  const deadline = performance.now() + DEMO_FAILOVER_MS_MAX;
  for (let attempt = 0; performance.now() < deadline; attempt += 1) {
    const members = cluster.liveMembers();
    const gateway = members[attempt % members.length]?.gateway as string;
    try {
      const answer = await cluster.request(gateway, `${path}?k=${encodeURIComponent(k)}`, { method: "PUT", body: v });
      if (answer.status === 200) return answer;
    } catch {
      // a dead gateway: the next one
    }
    await sleep(50);
  }
  throw new Error(`no write to ${path} was acknowledged within ${DEMO_FAILOVER_MS_MAX} ms`);
}

/** Polls each path (GET through live gateways) until all answer 200: the time to the first and to the last. */
async function failover(cluster: RouterCluster, paths: readonly string[], since: number): Promise<{ firstMs: number; allMs: number }> {
  const waiting = new Set(paths);
  let firstMs = Number.NaN;
  while (waiting.size > 0) {
    if (performance.now() - since > DEMO_FAILOVER_MS_MAX) throw new Error(`${waiting.size} paths did not answer within ${DEMO_FAILOVER_MS_MAX} ms`);
    const members = cluster.liveMembers();
    await Promise.all(
      [...waiting].map(async (path, i) => {
        try {
          const answer = await cluster.get(members[i % members.length]?.gateway as string, path);
          if (answer.status !== 200) return;
          waiting.delete(path);
          if (Number.isNaN(firstMs)) firstMs = performance.now() - since;
        } catch {
          // not yet
        }
      }),
    );
    if (waiting.size > 0) await sleep(20);
  }
  return { firstMs: Number.isNaN(firstMs) ? 0 : firstMs, allMs: performance.now() - since };
}

async function waitForLeader(cluster: RouterCluster): Promise<string> {
  const deadline = performance.now() + DEMO_FAILOVER_MS_MAX;
  while (performance.now() < deadline) {
    const leader = await cluster.leader();
    if (leader !== null && cluster.liveMembers().some((m) => m.name === leader)) return leader;
    await sleep(50);
  }
  throw new Error("no new leader");
}

/** The acknowledged writes a GET of their database does not show. */
async function findLost(cluster: RouterCluster, acks: readonly Ack[]): Promise<Ack[]> {
  const byPath = new Map<string, Ack[]>();
  for (const ack of acks) byPath.set(ack.path, [...(byPath.get(ack.path) ?? []), ack]);
  const lost: Ack[] = [];
  for (const [path, expected] of byPath) {
    let answer: HarnessResponse | null = null;
    for (let attempt = 0; attempt < 100 && answer?.status !== 200; attempt += 1) {
      const members = cluster.liveMembers();
      answer = await cluster.get(members[attempt % members.length]?.gateway as string, path).catch(() => null);
      if (answer?.status !== 200) await sleep(50);
    }
    const items = (answer?.json?.items ?? {}) as Record<string, string>;
    for (const ack of expected) if (items[ack.k] !== ack.v) lost.push(ack);
  }
  return lost;
}

function printOwners(
  say: (line?: string) => void,
  owners: ReadonlyMap<string, { worker: string; epoch: number }>,
  previous?: ReadonlyMap<string, { worker: string; epoch: number }>,
): void {
  for (const [path, { worker, epoch }] of owners) {
    const was = previous?.get(path);
    const change = was === undefined || (was.worker === worker && was.epoch === epoch) ? "" : `   (was ${was.worker} @ ${was.epoch})`;
    say(`  ${path.padEnd(16)} -> ${worker} @ epoch ${epoch}${change}`);
  }
}
