/**
 * What a member persists, behind one interface: the simulator's disk, the memory storage and the
 * file WAL (issue #6) all implement it, and one conformance suite (conformance.ts) checks them
 * alike. A host drives it from the Ready loop (DESIGN.md §4):
 *
 * ```ts
 * const restored = await storage.load();             // at start: RaftNode(config, restored)
 * await storage.append({ snapshot: rd.snapshot, hardState: rd.hardState, entries: rd.entries });
 * const snapshot = node.compact(node.status().applied, stateMachine.snapshot());
 * if (snapshot !== null) await storage.saveSnapshot(snapshot);
 * ```
 *
 * Methods may complete synchronously (memory, simulator) or return a promise (files); callers
 * `await` either way.
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

/** The state `load()` returns for a storage that never saved anything. */
export const EMPTY_STATE: RestoredState = Object.freeze({
  hardState: Object.freeze({ term: 0, vote: null, commit: 0 }),
  // Frozen: applyBatch reuses a state's entries array, so start from a copy (`emptyState()`).
  entries: Object.freeze([]) as readonly Entry[],
});

/** A fresh empty state whose entries array may be appended to. */
export function emptyState(): RestoredState {
  return { hardState: EMPTY_STATE.hardState, entries: [] };
}

/**
 * Applies `batch` to a loaded state, as every storage must: the snapshot replaces the log, the hard
 * state replaces the old one, and entries replace any stored suffix from their first index on.
 * Pure (the conformance suite's model uses it); see {@link applyBatchInPlace} for the storages.
 */
export function applyBatch(state: RestoredState, batch: StorageBatch): RestoredState {
  return applyBatchInPlace({ ...state, entries: [...state.entries] }, batch);
}

/**
 * {@link applyBatch} reusing (and changing) `state.entries`, so that an append costs its own
 * entries rather than a copy of the whole log. The caller gives the old state up; hand out copies
 * (as `load` does). `state.entries` must not be frozen (start from {@link emptyState}).
 */
export function applyBatchInPlace(state: RestoredState, batch: StorageBatch): RestoredState {
  let snapshot = state.snapshot;
  let entries = state.entries as Entry[];
  if (batch.snapshot !== undefined) {
    snapshot = batch.snapshot;
    entries = [];
  }
  const first = batch.entries[0];
  if (first !== undefined) {
    const offset = snapshot?.index ?? 0;
    entries.length = Math.max(0, Math.min(entries.length, first.index - 1 - offset));
    for (const entry of batch.entries) if (entry.index > offset) entries.push(entry);
  }
  const hardState = batch.hardState ?? state.hardState;
  return snapshot === undefined ? { hardState, entries } : { hardState, snapshot, entries };
}

/** Applies a local snapshot to a loaded state: entries up to its index are dropped. */
export function applySnapshot(state: RestoredState, snapshot: Snapshot): RestoredState {
  if (state.snapshot !== undefined && snapshot.index <= state.snapshot.index) return state;
  const entries = state.entries.filter((entry) => entry.index > snapshot.index);
  return { hardState: state.hardState, snapshot, entries };
}
