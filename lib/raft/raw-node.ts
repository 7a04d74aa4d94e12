/**
 * `RaftNode`, the public face of the core, shaped after etcd-io/raft's RawNode. The host drives it:
 *
 * ```ts
 * const node = new RaftNode({ id: "n1", voters: ["n1", "n2", "n3"], random: hostRandom });
 * everyTick(() => node.tick());                    // logical time, from the host's own timer
 * transport.onMessage((m) => node.step(m));        // input from peers
 * while (node.hasReady()) {
 *   const rd = node.ready();
 *   await storage.save(rd.hardState, rd.snapshot, rd.entries); // 1. persist
 *   transport.send(rd.messages);            // 2. send (may precede 1 when rd.sendBeforePersist)
 *   if (rd.snapshot) restore(rd.snapshot);  // 3. install a snapshot from the leader, then
 *   for (const e of rd.committed) apply(e); //    apply committed entries
 *   node.advance(rd);                       // 4. acknowledge
 * }
 * // Now and then, with the state machine's state after status().applied:
 * const snapshot = node.compact(node.status().applied, stateMachine.snapshot());
 * if (snapshot !== null) storage.saveSnapshot(snapshot);
 * ```
 *
 * Pure and deterministic: the same calls in the same order always give the same `Ready`s.
 */
import { assert } from "../assert.ts";
import { resolveConfig, type RaftConfig, type RaftConfigInput } from "./config.ts";
import { confMembers, type ConfChangeOp } from "./conf.ts";
import type { ConfState, Entry, HardState, Message, NodeId, Snapshot } from "./messages.ts";
import { Raft, type RaftCounters, type ReadState, type RestoredState, type Role } from "./raft.ts";

/** Volatile state worth reporting when it changes: who leads, and this member's role. */
export interface SoftState {
  readonly leader: NodeId | null;
  readonly role: Role;
}

/**
 * One batch of work for the host. Handle it in order, then call `advance(rd)`:
 * 1. persist `snapshot` (if present: it replaces every stored entry), `hardState` (if present)
 *    and `entries` — appending `entries` replaces any stored entries from `entries[0].index` on
 *    (a conflicting suffix is truncated);
 * 2. send `messages` (every message may depend on step 1, unless `sendBeforePersist`);
 * 3. restore the state machine from `snapshot` (if present), then apply `committed`, in order.
 */
export interface Ready {
  /** Present when leader or role changed since the last `Ready`. */
  readonly softState?: SoftState;
  /** Present when term, vote or commit changed since the last `Ready`; persist it. */
  readonly hardState?: HardState;
  /**
   * A snapshot received from the leader: persist it in place of the whole stored log, then restore
   * the state machine from its `data` before applying `committed` (which follow it).
   */
  readonly snapshot?: Snapshot;
  /** Entries to persist, consecutive; they replace stored entries from `entries[0].index` on. */
  readonly entries: readonly Entry[];
  /** Committed entries to apply, consecutive, following the last applied one. */
  readonly committed: readonly Entry[];
  /** Messages to send to peers, in order. */
  readonly messages: readonly Message[];
  /**
   * Linearizable reads now confirmed: serve each once entries up to its `index` are applied
   * (those in this Ready's `committed` included).
   */
  readonly readStates: readonly ReadState[];
  /**
   * True when no message depends on this `Ready`'s persistence: a leader's appends and heartbeats
   * may go out while its own write is still being made durable (Raft thesis §10.2.1); its own
   * entries count toward commit only after `advance`.
   */
  readonly sendBeforePersist: boolean;
}

/** A snapshot of a member's state for status pages and tests. */
export interface RaftStatus {
  readonly id: NodeId;
  readonly term: number;
  readonly vote: NodeId | null;
  readonly leader: NodeId | null;
  readonly role: Role;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly lastTerm: number;
  /** The voters (in a joint configuration, the incoming ones; see `config`). */
  readonly voters: readonly NodeId[];
  /** The configuration in effect. */
  readonly config: ConfState;
  /** The compaction point: entries up to it live only in the latest snapshot. */
  readonly snapshotIndex: number;
  /** Leader only: each member's matched index (voters and learners). */
  readonly matched?: Readonly<Record<NodeId, number>>;
  readonly counters: Readonly<RaftCounters>;
}

