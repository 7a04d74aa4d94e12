/**
 * Membership changes through the public `RaftNode` API (issue #4): joint consensus with its two
 * configuration entries, learners, removal of the leader and of followers, every refusal, the
 * interplay with leadership transfer, restarts and snapshots, and the rules that keep a member from
 * campaigning or changing the configuration before it has applied its log. Each test would fail if
 * the behaviour it names broke; where a cluster is driven by `flush()`, no time passes, so timers
 * (elections, check-quorum) cannot interfere with the step being observed.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfChangeError, InvalidRequestError, NotLeaderError, ProposalDroppedError } from "../errors.ts";
import { decodeConfState, encodeConfState, isJoint, type ConfChangeOp } from "./conf.ts";
import { VOTERS_MAX } from "./config.ts";
import type { ConfState, Entry, Message, NodeId, RequestVoteMessage } from "./messages.ts";
import { RaftNode } from "./raw-node.ts";
import { TestCluster, bytes, drainReady as drain, encodeAppliedEntries, handDriven as member, lcg, text, type MemoryDisk } from "./testing.ts";

const THREE: readonly NodeId[] = ["n1", "n2", "n3"];

/** A configuration literal; lists must be given sorted, as the core keeps them. */
function conf(voters: readonly NodeId[], outgoing: readonly NodeId[] = [], learners: readonly NodeId[] = []): ConfState {
  return { voters, outgoing, learners };
}

/** A cluster in which `leader` has won the first election and everything is committed everywhere. */
function clusterLedBy(leader: NodeId, ids: readonly NodeId[] = THREE, config: ConstructorParameters<typeof TestCluster>[1] = {}): TestCluster {
  const cluster = new TestCluster(ids, { random: lcg(1), ...config });
  cluster.node(leader).campaign();
  cluster.flush();
  assert.equal(cluster.leader(), leader);
  return cluster;
}

/** The configuration entries `id` has persisted (after its snapshot, if any), decoded. */
function confEntries(cluster: TestCluster, id: NodeId): { index: number; term: number; conf: ConfState | null }[] {
  const disk = cluster.disks.get(id);
  assert.ok(disk !== undefined);
  return disk.entries
    .filter((e) => e.type === "confChange")
    .map((e) => ({ index: e.index, term: e.term, conf: decodeConfState(e.data) }));
}

function configOf(cluster: TestCluster, id: NodeId): ConfState {
  return cluster.node(id).status().config;
}

function appliedData(cluster: TestCluster, id: NodeId): string[] {
  return (cluster.applied.get(id) ?? []).filter((e) => e.type === "normal" && e.data.byteLength > 0).map((e) => text(e.data));
}

/** Messages sent since `mark` (an index into `cluster.sent`) that match `filter`. */
function sentSince(cluster: TestCluster, mark: number, filter: (m: Message) => boolean): Message[] {
  return cluster.sent.slice(mark).filter(filter);
}

/** Proposes `ops` on `node` and expects a `ConfChangeError` with `reason` that left the log untouched. */
function assertRefused(node: RaftNode, ops: ConfChangeOp | readonly ConfChangeOp[], reason: ConfChangeError["reason"]): void {
  const before = node.status();
  assert.throws(
    () => node.proposeConfChange(ops),
    (error: unknown) => {
      assert.ok(ConfChangeError.is(error), `a ConfChangeError, got ${String(error)}`);
      assert.equal(error.reason, reason, error.message);
      return true;
    },
  );
  const after = node.status();
  assert.equal(after.lastIndex, before.lastIndex, "a refused change appends nothing");
  assert.equal(after.counters.confChanges, before.counters.confChanges, "a refused change is not counted");
}

/** Advances `ticks` ticks, letting the network go quiet after each (one tick is one heartbeat). */
function settle(cluster: TestCluster, ticks = 1): void {
  for (let tick = 0; tick < ticks; tick += 1) {
    cluster.run(1);
    cluster.flush();
  }
}

/**
 * Steps the cluster by hand, without time passing, until `leader` has applied the joint entry (and
 * appended C_new, whose appends are then still in flight).
 */
function stepUntilJoint(cluster: TestCluster, leader: NodeId): void {
  for (let round = 0; round < 100; round += 1) {
    cluster.processReady();
    if (isJoint(configOf(cluster, leader))) break;
    cluster.deliverDue();
  }
  assert.ok(isJoint(configOf(cluster, leader)), `${leader} applied the joint entry`);
  const status = cluster.node(leader).status();
  assert.ok(status.commit < status.lastIndex, "C_new is not committed yet");
}


function confEntry(index: number, term: number, state: ConfState): Entry {
  return { index, term, type: "confChange", data: encodeConfState(state) };
}

function normalEntry(index: number, term: number, value = `${index}@${term}`): Entry {
  return { index, term, type: "normal", data: bytes(value) };
}

