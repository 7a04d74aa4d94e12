/**
 * Errors that users of orrery handle. Each carries a stable `code` and a static `is()` guard that
 * works across duplicated copies of the package (it checks the code, not the prototype), in the
 * manner of undici's `UND_ERR_*` errors.
 *
 * Broken invariants are not here: they are {@link AssertionFailure}s from `lib/assert.ts`, which
 * stop the member and are never caught.
 */

/** Every stable error code orrery produces. */
export type OrreryErrorCode =
  | "ORRERY_NOT_LEADER"
  | "ORRERY_DROPPED"
  | "ORRERY_CONFIG"
  | "ORRERY_CODEC"
  | "ORRERY_TIMEOUT"
  | "ORRERY_INVALID_REQUEST"
  | "ORRERY_CONF_CHANGE"
  | "ORRERY_STORAGE"
  | "ORRERY_TRANSPORT"
  | "ORRERY_CLOSED"
  | "ORRERY_STALE_EPOCH"
  | "ORRERY_NO_OWNER";

function hasCode(error: unknown, code: OrreryErrorCode): boolean {
  return (
    typeof error === "object" &&
    error !== null &&
    (error as { code?: unknown }).code === code
  );
}

/** Base class of every error orrery expects callers to handle. */
export abstract class OrreryError extends Error {
  /** A stable, machine-readable code, e.g. `ORRERY_NOT_LEADER`. */
  abstract readonly code: OrreryErrorCode;

  /** True for any orrery error, whichever copy of the package created it. */
  static isOrreryError(error: unknown): error is OrreryError {
    const code: unknown = error instanceof Error ? (error as { code?: unknown }).code : undefined;
    return typeof code === "string" && code.startsWith("ORRERY_");
  }
}

/**
 * A proposal or request reached a member that is not the leader.
 * `leaderHint` names the member this one believes leads, or is `null` when it knows none.
 */
export class NotLeaderError extends OrreryError {
  readonly code = "ORRERY_NOT_LEADER" as const;
  /** The id of the member believed to be leader, or `null` if unknown. */
  readonly leaderHint: string | null;
  /**
   * The believed leader's address as the host knows it (`host:port` of its transport), or `null`
   * when no leader is known or the error comes from the core, which knows no addresses.
   */
  readonly leaderAddress: string | null;

  constructor(leaderHint: string | null, leaderAddress: string | null = null) {
    super(
      leaderHint === null
        ? "not the leader, and no leader is known"
        : `not the leader; the leader is believed to be ${leaderHint}` +
            (leaderAddress === null ? "" : ` at ${leaderAddress}`),
    );
    this.name = "NotLeaderError";
    this.leaderHint = leaderHint;
    this.leaderAddress = leaderAddress;
  }

  /** Guard: `NotLeaderError.is(e)` narrows `e`. */
  static is(error: unknown): error is NotLeaderError {
    return hasCode(error, "ORRERY_NOT_LEADER");
  }
}

/** Why a leader refused a proposal it would otherwise have taken. */
export type DropReason =
  | "uncommitted-bytes-max"
  | "leadership-transfer"
  | "proposal-bytes-max"
  | "read-index-pending-max"
  /** The host holds `pendingProposalsMax` proposals awaiting their outcome. */
  | "pending-proposals-max"
  /** Another leader's entry took the proposal's place in the log: it will never be applied. */
  | "leader-change";

/**
 * A leader refused a proposal: it would exceed a limit, or leadership is being transferred.
 * Nothing was appended; the caller may retry (after the transfer, or once the backlog commits).
 */
export class ProposalDroppedError extends OrreryError {
  readonly code = "ORRERY_DROPPED" as const;
  /** Which rule refused the proposal. */
  readonly reason: DropReason;

  constructor(reason: DropReason, detail: string) {
    super(`proposal dropped (${reason}): ${detail}`);
    this.name = "ProposalDroppedError";
    this.reason = reason;
  }

  /** Guard: `ProposalDroppedError.is(e)` narrows `e`. */
  static is(error: unknown): error is ProposalDroppedError {
    return hasCode(error, "ORRERY_DROPPED");
  }
}

