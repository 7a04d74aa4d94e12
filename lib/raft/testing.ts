/**
 * Test support: a small in-memory cluster of `RaftNode`s with a controllable, deterministic
 * network. Not exported from the package; the full simulator lives in `sim/`. Pure like the core:
 * randomness comes in through `random`, time is `tick()`.
 */
import { assert } from "../assert.ts";
import type { RaftConfigInput } from "./config.ts";
import type { Entry, HardState, Message, NodeId, Snapshot } from "./messages.ts";
import { RaftNode, type Ready } from "./raw-node.ts";
import type { ReadState, RestoredState } from "./raft.ts";

/** What a member's "disk" holds: exactly what its Readies asked to persist. */
export interface MemoryDisk {
  hardState: HardState;
  /** The latest snapshot, made by `compact` or installed from a leader. */
  snapshot?: Snapshot;
  /** Entries after the snapshot (from index 1 without one). */
  entries: Entry[];
}

/**
 * The test state machine's snapshot: the applied entries themselves, so that a member restored
 * from a snapshot has the same `applied` list as one that applied every entry.
 */
export function encodeAppliedEntries(entries: readonly Entry[]): Uint8Array {
  return bytes(JSON.stringify(entries.map((e) => [e.index, e.term, e.type, text(e.data)])));
}

/** Decodes {@link encodeAppliedEntries}. */
export function decodeAppliedEntries(data: Uint8Array): Entry[] {
  const rows = JSON.parse(text(data)) as [number, number, Entry["type"], string][];
  return rows.map(([index, term, type, value]) => ({ index, term, type, data: bytes(value) }));
}

/** Options for a {@link TestCluster}. */
export interface TestClusterOptions {
  /** Config fields applied to every member. */
  readonly config?: Partial<Omit<RaftConfigInput, "id" | "voters">>;
  /** Randomness for election timeouts and the network; a fixed sequence by default. */
  readonly random?: () => number;
  /** Per-member state to start from instead of an empty log. */
  readonly restored?: Readonly<Record<NodeId, RestoredState>>;
}

/** A message in flight, delivered at tick `deliverAt`. */
interface InFlight {
  readonly message: Message;
  readonly deliverAt: number;
  readonly sequence: number;
}

/** Network behaviour for {@link TestCluster.run}. */
export interface NetworkFaults {
  /** Probability that a message is lost. */
  readonly lossRate: number;
  /** Extra delivery delay in ticks, drawn uniformly from `[0, delayTicksMax]`; reorders messages. */
  readonly delayTicksMax: number;
  /** Probability that a message is delivered twice. */
  readonly duplicateRate: number;
}

const NO_FAULTS: NetworkFaults = { lossRate: 0, delayTicksMax: 0, duplicateRate: 0 };

/** Linear congruential generator; enough for tests that need a fixed, repeatable sequence. */
export function lcg(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 4294967296;
  };
}

/** An in-memory cluster with a network the test controls. */
export class TestCluster {
  /** Every member, sorted: the first configuration's voters, then members added since. */
  ids: readonly NodeId[];
  /** The first configuration's voters. */
  private readonly bootstrap: readonly NodeId[];
  readonly nodes = new Map<NodeId, RaftNode>();
  readonly disks = new Map<NodeId, MemoryDisk>();
  /** Entries each member applied, in order. */
  readonly applied = new Map<NodeId, Entry[]>();
  /** Every message handed to the network, in send order (for assertions on traffic). */
  readonly sent: Message[] = [];
  /** Read states each member's Readies delivered, in order. */
  readonly reads = new Map<NodeId, ReadState[]>();
  /** Leader seen for each term: the election-safety record. */
  readonly leaderOfTerm = new Map<number, NodeId>();
  private inFlight: InFlight[] = [];
  private readonly blocked = new Set<string>();
  private readonly crashed = new Set<NodeId>();
  private now = 0;
  private sequence = 0;
  private readonly random: () => number;
  faults: NetworkFaults = NO_FAULTS;

  constructor(
    ids: readonly NodeId[],
    private readonly options: TestClusterOptions = {},
  ) {
    this.ids = [...ids].sort();
    this.bootstrap = this.ids;
    this.random = options.random ?? lcg(1);
    for (const id of this.ids) {
      const restored = options.restored?.[id];
      this.disks.set(id, {
        hardState: restored?.hardState ?? { term: 0, vote: null, commit: 0 },
        ...(restored?.snapshot !== undefined ? { snapshot: restored.snapshot } : {}),
        entries: [...(restored?.entries ?? [])],
      });
      this.applied.set(id, restored?.snapshot !== undefined ? decodeAppliedEntries(restored.snapshot.data) : []);
      this.nodes.set(id, this.createNode(id, restored));
    }
  }

