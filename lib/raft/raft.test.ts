/**
 * Scenario tests for the Raft core: elections, votes, terms, replication and commit, including the
 * Raft paper's Figure 7 and Figure 8, pre-vote and check-quorum. Each test drives members directly
 * or through the small in-memory cluster of `testing.ts`.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NotLeaderError, ProposalDroppedError, InvalidRequestError } from "../errors.ts";
import type { Entry, Message, NodeId } from "./messages.ts";
import { RaftNode, type Ready } from "./raw-node.ts";
import { TestCluster, bytes, drainReady as drain, entriesWithTerms, handDriven as member, lcg, text } from "./testing.ts";

const THREE = ["n1", "n2", "n3"];


function messagesOf(readies: readonly Ready[]): Message[] {
  return readies.flatMap((rd) => rd.messages);
}

function voteRequest(from: NodeId, to: NodeId, term: number, lastIndex: number, lastTerm: number): Message {
  return { type: "requestVote", from, to, term, lastIndex, lastTerm, transfer: false };
}

/** Makes `node` leader by granting its (pre-)vote requests directly, one voter at a time. */
function electDirectly(node: RaftNode): void {
  node.campaign();
  for (let round = 0; round < 4 && node.status().role !== "leader"; round += 1) {
    const request = messagesOf(drain(node)).find((m) => m.type === "requestPreVote" || m.type === "requestVote");
    assert.ok(request !== undefined, "the candidate asks for votes");
    const responseType = request.type === "requestVote" ? "voteResponse" : "preVoteResponse";
    node.step({ type: responseType, from: request.to, to: request.from, term: request.term, reject: false });
  }
  assert.equal(node.status().role, "leader");
}

describe("elections", () => {
  it("elects exactly one leader and every member learns it", () => {
    const cluster = new TestCluster(THREE);
    const leader = cluster.electLeader();
    cluster.run(5);
    for (const id of THREE) assert.equal(cluster.node(id).status().leader, leader);
    assert.deepEqual(cluster.leaders(), [leader]);
  });

  it("draws each election timeout from [electionTicks, 2 * electionTicks)", () => {
    for (const [draw, expected] of [[0, 10], [0.5, 15], [0.9999, 19]] as const) {
      const node = new RaftNode({ id: "n1", voters: THREE, random: () => draw, electionTicks: 10, preVote: false });
      let ticks = 0;
      while (node.status().role === "follower") {
        node.tick();
        ticks += 1;
        assert.ok(ticks <= 20, "campaigns within 2 * electionTicks");
      }
      assert.equal(ticks, expected, `random() = ${draw}`);
    }
  });

  it("a lone member elects itself and commits its empty entry only after persisting it", () => {
    const node = member("n1", ["n1"]);
    node.campaign();
    assert.equal(node.status().role, "leader");
    const first = node.ready();
    assert.equal(first.entries.length, 1, "the new leader's empty entry is to be persisted");
    assert.equal(first.committed.length, 0, "nothing commits before the leader's own write is durable");
    node.advance(first);
    const second = node.ready();
    assert.deepEqual(second.committed.map((e) => e.index), [1]);
    node.advance(second);
  });

  it("a candidate that loses a majority of votes returns to follower", () => {
    const node = member("n1", THREE, { preVote: false });
    node.campaign();
    drain(node);
    node.step({ type: "voteResponse", from: "n2", to: "n1", term: 1, reject: true });
    assert.equal(node.status().role, "candidate");
    node.step({ type: "voteResponse", from: "n3", to: "n1", term: 1, reject: true });
    assert.equal(node.status().role, "follower");
  });
});

