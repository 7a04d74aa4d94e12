/**
 * A simulated member: the unmodified `RaftNode` driven by the same Ready loop a real host runs
 * (persist -> send -> apply -> advance), over a simulated disk whose fsync takes time and a clock
 * that drifts. Client requests arrive as messages; answers leave once their entry is applied.
 */
import { ConfChangeError, NotLeaderError, ProposalDroppedError } from "../lib/errors.ts";
import type { ConfChangeOp } from "../lib/raft/conf.ts";
import type { Entry, Message, Snapshot } from "../lib/raft/messages.ts";
import type { RaftConfigInput } from "../lib/raft/config.ts";
import { RaftNode, type RaftStatus, type Ready } from "../lib/raft/raw-node.ts";
import type { Role } from "../lib/raft/raft.ts";
import type { SimClock } from "./clock.ts";
import { SimDisk } from "./disk.ts";
import type { KvInput, KvOutput } from "./history.ts";
import { KvStore, commandKey, decodeCommand, encodeCommand, type KvCommand } from "./kv.ts";
import { encodePlacementCommand } from "../lib/placement/commands.ts";
import { LeaseTracker, type LeaseConfigInput } from "../lib/placement/leases.ts";
import type { PlacementResult } from "../lib/placement/table.ts";
import type { PlacementCommand } from "../lib/placement/types.ts";
import type { WorkerReply, WorkerRequest } from "./worker.ts";

/** A gateway's answer to "who owns this key?". */
export type RouteReply =
  | { readonly requestId: number; readonly status: "ok"; readonly owner: string; readonly epoch: number }
  | { readonly requestId: number; readonly status: "notLeader"; readonly leaderHint: string | null }
  | { readonly requestId: number; readonly status: "retry" };

/** A client's request to a member. */
export interface ClientRequest {
  readonly requestId: number;
  readonly client: number;
  readonly seq: number;
  readonly input: KvInput;
}

/** A member's answer to a client. `retry`: the outcome is unknown; send the same request again. */
export type ClientReply =
  | { readonly requestId: number; readonly seq: number; readonly status: "ok"; readonly output: KvOutput }
  | { readonly requestId: number; readonly seq: number; readonly status: "notLeader"; readonly leaderHint: string | null }
  | { readonly requestId: number; readonly seq: number; readonly status: "retry" };

/** What a member needs from the simulator. */
export interface MemberHost {
  /** Simulated true time, µs. */
  now(): number;
  sendRaft(message: Message): void;
  reply(member: string, client: number, reply: ClientReply): void;
  /** Calls `done` after the disk's fsync latency, unless the member crashes first. */
  scheduleSync(member: SimMember, done: () => void): void;
  onRole(member: SimMember, role: Role, term: number, leader: string | null): void;
  onCommit(member: SimMember, commit: number): void;
  onApply(member: SimMember, entry: Entry): void;
  /** The committed entries 1..`index` as the world has seen them (the prefix a snapshot stands for). */
  committedPrefix(index: number): Entry[];
  /** `member` persisted and installed a snapshot received from the leader. */
  onSnapshotInstalled(member: SimMember, snapshot: Snapshot): void;
  /** `member`, leading, appended configuration entry `entry` (its log and applied index as of now). */
  onConfAppend(member: SimMember, entry: Entry): void;
  replyToWorker(member: SimMember, worker: string, reply: WorkerReply): void;
  replyRoute(member: SimMember, client: number, reply: RouteReply): void;
  /** `member` applied placement `command` at `index`. */
  onPlacementApplied(member: SimMember, index: number, command: PlacementCommand, result: PlacementResult): void;
}

/** Leader ticks between rebalance rounds. */
const REBALANCE_EVERY_TICKS = 20;
/** Keys one rebalance round moves at most. */
const REBALANCE_MOVES_PER_ROUND = 8;

/** A renewal waiting for its quorum round (ReadIndex) and for the member to apply up to it. */
interface PendingRenewal {
  readonly worker: string;
  readonly seq: number;
  /** When the leader received it, on its own clock (ms). */
  readonly receivedAt: number;
  index: number | null;
}

