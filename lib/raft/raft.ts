/**
 * The Raft state machine of one member: terms, votes, roles, replication and commit. It only
 * steps: `tick()` turns an expired timer into a local message fed to the same dispatch as network
 * messages, and each role has its own step function, swapped on role change. Output is data: the
 * `outbox` of messages and the log's unstable and committed entries, collected by `RaftNode`.
 *
 * Pure: no I/O, no clock, no global randomness. See DESIGN.md §2.
 */
import { assert, unreachable } from "../assert.ts";
import { ConfChangeError, InvalidRequestError, NotLeaderError, ProposalDroppedError } from "../errors.ts";
import {
  EMPTY_CONF,
  confMembers,
  confVoters,
  decodeConfState,
  encodeConfState,
  enterConf,
  isJoint,
  isVoter,
  leaveConf,
  type ConfChangeOp,
} from "./conf.ts";
import { leaseTicks, type RaftConfig } from "./config.ts";
import { RaftLog } from "./log.ts";
import {
  entryBytes,
  type AppendMessage,
  type AppendResponseMessage,
  type ConfState,
  type Entry,
  type HardState,
  type HeartbeatMessage,
  type Message,
  type NodeId,
  type RequestVoteMessage,
  type Snapshot,
  type SnapshotMessage,
  type SnapshotResponseMessage,
  type VoteResponseMessage,
} from "./messages.ts";
import { Progress } from "./progress.ts";
import { jointCommittedIndex, jointIsQuorum, jointVoteResult } from "./quorum.ts";
import { validateMessage } from "./validate.ts";

/** The role a member plays in its current term. */
export type Role = "follower" | "preCandidate" | "candidate" | "leader";

/** Messages the member sends itself: timer expiries. They never cross the network. */
type LocalMessage =
  | { readonly type: "hup"; readonly transfer: boolean }
  | { readonly type: "beat" }
  | { readonly type: "checkQuorum" };

/** Network messages that reach a role's step function (vote requests are handled for all roles). */
type RoleMessage = Exclude<Message, RequestVoteMessage>;

/** What a member restarts from: the state its host persisted. */
export interface RestoredState {
  readonly hardState: HardState;
  /** The latest snapshot persisted, if any; the host restores its state machine from it. */
  readonly snapshot?: Snapshot;
  /** The persisted entries after the snapshot (or from index 1 without one). */
  readonly entries: readonly Entry[];
  /**
   * The index the host's state machine has already applied, if it kept its state beyond the
   * snapshot. @defaultValue the snapshot's index, or 0
   */
  readonly applied?: number;
}

/** A snapshot a follower is receiving, chunk by chunk. */
interface IncomingSnapshot {
  readonly from: NodeId;
  readonly index: number;
  readonly term: number;
  readonly origin: NodeId;
  readonly config: ConfState;
  readonly chunks: Uint8Array[];
  received: number;
}

/**
 * A linearizable read the host may now serve: once it has applied entries up to `index`, its state
 * reflects every write that completed before the read was requested.
 */
export interface ReadState {
  /** The id the host passed to `readIndex`. */
  readonly requestId: string;
  /** The commit index at the time the leader confirmed its leadership for the read. */
  readonly index: number;
}

/** A read the leader holds until a quorum confirms its leadership for `round`. */
interface PendingRead {
  readonly requestId: string;
  /** Who asked: this member, or the follower to answer with `readIndexResponse`. */
  readonly from: NodeId;
  readonly index: number;
  readonly round: number;
}

/** Counters for things a member refused or dropped; useful for metrics and tests. */
export interface RaftCounters {
  /** Messages refused by validation (malformed, or addressed elsewhere). */
  invalidMessages: number;
  /** Messages dropped because the outbox was full. */
  outboxDropped: number;
  /** Elections this member started (real ones, not pre-votes). */
  campaigns: number;
  /** Snapshot transfers this member began as leader. */
  snapshotsSent: number;
  /** Snapshots received from a leader and handed to the host to install. */
  snapshotsInstalled: number;
  /** Membership changes this member proposed as leader (a joint change counts once). */
  confChanges: number;
}

const EMPTY = new Uint8Array(0);

function isVoteRequest(message: Message): message is RequestVoteMessage {
  return message.type === "requestVote" || message.type === "requestPreVote";
}

/** One member's Raft state. Drive it through `RaftNode`; this class is its engine. */
export class Raft {
  readonly id: NodeId;
  readonly config: RaftConfig;
  readonly log: RaftLog;
  /** The configuration in effect: the last one applied (or restored from a snapshot). */
  conf: ConfState;
  /** Every member of `conf` (voters and learners), sorted so that iteration order is fixed. */
  private members: readonly NodeId[] = [];
  /** Configurations applied since the compaction point, with the index each took effect at. */
  private confHistory: { index: number; conf: ConfState }[] = [];
  /** Leader only: the index of the last configuration entry, which must be applied before another. */
  private pendingConfIndex = 0;

  /** The latest snapshot (made here or installed from a leader): what this member sends as leader. */
  snapshot: Snapshot | null = null;
  /** A snapshot from the leader for the host to persist and install, handed out in `Ready`. */
  snapshotToInstall: Snapshot | null = null;
  /** A snapshot arriving from a leader; kept across leader changes so a transfer can resume. */
  private incoming: IncomingSnapshot | null = null;
  /** The last snapshot refused for its size: its later chunks are ignored, not answered. */
  private refusedSnapshot: { index: number; term: number; origin: NodeId } | null = null;

  term = 0;
  vote: NodeId | null = null;
  /** The leader of `term` as far as this member knows, or `null`. */
  lead: NodeId | null = null;
  role: Role = "follower";

  // invariant: electionElapsed counts ticks since the last reset, a leader contact or a vote grant
  electionElapsed = 0;
  heartbeatElapsed = 0;
  // invariant: electionTicks <= randomizedElectionTimeout < 2 * electionTicks
  randomizedElectionTimeout = 0;

  /** Leader only: the member leadership is being handed to, or `null`. */
  leadTransferee: NodeId | null = null;
  /** Leader only: bytes of entries this leader appended that are not yet committed. */
  uncommittedBytes = 0;
  /** Leader only: the first index this leader appended (its empty entry). */
  private leaderFirstIndex = 0;

  private readonly progress = new Map<NodeId, Progress>();
  private readonly votes = new Map<NodeId, boolean>();

