/**
 * Configuration of one Raft member: defaults and a single validation, so that every limit is
 * checked once, at construction, with an error that names the field and says why.
 */
import { ConfigError } from "../errors.ts";
import type { NodeId } from "./messages.ts";

/** A fully specified, validated configuration. Build one with {@link resolveConfig}. */
export interface RaftConfig {
  /** This member's id. */
  readonly id: NodeId;
  /**
   * The voting members when the member starts with an empty log (the cluster's first
   * configuration). Sorted by {@link resolveConfig}. Empty for a member that joins an existing
   * cluster: it waits, without campaigning, until a leader sends it the log or a snapshot, and
   * learns the configuration from there. After a restart the configuration comes from the
   * restored snapshot and log; this field only seeds a member that has neither.
   */
  readonly voters: readonly NodeId[];
  /**
   * Ticks a follower waits without hearing from a leader before it campaigns. The actual timeout is
   * drawn from `[electionTicks, 2 * electionTicks)` each time it is reset.
   * @defaultValue 10
   */
  readonly electionTicks: number;
  /**
   * Ticks between heartbeats from a leader. Must be less than `electionTicks`.
   * @defaultValue 1
   */
  readonly heartbeatTicks: number;
  /**
   * Randomness for election timeouts: returns a number in `[0, 1)`. Injected so that a seeded
   * simulation is exact; a host passes its platform's random source.
   */
  readonly random: () => number;
  /**
   * Run a pre-vote round before raising the term, so that a member that was partitioned away cannot
   * disrupt a stable leader when it rejoins.
   * @defaultValue true
   */
  readonly preVote: boolean;
  /**
   * A leader that has not heard from a quorum within an election timeout steps down, and a follower
   * that has heard from a leader within the election timeout ignores vote requests.
   * @defaultValue true
   */
  readonly checkQuorum: boolean;
  /**
   * Append messages in flight to one follower in the replicate state before the leader waits for
   * acknowledgements.
   * @defaultValue 256
   */
  readonly inflightMessagesMax: number;
  /**
   * Entry bytes in flight to one follower before the leader waits for acknowledgements.
   * @defaultValue 16777216 (16 MiB)
   */
  readonly inflightBytesMax: number;
  /**
   * Entry bytes in one append message (at least one entry is always sent, however large).
   * @defaultValue 1048576 (1 MiB)
   */
  readonly messageBytesMax: number;
  /**
   * Bytes of proposed but not yet committed entries a leader holds before it drops new proposals.
   * @defaultValue 67108864 (64 MiB)
   */
  readonly uncommittedBytesMax: number;
  /**
   * Bytes of one proposal's data.
   * @defaultValue 8388608 (8 MiB)
   */
  readonly proposalBytesMax: number;
  /**
   * Bytes of committed entries handed to the host in one `Ready` (at least one entry always is).
   * @defaultValue 16777216 (16 MiB)
   */
  readonly applyBytesMax: number;
  /**
   * How a leader confirms it may serve a linearizable read (`readIndex`):
   * - `"safe"`: a heartbeat round acknowledged by a quorum after the read arrived (ReadIndex).
   *   Needs no clock assumption.
   * - `"lease"`: the leader answers at once while it holds its check-quorum lease. This assumes
   *   clocks advance at rates within the drift bound ρ (`clockDriftMax` elsewhere, 1% by default):
   *   a follower that heard from the leader refuses other candidates for an election timeout of
   *   its own ticks, and the leader steps down after an election timeout of its ticks without a
   *   quorum; if one clock runs fast enough to break that overlap, a deposed leader could serve a
   *   stale read. Requires `checkQuorum`.
   * @defaultValue "safe"
   */
  readonly readOnly: "safe" | "lease";
  /**
   * The bound ρ on how much clock *rates* may differ from true time, used only by lease reads:
   * a lease lasts `floor((electionTicks - 1) * (1 - ρ) / (1 + ρ)) - 1` ticks from the sending of
   * a heartbeat a quorum acknowledged.
   * @defaultValue 0.01
   */
  readonly clockDriftMax: number;
  /**
   * Reads a leader holds while it confirms its leadership (or waits for its first commit); beyond
   * it, `readIndex` throws `ProposalDroppedError` with reason `read-index-pending-max`.
   * @defaultValue 4096
   */
  readonly readIndexPendingMax: number;
  /**
   * Messages a member queues for the host between two `ready()` calls; beyond it, messages are
   * dropped (Raft tolerates lost messages, and its retries resend them).
   * @defaultValue 4096
   */
  readonly outboxMessagesMax: number;
  /**
   * Bytes of snapshot data in one `snapshot` message. A follower too far behind for the log
   * receives the leader's latest snapshot in chunks of this size, acknowledging each.
   * @defaultValue 1048576 (1 MiB)
   */
  readonly snapshotChunkBytes: number;
  /**
   * Snapshot chunks sent to one follower and not yet acknowledged before the leader waits.
   * @defaultValue 4
   */
  readonly snapshotChunksInflightMax: number;
  /**
   * Bytes of an incoming snapshot a follower accepts; a longer one is refused (and counted in
   * `counters.invalidMessages`).
   * @defaultValue 1073741824 (1 GiB)
   */
  readonly snapshotBytesMax: number;
}

