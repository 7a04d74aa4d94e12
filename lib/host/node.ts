/**
 * `createNode`: the imperative shell around the pure Raft core. It ticks the core on its clock,
 * runs the Ready loop — persist, send, apply, advance — one Ready at a time (so persists never
 * overlap, and everything proposed while one fsync runs goes into the next: group commit), settles
 * proposal and read promises, forwards followers' proposals to the leader, takes snapshots, and
 * exports metrics.
 *
 * It reaches time, the network and the disk only through its ports (`Clock`, `Transport`,
 * `Storage`): production passes the Node clock and real adapters, the simulator its own, and the
 * same code runs in both.
 *
 * ```ts
 * const node = await createNode({ id: "n1", members, transport, storage, stateMachine, clock, random });
 * const result = await node.propose(command);   // resolves once applied, with apply()'s result
 * const value = await node.read(() => store.get("k")); // linearizable
 * await node.close();                            // hands leadership over first
 * ```
 */
import { CodecError, ClosedError, ConfigError, type DropReason, NotLeaderError, OrreryError, ProposalDroppedError, TimeoutError } from "../errors.ts";
import { silentLogger, type Logger } from "../logger.ts";
import type { Cancel, Clock } from "../ports/clock.ts";
import type { Storage } from "../ports/storage.ts";
import type { Transport } from "../ports/transport.ts";
import { isJoint, type ConfChangeOp } from "../raft/conf.ts";
import type { Entry, Message, NodeId, Snapshot } from "../raft/messages.ts";
import { RaftNode, type Ready, type RaftStatus } from "../raft/raw-node.ts";
import {
  ENTRY_TAG,
  decodeHostPayload,
  decodeHostRecord,
  decodeHostSnapshot,
  encodeHostPayload,
  encodeHostSnapshot,
  hostEntry,
  userEntry,
  type HostPayload,
  type HostRecord,
} from "./envelope.ts";
import { NodeMetrics } from "./node-metrics.ts";
import { isWorkerPeer } from "./worker-protocol.ts";
import {
  NODE_DEFAULTS,
  resolveNodeOptions,
  type NodeObserver,
  type NodeOptions,
  type ResolvedNodeOptions,
  type StateMachine,
} from "./options.ts";
import { DeadlineQueue, ReadsByIndex, type PendingProposal, type PendingRead, type Settle } from "./pending.ts";

/** Results of recently applied entries a follower keeps for forwarded proposals answered late. */
export const RECENT_RESULTS_MAX = 4096;

/** Ticks one timer firing may deliver after a stall. */
export const TICKS_PER_TIMER_MAX = 100;

/**
 * How long a follower waits before it forwards again a proposal the leader refused (it was not the
 * leader, or it was handing leadership over), unless it learns of a new leader sooner (ms).
 */
export const FORWARD_RETRY_MS = 20;

/** What {@link OrreryNode.status} reports: the core's status and the host's. */
export interface NodeStatus extends RaftStatus {
  /** The transport's listening address. */
  readonly address: string | null;
  /** The believed leader's address, when known. */
  readonly leaderAddress: string | null;
  /** Proposals (own and forwarded) awaiting their outcome. */
  readonly pendingProposals: number;
  /** Reads awaiting their outcome. */
  readonly pendingReads: number;
  /** Known member addresses by id. */
  readonly peers: Readonly<Record<NodeId, string>>;
  /** Set when the node stopped because of an error (a storage failure, a broken invariant). */
  readonly failure: string | null;
  readonly closed: boolean;
}

/** What {@link OrreryNode.onLeadershipChange} reports. */
export type LeadershipListener = (change: {
  readonly leader: NodeId | null;
  readonly role: RaftStatus["role"];
  readonly term: number;
}) => void;