/** When members compact their logs. */
export interface CompactionPolicy {
  /** Take a snapshot once this many entries were applied since the last one; 0: never. */
  readonly compactEveryEntries: number;
}

/** A get waiting for its read index to be confirmed and applied. */
interface PendingRead {
  readonly requestId: number;
  readonly client: number;
  readonly seq: number;
  readonly key: string;
  /** Known once the ReadState arrives. */
  index: number | null;
}

interface PendingProposal {
  readonly term: number;
  readonly requestId: number;
  readonly client: number;
  readonly seq: number;
}

/** One simulated member. */
export class SimMember {
  readonly disk = new SimDisk();
  node: RaftNode | null = null;
  kv = new KvStore();
  /** The member's log as of its last Ready (what it holds, durable or being made so). */
  log: Entry[] = [];
  commit = 0;
  role: Role = "follower";
  term = 0;
  leader: string | null = null;
  /** Incremented on every crash, so that events scheduled before it are ignored after. */
  generation = 0;
  /** Counters of earlier incarnations (a restart starts the core's counters from zero). */
  private readonly pastCounters = { snapshotsSent: 0, snapshotsInstalled: 0 };
  /** Snapshots this member took of its own state. */
  snapshotsTaken = 0;
  /** The index of the member's latest snapshot (taken or installed). */
  private snapshotIndex = 0;
  /** Placement, leader side: lease deadlines, renewals in their quorum round, requests awaiting their entry. */
  private tracker: LeaseTracker | null = null;
  private readonly renewals = new Map<string, PendingRenewal>();
  private readonly placementWaits = new Map<number, { readonly term: number; readonly done: (result: PlacementResult) => void }>();
  private readonly proposedExpires = new Set<string>();
  private readonly proposedHandoffs = new Set<string>();
  private renewalIds = 0;
  /** Leader ticks since the last rebalance round was considered. */
  private rebalanceTicks = 0;
  private persisting: Ready | null = null;
  private readonly proposals = new Map<number, PendingProposal>();
  /** Gets served by ReadIndex, by request id, in arrival order. */
  private readonly reads = new Map<string, PendingRead>();

  constructor(
    readonly id: string,
    readonly clock: SimClock,
    private readonly config: RaftConfigInput,
    private readonly host: MemberHost,
    /** Serve gets through ReadIndex rather than through the log. */
    private readonly readIndexGets: boolean,
    private readonly compaction: CompactionPolicy = { compactEveryEntries: 0 },
    /** Lease settings when workers run (placement on); `null` otherwise. */
    private readonly placementLease: LeaseConfigInput | null = null,
  ) {}

  /** The core's status, or `undefined` while the member is down. */
  status(): RaftStatus | undefined {
    return this.node?.status();
  }

  /** Whether the member is running. */
  get up(): boolean {
    return this.node !== null;
  }

  /** Starts (or restarts) the member from what its disk holds. */
  start(): void {
    const restored = this.disk.load();
    this.node = new RaftNode(this.config, restored);
    const snapshot = restored.snapshot;
    this.kv = snapshot !== undefined ? KvStore.fromSnapshot(snapshot.data) : new KvStore();
    this.snapshotIndex = snapshot?.index ?? 0;
    // The observer's view of the log: what the snapshot stands for, then the entries after it.
    this.log = snapshot !== undefined ? this.host.committedPrefix(snapshot.index) : [];
    this.log.push(...restored.entries);
    this.commit = restored.hardState.commit;
    this.term = restored.hardState.term;
    this.role = "follower";
    this.leader = null;
    this.persisting = null;
    this.tracker = this.placementLease === null ? null : new LeaseTracker(this.placementLease);
  }

