/**
 * The `Storage` port: what a member persists, behind one interface. The file WAL, the memory
 * storage and the simulator's disk implement it, and one conformance suite checks them alike. A
 * host drives it from the Ready loop:
 *
 * ```ts
 * const restored = await storage.load();             // at start: RaftNode(config, restored)
 * await storage.append({ snapshot: rd.snapshot, hardState: rd.hardState, entries: rd.entries });
 * const snapshot = node.compact(node.status().applied, stateMachine.snapshot());
 * if (snapshot !== null) await storage.saveSnapshot(snapshot);
 * ```
 *
 * Methods may complete synchronously (memory) or return a promise (files, the simulated disk);
 * callers `await` either way.
 */
import type { Entry, HardState, Snapshot } from "../raft/messages.ts";
import type { RestoredState } from "../raft/raft.ts";

/** A value, or a promise of it. */
export type MaybePromise<T> = T | Promise<T>;

/** One Ready's worth of state to make durable together. */
export interface StorageBatch {
  /** A snapshot received from the leader: it replaces the whole stored log (applied first). */
  readonly snapshot?: Snapshot;
  /** The hard state, when it changed. */
  readonly hardState?: HardState;
  /** Entries to append; they replace any stored entries from `entries[0].index` on. */
  readonly entries: readonly Entry[];
}

/** Persistent storage for one member. */
export interface Storage {
  /**
   * What the storage holds: the hard state, the latest snapshot (if any) and the entries after it.
   * A fresh storage returns term 0, no vote, commit 0, no snapshot and no entries.
   */
  load(): MaybePromise<RestoredState>;
  /**
   * Makes `batch` durable (for a disk: one write and one fsync). When it completes, everything in
   * it survives a crash; until then, none, some or all of it may. One exception is allowed: a
   * batch whose only change is a higher commit index may be written without an fsync (the commit
   * index is not needed for safety; a restarted member learns it again from the leader), and is
   * then made durable by the next synced batch.
   */
  append(batch: StorageBatch): MaybePromise<void>;
  /**
   * Stores a snapshot the member took of its own state and drops stored entries up to its index;
   * entries after it are kept. A snapshot not beyond the stored one is ignored.
   */
  saveSnapshot(snapshot: Snapshot): MaybePromise<void>;
  /** Releases what the storage holds open (files, locks). Further calls are refused. */
  close(): MaybePromise<void>;
}