  /** Reads confirmed for the host, oldest first; `RaftNode` hands them over in `Ready`. */
  readStates: ReadState[] = [];
  /** Leader only: the latest read round started; heartbeats carry it, responses echo it. */
  private readRound = 0;
  /** Leader only: the highest read round each member has echoed. */
  private readonly readAcks = new Map<NodeId, number>();
  /** Leader only: reads waiting for their round to be confirmed, in round order. */
  private pendingReads: PendingRead[] = [];
  /** Leader only: ticks since it became leader (its own clock, for the read lease). */
  private leaderTicks = 0;
  /** Leader only, lease mode: heartbeat rounds not yet confirmed, with the tick each was sent. */
  private roundsSent: { round: number; tick: number }[] = [];
  /** Leader only, lease mode: when the newest quorum-confirmed heartbeat round was sent. */
  private leaseFromTick = -Infinity;
  /** Leader only: reads that arrived before this leader committed an entry of its term. */
  private readsBeforeCommit: { requestId: string; from: NodeId }[] = [];

  /** Messages waiting for the host to send them, oldest first. */
  outbox: Message[] = [];
  /** Whether a broadcast of appends is owed (see `flushAppends`). */
  private appendsOwed = false;
  readonly counters: RaftCounters = {
    invalidMessages: 0,
    outboxDropped: 0,
    campaigns: 0,
    snapshotsSent: 0,
    snapshotsInstalled: 0,
    confChanges: 0,
  };

  private stepRole: (message: RoleMessage) => void = this.stepFollower;
  private tickRole: () => void = this.tickElection;

  constructor(config: RaftConfig, restored?: RestoredState) {
    this.id = config.id;
    this.config = config;
    const bootstrap: ConfState =
      config.voters.length > 0 ? { voters: config.voters, outgoing: [], learners: [] } : EMPTY_CONF;
    this.conf = bootstrap;
    if (restored === undefined) {
      this.log = new RaftLog();
      this.setConf(0, bootstrap);
    } else {
      const snapshot = restored.snapshot;
      this.log = RaftLog.restore(snapshot, restored.entries, restored.hardState.commit);
      this.snapshot = snapshot ?? null;
      this.setConf(snapshot?.index ?? 0, snapshot?.config ?? bootstrap);
      // Configuration entries the host says it already applied take effect now; later ones take
      // effect as the host applies them again.
      const applied = Math.min(Math.max(restored.applied ?? 0, this.log.applied), this.log.committed);
      for (let index = this.log.applied + 1; index <= applied; index += 1) {
        this.applyEntry(this.log.entry(index));
      }
      this.log.appliedTo(applied);
      this.term = restored.hardState.term;
      this.vote = restored.hardState.vote;
    }
    this.becomeFollower(this.term, null);
  }

  // ---------------------------------------------------------------------------------------------
  // Inputs

  /** Advances logical time by one tick. */
  tick(): void {
    this.tickRole();
  }

  /**
   * Handles a message from a peer. Malformed messages, or ones addressed to another member, are
   * counted in `counters.invalidMessages` and otherwise ignored: input never crashes a member.
   */
  step(message: Message): void {
    const problem = validateMessage(message, this.id);
    if (problem !== null) {
      this.counters.invalidMessages += 1;
      return;
    }
    if (!this.stepTerm(message)) return;
    if (isVoteRequest(message)) this.handleVoteRequest(message);
    else this.stepRole(message);
  }

  /** Starts an election now, as if the election timer had expired (with pre-vote if enabled). */
  campaign(): void {
    this.stepLocal({ type: "hup", transfer: false });
  }

  /**
   * Appends `data` as a new entry if this member leads. Returns the entry's index and term; the
   * entry is committed only once a quorum has persisted it, which the host learns when it appears
   * among a `Ready`'s committed entries.
   * @throws NotLeaderError when this member does not lead (with `leaderHint`).
   * @throws ProposalDroppedError during a leadership transfer or when a byte limit would be passed.
   */
  propose(data: Uint8Array): { index: number; term: number } {
    this.assertCanPropose();
    if (data.byteLength > this.config.proposalBytesMax) {
      throw new ProposalDroppedError(
        "proposal-bytes-max",
        `${data.byteLength} bytes exceeds proposalBytesMax (${this.config.proposalBytesMax})`,
      );
    }
    const entry: Entry = { term: this.term, index: this.log.lastIndex() + 1, type: "normal", data };
    const bytes = entryBytes(entry);
    if (this.uncommittedBytes + bytes > this.config.uncommittedBytesMax) {
      throw new ProposalDroppedError(
        "uncommitted-bytes-max",
        `${this.uncommittedBytes} uncommitted bytes plus ${bytes} exceeds uncommittedBytesMax ` +
          `(${this.config.uncommittedBytesMax}); retry once the backlog commits`,
      );
    }
    this.appendAsLeader([entry]);
    this.appendsOwed = true;
    return { index: entry.index, term: entry.term };
  }

  /**
   * Starts handing leadership to `to`: it is brought up to date, then told to campaign at once.
   * Proposals are dropped until the transfer ends; it is abandoned after an election timeout.
   * @throws NotLeaderError when this member does not lead.
   * @throws InvalidRequestError when `to` is not a voter.
   */
  transferLeadership(to: NodeId): void {
    if (this.role !== "leader") throw new NotLeaderError(this.lead);
    if (!isVoter(this.conf, to)) {
      throw new InvalidRequestError(`cannot transfer leadership to ${to}: not a voter`);
    }
    if (to === this.id || to === this.leadTransferee) return;
    if (this.progressOf(to).state === "snapshot") {
      // It will be brought up to date once its snapshot is installed; the timeout still applies.
      this.leadTransferee = to;
      this.electionElapsed = 0;
      return;
    }
    this.leadTransferee = to;
    // The transfer must finish within one election timeout, counted from now.
    this.electionElapsed = 0;
    const progress = this.progressOf(to);
    if (progress.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to);
  }