describe("votes", () => {
  const log = entriesWithTerms([1, 1, 2]);
  const restored = { hardState: { term: 2, vote: null, commit: 0 }, entries: log };

  function voteAnswer(node: RaftNode): Message {
    const answers = messagesOf(drain(node)).filter((m) => m.type === "voteResponse");
    assert.equal(answers.length, 1);
    return answers[0] as Message;
  }

  it("refuses a vote to a candidate whose last entry has an older term", () => {
    const node = member("n1", THREE, {}, restored);
    node.step(voteRequest("n2", "n1", 3, 5, 1));
    assert.equal((voteAnswer(node) as { reject: boolean }).reject, true);
    assert.equal(node.status().vote, null);
  });

  it("refuses a vote to a candidate with the same last term but a shorter log", () => {
    const node = member("n1", THREE, {}, restored);
    node.step(voteRequest("n2", "n1", 3, 2, 2));
    assert.equal((voteAnswer(node) as { reject: boolean }).reject, true);
  });

  it("grants a vote to an up-to-date candidate and will not vote again in that term", () => {
    const node = member("n1", THREE, {}, restored);
    node.step(voteRequest("n2", "n1", 3, 3, 2));
    assert.equal((voteAnswer(node) as { reject: boolean }).reject, false);
    assert.equal(node.status().vote, "n2");
    node.step(voteRequest("n3", "n1", 3, 9, 2));
    assert.equal((voteAnswer(node) as { reject: boolean }).reject, true, "one vote per term");
    node.step(voteRequest("n2", "n1", 3, 3, 2));
    assert.equal((voteAnswer(node) as { reject: boolean }).reject, false, "a repeated request is granted again");
  });

  it("keeps its vote across a restart", () => {
    const node = member("n1", THREE, {}, restored);
    node.step(voteRequest("n2", "n1", 3, 3, 2));
    const hardState = drain(node).find((rd) => rd.hardState !== undefined)?.hardState;
    assert.deepEqual(hardState, { term: 3, vote: "n2", commit: 0 });
    const restarted = member("n1", THREE, {}, { hardState: hardState!, entries: log });
    restarted.step(voteRequest("n3", "n1", 3, 9, 2));
    assert.equal((voteAnswer(restarted) as { reject: boolean }).reject, true);
  });
});

describe("terms", () => {
  it("adopts a higher term from any message and forgets its vote", () => {
    const node = member("n1", THREE, {}, { hardState: { term: 2, vote: "n1", commit: 0 }, entries: [] });
    node.step({ type: "heartbeat", from: "n2", to: "n1", term: 5, commit: 0, round: 0 });
    const status = node.status();
    assert.equal(status.term, 5);
    assert.equal(status.vote, null);
    assert.equal(status.leader, "n2");
  });

  it("ignores an append from an older term and answers with its own term", () => {
    const node = member("n1", THREE, {}, { hardState: { term: 5, vote: null, commit: 0 }, entries: [] });
    node.step({ type: "append", from: "n2", to: "n1", term: 3, prevIndex: 0, prevTerm: 0, entries: entriesWithTerms([3]), commit: 1 });
    assert.equal(node.status().lastIndex, 0, "nothing appended");
    assert.equal(node.status().term, 5);
    const answers = messagesOf(drain(node));
    assert.deepEqual(answers.map((m) => [m.type, m.term]), [["appendResponse", 5]]);
  });

  it("a leader that hears of a higher term steps down", () => {
    const node = member("n1", THREE);
    electDirectly(node);
    assert.equal(node.status().role, "leader");
    node.step({ type: "appendResponse", from: "n2", to: "n1", term: node.status().term + 1, index: 0, reject: false, rejectHint: 0, rejectHintTerm: 0 });
    assert.equal(node.status().role, "follower");
  });

  it("no member's term ever decreases in a run with elections", () => {
    const cluster = new TestCluster(["n1", "n2", "n3", "n4", "n5"], { random: lcg(7) });
    const seen = new Map<NodeId, number>();
    for (let round = 0; round < 20; round += 1) {
      const leader = cluster.electLeader();
      cluster.isolate(leader);
      cluster.run(25);
      cluster.heal();
      for (const id of cluster.ids) {
        const term = cluster.node(id).status().term;
        assert.ok(term >= (seen.get(id) ?? 0));
        seen.set(id, term);
      }
    }
  });
});