  /** Crashes the member: volatile state is lost, and the disk keeps only what was synced. */
  crash(): void {
    const counters = this.node?.status().counters;
    if (counters !== undefined) {
      this.pastCounters.snapshotsSent += counters.snapshotsSent;
      this.pastCounters.snapshotsInstalled += counters.snapshotsInstalled;
    }
    this.node = null;
    this.persisting = null;
    this.proposals.clear();
    this.reads.clear();
    this.clearPlacementWork();
    this.generation += 1;
  }

  tick(): void {
    this.node?.tick();
    this.placementTick();
    this.processReady();
  }

  /** The member's own clock, in milliseconds. */
  private localMs(): number {
    return this.clock.localAt(this.host.now()) / 1000;
  }

  private clearPlacementWork(): void {
    this.renewals.clear();
    this.placementWaits.clear();
    this.proposedExpires.clear();
    this.proposedHandoffs.clear();
    this.tracker?.onSteppedDown();
  }

  /** Proposes a placement command; `done` runs when it is applied in this term. False when refused. */
  private proposePlacement(command: PlacementCommand, done?: (result: PlacementResult) => void): boolean {
    const node = this.node;
    if (node === null) return false;
    try {
      const { index, term } = node.propose(encodePlacementCommand(command));
      if (done !== undefined) this.placementWaits.set(index, { term, done });
      return true;
    } catch (error) {
      if (NotLeaderError.is(error) || ProposalDroppedError.is(error)) return false;
      throw error;
    }
  }

  /** A worker's request: join, renew or confirm a release. Only the leader acts on them. */
  workerRequest(worker: string, request: WorkerRequest): void {
    const node = this.node;
    if (node === null) return;
    if (this.role !== "leader") {
      this.host.replyToWorker(this, worker, { kind: "notLeader", leaderHint: this.leader });
      return;
    }
    switch (request.kind) {
      case "join":
        this.proposePlacement(
          { type: "join", worker, address: worker, capacity: request.capacity, zone: request.zone },
          () => this.host.replyToWorker(this, worker, { kind: "joined" }),
        );
        break;
      case "release":
        this.proposePlacement({ type: "release", worker, key: request.key, epoch: request.epoch });
        break;
      case "renew": {
        // Answered only after a quorum round that began after it arrived (ReadIndex).
        const readId = `renew:${this.id}:${++this.renewalIds}`;
        this.renewals.set(readId, { worker, seq: request.seq, receivedAt: this.localMs(), index: null });
        try {
          node.readIndex(readId);
        } catch (error) {
          this.renewals.delete(readId);
          if (!NotLeaderError.is(error) && !ProposalDroppedError.is(error)) throw error;
        }
        break;
      }
    }
    this.processReady();
  }

  /** A gateway request: who owns `key`? Acquires it on first use. Only the leader answers. */
  route(client: number, requestId: number, key: string): void {
    if (this.node === null) return;
    if (this.role !== "leader") {
      this.host.replyRoute(this, client, { requestId, status: "notLeader", leaderHint: this.leader });
      return;
    }
    const assignment = this.kv.table.assignment(key);
    if (assignment !== undefined) {
      this.host.replyRoute(this, client, assignment.state === "active"
        ? { requestId, status: "ok", owner: assignment.owner, epoch: assignment.epoch }
        : { requestId, status: "retry" });
      return;
    }
    const proposed = this.proposePlacement({ type: "acquire", key }, () => {
      const now = this.kv.table.assignment(key);
      this.host.replyRoute(this, client, now !== undefined && now.state === "active"
        ? { requestId, status: "ok", owner: now.owner, epoch: now.epoch }
        : { requestId, status: "retry" });
    });
    if (!proposed) this.host.replyRoute(this, client, { requestId, status: "retry" });
    this.processReady();
  }