  /**
   * Requests a linearizable read. On the leader, the read index is the commit index once the
   * leader has confirmed, with a quorum round that began after this call, that it still leads (or
   * at once with `readOnly: "lease"`); a new leader first commits an entry of its own term. On a
   * follower the request goes to the leader, whose answer comes back the same way. The result
   * arrives as a `ReadState` in a later `Ready`; if leadership changes first, none arrives and the
   * host's timeout decides.
   * @throws NotLeaderError when no leader is known.
   * @throws ProposalDroppedError (`read-index-pending-max`) when too many reads are pending.
   */
  readIndex(requestId: string): void {
    if (this.role === "leader") {
      if (this.readsPending() >= this.config.readIndexPendingMax) {
        throw new ProposalDroppedError(
          "read-index-pending-max",
          `${this.readsPending()} reads pending; readIndexPendingMax is ${this.config.readIndexPendingMax}`,
        );
      }
      this.leaderRead(requestId, this.id);
      return;
    }
    if (this.lead === null) throw new NotLeaderError(null);
    this.send({ type: "readIndex", from: this.id, to: this.lead, term: this.term, requestId });
  }

  /**
   * Proposes a membership change. A change of voters goes through joint consensus: this entry
   * holds C_old,new, and once it is applied the leader appends C_new by itself. A change of
   * learners only takes one entry. Returns where the entry sits; the change takes effect on each
   * member when it applies the entry.
   * @throws NotLeaderError when this member does not lead.
   * @throws ConfChangeError when another change is pending (not yet applied, or the joint
   *   configuration not yet left), or the change is invalid (see its `reason`).
   * @throws ProposalDroppedError during a leadership transfer.
   */
  proposeConfChange(ops: readonly ConfChangeOp[]): { index: number; term: number } {
    this.assertCanPropose();
    if (this.pendingConfIndex > this.log.applied) {
      throw new ConfChangeError(
        "pending",
        `the configuration entry at ${this.pendingConfIndex} is not applied yet (applied ${this.log.applied})`,
      );
    }
    const next = enterConf(this.conf, ops);
    this.counters.confChanges += 1;
    return this.appendConf(next);
  }

  /** Throws unless this member leads and is not handing leadership over. */
  private assertCanPropose(): void {
    if (this.role !== "leader") throw new NotLeaderError(this.lead);
    if (this.leadTransferee !== null) {
      throw new ProposalDroppedError(
        "leadership-transfer",
        `leadership is being transferred to ${this.leadTransferee}`,
      );
    }
  }

  /** Appends a configuration entry as leader and sends it. */
  private appendConf(conf: ConfState): { index: number; term: number } {
    const entry: Entry = {
      term: this.term,
      index: this.log.lastIndex() + 1,
      type: "confChange",
      data: encodeConfState(conf),
    };
    this.pendingConfIndex = entry.index;
    this.appendAsLeader([entry]);
    this.appendsOwed = true;
    return { index: entry.index, term: entry.term };
  }

  /** A leader in a joint configuration it has applied leaves it as soon as nothing is pending. */
  private maybeLeaveJoint(): void {
    if (this.role !== "leader" || !isJoint(this.conf)) return;
    if (this.pendingConfIndex > this.log.applied || this.leadTransferee !== null) return;
    this.appendConf(leaveConf(this.conf));
  }

  /**
   * Records that the host applied entries up to `index`; configuration entries among them take
   * effect now (in log order).
   */
  applied(entries: readonly Entry[]): void {
    for (const entry of entries) {
      if (entry.index <= this.log.applied) continue;
      this.applyEntry(entry);
      this.log.appliedTo(entry.index);
    }
    this.maybeLeaveJoint();
  }

  /** The host installed the snapshot it was handed: its state is the state after `index`. */
  installed(snapshot: Snapshot): void {
    this.log.appliedTo(snapshot.index);
  }

  private applyEntry(entry: Entry): void {
    if (entry.type !== "confChange") return;
    const conf = decodeConfState(entry.data);
    assert(conf !== null, () => `configuration entry ${entry.index} decodes`);
    this.setConf(entry.index, conf);
  }

  /** Adopts `conf`, which took effect at `index`. */
  private setConf(index: number, conf: ConfState): void {
    this.conf = conf;
    this.members = confMembers(conf);
    this.confHistory.push({ index, conf });
    if (this.role !== "leader") return;
    const added: NodeId[] = [];
    for (const id of this.members) {
      if (this.progress.has(id)) continue;
      const progress = this.newProgress(this.log.lastIndex() + 1);
      // Newly added: give it an election timeout to answer before check-quorum counts it absent.
      progress.recentActive = true;
      this.progress.set(id, progress);
      added.push(id);
    }
    for (const id of [...this.progress.keys()]) if (!this.members.includes(id)) this.progress.delete(id);
    for (const id of added) this.sendAppend(id);
    if (this.leadTransferee !== null && !isVoter(conf, this.leadTransferee)) this.leadTransferee = null;
    if (!isVoter(conf, this.id)) {
      // A leader removed from the configuration steps down; the remaining voters elect a leader.
      this.becomeFollower(this.term, null);
      return;
    }
    // The quorum changed: what is committed may have changed with it.
    if (this.maybeCommit()) this.onCommitted();
  }

  /** The configuration in effect after applying entries up to `index` (at or after the compaction point). */
  private confAt(index: number): ConfState {
    let conf = (this.confHistory[0] as { conf: ConfState }).conf;
    for (const entry of this.confHistory) if (entry.index <= index) conf = entry.conf;
    return conf;
  }

  /**
   * Takes a snapshot: `data` is the host's state machine state after applying entries up to
   * `index` (at most the applied index). Entries up to `index` are dropped from the log; a follower
   * that needs them receives this snapshot instead. Returns the snapshot for the host to persist,
   * or `null` when there is nothing to do: the log is already compacted at or past `index` (a newer
   * snapshot arrived from the leader meanwhile), or this member joined the cluster after `index`
   * and does not know the configuration there (it can snapshot once it applied its own addition).
   * @throws InvalidRequestError when `index` is not applied yet.
   */
  compact(index: number, data: Uint8Array): Snapshot | null {
    if (!Number.isSafeInteger(index) || index < 0 || index > this.log.applied) {
      throw new InvalidRequestError(`cannot snapshot at ${index}: applied only up to ${this.log.applied}`);
    }
    if (index <= this.log.snapshotIndex()) return null;
    const config = this.confAt(index);
    // A member that joined a running cluster does not know the configuration before the entry
    // that added it (the first configuration is not in the log): it cannot snapshot there yet.
    if (config.voters.length === 0) return null;
    const snapshot: Snapshot = {
      index,
      term: this.log.term(index) as number,
      config,
      origin: this.id,
      data,
    };
    this.log.compact(index);
    this.snapshot = snapshot;
    const kept = this.confHistory.filter((entry) => entry.index > index);
    this.confHistory = [{ index, conf: snapshot.config }, ...kept];
    return snapshot;
  }

