/**
 * The placement table's data: workers, resources and the commands that change them. The table is
 * a deterministic state machine replicated through the Raft log (DESIGN.md §3): every member
 * applies the same commands in the same order and holds the same table.
 *
 * Pure: no I/O, no clock. Times that appear here are the leader's own clock readings carried in
 * commands, never read.
 */

/** A worker's id, e.g. `"w1"`. */
export type WorkerId = string;

/** A resource key, e.g. the URL path `/db/users`. */
export type ResourceKey = string;

/**
 * `active`: receives keys. `draining`: keeps its keys only until they have moved elsewhere,
 * receives none (an operator's drain, or a graceful leave: `leaving` is set and the worker is
 * removed once it holds nothing).
 */
export type WorkerStatus = "active" | "draining";

/** A worker as the table knows it. */
export interface WorkerInfo {
  readonly id: WorkerId;
  /** Where the worker serves requests (opaque to the table). */
  readonly address: string;
  /** Relative capacity: a worker of capacity 2 is given twice the keys of one of capacity 1. */
  readonly capacity: number;
  /** Failure domain: keys of one worker's failure are spread across zones where possible. */
  readonly zone: string;
  readonly status: WorkerStatus;
  /** Whether the worker is leaving: it is removed once it holds no key. */
  readonly leaving: boolean;
}

/**
 * A resource's assignment. `epoch` is the log index of the command that granted it to `owner`:
 * unique and strictly increasing per key, the fencing token. While `draining`, `owner` still holds
 * the grant but must stop serving; `next` is the worker that will be granted the key once the owner
 * confirms the release or its lease has run out.
 */
export interface Assignment {
  readonly key: ResourceKey;
  readonly owner: WorkerId;
  readonly epoch: number;
  readonly state: "active" | "draining";
  /** While draining: the next owner. */
  readonly next: WorkerId | null;
}

/** A command of the placement state machine, carried in a Raft entry. */
export type PlacementCommand =
  /** A worker joins (or rejoins with new details). */
  | { readonly type: "join"; readonly worker: WorkerId; readonly address: string; readonly capacity: number; readonly zone: string }
  /** A worker asks to leave gracefully: its keys are drained to others, then it is removed. */
  | { readonly type: "leave"; readonly worker: WorkerId }
  /** An operator drains a worker: its keys move elsewhere; it stays, receiving none. */
  | { readonly type: "drain"; readonly worker: WorkerId }
  /** Ends a drain: the worker receives keys again. */
  | { readonly type: "undrain"; readonly worker: WorkerId }
  /** Assigns `key` to a worker (chosen by the balancer) if it has no owner. */
  | { readonly type: "acquire"; readonly key: ResourceKey }
  /**
   * The owner gives `key` (granted at `epoch`) up: a draining key goes to its next owner; an
   * active one is dropped from the table. Ignored unless `worker` holds `key` at `epoch`.
   */
  | { readonly type: "release"; readonly worker: WorkerId; readonly key: ResourceKey; readonly epoch: number }
  /**
   * The leader found that the draining owner of `key` (granted at `epoch`) can no longer hold it
   * (its lease ran out): the key goes to its next owner.
   */
  | { readonly type: "handoff"; readonly key: ResourceKey; readonly epoch: number }
  /** Moves `key` to `to` (or a worker the balancer picks) through `draining`. */
  | { readonly type: "move"; readonly key: ResourceKey; readonly to: WorkerId | null }
  /** Rebalances: moves at most `movesMax` keys from the most to the least loaded workers. */
  | { readonly type: "rebalance"; readonly movesMax: number }
  /** The leader declares `worker` dead (its lease ran out): its keys are reassigned at once. */
  | { readonly type: "expire"; readonly worker: WorkerId };

/** The `type` of every command. */
export type PlacementCommandType = PlacementCommand["type"];