describe("joint consensus", () => {
  it("adds a voter through exactly two configuration entries: the joint one, then the final one", () => {
    const cluster = clusterLedBy("n1");
    cluster.addMember("n4");
    const { index, term } = cluster.node("n1").proposeConfChange({ kind: "addVoter", id: "n4" });
    cluster.flush();
    const joint = conf(["n1", "n2", "n3", "n4"], ["n1", "n2", "n3"]);
    const final = conf(["n1", "n2", "n3", "n4"]);
    const expected = [
      { index, term, conf: joint },
      { index: index + 1, term, conf: final },
    ];
    for (const id of ["n1", "n2", "n3", "n4"]) {
      assert.deepEqual(confEntries(cluster, id), expected, `${id}'s log`);
      assert.deepEqual(configOf(cluster, id), final, `${id}'s configuration`);
    }
    assert.equal(cluster.node("n1").status().counters.confChanges, 1, "a joint change counts once");
    // The new voter takes part: the leader tracks it and it applies what the others apply.
    assert.ok(cluster.node("n1").status().matched?.n4 !== undefined);
    cluster.node("n1").propose(bytes("after"));
    cluster.flush();
    for (const id of ["n1", "n2", "n3", "n4"]) assert.deepEqual(appliedData(cluster, id), ["after"], id);
  });

  it("in the joint configuration, commit needs a majority of the incoming voters, not only of the outgoing ones", () => {
    const cluster = clusterLedBy("n1");
    cluster.addMember("n4");
    cluster.addMember("n5");
    // n1 and n2 are a majority of the old voters {n1, n2, n3} but not of the new {n1, ..., n5}.
    for (const id of ["n3", "n4", "n5"]) cluster.cut("n1", id);
    const { index } = cluster.node("n1").proposeConfChange([
      { kind: "addVoter", id: "n4" },
      { kind: "addVoter", id: "n5" },
    ]);
    cluster.flush();
    const leader = cluster.node("n1").status();
    assert.deepEqual(leader.config, conf(["n1", "n2", "n3", "n4", "n5"], ["n1", "n2", "n3"]), "the joint entry committed under C_old and was applied");
    assert.equal(leader.commit, index);
    assert.equal(leader.lastIndex, index + 1, "the leader appended C_new by itself");
    const { index: valueIndex } = cluster.node("n1").propose(bytes("x"));
    cluster.flush();
    assert.equal(cluster.node("n2").status().lastIndex, valueIndex, "the outgoing majority holds every entry");
    assert.equal(cluster.node("n1").status().commit, index, "but nothing after the joint entry commits");
    assert.deepEqual(appliedData(cluster, "n1"), []);

    cluster.heal();
    settle(cluster, 5);
    for (const id of ["n1", "n2", "n3", "n4", "n5"]) {
      assert.deepEqual(configOf(cluster, id), conf(["n1", "n2", "n3", "n4", "n5"]), id);
      assert.deepEqual(appliedData(cluster, id), ["x"], id);
    }
  });

  it("in the joint configuration, commit needs a majority of the outgoing voters too; C_new then needs only its own", () => {
    const cluster = clusterLedBy("n1");
    cluster.addMember("n4");
    cluster.addMember("n5");
    // Replace n2 and n3 by n4 and n5: C_old = {n1, n2, n3}, C_new = {n1, n4, n5}.
    const { index } = cluster.node("n1").proposeConfChange([
      { kind: "addVoter", id: "n4" },
      { kind: "addVoter", id: "n5" },
      { kind: "remove", id: "n2" },
      { kind: "remove", id: "n3" },
    ]);
    stepUntilJoint(cluster, "n1");
    assert.deepEqual(configOf(cluster, "n1"), conf(["n1", "n4", "n5"], ["n1", "n2", "n3"]));
    // C_new is on its way; from now on only the incoming majority {n1, n4, n5} can answer.
    cluster.cut("n1", "n2");
    cluster.cut("n1", "n3");
    const { index: valueIndex } = cluster.node("n1").propose(bytes("x"));
    settle(cluster, 3);
    for (const id of ["n4", "n5"]) assert.equal(cluster.node(id).status().lastIndex, valueIndex, `${id} holds every entry`);
    assert.equal(cluster.node("n1").status().commit, index, "the incoming majority alone commits nothing in the joint configuration");
    assert.equal(cluster.node("n1").status().role, "leader");
    assert.ok(isJoint(configOf(cluster, "n1")));

    cluster.heal();
    settle(cluster, 3);
    assert.equal(cluster.node("n1").status().commit, valueIndex);
    assert.deepEqual(configOf(cluster, "n1"), conf(["n1", "n4", "n5"]));
    assert.deepEqual(appliedData(cluster, "n1"), ["x"]);

    // In C_new the removed members are not needed at all.
    cluster.crash("n2");
    cluster.crash("n3");
    const { index: lastIndex } = cluster.node("n1").propose(bytes("y"));
    cluster.flush();
    assert.equal(cluster.node("n1").status().commit, lastIndex);
    for (const id of ["n1", "n4", "n5"]) assert.deepEqual(appliedData(cluster, id), ["x", "y"], id);
  });

  for (const half of ["outgoing", "incoming"] as const) {
    it(`a leader in the joint configuration steps down when it cannot reach a majority of the ${half} voters (check-quorum)`, () => {
      const cluster = clusterLedBy("n1");
      cluster.addMember("n4");
      cluster.addMember("n5");
      // C_old = {n1, n2, n3}, C_new = {n1, n4, n5}.
      cluster.node("n1").proposeConfChange([
        { kind: "addVoter", id: "n4" },
        { kind: "addVoter", id: "n5" },
        { kind: "remove", id: "n2" },
        { kind: "remove", id: "n3" },
      ]);
      stepUntilJoint(cluster, "n1");
      const unreachable = half === "outgoing" ? ["n2", "n3"] : ["n4", "n5"];
      // Cut off from everyone, so that nothing they do (n2 and n3, unaware that the joint entry
      // committed, may elect a leader of C_old) reaches n1 through the others.
      for (const id of unreachable) cluster.isolate(id);
      const term = cluster.node("n1").status().term;
      cluster.run(2 * 10);
      const status = cluster.node("n1").status();
      assert.equal(status.role, "follower", "it stepped down");
      assert.equal(status.term, term, "by itself, not deposed by a higher term");
    });
  }

  it("applying C_new commits at once what its smaller quorum already holds", () => {
    // One entry per append, so that a lagging member can be sent C_new without what follows it.
    const cluster = clusterLedBy("n1", ["n1", "n2", "n3", "n4", "n5"], { config: { messageBytesMax: 1 } });
    cluster.cut("n1", "n4");
    cluster.cut("n1", "n5");
    // C_old = {n1, ..., n5} (majority 3), C_new = {n1, n2, n3} (majority 2).
    cluster.node("n1").proposeConfChange([
      { kind: "remove", id: "n4" },
      { kind: "remove", id: "n5" },
    ]);
    stepUntilJoint(cluster, "n1");
    cluster.cutOneWay("n1", "n3"); // C_new reaches n2 only
    cluster.flush();
    const { index } = cluster.node("n1").propose(bytes("x"));
    cluster.flush();
    assert.equal(cluster.node("n1").status().matched?.n2, index, "n1 and n2 hold C_new and x");
    assert.ok(cluster.node("n1").status().commit < index - 1, "but they are no majority of C_old");

    // n3 catches up one entry at a time: its acknowledgement of C_new completes C_old's majority.
    cluster.heal();
    cluster.cut("n1", "n4");
    cluster.cut("n1", "n5");
    cluster.run(1);
    for (let round = 0; round < 100 && isJoint(configOf(cluster, "n1")); round += 1) {
      cluster.deliverDue();
      cluster.processReady();
    }
    assert.deepEqual(configOf(cluster, "n1"), conf(["n1", "n2", "n3"]));
    // n3 fails before it acknowledges x: n1 and n2, a majority of C_new, must be enough.
    cluster.crash("n3");
    settle(cluster, 10);
    assert.equal(cluster.node("n1").status().commit, index);
    assert.deepEqual(appliedData(cluster, "n2"), ["x"]);
  });

  it("a candidate in a joint configuration needs a majority of both halves", () => {
    // n2 has applied C_old,new with C_old = {n1, n2, n3} and C_new = {n2, n4, n5}.
    const joint = conf(["n2", "n4", "n5"], ["n1", "n2", "n3"]);
    const restored = {
      hardState: { term: 1, vote: null, commit: 2 },
      entries: [normalEntry(1, 1), confEntry(2, 1, joint)],
      applied: 2,
    };
    const grant = (node: RaftNode, from: NodeId, reject: boolean): void => {
      node.step({ type: "voteResponse", from, to: "n2", term: node.status().term, reject });
    };
    const campaign = (): RaftNode => {
      const node = member("n2", THREE, { preVote: false }, restored);
      assert.deepEqual(node.status().config, joint);
      node.campaign();
      const requests = drain(node).flatMap((rd) => rd.messages).filter((m): m is RequestVoteMessage => m.type === "requestVote");
      assert.deepEqual(requests.map((m) => m.to).sort(), ["n1", "n3", "n4", "n5"], "asks the voters of both halves");
      return node;
    };

    const oldOnly = campaign();
    grant(oldOnly, "n1", false);
    grant(oldOnly, "n3", false);
    assert.equal(oldOnly.status().role, "candidate", "the outgoing majority alone does not win");
    grant(oldOnly, "n4", true);
    assert.equal(oldOnly.status().role, "candidate");
    grant(oldOnly, "n5", true);
    assert.equal(oldOnly.status().role, "follower", "losing the incoming half loses the election");

    const newOnly = campaign();
    grant(newOnly, "n4", false);
    grant(newOnly, "n5", false);
    assert.equal(newOnly.status().role, "candidate", "the incoming majority alone does not win");
    grant(newOnly, "n1", true);
    grant(newOnly, "n3", true);
    assert.equal(newOnly.status().role, "follower", "losing the outgoing half loses the election");

    const both = campaign();
    grant(both, "n1", false);
    assert.equal(both.status().role, "candidate");
    grant(both, "n4", false);
    assert.equal(both.status().role, "leader", "a majority of each half wins");
  });

  it("voters holding only the outgoing majority elect no leader until the incoming voters are reachable", () => {
    const cluster = clusterLedBy("n1");
    cluster.addMember("n4");
    cluster.addMember("n5");
    cluster.isolate("n4");
    cluster.isolate("n5");
    cluster.node("n1").proposeConfChange([
      { kind: "addVoter", id: "n4" },
      { kind: "addVoter", id: "n5" },
      { kind: "remove", id: "n2" },
      { kind: "remove", id: "n3" },
    ]);
    cluster.flush();
    const joint = conf(["n1", "n4", "n5"], ["n1", "n2", "n3"]);
    for (const id of THREE) assert.deepEqual(configOf(cluster, id), joint, `${id} applied the joint entry`);
    const term = cluster.node("n2").status().term;

    // n2 and n3 are a majority of C_old; of C_new they can reach nobody.
    cluster.crash("n1");
    const mark = cluster.sent.length;
    cluster.run(300);
    assert.deepEqual(cluster.leaders(), [], "no leader without the incoming majority");
    const asked = sentSince(cluster, mark, (m) => (m.type === "requestPreVote" || m.type === "requestVote") && (m.to === "n4" || m.to === "n5"));
    assert.ok(asked.length > 0, "the candidates did ask the incoming voters");

    cluster.heal();
    const leader = cluster.electLeader(500);
    assert.ok(cluster.node(leader).status().term > term);
    // Whoever led, the change completes: C_new holds no n2 or n3, so in the end n4 or n5 leads.
    for (let tick = 0; tick < 500 && !["n4", "n5"].includes(cluster.leader() ?? ""); tick += 1) settle(cluster, 1);
    const finalLeader = cluster.leader();
    assert.ok(finalLeader === "n4" || finalLeader === "n5", `n4 or n5 leads, not ${finalLeader}`);
    for (const id of ["n2", "n3", "n4", "n5"]) assert.deepEqual(configOf(cluster, id), conf(["n1", "n4", "n5"]), id);
  });
});

