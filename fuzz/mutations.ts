/**
 * Deliberate bugs for the mutation test: each replaces one rule of the Raft core or of the host (the
 * Ready loop, proposals and reads, the placement leader, the worker agent) by patching a prototype
 * for the length of a callback, then restores it. Neither the core nor the host carries a bug
 * switch; these live here, in test code, so that a test can show the fuzzer notices when a rule is
 * gone. Also the simulator options under which a rule's absence shows.
 */
import { Node } from "../lib/host/node.ts";
import { PlacementLeader } from "../lib/host/placement-leader.ts";
import { Agent } from "../lib/host/worker.ts";
import type { LeaseTracker } from "../lib/placement/leases.ts";
import type { PlacementTable } from "../lib/placement/table.ts";
import type { ResourceKey, WorkerId } from "../lib/placement/types.ts";
import type { Entry } from "../lib/raft/messages.ts";
import type { Ready } from "../lib/raft/raw-node.ts";
import { RaftLog } from "../lib/raft/log.ts";
import { drawOptions, type SimOptions } from "../sim/options.ts";
import type { ConfState, NodeId } from "../lib/raft/messages.ts";
import type { Progress } from "../lib/raft/progress.ts";
import { jointCommittedIndex, voteResult } from "../lib/raft/quorum.ts";
import { Raft } from "../lib/raft/raft.ts";

/** A rule of the core that a mutation removes. */
export interface Mutation {
  /** A short name for messages. */
  readonly name: string;
  /** What the mutated core does wrong, in a sentence. */
  readonly description: string;
  /** Installs the bug; returns a function that restores the original rule. */
  install(): () => void;
}

/** The private members of `Raft` that the commit rule reads, as the replacement sees them. */
interface RaftInternals {
  readonly conf: ConfState;
  readonly term: number;
  readonly log: RaftLog;
  readonly progress: Map<NodeId, Progress>;
  releaseUncommitted(from: number, to: number): void;
  maybeCommit(): boolean;
}

/**
 * Granting a vote without the log up-to-date check (Raft §5.4.1): every log counts as up to date,
 * so a member that lacks committed entries can win an election.
 */
export const voteWithoutUpToDateCheck: Mutation = {
  name: "vote-without-up-to-date-check",
  description: "RaftLog.isUpToDate always answers true",
  install() {
    const prototype = RaftLog.prototype;
    const original = Object.getOwnPropertyDescriptor(prototype, "isUpToDate");
    if (original === undefined) throw new Error("RaftLog.prototype.isUpToDate is missing");
    prototype.isUpToDate = function isUpToDateAlways(_lastIndex: number, _lastTerm: number): boolean {
      return true;
    };
    return () => {
      Object.defineProperty(prototype, "isUpToDate", original);
    };
  },
};

/**
 * Committing by counting replicas of an older term's entry, without the current-term rule (Raft
 * paper Figure 8): a faithful copy of `Raft.maybeCommit` minus `this.log.term(index) !== this.term`.
 */
export const commitWithoutCurrentTermRule: Mutation = {
  name: "commit-without-current-term-rule",
  description: "Raft.maybeCommit commits entries of older terms by counting replicas",
  install() {
    const prototype = Raft.prototype as unknown as RaftInternals;
    const original = Object.getOwnPropertyDescriptor(prototype, "maybeCommit");
    if (original === undefined) throw new Error("Raft.prototype.maybeCommit is missing");
    prototype.maybeCommit = function maybeCommitAnyTerm(this: RaftInternals): boolean {
      const index = jointCommittedIndex(this.conf, (id) => this.progress.get(id)?.match ?? 0);
      if (index <= this.log.committed) return false;
      this.releaseUncommitted(this.log.committed, index);
      this.log.commitTo(index);
      return true;
    };
    return () => {
      Object.defineProperty(prototype, "maybeCommit", original);
    };
  },
};

/** The private members of `Raft` that vote counting reads, as the replacement sees them. */
interface VoteInternals {
  readonly conf: ConfState;
  readonly term: number;
  readonly votes: Map<NodeId, boolean>;
  winElection(kind: "preElection" | "election", transfer: boolean): void;
  becomeFollower(term: number, lead: NodeId | null): void;
  handleVoteResponse(message: { from: NodeId; reject: boolean }, kind: "preElection" | "election"): void;
}

/**
 * Counting votes in a joint configuration by the incoming voters alone: a candidate can win with a
 * majority of C_new that is no majority of C_old, while C_old may still be deciding commits.
 */
