/**
 * A simulated disk that models fsync. Writes land in a volatile buffer; `sync()` makes them
 * durable. A crash loses everything not synced, and may leave a torn record (a partial write of
 * the next record) at the tail, which recovery must detect by checksum and cut off, as the file
 * WAL does (DESIGN.md §4). Records hold the values written (entries are immutable and shared
 * between members, so nothing is copied); a record is encoded into the codec's bytes only when a
 * crash tears it, and its checksum then decides at load, as the file WAL's does. The byte format
 * itself is the file WAL's to prove (its conformance and crash tests).
 *
 * Each incarnation of a member gets the disk as the `Storage` port through {@link SimDisk.open}:
 * an append is written at once and made durable by an fsync that takes simulated time (a batch
 * that only raises the commit index is written without one, as the file WAL does); a crash before
 * the fsync completes loses it, and the incarnation never hears back.
 */
import { assert } from "../lib/assert.ts";
import {
  encodeEntries,
  encodeHardState,
  encodeSnapshot,
} from "../lib/codec/codec.ts";
import type { Entry, HardState, Snapshot } from "../lib/raft/messages.ts";
import type { RestoredState } from "../lib/raft/raft.ts";
import { crc32c } from "../lib/storage/crc32c.ts";
import type { Storage, StorageBatch } from "../lib/ports/storage.ts";
import { mustSync } from "../lib/storage/storage.ts";
import type { Random } from "./random.ts";

const HARD_STATE = 1;
const ENTRIES = 2;
/** A snapshot replaces the whole log before it (entries records after it follow on from it). */
const SNAPSHOT = 3;

/** One record as written. */
type DiskRecord = (
  | { readonly type: typeof HARD_STATE; readonly value: HardState }
  | { readonly type: typeof ENTRIES; readonly value: readonly Entry[] }
  | { readonly type: typeof SNAPSHOT; readonly value: Snapshot }
) & {
  /**
   * Set when a crash tore the record: the prefix of its encoded bytes that reached the disk, and
   * the checksum of the whole record, which a torn prefix fails.
   */
  readonly torn?: { readonly payload: Uint8Array; readonly crc: number };
};

/** What a crash did to the unsynced tail. */
export interface CrashOutcome {
  /** Records written but not synced, all lost. */
  readonly lostRecords: number;
  /** Whether a torn partial record was left at the tail. */
  readonly torn: boolean;
}

/**
 * One member's disk, across its incarnations. It is itself a {@link Storage} whose `append` writes
 * and syncs at once (the conformance suite checks it so); members get it through {@link open}.
 */
export class SimDisk implements Storage {
  private readonly durable: DiskRecord[] = [];
  private pending: DiskRecord[] = [];
  /** Records cut off by recovery because their checksum failed (torn tails). */
  tornRecordsCut = 0;
  /** Completed syncs. */
  syncs = 0;

  /**
   * Buffers a Ready's snapshot (one installed from the leader), hard state and entries; they are
   * durable only after `sync()`.
   */
  write(hardState: HardState | undefined, entries: readonly Entry[], snapshot?: Snapshot): void {
    if (snapshot !== undefined) this.pending.push({ type: SNAPSHOT, value: snapshot });
    if (hardState !== undefined) this.pending.push({ type: HARD_STATE, value: hardState });
    if (entries.length > 0) this.pending.push({ type: ENTRIES, value: [...entries] });
  }

  /**
   * Saves a snapshot the member took of its own state and compacts the durable records below it,
   * as the file WAL does (snapshot written to a temporary file, fsynced, renamed; segments below
   * it deleted): atomic and durable at once. Only what is already durable is compacted; buffered
   * records stay buffered.
   */
  saveSnapshot(snapshot: Snapshot): void {
    const state = replay(this.durable);
    if (state.snapshot !== undefined && snapshot.index <= state.snapshot.index) return;
    const records: DiskRecord[] = [{ type: HARD_STATE, value: state.hardState }, { type: SNAPSHOT, value: snapshot }];
    const kept = state.entries.filter((entry) => entry.index > snapshot.index);
    if (kept.length > 0) records.push({ type: ENTRIES, value: kept });
    this.durable.length = 0;
    this.durable.push(...records);
    this.snapshotsSaved += 1;
  }