describe("learners", () => {
  it("a learner is added with a single entry and receives the log", () => {
    const cluster = clusterLedBy("n1");
    cluster.node("n1").propose(bytes("before"));
    cluster.flush();
    cluster.addMember("n4");
    const { index, term } = cluster.node("n1").proposeConfChange({ kind: "addLearner", id: "n4" });
    cluster.node("n1").propose(bytes("after"));
    cluster.flush();
    const withLearner = conf(THREE, [], ["n4"]);
    for (const id of ["n1", "n2", "n3", "n4"]) {
      assert.deepEqual(confEntries(cluster, id), [{ index, term, conf: withLearner }], `${id}: one entry, no joint phase`);
      assert.deepEqual(configOf(cluster, id), withLearner, id);
      assert.deepEqual(appliedData(cluster, id), ["before", "after"], id);
    }
  });

  it("learners' acknowledgements do not count toward commit, even when they outnumber the voters reached", () => {
    const cluster = clusterLedBy("n1");
    cluster.addMember("n4");
    cluster.addMember("n5");
    cluster.node("n1").proposeConfChange([
      { kind: "addLearner", id: "n4" },
      { kind: "addLearner", id: "n5" },
    ]);
    cluster.flush();
    assert.deepEqual(configOf(cluster, "n1"), conf(THREE, [], ["n4", "n5"]));
    // n1, n4 and n5 are three of five members, but one of three voters.
    cluster.cut("n1", "n2");
    cluster.cut("n1", "n3");
    const commit = cluster.node("n1").status().commit;
    const { index } = cluster.node("n1").propose(bytes("x"));
    cluster.flush();
    for (const id of ["n4", "n5"]) {
      assert.equal(cluster.node(id).status().lastIndex, index, `${id} holds the entry`);
      assert.equal(cluster.node("n1").status().matched?.[id], index, `and the leader knows ${id} does`);
    }
    assert.equal(cluster.node("n1").status().commit, commit, "the entry does not commit");
    settle(cluster, 3);
    assert.equal(cluster.node("n1").status().commit, commit);
    cluster.heal();
    settle(cluster, 3);
    assert.equal(cluster.node("n1").status().commit, index);
    for (const id of ["n4", "n5"]) assert.deepEqual(appliedData(cluster, id), ["x"], id);
  });

  it("a learner never campaigns and is never asked for a vote, even after a long silence", () => {
    const cluster = clusterLedBy("n1");
    cluster.addMember("n4");
    cluster.node("n1").proposeConfChange({ kind: "addLearner", id: "n4" });
    cluster.flush();
    const mark = cluster.sent.length;
    cluster.isolate("n4");
    cluster.run(500);
    cluster.heal();
    cluster.crash("n1"); // the voters must now elect a leader among themselves
    const leader = cluster.electLeader(500);
    assert.ok(leader === "n2" || leader === "n3");
    const status = cluster.node("n4").status();
    assert.equal(status.counters.campaigns, 0);
    assert.equal(status.role, "follower");
    const votes = sentSince(cluster, mark, (m) => m.type === "requestVote" || m.type === "requestPreVote");
    assert.ok(votes.length > 0, "there was an election");
    assert.deepEqual(votes.filter((m) => m.from === "n4" || m.to === "n4"), [], "none from or to the learner");
  });

  it("a learner is promoted with addVoter through a joint configuration, and can then lead", () => {
    const cluster = clusterLedBy("n1");
    cluster.addMember("n4");
    cluster.node("n1").proposeConfChange({ kind: "addLearner", id: "n4" });
    cluster.flush();
    assert.throws(() => cluster.node("n1").transferLeadership("n4"), (e: unknown) => InvalidRequestError.is(e), "a learner cannot be handed leadership");
    const { index, term } = cluster.node("n1").proposeConfChange({ kind: "addVoter", id: "n4" });
    cluster.flush();
    assert.deepEqual(confEntries(cluster, "n4").slice(1), [
      { index, term, conf: conf(["n1", "n2", "n3", "n4"], ["n1", "n2", "n3"]) },
      { index: index + 1, term, conf: conf(["n1", "n2", "n3", "n4"]) },
    ]);
    for (const id of ["n1", "n2", "n3", "n4"]) assert.deepEqual(configOf(cluster, id), conf(["n1", "n2", "n3", "n4"]), id);
    cluster.node("n1").transferLeadership("n4");
    cluster.flush();
    assert.equal(cluster.leader(), "n4");
  });
});

