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
/** The longest a test waits for something to happen: generous, so that a busy machine makes a test slower, not failed. */
const WAIT_MS_MAX = 60_000;
/** How long the paused owner's late write waits between its lease check and its transaction. */
const LATE_WRITE_DELAY_MS = 5_000;
/** How many requests the load must have served before the worker leaves, and again after. */
const SERVED_MIN = 12;

describe("examples/router with real processes", { timeout: 300_000 }, () => {
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

  it("serves a SIGKILLed worker's paths from other workers within L(1+ρ) plus slack, with higher epochs and nothing lost", async (t) => {
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
    while (waiting.size > 0 && performance.now() - killedAt < WAIT_MS_MAX) {
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
    t.diagnostic(`failover took ${failoverMs.toFixed(0)} ms`);
    assert.equal(waiting.size, 0, `${[...waiting].join(", ")} never answered\n${cluster.logs()}`);
    assert.ok(failoverMs <= LEASE_MS * (1 + DRIFT) + SLACK_MS, `failover took ${failoverMs.toFixed(0)} ms`);
    await cluster.addWorker(victim); // back for the next tests
  });

  it("a worker paused past its lease serves nothing it lost, and its late write is refused by the fence", async () => {
    const path = "/db/paused";
    const was = await owner(path);
    const paused = cluster.find(was.worker);
    // A write that passes the lease check, then waits LATE_WRITE_DELAY_MS before its transaction:
    // the pause lands in that wait, so only the database's fence can stop it.
    const late = cluster
      .request(paused.address, `${path}?k=late&delayMs=${LATE_WRITE_DELAY_MS}`, {
        method: "PUT",
        body: "from the paused owner",
        headers: { "x-orrery-key": path, "x-orrery-epoch": String(was.epoch) },
        timeoutMs: 60_000,
      })
      .then(
        (answer) => answer,
        (error: unknown) => error as Error,
      );
    try {
      // A deliberate gap, for the write to reach the worker and pass its lease check; nothing the
      // worker reports tells when it has. A busy machine has a fifth of the delay for it.
      await sleep(LATE_WRITE_DELAY_MS / 5);
      await cluster.signal(was.worker, "SIGSTOP");
      await pausedOwnerRefusedByFence(path, was, paused.address, late);
    } finally {
      // A failed test must not leave the worker paused for the tests after it.
      if (cluster.find(was.worker).stopped) await cluster.signal(was.worker, "SIGCONT");
    }
  });

  /** The rest of the pause test, from the SIGSTOP of the owner `was` of `path` on. */
  async function pausedOwnerRefusedByFence(
    path: string,
    was: { worker: string; epoch: number },
    pausedAddress: string,
    late: Promise<HarnessResponse | Error>,
  ): Promise<void> {
    const pausedAt = performance.now();
    let moved: { worker: string; epoch: number } | null = null;
    while (moved === null && performance.now() - pausedAt < WAIT_MS_MAX) {
      // A request routed to the paused owner waits for the gateway's timeout (504): a paused
      // process looks like a slow one until its lease runs out.
      const answer = await cluster
        .request(gateways()[0] as string, `${path}?k=new-owner`, { method: "PUT", body: "from the new owner", timeoutMs: 1000 })
        .catch(() => null);
      if (answer?.status === 200) moved = { worker: answer.headers.get("x-orrery-owner") as string, epoch: Number(answer.headers.get("x-orrery-epoch")) };
      else await sleep(50);
    }
    const movedAfterMs = performance.now() - pausedAt;
    assert.ok(moved !== null, `the path never moved\n${cluster.logs()}`);
    assert.notEqual(moved.worker, was.worker);
    assert.ok(moved.epoch > was.epoch);
    assert.ok(movedAfterMs >= LEASE_MS * (1 + DRIFT) - LEASE_MS / 4 - 50, "not before the lease ran out");
    // Resumed only once the late write's delay is surely over (it began before the pause), so
    // that the write goes straight to its transaction, before the worker can learn of its loss.
    while (performance.now() - pausedAt < LATE_WRITE_DELAY_MS) await sleep(50);
    await cluster.signal(was.worker, "SIGCONT");
    const lateAnswer = await late;
    assert.ok(!(lateAnswer instanceof Error), String(lateAnswer));
    assert.equal(lateAnswer.status, 409, lateAnswer.text);
    assert.equal(lateAnswer.headers.get("x-orrery-refused"), "stale-epoch");
    // The resumed worker serves nothing it lost, at the old epoch or the new one.
    for (const epoch of [was.epoch, moved.epoch]) {
      const direct = await cluster.request(pausedAddress, path, { headers: { "x-orrery-key": path, "x-orrery-epoch": String(epoch) } });
      assert.equal(direct.status, 409, direct.text);
    }
    const stored = await cluster.get(gateways()[1] as string, path);
    assert.equal(stored.json.items.late, undefined, "the late write is not in the database");
    assert.equal(stored.json.items["new-owner"], "from the new owner");
  }

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
    let code: number | null;
    try {
      // The load runs before the stop and goes on after it, for as long as these take.
      await waitServed(() => served >= SERVED_MIN, () => failures.length > 0);
      code = await cluster.signal(leaving, "SIGTERM");
      const servedAtStop = served;
      await waitServed(() => served >= servedAtStop + SERVED_MIN, () => failures.length > 0);
    } finally {
      // Stopped even when the test fails, so that no request loop outlives it (each request is bounded).
      stop = true;
      await load;
    }
    assert.equal(code, 0, `the worker exits cleanly\n${cluster.find(leaving).log.slice(-3000)}`);
    assert.deepEqual(failures, []);
    assert.ok(served > paths.length);
    for (const path of paths) assert.notEqual((await owner(path)).worker, leaving);
  });
});

/** Polls until `done` holds, or `failed` does (the caller then reports what failed); throws after {@link WAIT_MS_MAX}. */
async function waitServed(done: () => boolean, failed: () => boolean): Promise<void> {
  const deadline = performance.now() + WAIT_MS_MAX;
  while (!done() && !failed()) {
    if (performance.now() > deadline) throw new Error(`the load was not served within ${WAIT_MS_MAX} ms`);
    await sleep(20);
  }
}
