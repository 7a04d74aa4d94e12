/**
 * Placement in simulated time: `createPlacementMember` and the worker agent (`startWorkerAgent`),
 * the real host, on the simulator's clocks, network and disks (sim/harness.ts). Requests are
 * routed with the gateway's own rules (`routeRequest`) and served by the agent (`serve`); only
 * the HTTP bytes are left to lib/runtime's tests. Lease times are exact here, so the bounds are
 * asserted tightly.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SimHarness } from "../../sim/harness.ts";
import { ClosedError, TimeoutError } from "../errors.ts";
import { encodePlacementCommand } from "../placement/commands.ts";
import type { PlacementResult } from "../placement/table.ts";
import { routeRequest, type AttemptResult } from "./gateway-routing.ts";
import { createNode } from "./node.ts";
import { createPlacementMember, type PlacementMember } from "./placement-member.ts";
import { PlacementMachine } from "./placement-machine.ts";
import { startWorkerAgent, type WorkerAgent, type WorkerAgentOptions } from "./worker.ts";
import { workerPeerId } from "./worker-protocol.ts";

const LEASE_MS = 600;
const DRIFT = 0.01;
const LEASE = { leaseMs: LEASE_MS, clockDriftMax: DRIFT };
const MEMBER_IDS = ["m1", "m2", "m3"];
const MEMBERS = Object.fromEntries(MEMBER_IDS.map((id) => [id, id]));

/** A placement cluster and its workers in one simulated world. */
class Placement {
  readonly world: SimHarness;
  readonly members = new Map<string, PlacementMember>();
  readonly workers = new Map<string, WorkerAgent>();
  readonly released: string[] = [];

  constructor(seed = 1) {
    this.world = new SimHarness({ seed });
  }

  async start(): Promise<void> {
    for (const id of MEMBER_IDS) {
      const member = await this.world.settle(
        createPlacementMember({
          id,
          members: MEMBERS,
          ...this.world.ports(id),
          storage: this.world.storage(id),
          tickMs: 10,
          raft: { electionTicks: 20, heartbeatTicks: 2 },
          lease: LEASE,
          placementTickMs: 10,
        }),
        1_000,
      );
      this.members.set(id, member);
    }
    await this.world.until(() => this.leader() !== undefined, 5_000, "a leader");
  }

  leader(): PlacementMember | undefined {
    return [...this.members.values()].find((m) => m.node.status().role === "leader");
  }

  async worker(id: string, extra: Partial<WorkerAgentOptions> = {}): Promise<WorkerAgent> {
    const peer = workerPeerId(id);
    const agent = await this.world.settle(
      startWorkerAgent({
        id,
        members: MEMBERS,
        ...this.world.ports(peer),
        address: peer,
        incarnation: 1,
        lease: LEASE,
        onRelease: (key, epoch) => void this.released.push(`${id}:${key}@${epoch}`),
        handle: (_request, context) => ({ status: 200, body: `${id}:${context.epoch}` }),
        ...extra,
      }),
      1_000,
    );
    this.workers.set(id, agent);
    await this.world.settle(agent.ready(), 5_000, `${id} joining`);
    return agent;
  }

  /**
   * A request for `key` through member `via`'s gateway rules, served by the owner's agent: the
   * owner's body, or the gateway's own status.
   */
  async request(via: string, key: string): Promise<{ status: number; body: string }> {
    const member = this.members.get(via) as PlacementMember;
    let body = "";
    const attempt = async (route: { owner: string; epoch: number }): Promise<AttemptResult> => {
      const agent = this.workers.get(route.owner);
      if (agent === undefined) return { kind: "unreachable", message: "no such worker" };
      const result = await agent.serve({ method: "GET", url: key, path: key, query: "", headers: {}, body: new Uint8Array() }, key, route.epoch);
      if (result.kind === "refused") return { kind: "refused", reason: result.reason };
      body = result.kind === "response" ? String(result.response.body) : result.kind;
      return { kind: "answered" };
    };
    const answer = await this.world.settle(routeRequest({ key, routes: member.routes, attempt, active: () => true }), 10_000);
    return answer === null ? { status: 200, body } : { status: answer.status, body: JSON.stringify(answer.body) };
  }

