/**
 * ReadIndex: linearizable reads without writing to the log, on the leader and through followers,
 * and the opt-in lease mode.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, NotLeaderError, ProposalDroppedError } from "../errors.ts";
import type { NodeId } from "./messages.ts";
import { RaftNode } from "./raw-node.ts";
import type { ReadState } from "./raft.ts";
import { TestCluster, bytes, lcg } from "./testing.ts";

const THREE = ["n1", "n2", "n3"];

class ReadCluster extends TestCluster {
  readsOf(id: NodeId): ReadState[] {
    return this.reads.get(id) ?? [];
  }
}

function stableCluster(config = {}): { cluster: ReadCluster; leader: NodeId; followers: NodeId[] } {
  const cluster = new ReadCluster(THREE, { random: lcg(2), config });
  const leader = cluster.electLeader();
  cluster.flush();
  return { cluster, leader, followers: THREE.filter((id) => id !== leader) };
}

describe("ReadIndex on the leader", () => {
  it("answers with the commit index once a quorum echoed a heartbeat round begun after the request", () => {
    const { cluster, leader } = stableCluster();
    cluster.node(leader).propose(bytes("x"));
    cluster.flush();
    const commit = cluster.node(leader).status().commit;
    const sentBefore = cluster.sent.length;
    cluster.node(leader).readIndex("r1");
    cluster.processReady();
    const round = cluster.sent.slice(sentBefore).filter((m) => m.type === "heartbeat");
    assert.ok(round.length === 2 && round.every((m) => m.type === "heartbeat" && m.round === 1));
    assert.deepEqual(cluster.readsOf(leader), [], "nothing before the round is echoed");
    cluster.flush();
    assert.deepEqual(cluster.readsOf(leader), [{ requestId: "r1", index: commit }]);
  });

  it("does not answer while no quorum echoes the round, and answers once one does", () => {
    const { cluster, leader, followers } = stableCluster();
    for (const f of followers) cluster.cut(leader, f);
    cluster.node(leader).readIndex("r1");
    cluster.flush();
    assert.deepEqual(cluster.readsOf(leader), []);
    cluster.heal();
    cluster.run(3); // the next heartbeats carry the round
    assert.equal(cluster.readsOf(leader).length, 1);
  });

  it("never answers on a leader that was deposed while cut off (no stale read)", () => {
    const { cluster, leader, followers } = stableCluster({ checkQuorum: false });
    cluster.isolate(leader);
    cluster.node(leader).readIndex("stale");
    // The others elect a new leader and commit a write the old leader never sees.
    const other = followers[0] as NodeId;
    cluster.node(other).campaign();
    cluster.flush();
    const newLeader = cluster.leaders().find((id) => id !== leader) as NodeId;
    cluster.node(newLeader).propose(bytes("later write"));
    cluster.run(30);
    assert.equal(cluster.node(leader).status().role, "leader", "the old leader still believes it leads");
    assert.deepEqual(cluster.readsOf(leader), [], "but it cannot confirm a read");
  });

  it("answers several reads with one confirmation, each with its own index", () => {
    const { cluster, leader } = stableCluster();
    cluster.node(leader).readIndex("a");
    cluster.node(leader).propose(bytes("w"));
    cluster.flush();
    cluster.node(leader).readIndex("b");
    cluster.flush();
    const reads = cluster.readsOf(leader);
    assert.deepEqual(reads.map((r) => r.requestId), ["a", "b"]);
    assert.ok((reads[1] as ReadState).index > (reads[0] as ReadState).index);
  });

  it("a new leader waits for an entry of its own term to commit before answering", () => {
    const node = new RaftNode({ id: "n1", voters: THREE, random: () => 0, preVote: false });
    const readStates: ReadState[] = [];
    const drain = () => {
      while (node.hasReady()) {
        const rd = node.ready();
        readStates.push(...rd.readStates);
        node.advance(rd);
      }
    };
    node.campaign();
    drain();
    node.step({ type: "voteResponse", from: "n2", to: "n1", term: 1, reject: false });
    assert.equal(node.status().role, "leader");
    drain();
    node.readIndex("early");
    drain();
    assert.deepEqual(readStates, [], "its commit index is not yet known to be current");
    node.step({ type: "appendResponse", from: "n2", to: "n1", term: 1, index: 1, reject: false, rejectHint: 0, rejectHintTerm: 0 });
    drain();
    assert.equal(node.status().commit, 1);
    assert.deepEqual(readStates, [], "committed; now the round must be confirmed");
    node.step({ type: "heartbeatResponse", from: "n2", to: "n1", term: 1, round: 1 });
    drain();
    assert.deepEqual(readStates, [{ requestId: "early", index: 1 }]);
  });

  it("an echo of an older round does not confirm a newer read", () => {
    const { cluster, leader, followers } = stableCluster();
    for (const f of followers) cluster.cut(leader, f);
    cluster.node(leader).readIndex("r");
    cluster.processReady();
    for (const f of followers) cluster.node(leader).step({ type: "heartbeatResponse", from: f, to: leader, term: cluster.node(leader).status().term, round: 0 });
    cluster.processReady();
    assert.deepEqual(cluster.readsOf(leader), []);
  });

  it("refuses reads past readIndexPendingMax with a typed error", () => {
    const { cluster, leader, followers } = stableCluster({ readIndexPendingMax: 2 });
    for (const f of followers) cluster.cut(leader, f);
    cluster.node(leader).readIndex("a");
    cluster.node(leader).readIndex("b");
    assert.throws(() => cluster.node(leader).readIndex("c"), (e: unknown) => ProposalDroppedError.is(e) && e.reason === "read-index-pending-max");
  });
});

describe("ReadIndex through a follower", () => {
  it("asks the leader and delivers the leader's answer as the follower's ReadState", () => {
    const { cluster, leader, followers } = stableCluster();
    const follower = followers[0] as NodeId;
    cluster.node(leader).propose(bytes("x"));
    cluster.flush();
    cluster.node(follower).readIndex("f1");
    cluster.flush();
    assert.deepEqual(cluster.readsOf(follower), [{ requestId: "f1", index: cluster.node(leader).status().commit }]);
    assert.ok(cluster.sent.some((m) => m.type === "readIndex" && m.from === follower && m.to === leader));
    assert.ok(cluster.sent.some((m) => m.type === "readIndexResponse" && m.to === follower));
  });

  it("refuses with NotLeaderError when no leader is known", () => {
    const node = new RaftNode({ id: "n1", voters: THREE, random: () => 0 });
    assert.throws(() => node.readIndex("r"), (e: unknown) => NotLeaderError.is(e) && e.leaderHint === null);
  });
});

describe("lease reads", () => {
  it("answer at once, without a heartbeat round, once a quorum has acknowledged a recent heartbeat", () => {
    const { cluster, leader } = stableCluster({ readOnly: "lease" });
    cluster.run(2); // a heartbeat round the followers acknowledge starts the lease
    const sentBefore = cluster.sent.length;
    cluster.node(leader).readIndex("l1");
    cluster.processReady();
    assert.equal(cluster.readsOf(leader).length, 1);
    assert.equal(cluster.sent.slice(sentBefore).filter((m) => m.type === "heartbeat").length, 0);
  });

  it("stop being answered at once when the lease runs out, well before check-quorum steps down", () => {
    // electionTicks 10, clockDriftMax 0.01: the lease lasts floor(9 * 0.99 / 1.01) - 1 = 7 ticks.
    const { cluster, leader } = stableCluster({ readOnly: "lease" });
    cluster.run(2);
    cluster.isolate(leader);
    for (let tick = 0; tick < 8; tick += 1) cluster.node(leader).tick();
    cluster.processReady();
    assert.equal(cluster.node(leader).status().role, "leader", "check-quorum has not deposed it yet");
    cluster.node(leader).readIndex("late");
    cluster.processReady();
    assert.deepEqual(cluster.readsOf(leader), [], "the lease expired: the read waits for a quorum round");
    cluster.heal();
    cluster.run(3);
    assert.deepEqual(cluster.readsOf(leader).map((r) => r.requestId), ["late"]);
  });

  it("are not answered at once during a leadership transfer", () => {
    const { cluster, leader, followers } = stableCluster({ readOnly: "lease" });
    cluster.run(2);
    cluster.cut(leader, followers[0] as NodeId);
    cluster.node(leader).transferLeadership(followers[0] as NodeId);
    cluster.node(leader).readIndex("during");
    cluster.processReady();
    assert.deepEqual(cluster.readsOf(leader), []);
  });

  it("refuse a drift bound outside [0, 0.5) and an election timeout too short for any lease", () => {
    for (const clockDriftMax of [-0.1, 0.5, Number.NaN]) {
      assert.throws(() => new RaftNode({ id: "n1", voters: THREE, random: Math.random, clockDriftMax }), (e: unknown) => ConfigError.is(e) && e.field === "clockDriftMax");
    }
    assert.throws(
      () => new RaftNode({ id: "n1", voters: THREE, random: Math.random, readOnly: "lease", electionTicks: 2, heartbeatTicks: 1 }),
      (e: unknown) => ConfigError.is(e) && e.field === "readOnly",
    );
  });

  it("need check-quorum, whose lease they rely on", () => {
    assert.throws(
      () => new RaftNode({ id: "n1", voters: THREE, random: Math.random, readOnly: "lease", checkQuorum: false }),
      (e: unknown) => ConfigError.is(e) && e.field === "readOnly",
    );
  });
});