/** A configuration value is missing or out of range. `field` names it. */
export class ConfigError extends OrreryError {
  readonly code = "ORRERY_CONFIG" as const;
  /** The configuration field at fault, e.g. `heartbeatTicks`. */
  readonly field: string;

  constructor(field: string, why: string) {
    super(`invalid config: ${field} ${why}`);
    this.name = "ConfigError";
    this.field = field;
  }

  /** Guard: `ConfigError.is(e)` narrows `e`. */
  static is(error: unknown): error is ConfigError {
    return hasCode(error, "ORRERY_CONFIG");
  }
}

/**
 * Bytes could not be decoded into a valid value: not msgpack, an unknown message type, a missing
 * or mistyped field, or a value out of range. Nothing half-decoded is ever returned.
 */
export class CodecError extends OrreryError {
  readonly code = "ORRERY_CODEC" as const;
  /** Where in the value the problem was found, e.g. `message.entries[3].term`. */
  readonly path: string;

  constructor(path: string, why: string) {
    super(`cannot decode ${path}: ${why}`);
    this.name = "CodecError";
    this.path = path;
  }

  /** Guard: `CodecError.is(e)` narrows `e`. */
  static is(error: unknown): error is CodecError {
    return hasCode(error, "ORRERY_CODEC");
  }
}

/** An operation did not complete within its deadline. Its outcome is unknown. */
export class TimeoutError extends OrreryError {
  readonly code = "ORRERY_TIMEOUT" as const;

  constructor(what: string, timeoutMs: number) {
    super(`${what} timed out after ${timeoutMs} ms; its outcome is unknown`);
    this.name = "TimeoutError";
  }

  /** Guard: `TimeoutError.is(e)` narrows `e`. */
  static is(error: unknown): error is TimeoutError {
    return hasCode(error, "ORRERY_TIMEOUT");
  }
}

/**
 * A request that can never succeed as asked: a leadership transfer to a member that is not a voter,
 * a malformed argument. `reason` says which rule it broke.
 */
export class InvalidRequestError extends OrreryError {
  readonly code = "ORRERY_INVALID_REQUEST" as const;

  constructor(readonly reason: string) {
    super(`invalid request: ${reason}`);
    this.name = "InvalidRequestError";
  }

  /** Guard: `InvalidRequestError.is(e)` narrows `e`. */
  static is(error: unknown): error is InvalidRequestError {
    return hasCode(error, "ORRERY_INVALID_REQUEST");
  }
}

/** Why a membership change was refused. */
export type ConfChangeReason =
  /** Another change has not been applied yet (or the joint configuration has not been left). */
  | "pending"
  /** The change would leave no voter. */
  | "last-voter"
  /** A member to remove, or a learner to promote, is not in the configuration. */
  | "unknown-member"
  /** A member to add is already there in that role. */
  | "already-member"
  /** The change lists no operation, or names one member twice. */
  | "malformed"
  /** The change would create more voters than `VOTERS_MAX`. */
  | "too-many-voters";

/**
 * A membership change that was refused, never silently dropped: a second change while one is
 * pending, removing the last voter, removing a member that is not there. `reason` says which.
 */
export class ConfChangeError extends OrreryError {
  readonly code = "ORRERY_CONF_CHANGE" as const;

  constructor(
    readonly reason: ConfChangeReason,
    detail: string,
  ) {
    super(`membership change refused (${reason}): ${detail}`);
    this.name = "ConfChangeError";
  }

  /** Guard: `ConfChangeError.is(e)` narrows `e`. */
  static is(error: unknown): error is ConfChangeError {
    return hasCode(error, "ORRERY_CONF_CHANGE");
  }
}

/** Why a storage refused an operation. */
export type StorageErrorReason =
  /** Another storage, in this process or another, holds the directory's lock. */
  | "locked"
  /** Stored data failed its checksum or did not decode, somewhere other than a torn tail. */
  | "corrupt"
  /** The storage was closed. */
  | "closed"
  /** The operating system refused a read, write or sync; the storage must be reopened. */
  | "io"
  /** A record or snapshot would be larger than its named maximum; nothing was written. */
  | "limit";

/**
 * A storage (the file WAL) refused to open or to complete an operation. `file` and `offset` name
 * where on disk the problem is, when there is a place to name: for `corrupt`, the file and the byte
 * offset of the first bad record.
 */