  /** Leader only: expires workers whose lease surely ran out, and hands off lapsed drains. */
  private placementTick(): void {
    const tracker = this.tracker;
    if (tracker === null || this.role !== "leader" || this.node === null) return;
    const now = this.localMs();
    const table = this.kv.table;
    for (const worker of tracker.expiredWorkers(now, table.workers().map((w) => w.id))) {
      if (this.proposedExpires.has(worker)) continue;
      if (this.proposePlacement({ type: "expire", worker })) this.proposedExpires.add(worker);
    }
    const draining = table.drainingKeys().map((key) => {
      const a = table.assignment(key) as { key: string; epoch: number };
      return { key, epoch: a.epoch };
    });
    // Only grants still draining are remembered, so the set stays as small as the table's drains.
    const stillDraining = new Set(draining.map((g) => `${g.key}@${g.epoch}`));
    for (const id of this.proposedHandoffs) if (!stillDraining.has(id)) this.proposedHandoffs.delete(id);
    for (const grant of tracker.handoffsDue(now, draining)) {
      const id = `${grant.key}@${grant.epoch}`;
      if (this.proposedHandoffs.has(id)) continue;
      if (this.proposePlacement({ type: "handoff", key: grant.key, epoch: grant.epoch })) this.proposedHandoffs.add(id);
    }
    // A bounded rebalance round now and then, once earlier moves have finished: only moving keys
    // pause, and never many at once.
    this.rebalanceTicks += 1;
    if (this.rebalanceTicks >= REBALANCE_EVERY_TICKS && draining.length === 0 && table.unbalanced()) {
      this.rebalanceTicks = 0;
      this.proposePlacement({ type: "rebalance", movesMax: REBALANCE_MOVES_PER_ROUND });
    }
  }

  /** Answers renewals whose quorum round is confirmed and whose read index is applied. */
  private serveRenewals(): void {
    for (const [readId, renewal] of this.renewals) {
      if (renewal.index === null || renewal.index > this.kv.appliedIndex) continue;
      this.renewals.delete(readId);
      const tracker = this.tracker;
      if (tracker === null || this.role !== "leader") continue;
      const keys = tracker.onRenewalAnswered(renewal.worker, renewal.receivedAt)
        ? this.kv.table.keysOf(renewal.worker).map((k) => ({ key: k.key, epoch: k.epoch, draining: k.state === "draining" }))
        : [];
      const member = this.kv.table.worker(renewal.worker) !== undefined;
      this.host.replyToWorker(this, renewal.worker, { kind: "renewed", seq: renewal.seq, keys, member });
    }
  }

  step(message: Message): void {
    this.node?.step(message);
    this.processReady();
  }

  /** Handles a client's request: propose it if leading, else say who leads. */
  request(request: ClientRequest): void {
    const node = this.node;
    if (node === null) return;
    const command: KvCommand = { client: request.client, seq: request.seq, input: request.input };
    try {
      if (this.readIndexGets && request.input.kind === "get") {
        // Any member serves a get by ReadIndex; a follower asks the leader for the index.
        const readId = `${this.id}:${request.requestId}`;
        this.reads.set(readId, { requestId: request.requestId, client: request.client, seq: request.seq, key: request.input.key, index: null });
        try {
          node.readIndex(readId);
        } catch (error) {
          this.reads.delete(readId);
          throw error;
        }
      } else {
        const { index, term } = node.propose(encodeCommand(command));
        this.proposals.set(index, { term, requestId: request.requestId, client: request.client, seq: request.seq });
      }
    } catch (error) {
      if (NotLeaderError.is(error)) {
        this.host.reply(this.id, request.client, { requestId: request.requestId, seq: request.seq, status: "notLeader", leaderHint: error.leaderHint });
      } else if (ProposalDroppedError.is(error)) {
        this.host.reply(this.id, request.client, { requestId: request.requestId, seq: request.seq, status: "retry" });
      } else {
        throw error;
      }
    }
    this.processReady();
  }

  /** Snapshot transfers begun and snapshots installed, over every incarnation. */
  snapshotCounters(): { sent: number; installed: number } {
    const counters = this.node?.status().counters;
    return {
      sent: this.pastCounters.snapshotsSent + (counters?.snapshotsSent ?? 0),
      installed: this.pastCounters.snapshotsInstalled + (counters?.snapshotsInstalled ?? 0),
    };
  }