/** A running member. Create with {@link createNode}. */
export interface OrreryNode<Result = unknown> {
  readonly id: NodeId;
  /**
   * Proposes `command`; resolves with the state machine's result once it is applied on this member.
   * On a follower it is forwarded to the leader (unless `forwardProposals` is off); with no leader
   * known it waits for one, and a forward the leader refuses because it no longer leads (or is
   * handing leadership over) is sent again to the next leader, until the deadline. A command may be applied more than once if the network
   * duplicates a forward: make commands idempotent (e.g. with client sessions).
   * @throws NotLeaderError (`leaderHint`, `leaderAddress`) when this member cannot take or forward it;
   * ProposalDroppedError when refused by a limit or lost to a leader change (never applied);
   * TimeoutError when the outcome is unknown after `timeoutMs`; ClosedError after `close()`.
   */
  propose(command: Uint8Array, options?: { readonly timeoutMs?: number }): Promise<Result>;
  /**
   * A linearizable read: resolves once this member's state machine reflects every write committed
   * before the call (ReadIndex), with `query()`'s value. Works on followers too; a read the old
   * leader never confirmed is asked of the next one.
   * @throws NotLeaderError, ProposalDroppedError, TimeoutError, ClosedError
   */
  read<T>(query: () => T, options?: { readonly timeoutMs?: number }): Promise<T>;
  /**
   * Adds a member (a voter, or a learner with `{ learner: true }`) that was started with
   * `join: true`, after recording its address in the log. Leader only. Resolves once the
   * configuration that includes it is applied here.
   * @throws NotLeaderError, ConfChangeError, TimeoutError
   */
  addMember(id: NodeId, address: string, options?: { readonly learner?: boolean }): Promise<void>;
  /** Promotes a learner to voter. Leader only. @throws NotLeaderError, ConfChangeError */
  promoteMember(id: NodeId): Promise<void>;
  /** Removes a voter or learner. Leader only. @throws NotLeaderError, ConfChangeError */
  removeMember(id: NodeId): Promise<void>;
  /** Records a member's new address in the log. @throws NotLeaderError */
  setMemberAddress(id: NodeId, address: string): Promise<void>;
  /**
   * Changes the membership by several operations at once, by joint consensus (the old voters and
   * the new both decide until the change completes; a single operation may apply directly). A
   * member added this way must have its address recorded first (`setMemberAddress`). Leader only.
   * Resolves once the final configuration is applied here.
   * @throws NotLeaderError, ConfChangeError, TimeoutError
   */
  changeMembership(ops: readonly ConfChangeOp[]): Promise<void>;
  /**
   * Hands leadership to `to` and resolves once this member no longer leads.
   * @throws NotLeaderError, InvalidRequestError, TimeoutError
   */
  transferLeadership(to: NodeId): Promise<void>;
  /** Resolves with the leader's id once one is known (at once if one is). @throws TimeoutError */
  waitForLeader(timeoutMs?: number): Promise<NodeId>;
  /**
   * Calls `listener` whenever this member's view of the leader or its own role changes (after the
   * Ready that reported it was persisted). Returns a function that unsubscribes. A listener must
   * not throw; one that does is logged and removed.
   */
  onLeadershipChange(listener: LeadershipListener): () => void;
  /** The member's state. */
  status(): NodeStatus;
  /**
   * Whether this member leads now, and the leader it knows of (its id and address, `null` when it
   * knows none): what `status()` says of leadership, without building the rest of it.
   */
  leadership(): { readonly leading: boolean; readonly leader: NodeId | null; readonly leaderAddress: string | null };
  /** Prometheus text exposition of the member's metrics. */
  metrics(): string;
  /**
   * Stops the member: a leader first hands leadership to the most caught-up voter (up to
   * `closeTransferMs`), then the timer stops, the Ready in progress completes, pending operations
   * reject with ClosedError, and the transport and storage close. Idempotent.
   */
  close(): Promise<void>;
}

/**
 * Starts a member: loads `storage`, restores the state machine from the latest snapshot, starts the
 * transport and the tick timer. Committed entries after the snapshot are applied again.
 * @throws ConfigError for bad options; StorageError when the storage cannot be loaded.
 */
export async function createNode<Result = unknown>(options: NodeOptions<Result>): Promise<OrreryNode<Result>> {
  const resolved = resolveNodeOptions(options as NodeOptions<unknown>);
  const restored = await options.storage.load();
  const voters = options.join ? [] : Object.keys(options.members).sort();
  const raft = new RaftNode(
    {
      electionTicks: NODE_DEFAULTS.electionTicks,
      heartbeatTicks: NODE_DEFAULTS.heartbeatTicks,
      ...options.raft,
      id: options.id,
      voters,
      random: options.random as () => number,
    },
    restored,
  );
  const node = new Node<Result>(options, resolved, raft);
  if (restored.snapshot !== undefined) node.restoreFrom(restored.snapshot);
  await node.start();
  return node;
}

/** A proposal a follower forwarded to the leader, awaiting the leader's answer or a new leader. */
interface Forward<R> extends Settle<R> {
  readonly command: Uint8Array;
  readonly deadline: number;
  readonly timeoutMs: number;
  /** The request id of the attempt in flight; answers to earlier attempts are ignored. */
  attempt: number;
  /** Refused by a member that did not (or no longer) lead: sent again at `retryAt` or to a new leader. */
  held: boolean;
  retryAt: number;
}

/** The member. Exported for the mutation tests, which patch its rules; use {@link createNode}. */
export class Node<Result> implements OrreryNode<Result> {
  readonly id: NodeId;
  private readonly transport: Transport;
  private readonly storage: Storage;
  private readonly machine: StateMachine<Result>;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly observer: NodeObserver | null;
  private readonly peers = new Map<NodeId, string>();
  private readonly metricsOf: NodeMetrics;

  private ticker: Cancel | null = null;
  private lastTickAt = 0;
  private tickScheduled = false;
  private loopScheduled = false;
  private looping = false;
  private idleWaiters: (() => void)[] = [];
  private leaderWaiters: (Settle<NodeId> & { cancel: Cancel })[] = [];
  private readonly untilWaits = new Set<{ cancel: Cancel; reject: (error: Error) => void }>();
  private leadershipListeners: LeadershipListener[] = [];
  private failure: Error | null = null;
  private closing: Promise<void> | null = null;
  private closed = false;

  private readonly proposals = new Map<number, PendingProposal<Result>>();
  private readonly proposalDeadlines = new DeadlineQueue<[index: number, term: number]>();
  private nextForwardId = 1;
  private nextAttemptId = 1;
  private readonly forwards = new Map<number, Forward<Result>>();
  /** Attempt request id -> forward id. */
  private readonly attempts = new Map<number, number>();
  private readonly forwardDeadlines = new DeadlineQueue<number>();
  private heldForwards = 0;
  /**
   * Results of the last {@link RECENT_RESULTS_MAX} entries applied, by index modulo the size, for
   * forwarded proposals whose answer arrives after their entry was applied here.
   */
  private readonly recentResults: ({ index: number; term: number; result: Result } | undefined)[] = [];
  private remembering = false;
  private nextReadId = 1;
  private readonly reads = new Map<string, PendingRead>();
  private readonly readDeadlines = new DeadlineQueue<string>();
  private readonly readsWaiting = new ReadsByIndex();
  private confWaits: { index: number; settle: Settle<void>; deadline: number }[] = [];
  private lastSnapshotIndex: number;
  private knownLeader: NodeId | null = null;
  private readonly onWorkerPayload: ((from: NodeId, payload: Uint8Array) => void) | null;

