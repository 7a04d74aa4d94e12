/**
 * `createNode` in simulated time: the real host on the simulator's clocks, network and disks (see
 * sim/harness.ts), so that elections, timeouts and handovers are exact and a busy machine cannot
 * change the outcome. The Node runtime (real clock, file WAL, sockets) is tested in
 * lib/runtime/node.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SimHarness } from "../../sim/harness.ts";
import { ClosedError, ConfigError, NotLeaderError, ProposalDroppedError, StorageError, TimeoutError } from "../errors.ts";
import { sleep } from "../ports/clock.ts";
import type { Storage } from "../ports/storage.ts";
import { createNode, type OrreryNode } from "./node.ts";
import type { NodeOptions } from "./options.ts";
import { ListMachine, text } from "./testing.ts";

/** Ticks of 10 ms, election timeouts of 100–200 ms, heartbeats every 10 ms. */
const FAST = { tickMs: 10, raft: { electionTicks: 10, heartbeatTicks: 1 } } as const;

interface Member {
  node: OrreryNode<number>;
  machine: ListMachine;
}

/** Members of one cluster in one simulated world. */
class Cluster {
  readonly world: SimHarness;
  readonly members = new Map<string, Member>();
  readonly addresses: Record<string, string>;

  constructor(
    readonly ids: string[],
    seed = 1,
  ) {
    this.world = new SimHarness({ seed });
    this.addresses = Object.fromEntries(ids.map((id) => [id, id]));
  }

  async start(extra: Partial<NodeOptions<number>> = {}): Promise<void> {
    for (const id of this.ids) await this.startMember(id, extra);
  }

  async startMember(id: string, extra: Partial<NodeOptions<number>> = {}, storage?: Storage): Promise<Member> {
    const machine = new ListMachine();
    const node = await this.world.settle(
      createNode<number>({
        id,
        members: this.addresses,
        ...this.world.ports(id),
        storage: storage ?? this.world.storage(id),
        stateMachine: machine,
        ...FAST,
        ...extra,
      }),
      1_000,
      `${id} starting`,
    );
    const member = { node, machine };
    this.members.set(id, member);
    return member;
  }

  get(id: string): Member {
    const m = this.members.get(id);
    assert.ok(m, `no member ${id}`);
    return m;
  }

  /** Runs until a member leads that every other running member follows. */
  async leader(withinMs = 5_000): Promise<Member> {
    let found: Member | undefined;
    await this.world.until(() => {
      const running = [...this.members.values()].filter((m) => !m.node.status().closed);
      found = running.find((m) => m.node.status().role === "leader");
      return found !== undefined && running.every((m) => m.node.status().leader === found?.node.id);
    }, withinMs, "a leader every member knows");
    return found as Member;
  }

  async follower(): Promise<Member> {
    const leader = await this.leader();
    return [...this.members.values()].find((m) => m !== leader && !m.node.status().closed) as Member;
  }

  /** Cuts `member` off from every other member, both ways. */
  cutOff(member: Member): void {
    for (const id of this.ids) if (id !== member.node.id) this.world.cut(member.node.id, id);
  }

  /** Starts every member with check-quorum off (a cut-off leader keeps leading), and cuts the leader off. */
  async startWithLeaderCutOff(extra: Partial<NodeOptions<number>> = {}): Promise<Member> {
    await this.start({ raft: { electionTicks: 10, heartbeatTicks: 1, checkQuorum: false }, ...extra });
    const leader = await this.leader();
    this.cutOff(leader);
    return leader;
  }

  /** Runs the world until `promise` settles (within `withinMs` of simulated time). */
  settle<T>(promise: Promise<T>, withinMs = 5_000): Promise<T> {
    return this.world.settle(promise, withinMs);
  }

  /** Closes every member and the world, whatever state they are in. */
  async close(): Promise<void> {
    try {
      await this.world.settle(Promise.allSettled([...this.members.values()].map((m) => m.node.close())), 30_000, "closing");
    } finally {
      this.world.close();
    }
  }
}

/** Runs `body` on a fresh cluster of `ids`, closing it whatever happens. */
async function withCluster(ids: string[], body: (cluster: Cluster) => Promise<void>, seed = 1): Promise<void> {
  const cluster = new Cluster(ids, seed);
  try {
    await body(cluster);
  } finally {
    await cluster.close();
  }
}