describe("removal", () => {
  it("a removed leader leads through the joint phase, steps down once it applies C_new, and falls silent", () => {
    const cluster = clusterLedBy("n1");
    const term = cluster.node("n1").status().term;
    // With n3 unreachable, C_new = {n2, n3} cannot commit: the joint phase lasts.
    cluster.cut("n1", "n3");
    const { index } = cluster.node("n1").proposeConfChange({ kind: "remove", id: "n1" });
    cluster.flush();
    const joint = conf(["n2", "n3"], ["n1", "n2", "n3"]);
    assert.deepEqual(configOf(cluster, "n1"), joint);
    assert.equal(cluster.node("n1").status().role, "leader", "a leader only in the outgoing half still leads");
    const { index: valueIndex } = cluster.node("n1").propose(bytes("while-joint"));
    settle(cluster, 3);
    assert.equal(cluster.node("n1").status().role, "leader");
    assert.equal(cluster.node("n1").status().commit, index);

    cluster.heal();
    cluster.flush();
    settle(cluster, 2);
    const n1 = cluster.node("n1").status();
    assert.equal(n1.role, "follower", "the removed leader stepped down");
    assert.deepEqual(n1.config, conf(["n2", "n3"]));
    assert.deepEqual(confEntries(cluster, "n2").map((e) => [e.index, e.term]), [[index, term], [index + 1, term]], "it appended C_new itself, in its term");
    assert.ok(cluster.applied.get("n1")?.some((e) => e.index === valueIndex), "its entries of the joint phase committed");

    const campaigns = n1.counters.campaigns;
    const mark = cluster.sent.length;
    const leader = cluster.electLeader(500);
    cluster.run(100);
    assert.ok(leader === "n2" || leader === "n3");
    assert.ok(cluster.node(leader).status().term > term);
    assert.deepEqual(sentSince(cluster, mark, (m) => m.from === "n1" && ["heartbeat", "append", "snapshot", "requestVote", "requestPreVote"].includes(m.type)), [], "n1 falls silent");
    assert.equal(cluster.node("n1").status().counters.campaigns, campaigns, "and never campaigns");
    const { index: next } = cluster.node(leader).propose(bytes("after"));
    cluster.flush();
    assert.equal(cluster.node(leader).status().commit, next);
  });

  it("a removed follower is no longer contacted and does not campaign", () => {
    const cluster = clusterLedBy("n1");
    cluster.node("n1").proposeConfChange({ kind: "remove", id: "n3" });
    cluster.flush();
    for (const id of THREE) assert.deepEqual(configOf(cluster, id), conf(["n1", "n2"]), id);
    const mark = cluster.sent.length;
    cluster.run(200);
    assert.equal(cluster.leader(), "n1");
    assert.deepEqual(sentSince(cluster, mark, (m) => m.to === "n3" || m.from === "n3"), []);
    assert.equal(cluster.node("n3").status().counters.campaigns, 0);
    assert.equal(cluster.node("n1").status().matched?.n3, undefined, "the leader tracks it no more");
  });

  it("a removed member that never learned of its removal cannot disrupt the cluster", () => {
    const cluster = clusterLedBy("n1");
    cluster.isolate("n3");
    cluster.node("n1").proposeConfChange({ kind: "remove", id: "n3" });
    cluster.flush();
    assert.deepEqual(configOf(cluster, "n1"), conf(["n1", "n2"]));
    assert.deepEqual(configOf(cluster, "n3"), conf(THREE), "n3 still believes it votes");
    const term = cluster.node("n1").status().term;
    cluster.heal();
    const mark = cluster.sent.length;
    cluster.run(300);
    assert.ok(sentSince(cluster, mark, (m) => m.from === "n3" && m.type === "requestPreVote").length > 0, "n3 tries");
    assert.equal(cluster.leader(), "n1");
    assert.equal(cluster.node("n1").status().term, term, "no term was raised");
    assert.equal(cluster.node("n2").status().term, term);
  });
});