  private createNode(id: NodeId, restored: RestoredState | undefined): RaftNode {
    const voters = this.bootstrap.includes(id) ? this.bootstrap : [];
    return new RaftNode({ ...this.options.config, id, voters, random: this.random }, restored);
  }

  /**
   * Starts a new, empty member `id` that joins the cluster: it has no configuration and waits for
   * a leader (after a `proposeConfChange` adds it) to send it the log or a snapshot.
   */
  addMember(id: NodeId): void {
    assert(!this.nodes.has(id), `member ${id} is new`);
    this.ids = [...this.ids, id].sort();
    this.disks.set(id, { hardState: { term: 0, vote: null, commit: 0 }, entries: [] });
    this.applied.set(id, []);
    this.nodes.set(id, this.createNode(id, undefined));
  }

  /**
   * Snapshots `id`'s state machine at its applied index (or `index`) and compacts its log there,
   * persisting the snapshot as a host would. Returns the snapshot.
   */
  compact(id: NodeId, index?: number): Snapshot {
    const node = this.node(id);
    const at = index ?? node.status().applied;
    const state = (this.applied.get(id) as Entry[]).filter((e) => e.index <= at);
    const snapshot = node.compact(at, encodeAppliedEntries(state));
    assert(snapshot !== null, `${id}'s log is not yet compacted at ${at}`);
    const disk = this.disks.get(id) as MemoryDisk;
    disk.snapshot = snapshot;
    disk.entries = disk.entries.filter((e) => e.index > at);
    return snapshot;
  }

  /** The member `id`. */
  node(id: NodeId): RaftNode {
    const node = this.nodes.get(id);
    assert(node !== undefined, `member ${id} exists`);
    return node;
  }

  /** The members that currently believe they lead, each with its term. */
  leaders(): NodeId[] {
    return this.ids.filter((id) => !this.crashed.has(id) && this.node(id).status().role === "leader");
  }

  /** The single live leader with the highest term, or `null`. */
  leader(): NodeId | null {
    let best: NodeId | null = null;
    let bestTerm = -1;
    for (const id of this.leaders()) {
      const term = this.node(id).status().term;
      if (term > bestTerm) {
        best = id;
        bestTerm = term;
      }
    }
    return best;
  }

  /** Stops all traffic between `a` and `b`, both ways. */
  cut(a: NodeId, b: NodeId): void {
    this.blocked.add(`${a}>${b}`);
    this.blocked.add(`${b}>${a}`);
  }

  /** Stops traffic from `from` to `to` only. */
  cutOneWay(from: NodeId, to: NodeId): void {
    this.blocked.add(`${from}>${to}`);
  }

  /** Cuts `id` off from every other member. */
  isolate(id: NodeId): void {
    for (const other of this.ids) if (other !== id) this.cut(id, other);
  }

  /** Restores every link. */
  heal(): void {
    this.blocked.clear();
  }

  /** Crashes `id`: it loses everything not on its disk, and messages to it are dropped. */
  crash(id: NodeId): void {
    this.crashed.add(id);
  }

  /** Restarts a crashed member from its disk. */
  restart(id: NodeId): void {
    assert(this.crashed.has(id), `member ${id} is crashed`);
    this.crashed.delete(id);
    const disk = this.disks.get(id) as MemoryDisk;
    this.applied.set(id, disk.snapshot !== undefined ? decodeAppliedEntries(disk.snapshot.data) : []);
    const restored: RestoredState = {
      hardState: disk.hardState,
      ...(disk.snapshot !== undefined ? { snapshot: disk.snapshot } : {}),
      entries: [...disk.entries],
    };
    this.nodes.set(id, this.createNode(id, restored));
  }

  /** Whether `id` is up. */
  isUp(id: NodeId): boolean {
    return !this.crashed.has(id);
  }

  /** Processes every member's Ready until none has work: persist, send, apply, advance. */
  processReady(): void {
    for (const id of this.ids) {
      if (this.crashed.has(id)) continue;
      const node = this.node(id);
      while (node.hasReady()) {
        const rd = node.ready();
        const disk = this.disks.get(id) as MemoryDisk;
        if (rd.snapshot !== undefined) {
          disk.snapshot = rd.snapshot;
          disk.entries = [];
        }
        if (rd.hardState !== undefined) disk.hardState = rd.hardState;
        const first = rd.entries[0];
        if (first !== undefined) {
          disk.entries.length = first.index - 1 - (disk.snapshot?.index ?? 0);
          disk.entries.push(...rd.entries);
        }
        for (const message of rd.messages) this.enqueue(message);
        if (rd.snapshot !== undefined) this.applied.set(id, decodeAppliedEntries(rd.snapshot.data));
        (this.applied.get(id) as Entry[]).push(...rd.committed);
        if (rd.readStates.length > 0) this.reads.set(id, [...(this.reads.get(id) ?? []), ...rd.readStates]);
        node.advance(rd);
        const status = node.status();
        if (status.role === "leader") this.recordLeader(status.term, id);
      }
    }
  }

