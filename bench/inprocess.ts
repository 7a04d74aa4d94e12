/**
 * Commits per second of three members in one process through the library API (issue #7): each
 * member has its own file WAL (fsync on) in a fresh temporary directory, and the members talk over
 * the in-process memory transport (real frame encoding, no sockets) or, with `--transport tcp`,
 * over TCP or HTTP on loopback (`--transport tcp|http`). A fixed number of proposals are kept in flight (`--inflight`, default 256)
 * against the leader for `--seconds` (default 5, after a 1 s warm-up); each resolves once applied
 * on the leader. The memory transport passes messages by reference, as an in-process deployment
 * would; `--encode` makes it encode and decode every message as the network transports do. Prints one JSON object: commits/s, p50/p99 latency, fsyncs per second per member
 * (so that entries per fsync shows the group commit), and peak heap.
 *
 * Run: `npm run bench:inprocess` (or `node --import tsx bench/inprocess.ts --seconds 5`).
 * `INPROCESS_BENCH_SECONDS` overrides `--seconds` (the smoke test sets it small).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { createNode, type OrreryNode } from "../lib/index.ts";
import type { StateMachine } from "../lib/host/options.ts";
import { FileStorage } from "../lib/storage/file.ts";
import { MemoryNetwork } from "../transports/memory/memory.ts";
import type { Transport } from "../transports/transport.ts";
import { freePorts } from "../lib/free-ports.ts";

const COMMAND_BYTES = 100;
const WARMUP_SECONDS = 1;
const IDS = ["n1", "n2", "n3"] as const;

/** Counts commands; its snapshot is the count. */
class CountingMachine implements StateMachine<number> {
  count = 0;
  apply(): number {
    this.count += 1;
    return this.count;
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(String(this.count));
  }
  restore(data: Uint8Array): void {
    this.count = Number(new TextDecoder().decode(data));
  }
}

interface Settings {
  readonly seconds: number;
  readonly inflight: number;
  readonly transport: "memory" | "tcp" | "http";
  /** Memory transport only: encode messages into frames (as on the wire) rather than pass them. */
  readonly encode: boolean;
}

function settings(): Settings {
  const { values } = parseArgs({
    options: {
      seconds: { type: "string", default: "5" },
      inflight: { type: "string", default: "256" },
      transport: { type: "string", default: "memory" },
      encode: { type: "boolean", default: false },
    },
  });
  const seconds = Number(process.env.INPROCESS_BENCH_SECONDS ?? values.seconds);
  const inflight = Number(values.inflight);
  if (!(seconds > 0) || !Number.isSafeInteger(inflight) || inflight < 1) throw new Error("bad --seconds or --inflight");
  const transport = values.transport;
  if (transport !== "memory" && transport !== "tcp" && transport !== "http") throw new Error("--transport memory|tcp|http");
  return { seconds, inflight, transport, encode: values.encode ?? false };
}

async function makeTransports(kind: Settings["transport"], encode: boolean): Promise<{ transports: Transport[]; members: Record<string, string> }> {
  if (kind === "memory") {
    const network = new MemoryNetwork();
    return { transports: IDS.map((id) => network.transport({ id, encode })), members: Object.fromEntries(IDS.map((id) => [id, id])) };
  }
  const create =
    kind === "tcp"
      ? (await import("../transports/tcp/tcp.ts")).createTcpTransport
      : (await import("../transports/http/http.ts")).createHttpTransport;
  const ports = await freePorts(IDS.length);
  const members = Object.fromEntries(IDS.map((id, i) => [id, `127.0.0.1:${ports[i]}`]));
  const transports = IDS.map((id) => create({ id, clusterId: "bench", listen: members[id] as string, peers: members }));
  return { transports, members };
}

/** Runs `inflight` loops of sequential proposals until `until`; returns latencies in ms. */
async function drive(leader: OrreryNode<number>, inflight: number, until: number): Promise<number[]> {
  const latencies: number[] = [];
  const command = new Uint8Array(COMMAND_BYTES).fill(120);
  const loop = async () => {
    while (performance.now() < until) {
      const started = performance.now();
      await leader.propose(command);
      latencies.push(performance.now() - started);
    }
  };
  await Promise.all(Array.from({ length: inflight }, loop));
  return latencies;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

async function main(): Promise<void> {
  const s = settings();
  const dir = await mkdtemp(join(tmpdir(), "orrery-inprocess-"));
  const { transports, members } = await makeTransports(s.transport, s.encode);
  const nodes: OrreryNode<number>[] = [];
  try {
    for (const [i, id] of IDS.entries()) {
      nodes.push(
        await createNode<number>({
          id,
          members,
          transport: transports[i] as Transport,
          storage: await FileStorage.open(join(dir, id)),
          stateMachine: new CountingMachine(),
          snapshotEntries: 100_000,
        }),
      );
    }
    const leaderId = await (nodes[0] as OrreryNode<number>).waitForLeader(10_000);
    const leader = nodes.find((n) => n.id === leaderId) as OrreryNode<number>;
    await drive(leader, s.inflight, performance.now() + WARMUP_SECONDS * 1000);
    const persistsBefore = nodes.map((n) => persists(n.metrics()));
    const started = performance.now();
    const latencies = await drive(leader, s.inflight, started + s.seconds * 1000);
    const elapsed = (performance.now() - started) / 1000;
    const persistsAfter = nodes.map((n) => persists(n.metrics()));
    latencies.sort((a, b) => a - b);
    const commitsPerSecond = latencies.length / elapsed;
    const fsyncsPerSecond = nodes.map((n, i) => ({
      id: n.id,
      leader: n.id === leaderId,
      fsyncsPerSecond: round(((persistsAfter[i] ?? 0) - (persistsBefore[i] ?? 0)) / elapsed),
    }));
    console.log(
      JSON.stringify({
        bench: "inprocess",
        node: process.version,
        transport: s.transport,
        ...(s.transport === "memory" ? { messagesEncoded: s.encode } : {}),
        members: IDS.length,
        commandBytes: COMMAND_BYTES,
        inflight: s.inflight,
        seconds: round(elapsed),
        commits: latencies.length,
        commitsPerSecond: round(commitsPerSecond),
        p50Ms: round(quantile(latencies, 0.5)),
        p99Ms: round(quantile(latencies, 0.99)),
        entriesPerLeaderAppend: round(commitsPerSecond / Math.max(1, fsyncsPerSecond.find((f) => f.leader)?.fsyncsPerSecond ?? 1)),
        fsyncs: fsyncsPerSecond,
        heapUsedMb: round(process.memoryUsage().heapUsed / 1e6),
        rssMb: round(process.memoryUsage().rss / 1e6),
        target: { commitsPerSecond: ">= 50000", met: commitsPerSecond >= 50_000 },
      }),
    );
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
    await rm(dir, { recursive: true, force: true });
  }
}

/** The number of persists a member made, from its metrics. */
function persists(metrics: string): number {
  const match = /^orrery_storage_append_seconds_count\{[^}]*\} (\d+)$/m.exec(metrics);
  return match === null ? 0 : Number(match[1]);
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

await main();
