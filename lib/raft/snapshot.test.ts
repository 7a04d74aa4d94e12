/**
 * Snapshots and log compaction: what `compact` keeps and refuses, and chunked InstallSnapshot —
 * chunk size and window, a transfer without loss (each chunk sent once), a lost chunk, a total loss
 * (the stall rule), a transfer resumed by a new leader, a follower that restarts mid-transfer, the
 * size limit and how often a refused snapshot is retried, restart from a snapshot and the log after
 * it, and what the host sees in `Ready`. Scenarios that need exact control of
 * every delivery use a hand-wired pair of members (`Wire`); the others use `TestCluster`.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InvalidRequestError } from "../errors.ts";
import { RAFT_CONFIG_DEFAULTS, type RaftConfigInput } from "./config.ts";
import type { Message, NodeId, Snapshot, SnapshotMessage } from "./messages.ts";
import { RaftNode, type Ready } from "./raw-node.ts";
import { TestCluster, bytes } from "./testing.ts";

const THREE = ["n1", "n2", "n3"];
const FIVE = ["n1", "n2", "n3", "n4", "n5"];
const CHUNK_BYTES = 16;

/** Options for the small chunks and window these tests stream with. */
const SMALL_CHUNKS = { snapshotChunkBytes: CHUNK_BYTES, snapshotChunksInflightMax: 2 } as const;

function isSnapshot(m: Message): m is SnapshotMessage {
  return m.type === "snapshot";
}

function chunksTo(messages: readonly Message[], to: NodeId): SnapshotMessage[] {
  return messages.filter((m): m is SnapshotMessage => isSnapshot(m) && m.to === to);
}

/**
 * Loses, on delivery to `id`, every message `lose` picks (the cluster delivers by calling `step`,
 * so this is the same as losing it in flight). Returns the messages lost so far. A restarted
 * member is a new object: call again after `restart`.
 */
function loseOnDelivery(cluster: TestCluster, id: NodeId, lose: (m: Message) => boolean): Message[] {
  const lost: Message[] = [];
  const node = cluster.node(id);
  const step = node.step.bind(node);
  node.step = (message: Message) => {
    if (lose(message)) lost.push(message);
    else step(message);
  };
  return lost;
}

/** Ticks the cluster (flushing after each tick) until `done`, or fails after `ticksMax`. */
function runUntil(cluster: TestCluster, done: () => boolean, ticksMax = 100): void {
  for (let tick = 0; tick < ticksMax && !done(); tick += 1) {
    cluster.run(1);
    cluster.flush();
  }
  assert.ok(done(), `condition not reached within ${ticksMax} ticks`);
}

/** Ticks the cluster one round at a time, without flushing, until `done`, or fails after `ticksMax`. */
function tickUntil(cluster: TestCluster, done: () => boolean, ticksMax = 200): void {
  for (let tick = 0; tick < ticksMax && !done(); tick += 1) cluster.run(1);
  assert.ok(done(), `condition not reached within ${ticksMax} ticks`);
}

/**
 * The leader ticks a transfer may go without moving (no chunk sent or acknowledged) before a
 * heartbeat answer makes it resend: max(2 * heartbeatTicks + 1, ceil(electionTicks / 2)).
 */
function stallTicks(config: { heartbeatTicks?: number; electionTicks?: number } = {}): number {
  const heartbeatTicks = config.heartbeatTicks ?? RAFT_CONFIG_DEFAULTS.heartbeatTicks;
  const electionTicks = config.electionTicks ?? RAFT_CONFIG_DEFAULTS.electionTicks;
  return Math.max(2 * heartbeatTicks + 1, Math.ceil(electionTicks / 2));
}

function appliedIndex(cluster: TestCluster, id: NodeId): number {
  return cluster.node(id).status().applied;
}

/** Asserts that every member applied exactly the same entries. */
function assertSameApplied(cluster: TestCluster, ids: readonly NodeId[]): void {
  const rows = (id: NodeId) =>
    (cluster.applied.get(id) ?? []).map((e) => `${e.index}/${e.term}/${e.type}/${new TextDecoder().decode(e.data)}`);
  const first = rows(ids[0] as NodeId);
  for (const id of ids.slice(1)) assert.deepEqual(rows(id), first, `${id} applied what ${ids[0]} applied`);
}

/**
 * A 3-member cluster whose leader committed `proposals` entries while `behind` was cut off, then
 * compacted its log at its applied index. The network is healed; nothing has been sent to `behind`.
 */
