/**
 * Storage in memory: for tests, and for members whose durability comes from elsewhere. Everything
 * "persisted" is lost with the process.
 */
import { assert } from "../assert.ts";
import type { Snapshot } from "../raft/messages.ts";
import type { RestoredState } from "../raft/raft.ts";
import { applyBatchInPlace, emptyState, applySnapshot, type Storage, type StorageBatch } from "./storage.ts";

/** A {@link Storage} that keeps everything in memory. */
export class MemoryStorage implements Storage {
  private state: RestoredState = emptyState();
  private closed = false;

  /** What the storage holds. */
  load(): RestoredState {
    this.assertOpen();
    return { ...this.state, entries: [...this.state.entries] };
  }

  /** Applies `batch` at once. */
  append(batch: StorageBatch): void {
    this.assertOpen();
    this.state = applyBatchInPlace(this.state, batch);
  }

  /** Stores a local snapshot and drops the entries it covers. */
  saveSnapshot(snapshot: Snapshot): void {
    this.assertOpen();
    this.state = applySnapshot(this.state, snapshot);
  }

  /** Refuses further use. */
  close(): void {
    this.closed = true;
  }

  private assertOpen(): void {
    assert(!this.closed, "the storage is open");
  }
}
