import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  ClosedError,
  ConfigError,
  NotLeaderError,
  ProposalDroppedError,
  StorageError,
  TimeoutError,
} from "../errors.ts";
import { FileStorage } from "../storage/file.ts";
import { MemoryStorage } from "../storage/memory.ts";
import type { Storage } from "../storage/storage.ts";
import { MemoryNetwork } from "../../transports/memory/memory.ts";
import { createNode, type OrreryNode } from "./node.ts";
import type { NodeOptions, StateMachine } from "./options.ts";

/** A state machine that appends strings to a list; a command's result is the list's new length. */
class ListMachine implements StateMachine<number> {
  items: string[] = [];
  apply(command: Uint8Array): number {
    this.items.push(new TextDecoder().decode(command));
    return this.items.length;
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(this.items));
  }
  restore(data: Uint8Array): void {
    this.items = JSON.parse(new TextDecoder().decode(data)) as string[];
  }
}

const text = (s: string) => new TextEncoder().encode(s);
const FAST = { tickMs: 5, raft: { electionTicks: 10, heartbeatTicks: 1 } } as const;

interface Member {
  node: OrreryNode<number>;
  machine: ListMachine;
  storage: Storage;
}

class Cluster {
  readonly network = new MemoryNetwork();
  readonly members = new Map<string, Member>();
  readonly addresses: Record<string, string>;

  constructor(readonly ids: string[]) {
    this.addresses = Object.fromEntries(ids.map((id) => [id, id]));
  }

  async start(extra: Partial<NodeOptions<number>> = {}): Promise<void> {
    for (const id of this.ids) await this.startMember(id, new MemoryStorage(), extra);
  }

  async startMember(id: string, storage: Storage, extra: Partial<NodeOptions<number>> = {}): Promise<Member> {
    const machine = new ListMachine();
    const node = await createNode<number>({
      id,
      members: this.addresses,
      transport: this.network.transport({ id }),
      storage,
      stateMachine: machine,
      ...FAST,
      ...extra,
    });
    const member = { node, machine, storage };
    this.members.set(id, member);
    return member;
  }

  get(id: string): Member {
    const m = this.members.get(id);
    assert.ok(m, `no member ${id}`);
    return m;
  }