/** The input to {@link resolveConfig}: `id`, `voters` and `random` are required, the rest default. */
export type RaftConfigInput = Pick<RaftConfig, "id" | "voters" | "random"> &
  Partial<Omit<RaftConfig, "id" | "voters" | "random">>;

/** Defaults for every optional field of {@link RaftConfig}. */
export const RAFT_CONFIG_DEFAULTS = {
  electionTicks: 10,
  heartbeatTicks: 1,
  preVote: true,
  checkQuorum: true,
  inflightMessagesMax: 256,
  inflightBytesMax: 16 * 1024 * 1024,
  messageBytesMax: 1024 * 1024,
  uncommittedBytesMax: 64 * 1024 * 1024,
  proposalBytesMax: 8 * 1024 * 1024,
  applyBytesMax: 16 * 1024 * 1024,
  readOnly: "safe",
  clockDriftMax: 0.01,
  readIndexPendingMax: 4096,
  outboxMessagesMax: 4096,
  snapshotChunkBytes: 1024 * 1024,
  snapshotChunksInflightMax: 4,
  snapshotBytesMax: 1024 * 1024 * 1024,
} as const satisfies Partial<RaftConfig>;

/** Members a configuration may list; Raft clusters beyond this gain nothing and slow every commit. */
export const VOTERS_MAX = 9;

/** Applies defaults to `input` and validates the result. Throws {@link ConfigError}. */
export function resolveConfig(input: RaftConfigInput): RaftConfig {
  if (typeof input !== "object" || input === null) {
    throw new ConfigError("config", "must be an object");
  }
  for (const key of Object.keys(input)) {
    if (!KNOWN_FIELDS.has(key)) throw new ConfigError(key, "is not a config field (a typo?)");
  }
  if (!Array.isArray(input.voters)) {
    throw new ConfigError("voters", "must be an array of member ids");
  }
  const config: RaftConfig = {
    ...RAFT_CONFIG_DEFAULTS,
    ...stripUndefined(input),
    voters: [...new Set(input.voters)].sort(),
  };
  validateConfig(config, input.voters);
  return config;
}

const KNOWN_FIELDS: ReadonlySet<string> = new Set([
  "id",
  "voters",
  "random",
  ...Object.keys(RAFT_CONFIG_DEFAULTS),
]);

function stripUndefined<T extends object>(value: T): T {
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) if (field !== undefined) out[key] = field;
  return out as T;
}