/** A Raft member driven by its host: tick, step, propose, then ready/advance. */
export class RaftNode {
  private readonly raft: Raft;
  private previousSoft: SoftState;
  private previousHard: HardState;
  /** The `Ready` handed out and not yet advanced, if any. */
  private pending: Ready | null = null;
  /** The log's snapshot-install count when `pending` was handed out. */
  private pendingRestores = 0;
  /** The last committed index handed to the host for applying. */
  private applying: number;

  /**
   * Creates a member. `config` is validated once, here (throws `ConfigError`); `restored` is what
   * the host persisted before a restart.
   */
  constructor(config: RaftConfigInput | RaftConfig, restored?: RestoredState) {
    this.raft = new Raft(resolveConfig(config), restored);
    this.previousSoft = this.softState();
    this.previousHard = this.raft.hardState();
    this.applying = this.raft.log.applied;
  }

  /** Advances logical time by one tick; call it every `tickMs` of the host's monotonic clock. */
  tick(): void {
    this.raft.tick();
  }

  /** Hands the member a message from a peer. Bad messages are counted and ignored. */
  step(message: Message): void {
    this.raft.step(message);
  }

  /**
   * Proposes `data` for the log. Returns where it will sit if committed.
   * @throws NotLeaderError with `leaderHint` when this member does not lead.
   * @throws ProposalDroppedError when a limit or a leadership transfer prevents it.
   */
  propose(data: Uint8Array): { index: number; term: number } {
    return this.raft.propose(data);
  }

  /**
   * Hands leadership to `to`. Proposals are dropped with a typed error until it completes or is
   * abandoned after one election timeout.
   * @throws NotLeaderError, InvalidRequestError
   */
  transferLeadership(to: NodeId): void {
    this.raft.transferLeadership(to);
  }

  /**
   * Requests a linearizable read identified by `requestId`; the answer arrives as a `ReadState`
   * in a later `Ready`. See `Raft.readIndex` for how it is confirmed.
   * @throws NotLeaderError, ProposalDroppedError
   */
  readIndex(requestId: string): void {
    this.raft.readIndex(requestId);
  }

  /**
   * Proposes a membership change: adding voters or learners, promoting learners, removing
   * members. A change of voters goes through joint consensus (C_old,new, then C_new, which the
   * leader appends by itself); only one change may be in progress at a time.
   * @throws NotLeaderError, ConfChangeError (with a `reason`), ProposalDroppedError
   */
  proposeConfChange(ops: ConfChangeOp | readonly ConfChangeOp[]): { index: number; term: number } {
    return this.raft.proposeConfChange(Array.isArray(ops) ? ops : [ops as ConfChangeOp]);
  }

  /**
   * Compacts the log: `data` is the state machine's state after applying entries up to `index`
   * (at most `status().applied`). Returns the snapshot, for the host to persist; once it is
   * durable the host may delete stored entries up to `index`. Followers that need compacted
   * entries are sent this snapshot in chunks of `snapshotChunkBytes`. Returns `null` when there is
   * nothing to do: the log is already compacted at or past `index` (a snapshot from the leader
   * overtook it), or this member joined after `index` and does not know the configuration there.
   * @throws InvalidRequestError when `index` is not applied yet.
   */
  compact(index: number, data: Uint8Array): Snapshot | null {
    return this.raft.compact(index, data);
  }

  /** Campaigns now, as if the election timer had expired (with pre-vote when enabled). */
  campaign(): void {
    this.raft.campaign();
  }

  /** Whether `ready()` has anything for the host. */
  hasReady(): boolean {
    if (this.pending !== null) return false;
    this.raft.flushAppends();
    const soft = this.softState();
    if (soft.leader !== this.previousSoft.leader || soft.role !== this.previousSoft.role) return true;
    if (!sameHardState(this.raft.hardState(), this.previousHard)) return true;
    if (this.raft.outbox.length > 0 || this.raft.readStates.length > 0) return true;
    if (this.raft.snapshotToInstall !== null) return true;
    if (this.raft.log.hasUnstable()) return true;
    return this.raft.log.committed > this.applying;
  }