function laggingFollower(
  config: Partial<Omit<RaftConfigInput, "id" | "voters">> = {},
  proposals = 6,
): { cluster: TestCluster; leader: NodeId; behind: NodeId; snapshot: Snapshot } {
  const cluster = new TestCluster(THREE, { config: { ...SMALL_CHUNKS, ...config } });
  const leader = cluster.electLeader();
  const behind = THREE.filter((id) => id !== leader)[1] as NodeId;
  cluster.isolate(behind);
  for (let i = 0; i < proposals; i += 1) cluster.node(leader).propose(bytes(`v${i}`));
  cluster.flush();
  const snapshot = cluster.compact(leader);
  cluster.heal();
  return { cluster, leader, behind, snapshot };
}

/**
 * Members wired by hand: every message waits in `inFlight` until the test delivers (or drops) it,
 * and each delivery is followed by the members' Readies, so that `events` is the exact order in
 * which members sent and received. The host persists and applies instantly.
 */
class Wire {
  readonly nodes = new Map<NodeId, RaftNode>();
  inFlight: Message[] = [];
  readonly sent: Message[] = [];
  readonly readies = new Map<NodeId, Ready[]>();
  readonly events: { readonly kind: "sent" | "received"; readonly message: Message }[] = [];

  constructor(nodes: readonly RaftNode[]) {
    for (const node of nodes) {
      this.nodes.set(node.id, node);
      this.readies.set(node.id, []);
    }
  }

  node(id: NodeId): RaftNode {
    const node = this.nodes.get(id);
    assert.ok(node !== undefined, `member ${id} is wired`);
    return node;
  }

  /** Replaces a member (a restart). */
  replace(node: RaftNode): void {
    this.nodes.set(node.id, node);
  }

  /** Handles every member's Readies until none has work. */
  pump(): void {
    for (const [id, node] of [...this.nodes].sort(([a], [b]) => (a < b ? -1 : 1))) {
      while (node.hasReady()) {
        const rd = node.ready();
        (this.readies.get(id) as Ready[]).push(rd);
        for (const message of rd.messages) {
          this.inFlight.push(message);
          this.sent.push(message);
          this.events.push({ kind: "sent", message });
        }
        node.advance(rd);
      }
    }
  }

  /**
   * Delivers, one at a time and in send order, the messages in flight that `pick` chooses, until
   * none is left (or `roundsMax` passes); the others stay in flight. Returns how many were delivered.
   */
  deliver(pick: (m: Message) => boolean = () => true, roundsMax = 1000): number {
    this.pump();
    let delivered = 0;
    for (let round = 0; round < roundsMax; round += 1) {
      const index = this.inFlight.findIndex(pick);
      if (index < 0) return delivered;
      const [message] = this.inFlight.splice(index, 1) as [Message];
      this.events.push({ kind: "received", message });
      this.node(message.to).step(message);
      this.pump();
      delivered += 1;
    }
    return delivered;
  }

  /** Delivers the first message in flight that `pick` chooses, if any. */
  deliverOne(pick: (m: Message) => boolean): void {
    const first = this.inFlight.find(pick);
    if (first !== undefined) this.deliver((m) => m === first, 1);
  }

  /** Loses the messages in flight that `pick` chooses. */
  drop(pick: (m: Message) => boolean = () => true): void {
    this.inFlight = this.inFlight.filter((m) => !pick(m));
  }
}

/** Bytes 0, 1, 2, ... as a stand-in for a state machine's snapshot. */
function snapshotData(length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => i % 251);
}

/**
 * `n1`, restarted from a snapshot at 5 (of `dataBytes` bytes) with no log after it, and `n2`, an
 * empty voter; `n1` is elected (and has appended its empty entry, 6) and is about to find that `n2`
 * needs the snapshot.
 */
function compactedPair(
  dataBytes: number,
  config: Partial<RaftConfigInput> = {},
  n2Config: Partial<RaftConfigInput> = {},
): { wire: Wire; snapshot: Snapshot } {
  const voters = ["n1", "n2"];
  const snapshot: Snapshot = {
    index: 5,
    term: 1,
    config: { voters, outgoing: [], learners: [] },
    origin: "n1",
    data: snapshotData(dataBytes),
  };
  const base = { voters, random: () => 0, ...SMALL_CHUNKS, ...config };
  const restored = { hardState: { term: 1, vote: "n1", commit: 5 }, snapshot, entries: [] };
  const n1 = new RaftNode({ ...base, id: "n1" }, restored);
  const n2 = new RaftNode({ ...base, ...n2Config, id: "n2" });
  const wire = new Wire([n1, n2]);
  n1.campaign();
  wire.deliver((m) => !isSnapshot(m) && m.type !== "snapshotResponse");
  assert.equal(n1.status().role, "leader");
  return { wire, snapshot };
}