  async leader(): Promise<Member> {
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      for (const m of this.members.values()) {
        const s = m.node.status();
        if (s.role === "leader" && !s.closed) return m;
      }
      await sleep(5);
    }
    throw new Error("no leader within 5 s");
  }

  async follower(): Promise<Member> {
    const leader = await this.leader();
    await leader.node.propose(text("barrier"));
    for (const m of this.members.values()) {
      const s = m.node.status();
      if (m !== leader && !s.closed && s.leader === leader.node.id) return m;
    }
    throw new Error("no follower that knows the leader");
  }

  async close(): Promise<void> {
    await Promise.all([...this.members.values()].map((m) => m.node.close()));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function eventually(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe("createNode", () => {
  it("elects a leader and applies a proposal on every member, resolving with apply()'s result", async () => {
    const cluster = new Cluster(["n1", "n2", "n3"]);
    await cluster.start();
    const leader = await cluster.leader();
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => leader.node.propose(text(`v${i}`))));
    assert.deepEqual([...results].sort(), [1, 2, 3, 4, 5]);
    await eventually(() => [...cluster.members.values()].every((m) => m.machine.items.length === 5), "apply");
    const lists = [...cluster.members.values()].map((m) => m.machine.items.join(","));
    assert.equal(new Set(lists).size, 1);
    await cluster.close();
  });

  it("forwards a follower's proposal to the leader and resolves once applied on the follower", async () => {
    const cluster = new Cluster(["n1", "n2", "n3"]);
    await cluster.start();
    const follower = await cluster.follower();
    const length = await follower.node.propose(text("from-follower"));
    assert.equal(follower.machine.items[length - 1], "from-follower");
    await cluster.close();
  });

  it("refuses a follower's proposal with the leader's id and address when forwarding is off", async () => {
    const cluster = new Cluster(["n1", "n2", "n3"]);
    await cluster.start({ forwardProposals: false });
    const follower = await cluster.follower();
    const leader = await cluster.leader();
    await assert.rejects(follower.node.propose(text("x")), (error: unknown) => {
      assert.ok(NotLeaderError.is(error));
      assert.equal(error.leaderHint, leader.node.id);
      assert.equal(error.leaderAddress, cluster.addresses[leader.node.id]);
      return true;
    });
    await cluster.close();
  });

  it("serves linearizable reads on a follower that see every write acknowledged before", async () => {
    const cluster = new Cluster(["n1", "n2", "n3"]);
    await cluster.start();
    const leader = await cluster.leader();
    const follower = await cluster.follower();
    for (let i = 0; i < 20; i += 1) {
      const n = await leader.node.propose(text(`w${i}`));
      const seen = await follower.node.read(() => follower.machine.items.length);
      assert.ok(seen >= n, `read saw ${seen} items after a write acknowledged at ${n}`);
    }
    await cluster.close();
  });

  it("times out a proposal on a leader cut off from its followers", async () => {
    const cluster = new Cluster(["n1", "n2", "n3"]);
    await cluster.start({ raft: { electionTicks: 10, heartbeatTicks: 1, checkQuorum: false }, closeTransferMs: 100 });
    const leader = await cluster.leader();
    for (const id of cluster.ids) if (id !== leader.node.id) cluster.network.cut(leader.node.id, id);
    await assert.rejects(leader.node.propose(text("lost"), { timeoutMs: 100 }), (e: unknown) => TimeoutError.is(e));
    cluster.network.heal();
    await cluster.close();
  });

  it("rejects with ORRERY_DROPPED a proposal whose entry another leader replaced", async () => {
    const cluster = new Cluster(["n1", "n2", "n3"]);
    await cluster.start({ proposalTimeoutMs: 10_000 });
    const old = await cluster.leader();
    for (const id of cluster.ids) if (id !== old.node.id) cluster.network.cut(old.node.id, id);
    const doomed = old.node.propose(text("doomed"));
    doomed.catch(() => {});
    let fresh: Member | undefined;
    await eventually(() => {
      fresh = [...cluster.members.values()].find((m) => m !== old && m.node.status().role === "leader");
      return fresh !== undefined;
    }, "a new leader");
    await (fresh as Member).node.propose(text("winner"));
    cluster.network.heal();
    await assert.rejects(doomed, (e: unknown) => ProposalDroppedError.is(e) && e.reason === "leader-change");
    await cluster.close();
  });

  it("hands leadership over on close(), and the others keep committing", async () => {
    const cluster = new Cluster(["n1", "n2", "n3"]);
    await cluster.start();
    const leader = await cluster.leader();
    await leader.node.propose(text("before"));
    await leader.node.close();
    await assert.rejects(leader.node.propose(text("after close")), (e: unknown) => ClosedError.is(e));
    const next = await cluster.leader();
    assert.notEqual(next.node.id, leader.node.id);
    assert.ok((await next.node.propose(text("after"))) >= 2);
    await cluster.close();
  });

  it("restarts from its file WAL and catches up", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "orrery-node-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const cluster = new Cluster(["n1", "n2", "n3"]);
    for (const id of cluster.ids) await cluster.startMember(id, await FileStorage.open(join(dir, id)));
    const leader = await cluster.leader();
    for (let i = 0; i < 10; i += 1) await leader.node.propose(text(`a${i}`));
    const victim = [...cluster.members.values()].find((m) => m !== leader) as Member;
    await victim.node.close();
    for (let i = 0; i < 10; i += 1) await leader.node.propose(text(`b${i}`));
    const back = await cluster.startMember(victim.node.id, await FileStorage.open(join(dir, victim.node.id)));
    await eventually(() => back.machine.items.length === leader.machine.items.length, "catch-up");
    assert.deepEqual(back.machine.items, leader.machine.items);
    await cluster.close();
  });

  it("adds a joining member that catches up through a snapshot, then removes a member", async () => {
    const cluster = new Cluster(["n1", "n2", "n3"]);
    await cluster.start({ snapshotEntries: 16 });
    const leader = await cluster.leader();
    for (let i = 0; i < 60; i += 1) await leader.node.propose(text(`s${i}`));
    assert.ok(leader.node.status().snapshotIndex > 0, "the leader compacted its log");
    const joiner = await cluster.startMember("n4", new MemoryStorage(), { join: true, members: { ...cluster.addresses, n4: "n4" } });
    await leader.node.addMember("n4", "n4");
    await eventually(() => joiner.machine.items.length === leader.machine.items.length, "n4 catches up");
    assert.ok(joiner.node.status().counters.snapshotsInstalled >= 1);
    assert.deepEqual(joiner.node.status().config.voters, ["n1", "n2", "n3", "n4"]);
    const removed = cluster.ids.find((id) => id !== leader.node.id) as string;
    await leader.node.removeMember(removed);
    assert.ok(!leader.node.status().config.voters.includes(removed));
    await leader.node.propose(text("after removal"));
    await cluster.close();
  });

  it("exports Prometheus metrics", async () => {
    const cluster = new Cluster(["n1"]);
    await cluster.start();
    const only = await cluster.leader();
    await only.node.propose(text("x"));
    const metrics = only.node.metrics();
    for (const name of [
      "orrery_raft_term",
      "orrery_raft_commit_index",
      "orrery_raft_apply_lag",
      "orrery_storage_append_seconds_bucket",
      "orrery_proposals_total",
    ]) {
      assert.match(metrics, new RegExp(`^${name}\\{`, "m"), name);
    }
    assert.match(metrics, /^orrery_raft_is_leader\{node="n1"\} 1$/m);
    await cluster.close();
  });

  it("stops with the storage's error when a persist fails, rejecting what is pending", async () => {
    const storage = new MemoryStorage();
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
    const cluster = new Cluster(["n1"]);
    const member = await cluster.startMember("n1", broken);
    await cluster.leader();
    failing = true;
    await assert.rejects(member.node.propose(text("x")), (e: unknown) => StorageError.is(e));
    assert.match(member.node.status().failure ?? "", /disk on fire/);
    await member.node.close();
  });

  it("refuses bad options with a ConfigError naming the field", async () => {
    const network = new MemoryNetwork();
    const base = {
      id: "n1",
      members: { n1: "n1" },
      transport: network.transport({ id: "n1" }),
      storage: new MemoryStorage(),
      stateMachine: new ListMachine(),
    };
    await assert.rejects(createNode({ ...base, tickMs: 0 }), (e: unknown) => ConfigError.is(e) && e.field === "tickMs");
    await assert.rejects(createNode({ ...base, members: { n2: "n2" } }), (e: unknown) => ConfigError.is(e) && e.field === "members");
    await assert.rejects(
      createNode({ ...base, raft: { heartbeatTicks: 50 } }),
      (e: unknown) => ConfigError.is(e) && e.field === "heartbeatTicks",
    );
  });
});

after(() => {
  // Nothing global to release; the clusters close themselves.
});

describe("onLeadershipChange", () => {
  it("reports elections and handovers to subscribers until they unsubscribe", async () => {
    const cluster = new Cluster(["n1", "n2", "n3"]);
    const seen: string[] = [];
    await cluster.start();
    const first = await cluster.leader();
    const others = [...cluster.members.values()].filter((m) => m !== first);
    const unsubscribe = (others[0] as Member).node.onLeadershipChange(({ leader, role }) => seen.push(`${role}:${leader}`));
    let fromLeader = 0;
    first.node.onLeadershipChange(({ role }) => {
      if (role !== "leader") fromLeader += 1;
    });
    await first.node.transferLeadership((others[0] as Member).node.id);
    await eventually(() => seen.includes(`leader:${(others[0] as Member).node.id}`), "the new leader hears of itself");
    assert.ok(fromLeader >= 1, "the old leader heard it stepped down");
    unsubscribe();
    const count = seen.length;
    await (others[0] as Member).node.transferLeadership(first.node.id);
    await cluster.leader();
    assert.equal(seen.length, count, "nothing after unsubscribing");
    await cluster.close();
  });
});