describe("refusals", () => {
  it("refuses a second change while the first is not applied (pending)", () => {
    const cluster = clusterLedBy("n1");
    const leader = cluster.node("n1");
    cluster.addMember("n4");
    leader.proposeConfChange({ kind: "addLearner", id: "n4" });
    assertRefused(leader, { kind: "remove", id: "n4" }, "pending");
    assertRefused(leader, { kind: "addLearner", id: "n5" }, "pending");
    cluster.flush();
    leader.proposeConfChange({ kind: "remove", id: "n4" });
  });

  it("refuses a change during the joint phase, until C_new is applied (pending)", () => {
    const cluster = clusterLedBy("n1");
    const leader = cluster.node("n1");
    cluster.addMember("n4");
    cluster.cut("n1", "n3");
    cluster.cut("n1", "n4");
    leader.proposeConfChange({ kind: "addVoter", id: "n4" });
    cluster.flush();
    assert.ok(isJoint(leader.status().config), "the joint entry is applied, C_new is not");
    assertRefused(leader, { kind: "addLearner", id: "n5" }, "pending");
    assertRefused(leader, { kind: "remove", id: "n4" }, "pending");
    cluster.heal();
    settle(cluster, 5);
    assert.deepEqual(leader.status().config, conf(["n1", "n2", "n3", "n4"]));
    leader.proposeConfChange({ kind: "remove", id: "n4" });
  });

  it("refuses to remove the last voter (last-voter)", () => {
    const lone = clusterLedBy("n1", ["n1"]);
    assertRefused(lone.node("n1"), { kind: "remove", id: "n1" }, "last-voter");
    const cluster = clusterLedBy("n1");
    assertRefused(cluster.node("n1"), THREE.map((id) => ({ kind: "remove" as const, id })), "last-voter");
  });

  it("refuses to remove a member that is not there (unknown-member)", () => {
    const cluster = clusterLedBy("n1");
    assertRefused(cluster.node("n1"), { kind: "remove", id: "n9" }, "unknown-member");
    assertRefused(cluster.node("n1"), [{ kind: "addLearner", id: "n4" }, { kind: "remove", id: "n9" }], "unknown-member");
  });

  it("refuses to add a member already there in that role, or to demote a voter (already-member)", () => {
    const cluster = clusterLedBy("n1");
    const leader = cluster.node("n1");
    assertRefused(leader, { kind: "addVoter", id: "n2" }, "already-member");
    assertRefused(leader, { kind: "addLearner", id: "n2" }, "already-member");
    cluster.addMember("n4");
    leader.proposeConfChange({ kind: "addLearner", id: "n4" });
    cluster.flush();
    assertRefused(leader, { kind: "addLearner", id: "n4" }, "already-member");
  });

  it("refuses an empty change, a member named twice, an unknown operation or a bad id (malformed)", () => {
    const cluster = clusterLedBy("n1");
    const leader = cluster.node("n1");
    assertRefused(leader, [], "malformed");
    assertRefused(leader, [{ kind: "addLearner", id: "n4" }, { kind: "addVoter", id: "n4" }], "malformed");
    assertRefused(leader, { kind: "demote", id: "n2" } as unknown as ConfChangeOp, "malformed");
    assertRefused(leader, { kind: "addVoter", id: "" }, "malformed");
    assertRefused(leader, { kind: "addVoter", id: 7 } as unknown as ConfChangeOp, "malformed");
  });

  it(`refuses more than ${VOTERS_MAX} voters (too-many-voters), and takes exactly ${VOTERS_MAX}`, () => {
    const cluster = clusterLedBy("n1");
    const leader = cluster.node("n1");
    const add = (count: number): ConfChangeOp[] => Array.from({ length: count }, (_, i) => ({ kind: "addVoter", id: `m${i}` }));
    assertRefused(leader, add(VOTERS_MAX - THREE.length + 1), "too-many-voters");
    const { index } = leader.proposeConfChange(add(VOTERS_MAX - THREE.length));
    assert.equal(index, leader.status().lastIndex);
  });

  it("a follower refuses with NotLeaderError naming the leader; a member knowing none with a null hint", () => {
    const cluster = clusterLedBy("n1");
    assert.throws(
      () => cluster.node("n2").proposeConfChange({ kind: "addLearner", id: "n4" }),
      (e: unknown) => NotLeaderError.is(e) && e.leaderHint === "n1",
    );
    const lonely = member("n1", THREE);
    assert.throws(() => lonely.proposeConfChange({ kind: "addLearner", id: "n4" }), (e: unknown) => NotLeaderError.is(e) && e.leaderHint === null);
  });

  it("drops a change during a leadership transfer, and takes it once the transfer is abandoned", () => {
    const cluster = clusterLedBy("n1");
    const leader = cluster.node("n1");
    cluster.cut("n1", "n2");
    leader.transferLeadership("n2");
    assert.throws(
      () => leader.proposeConfChange({ kind: "addLearner", id: "n4" }),
      (e: unknown) => ProposalDroppedError.is(e) && e.reason === "leadership-transfer",
    );
    assert.equal(leader.status().counters.confChanges, 0);
    cluster.run(10); // an election timeout: the transfer is abandoned
    assert.equal(cluster.leader(), "n1");
    cluster.addMember("n4");
    leader.proposeConfChange({ kind: "addLearner", id: "n4" });
  });
});