  async close(): Promise<void> {
    try {
      const closing = [...this.workers.values()].map((w) => w.close({ leave: false }));
      closing.push(...[...this.members.values()].map((m) => m.close()));
      await this.world.settle(Promise.allSettled(closing), 60_000, "closing");
    } finally {
      this.world.close();
    }
  }
}

async function withPlacement(body: (p: Placement) => Promise<void>, seed = 1): Promise<void> {
  const placement = new Placement(seed);
  try {
    await placement.start();
    await body(placement);
  } finally {
    await placement.close();
  }
}

describe("placement in simulated time", () => {
  it("routes a path to its owner from any member, stickily, with the grant's epoch", () =>
    withPlacement(async (p) => {
      await p.worker("w1");
      await p.worker("w2");
      const first = await p.request("m1", "/db/users");
      assert.equal(first.status, 200, first.body);
      for (const via of MEMBER_IDS) assert.deepEqual(await p.request(via, "/db/users"), first, `the same owner and grant through ${via}`);
      const owners = new Set<string>();
      for (let i = 0; i < 16; i += 1) owners.add((await p.request(MEMBER_IDS[i % 3] as string, `/db/k${i}`)).body.split(":")[0] as string);
      assert.deepEqual([...owners].sort(), ["w1", "w2"], "keys spread over both workers");
    }));

  it("fails a dead worker's keys over to another, with a higher epoch, not before L(1+ρ) after its last answered renewal", () =>
    withPlacement(async (p) => {
      await p.worker("w1");
      await p.worker("w2");
      let key = "";
      let before = "";
      for (let i = 0; !before.startsWith("w1:"); i += 1) {
        key = `/db/f${i}`;
        before = (await p.request("m1", key)).body;
      }
      const killedAt = p.world.nowMs;
      p.world.crash(workerPeerId("w1"));
      p.workers.delete("w1");
      let after = { status: 0, body: "" };
      while (after.status !== 200) {
        after = await p.request("m2", key);
        if (after.status !== 200) {
          assert.equal(after.status, 503, `unavailable, never wrong, until the failover: ${after.body}`);
          await p.world.advance(10);
        }
      }
      const failoverMs = p.world.nowMs - killedAt;
      assert.match(after.body, /^w2:/);
      assert.ok(Number(after.body.split(":")[1]) > Number(before.split(":")[1]), "a new grant, a higher epoch");
      // The leader counts L(1+ρ) from the receipt of the last renewal it answered, at most one
      // renewal interval (L/4) before the crash: never sooner, or two workers could hold the key.
      assert.ok(failoverMs >= LEASE_MS * (1 + DRIFT) - LEASE_MS / 4, `failover took only ${failoverMs} ms`);
      assert.ok(failoverMs <= LEASE_MS * (1 + DRIFT) + 200, `failover took ${failoverMs} ms`);
    }));

  it("moves a leaving worker's keys to another without failing a request", () =>
    withPlacement(async (p) => {
      const w1 = await p.worker("w1");
      await p.worker("w2");
      const paths = Array.from({ length: 12 }, (_, i) => `/db/d${i}`);
      for (const path of paths) assert.equal((await p.request("m1", path)).status, 200);
      assert.ok(w1.owned().length > 0, "w1 owns some keys before leaving");
      const failures: string[] = [];
      let served = 0;
      let leaving = true;
      const leave = w1.leave().finally(() => (leaving = false));
      for (let i = 0; leaving || i < paths.length; i += 1) {
        const path = paths[i % paths.length] as string;
        const answer = await p.request(MEMBER_IDS[i % 3] as string, path);
        if (answer.status !== 200) failures.push(`${path}: ${answer.status} ${answer.body}`);
        else served += 1;
        await p.world.advance(2); // a client's think time: simulated time moves on
      }
      await p.world.settle(leave, 30_000);
      assert.deepEqual(failures, []);
      assert.ok(served > paths.length, `requests were served during the move (${served})`);
      for (const path of paths) assert.match((await p.request("m2", path)).body, /^w2:/);
    }));

  it("aborts a handler's signal at handleTimeoutMs, or when the client goes away, and answers accordingly", () =>
    withPlacement(async (p) => {
      const reasons: unknown[] = [];
      const w1 = await p.worker("w1", {
        handleTimeoutMs: 300,
        // Gives up when its signal aborts, with the signal's reason; with ?late it asks for the
        // signal only after the timeout, to show that an abort before the ask is kept.
        handle: (request, context) =>
          new Promise((_resolve, reject) => {
            const giveUp = (signal: AbortSignal) => {
              reasons.push(signal.reason);
              reject(signal.reason);
            };
            const listen = () => {
              const signal = context.signal;
              if (signal.aborted) giveUp(signal);
              else signal.addEventListener("abort", () => giveUp(signal));
            };
            if (request.query === "late") p.world.clock(workerPeerId("w1")).after(500, listen);
            else listen();
          }),
      });
      const routed = await p.request("m1", "/db/slow");
      assert.equal(routed.body, "timeout", "the first request waited out the handler's timeout");
      const epoch = w1.owned()[0]?.epoch as number;
      const request = (query: string) => ({ method: "GET", url: "/db/slow", path: "/db/slow", query, headers: {}, body: new Uint8Array() });
      const clock = p.world.clock(workerPeerId("w1"));

      let started = clock.now();
      const timedOut = await p.world.settle(w1.run(request(""), "/db/slow", epoch), 5_000);
      assert.equal(timedOut.kind, "timeout");
      assert.ok(clock.now() - started >= 300 && clock.now() - started <= 300 + 1, `timed out after ${clock.now() - started} ms`);
      assert.ok(TimeoutError.is(reasons.at(-1)), "the signal's reason is the timeout");

      // The timeout fires before the handler asks for its signal: the signal it gets is aborted.
      const before = reasons.length;
      assert.equal((await p.world.settle(w1.run(request("late"), "/db/slow", epoch), 5_000)).kind, "timeout");
      assert.equal(reasons.length, before + 1, "the late handler gave up");
      assert.ok(TimeoutError.is(reasons.at(-1)), "a signal asked for after the timeout starts out aborted");

      const client = new AbortController();
      started = clock.now();
      const gone = w1.run(request(""), "/db/slow", epoch, client.signal);
      await p.world.advance(100);
      client.abort();
      assert.equal((await p.world.settle(gone, 5_000)).kind, "failed");
      assert.ok(ClosedError.is(reasons.at(-1)), "the signal's reason is the client going away");
      assert.ok(clock.now() - started < 300, "aborted before the timeout");
    }));

  it("has a worker cut off from every member release its keys by the time its lease runs out", () =>
    withPlacement(async (p) => {
      const w1 = await p.worker("w1");
      const routed = await p.request("m1", "/db/cut");
      assert.equal(routed.status, 200);
      const epoch = Number(routed.body.split(":")[1]);
      assert.deepEqual(w1.owned(), [{ key: "/db/cut", epoch }]);
      const until = w1.leaseUntil() as number;
      const clock = p.world.clock(workerPeerId("w1"));
      const cutAt = clock.now();
      p.world.isolate(workerPeerId("w1"));
      await p.world.until(() => p.released.includes(`w1:/db/cut@${epoch}`), LEASE_MS * 2, "the release");
      const releasedAt = clock.now();
      assert.ok(releasedAt <= until + 50 + 1, `released at ${releasedAt - cutAt} ms on its clock, its lease ran to ${until - cutAt}`);
      assert.deepEqual(w1.owned(), [], "it serves nothing once the lease ran out");
    }));

  it("has a new leader wait L(1+ρ) from its election before expiring a worker it never heard from", () =>
    withPlacement(async (p) => {
      await p.worker("w1");
      await p.worker("w2");
      for (let i = 0; i < 8; i += 1) assert.equal((await p.request("m1", `/db/e${i}`)).status, 200);
      const leader = p.leader() as PlacementMember;
      // w1 can reach only the current leader; then leadership moves elsewhere.
      p.world.isolate(workerPeerId("w1"), [leader.node.id]);
      const target = MEMBER_IDS.find((id) => id !== leader.node.id) as string;
      const electedAt = p.world.nowMs;
      await p.world.settle(leader.node.transferLeadership(target), 2_000);
      const next = p.members.get(target) as PlacementMember;
      const workerKeys = () => next.table().keysOf("w1").length;
      const keys = workerKeys();
      assert.ok(keys > 0, "w1 owned keys");
      await p.world.until(() => next.table().worker("w1") === undefined || workerKeys() === 0, LEASE_MS * 4, "w1 expired");
      const expiredAfter = p.world.nowMs - electedAt;
      assert.ok(expiredAfter >= LEASE_MS * (1 + DRIFT) * 0.99, `the new leader expired w1 after only ${expiredAfter} ms`);
      // And w1 itself had stopped serving by then.
      assert.deepEqual((p.workers.get("w1") as WorkerAgent).owned(), []);
    }));
});