  private readsPending(): number {
    return this.pendingReads.length + this.readsBeforeCommit.length;
  }

  /** Starts confirming a read for `from` (this member or a follower). */
  private leaderRead(requestId: string, from: NodeId): void {
    if (this.log.term(this.log.committed) !== this.term) {
      // Until it commits an entry of its term, a new leader does not know the commit index.
      this.readsBeforeCommit.push({ requestId, from });
      return;
    }
    if (this.inLease()) {
      this.answerRead({ requestId, from, index: this.log.committed, round: this.readRound });
      return;
    }
    // Without a valid lease a read takes a round of its own, in either mode (in lease mode every
    // broadcast starts one).
    if (this.config.readOnly !== "lease") this.readRound += 1;
    this.broadcastHeartbeat();
    this.pendingReads.push({ requestId, from, index: this.log.committed, round: this.readRound });
    this.confirmReads();
  }

  /**
   * Whether lease reads may be answered now: in lease mode, not during a transfer (the leader is
   * handing over on purpose), and within `leaseTicks` of sending a heartbeat a quorum confirmed.
   */
  private inLease(): boolean {
    return (
      this.config.readOnly === "lease" &&
      this.leadTransferee === null &&
      this.leaderTicks < this.leaseFromTick + leaseTicks(this.config)
    );
  }

  /** Answers every pending read whose round a quorum has echoed. */
  private confirmReads(): void {
    const confirmed = jointCommittedIndex(this.conf, (id) =>
      id === this.id ? this.readRound : (this.readAcks.get(id) ?? 0),
    );
    let newest = -1;
    for (const sent of this.roundsSent) if (sent.round <= confirmed) newest = sent.tick;
    if (newest >= 0) {
      this.leaseFromTick = Math.max(this.leaseFromTick, newest);
      this.roundsSent = this.roundsSent.filter((sent) => sent.round > confirmed);
    }
    let answered = 0;
    for (const read of this.pendingReads) {
      if (read.round > confirmed) break;
      this.answerRead(read);
      answered += 1;
    }
    if (answered > 0) this.pendingReads = this.pendingReads.slice(answered);
  }

  private answerRead(read: PendingRead): void {
    if (read.from === this.id) {
      this.readStates.push({ requestId: read.requestId, index: read.index });
    } else {
      this.send({
        type: "readIndexResponse",
        from: this.id,
        to: read.from,
        term: this.term,
        requestId: read.requestId,
        index: read.index,
      });
    }
  }

  /** Called by the host side once entries up to (`index`, `term`) are durable. */
  persisted(index: number, term: number): void {
    this.log.stableTo(index, term);
    if (this.role !== "leader") return;
    const self = this.progressOf(this.id);
    if (self.maybeUpdate(this.log.stableIndex()) && this.maybeCommit()) this.onCommitted();
  }