describe("compaction", () => {
  it("drops entries up to the index and keeps the term there, so appends still follow on", () => {
    const cluster = new TestCluster(THREE);
    const leader = cluster.electLeader();
    for (const value of ["a", "b", "c"]) cluster.node(leader).propose(bytes(value));
    cluster.flush();
    const status = cluster.node(leader).status();
    const snapshot = cluster.compact(leader);

    assert.equal(snapshot.index, status.applied);
    assert.equal(snapshot.term, status.lastTerm);
    assert.deepEqual(snapshot.config, status.config);
    const after = cluster.node(leader).status();
    assert.equal(after.snapshotIndex, snapshot.index);
    assert.equal(after.lastIndex, status.lastIndex, "the compaction point is still the last index");
    assert.equal(after.lastTerm, status.lastTerm, "and its term is kept");
    assert.deepEqual(cluster.disks.get(leader)?.entries, [], "the host may delete compacted entries");

    const sentBefore = cluster.sent.length;
    const { index } = cluster.node(leader).propose(bytes("d"));
    cluster.flush();
    const appends = cluster.sent.slice(sentBefore).filter((m) => m.type === "append" && m.entries.length > 0);
    assert.ok(appends.length > 0);
    for (const m of appends) {
      assert.ok(m.type === "append");
      assert.equal(m.prevIndex, snapshot.index, "the next append follows the compaction point");
      assert.equal(m.prevTerm, snapshot.term);
    }
    assert.equal(cluster.sent.slice(sentBefore).filter(isSnapshot).length, 0, "no follower needs the snapshot");
    for (const id of THREE) assert.equal(appliedIndex(cluster, id), index);
  });

  it("refuses an index not yet applied, and does nothing at or below the compaction point", () => {
    const cluster = new TestCluster(THREE);
    const leader = cluster.electLeader();
    cluster.node(leader).propose(bytes("a"));
    cluster.flush();
    const node = cluster.node(leader);
    const applied = node.status().applied;
    assert.throws(() => node.compact(applied + 1, bytes("x")), InvalidRequestError);
    assert.throws(() => node.compact(1.5, bytes("x")), InvalidRequestError);
    assert.throws(() => node.compact(-1, bytes("x")), InvalidRequestError);
    assert.equal(node.status().snapshotIndex, 0, "a refused compaction changes nothing");

    assert.notEqual(node.compact(applied, bytes("state")), null);
    // A snapshot from the leader may overtake the host's own: compacting again is no error.
    assert.equal(node.compact(applied, bytes("x")), null);
    assert.equal(node.compact(applied - 1, bytes("x")), null);
    assert.equal(node.status().snapshotIndex, applied);
  });
});