describe("Figure 7: a new leader brings every follower's log to its own", () => {
  // Raft paper, Figure 7: the leader's log and six followers (a)-(f) with missing or extra entries.
  const leaderTerms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
  const followers: Record<string, number[]> = {
    a: [1, 1, 1, 4, 4, 5, 5, 6, 6],
    b: [1, 1, 1, 4],
    c: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    d: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    e: [1, 1, 1, 4, 4, 4, 4],
    f: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
  };
  for (const [name, terms] of Object.entries(followers)) {
    it(`repairs follower (${name}) with at most one rejected probe`, () => {
      const followerTerm = Math.max(...terms);
      const cluster = new TestCluster(THREE, {
        restored: {
          n1: { hardState: { term: 7, vote: null, commit: 0 }, entries: entriesWithTerms(leaderTerms) },
          n2: { hardState: { term: followerTerm, vote: null, commit: 0 }, entries: entriesWithTerms(terms) },
          // A third member with the leader's log votes for it, as in the figure's election.
          n3: { hardState: { term: 7, vote: null, commit: 0 }, entries: entriesWithTerms(leaderTerms) },
        },
      });
      cluster.node("n1").campaign();
      cluster.flush();
      assert.equal(cluster.leader(), "n1");
      assert.equal(cluster.node("n1").status().term, 8);
      const expected = [...leaderTerms, 8];
      assert.deepEqual(cluster.termsOf("n2"), expected);
      assert.deepEqual(
        cluster.disks.get("n2")!.entries.map((e) => text(e.data)),
        cluster.disks.get("n1")!.entries.map((e) => text(e.data)),
      );
      assert.equal(cluster.node("n2").status().commit, expected.length);
      const rejections = cluster.sent.filter((m) => m.type === "appendResponse" && m.from === "n2" && m.reject);
      // Fast backtracking skips whole conflicting terms: one round trip finds the match point.
      assert.ok(rejections.length <= 1, `${rejections.length} rejections`);
    });
  }
});

describe("Figure 8: entries from earlier terms are not committed by counting replicas", () => {
  it("a new leader does not commit an old-term entry stored on a majority", () => {
    // n1 holds [1@1, 2@2] and becomes leader of term 3 (appending its empty entry 3@3).
    const node = member("n1", THREE, {}, { hardState: { term: 2, vote: null, commit: 0 }, entries: entriesWithTerms([1, 2]) });
    electDirectly(node);
    assert.equal(node.status().term, 3);
    drain(node); // n1's own log is now durable through index 3.
    const ack = (index: number) =>
      node.step({ type: "appendResponse", from: "n2", to: "n1", term: 3, index, reject: false, rejectHint: 0, rejectHintTerm: 0 });
    ack(1);
    assert.equal(node.status().commit, 0, "index 1 (term 1) is on a majority but not committed");
    ack(2);
    assert.equal(node.status().commit, 0, "index 2 (term 2) is on a majority but not committed");
    ack(3);
    assert.equal(node.status().commit, 3, "index 3 of the current term commits, and everything before it");
  });

  it("an old-term entry on a majority may still be overwritten, which is why it must not commit", () => {
    // Figure 8 (d): s1 crashed after placing 2@2 on s1-s3; s5 holds 2@3 and wins s2-s4's votes.
    const cluster = new TestCluster(["s1", "s2", "s3", "s4", "s5"], {
      restored: {
        s1: { hardState: { term: 4, vote: "s1", commit: 1 }, entries: entriesWithTerms([1, 2]) },
        s2: { hardState: { term: 4, vote: "s1", commit: 1 }, entries: entriesWithTerms([1, 2]) },
        s3: { hardState: { term: 4, vote: "s1", commit: 1 }, entries: entriesWithTerms([1, 2]) },
        s4: { hardState: { term: 4, vote: "s1", commit: 1 }, entries: entriesWithTerms([1]) },
        s5: { hardState: { term: 4, vote: null, commit: 1 }, entries: entriesWithTerms([1, 3]) },
      },
    });
    cluster.crash("s1");
    cluster.node("s5").campaign();
    cluster.flush();
    assert.equal(cluster.leader(), "s5");
    for (const id of ["s2", "s3", "s4"]) assert.deepEqual(cluster.termsOf(id).slice(0, 2), [1, 3], id);
  });
});

