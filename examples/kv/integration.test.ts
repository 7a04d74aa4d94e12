/**
 * Integration tests with real processes: three `orrery node` members on loopback, over TCP and over
 * HTTP. Concurrent clients send key-value operations to random members while the leader is
 * SIGKILLed and later restarted from its WAL; the recorded history must pass the simulator's
 * linearizability checker, writes must succeed again after the kill, and the restarted member must
 * catch up.
 */
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { describe, it } from "node:test";
import { checkLinearizability } from "../../sim/checkers/linearizability.ts";
import type { KvInput, KvOutput, Operation } from "../../sim/history.ts";
import { ProcessCluster, sleep, waitUntil } from "./harness.ts";

const CLIENTS = 6;
const KEYS = ["a", "b", "c"];
/** Longer than the members' own proposal timeout (5 s), so that a busy member answers instead of leaving a write unknown. */
const REQUEST_TIMEOUT_MS = 10_000;
/** How many operations with a known outcome a run must record before it stops its clients. */
const KNOWN_OPERATIONS_MIN = 50;
/** How many operations the clients record after the killed member restarts, so that they run across the restart. */
const OPERATIONS_AFTER_RESTART_MIN = 20;
/** Every file runs under a timeout; this one starts four clusters of three processes. */
const SUITE_MS_MAX = 300_000;

/** What one HTTP attempt of an operation came to. */
type Outcome =
  | { readonly kind: "ok"; readonly output: KvOutput }
  /** Certainly not applied (the node said so): left out of the history. */
  | { readonly kind: "refused" }
  /** Maybe applied: recorded with an unknown outcome. */
  | { readonly kind: "unknown" };

async function perform(base: string, input: KvInput): Promise<Outcome> {
  const key = encodeURIComponent(input.key);
  let res: Response;
  try {
    const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    if (input.kind === "get") res = await fetch(`${base}/kv/${key}`, { signal });
    else if (input.kind === "put") res = await fetch(`${base}/kv/${key}`, { method: "PUT", body: input.value, signal });
    else {
      const body = JSON.stringify({ expected: input.expected, value: input.value });
      res = await fetch(`${base}/kv/${key}?cas`, { method: "POST", body, signal });
    }
  } catch {
    // Refused connections (a killed member) never reached it, but a reset mid-request may have.
    return input.kind === "get" ? { kind: "refused" } : { kind: "unknown" };
  }
  const text = await res.text().catch(() => "");
  if (input.kind === "get" && (res.status === 200 || res.status === 404)) {
    return { kind: "ok", output: { kind: "get", value: res.status === 200 ? text : null } };
  }
  if (input.kind === "put" && res.status === 204) return { kind: "ok", output: { kind: "put" } };
  if (input.kind === "cas" && res.status === 200) {
    return { kind: "ok", output: { kind: "cas", ok: (JSON.parse(text) as { ok: boolean }).ok } };
  }
  if (input.kind === "get") return { kind: "refused" };
  const code = res.status === 503 ? ((JSON.parse(text) as { error?: string }).error ?? "") : "";
  // Not the leader (not forwarded or refused by it) and dropped mean the write was never applied.
  if (code === "ORRERY_NOT_LEADER" || code === "ORRERY_DROPPED") return { kind: "refused" };
  return { kind: "unknown" };
}

class History {
  readonly operations: Operation[] = [];
  private nextId = 0;
  known(): number {
    return this.operations.filter((o) => o.output !== null).length;
  }
  writesAfter(us: number): number {
    return this.operations.filter((o) => o.input.kind !== "get" && o.output !== null && o.invokedUs > us).length;
  }
  async record(client: number, base: string, input: KvInput): Promise<void> {
    const invokedUs = nowUs();
    const outcome = await perform(base, input);
    if (outcome.kind === "refused") return;
    const id = this.nextId++;
    if (outcome.kind === "unknown") {
      this.operations.push({ id, client, input, output: null, invokedUs, returnedUs: null });
    } else {
      this.operations.push({ id, client, input, output: outcome.output, invokedUs, returnedUs: nowUs() });
    }
  }
}

/** The body of a GET, bounded like every request of these tests. */
async function getText(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  return res.text();
}

function nowUs(): number {
  return Math.round(performance.now() * 1000);
}