describe("chunked InstallSnapshot", () => {
  it("streams chunks of at most snapshotChunkBytes, filling a window of snapshotChunksInflightMax at once", () => {
    const window = 3;
    const { wire, snapshot } = compactedPair(100, { snapshotChunksInflightMax: window });
    const isAck = (m: Message) => m.type === "snapshotResponse";

    // The transfer starts with a full window, in one Ready, before any acknowledgement.
    const bursts = (wire.readies.get("n1") as Ready[]).filter((rd) => rd.messages.some(isSnapshot));
    assert.deepEqual(bursts.map((rd) => chunksTo(rd.messages, "n2").map((c) => c.offset)), [[0, 16, 32]]);
    assert.deepEqual(wire.inFlight.filter(isSnapshot).map((c) => c.offset), [0, 16, 32]);
    // Hold the acknowledgements: the chunks are answered, and nothing more goes while none is in.
    wire.deliver((m) => !isAck(m));
    assert.deepEqual(chunksTo(wire.sent, "n2").map((c) => c.offset), [0, 16, 32]);
    assert.deepEqual(wire.inFlight.filter(isAck).map((m) => m.type === "snapshotResponse" && m.offset), [16, 32, 48]);
    // One acknowledgement, one more chunk.
    wire.deliverOne(isAck);
    assert.deepEqual(chunksTo(wire.sent, "n2").map((c) => c.offset), [0, 16, 32, 48]);

    wire.deliver();
    const chunks = chunksTo(wire.sent, "n2");
    for (const chunk of chunks) assert.ok(chunk.data.byteLength <= CHUNK_BYTES);
    assert.deepEqual(chunks.map((c) => c.offset), [0, 16, 32, 48, 64, 80, 96]);
    assert.deepEqual(chunks.map((c) => c.done), [false, false, false, false, false, false, true]);

    // Replay the exact order of events: unacknowledged bytes never exceed the window.
    let acked = 0;
    let sentEnd = 0;
    let widest = 0;
    for (const { kind, message } of wire.events) {
      if (kind === "received" && message.type === "snapshotResponse" && message.to === "n1" && !message.reject) {
        acked = Math.max(acked, message.offset);
      }
      if (kind === "sent" && isSnapshot(message)) {
        sentEnd = Math.max(sentEnd, message.offset + message.data.byteLength);
        widest = Math.max(widest, sentEnd - acked);
        assert.ok(sentEnd - acked <= window * CHUNK_BYTES, `${sentEnd - acked} bytes unacknowledged`);
      }
    }
    assert.equal(widest, window * CHUNK_BYTES, "the window is used in full");

    const installed = (wire.readies.get("n2") as Ready[]).filter((rd) => rd.snapshot !== undefined);
    assert.equal(installed.length, 1);
    assert.deepEqual(installed[0]?.snapshot?.data, snapshot.data);
    assert.equal(wire.node("n2").status().applied, 6, "the snapshot, then the leader's empty entry");
  });

  it("sends every chunk exactly once when nothing is lost, though heartbeat answers keep coming", () => {
    // One delivery round per tick, so that the transfer spans many heartbeats: answers that arrive
    // while chunks are on their way must not make the leader resend them.
    const { cluster, leader, behind, snapshot } = laggingFollower({}, 8);
    const offsets = offsetsFrom(0, snapshot.data.byteLength);
    assert.ok(offsets.length >= 9, `${offsets.length} chunks`);
    const sentAt = new Map<number, number>();
    tickUntil(cluster, () => {
      for (const chunk of chunksTo(cluster.sent, behind)) {
        if (!sentAt.has(chunk.offset)) sentAt.set(chunk.offset, cluster.time);
      }
      return appliedIndex(cluster, behind) === appliedIndex(cluster, leader);
    });

    assert.deepEqual(chunksTo(cluster.sent, behind).map((c) => c.offset), offsets, "each offset once, in order");
    const heartbeats = cluster.sent.filter((m) => m.type === "heartbeatResponse" && m.from === behind);
    const spanTicks = (sentAt.get(offsets[offsets.length - 1] as number) as number) - (sentAt.get(0) as number);
    assert.ok(spanTicks > stallTicks(), `the transfer took ${spanTicks} ticks, longer than the stall rule's`);
    assert.ok(heartbeats.length > stallTicks(), "with a heartbeat answer every tick");
    assert.equal(cluster.sent.filter((m) => m.type === "snapshotResponse" && m.reject).length, 0);
    assert.equal(cluster.node(behind).status().counters.snapshotsInstalled, 1);
    assertSameApplied(cluster, THREE);
  });

  it("resends a lost chunk after the follower's rejection, and the install completes", () => {
    const { cluster, leader, behind, snapshot } = laggingFollower();
    let armed = true;
    const lost = loseOnDelivery(cluster, behind, (m) => {
      if (!armed || !isSnapshot(m) || m.offset !== 32) return false;
      armed = false;
      return true;
    });
    runUntil(cluster, () => appliedIndex(cluster, behind) === appliedIndex(cluster, leader));

    assert.equal(lost.length, 1);
    assert.deepEqual(
      chunksTo(cluster.sent, behind).slice(0, 2).map((c) => c.offset),
      [0, 16],
      "the first window goes out at once",
    );
    const rejections = cluster.sent.filter((m) => m.type === "snapshotResponse" && m.from === behind && m.reject);
    assert.equal(rejections.length, 1, "only the chunk behind the gap is rejected");
    for (const m of rejections) assert.ok(m.type === "snapshotResponse" && m.offset === 32, "the gap is at 32");
    // The rejection itself makes the leader resend, without waiting for heartbeats.
    const rejectedAt = cluster.sent.indexOf(rejections[0] as Message);
    const next = cluster.sent.slice(rejectedAt).find((m) => m.to === behind && m.from === leader);
    assert.ok(next !== undefined && isSnapshot(next) && next.offset === 32, "the next message resends the gap");
    const offsets = chunksTo(cluster.sent, behind).map((c) => c.offset);
    assert.equal(offsets.filter((o) => o === 32).length, 2, "the lost chunk is sent again, once");
    assert.equal(offsets.filter((o) => o === 48).length, 2, "the chunk behind the gap too, once");
    for (const offset of offsetsFrom(0, snapshot.data.byteLength).filter((o) => o !== 32 && o !== 48)) {
      assert.equal(offsets.filter((o) => o === offset).length, 1, `every other chunk is sent once (${offset})`);
    }
    assert.equal(cluster.node(behind).status().counters.snapshotsInstalled, 1);
    assertSameApplied(cluster, THREE);
  });

  for (const timing of [{}, { heartbeatTicks: 3 }]) {
    const stall = stallTicks(timing);
    const heartbeatTicks = timing.heartbeatTicks ?? RAFT_CONFIG_DEFAULTS.heartbeatTicks;
    // The first heartbeat answer once the transfer has not moved for `stall` ticks.
    const resendTick = Math.ceil(stall / heartbeatTicks) * heartbeatTicks;
    const name = `resends lost chunks at the first heartbeat answer ${stall} ticks after the transfer last moved`;
    it(`${name} (heartbeatTicks ${heartbeatTicks})`, () => {
      const { wire } = compactedPair(100, timing);
      const isAck = (m: Message) => m.type === "snapshotResponse";
      wire.deliver((m) => !isAck(m));
      wire.deliver(isAck);
      // The chunks leave at the leader's tick 0 (it has not ticked since it was elected).
      assert.deepEqual(wire.inFlight.filter(isSnapshot).map((c) => c.offset), [32, 48], "the window is full");
      wire.drop();
      const chunksBefore = chunksTo(wire.sent, "n2").length;

      // Heartbeat answers without progress prove nothing until the transfer has been still for
      // `stall` ticks: the chunks might be slow.
      let answers = 0;
      for (let tick = 1; tick < resendTick; tick += 1) {
        wire.node("n1").tick();
        answers += wire.deliver((m) => m.type === "heartbeat" || m.type === "heartbeatResponse") / 2;
        assert.equal(chunksTo(wire.sent, "n2").length, chunksBefore, `nothing is resent at tick ${tick}`);
      }
      assert.equal(answers, Math.floor((resendTick - 1) / heartbeatTicks), "n2 answered every heartbeat");
      // Then the next one does: the leader goes back to what n2 acknowledged and fills the window.
      wire.node("n1").tick();
      wire.deliver((m) => m.type === "heartbeat" || m.type === "heartbeatResponse");
      assert.deepEqual(chunksTo(wire.sent, "n2").slice(chunksBefore).map((c) => c.offset), [32, 48]);

      wire.deliver();
      assert.deepEqual(chunksTo(wire.sent, "n2").slice(chunksBefore).map((c) => c.offset), [32, 48, 64, 80, 96]);
      assert.equal(wire.node("n2").status().snapshotIndex, 5);
      assert.equal(wire.node("n2").status().applied, 6);
    });
  }

  it("lets a new leader with the same snapshot resume from the follower's offset", () => {
    const cluster = new TestCluster(FIVE, { config: SMALL_CHUNKS });
    const first = cluster.electLeader();
    const others = FIVE.filter((id) => id !== first);
    const [successor, partial] = [others[2] as NodeId, others[3] as NodeId];
    cluster.isolate(successor);
    cluster.isolate(partial);
    for (const value of ["a", "b", "c", "d", "e", "f"]) cluster.node(first).propose(bytes(value));
    cluster.flush();
    const snapshot = cluster.compact(first);
    assert.ok(snapshot.data.byteLength > 4 * CHUNK_BYTES);

    // The successor installs the whole snapshot: its copy has the same index, term and origin.
    cluster.heal();
    cluster.cut(first, partial);
    runUntil(cluster, () => appliedIndex(cluster, successor) === appliedIndex(cluster, first));
    assert.equal(cluster.node(successor).status().snapshotIndex, snapshot.index);

    // The other one receives 32 bytes; everything from the old leader after that is lost.
    cluster.heal();
    const lost = loseOnDelivery(cluster, partial, (m) => isSnapshot(m) && m.from === first && m.offset >= 32);
    runUntil(cluster, () => lost.length > 0);
    const heldBefore = cluster.sent.filter((m) => m.type === "snapshotResponse" && m.from === partial);
    assert.equal(Math.max(...heldBefore.map((m) => (m.type === "snapshotResponse" ? m.offset : 0))), 32);

    cluster.cut(first, partial);
    const sentBefore = cluster.sent.length;
    cluster.node(first).transferLeadership(successor);
    runUntil(
      cluster,
      () => cluster.leader() === successor && appliedIndex(cluster, partial) === appliedIndex(cluster, successor),
    );

    const after = cluster.sent.slice(sentBefore);
    const resumed = chunksTo(after, partial);
    assert.ok(resumed.every((c) => c.from === successor && c.origin === snapshot.origin && c.index === snapshot.index));
    const answerAt = after.findIndex((m) => m.type === "snapshotResponse" && m.from === partial && m.to === successor);
    const answer = after[answerAt];
    assert.ok(answer?.type === "snapshotResponse" && answer.offset === 32 && !answer.reject, "it says it holds 32");
    // The new leader does not know what the follower holds: its first window starts at 0.
    const before = chunksTo(after.slice(0, answerAt), partial).map((c) => c.offset);
    assert.deepEqual(before, offsetsFrom(0, snapshot.data.byteLength).slice(0, SMALL_CHUNKS.snapshotChunksInflightMax));
    // Once the answer is in, the stream goes on from 32, each chunk once, and never restarts at 0.
    assert.deepEqual(
      chunksTo(after.slice(answerAt), partial).map((c) => c.offset),
      offsetsFrom(32, snapshot.data.byteLength),
      "the rest streams from 32",
    );
    assert.equal(cluster.node(partial).status().counters.snapshotsInstalled, 1);
    assertSameApplied(cluster, [successor, partial]);
  });

  it("streams from 0 again to a follower that restarted mid-transfer", () => {
    const { cluster, leader, behind, snapshot } = laggingFollower();
    // It receives 32 bytes; the rest is lost until it restarts (as a new object, unwrapped).
    const lost = loseOnDelivery(cluster, behind, (m) => isSnapshot(m) && m.offset >= 32);
    runUntil(cluster, () => lost.length > 0);
    cluster.crash(behind);
    cluster.restart(behind);
    const sentBefore = cluster.sent.length;
    runUntil(cluster, () => appliedIndex(cluster, behind) === appliedIndex(cluster, leader));

    const answers = cluster.sent.slice(sentBefore).filter((m) => m.type === "snapshotResponse" && m.from === behind);
    const first = answers[0];
    assert.ok(first?.type === "snapshotResponse" && first.reject && first.offset === 0, "it holds nothing");
    // The chunks it rejects are those the stall rule resent from what it acknowledged before.
    const offsets = chunksTo(cluster.sent.slice(sentBefore), behind).map((c) => c.offset);
    const rewound = offsets.indexOf(0);
    assert.deepEqual(offsets.slice(0, rewound), [32, 48]);
    assert.equal(answers.filter((m) => m.type === "snapshotResponse" && m.reject).length, 2, "both are rejected");
    assert.deepEqual(
      offsets.slice(rewound),
      offsetsFrom(0, snapshot.data.byteLength),
      "the leader goes back to the first byte once, and streams each chunk once",
    );
    assert.equal(cluster.node(behind).status().counters.snapshotsInstalled, 1);
    assertSameApplied(cluster, THREE);
  });

  it("refuses without an answer a snapshot longer than snapshotBytesMax, counting an invalid message", () => {
    const { wire } = compactedPair(100, {}, { snapshotBytesMax: 48 });
    // n2 takes the first 48 bytes; the chunk at 48 would make 64.
    wire.deliver((m) => !(isSnapshot(m) && m.offset >= 48));
    const n2 = wire.node("n2");
    assert.equal(n2.status().counters.invalidMessages, 0);
    assert.deepEqual(wire.inFlight.filter(isSnapshot).map((c) => c.offset), [48, 64]);

    wire.deliverOne((m) => isSnapshot(m) && m.offset === 48);
    assert.equal(n2.status().counters.invalidMessages, 1);
    assert.deepEqual(
      wire.inFlight.map((m) => m.type === "snapshot" && m.offset),
      [64],
      "no answer: the leader retries only through the stall rule",
    );
    assert.equal(n2.status().snapshotIndex, 0);
    assert.equal(n2.status().applied, 0);
    assert.ok((wire.readies.get("n2") as Ready[]).every((rd) => rd.snapshot === undefined));
  });

  // With a window of 1 nothing follows the refused chunk. With a wider one the chunk behind it
  // reaches a member that discarded the partial snapshot; it remembers the refused snapshot and
  // ignores its chunks, rather than answering that it holds 0 bytes (which the leader would take
  // for a restart, rewinding at network speed).
  for (const window of [1, SMALL_CHUNKS.snapshotChunksInflightMax]) {
    it(`retries a refused oversized snapshot at most once per stall period (window ${window})`, () => {
      const { wire } = compactedPair(100, { snapshotChunksInflightMax: window }, { snapshotBytesMax: 48 });
      wire.deliver(() => true, 200);
      assert.equal(wire.inFlight.length, 0, "the network goes quiet without a tick");
      const ticks = 50;
      let lastSentTick = 0;
      for (let tick = 1; tick <= ticks; tick += 1) {
        const chunksBefore = chunksTo(wire.sent, "n2").length;
        wire.node("n1").tick();
        wire.deliver(() => true, 200);
        assert.equal(wire.inFlight.length, 0, `the network goes quiet after tick ${tick}`);
        if (chunksTo(wire.sent, "n2").length > chunksBefore) lastSentTick = tick;
      }

      const restarts = chunksTo(wire.sent, "n2").filter((c) => c.offset === 0).length;
      assert.ok(restarts <= Math.floor(ticks / stallTicks()) + 1, `${restarts} starts in ${ticks} ticks`);
      assert.ok(lastSentTick > ticks - stallTicks() - 1, "the leader keeps retrying, through the stall rule");
      const n2 = wire.node("n2").status();
      assert.ok(n2.counters.invalidMessages >= 1);
      assert.equal(n2.snapshotIndex, 0);
      assert.equal(wire.node("n1").status().role, "leader");
    });
  }

  it("answers a chunk of a snapshot it has already caught up past with an appendResponse", () => {
    // The final chunk's answer is lost, so the leader resends the last chunk after the stall rule;
    // the follower, which installed it, answers with an append answer and is replicated to again.
    const { cluster, leader, behind, snapshot } = laggingFollower();
    let armed = true;
    loseOnDelivery(cluster, leader, (m) => {
      if (!armed || m.type !== "appendResponse" || m.reject || m.from !== behind) return false;
      if (m.index !== snapshot.index) return false;
      armed = false;
      return true;
    });
    runUntil(cluster, () => !armed);
    const lostAt = cluster.time;
    const sentBefore = cluster.sent.length;
    runUntil(cluster, () => chunksTo(cluster.sent.slice(sentBefore), behind).some((c) => c.done));
    // The last chunk left in the tick its answer was lost. With a heartbeat answer every tick, the
    // first one after snapshotStallTicks still ticks resends what was not acknowledged: that chunk.
    assert.equal(cluster.time - lostAt, stallTicks(), "resent once the transfer was still for the stall ticks");
    const offsets = offsetsFrom(0, snapshot.data.byteLength);
    assert.deepEqual(chunksTo(cluster.sent.slice(sentBefore), behind).map((c) => c.offset), offsets.slice(-1));
    cluster.flush();
    const after = cluster.sent.slice(sentBefore);
    const answer = after.find((m) => m.from === behind && m.to === leader && m.type === "appendResponse");
    assert.ok(answer?.type === "appendResponse" && !answer.reject && answer.index >= snapshot.index);
    assert.equal(cluster.node(behind).status().counters.snapshotsInstalled, 1, "installed once");

    const { index } = cluster.node(leader).propose(bytes("next"));
    const proposedAt = cluster.sent.length;
    cluster.flush();
    const toBehind = cluster.sent.slice(proposedAt).filter((m) => m.to === behind);
    assert.ok(toBehind.some((m) => m.type === "append" && m.entries.some((e) => e.index === index)));
    assert.equal(toBehind.filter(isSnapshot).length, 0, "back to appends");
    assertSameApplied(cluster, THREE);
  });

  it("answers the final chunk with an appendResponse when the log caught up meanwhile", () => {
    const follower = new RaftNode({ id: "n2", voters: ["n1", "n2"], random: () => 0, ...SMALL_CHUNKS });
    const data = snapshotData(20);
    const chunk = (offset: number, end: number, done: boolean): Message => ({
      type: "snapshot",
      from: "n1",
      to: "n2",
      term: 1,
      index: 3,
      snapshotTerm: 1,
      origin: "n1",
      config: { voters: ["n1", "n2"], outgoing: [], learners: [] },
      offset,
      data: data.subarray(offset, end),
      done,
    });
    const take = () => {
      const rd = follower.ready();
      follower.advance(rd);
      return rd;
    };
    follower.step(chunk(0, 16, false));
    assert.deepEqual(take().messages.map((m) => m.type === "snapshotResponse" && m.offset), [16]);
    const entries = [1, 2, 3, 4].map((index) => ({
      term: 1,
      index,
      type: "normal" as const,
      data: bytes(`e${index}`),
    }));
    follower.step({ type: "append", from: "n1", to: "n2", term: 1, prevIndex: 0, prevTerm: 0, entries, commit: 4 });
    take();
    follower.step(chunk(16, 20, true));
    const rd = take();
    assert.equal(rd.snapshot, undefined, "nothing to install");
    assert.deepEqual(
      rd.messages.map((m) => [m.type, m.type === "appendResponse" ? m.index : -1]),
      [["appendResponse", 4]],
    );
    assert.equal(follower.status().counters.snapshotsInstalled, 0);
    assert.equal(follower.status().snapshotIndex, 0);
  });
});