export const jointVotesIncomingOnly: Mutation = {
  name: "joint-votes-incoming-only",
  description: "Raft.handleVoteResponse counts only the incoming half of a joint configuration",
  install() {
    const prototype = Raft.prototype as unknown as VoteInternals;
    const original = Object.getOwnPropertyDescriptor(prototype, "handleVoteResponse");
    if (original === undefined) throw new Error("Raft.prototype.handleVoteResponse is missing");
    prototype.handleVoteResponse = function incomingOnly(this: VoteInternals, message, kind): void {
      this.votes.set(message.from, !message.reject);
      const result = voteResult(this.conf.voters, this.votes);
      if (result === "won") this.winElection(kind, false);
      else if (result === "lost") this.becomeFollower(this.term, null);
    };
    return () => {
      Object.defineProperty(prototype, "handleVoteResponse", original);
    };
  },
};

/**
 * Campaigning with a committed configuration entry still unapplied: the member counts votes with a
 * configuration its own log has superseded.
 */
export const campaignWithUnappliedConf: Mutation = {
  name: "campaign-with-unapplied-conf",
  description: "Raft.hasUnappliedConfChanges always answers false",
  install() {
    const prototype = Raft.prototype as unknown as { hasUnappliedConfChanges(): boolean };
    const original = Object.getOwnPropertyDescriptor(prototype, "hasUnappliedConfChanges");
    if (original === undefined) throw new Error("Raft.prototype.hasUnappliedConfChanges is missing");
    prototype.hasUnappliedConfChanges = () => false;
    return () => {
      Object.defineProperty(prototype, "hasUnappliedConfChanges", original);
    };
  },
};

/** Replaces method `name` of `prototype` with `replacement`; returns the function that restores it. */
function patch(prototype: object, name: string, replacement: (...args: never[]) => unknown): () => void {
  const original = Object.getOwnPropertyDescriptor(prototype, name);
  if (original === undefined) throw new Error(`the prototype has no method ${name}`);
  Object.defineProperty(prototype, name, { ...original, value: replacement });
  return () => Object.defineProperty(prototype, name, original);
}

/** The original method `name` of `prototype`, to call from a wrapper. */
function originalOf<F>(prototype: object, name: string): F {
  const value = (Object.getOwnPropertyDescriptor(prototype, name) as PropertyDescriptor | undefined)?.value as F | undefined;
  if (value === undefined) throw new Error(`the prototype has no method ${name}`);
  return value;
}

// --- The host's rules ----------------------------------------------------------------------------

/**
 * The Ready loop sends every Ready's messages before its write is durable, as if each were a
 * leader's append: a follower acknowledges an append, or grants a vote, that a crash can still undo.
 */
export const ackBeforePersist: Mutation = {
  name: "ack-before-persist",
  description: "the Ready loop sends a follower's acknowledgements and votes before its persist completes",
  install() {
    return patch(Node.prototype, "sendsBeforePersist", function always(): boolean {
      return true;
    });
  },
};

/** The members of a `Node` that resolving a proposal reads. */
interface ProposalInternals {
  readonly proposals: Map<number, { readonly term: number; readonly timeoutMs: number; resolve(value: unknown): void; reject(error: Error): void }>;
}

/**
 * A proposal resolves with whatever entry is applied at its index, without checking the entry's
 * term: a proposal whose entry a new leader replaced reports success with another command's result.
 */
export const proposalResolvedByAnyEntry: Mutation = {
  name: "proposal-resolved-by-any-entry",
  description: "a pending proposal resolves when any entry is applied at its index, whatever its term",
  install() {
    const prototype = Node.prototype;
    const applyEntry = originalOf<(this: ProposalInternals, entry: Entry) => void>(prototype, "applyEntry");
    return patch(prototype, "applyEntry", function anyTerm(this: ProposalInternals, entry: Entry) {
      const pending = this.proposals.get(entry.index);
      if (pending !== undefined && pending.term !== entry.term) this.proposals.set(entry.index, { ...pending, term: entry.term });
      applyEntry.call(this, entry);
    });
  },
};

/** The members of a `Node` that serving reads touches. */
interface ReadInternals {
  readonly reads: Map<string, { index: number | null; resolve(): void }>;
}

/**
 * A read resolves as soon as the leader confirms its read index, before this member has applied up
 * to it: a lagging follower answers from a stale state.
 */
export const readBeforeApply: Mutation = {
  name: "read-before-apply",
  description: "a read resolves when its read index is confirmed, before the member applied up to it",
  install() {
    return patch(Node.prototype, "noteReadStates", function serveAtOnce(this: ReadInternals, rd: Ready) {
      for (const state of rd.readStates) {
        const read = this.reads.get(state.requestId);
        if (read === undefined || read.index !== null) continue;
        this.reads.delete(state.requestId);
        read.resolve();
      }
    });
  },
};

/** The members of a `PlacementLeader` its election and renewal rules read. */
interface LeaderInternals {
  readonly tracker: LeaseTracker;
  readonly proposedExpires: Set<WorkerId>;
  readonly proposedHandoffs: Set<string>;
  readonly machine: { readonly table: PlacementTable };
  timer: (() => void) | null;
  now(): number;
  arm(): void;
  requireLeader(): void;
}

