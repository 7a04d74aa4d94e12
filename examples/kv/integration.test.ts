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
import { ProcessCluster, sleep } from "./harness.ts";

const CLIENTS = 6;
const KEYS = ["a", "b", "c"];
const REQUEST_TIMEOUT_MS = 3000;

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
  describe(`a three-member cluster of processes over ${transport}`, { timeout: 120_000 }, () => {
    it("stays linearizable across a leader SIGKILL, commits again, and the restarted member catches up", async () => {
      const cluster = await ProcessCluster.start(3, transport);
      try {
        const history = new History();
        let done = false;
        const clients = Array.from({ length: CLIENTS }, (_, n) => client(n, cluster, history, () => done));
        await sleep(1500);
        const leader = await cluster.waitForLeader();
        assert.ok(history.operations.some((o) => o.output !== null && o.input.kind !== "get"), "writes commit");
        const killedUs = nowUs();
        await cluster.kill(leader);
        const next = await cluster.waitForLeader();
        assert.notEqual(next, leader);
        await sleep(1500);
        cluster.spawn(cluster.member(leader));
        await sleep(2000);
        done = true;
        await Promise.all(clients);
        assert.ok(history.writesAfter(killedUs) > 0, "writes succeed after the leader's SIGKILL");

        const leaderNow = await cluster.waitForLeader();
        const commit = (await cluster.status(leaderNow))?.commit ?? 0;
        await cluster.waitForApplied(leader, commit);
        for (const key of KEYS) {
          const a = await fetch(`${cluster.url(leaderNow)}/kv/${key}`).then((r) => r.text());
          const b = await fetch(`${cluster.url(leader)}/kv/${key}`).then((r) => r.text());
          assert.equal(b, a, `the restarted member agrees on ${key}`);
        }

        const verdict = checkLinearizability(history.operations);
        assert.equal(verdict.status, "ok", JSON.stringify(verdict).slice(0, 2000));
        const known = history.operations.filter((o) => o.output !== null).length;
        assert.ok(known > 50, `enough operations completed (${known})`);
      } catch (error) {
        throw new Error(`${(error as Error).message}\n${cluster.logs()}`, { cause: error });
      } finally {
        await cluster.destroy();
      }
    });

    it("shuts a member down gracefully on SIGTERM, handing leadership over", async () => {
      const cluster = await ProcessCluster.start(3, transport);
      try {
        const leader = await cluster.waitForLeader();
        const res = await fetch(`${cluster.url(leader)}/kv/x`, { method: "PUT", body: "1" });
        assert.equal(res.status, 204);
        assert.equal(await cluster.stop(leader), 0, "exit status 0 after SIGTERM");
        const next = await cluster.waitForLeader(5000);
        assert.notEqual(next, leader);
        const after = await fetch(`${cluster.url(next)}/kv/x`);
        assert.equal(await after.text(), "1");
      } finally {
        await cluster.destroy();
      }
    });
  });
}
