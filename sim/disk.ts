/**
 * A simulated disk that models fsync. Writes land in a volatile buffer; `sync()` makes them
 * durable. A crash loses everything not synced, and may leave a torn record (a partial write of
 * the next record) at the tail, which recovery must detect by checksum and cut off, as the file
 * WAL does (DESIGN.md §4). Records are real bytes in the codec's format, checked on load.
 */
import { assert } from "../lib/assert.ts";
import { decodeEntries, decodeHardState, encodeEntries, encodeHardState } from "../lib/codec/codec.ts";
import type { Entry, HardState } from "../lib/raft/messages.ts";
import type { RestoredState } from "../lib/raft/raft.ts";
import { crc32c } from "../lib/storage/crc32c.ts";
import type { Random } from "./random.ts";

const HARD_STATE = 1;
const ENTRIES = 2;

interface DiskRecord {
  readonly type: typeof HARD_STATE | typeof ENTRIES;
  readonly payload: Uint8Array;
  readonly crc: number;
}

/** What a crash did to the unsynced tail. */
export interface CrashOutcome {
  /** Records written but not synced, all lost. */
  readonly lostRecords: number;
  /** Whether a torn partial record was left at the tail. */
  readonly torn: boolean;
}

/** One member's disk. */
export class SimDisk {
  private readonly durable: DiskRecord[] = [];
  private pending: DiskRecord[] = [];
  /** Records cut off by recovery because their checksum failed (torn tails). */
  tornRecordsCut = 0;
  /** Completed syncs. */
  syncs = 0;

  /** Buffers a Ready's hard state and entries; they are durable only after `sync()`. */
  write(hardState: HardState | undefined, entries: readonly Entry[]): void {
    if (hardState !== undefined) this.pending.push(record(HARD_STATE, encodeHardState(hardState)));
    if (entries.length > 0) this.pending.push(record(ENTRIES, encodeEntries(entries)));
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
      const cut = Math.floor(random.next() * first.payload.byteLength);
      this.durable.push({ type: first.type, payload: first.payload.slice(0, cut), crc: first.crc });
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
    let hardState: HardState = { term: 0, vote: null, commit: 0 };
    const entries: Entry[] = [];
    for (let i = 0; i < this.durable.length; i += 1) {
      const rec = this.durable[i] as DiskRecord;
      if (crc32c(rec.payload) !== rec.crc) {
        assert(i === this.durable.length - 1, `corrupt record ${i} is not at the tail`);
        this.durable.pop();
        this.tornRecordsCut += 1;
        break;
      }
      if (rec.type === HARD_STATE) {
        hardState = decodeHardState(rec.payload);
      } else {
        const run = decodeEntries(rec.payload);
        const first = run[0];
        if (first !== undefined) {
          entries.length = first.index - 1;
          entries.push(...run);
        }
      }
    }
    return { hardState, entries };
  }
}

function record(type: DiskRecord["type"], payload: Uint8Array): DiskRecord {
  return { type, payload, crc: crc32c(payload) };
}