function validateConfig(config: RaftConfig, votersGiven: readonly NodeId[]): void {
  if (typeof config.id !== "string" || config.id.length === 0) {
    throw new ConfigError("id", "must be a non-empty string");
  }
  if (!Array.isArray(votersGiven)) {
    throw new ConfigError("voters", "must be an array of member ids (empty for a joining member)");
  }
  for (const voter of votersGiven) {
    if (typeof voter !== "string" || voter.length === 0) {
      throw new ConfigError("voters", `must hold non-empty strings, got ${JSON.stringify(voter)}`);
    }
  }
  if (config.voters.length !== votersGiven.length) {
    throw new ConfigError("voters", "lists a member twice");
  }
  if (config.voters.length > VOTERS_MAX) {
    throw new ConfigError("voters", `lists ${config.voters.length} members; at most ${VOTERS_MAX}`);
  }
  if (typeof config.random !== "function") {
    throw new ConfigError("random", "must be a function returning a number in [0, 1)");
  }
  requireInteger(config, "electionTicks", 2);
  requireInteger(config, "heartbeatTicks", 1);
  if (config.heartbeatTicks >= config.electionTicks) {
    throw new ConfigError(
      "heartbeatTicks",
      `(${config.heartbeatTicks}) must be less than electionTicks (${config.electionTicks}), ` +
        "or followers time out between heartbeats",
    );
  }
  requireBoolean(config, "preVote");
  requireBoolean(config, "checkQuorum");
  requireInteger(config, "inflightMessagesMax", 1);
  requireInteger(config, "inflightBytesMax", 1);
  requireInteger(config, "messageBytesMax", 1);
  requireInteger(config, "proposalBytesMax", 1);
  requireInteger(config, "uncommittedBytesMax", 1);
  requireInteger(config, "applyBytesMax", 1);
  requireInteger(config, "outboxMessagesMax", 16);
  requireInteger(config, "readIndexPendingMax", 1);
  requireInteger(config, "snapshotChunkBytes", 1);
  requireInteger(config, "snapshotChunksInflightMax", 1);
  requireInteger(config, "snapshotBytesMax", 1);
  if (config.snapshotChunkBytes > config.snapshotBytesMax) {
    throw new ConfigError(
      "snapshotChunkBytes",
      `(${config.snapshotChunkBytes}) must not exceed snapshotBytesMax (${config.snapshotBytesMax})`,
    );
  }
  if (config.readOnly !== "safe" && config.readOnly !== "lease") {
    throw new ConfigError("readOnly", `must be "safe" or "lease", got ${String(config.readOnly)}`);
  }
  if (typeof config.clockDriftMax !== "number" || !(config.clockDriftMax >= 0 && config.clockDriftMax < 0.5)) {
    throw new ConfigError("clockDriftMax", `must be a number in [0, 0.5), got ${String(config.clockDriftMax)}`);
  }
  if (config.readOnly === "lease" && leaseTicks(config) < 1) {
    throw new ConfigError(
      "readOnly",
      `"lease" needs a lease of at least one tick; electionTicks ${config.electionTicks} with ` +
        `clockDriftMax ${config.clockDriftMax} gives ${leaseTicks(config)}`,
    );
  }
  if (config.readOnly === "lease" && !config.checkQuorum) {
    throw new ConfigError("readOnly", '"lease" needs checkQuorum: the lease is check-quorum\'s');
  }
  if (config.messageBytesMax > config.inflightBytesMax) {
    throw new ConfigError(
      "messageBytesMax",
      `(${config.messageBytesMax}) must not exceed inflightBytesMax (${config.inflightBytesMax}), ` +
        "or one full append would fill a follower's window",
    );
  }
  if (config.proposalBytesMax > config.uncommittedBytesMax) {
    throw new ConfigError(
      "proposalBytesMax",
      `(${config.proposalBytesMax}) must not exceed uncommittedBytesMax ` +
        `(${config.uncommittedBytesMax}), or a single proposal could never be taken`,
    );
  }
}

/**
 * How many of its own ticks a leader may serve lease reads after sending a heartbeat that a quorum
 * acknowledged. Each acknowledging member heard from the leader after that send, and so refuses
 * other candidates for `electionTicks` of its own ticks — at least `electionTicks - 1` full tick
 * intervals, since its next tick may come at once. With clock rates within ρ of true time, the
 * leader's ticks must span less true time than that: k / (1 - ρ) < (electionTicks - 1) / (1 + ρ).
 * One tick more is taken off for the leader's own tick granularity.
 */
export function leaseTicks(config: Pick<RaftConfig, "electionTicks" | "clockDriftMax">): number {
  const rho = config.clockDriftMax;
  return Math.floor(((config.electionTicks - 1) * (1 - rho)) / (1 + rho)) - 1;
}

type NumericField = {
  [K in keyof RaftConfig]: RaftConfig[K] extends number ? K : never;
}[keyof RaftConfig];
type BooleanField = {
  [K in keyof RaftConfig]: RaftConfig[K] extends boolean ? K : never;
}[keyof RaftConfig];

function requireInteger(config: RaftConfig, field: NumericField, min: number): void {
  const value: unknown = config[field];
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    throw new ConfigError(field, `must be an integer >= ${min}, got ${String(value)}`);
  }
}

function requireBoolean(config: RaftConfig, field: BooleanField): void {
  if (typeof config[field] !== "boolean") {
    throw new ConfigError(field, `must be a boolean, got ${String(config[field])}`);
  }
}