  constructor(
    options: NodeOptions<Result>,
    private readonly config: ResolvedNodeOptions,
    private readonly raft: RaftNode,
  ) {
    this.id = options.id;
    this.transport = options.transport;
    this.storage = options.storage;
    this.machine = options.stateMachine;
    this.logger = options.logger ?? silentLogger;
    if (options.clock === undefined) throw new ConfigError("clock", "is required");
    this.clock = options.clock;
    this.observer = options.observer ?? null;
    this.onWorkerPayload = options.onWorkerPayload ?? null;
    this.metricsOf = new NodeMetrics(options.id);
    for (const id of Object.keys(options.members).sort()) this.peers.set(id, options.members[id] as string);
    this.lastSnapshotIndex = raft.status().snapshotIndex;
  }

  /** Restores the state machine and the address book from a stored snapshot (at start). */
  restoreFrom(snapshot: Snapshot): void {
    const { peers, user } = decodeHostSnapshot(snapshot.data);
    for (const [id, address] of peers) if (!this.peers.has(id)) this.peers.set(id, address);
    this.machine.restore(user);
  }

  async start(): Promise<void> {
    for (const [id, address] of this.peers) if (id !== this.id) this.transport.setPeer(id, address);
    await this.transport.start({
      onMessage: (message) => this.onMessage(message),
      onPayload: (from, payload) => this.onPayload(from, payload),
    });
    this.lastTickAt = this.clock.now();
    this.armTicker();
    this.logger.info("member started", { node: this.id, address: this.transport.address(), ...this.brief() });
    this.schedule();
  }

  // ---------------------------------------------------------------------------------------------
  // The public operations.

  propose(command: Uint8Array, options: { readonly timeoutMs?: number } = {}): Promise<Result> {
    const refusal = this.refuseWork("propose");
    if (refusal !== null) return Promise.reject(refusal);
    if (!(command instanceof Uint8Array)) return Promise.reject(new TypeError("a command is a Uint8Array"));
    if (this.proposals.size + this.forwards.size >= this.config.pendingProposalsMax) {
      return Promise.reject(this.dropped("pending-proposals-max", `${this.config.pendingProposalsMax} proposals pending`));
    }
    const timeoutMs = options.timeoutMs ?? this.config.proposalTimeoutMs;
    if (this.raft.role !== "leader") return this.forward(command, this.raft.leader, timeoutMs);
    return this.proposeHere(userEntry(command), timeoutMs);
  }

  read<T>(query: () => T, options: { readonly timeoutMs?: number } = {}): Promise<T> {
    const refusal = this.refuseWork("read");
    if (refusal !== null) return Promise.reject(refusal);
    if (this.reads.size >= this.config.pendingReadsMax) {
      return Promise.reject(this.dropped("read-index-pending-max", `${this.config.pendingReadsMax} reads pending`));
    }
    const id = `r${this.nextReadId++}`;
    const timeoutMs = options.timeoutMs ?? this.config.readTimeoutMs;
    return new Promise<void>((resolve, reject) => {
      try {
        this.raft.readIndex(id);
      } catch (error) {
        reject(this.withAddress(error));
        return;
      }
      this.reads.set(id, { resolve, reject, index: null, timeoutMs });
      this.readDeadlines.push(id, this.clock.now() + timeoutMs);
      this.metricsOf.reads.inc();
      this.schedule();
    }).then(query);
  }

  async addMember(id: NodeId, address: string, options: { readonly learner?: boolean } = {}): Promise<void> {
    await this.setMemberAddress(id, address);
    await this.changeMembership([{ kind: options.learner === true ? "addLearner" : "addVoter", id }]);
  }

  async promoteMember(id: NodeId): Promise<void> {
    await this.changeMembership([{ kind: "addVoter", id }]);
  }

  async removeMember(id: NodeId): Promise<void> {
    await this.changeMembership([{ kind: "remove", id }]);
  }

  async setMemberAddress(id: NodeId, address: string): Promise<void> {
    const refusal = this.refuseWork("setMemberAddress");
    if (refusal !== null) throw refusal;
    this.requireLeader();
    await this.proposeHere(hostEntry({ kind: "peer", id, address }), this.config.proposalTimeoutMs);
  }

  async transferLeadership(to: NodeId): Promise<void> {
    const refusal = this.refuseWork("transferLeadership");
    if (refusal !== null) throw refusal;
    try {
      this.raft.transferLeadership(to);
    } catch (error) {
      throw this.withAddress(error);
    }
    this.schedule();
    await this.until(() => this.raft.status().role !== "leader", this.config.closeTransferMs, "leadership transfer");
  }

  waitForLeader(timeoutMs: number = this.config.readTimeoutMs): Promise<NodeId> {
    const leader = this.raft.status().leader;
    if (leader !== null) return Promise.resolve(leader);
    const refusal = this.refuseWork("waitForLeader");
    if (refusal !== null) return Promise.reject(refusal);
    return new Promise<NodeId>((resolve, reject) => {
      const waiter = {
        resolve: (id: NodeId) => {
          waiter.cancel();
          resolve(id);
        },
        reject: (error: Error) => {
          waiter.cancel();
          reject(error);
        },
        cancel: (() => {}) as Cancel,
      };
      waiter.cancel = this.clock.after(timeoutMs, () => {
        if (!this.leaderWaiters.includes(waiter)) return;
        this.leaderWaiters = this.leaderWaiters.filter((w) => w !== waiter);
        reject(new TimeoutError("waiting for a leader", timeoutMs));
      });
      this.leaderWaiters.push(waiter);
    });
  }