describe("pre-vote", () => {
  function disruption(preVote: boolean): { termBefore: number; termAfter: number; leaderBefore: NodeId; leaderAfter: NodeId | null } {
    const cluster = new TestCluster(THREE, { random: lcg(3), config: { preVote, checkQuorum: false } });
    const leaderBefore = cluster.electLeader();
    const termBefore = cluster.node(leaderBefore).status().term;
    const outsider = THREE.find((id) => id !== leaderBefore) as NodeId;
    cluster.isolate(outsider);
    cluster.run(200); // the outsider's election timer fires again and again
    cluster.heal();
    cluster.run(50);
    const leaderAfter = cluster.leader();
    return { termBefore, termAfter: cluster.node(leaderAfter ?? leaderBefore).status().term, leaderBefore, leaderAfter };
  }

  it("keeps a member that was partitioned away from disrupting a stable leader when it rejoins", () => {
    const result = disruption(true);
    assert.equal(result.leaderAfter, result.leaderBefore);
    assert.equal(result.termAfter, result.termBefore, "no term was raised");
  });

  it("without pre-vote, the same rejoin deposes the leader (the test detects disruption)", () => {
    const result = disruption(false);
    assert.ok(result.termAfter > result.termBefore, "the outsider's raised term forced an election");
  });

  it("a pre-vote changes no one's term or vote", () => {
    const node = member("n1", THREE, {}, { hardState: { term: 4, vote: null, commit: 0 }, entries: [] });
    node.step({ type: "requestPreVote", from: "n2", to: "n1", term: 5, lastIndex: 0, lastTerm: 0, transfer: false });
    const answers = messagesOf(drain(node));
    assert.deepEqual(answers.map((m) => [m.type, m.term, (m as { reject: boolean }).reject]), [["preVoteResponse", 5, false]]);
    assert.equal(node.status().term, 4);
    assert.equal(node.status().vote, null);
  });
});

describe("check-quorum", () => {
  it("a leader cut off from a quorum steps down within an election timeout", () => {
    const cluster = new TestCluster(THREE, { random: lcg(5) });
    const leader = cluster.electLeader();
    cluster.isolate(leader);
    cluster.run(2 * 10 + 1);
    assert.equal(cluster.node(leader).status().role, "follower");
  });

  it("without check-quorum the cut-off leader keeps believing it leads", () => {
    const cluster = new TestCluster(THREE, { random: lcg(5), config: { checkQuorum: false } });
    const leader = cluster.electLeader();
    cluster.isolate(leader);
    cluster.run(2 * 10 + 1);
    assert.equal(cluster.node(leader).status().role, "leader");
  });

  it("a follower that heard from its leader within the election timeout ignores vote requests", () => {
    const node = member("n1", THREE);
    node.step({ type: "heartbeat", from: "n2", to: "n1", term: 1, commit: 0, round: 0 });
    drain(node);
    node.step(voteRequest("n3", "n1", 2, 0, 0));
    assert.equal(node.status().term, 1, "the request's higher term was not adopted");
    assert.deepEqual(messagesOf(drain(node)), [], "and it was not answered");
    for (let tick = 0; tick < 10; tick += 1) node.tick();
    drain(node);
    node.step(voteRequest("n3", "n1", 2, 0, 0));
    assert.equal(node.status().vote, "n3", "after the lease runs out the vote is granted");
  });
});