  private recordLeader(term: number, id: NodeId): void {
    const known = this.leaderOfTerm.get(term);
    assert(known === undefined || known === id, `two leaders in term ${term}: ${known} and ${id}`);
    this.leaderOfTerm.set(term, id);
  }

  private enqueue(message: Message): void {
    this.sent.push(message);
    if (this.blocked.has(`${message.from}>${message.to}`)) return;
    if (this.faults.lossRate > 0 && this.random() < this.faults.lossRate) return;
    const copies = this.faults.duplicateRate > 0 && this.random() < this.faults.duplicateRate ? 2 : 1;
    for (let copy = 0; copy < copies; copy += 1) {
      const delay =
        this.faults.delayTicksMax > 0
          ? Math.floor(this.random() * (this.faults.delayTicksMax + 1))
          : 0;
      this.inFlight.push({ message, deliverAt: this.now + delay, sequence: this.sequence++ });
    }
  }

  /** Delivers every message due by now (in (time, sequence) order); returns how many. */
  deliverDue(): number {
    const due = this.inFlight.filter((m) => m.deliverAt <= this.now);
    if (due.length === 0) return 0;
    this.inFlight = this.inFlight.filter((m) => m.deliverAt > this.now);
    due.sort((a, b) => a.deliverAt - b.deliverAt || a.sequence - b.sequence);
    for (const { message } of due) {
      if (this.crashed.has(message.to)) continue;
      if (this.blocked.has(`${message.from}>${message.to}`)) continue;
      this.node(message.to).step(message);
    }
    return due.length;
  }

  /** Exchanges messages until the network is quiet (without advancing time). */
  flush(roundsMax = 1000): void {
    for (let round = 0; round < roundsMax; round += 1) {
      this.processReady();
      if (this.deliverDue() === 0 && !this.anyReady()) return;
    }
    assert(false, `network did not go quiet within ${roundsMax} rounds`);
  }

  private anyReady(): boolean {
    return this.ids.some((id) => !this.crashed.has(id) && this.node(id).hasReady());
  }

  /** Advances time by `ticks`: each tick, every live member ticks, then messages flow. */
  run(ticks: number): void {
    for (let tick = 0; tick < ticks; tick += 1) {
      this.now += 1;
      for (const id of this.ids) if (!this.crashed.has(id)) this.node(id).tick();
      this.processReady();
      this.deliverDue();
      this.processReady();
    }
  }

  /** Current tick. */
  get time(): number {
    return this.now;
  }

  /** Drops every message in flight. */
  dropInFlight(): void {
    this.inFlight = [];
  }

  /** Ticks until some member leads (and the network is quiet), or fails after `ticksMax`. */
  electLeader(ticksMax = 1000): NodeId {
    for (let tick = 0; tick < ticksMax; tick += 1) {
      const leader = this.leader();
      if (leader !== null) {
        this.flush();
        return leader;
      }
      this.run(1);
    }
    assert(false, `no leader within ${ticksMax} ticks`);
  }

  /** The persisted log of `id` as `term` numbers, handy for comparing to paper figures. */
  termsOf(id: NodeId): number[] {
    return (this.disks.get(id) as MemoryDisk).entries.map((e) => e.term);
  }
}

/** Encodes a string as entry data. */
export function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** Decodes entry data as a string. */
export function text(data: Uint8Array): string {
  return new TextDecoder().decode(data);
}

/** Builds entries with the given terms at indexes 1, 2, ...; data names the index and term. */
export function entriesWithTerms(terms: readonly number[]): Entry[] {
  return terms.map((term, i) => ({
    term,
    index: i + 1,
    type: "normal" as const,
    data: bytes(`${i + 1}@${term}`),
  }));
}

/** A member driven by hand, whose election timeout is always exactly `electionTicks` (10 by default). */
export function handDriven(
  id: NodeId,
  voters: readonly NodeId[],
  options: Partial<Omit<RaftConfigInput, "id" | "voters">> = {},
  restored?: RestoredState,
): RaftNode {
  return new RaftNode({ id, voters, random: () => 0, electionTicks: 10, ...options }, restored);
}

/** Takes every Ready `node` has, "persisting" nothing, acknowledges each, and returns them. */
export function drainReady(node: RaftNode): Ready[] {
  const out: Ready[] = [];
  while (node.hasReady()) {
    const rd = node.ready();
    out.push(rd);
    node.advance(rd);
  }
  return out;
}