async function client(n: number, cluster: ProcessCluster, history: History, until: () => boolean): Promise<void> {
  let seq = 0;
  const seen = new Map<string, string | null>();
  while (!until()) {
    const running = cluster.members.filter((m) => m.process !== null);
    const member = running[Math.floor(Math.random() * running.length)];
    if (member === undefined) {
      await sleep(20);
      continue;
    }
    const key = KEYS[Math.floor(Math.random() * KEYS.length)] as string;
    const dice = Math.random();
    const value = `c${n}-${seq++}`;
    const input: KvInput =
      dice < 0.4
        ? { kind: "put", key, value }
        : dice < 0.8
          ? { kind: "get", key }
          : { kind: "cas", key, expected: seen.get(key) ?? null, value };
    await history.record(n, `http://${member.api}`, input);
    const last = history.operations[history.operations.length - 1];
    if (last?.input.key === key && last.output?.kind === "get") seen.set(key, last.output.value);
  }
}

for (const transport of ["tcp", "http"] as const) {
  describe(`a three-member cluster of processes over ${transport}`, { timeout: SUITE_MS_MAX }, () => {
    it("stays linearizable across a leader SIGKILL, commits again, and the restarted member catches up", async () => {
      const cluster = await ProcessCluster.start(3, transport);
      const history = new History();
      let done = false;
      let clients: Promise<void>[] = [];
      try {
        clients = Array.from({ length: CLIENTS }, (_, n) => client(n, cluster, history, () => done));
        // Each phase lasts until what it is for has happened, not for a fixed time, so that a busy
        // machine makes the run longer rather than failing it.
        await waitUntil("a write to commit", () => history.writesAfter(0) > 0);
        const leader = await cluster.waitForLeader();
        const killedUs = nowUs();
        await cluster.kill(leader);
        const next = await cluster.waitForLeader();
        assert.notEqual(next, leader);
        await waitUntil("a write to commit after the leader's SIGKILL", () => history.writesAfter(killedUs) > 0);
        cluster.spawn(cluster.member(leader));
        const recordedAtRestart = history.operations.length;
        await waitUntil(
          "the restarted member to answer, and the clients to run across its restart",
          async () =>
            history.operations.length >= recordedAtRestart + OPERATIONS_AFTER_RESTART_MIN &&
            history.known() > KNOWN_OPERATIONS_MIN &&
            (await cluster.status(leader)) !== null,
        );
        done = true;
        await Promise.all(clients);
        assert.ok(history.writesAfter(killedUs) > 0, "writes succeed after the leader's SIGKILL");

        const leaderNow = await cluster.waitForLeader();
        const commit = (await cluster.status(leaderNow))?.commit ?? 0;
        await cluster.waitForApplied(leader, commit);
        for (const key of KEYS) {
          const a = await getText(`${cluster.url(leaderNow)}/kv/${key}`);
          const b = await getText(`${cluster.url(leader)}/kv/${key}`);
          assert.equal(b, a, `the restarted member agrees on ${key}`);
        }

        const verdict = checkLinearizability(history.operations);
        assert.equal(verdict.status, "ok", JSON.stringify(verdict).slice(0, 2000));
        const known = history.known();
        assert.ok(known > KNOWN_OPERATIONS_MIN, `enough operations completed (${known})`);
      } catch (error) {
        throw new Error(`${(error as Error).message}\n${cluster.logs()}`, { cause: error });
      } finally {
        // Clients of a failed run stop too (each request is bounded), before their cluster goes.
        done = true;
        await Promise.allSettled(clients);
        await cluster.destroy();
      }
    });

    it("shuts a member down gracefully on SIGTERM, handing leadership over", async () => {
      const cluster = await ProcessCluster.start(3, transport);
      try {
        const leader = await cluster.waitForLeader();
        const res = await fetch(`${cluster.url(leader)}/kv/x`, { method: "PUT", body: "1", signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
        assert.equal(res.status, 204);
        assert.equal(await cluster.stop(leader), 0, "exit status 0 after SIGTERM");
        const next = await cluster.waitForLeader();
        assert.notEqual(next, leader);
        assert.equal(await getText(`${cluster.url(next)}/kv/x`), "1");
      } finally {
        await cluster.destroy();
      }
    });
  });
}