export class StorageError extends OrreryError {
  readonly code = "ORRERY_STORAGE" as const;
  /** Which kind of failure this is. */
  readonly reason: StorageErrorReason;
  /** The file at fault, or `null` when none is. */
  readonly file: string | null;
  /** The byte offset in `file` at fault, or `null` when none is. */
  readonly offset: number | null;

  constructor(
    reason: StorageErrorReason,
    detail: string,
    where: { readonly file?: string; readonly offset?: number; readonly cause?: unknown } = {},
  ) {
    super(`storage ${reason}: ${detail}`, where.cause === undefined ? undefined : { cause: where.cause });
    this.name = "StorageError";
    this.reason = reason;
    this.file = where.file ?? null;
    this.offset = where.offset ?? null;
  }

  /** Guard: `StorageError.is(e)` narrows `e`. */
  static is(error: unknown): error is StorageError {
    return hasCode(error, "ORRERY_STORAGE");
  }
}

/** Why a transport refused a connection, a frame or a send. */
export type TransportErrorReason =
  /** A frame or body is larger than the transport's maximum. */
  | "frame-too-large"
  /** Bytes that are not a valid frame, message or handshake. */
  | "malformed"
  /** The peer's handshake named another cluster, an unexpected member, or no valid secret. */
  | "handshake"
  /** The transport is closed. */
  | "closed"
  /** An address, option or peer that cannot work. */
  | "config";

/**
 * A transport refused input or a connection. Transports never throw these at the member on input
 * from the network: they close the offending connection and hand the error to the logger. They
 * are thrown only to local callers (bad options, a send after `close()`).
 */
export class TransportError extends OrreryError {
  readonly code = "ORRERY_TRANSPORT" as const;
  /** Which kind of failure this is. */
  readonly reason: TransportErrorReason;

  constructor(reason: TransportErrorReason, detail: string) {
    super(`transport ${reason}: ${detail}`);
    this.name = "TransportError";
    this.reason = reason;
  }

  /** Guard: `TransportError.is(e)` narrows `e`. */
  static is(error: unknown): error is TransportError {
    return hasCode(error, "ORRERY_TRANSPORT");
  }
}

/**
 * The node (or worker) was closed while the operation was pending, or the call came after
 * `close()`. A pending proposal's outcome is unknown: it may still commit in the cluster.
 */
export class ClosedError extends OrreryError {
  readonly code = "ORRERY_CLOSED" as const;

  constructor(what: string) {
    super(`${what}: the node is closed`);
    this.name = "ClosedError";
  }

  /** Guard: `ClosedError.is(e)` narrows `e`. */
  static is(error: unknown): error is ClosedError {
    return hasCode(error, "ORRERY_CLOSED");
  }
}

/**
 * A resource refused a write because its fence has seen a newer epoch than the writer's: a newer
 * owner acquired it. Throw it from a worker's handler (or any error with this `code`) and the worker
 * answers 409 with `x-orrery-refused: stale-epoch`.
 */
export class StaleEpochError extends OrreryError {
  readonly code = "ORRERY_STALE_EPOCH" as const;

  constructor(
    /** The resource key. */
    readonly key: string,
    /** The writer's epoch. */
    readonly epoch: number,
    /** The epoch the resource's fence holds. */
    readonly fence: number,
  ) {
    super(`the write to ${key} at epoch ${epoch} was refused: its fence is at epoch ${fence}`);
    this.name = "StaleEpochError";
  }

  /** Guard: `StaleEpochError.is(e)` narrows `e`. */
  static is(error: unknown): error is StaleEpochError {
    return hasCode(error, "ORRERY_STALE_EPOCH");
  }
}

/**
 * No worker could serve a key now: none has joined, the key is moving between owners, or its owner
 * did not answer. Transient; the gateway answers 503 with `Retry-After`.
 */
export class NoOwnerError extends OrreryError {
  readonly code = "ORRERY_NO_OWNER" as const;

  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super(`no owner for ${key} now: ${reason}`);
    this.name = "NoOwnerError";
  }

  /** Guard: `NoOwnerError.is(e)` narrows `e`. */
  static is(error: unknown): error is NoOwnerError {
    return hasCode(error, "ORRERY_NO_OWNER");
  }
}