  onLeadershipChange(listener: LeadershipListener): () => void {
    this.leadershipListeners.push(listener);
    return () => {
      this.leadershipListeners = this.leadershipListeners.filter((l) => l !== listener);
    };
  }

  leadership(): { readonly leading: boolean; readonly leader: NodeId | null; readonly leaderAddress: string | null } {
    const leader = this.raft.leader;
    return { leading: this.raft.role === "leader", leader, leaderAddress: this.addressOf(leader) };
  }

  status(): NodeStatus {
    const status = this.raft.status();
    return {
      ...status,
      address: this.transport.address(),
      leaderAddress: status.leader === null ? null : (this.peers.get(status.leader) ?? null),
      pendingProposals: this.proposals.size + this.forwards.size,
      pendingReads: this.reads.size,
      peers: Object.fromEntries(this.peers),
      failure: this.failure === null ? null : this.failure.message,
      closed: this.closed,
    };
  }

  metrics(): string {
    return this.metricsOf.render(this.raft.status(), this.transport.stats(), {
      proposals: this.proposals.size + this.forwards.size,
      reads: this.reads.size,
    });
  }

  close(): Promise<void> {
    if (this.closing === null) this.closing = this.shutdown();
    return this.closing;
  }

  // ---------------------------------------------------------------------------------------------
  // Proposals: local, forwarded, and their outcomes.

  private proposeHere(data: Uint8Array, timeoutMs: number): Promise<Result> {
    let position: { index: number; term: number };
    try {
      position = this.raft.propose(data);
    } catch (error) {
      return Promise.reject(this.withAddress(error));
    }
    this.metricsOf.proposals.inc();
    this.schedule();
    return this.awaitPosition(position.index, position.term, timeoutMs, this.clock.now() + timeoutMs);
  }