  /**
   * Asks this member (a leader) to change the membership. Returns the refusal's reason, or `null`
   * when the change was appended.
   */
  proposeConfChange(ops: readonly ConfChangeOp[]): string | null {
    const node = this.node;
    if (node === null) return "down";
    try {
      node.proposeConfChange(ops);
    } catch (error) {
      if (ConfChangeError.is(error)) return error.reason;
      if (NotLeaderError.is(error) || ProposalDroppedError.is(error)) return error.code;
      throw error;
    }
    this.processReady();
    return null;
  }

  /** Asks this member (a leader) to hand leadership to `to`; ignored if it no longer leads. */
  transferLeadership(to: string): void {
    const node = this.node;
    if (node === null) return;
    try {
      node.transferLeadership(to);
    } catch (error) {
      if (!NotLeaderError.is(error)) throw error;
    }
    this.processReady();
  }

  /** Runs the Ready loop until the node has nothing more or a write is being synced. */
  processReady(): void {
    const node = this.node;
    while (node !== null && this.persisting === null && node.hasReady()) {
      const rd = node.ready();
      this.observe(rd);
      if (rd.sendBeforePersist) for (const m of rd.messages) this.host.sendRaft(m);
      if (rd.hardState === undefined && rd.entries.length === 0 && rd.snapshot === undefined) {
        this.finish(rd);
        continue;
      }
      this.disk.write(rd.hardState, rd.entries, rd.snapshot);
      this.persisting = rd;
      const generation = this.generation;
      this.host.scheduleSync(this, () => {
        if (this.generation !== generation) return;
        this.disk.sync();
        this.persisting = null;
        this.finish(rd);
        this.processReady();
      });
    }
  }

  /** Records what a Ready says about the member before anything is done with it. */
  private observe(rd: Ready): void {
    if (rd.snapshot !== undefined) this.log = this.host.committedPrefix(rd.snapshot.index);
    const first = rd.entries[0];
    if (first !== undefined) {
      this.log.length = first.index - 1;
      for (const entry of rd.entries) this.log.push(entry);
    }
    if (rd.hardState !== undefined) this.term = rd.hardState.term;
    if (rd.softState !== undefined) {
      const wasLeader = this.role === "leader";
      const leaderChanged = this.leader !== rd.softState.leader;
      this.role = rd.softState.role;
      this.leader = rd.softState.leader;
      if (wasLeader && this.role !== "leader") {
        this.abandonProposals();
        this.clearPlacementWork();
      }
      if (!wasLeader && this.role === "leader") this.tracker?.onElected(this.localMs());
      if (leaderChanged) this.abandonUnconfirmedReads();
      this.host.onRole(this, this.role, this.term, this.leader);
    }
    if (this.role === "leader") {
      for (const entry of rd.entries) if (entry.type === "confChange") this.host.onConfAppend(this, entry);
    }
  }

  /** After persistence: send, apply, advance. */
  private finish(rd: Ready): void {
    const node = this.node;
    if (node === null) return;
    if (!rd.sendBeforePersist) for (const m of rd.messages) this.host.sendRaft(m);
    if (rd.hardState !== undefined && rd.hardState.commit > this.commit) {
      this.commit = rd.hardState.commit;
      this.host.onCommit(this, this.commit);
    }
    if (rd.snapshot !== undefined) {
      this.kv = KvStore.fromSnapshot(rd.snapshot.data);
      this.snapshotIndex = rd.snapshot.index;
      this.host.onSnapshotInstalled(this, rd.snapshot);
    }
    for (const entry of rd.committed) this.apply(entry);
    for (const state of rd.readStates) {
      const read = this.reads.get(state.requestId);
      if (read !== undefined) read.index = state.index;
      const renewal = this.renewals.get(state.requestId);
      if (renewal !== undefined) renewal.index = state.index;
    }
    this.serveReads();
    this.serveRenewals();
    node.advance(rd);
    this.maybeCompact(node);
  }