describe("replication", () => {
  it("the leader sends new entries before its own write is durable; followers can commit them", () => {
    const cluster = new TestCluster(THREE);
    const leader = cluster.electLeader();
    const node = cluster.node(leader);
    const { index } = node.propose(bytes("x"));
    const rd = node.ready();
    assert.ok(rd.sendBeforePersist, "a leader's appends do not wait for its own fsync");
    assert.ok(rd.messages.some((m) => m.type === "append" && m.entries.some((e) => e.index === index)));
    assert.equal(node.status().matched?.[leader], index - 1, "its own match counts only after advance");
    node.advance(rd);
    assert.equal(node.status().matched?.[leader], index);
  });

  it("follower answers are never sendable before their own persistence", () => {
    const node = member("n2", THREE);
    node.step({ type: "append", from: "n1", to: "n2", term: 1, prevIndex: 0, prevTerm: 0, entries: entriesWithTerms([1]), commit: 0 });
    const rd = node.ready();
    assert.equal(rd.sendBeforePersist, false);
    assert.equal(rd.entries.length, 1);
    node.advance(rd);
  });

  it("keeps at most inflightMessagesMax appends in flight to a silent follower", () => {
    const cluster = new TestCluster(THREE, { config: { inflightMessagesMax: 3, messageBytesMax: 1 } });
    const leader = cluster.electLeader();
    const silent = THREE.find((id) => id !== leader) as NodeId;
    cluster.flush();
    cluster.cutOneWay(silent, leader); // its acknowledgements are lost
    const before = cluster.sent.length;
    for (let i = 0; i < 10; i += 1) cluster.node(leader).propose(bytes(`v${i}`));
    cluster.flush();
    const appends = cluster.sent.slice(before).filter((m) => m.type === "append" && m.to === silent && m.entries.length > 0);
    assert.equal(appends.length, 3);
  });

  it("batches entries into appends of at most messageBytesMax", () => {
    const cluster = new TestCluster(THREE, { config: { messageBytesMax: 100 } });
    const leader = cluster.electLeader();
    const follower = THREE.find((id) => id !== leader) as NodeId;
    cluster.cut(leader, follower);
    for (let i = 0; i < 20; i += 1) cluster.node(leader).propose(new Uint8Array(30));
    cluster.flush();
    cluster.heal();
    const before = cluster.sent.length;
    cluster.run(30);
    const appends = cluster.sent.slice(before).filter((m) => m.type === "append" && m.to === follower && m.entries.length > 0);
    assert.ok(appends.length >= 2);
    for (const append of appends) {
      if (append.type !== "append") continue;
      assert.ok(append.entries.length <= 1 || append.entries.reduce((sum, e) => sum + e.data.byteLength + 24, 0) <= 100);
    }
    assert.equal(cluster.node(follower).status().lastIndex, cluster.node(leader).status().lastIndex);
  });

  it("a restarted member reapplies its committed entries and rejoins", () => {
    const cluster = new TestCluster(THREE, { random: lcg(11) });
    const leader = cluster.electLeader();
    for (let i = 0; i < 5; i += 1) cluster.node(leader).propose(bytes(`v${i}`));
    cluster.flush();
    cluster.run(3);
    const victim = THREE.find((id) => id !== leader) as NodeId;
    const appliedBefore = cluster.applied.get(victim)!.map((e: Entry) => text(e.data));
    cluster.crash(victim);
    cluster.restart(victim);
    cluster.run(5);
    assert.deepEqual(cluster.applied.get(victim)!.map((e: Entry) => text(e.data)), appliedBefore);
  });
});

