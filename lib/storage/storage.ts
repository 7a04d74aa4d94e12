/**
 * What every storage shares beyond the `Storage` port (lib/ports/storage.ts, re-exported here):
 * the empty state and the pure rules for applying a batch or a local snapshot to a loaded state,
 * which the memory storage, the file WAL and the conformance suite's model all use.
 */
import type { Entry, HardState, Snapshot } from "../raft/messages.ts";
import type { RestoredState } from "../raft/raft.ts";
import type { StorageBatch } from "../ports/storage.ts";

export type { MaybePromise, Storage, StorageBatch } from "../ports/storage.ts";

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

/**
 * Whether a batch must be fsynced: everything but a change of the commit index alone (the Storage
 * contract's one exception, as etcd's MustSync: a restarted member learns the commit index again).
 * `written` is the hard state last written.
 */
export function mustSync(batch: StorageBatch, written: HardState): boolean {
  if (batch.entries.length > 0 || batch.snapshot !== undefined) return true;
  const hard = batch.hardState;
  return hard !== undefined && (hard.term !== written.term || hard.vote !== written.vote);
}