describe("leadership transfer and membership", () => {
  it("refuses a transfer to a learner or to a removed member", () => {
    const cluster = clusterLedBy("n1");
    cluster.addMember("n4");
    cluster.node("n1").proposeConfChange({ kind: "addLearner", id: "n4" });
    cluster.flush();
    cluster.node("n1").proposeConfChange({ kind: "remove", id: "n3" });
    cluster.flush();
    assert.deepEqual(configOf(cluster, "n1"), conf(["n1", "n2"], [], ["n4"]));
    for (const to of ["n3", "n4"]) {
      assert.throws(() => cluster.node("n1").transferLeadership(to), (e: unknown) => InvalidRequestError.is(e), to);
    }
  });

  it("abandons a transfer to a member being removed once its removal is applied", () => {
    const cluster = clusterLedBy("n1");
    const leader = cluster.node("n1");
    leader.proposeConfChange({ kind: "remove", id: "n3" });
    stepUntilJoint(cluster, "n1");
    assert.deepEqual(leader.status().config, conf(["n1", "n2"], THREE));
    assert.ok(leader.status().commit < leader.status().lastIndex, "C_new is not committed yet");
    cluster.cut("n1", "n2");
    cluster.cut("n1", "n3");
    const mark = cluster.sent.length;
    leader.transferLeadership("n3"); // n3 still votes in the outgoing half
    assert.throws(() => leader.propose(bytes("x")), (e: unknown) => ProposalDroppedError.is(e));

    cluster.heal();
    cluster.cut("n1", "n3"); // the transfer cannot finish
    settle(cluster, 3); // well within the transfer's own timeout of 10 ticks
    assert.deepEqual(leader.status().config, conf(["n1", "n2"]));
    assert.equal(leader.status().role, "leader");
    leader.propose(bytes("x")); // the transfer was abandoned: proposals are taken again
    assert.deepEqual(sentSince(cluster, mark, (m) => m.type === "timeoutNow"), []);
    cluster.heal();
    cluster.run(30);
    assert.equal(cluster.leader(), "n1");
  });
});