describe("proposals", () => {
  it("a follower refuses a proposal with NotLeaderError naming the leader", () => {
    const cluster = new TestCluster(THREE);
    const leader = cluster.electLeader();
    const follower = THREE.find((id) => id !== leader) as NodeId;
    assert.throws(() => cluster.node(follower).propose(bytes("x")), (error: unknown) => {
      assert.ok(NotLeaderError.is(error));
      assert.equal(error.leaderHint, leader);
      return true;
    });
  });

  it("a member that knows no leader refuses with a null hint", () => {
    const node = member("n1", THREE);
    assert.throws(() => node.propose(bytes("x")), (error: unknown) => NotLeaderError.is(error) && error.leaderHint === null);
  });

  it("drops proposals past uncommittedBytesMax and takes them again once the backlog commits", () => {
    const cluster = new TestCluster(THREE, { config: { uncommittedBytesMax: 400, proposalBytesMax: 100 } });
    const leader = cluster.electLeader();
    cluster.isolate(leader); // nothing commits
    let taken = 0;
    let dropped: unknown;
    for (let i = 0; i < 20 && dropped === undefined; i += 1) {
      try {
        cluster.node(leader).propose(new Uint8Array(76));
        taken += 1;
      } catch (error) {
        dropped = error;
      }
    }
    assert.ok(ProposalDroppedError.is(dropped) && dropped.reason === "uncommitted-bytes-max");
    assert.ok(taken >= 3 && taken < 20);
    cluster.heal();
    cluster.run(5);
    cluster.node(leader).propose(new Uint8Array(76));
  });

  it("drops a proposal larger than proposalBytesMax", () => {
    const node = member("n1", ["n1"], { proposalBytesMax: 10 });
    node.campaign();
    assert.throws(() => node.propose(new Uint8Array(11)), (e: unknown) => ProposalDroppedError.is(e) && e.reason === "proposal-bytes-max");
  });
});

describe("leadership transfer", () => {
  it("hands leadership to an up-to-date follower, which wins the next term", () => {
    const cluster = new TestCluster(THREE);
    const leader = cluster.electLeader();
    const target = THREE.find((id) => id !== leader) as NodeId;
    const term = cluster.node(leader).status().term;
    cluster.node(leader).transferLeadership(target);
    cluster.flush();
    assert.equal(cluster.leader(), target);
    assert.equal(cluster.node(target).status().term, term + 1);
  });

  it("drops proposals during a transfer and abandons it after an election timeout", () => {
    const cluster = new TestCluster(THREE);
    const leader = cluster.electLeader();
    const target = THREE.find((id) => id !== leader) as NodeId;
    cluster.cut(leader, target);
    cluster.node(leader).transferLeadership(target);
    assert.throws(() => cluster.node(leader).propose(bytes("x")), (e: unknown) => ProposalDroppedError.is(e) && e.reason === "leadership-transfer");
    cluster.run(10);
    assert.equal(cluster.leader(), leader);
    cluster.node(leader).propose(bytes("x"));
  });

  it("refuses a transfer to a member that is not a voter", () => {
    const cluster = new TestCluster(THREE);
    const leader = cluster.electLeader();
    assert.throws(() => cluster.node(leader).transferLeadership("n9"), (e: unknown) => InvalidRequestError.is(e));
  });
});

describe("bad input", () => {
  it("ignores and counts messages addressed elsewhere, from itself, or with non-consecutive entries", () => {
    const node = member("n1", THREE);
    node.step({ type: "heartbeat", from: "n2", to: "n3", term: 9, commit: 0, round: 0 });
    node.step({ type: "heartbeat", from: "n1", to: "n1", term: 9, commit: 0, round: 0 });
    const gap: Entry[] = [{ term: 1, index: 1, type: "normal", data: bytes("a") }, { term: 1, index: 3, type: "normal", data: bytes("b") }];
    node.step({ type: "append", from: "n2", to: "n1", term: 1, prevIndex: 0, prevTerm: 0, entries: gap, commit: 0 });
    node.step({ type: "append", from: "n2", to: "n1", term: 1, prevIndex: 0, prevTerm: 0, entries: entriesWithTerms([2]), commit: 0 });
    node.step({ type: "bogus", from: "n2", to: "n1", term: 1 } as unknown as Message);
    const status = node.status();
    assert.equal(status.counters.invalidMessages, 5);
    assert.equal(status.term, 0);
    assert.equal(status.lastIndex, 0);
  });

  it("ignores an acknowledgement of entries the leader never had", () => {
    const node = member("n1", THREE);
    electDirectly(node);
    drain(node);
    node.step({ type: "appendResponse", from: "n2", to: "n1", term: node.status().term, index: 99, reject: false, rejectHint: 0, rejectHintTerm: 0 });
    assert.equal(node.status().commit, 0);
    assert.equal(node.status().counters.invalidMessages, 1);
  });
});