  /** Snapshots saved by `saveSnapshot`. */
  snapshotsSaved = 0;

  /** Writes `batch` and makes it durable at once. */
  append(batch: StorageBatch): void {
    assert(!this.closed, "the disk is open");
    this.write(batch.hardState, batch.entries, batch.snapshot);
    this.sync();
  }

  /** Nothing to release; further appends are refused. */
  close(): void {
    this.closed = true;
  }

  private closed = false;

  /**
   * The disk as the `Storage` port for one incarnation of its member. `syncLater(done)` must call
   * `done` after an fsync's latency, unless that incarnation ends first (then it never does).
   */
  open(syncLater: (done: () => void) => void): Storage {
    this.closed = false;
    let written = this.load().hardState;
    let closed = false;
    const disk = this;
    return {
      load: () => disk.load(),
      append(batch: StorageBatch): Promise<void> | void {
        assert(!closed, "the disk is open");
        const sync = mustSync(batch, written);
        disk.write(batch.hardState, batch.entries, batch.snapshot);
        if (batch.hardState !== undefined) written = batch.hardState;
        if (!sync) return;
        return new Promise<void>((resolve) => {
          syncLater(() => {
            disk.sync();
            resolve();
          });
        });
      },
      saveSnapshot(snapshot: Snapshot): void {
        assert(!closed, "the disk is open");
        disk.saveSnapshot(snapshot);
      },
      close(): void {
        closed = true;
      },
    };
  }

  /** Whether anything is buffered. */
  get dirty(): boolean {
    return this.pending.length > 0;
  }

  /** Makes every buffered write durable. */
  sync(): void {
    this.durable.push(...this.pending);
    this.pending = [];
    this.syncs += 1;
  }

  /** Loses the unsynced tail; with `tornWrites`, may leave part of one record behind. */
  crash(random: Random, tornWrites: boolean): CrashOutcome {
    const lost = this.pending;
    this.pending = [];
    const first = lost[0];
    if (tornWrites && first !== undefined && random.chance(0.5)) {
      const payload = encodeRecord(first);
      const cut = Math.floor(random.next() * payload.byteLength);
      this.durable.push({ ...first, torn: { payload: payload.slice(0, cut), crc: crc32c(payload) } });
      return { lostRecords: lost.length, torn: true };
    }
    return { lostRecords: lost.length, torn: false };
  }

  /**
   * Recovers the persisted state. A record at the tail whose checksum fails is a torn write: it
   * was never acknowledged, so it is cut off. A bad record anywhere else is corruption, which this
   * disk never produces, so it is an assertion failure.
   */
  load(): RestoredState {
    const last = this.durable[this.durable.length - 1];
    if (last?.torn !== undefined && crc32c(last.torn.payload) !== last.torn.crc) {
      this.durable.pop();
      this.tornRecordsCut += 1;
    }
    return replay(this.durable);
  }
}

/** Replays records into the state they persist. Any record failing its checksum is corruption. */
function replay(records: readonly DiskRecord[]): RestoredState {
  let hardState: HardState = { term: 0, vote: null, commit: 0 };
  let snapshot: Snapshot | undefined;
  let entries: Entry[] = [];
  for (let i = 0; i < records.length; i += 1) {
    const rec = records[i] as DiskRecord;
    assert(rec.torn === undefined, `record ${i} of ${records.length} is torn and not at the tail`);
    if (rec.type === HARD_STATE) {
      hardState = rec.value;
    } else if (rec.type === SNAPSHOT) {
      snapshot = rec.value;
      entries = [];
    } else {
      const run = rec.value;
      const first = run[0];
      if (first !== undefined) {
        // The run replaces stored entries from its first index on.
        entries.length = Math.max(0, first.index - 1 - (snapshot?.index ?? 0));
        entries.push(...run.filter((entry) => entry.index > (snapshot?.index ?? 0)));
      }
    }
  }
  return snapshot === undefined ? { hardState, entries } : { hardState, snapshot, entries };
}

/** The record's bytes in the codec's format. */
function encodeRecord(rec: DiskRecord): Uint8Array {
  switch (rec.type) {
    case HARD_STATE:
      return encodeHardState(rec.value);
    case ENTRIES:
      return encodeEntries(rec.value);
    case SNAPSHOT:
      return encodeSnapshot(rec.value);
  }
}