describe("restarts and snapshots", () => {
  it("a member restarted in the joint phase rebuilds the joint configuration from its log", () => {
    const cluster = clusterLedBy("n1");
    cluster.addMember("n4");
    cluster.cut("n1", "n3");
    cluster.cut("n1", "n4");
    cluster.node("n1").proposeConfChange({ kind: "addVoter", id: "n4" });
    cluster.flush();
    const joint = conf(["n1", "n2", "n3", "n4"], THREE);
    assert.deepEqual(configOf(cluster, "n2"), joint);
    cluster.crash("n2");
    cluster.restart("n2");
    assert.deepEqual(configOf(cluster, "n2"), conf(THREE), "before re-applying its log, the bootstrap configuration");
    cluster.processReady();
    assert.deepEqual(configOf(cluster, "n2"), joint, "re-applying its committed log restores the joint configuration");
    cluster.heal();
    settle(cluster, 5);
    for (const id of ["n1", "n2", "n3", "n4"]) assert.deepEqual(configOf(cluster, id), conf(["n1", "n2", "n3", "n4"]), id);
  });

  it("a member restarted from a snapshot taken after a change starts in that configuration", () => {
    const cluster = clusterLedBy("n1");
    cluster.addMember("n4");
    cluster.node("n1").proposeConfChange({ kind: "addVoter", id: "n4" });
    cluster.flush();
    cluster.node("n1").propose(bytes("x"));
    cluster.flush();
    const final = conf(["n1", "n2", "n3", "n4"]);
    const snapshot = cluster.compact("n2");
    assert.deepEqual(snapshot.config, final);
    assert.deepEqual(cluster.disks.get("n2")?.entries, [], "everything is in the snapshot");
    cluster.crash("n2");
    cluster.restart("n2");
    assert.deepEqual(configOf(cluster, "n2"), final, "the configuration comes from the snapshot at once");
    cluster.crash("n1");
    const leader = cluster.electLeader(500);
    cluster.node(leader).propose(bytes("y"));
    cluster.flush();
    assert.deepEqual(appliedData(cluster, "n2"), ["x", "y"]);
  });

  it("a snapshot records the configuration in effect at its own index, joint or older", () => {
    const cluster = clusterLedBy("n1");
    cluster.addMember("n4");
    cluster.cut("n1", "n3");
    cluster.cut("n1", "n4");
    const { index } = cluster.node("n1").proposeConfChange({ kind: "addVoter", id: "n4" });
    cluster.flush();
    const joint = conf(["n1", "n2", "n3", "n4"], THREE);
    // A snapshot below the joint entry holds C_old; n2 re-applies the joint entry from its log.
    assert.deepEqual(cluster.compact("n2", index - 1).config, conf(THREE));
    cluster.crash("n2");
    cluster.restart("n2");
    assert.deepEqual(configOf(cluster, "n2"), conf(THREE));
    cluster.processReady();
    assert.deepEqual(configOf(cluster, "n2"), joint);
    // A snapshot at the joint entry holds the joint configuration.
    assert.deepEqual(cluster.compact("n2", index).config, joint);
    cluster.crash("n2");
    cluster.restart("n2");
    assert.deepEqual(configOf(cluster, "n2"), joint, "the joint configuration comes from the snapshot");
    cluster.heal();
    settle(cluster, 5);
    assert.deepEqual(configOf(cluster, "n2"), conf(["n1", "n2", "n3", "n4"]));
  });

  it("a new member learns the configuration from a chunked snapshot and restarts from it", () => {
    const cluster = clusterLedBy("n1", THREE, { config: { snapshotChunkBytes: 64 } });
    cluster.addMember("n4");
    cluster.cut("n1", "n4");
    cluster.node("n1").proposeConfChange({ kind: "addLearner", id: "n4" });
    cluster.flush();
    for (let i = 0; i < 5; i += 1) cluster.node("n1").propose(bytes(`v${i}`));
    cluster.flush();
    const snapshot = cluster.compact("n1");
    assert.deepEqual(snapshot.config, conf(THREE, [], ["n4"]));
    cluster.heal();
    cluster.run(20);
    const n4 = cluster.node("n4").status();
    assert.equal(n4.counters.snapshotsInstalled, 1);
    assert.deepEqual(n4.config, conf(THREE, [], ["n4"]), "learned from the snapshot");
    assert.deepEqual(appliedData(cluster, "n4"), ["v0", "v1", "v2", "v3", "v4"]);
    const chunks = cluster.sent.filter((m) => m.type === "snapshot" && m.to === "n4");
    assert.ok(chunks.length > 1, "the snapshot came in chunks");

    // n4 has no bootstrap configuration of its own (it joined with voters: []).
    cluster.crash("n4");
    cluster.restart("n4");
    assert.deepEqual(configOf(cluster, "n4"), conf(THREE, [], ["n4"]));
    cluster.node("n1").proposeConfChange({ kind: "addVoter", id: "n4" });
    settle(cluster, 5);
    assert.deepEqual(configOf(cluster, "n4"), conf(["n1", "n2", "n3", "n4"]));
    assert.deepEqual(appliedData(cluster, "n4"), ["v0", "v1", "v2", "v3", "v4"]);
  });
});