/**
 * A newly elected placement leader does not wait `L(1+ρ)` from its election before expiring
 * workers: it acts as if it had been elected that long ago, so a worker whose renewals the previous
 * leader answered is expired at once, while it may still hold its lease.
 */
export const leaderSkipsElectionWait: Mutation = {
  name: "leader-skips-election-wait",
  description: "a new placement leader expires workers without waiting L(1+rho) from its election",
  install() {
    return patch(PlacementLeader.prototype, "onRole", function noWait(this: LeaderInternals, leading: boolean) {
      this.proposedExpires.clear();
      this.proposedHandoffs.clear();
      if (leading && !this.tracker.isLeading()) {
        this.tracker.onElected(this.now() - this.tracker.expiryDelayMs());
        this.arm();
      } else if (!leading) {
        this.tracker.onSteppedDown();
        this.timer?.();
        this.timer = null;
      }
    });
  },
};

/**
 * The placement leader answers a renewal without the quorum round (ReadIndex) that proves it still
 * leads: a leader cut off from the others, already replaced, extends a worker's lease.
 */
export const renewalWithoutReadIndex: Mutation = {
  name: "renewal-without-read-index",
  description: "the placement leader answers renewals without a ReadIndex round",
  install() {
    return patch(PlacementLeader.prototype, "renew", async function noRound(this: LeaderInternals, worker: WorkerId) {
      this.requireLeader();
      const receivedAt = this.now();
      const table = this.machine.table;
      const keys = this.tracker.onRenewalAnswered(worker, receivedAt)
        ? table.keysOf(worker).map((k) => ({ key: k.key, epoch: k.epoch, draining: k.state === "draining" }))
        : [];
      return { keys, member: table.worker(worker) !== undefined };
    });
  },
};

/** The members of an `Agent` its serving rule reads. */
interface AgentInternals {
  readonly serving: Map<ResourceKey, number>;
}

/**
 * A worker serves the keys it acquired without looking at its lease: cut off or paused past its
 * lease, it goes on serving keys the leader has since given to others.
 */
export const workerServesAfterLease: Mutation = {
  name: "worker-serves-after-lease",
  description: "a worker serves its keys without checking that its lease still holds",
  install() {
    return patch(Agent.prototype, "servable", function noLease(this: AgentInternals, key: ResourceKey, epoch: number) {
      return this.serving.get(key) === epoch;
    });
  },
};

/** Runs `body` with `mutation` installed, restoring the original rule afterwards, even on error. */
export async function withMutation<T>(mutation: Mutation, body: () => Promise<T>): Promise<T> {
  const restore = mutation.install();
  try {
    return await body();
  } finally {
    restore();
  }
}

/**
 * A corner of the option space where the current-term commit rule matters. `seed` still draws the
 * network, clocks, disk and the rest; the flow-control limits go below the swarm's (whose failover
 * and liveness bounds assume a leader can keep up with its clients).
 *
 * The rule only makes a difference when a new leader's majority has acknowledged an older term's
 * entries but not yet the leader's own: Figure 8 of the Raft paper. That takes a member that lags
 * far behind (crashes, and eight busy clients to build a backlog), catching up over a round trip
 * per entry (one entry per message, one message in flight), while a bridge partition lets two
 * leaders that cannot hear each other take turns winning its vote, and check-quorum off lets a
 * cut-off leader keep accepting proposals. Lease reads need check-quorum, so a seed that drew them reads by ReadIndex.
 */
export function figureEightOptions(seed: number, safetyTicks: number): SimOptions {
  const drawn = drawOptions(seed, { members: 3, safetyTicks });
  return {
    ...drawn,
    checkQuorum: false,
    reads: drawn.reads === "lease" ? "readIndex" : drawn.reads,
    messageBytesMax: 1,
    inflightMessagesMax: 1,
    partitions: { ...drawn.partitions, enabled: true, kinds: ["bridge"], meanIntervalMs: 1000, durationMsMax: 2000 },
    crashes: { ...drawn.crashes, enabled: true, meanIntervalMs: 2000, downMsMax: 2000 },
    workload: { ...drawn.workload, clients: 8, thinkMs: 5 },
    // Neither matters to the rule; both were added to the swarm after this corner was measured.
    snapshots: { ...drawn.snapshots, enabled: false },
    membership: { ...drawn.membership, enabled: false },
  };
}

/**
 * A corner of the swarm's option space where membership rules matter: frequent membership
 * changes, crashes and partitions that interrupt them, and small compaction thresholds.
 */
export function membershipOptions(seed: number, safetyTicks: number): SimOptions {
  const drawn = drawOptions(seed, { members: 5, safetyTicks });
  return {
    ...drawn,
    membership: { enabled: true, meanIntervalMs: 300 },
    partitions: { ...drawn.partitions, enabled: true, meanIntervalMs: 800, durationMsMax: 1500 },
    crashes: { ...drawn.crashes, enabled: true, meanIntervalMs: 1500, downMsMax: 1500 },
  };
}