  /** A promise settled when the entry at `index` is applied (or found to hold another term). */
  private awaitPosition(index: number, term: number, timeoutMs: number, deadline: number): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      const earlier = this.proposals.get(index);
      // A new leader reusing an index means the entry once there was truncated from this log.
      if (earlier !== undefined) earlier.reject(this.dropped("leader-change", `entry ${index} was replaced`));
      this.proposals.set(index, { term, resolve, reject, timeoutMs });
      this.proposalDeadlines.push([index, term], deadline);
    });
  }

  /**
   * Sends a follower's proposal to the leader. With no leader known (an election, a handover in
   * progress), or none reachable now, the proposal waits for one until its deadline, as etcd's
   * proposals wait for a leader.
   */
  private forward(command: Uint8Array, leader: NodeId | null, timeoutMs: number): Promise<Result> {
    if (!this.config.forwardProposals) return Promise.reject(new NotLeaderError(leader, this.addressOf(leader)));
    const id = this.nextForwardId++;
    return new Promise<Result>((resolve, reject) => {
      const forward: Forward<Result> = {
        resolve,
        reject,
        command,
        timeoutMs,
        deadline: this.clock.now() + timeoutMs,
        attempt: 0,
        held: false,
        retryAt: 0,
      };
      this.forwards.set(id, forward);
      this.forwardDeadlines.push(id, forward.deadline);
      this.metricsOf.forwarded.inc();
      if (leader === null || leader === this.id || !this.sendForward(id, forward, leader)) this.holdForward(forward);
    });
  }

  /** Sends (or sends again) forward `id` to `leader` under a new attempt id. */
  private sendForward(id: number, forward: Forward<Result>, leader: NodeId): boolean {
    this.attempts.delete(forward.attempt);
    const requestId = this.nextAttemptId++;
    forward.attempt = requestId;
    this.attempts.set(requestId, id);
    return this.transport.sendPayload(leader, encodeHostPayload({ kind: "forward", requestId, command: forward.command }));
  }

  private forgetForward(id: number, forward: Forward<Result>): void {
    this.forwards.delete(id);
    this.attempts.delete(forward.attempt);
    if (forward.held) this.heldForwards -= 1;
  }

  private onForwardAnswer(payload: Exclude<HostPayload, { kind: "forward" }>): void {
    const id = this.attempts.get(payload.requestId);
    const forward = id === undefined ? undefined : this.forwards.get(id);
    if (id === undefined || forward === undefined || forward.held) return; // timed out, or an older attempt
    if (payload.kind === "refused") {
      if (this.refusalMeansRetry(payload)) {
        this.holdForward(forward);
        return;
      }
      this.forgetForward(id, forward);
      forward.reject(remoteError(payload.code, payload.reason, payload.leaderHint, this.addressOf(payload.leaderHint)));
      return;
    }
    this.forgetForward(id, forward);
    this.onForwarded(forward, payload.index, payload.term);
  }

  /** The leader appended a forwarded proposal at (`index`, `term`): settle once it is applied here. */
  private onForwarded(forward: Forward<Result>, index: number, term: number): void {
    if (index > this.raft.appliedIndex) {
      this.awaitPosition(index, term, forward.timeoutMs, forward.deadline).then(forward.resolve, forward.reject);
      return;
    }
    const slot = this.recentResults[index % RECENT_RESULTS_MAX];
    const recent = slot !== undefined && slot.index === index ? slot : undefined;
    if (recent !== undefined && recent.term === term) forward.resolve(recent.result);
    else if (recent !== undefined) forward.reject(this.dropped("leader-change", `entry ${index} was replaced`));
    else forward.reject(new TimeoutError(`forwarded proposal (answered after entry ${index} was applied)`, forward.timeoutMs));
  }

  /**
   * A refusal from a member that did not lead, or was handing leadership over (a graceful close):
   * nothing was appended, so the proposal may be sent again to the next leader.
   */
  private refusalMeansRetry(payload: Extract<HostPayload, { kind: "refused" }>): boolean {
    if (!this.config.forwardProposals) return false;
    return payload.code === "ORRERY_NOT_LEADER" || payload.code === "ORRERY_CLOSED" || payload.reason === "leadership-transfer";
  }

  private holdForward(forward: Forward<Result>): void {
    forward.held = true;
    forward.retryAt = this.clock.now() + FORWARD_RETRY_MS;
    this.heldForwards += 1;
  }

  /** Sends held forwards again: to a new leader at once (`now` = null), or once their retry time came. */
  private retryHeldForwards(now: number | null): void {
    if (this.heldForwards === 0) return;
    const leader = this.raft.leader;
    if (leader === null) return;
    for (const [id, forward] of this.forwards) {
      if (!forward.held || (now !== null && forward.retryAt > now)) continue;
      forward.held = false;
      this.heldForwards -= 1;
      if (leader === this.id) {
        // This member leads now: propose here, settling the forward with the outcome.
        this.forwards.delete(id);
        this.attempts.delete(forward.attempt);
        const remaining = forward.deadline - this.clock.now();
        this.proposeHere(userEntry(forward.command), Math.max(1, remaining)).then(forward.resolve, forward.reject);
        continue;
      }
      if (!this.sendForward(id, forward, leader)) this.holdForward(forward);
    }
  }

  /** The leader's side of forwarding: propose on the follower's behalf and say where, or why not. */
  private onForwardRequest(from: NodeId, requestId: number, command: Uint8Array): void {
    let answer: HostPayload;
    try {
      const refusal = this.refuseWork("forward");
      if (refusal !== null) throw ClosedError.is(refusal) ? refusal : new NotLeaderError(null);
      const { index, term } = this.raft.propose(userEntry(command));
      this.metricsOf.proposals.inc();
      answer = { kind: "forwarded", requestId, index, term };
      this.schedule();
    } catch (error) {
      if (!OrreryError.isOrreryError(error)) throw error;
      const hint = NotLeaderError.is(error) ? error.leaderHint : null;
      const reason = ProposalDroppedError.is(error) ? error.reason : "";
      answer = { kind: "refused", requestId, code: error.code, reason, leaderHint: hint };
    }
    this.transport.sendPayload(from, encodeHostPayload(answer));
  }

  // ---------------------------------------------------------------------------------------------
  // Membership.

  async changeMembership(ops: readonly ConfChangeOp[]): Promise<void> {
    const refusal = this.refuseWork("membership change");
    if (refusal !== null) throw refusal;
    let index: number;
    try {
      index = this.raft.proposeConfChange(ops).index;
    } catch (error) {
      throw this.withAddress(error);
    }
    this.schedule();
    await new Promise<void>((resolve, reject) => {
      this.confWaits.push({ index, settle: { resolve, reject }, deadline: this.clock.now() + this.config.proposalTimeoutMs });
    });
  }

  private settleConfWaits(status: RaftStatus, now: number): void {
    if (this.confWaits.length === 0) return;
    const joint = isJoint(status.config);
    this.confWaits = this.confWaits.filter((wait) => {
      if (status.applied >= wait.index && !joint) wait.settle.resolve();
      else if (now >= wait.deadline) wait.settle.reject(new TimeoutError("membership change", this.config.proposalTimeoutMs));
      else return true;
      return false;
    });
  }

  private requireLeader(): void {
    const leader = this.raft.leader;
    if (this.raft.role !== "leader") throw new NotLeaderError(leader, this.addressOf(leader));
  }

  // ---------------------------------------------------------------------------------------------
  // Input: messages, payloads, time.

  private onMessage(message: Message): void {
    if (this.closed || this.failure !== null) return;
    if (isWorkerPeer(message.from)) {
      this.logger.warn("dropping a Raft message from a worker", { node: this.id, peer: message.from, type: message.type });
      return;
    }
    this.metricsOf.received(message.type);
    try {
      this.raft.step(message);
    } catch (error) {
      this.fail(error);
      return;
    }
    this.schedule();
  }

  private onPayload(from: NodeId, bytes: Uint8Array): void {
    if (this.closed || this.failure !== null) return;
    if (isWorkerPeer(from)) {
      const deliver = this.onWorkerPayload;
      if (deliver === null) this.logger.debug("dropping a worker's payload: no placement here", { node: this.id, peer: from });
      else deliver(from, bytes);
      return;
    }
    let payload: HostPayload;
    try {
      payload = decodeHostPayload(bytes);
    } catch (error) {
      if (!CodecError.is(error)) throw error;
      this.logger.warn("dropping a malformed payload", { node: this.id, peer: from, error });
      return;
    }
    try {
      if (payload.kind === "forward") this.onForwardRequest(from, payload.requestId, payload.command);
      else this.onForwardAnswer(payload);
    } catch (error) {
      this.fail(error);
    }
  }

  private armTicker(): void {
    this.ticker = this.clock.after(this.config.tickMs, () => {
      this.ticker = null;
      if (this.closed || this.failure !== null) return;
      this.armTicker();
      this.onTimer();
    });
  }

  private onTimer(): void {
    if (this.tickScheduled) return;
    // After a stall (more than one tick is due), ticks are delivered after the I/O already
    // waiting: the messages that queued up meanwhile (followers' acknowledgements among them) are
    // stepped before the lost time is counted, so a busy leader does not count an election
    // timeout without a quorum it has in fact heard from. On time, one tick goes at once.
    if (this.clock.now() - this.lastTickAt < 2 * this.config.tickMs) {
      this.deliverTicks();
      return;
    }
    this.tickScheduled = true;
    this.clock.defer(() => this.deliverTicks());
  }

  private deliverTicks(): void {
    this.tickScheduled = false;
    if (this.closed || this.failure !== null) return;
    const now = this.clock.now();
    const elapsed = Math.floor((now - this.lastTickAt) / this.config.tickMs);
    // After a long stall (a paused process) many ticks are due; beyond a few election timeouts
    // the core behaves the same, so the catch-up is capped.
    const ticks = Math.min(elapsed, TICKS_PER_TIMER_MAX);
    this.lastTickAt = ticks === elapsed ? this.lastTickAt + elapsed * this.config.tickMs : now;
    try {
      for (let i = 0; i < ticks; i += 1) this.raft.tick();
    } catch (error) {
      this.fail(error);
      return;
    }
    this.expire(now);
    this.retryHeldForwards(now);
    this.schedule();
  }

  /** Rejects operations past their deadline, each with its own timeout in the error. */
  private expire(now: number): void {
    for (const [index, term] of this.proposalDeadlines.due(now)) {
      const pending = this.proposals.get(index);
      if (pending === undefined || pending.term !== term) continue;
      this.proposals.delete(index);
      pending.reject(new TimeoutError(`proposal at ${index}`, pending.timeoutMs));
      this.metricsOf.failed("ORRERY_TIMEOUT");
    }
    for (const id of this.forwardDeadlines.due(now)) {
      const forward = this.forwards.get(id);
      if (forward === undefined) continue;
      this.forgetForward(id, forward);
      forward.reject(new TimeoutError("forwarded proposal", forward.timeoutMs));
      this.metricsOf.failed("ORRERY_TIMEOUT");
    }
    for (const id of this.readDeadlines.due(now)) {
      const read = this.reads.get(id);
      if (read === undefined) continue;
      this.reads.delete(id);
      read.reject(new TimeoutError("read", read.timeoutMs));
      this.metricsOf.failed("ORRERY_TIMEOUT");
    }
    if (this.confWaits.length > 0) this.settleConfWaits(this.raft.status(), now);
  }

  // ---------------------------------------------------------------------------------------------
  // The Ready loop.

  /**
   * Runs the Ready loop once the current turn's synchronous work is done: everything stepped,
   * proposed or read in it (a chunk of messages from one connection, a batch of proposals) goes
   * into one Ready, and the loop starts without waiting for another turn of the event loop. While
   * a Ready is being persisted, what arrives meanwhile waits for the next one (group commit).
   */
  private schedule(): void {
    if (this.loopScheduled || this.looping || this.closed || this.failure !== null) return;
    this.loopScheduled = true;
    void Promise.resolve().then(() => this.runLoop());
  }

  private async runLoop(): Promise<void> {
    this.loopScheduled = false;
    this.looping = true;
    try {
      while (this.failure === null && this.raft.hasReady()) {
        const rd = this.raft.ready();
        const early = this.sendsBeforePersist(rd);
        // Awaited only when the storage is still writing: a Ready with nothing to make durable,
        // or a storage that writes at once, costs no turn of the microtask queue.
        const persisting = this.handleReady(rd, early);
        if (persisting !== null) await persisting;
        if (this.failure !== null) break;
        this.afterPersist(rd, early);
        this.raft.advance(rd);
        this.afterAdvance(rd);
        const snapshotting = this.maybeSnapshot();
        if (snapshotting !== null) await snapshotting;
      }
    } catch (error) {
      this.fail(error);
    } finally {
      this.looping = false;
    }
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
    if (this.failure === null && !this.closed && this.raft.hasReady()) this.schedule();
  }

  /**
   * Whether `rd`'s messages may leave before its write is durable. Only when the core says no
   * message depends on it (a leader's appends and heartbeats, Raft thesis §10.2.1): a vote or an
   * acknowledgement sent before its persist could be undone by a crash.
   */
  private sendsBeforePersist(rd: Ready): boolean {
    return rd.sendBeforePersist;
  }

  /**
   * The part of a Ready that needs no durability: messages that may go early, the write started,
   * the snapshot installed and committed entries applied, reads noted. Returns the write in
   * progress, or `null` when there is none to wait for.
   */
  private handleReady(rd: Ready, early: boolean): Promise<void> | null {
    this.observer?.ready?.(rd);
    if (early) this.send(rd.messages);
    const persisting = this.persist(rd);
    // Awaited by the loop; if applying throws first, the failure path must not also see an unhandled rejection.
    persisting?.catch(() => {});
    // Entries in `committed` are already durable on a quorum (the core counts this member's own
    // copy only after `advance`), so they are applied while this Ready's write is in progress:
    // proposals resolve one fsync earlier, and what their callers propose next joins the next batch.
    if (rd.snapshot !== undefined) {
      this.restoreFrom(rd.snapshot);
      this.lastSnapshotIndex = rd.snapshot.index;
      this.logger.info("installed a snapshot from the leader", { node: this.id, index: rd.snapshot.index });
    }
    for (const entry of rd.committed) this.applyEntry(entry);
    this.noteReadStates(rd);
    return persisting;
  }

  /** Once the Ready's write is durable: the rest of its messages, and a change of leadership. */
  private afterPersist(rd: Ready, early: boolean): void {
    this.observer?.persisted?.(rd);
    if (!early) this.send(rd.messages);
    // A new term or vote is durable now: only then is a change of leadership reported.
    if (rd.softState !== undefined) this.onSoftState(rd.softState.leader, rd.softState.role);
  }

  /** Reads the leader confirmed: each is served once its index is applied (see `afterAdvance`). */
  private noteReadStates(rd: Ready): void {
    for (const state of rd.readStates) {
      const read = this.reads.get(state.requestId);
      if (read === undefined || read.index !== null) continue;
      read.index = state.index;
      this.readsWaiting.add(state.index, state.requestId);
    }
  }

  /**
   * Makes the Ready's snapshot, hard state and entries durable (one write and fsync). Returns the
   * write in progress, or `null` when nothing was to be written or the storage wrote it at once.
   */
  private persist(rd: Ready): Promise<void> | null {
    if (rd.snapshot === undefined && rd.hardState === undefined && rd.entries.length === 0) return null;
    const started = this.clock.now();
    const written = this.storage.append({
      ...(rd.snapshot === undefined ? {} : { snapshot: rd.snapshot }),
      ...(rd.hardState === undefined ? {} : { hardState: rd.hardState }),
      entries: rd.entries,
    });
    if (written === undefined) {
      this.metricsOf.persisted(rd.entries.length, (this.clock.now() - started) / 1000);
      return null;
    }
    return written.then(() => this.metricsOf.persisted(rd.entries.length, (this.clock.now() - started) / 1000));
  }

  private afterAdvance(rd: Ready): void {
    if (this.readsWaiting.size > 0) this.serveReads(this.raft.appliedIndex);
    if (rd.committed.length > 0 && this.confWaits.length > 0) this.settleConfWaits(this.raft.status(), this.clock.now());
  }

  private serveReads(applied: number): void {
    for (const id of this.readsWaiting.servable(applied)) {
      const read = this.reads.get(id);
      if (read === undefined) continue;
      this.reads.delete(id);
      read.resolve();
    }
  }

  private send(messages: readonly Message[]): void {
    if (messages.length === 0) return;
    for (const m of messages) this.metricsOf.sent(m.type);
    this.transport.send(messages);
  }

  private applyEntry(entry: Entry): void {
    let result: Result | undefined;
    if (entry.type === "normal" && entry.data.length > 0) {
      const tag = entry.data[0];
      if (tag === ENTRY_TAG.user) result = this.machine.apply(entry.data.subarray(1), entry);
      else if (tag === ENTRY_TAG.host) this.applyHostRecord(entry);
      else this.logger.error("skipping an entry with an unknown tag", { node: this.id, index: entry.index, tag });
    }
    this.metricsOf.applied.inc();
    this.observer?.applied?.(entry);
    if (this.remembering || this.forwards.size > 0) this.remember(entry, result as Result);
    const pending = this.proposals.get(entry.index);
    if (pending === undefined) return;
    this.proposals.delete(entry.index);
    if (pending.term === entry.term) pending.resolve(result as Result);
    else pending.reject(this.dropped("leader-change", `entry ${entry.index} holds term ${entry.term}, not ${pending.term}`));
  }

  private remember(entry: Entry, result: Result): void {
    // Once a follower has forwarded, it keeps remembering: a late answer may name any recent index.
    this.remembering = true;
    this.recentResults[entry.index % RECENT_RESULTS_MAX] = { index: entry.index, term: entry.term, result };
  }

  private applyHostRecord(entry: Entry): void {
    let record: HostRecord;
    try {
      record = decodeHostRecord(entry.data.subarray(1));
    } catch (error) {
      if (!CodecError.is(error)) throw error;
      this.logger.error("skipping a malformed host record", { node: this.id, index: entry.index, error });
      return;
    }
    if (record.kind === "peer") {
      this.peers.set(record.id, record.address);
      if (record.id !== this.id) this.transport.setPeer(record.id, record.address);
    } else {
      this.peers.delete(record.id);
      if (record.id !== this.id) this.transport.removePeer(record.id);
    }
  }

  private onSoftState(leader: NodeId | null, role: RaftStatus["role"]): void {
    this.metricsOf.leaderChanges.inc();
    const term = this.raft.status().term;
    this.logger.info("leadership changed", { node: this.id, leader, role, term });
    for (const listener of this.leadershipListeners) {
      try {
        listener({ leader, role, term });
      } catch (error) {
        this.logger.error("removing a leadership listener that threw", { node: this.id, error });
        this.leadershipListeners = this.leadershipListeners.filter((l) => l !== listener);
      }
    }
    const changed = leader !== this.knownLeader;
    this.knownLeader = leader;
    if (leader === null) return;
    if (changed) {
      this.reaskReads();
      this.retryHeldForwards(null);
    }
    const waiters = this.leaderWaiters;
    this.leaderWaiters = [];
    for (const w of waiters) w.resolve(leader);
  }

  /**
   * Reads the previous leader never confirmed never will be (it dropped them, or the request was
   * lost): ask the new leader. A read index obtained later still covers every write committed
   * before the read was called, so asking again is safe.
   */
  private reaskReads(): void {
    for (const [id, read] of this.reads) {
      if (read.index !== null) continue;
      try {
        this.raft.readIndex(id);
      } catch (error) {
        if (!OrreryError.isOrreryError(error)) throw error;
        return; // no leader to ask after all; the deadline settles them
      }
    }
    this.schedule();
  }

  /** Takes a snapshot once `snapshotEntries` were applied since the last; returns the save in progress, if any. */
  private maybeSnapshot(): Promise<void> | null {
    const applied = this.raft.appliedIndex;
    if (applied - this.lastSnapshotIndex < this.config.snapshotEntries) return null;
    const started = this.clock.now();
    const snapshot = this.raft.compact(applied, encodeHostSnapshot(this.peers, this.machine.snapshot()));
    this.lastSnapshotIndex = applied;
    if (snapshot === null) return null;
    const saved = () => {
      this.metricsOf.snapshots.inc();
      this.observer?.snapshotSaved?.(snapshot.index);
      this.logger.info("took a snapshot", {
        node: this.id,
        index: snapshot.index,
        bytes: snapshot.data.length,
        ms: Math.round(this.clock.now() - started),
      });
    };
    const saving = this.storage.saveSnapshot(snapshot);
    if (saving === undefined) {
      saved();
      return null;
    }
    return saving.then(saved);
  }

  // ---------------------------------------------------------------------------------------------
  // Failure and shutdown.

  /** Stops the member after an error it cannot continue from (storage, broken invariant). */
  private fail(error: unknown): void {
    if (this.failure !== null) return;
    this.failure = error instanceof Error ? error : new Error(String(error));
    this.logger.error("member stopped after a fatal error", { node: this.id, error: this.failure });
    this.observer?.failed?.(this.failure);
    this.stopTimers();
    this.rejectAll(this.failure);
    void Promise.resolve(this.transport.close()).catch(() => {});
  }

  private async shutdown(): Promise<void> {
    if (this.failure === null && this.ticker !== null) await this.handOver();
    this.stopTimers();
    this.closed = true;
    if (this.looping) await new Promise<void>((wake) => this.idleWaiters.push(wake));
    this.rejectAll(new ClosedError("pending operation"));
    await this.transport.close();
    await this.storage.close();
    this.logger.info("member closed", { node: this.id });
  }

  /** A leader hands leadership to the most caught-up other voter before it goes. */
  private async handOver(): Promise<void> {
    const status = this.raft.status();
    if (status.role !== "leader") return;
    const others = status.config.voters.filter((id) => id !== this.id);
    if (others.length === 0 || isJoint(status.config)) return;
    const matched = status.matched ?? {};
    const target = [...others].sort((a, b) => (matched[b] ?? 0) - (matched[a] ?? 0) || (a < b ? -1 : 1))[0] as NodeId;
    try {
      this.raft.transferLeadership(target);
      this.schedule();
      await this.until(() => this.raft.status().role !== "leader", this.config.closeTransferMs, "handover");
      this.logger.info("handed leadership over before closing", { node: this.id, to: target });
    } catch (error) {
      this.logger.warn("closing without a handover", { node: this.id, to: target, error });
    }
  }

  private stopTimers(): void {
    this.ticker?.();
    this.ticker = null;
    for (const wait of this.untilWaits) {
      wait.cancel();
      wait.reject(new ClosedError("waiting"));
    }
    this.untilWaits.clear();
  }

  private rejectAll(error: Error): void {
    for (const p of this.proposals.values()) p.reject(error);
    this.proposals.clear();
    this.proposalDeadlines.clear();
    for (const f of this.forwards.values()) f.reject(error);
    this.forwards.clear();
    this.attempts.clear();
    this.heldForwards = 0;
    this.forwardDeadlines.clear();
    for (const r of this.reads.values()) r.reject(error);
    this.reads.clear();
    this.readDeadlines.clear();
    for (const w of this.confWaits) w.settle.reject(error);
    this.confWaits = [];
    for (const w of this.leaderWaiters) w.reject(error);
    this.leaderWaiters = [];
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers.

  private refuseWork(what: string): Error | null {
    if (this.failure !== null) return this.failure;
    if (this.closed || this.closing !== null) return new ClosedError(what);
    return null;
  }

  private dropped(reason: "pending-proposals-max" | "read-index-pending-max" | "leader-change", detail: string): Error {
    this.metricsOf.failed("ORRERY_DROPPED");
    return new ProposalDroppedError(reason, detail);
  }

  private addressOf(id: NodeId | null): string | null {
    return id === null ? null : (this.peers.get(id) ?? null);
  }

  /** Adds the leader's address to a NotLeaderError from the core. */
  private withAddress(error: unknown): unknown {
    if (NotLeaderError.is(error) && error.leaderAddress === null && error.leaderHint !== null) {
      return new NotLeaderError(error.leaderHint, this.addressOf(error.leaderHint));
    }
    return error;
  }

  private brief(): Record<string, unknown> {
    const s = this.raft.status();
    return { term: s.term, commit: s.commit, applied: s.applied, voters: s.config.voters };
  }

  /**
   * Resolves once `condition()` holds, checking every tick; TimeoutError after `timeoutMs`,
   * ClosedError when the member stops first.
   */
  private until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const started = this.clock.now();
      const wait = { cancel: (() => {}) as Cancel, reject };
      const check = () => {
        this.untilWaits.delete(wait);
        if (condition()) return resolve();
        if (this.clock.now() - started >= timeoutMs) return reject(new TimeoutError(what, timeoutMs));
        wait.cancel = this.clock.after(this.config.tickMs, check);
        this.untilWaits.add(wait);
      };
      check();
    });
  }
}

const DROP_REASONS: readonly DropReason[] = [
  "uncommitted-bytes-max",
  "leadership-transfer",
  "proposal-bytes-max",
  "read-index-pending-max",
  "pending-proposals-max",
  "leader-change",
];

/** Rebuilds the error a leader sent back for a forwarded proposal. */
function remoteError(code: string, reason: string, leaderHint: NodeId | null, leaderAddress: string | null): Error {
  const dropReason = DROP_REASONS.find((r) => r === reason);
  if (code === "ORRERY_DROPPED" && dropReason !== undefined) {
    return new ProposalDroppedError(dropReason, "refused by the leader");
  }
  // Anything else (including codes from a newer peer) means the leader could not take it.
  return new NotLeaderError(leaderHint, leaderAddress);
}