describe("waiting for the log to be applied", () => {
  it("a member with a committed configuration entry it has not applied does not campaign", () => {
    const four = conf(["n1", "n2", "n3", "n4"]);
    const restored = {
      hardState: { term: 1, vote: null, commit: 2 },
      entries: [normalEntry(1, 1), confEntry(2, 1, four)],
    };
    const node = member("n1", THREE, { preVote: false }, restored);
    assert.deepEqual(node.status().config, conf(THREE), "not applied yet");
    node.campaign();
    for (let tick = 0; tick < 100; tick += 1) node.tick();
    assert.equal(node.status().role, "follower");
    assert.equal(node.status().term, 1);
    assert.equal(node.status().counters.campaigns, 0);

    const rd = node.ready();
    assert.deepEqual(rd.committed.map((e) => e.index), [1, 2]);
    assert.deepEqual(rd.messages, []);
    node.advance(rd);
    assert.deepEqual(node.status().config, four);
    node.campaign();
    const requests = drain(node).flatMap((r) => r.messages).filter((m) => m.type === "requestVote");
    assert.deepEqual(requests.map((m) => m.to), ["n2", "n3", "n4"], "campaigns in the configuration it applied");
  });

  it("a new leader refuses a change until it has applied its whole log", () => {
    const restored = { hardState: { term: 1, vote: null, commit: 0 }, entries: [normalEntry(1, 1), normalEntry(2, 1)] };
    const node = member("n1", THREE, { preVote: false }, restored);
    node.campaign();
    const requests = drain(node).flatMap((rd) => rd.messages).filter((m) => m.type === "requestVote");
    node.step({ type: "voteResponse", from: "n2", to: "n1", term: 2, reject: false });
    assert.equal(node.status().role, "leader");
    assert.ok(requests.length === 2);
    assertRefused(node, { kind: "addLearner", id: "n4" }, "pending");
    drain(node); // its empty entry, index 3, is durable
    assertRefused(node, { kind: "addLearner", id: "n4" }, "pending");
    node.step({ type: "appendResponse", from: "n2", to: "n1", term: 2, index: 3, reject: false, rejectHint: 0, rejectHintTerm: 0 });
    assert.equal(node.status().commit, 3);
    assertRefused(node, { kind: "addLearner", id: "n4" }, "pending"); // committed, not yet applied
    drain(node);
    assert.equal(node.status().applied, 3);
    assert.equal(node.proposeConfChange({ kind: "addLearner", id: "n4" }).index, 4);
  });

  it("a new leader completes the joint change its predecessor began, and only then takes another", () => {
    const cluster = clusterLedBy("n1");
    // n2 receives the joint entry but n1 never learns it (n2's answers are lost), and n3 never sees it.
    cluster.cut("n1", "n3");
    cluster.cutOneWay("n2", "n1");
    const { index, term } = cluster.node("n1").proposeConfChange({ kind: "remove", id: "n1" });
    cluster.flush();
    assert.equal(cluster.node("n2").status().lastIndex, index);
    assert.equal(cluster.node("n1").status().commit, index - 1);
    cluster.crash("n1");
    cluster.heal();
    for (let tick = 0; tick < 500 && cluster.leader() === null; tick += 1) cluster.run(1);
    assert.equal(cluster.leader(), "n2", "only n2's log is up to date");
    const n2 = cluster.node("n2");
    const newTerm = n2.status().term;
    assertRefused(n2, { kind: "addLearner", id: "n4" }, "pending");
    cluster.flush();
    assert.deepEqual(confEntries(cluster, "n2").map((e) => [e.index, e.term, e.conf]), [
      [index, term, conf(["n2", "n3"], THREE)],
      [index + 2, newTerm, conf(["n2", "n3"])],
    ], "the joint entry of the old term, then C_new of the new one after its empty entry");
    for (const id of ["n2", "n3"]) assert.deepEqual(configOf(cluster, id), conf(["n2", "n3"]), id);
    cluster.addMember("n4");
    n2.proposeConfChange({ kind: "addLearner", id: "n4" });
  });
});

// -------------------------------------------------------------------------------------------------
// A regression test for a bug this suite found at commit 9ec8fe7 (fixed in ba5397a, where `compact`
// returns null there). A member that joins with `voters: []` and receives the log from index 1 (the
// leader had not compacted) took EMPTY_CONF as its configuration at index 0, so `Raft.confAt`
// answered `{ voters: [] }` for every index before the first configuration entry it applied. A
// snapshot it took there (legal: at most `status().applied`) carried that empty, invalid
// configuration; once it led, every follower needing the snapshot refused it in `validateSnapshot`
// ("snapshot configuration is malformed") and never caught up. Either answer is correct: a snapshot
// with the configuration really in effect there, or no snapshot (`null`).
describe("snapshots of a member that joined a running cluster", () => {
  it("never record a configuration the member does not know, and let it, as leader, bring a new member up", () => {
    const cluster = clusterLedBy("n1");
    for (let i = 0; i < 5; i += 1) cluster.node("n1").propose(bytes(`v${i}`));
    cluster.flush();
    cluster.addMember("n4");
    const { index } = cluster.node("n1").proposeConfChange({ kind: "addLearner", id: "n4" });
    cluster.flush();
    assert.equal(cluster.disks.get("n4")?.entries[0]?.index, 1, "n4 received the log from index 1");
    assert.ok(index > 3);
    // The host of n4 snapshots at index 3, below the learner entry.
    const state = encodeAppliedEntries((cluster.applied.get("n4") ?? []).filter((e) => e.index <= 3));
    const early = cluster.node("n4").compact(3, state);
    if (early !== null) {
      assert.deepEqual(early.config, conf(THREE), "the configuration in effect at index 3, not an empty one");
      const disk = cluster.disks.get("n4") as MemoryDisk;
      disk.snapshot = early;
      disk.entries = disk.entries.filter((e) => e.index > 3);
    } else {
      // Refused: once it has applied its own addition it can snapshot.
      assert.deepEqual(cluster.compact("n4", index).config, conf(THREE, [], ["n4"]));
    }

    // n4 is promoted, leads, and is asked to add n5, which needs n4's snapshot.
    cluster.node("n1").proposeConfChange({ kind: "addVoter", id: "n4" });
    settle(cluster, 3);
    cluster.node("n1").transferLeadership("n4");
    cluster.flush();
    assert.equal(cluster.leader(), "n4");
    cluster.addMember("n5");
    cluster.node("n4").proposeConfChange({ kind: "addLearner", id: "n5" });
    settle(cluster, 50);
    const n5 = cluster.node("n5").status();
    assert.equal(n5.counters.invalidMessages, 0, "n5 refuses nothing n4 sends");
    assert.equal(n5.counters.snapshotsInstalled, 1, "n5 installs n4's snapshot");
    assert.equal(n5.applied, cluster.node("n4").status().lastIndex, "and catches up");
    assert.deepEqual(n5.config, conf(["n1", "n2", "n3", "n4"], [], ["n5"]));
  });
});