  /** Collects the next batch of work. Call `advance(rd)` when it is done, before the next `ready()`. */
  ready(): Ready {
    assert(this.pending === null, "advance() the previous Ready before asking for another");
    this.raft.flushAppends();
    const soft = this.softState();
    const hard = this.raft.hardState();
    const softChanged =
      soft.leader !== this.previousSoft.leader || soft.role !== this.previousSoft.role;
    const hardChanged = !sameHardState(hard, this.previousHard);
    const snapshot = this.raft.snapshotToInstall;
    this.raft.snapshotToInstall = null;
    // Entries up to an installed snapshot are applied by installing it.
    if (snapshot !== null) this.applying = Math.max(this.applying, snapshot.index);
    const committed = this.raft.log.committedAfter(this.applying, this.raft.config.applyBytesMax);
    const messages = this.raft.outbox;
    this.raft.outbox = [];
    const readStates = this.raft.readStates;
    this.raft.readStates = [];
    const ready: Ready = {
      entries: this.raft.log.unstableEntries(),
      committed,
      messages,
      readStates,
      sendBeforePersist: this.canSendBeforePersist(hard, messages),
    };
    // Optional fields are set only when present, so that `"hardState" in rd` means "persist it".
    if (softChanged) (ready as { softState?: SoftState }).softState = soft;
    if (snapshot !== null) (ready as { snapshot?: Snapshot }).snapshot = snapshot;
    if (hardChanged) (ready as { hardState?: HardState }).hardState = hard;
    this.previousSoft = soft;
    this.previousHard = hard;
    const lastCommitted = committed[committed.length - 1];
    if (lastCommitted !== undefined) this.applying = lastCommitted.index;
    this.pending = ready;
    this.pendingRestores = this.raft.log.restores;
    return ready;
  }

  /** Acknowledges that `rd` was persisted, sent and applied. */
  advance(rd: Ready): void {
    assert(this.pending === rd, "advance() takes the Ready last returned by ready()");
    this.pending = null;
    if (rd.snapshot !== undefined) this.raft.installed(rd.snapshot);
    const lastEntry = rd.entries[rd.entries.length - 1];
    // A snapshot installed since this Ready was handed out replaces these entries in storage (the
    // next Ready persists it): the same entries appended again must be persisted again.
    const superseded = this.raft.log.restores !== this.pendingRestores;
    if (lastEntry !== undefined && !superseded) this.raft.persisted(lastEntry.index, lastEntry.term);
    this.raft.applied(rd.committed);
  }

  /** The member's id. */
  get id(): NodeId {
    return this.raft.id;
  }

  /** This member's role; cheaper than `status()` on a hot path. */
  get role(): Role {
    return this.raft.role;
  }

  /** The member this one believes leads, or `null`; cheaper than `status()`. */
  get leader(): NodeId | null {
    return this.raft.lead;
  }

  /** The highest index the host acknowledged applying; cheaper than `status()`. */
  get appliedIndex(): number {
    return this.raft.log.applied;
  }

  /** A snapshot of this member's state. */
  status(): RaftStatus {
    const raft = this.raft;
    let matched: Record<NodeId, number> | undefined;
    if (raft.role === "leader") {
      matched = {};
      for (const id of confMembers(raft.conf)) matched[id] = raft.progressFor(id)?.match ?? 0;
    }
    return {
      id: raft.id,
      term: raft.term,
      vote: raft.vote,
      leader: raft.lead,
      role: raft.role,
      commit: raft.log.committed,
      applied: raft.log.applied,
      lastIndex: raft.log.lastIndex(),
      lastTerm: raft.log.lastTerm(),
      voters: raft.conf.voters,
      config: raft.conf,
      snapshotIndex: raft.log.snapshotIndex(),
      ...(matched !== undefined ? { matched } : {}),
      counters: { ...raft.counters },
    };
  }

  private softState(): SoftState {
    return { leader: this.raft.lead, role: this.raft.role };
  }

  private canSendBeforePersist(hard: HardState, messages: readonly Message[]): boolean {
    if (this.raft.role !== "leader") return false;
    // A term or vote not yet durable must never be acted on by peers.
    if (hard.term !== this.previousHard.term || hard.vote !== this.previousHard.vote) return false;
    const term = this.raft.term;
    for (const m of messages) {
      if (m.term !== term) return false;
      if (m.type !== "append" && m.type !== "heartbeat" && m.type !== "timeoutNow" && m.type !== "snapshot") {
        return false;
      }
    }
    return true;
  }
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