describe("PlacementMachine under createNode", () => {
  it("replicates the placement table: a grant's epoch is its log index on every member", async () => {
    const world = new SimHarness({ seed: 3 });
    try {
      const machines = MEMBER_IDS.map(() => new PlacementMachine());
      const nodes = await world.settle(
        Promise.all(
          MEMBER_IDS.map((id, i) =>
            createNode<PlacementResult>({
              id,
              members: MEMBERS,
              ...world.ports(id),
              storage: world.storage(id),
              stateMachine: machines[i] as PlacementMachine,
              tickMs: 10,
              raft: { electionTicks: 10, heartbeatTicks: 1 },
            }),
          ),
        ),
        1_000,
      );
      const leaderId = await world.settle((nodes[0] as (typeof nodes)[number]).waitForLeader(5_000), 5_000);
      const node = nodes.find((n) => n.id === leaderId) as (typeof nodes)[number];
      await world.settle(node.propose(encodePlacementCommand({ type: "join", worker: "w1", address: "w1", capacity: 1, zone: "a" })), 1_000);
      const granted = await world.settle(node.propose(encodePlacementCommand({ type: "acquire", key: "/db/users" })), 1_000);
      assert.equal(granted.refused, null);
      const epoch = granted.changed[0]?.epoch;
      assert.ok(epoch !== undefined && epoch > 0);
      for (const [i, n] of nodes.entries()) {
        const owner = await world.settle(n.read(() => (machines[i] as PlacementMachine).table.assignment("/db/users")), 1_000);
        assert.deepEqual(owner, { key: "/db/users", owner: "w1", epoch, state: "active", next: null });
      }
      const bad = await world.settle(node.propose(Uint8Array.of(0xc1)), 1_000);
      assert.match(bad.refused ?? "", /malformed/);
      await world.settle(Promise.all(nodes.map((n) => n.close())), 10_000);
    } finally {
      world.close();
    }
  });

  it("restores what it snapshotted", () => {
    const a = new PlacementMachine();
    a.apply(encodePlacementCommand({ type: "join", worker: "w1", address: "x:1", capacity: 1, zone: "a" }), { index: 1, term: 1 });
    a.apply(encodePlacementCommand({ type: "acquire", key: "k" }), { index: 2, term: 1 });
    const b = new PlacementMachine();
    b.restore(a.snapshot());
    assert.deepEqual(b.table.assignment("k"), a.table.assignment("k"));
    assert.deepEqual(b.snapshot(), a.snapshot());
  });
});