describe("createNode", () => {
  it("elects a leader and applies a proposal on every member, resolving with apply()'s result", () =>
    withCluster(["n1", "n2", "n3"], async (cluster) => {
      await cluster.start();
      const leader = await cluster.leader();
      const results = await cluster.settle(Promise.all([1, 2, 3, 4, 5].map((i) => leader.node.propose(text(`v${i}`)))));
      assert.deepEqual([...results].sort(), [1, 2, 3, 4, 5]);
      await cluster.world.until(() => [...cluster.members.values()].every((m) => m.machine.items.length === 5), 1_000, "every member applied");
      const lists = [...cluster.members.values()].map((m) => m.machine.items.join(","));
      assert.equal(new Set(lists).size, 1);
    }));

  it("forwards a follower's proposal to the leader and resolves once applied on the follower", () =>
    withCluster(["n1", "n2", "n3"], async (cluster) => {
      await cluster.start();
      const follower = await cluster.follower();
      const length = await cluster.settle(follower.node.propose(text("from-follower")));
      assert.equal(follower.machine.items[length - 1], "from-follower", "applied on the follower when it resolved");
    }));

  it("holds a follower's proposal while no leader is known, and forwards it once one is", () =>
    withCluster(["n1", "n2", "n3"], async (cluster) => {
      await cluster.start();
      const leader = await cluster.leader();
      const follower = await cluster.follower();
      // Cut the follower off until it forgets the leader, then propose there and heal.
      cluster.cutOff(follower);
      await cluster.world.until(() => follower.node.status().leader === null, 2_000, "the follower forgets the leader");
      const held = follower.node.propose(text("held"), { timeoutMs: 3_000 });
      await cluster.world.advance(200);
      cluster.world.heal();
      const length = await cluster.settle(held);
      assert.equal(follower.machine.items[length - 1], "held");
      assert.ok(leader.machine.items.includes("held") || (await cluster.leader()).machine.items.includes("held"));
    }));

  it("refuses a follower's proposal with the leader's id and address when forwarding is off", () =>
    withCluster(["n1", "n2", "n3"], async (cluster) => {
      await cluster.start({ forwardProposals: false });
      const follower = await cluster.follower();
      const leader = await cluster.leader();
      await assert.rejects(cluster.settle(follower.node.propose(text("x"))), (error: unknown) => {
        assert.ok(NotLeaderError.is(error));
        assert.equal(error.leaderHint, leader.node.id);
        assert.equal(error.leaderAddress, cluster.addresses[leader.node.id]);
        return true;
      });
    }));

  it("serves linearizable reads on a follower that see every write acknowledged before", () =>
    withCluster(["n1", "n2", "n3"], async (cluster) => {
      await cluster.start();
      const leader = await cluster.leader();
      const follower = await cluster.follower();
      for (let i = 0; i < 20; i += 1) {
        const n = await cluster.settle(leader.node.propose(text(`w${i}`)));
        const seen = await cluster.settle(follower.node.read(() => follower.machine.items.length));
        assert.ok(seen >= n, `read saw ${seen} items after a write acknowledged at ${n}`);
      }
    }));

  it("times out a proposal on a leader cut off from its followers, naming the call's own timeout", () =>
    withCluster(["n1", "n2", "n3"], async (cluster) => {
      const leader = await cluster.startWithLeaderCutOff({ closeTransferMs: 100 });
      const started = cluster.world.nowMs;
      await assert.rejects(cluster.settle(leader.node.propose(text("lost"), { timeoutMs: 100 })), (e: unknown) => {
        assert.ok(TimeoutError.is(e));
        assert.match(e.message, /100 ms/);
        return true;
      });
      const took = cluster.world.nowMs - started;
      assert.ok(took >= 100 && took <= 100 + 2 * FAST.tickMs + 1, `rejected after ${took} ms`);
      cluster.world.heal();
    }));

  it("times out each proposal at its own deadline, a shorter one after longer ones included", () =>
    withCluster(["n1", "n2", "n3"], async (cluster) => {
      const leader = await cluster.startWithLeaderCutOff();
      const started = cluster.world.nowMs;
      const settledAt = new Map<number, number>();
      const calls = [5_000, 4_000, 1_000, 3_000].map((timeoutMs) =>
        leader.node.propose(text(`t${timeoutMs}`), { timeoutMs }).catch((error: unknown) => {
          assert.ok(TimeoutError.is(error));
          assert.match(error.message, new RegExp(`${timeoutMs} ms`), "the error names the call's own timeout");
          settledAt.set(timeoutMs, cluster.world.nowMs - started);
        }),
      );
      await cluster.settle(Promise.all(calls), 6_000);
      for (const [timeoutMs, at] of settledAt) {
        assert.ok(at >= timeoutMs && at <= timeoutMs + 2 * FAST.tickMs + 1, `the ${timeoutMs} ms proposal settled after ${at} ms`);
      }
      assert.equal(settledAt.size, 4);
    }));

  it("times out each read at its own deadline", () =>
    withCluster(["n1", "n2", "n3"], async (cluster) => {
      const leader = await cluster.startWithLeaderCutOff();
      const started = cluster.world.nowMs;
      const settledAt = new Map<number, number>();
      const reads = [3_000, 500].map((timeoutMs) =>
        leader.node.read(() => 0, { timeoutMs }).catch((error: unknown) => {
          assert.ok(TimeoutError.is(error));
          assert.match(error.message, new RegExp(`${timeoutMs} ms`));
          settledAt.set(timeoutMs, cluster.world.nowMs - started);
        }),
      );
      await cluster.settle(Promise.all(reads), 4_000);
      assert.ok((settledAt.get(500) ?? Infinity) <= 500 + 2 * FAST.tickMs + 1, `the 500 ms read settled after ${settledAt.get(500)} ms`);
      assert.ok((settledAt.get(3_000) ?? 0) >= 3_000);
    }));

  it("rejects with ORRERY_DROPPED a proposal whose entry another leader replaced", () =>
    withCluster(["n1", "n2", "n3"], async (cluster) => {
      await cluster.start({ proposalTimeoutMs: 10_000 });
      const old = await cluster.leader();
      cluster.cutOff(old);
      const doomed = old.node.propose(text("doomed"));
      doomed.catch(() => {});
      let fresh: Member | undefined;
      await cluster.world.until(() => {
        fresh = [...cluster.members.values()].find((m) => m !== old && m.node.status().role === "leader");
        return fresh !== undefined;
      }, 5_000, "a new leader");
      await cluster.settle((fresh as Member).node.propose(text("winner")));
      cluster.world.heal();
      await assert.rejects(cluster.settle(doomed), (e: unknown) => ProposalDroppedError.is(e) && e.reason === "leader-change");
    }));

  it("hands leadership over on close(), and the others keep committing", () =>
    withCluster(["n1", "n2", "n3"], async (cluster) => {
      await cluster.start();
      const leader = await cluster.leader();
      await cluster.settle(leader.node.propose(text("before")));
      await cluster.settle(leader.node.close());
      await assert.rejects(leader.node.propose(text("after close")), (e: unknown) => ClosedError.is(e));
      const next = await cluster.leader();
      assert.notEqual(next.node.id, leader.node.id);
      assert.ok((await cluster.settle(next.node.propose(text("after")))) >= 2);
    }));

  it("fails no write forwarded by a follower while the leader hands over on close()", () =>
    withCluster(["n1", "n2", "n3"], async (cluster) => {
      await cluster.start();
      const leader = await cluster.leader();
      const followers = [...cluster.members.values()].filter((m) => m !== leader);
      const failures: string[] = [];
      let acknowledged = 0;
      let stop = false;
      const writers = followers.map(async (follower, f) => {
        for (let i = 0; !stop; i += 1) {
          try {
            await follower.node.propose(text(`f${f}-${i}`), { timeoutMs: 2_000 });
            acknowledged += 1;
          } catch (error) {
            failures.push(`${follower.node.id}: ${error instanceof Error ? error.message : String(error)}`);
            // Never retry without letting simulated time pass.
            await sleep(cluster.world.clock(follower.node.id), 5);
          }
        }
      });
      await cluster.world.advance(50);
      const closing = leader.node.close();
      await cluster.settle(closing);
      await cluster.world.advance(200);
      stop = true;
      await cluster.settle(Promise.all(writers), 5_000);
      assert.deepEqual(failures, [], "no forwarded write failed during the handover");
      assert.ok(acknowledged > 20, `writes went on through the handover (${acknowledged})`);
    }));

  it("restarts from its disk after a crash, losing nothing acknowledged, and catches up", () =>
    withCluster(["n1", "n2", "n3"], async (cluster) => {
      await cluster.start();
      const leader = await cluster.leader();
      for (let i = 0; i < 10; i += 1) await cluster.settle(leader.node.propose(text(`a${i}`)));
      const victim = [...cluster.members.values()].find((m) => m !== leader) as Member;
      cluster.world.crash(victim.node.id);
      for (let i = 0; i < 10; i += 1) await cluster.settle(leader.node.propose(text(`b${i}`)));
      const back = await cluster.startMember(victim.node.id);
      await cluster.world.until(() => back.machine.items.length === leader.machine.items.length, 2_000, "catch-up");
      assert.deepEqual(back.machine.items, leader.machine.items);
    }));

  it("adds a joining member that catches up through a snapshot, then removes a member", () =>
    withCluster(["n1", "n2", "n3"], async (cluster) => {
      await cluster.start({ snapshotEntries: 16 });
      const leader = await cluster.leader();
      for (let i = 0; i < 60; i += 1) await cluster.settle(leader.node.propose(text(`s${i}`)));
      assert.ok(leader.node.status().snapshotIndex > 0, "the leader compacted its log");
      const joiner = await cluster.startMember("n4", { join: true, members: { ...cluster.addresses, n4: "n4" } });
      await cluster.settle(leader.node.addMember("n4", "n4"));
      await cluster.world.until(() => joiner.machine.items.length === leader.machine.items.length, 2_000, "n4 catches up");
      assert.ok(joiner.node.status().counters.snapshotsInstalled >= 1);
      assert.deepEqual(joiner.node.status().config.voters, ["n1", "n2", "n3", "n4"]);
      const removed = cluster.ids.find((id) => id !== leader.node.id) as string;
      await cluster.settle(leader.node.removeMember(removed));
      assert.ok(!leader.node.status().config.voters.includes(removed));
      await cluster.settle(leader.node.propose(text("after removal")));
    }));

  it("changes several members at once by joint consensus", () =>
    withCluster(["n1", "n2", "n3"], async (cluster) => {
      await cluster.start();
      const leader = await cluster.leader();
      const joiner = await cluster.startMember("n4", { join: true, members: { ...cluster.addresses, n4: "n4" } });
      await cluster.settle(leader.node.setMemberAddress("n4", "n4"));
      const removed = cluster.ids.find((id) => id !== leader.node.id) as string;
      await cluster.settle(leader.node.changeMembership([{ kind: "addVoter", id: "n4" }, { kind: "remove", id: removed }]));
      const voters = leader.node.status().config.voters;
      assert.ok(voters.includes("n4") && !voters.includes(removed), voters.join(","));
      await cluster.settle(leader.node.propose(text("after")));
      await cluster.world.until(() => joiner.machine.items.includes("after"), 1_000, "n4 applies");
    }));

  it("exports Prometheus metrics", () =>
    withCluster(["n1"], async (cluster) => {
      await cluster.start();
      const only = await cluster.leader();
      await cluster.settle(only.node.propose(text("x")));
      const metrics = only.node.metrics();
      for (const name of ["orrery_raft_term", "orrery_raft_commit_index", "orrery_raft_apply_lag", "orrery_storage_append_seconds_bucket", "orrery_proposals_total"]) {
        assert.match(metrics, new RegExp(`^${name}\\{`, "m"), name);
      }
      assert.match(metrics, /^orrery_raft_is_leader\{node="n1"\} 1$/m);
    }));

  it("stops with the storage's error when a persist fails, rejecting what is pending", () =>
    withCluster(["n1"], async (cluster) => {
      const storage = cluster.world.storage("n1");
      let failing = false;
      const broken: Storage = {
        load: () => storage.load(),
        append: (batch) => {
          if (failing) throw new StorageError("io", "disk on fire");
          return storage.append(batch);
        },
        saveSnapshot: (s) => storage.saveSnapshot(s),
        close: () => storage.close(),
      };
      const member = await cluster.startMember("n1", {}, broken);
      await cluster.leader();
      failing = true;
      await assert.rejects(cluster.settle(member.node.propose(text("x"))), (e: unknown) => StorageError.is(e));
      assert.match(member.node.status().failure ?? "", /disk on fire/);
    }));

  it("refuses bad options with a ConfigError naming the field", () =>
    withCluster(["n1"], async (cluster) => {
      const base = { id: "n1", members: { n1: "n1" }, ...cluster.world.ports("n1"), storage: cluster.world.storage("n1"), stateMachine: new ListMachine() };
      await assert.rejects(createNode({ ...base, tickMs: 0 }), (e: unknown) => ConfigError.is(e) && e.field === "tickMs");
      await assert.rejects(createNode({ ...base, members: { n2: "n2" } }), (e: unknown) => ConfigError.is(e) && e.field === "members");
      await assert.rejects(createNode({ ...base, raft: { heartbeatTicks: 50 } }), (e: unknown) => ConfigError.is(e) && e.field === "heartbeatTicks");
      const { clock: _clock, ...withoutClock } = base;
      await assert.rejects(createNode(withoutClock), (e: unknown) => ConfigError.is(e) && e.field === "clock");
    }));
});

describe("onLeadershipChange", () => {
  it("reports elections and handovers to subscribers until they unsubscribe", () =>
    withCluster(["n1", "n2", "n3"], async (cluster) => {
      const seen: string[] = [];
      await cluster.start();
      const first = await cluster.leader();
      const other = [...cluster.members.values()].find((m) => m !== first) as Member;
      const unsubscribe = other.node.onLeadershipChange(({ leader, role }) => seen.push(`${role}:${leader}`));
      let fromLeader = 0;
      first.node.onLeadershipChange(({ role }) => {
        if (role !== "leader") fromLeader += 1;
      });
      await cluster.settle(first.node.transferLeadership(other.node.id));
      await cluster.world.until(() => seen.includes(`leader:${other.node.id}`), 1_000, "the new leader hears of itself");
      assert.ok(fromLeader >= 1, "the old leader heard it stepped down");
      unsubscribe();
      const count = seen.length;
      await cluster.settle(other.node.transferLeadership(first.node.id));
      await cluster.leader();
      assert.equal(seen.length, count, "nothing after unsubscribing");
    }));
});