  /** The state a host must persist. */
  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  /** The leader's view of `id`'s log, for status reports and tests; `undefined` unless leading. */
  progressFor(id: NodeId): Readonly<Progress> | undefined {
    return this.role === "leader" ? this.progress.get(id) : undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // Terms and votes, common to every role

  /**
   * Applies the term rules to `message`. Returns false when the message must go no further (it is
   * stale, or a vote request to be ignored while a leader is known).
   */
  private stepTerm(message: Message): boolean {
    if (message.term > this.term) {
      if (message.type === "requestVote" || message.type === "requestPreVote") {
        // CheckQuorum's lease: a member that heard from a leader within the election timeout
        // ignores vote requests, so a member that was partitioned away cannot depose it.
        const inLease =
          this.config.checkQuorum &&
          this.lead !== null &&
          this.electionElapsed < this.config.electionTicks;
        if (inLease && !message.transfer) return false;
      }
      if (message.type === "requestPreVote") {
        // A pre-vote request carries the term the sender would campaign in; it changes no term.
      } else if (message.type === "preVoteResponse" && !message.reject) {
        // A granted pre-vote carries our own future term; it makes us no follower.
      } else {
        const leader =
          message.type === "append" || message.type === "heartbeat" || message.type === "snapshot"
            ? message.from
            : null;
        this.becomeFollower(message.term, leader);
      }
      return true;
    }
    if (message.term < this.term) {
      this.answerStale(message);
      return false;
    }
    return true;
  }

  /** Answers a message from an older term where the answer helps the sender catch up. */
  private answerStale(message: Message): void {
    if (
      (this.config.checkQuorum || this.config.preVote) &&
      (message.type === "append" || message.type === "heartbeat" || message.type === "snapshot")
    ) {
      // A deposed leader (or a member cut off with pre-vote on) learns our term from this and
      // steps down; without it, it could keep its stale leadership forever.
      this.send({
        type: "appendResponse",
        from: this.id,
        to: message.from,
        term: this.term,
        index: 0,
        reject: false,
        rejectHint: 0,
        rejectHintTerm: 0,
      });
    } else if (message.type === "requestPreVote") {
      // Reject with our term, so a pre-candidate that fell behind learns it.
      this.sendVoteResponse(message, this.term, true);
    }
  }

  private handleVoteRequest(message: RequestVoteMessage): void {
    const canVote =
      this.vote === message.from ||
      (this.vote === null && this.lead === null) ||
      (message.type === "requestPreVote" && message.term > this.term);
    if (canVote && this.log.isUpToDate(message.lastIndex, message.lastTerm)) {
      this.sendVoteResponse(message, message.term, false);
      if (message.type === "requestVote") {
        this.electionElapsed = 0;
        this.vote = message.from;
      }
    } else {
      this.sendVoteResponse(message, this.term, true);
    }
  }

  private sendVoteResponse(request: RequestVoteMessage, term: number, reject: boolean): void {
    this.send({
      type: request.type === "requestVote" ? "voteResponse" : "preVoteResponse",
      from: this.id,
      to: request.from,
      term,
      reject,
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Role changes

  /** Resets per-term state; a new term forgets the vote. */
  private reset(term: number): void {
    if (term !== this.term) {
      assert(term > this.term, () => `terms only grow (${this.term} -> ${term})`);
      this.term = term;
      this.vote = null;
    }
    this.lead = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.leadTransferee = null;
    this.votes.clear();
    this.progress.clear();
    this.uncommittedBytes = 0;
    // Reads pending under the old term are never answered; the host's timeout covers them.
    this.readRound = 0;
    this.readAcks.clear();
    this.pendingReads = [];
    this.readsBeforeCommit = [];
    this.leaderTicks = 0;
    this.roundsSent = [];
    this.leaseFromTick = -Infinity;
  }

  private resetRandomizedElectionTimeout(): void {
    const draw = this.config.random();
    assert(draw >= 0 && draw < 1, () => `config.random returns a number in [0, 1), got ${draw}`);
    const electionTicks = this.config.electionTicks;
    this.randomizedElectionTimeout = electionTicks + Math.floor(draw * electionTicks);
  }

  private becomeFollower(term: number, lead: NodeId | null): void {
    this.reset(term);
    this.lead = lead;
    this.role = "follower";
    this.stepRole = this.stepFollower;
    this.tickRole = this.tickElection;
  }

  private becomePreCandidate(): void {
    assert(this.role !== "leader", "a leader does not become a pre-candidate");
    // No term change and no vote: a pre-vote round changes nobody's persistent state.
    this.votes.clear();
    this.lead = null;
    this.resetRandomizedElectionTimeout();
    this.role = "preCandidate";
    this.stepRole = this.stepPreCandidate;
    this.tickRole = this.tickElection;
  }

  private becomeCandidate(): void {
    assert(this.role !== "leader", "a leader does not become a candidate");
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = "candidate";
    this.stepRole = this.stepCandidate;
    this.tickRole = this.tickElection;
    this.counters.campaigns += 1;
  }

  private becomeLeader(): void {
    assert(this.role === "candidate", "only a candidate becomes leader");
    this.reset(this.term);
    this.lead = this.id;
    this.role = "leader";
    this.stepRole = this.stepLeader;
    this.tickRole = this.tickHeartbeat;
    const next = this.log.lastIndex() + 1;
    for (const id of this.members) this.progress.set(id, this.newProgress(next));
    // Whether the log holds a configuration entry not yet applied is unknown without a scan:
    // assume it does, so that no new change is accepted before everything so far is applied.
    this.pendingConfIndex = this.log.lastIndex();
    const self = this.progressOf(this.id);
    // The leader's own entries count toward commit only once they are durable (thesis §10.2.1).
    self.maybeUpdate(this.log.stableIndex());
    self.becomeReplicate();
    this.leaderFirstIndex = next;
    // An empty entry of the new term: committing it commits everything before it (Figure 8).
    this.appendAsLeader([{ term: this.term, index: next, type: "normal", data: EMPTY }]);
  }

  /** Starts a (pre-)election, unless this member cannot vote. */
  private startElection(kind: "preElection" | "election", transfer: boolean): void {
    if (!this.isPromotable()) return;
    let requestType: RequestVoteMessage["type"];
    let term: number;
    if (kind === "preElection") {
      this.becomePreCandidate();
      requestType = "requestPreVote";
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      requestType = "requestVote";
      term = this.term;
    }
    this.votes.set(this.id, true);
    if (jointVoteResult(this.conf, this.votes) === "won") {
      this.winElection(kind, transfer);
      return;
    }
    for (const id of confVoters(this.conf)) {
      if (id === this.id) continue;
      this.send({
        type: requestType,
        from: this.id,
        to: id,
        term,
        lastIndex: this.log.lastIndex(),
        lastTerm: this.log.lastTerm(),
        transfer,
      });
    }
  }

  private winElection(kind: "preElection" | "election", transfer: boolean): void {
    if (kind === "preElection") {
      this.startElection("election", transfer);
    } else {
      this.becomeLeader();
      this.broadcastAppend();
    }
  }

  /** Whether a committed configuration entry is not yet applied. */
  private hasUnappliedConfChanges(): boolean {
    const from = Math.max(this.log.applied, this.log.snapshotIndex()) + 1;
    for (let index = from; index <= this.log.committed; index += 1) {
      if (this.log.entry(index).type === "confChange") return true;
    }
    return false;
  }

  private newProgress(next: number): Progress {
    return new Progress(next, this.config.inflightMessagesMax, this.config.inflightBytesMax);
  }

  private isPromotable(): boolean {
    return isVoter(this.conf, this.id);
  }

  // ---------------------------------------------------------------------------------------------
  // Ticks

  private tickElection(): void {
    this.electionElapsed += 1;
    if (this.isPromotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.stepLocal({ type: "hup", transfer: false });
    }
  }

  private tickHeartbeat(): void {
    this.leaderTicks += 1;
    this.heartbeatElapsed += 1;
    this.electionElapsed += 1;
    if (this.electionElapsed >= this.config.electionTicks) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum) this.stepLocal({ type: "checkQuorum" });
      // A transfer that has not finished within an election timeout is abandoned.
      if (this.role === "leader") this.leadTransferee = null;
    }
    if (this.role !== "leader") return;
    if (this.heartbeatElapsed >= this.config.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.stepLocal({ type: "beat" });
    }
  }

  private stepLocal(message: LocalMessage): void {
    switch (message.type) {
      case "hup":
        if (this.role === "leader") return;
        // A member must campaign with the configuration its log has committed: one it has not
        // applied yet could need other voters than the one it holds.
        if (this.hasUnappliedConfChanges()) return;
        if (this.config.preVote && !message.transfer) this.startElection("preElection", false);
        else this.startElection("election", message.transfer);
        return;
      case "beat":
        if (this.role === "leader") this.broadcastHeartbeat();
        return;
      case "checkQuorum":
        if (this.role !== "leader") return;
        if (!jointIsQuorum(this.conf, (id) => id === this.id || this.progressOf(id).recentActive)) {
          this.becomeFollower(this.term, null);
          return;
        }
        for (const id of this.members) if (id !== this.id) this.progressOf(id).recentActive = false;
        return;
      default:
        unreachable(message, "local message");
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Per-role step functions

  private stepFollower(message: RoleMessage): void {
    switch (message.type) {
      case "append":
        this.electionElapsed = 0;
        this.lead = message.from;
        this.handleAppend(message);
        return;
      case "heartbeat":
        this.electionElapsed = 0;
        this.lead = message.from;
        this.handleHeartbeat(message);
        return;
      case "timeoutNow":
        // The leader asked us to take over: campaign at once, skipping pre-vote and the lease.
        this.stepLocal({ type: "hup", transfer: true });
        return;
      case "snapshot":
        this.electionElapsed = 0;
        this.lead = message.from;
        this.handleSnapshot(message);
        return;
      case "readIndexResponse":
        this.readStates.push({ requestId: message.requestId, index: message.index });
        return;
      case "appendResponse":
      case "heartbeatResponse":
      case "voteResponse":
      case "preVoteResponse":
      case "readIndex":
      case "snapshotResponse":
        return; // answers to a role this member no longer plays, or a read for a leader
      default:
        unreachable(message, "follower message");
    }
  }

  private stepPreCandidate(message: RoleMessage): void {
    switch (message.type) {
      case "preVoteResponse":
        this.handleVoteResponse(message, "preElection");
        return;
      case "voteResponse":
        return; // from an election this member no longer runs
      default:
        this.stepCandidateCommon(message);
    }
  }

  private stepCandidate(message: RoleMessage): void {
    switch (message.type) {
      case "voteResponse":
        this.handleVoteResponse(message, "election");
        return;
      case "preVoteResponse":
        return; // from the pre-election this member already won
      default:
        this.stepCandidateCommon(message);
    }
  }

  /** What pre-candidates and candidates do alike: yield to a leader of their term. */
  private stepCandidateCommon(
    message: Exclude<RoleMessage, VoteResponseMessage>,
  ): void {
    switch (message.type) {
      case "append":
        this.becomeFollower(message.term, message.from);
        this.handleAppend(message);
        return;
      case "heartbeat":
        this.becomeFollower(message.term, message.from);
        this.handleHeartbeat(message);
        return;
      case "snapshot":
        this.becomeFollower(message.term, message.from);
        this.handleSnapshot(message);
        return;
      case "appendResponse":
      case "heartbeatResponse":
      case "timeoutNow":
      case "readIndex":
      case "readIndexResponse":
      case "snapshotResponse":
        return;
      default:
        unreachable(message, "candidate message");
    }
  }

  private stepLeader(message: RoleMessage): void {
    switch (message.type) {
      case "appendResponse":
        this.handleAppendResponse(message);
        return;
      case "heartbeatResponse":
        this.handleHeartbeatResponse(message.from, message.round);
        return;
      case "readIndex":
        if (this.readsPending() < this.config.readIndexPendingMax) {
          this.leaderRead(message.requestId, message.from);
        }
        return;
      case "snapshotResponse":
        this.handleSnapshotResponse(message);
        return;
      case "append":
      case "heartbeat":
      case "snapshot":
        // Another leader in our own term would break election safety; a correct peer never sends
        // this, so it is bad input and ignored (the simulator's checkers watch for the real thing).
        this.counters.invalidMessages += 1;
        return;
      case "voteResponse":
      case "preVoteResponse":
      case "timeoutNow":
      case "readIndexResponse":
        return;
      default:
        unreachable(message, "leader message");
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Handlers

  private handleVoteResponse(
    message: VoteResponseMessage,
    kind: "preElection" | "election",
  ): void {
    this.votes.set(message.from, !message.reject);
    const result = jointVoteResult(this.conf, this.votes);
    if (result === "won") this.winElection(kind, false);
    else if (result === "lost") this.becomeFollower(this.term, null);
  }

  private handleAppend(message: AppendMessage): void {
    if (message.prevIndex < this.log.committed) {
      // Everything up to our commit index already matches; tell the leader where to go on from.
      this.sendAppendResponse(message.from, this.log.committed, false, 0, 0);
      return;
    }
    const lastNewIndex = this.log.maybeAppend(
      message.prevIndex,
      message.prevTerm,
      message.commit,
      message.entries,
    );
    if (lastNewIndex !== undefined) {
      this.sendAppendResponse(message.from, lastNewIndex, false, 0, 0);
      return;
    }
    const hint = this.log.findConflictByTerm(
      Math.min(message.prevIndex, this.log.lastIndex()),
      message.prevTerm,
    );
    this.sendAppendResponse(message.from, message.prevIndex, true, hint.index, hint.term);
  }

  /**
   * A chunk of the leader's snapshot. Chunks are taken in order; each is answered with the bytes
   * held so far, so the leader resends after a gap and a new leader resumes a transfer of the same
   * snapshot. The last chunk installs it, unless the log has meanwhile caught up past it.
   */
  private handleSnapshot(message: SnapshotMessage): void {
    if (message.index <= this.log.committed) {
      // Nothing to install: tell the leader how far the log is committed, as an append answer.
      this.incoming = null;
      this.sendAppendResponse(message.from, this.log.committed, false, 0, 0);
      return;
    }
    if (this.log.matchTerm(message.index, message.snapshotTerm)) {
      // The log already holds the snapshot's last entry, so (log matching) everything before it:
      // commit up to it and keep the log. Replacing the log would drop entries after the snapshot
      // that this member may have acknowledged to the leader.
      this.incoming = null;
      this.log.commitTo(message.index);
      this.sendAppendResponse(message.from, this.log.committed, false, 0, 0);
      return;
    }
    const refused = this.refusedSnapshot;
    if (
      refused !== null &&
      refused.index === message.index &&
      refused.term === message.snapshotTerm &&
      refused.origin === message.origin
    ) {
      return; // over snapshotBytesMax: ignored until the leader sends another
    }
    let incoming = this.incoming;
    const same =
      incoming !== null &&
      incoming.index === message.index &&
      incoming.term === message.snapshotTerm &&
      incoming.origin === message.origin;
    if (!same) {
      if (message.offset !== 0) {
        this.sendSnapshotResponse(message.from, message.index, 0, true);
        return;
      }
      incoming = {
        from: message.from,
        index: message.index,
        term: message.snapshotTerm,
        origin: message.origin,
        config: message.config,
        chunks: [],
        received: 0,
      };
      this.incoming = incoming;
    }
    const current = incoming as IncomingSnapshot;
    if (message.offset !== current.received) {
      // A gap (a chunk was lost: reject) or a repeat (already held, e.g. from a previous leader).
      this.sendSnapshotResponse(message.from, message.index, current.received, message.offset > current.received);
      return;
    }
    if (current.received + message.data.byteLength > this.config.snapshotBytesMax) {
      // Refused without an answer: the leader's stall rule retries at most every few heartbeats,
      // rather than resending at network speed a snapshot this member will never take.
      this.counters.invalidMessages += 1;
      this.incoming = null;
      this.refusedSnapshot = { index: current.index, term: current.term, origin: current.origin };
      return;
    }
    if (message.data.byteLength > 0) current.chunks.push(message.data);
    current.received += message.data.byteLength;
    if (!message.done) {
      this.sendSnapshotResponse(message.from, message.index, current.received, false);
      return;
    }
    this.incoming = null;
    this.installSnapshot({
      index: current.index,
      term: current.term,
      config: current.config,
      origin: current.origin,
      data: concat(current.chunks, current.received),
    });
    this.sendAppendResponse(message.from, this.log.lastIndex(), false, 0, 0);
  }

  /** Replaces the log with `snapshot`; the host persists and installs it from the next `Ready`. */
  private installSnapshot(snapshot: Snapshot): void {
    this.log.restoreSnapshot(snapshot);
    this.snapshot = snapshot;
    this.snapshotToInstall = snapshot;
    this.confHistory = [];
    this.setConf(snapshot.index, snapshot.config);
    this.counters.snapshotsInstalled += 1;
  }

  private sendSnapshotResponse(to: NodeId, index: number, offset: number, reject: boolean): void {
    this.send({ type: "snapshotResponse", from: this.id, to, term: this.term, index, offset, reject });
  }

  /** The follower's answer to a snapshot chunk: stream on, resend after a gap, or skip ahead. */
  private handleSnapshotResponse(message: SnapshotResponseMessage): void {
    const progress = this.progress.get(message.from);
    if (progress === undefined) return;
    progress.recentActive = true;
    const transfer = progress.transfer;
    if (progress.state !== "snapshot" || transfer === null || transfer.snapshot.index !== message.index) return;
    const length = transfer.snapshot.data.byteLength;
    if (message.offset > length) {
      this.counters.invalidMessages += 1;
      return;
    }
    if (message.reject) {
      // A gap (a chunk was lost) or a follower that lost what it held (it restarted): resend from
      // what it holds now. The chunks in flight behind a gap are rejected too; rewind once per gap.
      if (message.offset < transfer.acked || message.offset !== transfer.rewoundTo) {
        transfer.acked = message.offset;
        transfer.sent = message.offset;
        transfer.doneSent = false;
        transfer.rewoundTo = message.offset;
        transfer.movedAt = this.leaderTicks;
      }
    } else {
      if (message.offset > transfer.acked) {
        transfer.acked = message.offset;
        transfer.movedAt = this.leaderTicks;
      }
      if (message.offset > transfer.sent) {
        // The follower already holds more (from a transfer a previous leader began): skip ahead.
        transfer.sent = message.offset;
        transfer.doneSent = false;
      }
    }
    this.sendSnapshotChunks(message.from);
  }

  private handleHeartbeat(message: HeartbeatMessage): void {
    // The leader sends min(our match, its commit), so the clamp only guards against bad input.
    this.log.commitTo(Math.min(message.commit, this.log.lastIndex()));
    this.send({
      type: "heartbeatResponse",
      from: this.id,
      to: message.from,
      term: this.term,
      round: message.round,
    });
  }

  private handleAppendResponse(message: AppendResponseMessage): void {
    const progress = this.progress.get(message.from);
    if (progress === undefined) return;
    progress.recentActive = true;
    if (message.reject) {
      this.handleAppendRejection(progress, message);
      return;
    }
    if (message.index > this.log.lastIndex()) {
      this.counters.invalidMessages += 1; // claims entries this leader never had
      return;
    }
    const wasPaused = progress.isPaused();
    if (!progress.maybeUpdate(message.index)) return;
    if (progress.state === "probe") progress.becomeReplicate();
    else if (progress.state === "snapshot") {
      // Installed (or caught up past it some other way): stream entries again.
      if (progress.match >= (progress.transfer?.snapshot.index ?? 0)) progress.becomeReplicate();
    } else progress.inflights.freeLE(message.index);
    if (this.maybeCommit()) this.onCommitted();
    // A paused follower that answered gets the next append at once, unless a broadcast owed to
    // every follower will carry it anyway.
    else if (wasPaused && !this.appendsOwed) this.sendAppend(message.from);
    while (this.maybeSendAppend(message.from, false)) {
      // Stream what the window allows.
    }
    if (message.from === this.leadTransferee && progress.match === this.log.lastIndex()) {
      this.sendTimeoutNow(message.from);
    }
  }

  private handleAppendRejection(progress: Progress, message: AppendResponseMessage): void {
    // The follower's hint (its last entry at or below the rejected index with a term at most our
    // prevTerm) lets us skip every index of a conflicting term at once. If the follower reported a
    // term, find our own last entry at or below the hint with a term at most that one.
    let nextProbe = message.rejectHint;
    if (message.rejectHintTerm > 0) {
      nextProbe = this.log.findConflictByTerm(message.rejectHint, message.rejectHintTerm).index;
    }
    if (progress.maybeDecreaseTo(message.index, nextProbe)) {
      if (progress.state === "replicate") progress.becomeProbe();
      this.sendAppend(message.from);
    }
  }

  private handleHeartbeatResponse(from: NodeId, round: number): void {
    const progress = this.progress.get(from);
    if (progress === undefined) return;
    progress.recentActive = true;
    if (round > (this.readAcks.get(from) ?? 0) && round <= this.readRound) {
      this.readAcks.set(from, round);
      this.confirmReads();
    }
    const transfer = progress.transfer;
    if (progress.state === "snapshot" && transfer !== null) {
      // The follower answers, but the transfer has not moved for a while: the chunks in flight
      // were lost (or refused without an answer). Resend from what it acknowledged.
      if (this.leaderTicks - transfer.movedAt >= this.snapshotStallTicks()) {
        transfer.sent = transfer.acked;
        transfer.doneSent = false;
        transfer.rewoundTo = -1;
      }
      this.sendSnapshotChunks(from);
      return;
    }
    // Unpause: if every append that filled the window was lost, the (possibly empty) append sent
    // now is answered with an acknowledgement or a rejection, and either one clears the window.
    progress.paused = false;
    if (progress.match < this.log.lastIndex() || progress.state === "probe") this.sendAppend(from);
  }

  // ---------------------------------------------------------------------------------------------
  // Leader output

  private appendAsLeader(entries: readonly Entry[]): void {
    for (const entry of entries) this.uncommittedBytes += entryBytes(entry);
    this.log.append(entries);
  }

  /**
   * Commits the highest index a quorum has persisted, if it is of this leader's term: an entry of
   * an older term is never committed by counting replicas (Raft paper Figure 8), only by
   * committing a later entry of the current term.
   */
  private maybeCommit(): boolean {
    const index = jointCommittedIndex(this.conf, (id) => this.progress.get(id)?.match ?? 0);
    if (index <= this.log.committed || this.log.term(index) !== this.term) return false;
    this.releaseUncommitted(this.log.committed, index);
    this.log.commitTo(index);
    return true;
  }

  /** After the commit index moved: tell followers, and start reads that waited for a commit. */
  private onCommitted(): void {
    this.appendsOwed = true;
    if (this.readsBeforeCommit.length > 0) {
      const waiting = this.readsBeforeCommit;
      this.readsBeforeCommit = [];
      for (const read of waiting) this.leaderRead(read.requestId, read.from);
    }
  }

  private releaseUncommitted(from: number, to: number): void {
    for (let index = Math.max(from + 1, this.leaderFirstIndex); index <= to; index += 1) {
      this.uncommittedBytes -= entryBytes(this.log.entry(index));
    }
    assert(this.uncommittedBytes >= 0, "uncommitted bytes never go negative");
  }

  private broadcastAppend(): void {
    for (const id of this.members) if (id !== this.id) this.sendAppend(id);
  }

  /**
   * Sends the appends owed since the last call: proposals and commit advances only mark them
   * owed, so that many proposals (and acknowledgements) between two `Ready`s make one append per
   * follower instead of one each. The host collects messages only through `ready()`, which calls
   * this first, so nothing is sent later than it would have been.
   */
  flushAppends(): void {
    if (!this.appendsOwed) return;
    this.appendsOwed = false;
    if (this.role === "leader") this.broadcastAppend();
  }

  /**
   * Sends every voter a heartbeat carrying the latest read round. In lease mode every broadcast
   * starts a new round, remembering when it was sent, so that a quorum's echo dates the lease.
   */
  private broadcastHeartbeat(): void {
    if (this.config.readOnly === "lease") {
      this.readRound += 1;
      // Bounded: rounds are confirmed (and dropped), or check-quorum deposes the leader within
      // two election timeouts, which clears them.
      this.roundsSent.push({ round: this.readRound, tick: this.leaderTicks });
    }
    for (const id of this.members) {
      if (id === this.id) continue;
      const commit = Math.min(this.progressOf(id).match, this.log.committed);
      this.send({ type: "heartbeat", from: this.id, to: id, term: this.term, commit, round: this.readRound });
    }
  }

  private sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /**
   * Sends `to` the entries it lacks, within `messageBytesMax`, unless its progress is paused.
   * Sends an empty append (to carry the commit index, or probe) only when `sendIfEmpty`.
   */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const progress = this.progressOf(to);
    if (progress.state === "snapshot") return this.sendSnapshotChunks(to);
    if (progress.isPaused()) return false;
    const prevIndex = progress.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) {
      // The entries it needs are compacted away: send the snapshot instead.
      assert(this.snapshot !== null, "a compacted log has a snapshot");
      progress.becomeSnapshot(this.snapshot, this.leaderTicks);
      this.counters.snapshotsSent += 1;
      return this.sendSnapshotChunks(to);
    }
    const lastIndex = this.log.lastIndex();
    // With a full window only an empty append goes out (to provoke an answer), never more entries.
    const entries =
      progress.next <= lastIndex && !progress.isThrottled()
        ? this.log.slice(progress.next, lastIndex, this.config.messageBytesMax)
        : [];
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({
      type: "append",
      from: this.id,
      to,
      term: this.term,
      prevIndex,
      prevTerm,
      entries,
      commit: this.log.committed,
    });
    let bytes = 0;
    for (const entry of entries) bytes += entryBytes(entry);
    progress.sentEntries(prevIndex + entries.length, bytes);
    return true;
  }

  /**
   * Ticks without progress after which a snapshot transfer resends from what the follower
   * acknowledged: half an election timeout, and at least two heartbeat intervals, so that answers
   * already on their way when the chunks left do not trigger it.
   */
  private snapshotStallTicks(): number {
    return Math.max(2 * this.config.heartbeatTicks + 1, Math.ceil(this.config.electionTicks / 2));
  }

  /** Sends chunks of the snapshot streaming to `to` while the window has room; returns whether any went. */
  private sendSnapshotChunks(to: NodeId): boolean {
    let sent = false;
    while (this.sendSnapshotChunk(to)) sent = true;
    return sent;
  }

  /**
   * Sends the next chunk of the snapshot streaming to `to`, if the window has room. Returns whether
   * a chunk was sent.
   */
  private sendSnapshotChunk(to: NodeId): boolean {
    const transfer = this.progressOf(to).transfer;
    if (transfer === null || transfer.doneSent) return false;
    const { snapshot } = transfer;
    const chunkBytes = this.config.snapshotChunkBytes;
    if (transfer.sent - transfer.acked >= chunkBytes * this.config.snapshotChunksInflightMax) return false;
    transfer.movedAt = this.leaderTicks;
    const offset = transfer.sent;
    const end = Math.min(offset + chunkBytes, snapshot.data.byteLength);
    const done = end === snapshot.data.byteLength;
    this.send({
      type: "snapshot",
      from: this.id,
      to,
      term: this.term,
      index: snapshot.index,
      snapshotTerm: snapshot.term,
      origin: snapshot.origin,
      config: snapshot.config,
      offset,
      data: snapshot.data.subarray(offset, end),
      done,
    });
    transfer.sent = end;
    transfer.doneSent = done;
    return true;
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ type: "timeoutNow", from: this.id, to, term: this.term });
  }

  private sendAppendResponse(
    to: NodeId,
    index: number,
    reject: boolean,
    rejectHint: number,
    rejectHintTerm: number,
  ): void {
    this.send({
      type: "appendResponse",
      from: this.id,
      to,
      term: this.term,
      index,
      reject,
      rejectHint,
      rejectHintTerm,
    });
  }

  private send(message: Message): void {
    if (this.outbox.length >= this.config.outboxMessagesMax) {
      // Raft tolerates lost messages; an unbounded outbox would not be tolerated by the host.
      this.counters.outboxDropped += 1;
      return;
    }
    this.outbox.push(message);
  }

  private progressOf(id: NodeId): Progress {
    const progress = this.progress.get(id);
    assert(progress !== undefined, () => `the leader tracks progress of ${id}`);
    return progress;
  }
}

/** Joins chunks into one array of `length` bytes. */
function concat(chunks: readonly Uint8Array[], length: number): Uint8Array {
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const out = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}