  /** Takes a snapshot of the store and compacts the log, per the compaction policy. */
  private maybeCompact(node: RaftNode): void {
    const every = this.compaction.compactEveryEntries;
    const applied = this.kv.appliedIndex;
    if (every === 0 || applied - this.snapshotIndex < every) return;
    const snapshot = node.compact(applied, this.kv.snapshot());
    this.snapshotIndex = Math.max(applied, node.status().snapshotIndex);
    if (snapshot === null) return; // a snapshot from the leader overtook this one
    this.disk.saveSnapshot(snapshot);
    this.snapshotsTaken += 1;
  }

  /**
   * A read not yet confirmed when the leader changes will never be: the old leader dropped it (or
   * this member was that leader). Tell the client to retry rather than let it wait out a timeout.
   */
  private abandonUnconfirmedReads(): void {
    for (const [readId, read] of this.reads) {
      if (read.index !== null) continue;
      this.reads.delete(readId);
      this.host.reply(this.id, read.client, { requestId: read.requestId, seq: read.seq, status: "retry" });
    }
  }

  /** Gets answered by ReadIndex. */
  readsServed = 0;

  /** Answers every get whose read index this member has applied. */
  private serveReads(): void {
    for (const [readId, read] of this.reads) {
      if (read.index === null || read.index > this.kv.appliedIndex) continue;
      this.reads.delete(readId);
      this.readsServed += 1;
      const output: KvOutput = { kind: "get", value: this.kv.read(read.key) };
      this.host.reply(this.id, read.client, { requestId: read.requestId, seq: read.seq, status: "ok", output });
    }
  }

  private apply(entry: Entry): void {
    const result = this.kv.apply(entry);
    this.host.onApply(this, entry);
    const placement = this.kv.lastPlacement;
    if (placement !== null) this.applied(entry, placement.command, placement.result);
    const pending = this.proposals.get(entry.index);
    if (pending === undefined) return;
    this.proposals.delete(entry.index);
    const base = { requestId: pending.requestId, seq: pending.seq };
    // Our proposal is at this index only if the term matches; otherwise it was overwritten.
    if (pending.term === entry.term && result !== null && result.command.client === pending.client) {
      this.host.reply(this.id, pending.client, { ...base, status: "ok", output: result.output });
    } else {
      this.host.reply(this.id, pending.client, { ...base, status: "retry" });
    }
  }

  /** After a placement command is applied: answer who waits for it, and keep the lease tracker in step. */
  private applied(entry: Entry, command: PlacementCommand, result: PlacementResult): void {
    this.host.onPlacementApplied(this, entry.index, command, result);
    const wait = this.placementWaits.get(entry.index);
    if (wait !== undefined) {
      this.placementWaits.delete(entry.index);
      if (wait.term === entry.term) wait.done(result);
    }
    const tracker = this.tracker;
    if (tracker === null || this.role !== "leader") return;
    const now = this.localMs();
    // A worker that (re)joins starts its lease clock now, or it would be expired at once by a
    // deadline counted from before it existed.
    if (command.type === "join" && result.refused === null) tracker.onRenewalAnswered(command.worker, now);
    for (const a of result.changed) if (a.state === "draining") tracker.onDrainApplied(a.key, a.epoch, now);
    for (const worker of result.workersRemoved) {
      tracker.forget(worker);
      this.proposedExpires.delete(worker);
    }
  }

  /** A deposed leader cannot know whether its pending proposals will commit: say so. */
  private abandonProposals(): void {
    for (const pending of this.proposals.values()) {
      this.host.reply(this.id, pending.client, { requestId: pending.requestId, seq: pending.seq, status: "retry" });
    }
    this.proposals.clear();
  }

  /** Keys (`client:seq`) of the commands in this member's committed log. */
  committedCommandKeys(): Set<string> {
    const keys = new Set<string>();
    for (let i = 0; i < Math.min(this.commit, this.log.length); i += 1) {
      const entry = this.log[i] as Entry;
      if (entry.type !== "normal") continue;
      const command = decodeCommand(entry.data);
      if (command !== null) keys.add(commandKey(command));
    }
    return keys;
  }
}
