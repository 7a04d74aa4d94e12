/**
 * The path-routed example with real processes: 3 `orrery member` processes (TCP, file WAL,
 * gateways) and SQLite `orrery worker` processes, killed, paused and stopped with signals.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { RouterCluster, sleep, type HarnessResponse } from "./harness.ts";

const LEASE_MS = 1000;
const DRIFT = 0.01;
/** Slack for a loaded CI machine on top of the protocol's bound (three processes per core). */
const SLACK_MS = 1500;

describe("examples/router with real processes", { timeout: 240_000 }, () => {
  let cluster: RouterCluster;
  before(async () => {
    cluster = await RouterCluster.start({ members: 3, workers: 3, transport: "tcp", leaseMs: LEASE_MS, logLevel: "warn" });
  });
  after(async () => {
    await cluster?.destroy();
  });

  const gateways = () => cluster.liveMembers().map((m) => m.gateway);

  async function put(path: string, k: string, v: string, gateway = gateways()[0] as string): Promise<HarnessResponse> {
    return cluster.request(gateway, `${path}?k=${encodeURIComponent(k)}`, { method: "PUT", body: v });
  }

  async function owner(path: string): Promise<{ worker: string; epoch: number }> {
    const answer = await put(path, "probe", "x");
    assert.equal(answer.status, 200, `${path}: ${answer.text}`);
    return { worker: answer.headers.get("x-orrery-owner") as string, epoch: Number(answer.headers.get("x-orrery-epoch")) };
  }

  it("routes the same path to the same worker from every gateway while it lives (sticky)", async () => {
    const paths = Array.from({ length: 9 }, (_, i) => `/db/sticky-${i}`);
    const first = new Map<string, { worker: string; epoch: number }>();
    for (const path of paths) first.set(path, await owner(path));
    for (let round = 0; round < 3; round += 1) {
      for (const [i, path] of paths.entries()) {
        const answer = await cluster.get(gateways()[(i + round) % 3] as string, path);
        assert.equal(answer.status, 200, answer.text);
        assert.equal(answer.headers.get("x-orrery-owner"), first.get(path)?.worker, `${path} stays with its worker`);
        assert.equal(Number(answer.headers.get("x-orrery-epoch")), first.get(path)?.epoch);
        assert.equal(answer.json.items.probe, "x", "the database holds the write");
      }
    }
    assert.ok(new Set([...first.values()].map((o) => o.worker)).size >= 2, "paths spread over workers");
  });

  it("serves a SIGKILLed worker's paths from other workers within L(1+ρ) plus slack, with higher epochs and nothing lost", async () => {
    const paths = Array.from({ length: 9 }, (_, i) => `/db/kill-${i}`);
    const owners = new Map<string, { worker: string; epoch: number }>();
    for (const path of paths) {
      owners.set(path, await owner(path));
      assert.equal((await put(path, "before-kill", path)).status, 200);
    }
    const victim = [...owners.values()][0]?.worker as string;
    const victimPaths = paths.filter((p) => owners.get(p)?.worker === victim);
    const killedAt = performance.now();
    await cluster.signal(victim, "SIGKILL");
    const waiting = new Set(victimPaths);
    while (waiting.size > 0 && performance.now() - killedAt < 20_000) {
      for (const path of [...waiting]) {
        const answer = await cluster.get(gateways()[0] as string, path);
        if (answer.status === 200) {
          waiting.delete(path);
          assert.notEqual(answer.headers.get("x-orrery-owner"), victim);
          assert.ok(Number(answer.headers.get("x-orrery-epoch")) > (owners.get(path)?.epoch as number), "a new grant");
          assert.equal(answer.json.items["before-kill"], path, "the write acknowledged before the kill is there");
        } else {
          assert.equal(answer.status, 503, `unavailable, never wrong, during the failover: ${answer.text}`);
        }
      }
      await sleep(20);
    }
    const failoverMs = performance.now() - killedAt;
    assert.equal(waiting.size, 0, `${[...waiting].join(", ")} never answered\n${cluster.logs()}`);
    assert.ok(failoverMs <= LEASE_MS * (1 + DRIFT) + SLACK_MS, `failover took ${failoverMs.toFixed(0)} ms`);
    await cluster.addWorker(victim); // back for the next tests
  });

  it("a worker paused past its lease serves nothing it lost, and its late write is refused by the fence", async () => {
    const path = "/db/paused";
    const was = await owner(path);
    const paused = cluster.find(was.worker);
    // A write that passes the lease check, then waits 1.5 s before its transaction: the pause
    // lands in that wait, so only the database's fence can stop it.
    const late = cluster
      .request(paused.address, `${path}?k=late&delayMs=1500`, {
        method: "PUT",
        body: "from the paused owner",
        headers: { "x-orrery-key": path, "x-orrery-epoch": String(was.epoch) },
        timeoutMs: 60_000,
      })
      .then(
        (answer) => answer,
        (error: unknown) => error as Error,
      );
    await sleep(200);
    await cluster.signal(was.worker, "SIGSTOP");
    const pausedAt = performance.now();
    let moved: { worker: string; epoch: number } | null = null;
    while (moved === null && performance.now() - pausedAt < 20_000) {
      // A request routed to the paused owner waits for the gateway's timeout (504): a paused
      // process looks like a slow one until its lease runs out.
      const answer = await cluster
        .request(gateways()[0] as string, `${path}?k=new-owner`, { method: "PUT", body: "from the new owner", timeoutMs: 1000 })
        .catch(() => null);
      if (answer?.status === 200) moved = { worker: answer.headers.get("x-orrery-owner") as string, epoch: Number(answer.headers.get("x-orrery-epoch")) };
      else await sleep(50);
    }
    assert.ok(moved !== null, `the path never moved\n${cluster.logs()}`);
    assert.notEqual(moved.worker, was.worker);
    assert.ok(moved.epoch > was.epoch);
    assert.ok(performance.now() - pausedAt >= LEASE_MS * (1 + DRIFT) - LEASE_MS / 4 - 50, "not before the lease ran out");
    await cluster.signal(was.worker, "SIGCONT");
    const lateAnswer = await late;
    assert.ok(!(lateAnswer instanceof Error), String(lateAnswer));
    assert.equal(lateAnswer.status, 409, lateAnswer.text);
    assert.equal(lateAnswer.headers.get("x-orrery-refused"), "stale-epoch");
    // The resumed worker serves nothing it lost, at the old epoch or the new one.
    for (const epoch of [was.epoch, moved.epoch]) {
      const direct = await cluster.request(paused.address, path, { headers: { "x-orrery-key": path, "x-orrery-epoch": String(epoch) } });
      assert.equal(direct.status, 409, direct.text);
    }
    const stored = await cluster.get(gateways()[1] as string, path);
    assert.equal(stored.json.items.late, undefined, "the late write is not in the database");
    assert.equal(stored.json.items["new-owner"], "from the new owner");
  });

  it("a worker stopped with SIGTERM hands its paths over without a failed request", async () => {
    const paths = Array.from({ length: 12 }, (_, i) => `/db/drain-${i}`);
    const owners = new Map<string, { worker: string; epoch: number }>();
    for (const path of paths) owners.set(path, await owner(path));
    const leaving = [...owners.values()][0]?.worker as string;
    let stop = false;
    const failures: string[] = [];
    let served = 0;
    const load = (async () => {
      for (let i = 0; !stop; i += 1) {
        const path = paths[i % paths.length] as string;
        const answer = await put(path, `load-${i}`, "v", gateways()[i % 3]);
        if (answer.status === 200) served += 1;
        else failures.push(`${path}: ${answer.status} ${answer.text}`);
      }
    })();
    await sleep(300);
    const code = await cluster.signal(leaving, "SIGTERM");
    await sleep(300);
    stop = true;
    await load;
    assert.equal(code, 0, `the worker exits cleanly\n${cluster.find(leaving).log.slice(-3000)}`);
    assert.deepEqual(failures, []);
    assert.ok(served > paths.length);
    for (const path of paths) assert.notEqual((await owner(path)).worker, leaving);
  });
});
