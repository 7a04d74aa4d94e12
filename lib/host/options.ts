/**
 * What `createNode` takes, its defaults, and the one place they are validated.
 */
import { ConfigError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import type { Clock } from "../ports/clock.ts";
import type { Storage } from "../ports/storage.ts";
import type { Transport } from "../ports/transport.ts";
import type { RaftConfigInput } from "../raft/config.ts";
import type { Entry, NodeId } from "../raft/messages.ts";
import type { Ready } from "../raft/raw-node.ts";

/**
 * The replicated state machine a node drives. `apply` must be deterministic: every member applies
 * the same commands in the same order and must reach the same state and results.
 */
export interface StateMachine<Result = unknown> {
  /**
   * Applies one committed command. The return value resolves the `propose()` promise of the member
   * that proposed it (or forwarded it). Must not throw for any command a client can send: validate
   * and return an error *value* instead. A throw is a bug and stops the member.
   */
  apply(command: Uint8Array, position: { readonly index: number; readonly term: number }): Result;
  /** The whole state as bytes, for a snapshot (taken every `snapshotEntries` applied entries). */
  snapshot(): Uint8Array;
  /** Replaces the whole state with bytes `snapshot()` produced (on this or another member). */
  restore(data: Uint8Array): void;
}

/** Raft settings a host may change; the host supplies `id`, `voters` and `random`. */
export type HostRaftOptions = Partial<Omit<RaftConfigInput, "id" | "voters" | "random">>;

/** Options of {@link createNode}. */
export interface NodeOptions<Result = unknown> {
  /** This member's id. */
  readonly id: NodeId;
  /**
   * Every member's transport address (`host:port`) by id, this one included. For a new cluster the
   * ids are its first voters; after a restart the configuration comes from storage and this only
   * tells where members are (members added later announce their address through the log).
   */
  readonly members: Readonly<Record<NodeId, string>>;
  /**
   * Start as a member joining an existing cluster: no voters of its own; it waits until a leader
   * that added it (`addMember`) sends it the log or a snapshot.
   * @defaultValue false
   */
  readonly join?: boolean;
  /** Carries Raft messages and payloads to the other members. The node starts and closes it. */
  readonly transport: Transport;
  /** Where the node persists its log, hard state and snapshots. The node closes it. */
  readonly storage: Storage;
  /** The state machine the log drives. */
  readonly stateMachine: StateMachine<Result>;
  /**
   * Milliseconds per Raft tick, on the monotonic clock.
   * @defaultValue 10
   */
  readonly tickMs?: number;
  /**
   * Raft settings. The host's defaults: `electionTicks` 50 and `heartbeatTicks` 5, i.e. with the
   * default `tickMs` an election timeout of 500–1000 ms and a heartbeat every 50 ms (etcd's are
   * 1000 ms and 100 ms): short enough for a quick failover, long enough that a busy member's event
   * loop stalling for a few hundred milliseconds does not depose a healthy leader.
   */
  readonly raft?: HostRaftOptions;
  /**
   * A follower sends proposals to the leader instead of refusing them with `NotLeaderError`.
   * @defaultValue true
   */
  readonly forwardProposals?: boolean;
  /**
   * How long `propose()` waits for its entry to be applied before rejecting with `TimeoutError`
   * (the outcome is then unknown).
   * @defaultValue 5000
   */
  readonly proposalTimeoutMs?: number;
  /**
   * How long `read()` waits for the leader's confirmation and the apply before `TimeoutError`.
   * @defaultValue 5000
   */
  readonly readTimeoutMs?: number;
  /**
   * Proposals (own and forwarded) awaiting their outcome; beyond it `propose()` rejects with
   * `ProposalDroppedError` reason `pending-proposals-max`.
   * @defaultValue 65536
   */
  readonly pendingProposalsMax?: number;
  /**
   * Reads awaiting their outcome; beyond it `read()` rejects with `ProposalDroppedError` reason
   * `read-index-pending-max`.
   * @defaultValue 65536
   */
  readonly pendingReadsMax?: number;
  /**
   * Take a snapshot (and compact the log) once this many entries were applied since the last one.
   * A snapshot serializes the whole state machine on the event loop, so with a large state a small
   * value costs throughput and latency; a large one costs memory (entries are kept until then) and
   * restart time (they are applied again). etcd's default is the same.
   * @defaultValue 100000
   */
  readonly snapshotEntries?: number;
  /**
   * How long `close()` waits for leadership to pass to another voter.
   * @defaultValue 2000
   */
  readonly closeTransferMs?: number;
  /** Where the node logs. @defaultValue silentLogger */
  readonly logger?: Logger;
  /**
   * The node's time: its ticks, deadlines and deferred work. The simulator passes a simulated
   * clock; leave it out to run on the Node clock.
   * @defaultValue the Node clock (`performance.now`, `setTimeout`, `setImmediate`)
   */
  readonly clock?: Clock;
  /** Randomness for election timeouts, in [0, 1). @defaultValue Math.random */
  readonly random?: () => number;
  /**
   * Told, synchronously and in order, what the node does with each Ready and entry: for tracing
   * and for the simulator's checkers. It must not throw and must not call back into the node.
   */
  readonly observer?: NodeObserver;
  /**
   * Receives payloads from workers (transport peers named `worker:<id>`, see `workerPeerId`). Raft
   * messages from a worker are always dropped. Without it, worker payloads are dropped too.
   */
  readonly onWorkerPayload?: (from: NodeId, payload: Uint8Array) => void;
}

/**
 * What a node reports to an observer. Every method is optional. Calls come in the order things
 * happen on the member: `ready` for a Ready before any of it is persisted or sent, `applied` for
 * each entry as it is applied (which may be while that Ready's write is in progress: committed
 * entries are durable on a quorum already), `persisted` once the Ready's write is durable, `failed`
 * when the member stops on an error.
 */
export interface NodeObserver {
  ready?(rd: Ready): void;
  applied?(entry: Entry): void;
  persisted?(rd: Ready): void;
  /** A snapshot the member took of its own state was saved (its log is compacted up to `index`). */
  snapshotSaved?(index: number): void;
  failed?(error: Error): void;
}

/** The defaults of {@link NodeOptions}. */
export const NODE_DEFAULTS = {
  tickMs: 10,
  electionTicks: 50,
  heartbeatTicks: 5,
  forwardProposals: true,
  proposalTimeoutMs: 5000,
  readTimeoutMs: 5000,
  pendingProposalsMax: 65536,
  pendingReadsMax: 65536,
  snapshotEntries: 100_000,
  closeTransferMs: 2000,
} as const;

/** {@link NodeOptions} with every default applied. */
export interface ResolvedNodeOptions {
  readonly tickMs: number;
  readonly forwardProposals: boolean;
  readonly proposalTimeoutMs: number;
  readonly readTimeoutMs: number;
  readonly pendingProposalsMax: number;
  readonly pendingReadsMax: number;
  readonly snapshotEntries: number;
  readonly closeTransferMs: number;
}

/** Validates the host's own options. Raft's are validated by the core. @throws ConfigError */
export function resolveNodeOptions(options: NodeOptions<unknown>): ResolvedNodeOptions {
  if (typeof options !== "object" || options === null) throw new ConfigError("options", "must be an object");
  if (typeof options.id !== "string" || options.id.length === 0) {
    throw new ConfigError("id", "must be a non-empty string");
  }
  checkMembers(options);
  for (const name of ["transport", "storage", "stateMachine", "clock"] as const) {
    if (typeof options[name] !== "object" || options[name] === null) throw new ConfigError(name, "is required");
  }
  if (typeof options.random !== "function") throw new ConfigError("random", "is required (a function returning [0, 1))");
  const resolved: ResolvedNodeOptions = {
    tickMs: options.tickMs ?? NODE_DEFAULTS.tickMs,
    forwardProposals: options.forwardProposals ?? NODE_DEFAULTS.forwardProposals,
    proposalTimeoutMs: options.proposalTimeoutMs ?? NODE_DEFAULTS.proposalTimeoutMs,
    readTimeoutMs: options.readTimeoutMs ?? NODE_DEFAULTS.readTimeoutMs,
    pendingProposalsMax: options.pendingProposalsMax ?? NODE_DEFAULTS.pendingProposalsMax,
    pendingReadsMax: options.pendingReadsMax ?? NODE_DEFAULTS.pendingReadsMax,
    snapshotEntries: options.snapshotEntries ?? NODE_DEFAULTS.snapshotEntries,
    closeTransferMs: options.closeTransferMs ?? NODE_DEFAULTS.closeTransferMs,
  };
  for (const [field, value] of Object.entries(resolved)) {
    if (field === "forwardProposals") {
      if (typeof value !== "boolean") throw new ConfigError(field, "must be a boolean");
      continue;
    }
    if (!Number.isSafeInteger(value) || (value as number) < 1) {
      throw new ConfigError(field, `must be a positive integer, got ${String(value)}`);
    }
  }
  return resolved;
}

function checkMembers(options: NodeOptions<unknown>): void {
  const members = options.members;
  if (typeof members !== "object" || members === null) throw new ConfigError("members", "must map ids to addresses");
  const ids = Object.keys(members);
  if (ids.length === 0) throw new ConfigError("members", "must list at least this member");
  for (const id of ids) {
    if (typeof members[id] !== "string" || (members[id] as string).length === 0) {
      throw new ConfigError(`members.${id}`, "must be an address (host:port)");
    }
  }
  if (!options.join && !ids.includes(options.id)) {
    throw new ConfigError("members", `must include this member "${options.id}" (or set join: true)`);
  }
}