describe("restart and Ready", () => {
  it("restores the same applied state and log from a snapshot and the entries after it", () => {
    const cluster = new TestCluster(THREE);
    const leader = cluster.electLeader();
    for (const value of ["a", "b", "c"]) cluster.node(leader).propose(bytes(value));
    cluster.flush();
    const follower = THREE.find((id) => id !== leader) as NodeId;
    const snapshot = cluster.compact(follower);
    for (const value of ["d", "e"]) cluster.node(leader).propose(bytes(value));
    cluster.flush();
    const before = cluster.node(follower).status();
    const appliedBefore = [...(cluster.applied.get(follower) ?? [])];
    const diskBefore = structuredClone(cluster.disks.get(follower));

    cluster.crash(follower);
    cluster.restart(follower);
    const restarted = cluster.node(follower).status();
    assert.equal(restarted.snapshotIndex, snapshot.index);
    assert.equal(restarted.lastIndex, before.lastIndex);
    assert.equal(restarted.lastTerm, before.lastTerm);
    assert.equal(restarted.commit, before.commit);
    assert.equal(restarted.applied, snapshot.index, "entries after the snapshot are applied again");
    cluster.flush();

    const after = cluster.node(follower).status();
    assert.equal(after.applied, before.applied);
    assert.deepEqual(after.config, before.config);
    assert.deepEqual(cluster.applied.get(follower), appliedBefore);
    assert.deepEqual(cluster.disks.get(follower), diskBefore);
  });

  it("hands the host the snapshot exactly once, with committed entries only after it", () => {
    const { wire, snapshot } = compactedPair(40);
    wire.deliver();
    wire.node("n1").propose(bytes("x"));
    wire.node("n1").propose(bytes("y"));
    wire.deliver();

    const readies = wire.readies.get("n2") as Ready[];
    const withSnapshot = readies.filter((rd) => rd.snapshot !== undefined);
    assert.equal(withSnapshot.length, 1);
    const installed = withSnapshot[0] as Ready;
    assert.equal(installed.snapshot?.index, snapshot.index);
    assert.deepEqual(installed.snapshot?.data, snapshot.data);
    const after = readies.slice(readies.indexOf(installed));
    const committed = after.flatMap((rd) => rd.committed.map((e) => e.index));
    assert.deepEqual(committed, [6, 7, 8], "consecutive, from the entry after the snapshot");
    const before = readies.slice(0, readies.indexOf(installed));
    assert.deepEqual(before.flatMap((rd) => rd.committed), [], "nothing is applied before the snapshot");
    assert.equal(wire.node("n2").status().applied, 8);
  });

  it("puts the snapshot and the entries committed after it in one Ready when they arrive together", () => {
    const follower = new RaftNode({ id: "n2", voters: ["n1", "n2"], random: () => 0 });
    const config = { voters: ["n1", "n2"], outgoing: [], learners: [] };
    follower.step({
      type: "snapshot",
      from: "n1",
      to: "n2",
      term: 2,
      index: 5,
      snapshotTerm: 1,
      origin: "n1",
      config,
      offset: 0,
      data: bytes("state"),
      done: true,
    });
    const entries = [6, 7].map((index) => ({ term: 2, index, type: "normal" as const, data: bytes(`e${index}`) }));
    follower.step({ type: "append", from: "n1", to: "n2", term: 2, prevIndex: 5, prevTerm: 1, entries, commit: 7 });
    const rd = follower.ready();
    assert.equal(rd.snapshot?.index, 5);
    assert.deepEqual(rd.entries.map((e) => e.index), [6, 7]);
    assert.deepEqual(rd.committed.map((e) => e.index), [6, 7]);
    assert.equal(rd.hardState?.commit, 7);
    follower.advance(rd);
    assert.equal(follower.status().applied, 7);
    assert.equal(follower.hasReady(), false, "the snapshot is not handed out again");
  });
});

/** The chunk offsets of a stream of `length` bytes from `from` on. */
function offsetsFrom(from: number, length: number): number[] {
  const offsets: number[] = [];
  for (let offset = from; offset < length; offset += CHUNK_BYTES) offsets.push(offset);
  return offsets;
}
