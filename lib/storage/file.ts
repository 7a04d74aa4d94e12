/**
 * The file WAL (issue #6, DESIGN.md §4): a {@link Storage} in a directory of its own.
 *
 * ## Files
 *
 * ```
 * LOCK                    the pid of the process that has the directory open
 * wal-<16-digit seq>.log  log segments; seq is the segment's sequence number, from 1, +1 per segment
 * snapshot                the latest snapshot, one record of type SNAPSHOT
 * snapshot.tmp            a snapshot being written (renamed to `snapshot` once synced)
 * ```
 *
 * ## Records
 *
 * Every record is `[length u32 LE][crc32c u32 LE][type u8][payload]`: `length` counts the payload
 * bytes only, and the CRC-32C covers the type byte and the payload. Types:
 *
 * - `1` hard state: `encodeHardState`.
 * - `2` entries: `encodeEntries`; the run replaces the stored entries from its first index on.
 * - `3` install marker: `[index u64 LE][term u64 LE]` of a snapshot installed from the leader. The
 *   log before it is replaced; the snapshot itself is in the `snapshot` file.
 * - `4` snapshot: `encodeSnapshot`; only in the `snapshot` file.
 * - `5` segment start: `[previous segment's length in bytes u64 LE]`, the first record of every
 *   segment. It lets recovery tell a segment that lost its end (refused) from one that is complete.
 *
 * ## Writes
 *
 * `append` frames its whole batch into one buffer and makes it durable with one `write` and one
 * `fdatasync` (group commit). A segment that has reached `segmentBytesMax` is left for a new one
 * (whose creation is made durable by a directory fsync).
 *
 * A snapshot is written to `snapshot.tmp`, fsynced, renamed to `snapshot`, and the directory is
 * fsynced. For a snapshot installed from the leader (a batch's `snapshot`) the order is: the
 * temporary file is synced, then a new segment with `[start, install marker, hard state, entries]`
 * is written and synced, then the rename, then every older segment is deleted. A crash between the
 * segment and the rename is finished on the next open (the marker names the snapshot in
 * `snapshot.tmp`), so a restart always sees the state before the batch plus some prefix of its
 * records, as {@link Storage.append} allows. For a local `saveSnapshot`, the oldest segments whose
 * entries are all at or below the snapshot's index are deleted (the newest segment never is),
 * after the current hard state is written again so that it does not go with them.
 *
 * ## Recovery
 *
 * `open` replays the segments in order. A bad record (short, failing its checksum, or undecodable)
 * in the last segment, with no valid record anywhere after it, is a torn write that was never
 * acknowledged: the file is truncated there and synced. Any other bad record, a missing segment,
 * a segment shorter than the next one's start record says, or a snapshot file that does not check,
 * refuses the open with a {@link StorageError} `corrupt` naming the file and byte offset. Nothing is
 * ever cut silently beyond a torn tail; {@link FileStorage.repair} cuts at the first bad record
 * when an operator asks for it.
 *
 * ## Locking
 *
 * `open` creates `LOCK` exclusively and writes its pid there. If `LOCK` exists, the open is refused
 * with `locked` while that pid is alive (or is this process with the directory open). A lock whose
 * pid is dead (`process.kill(pid, 0)` fails with `ESRCH`) is stale: it is taken over, so a crash
 * needs no operator. A `LOCK` without a readable pid is treated as held (its owner may be writing
 * it); remove it by hand if no process uses the directory. Known limit: two processes that take
 * over the same stale lock at the same instant may both succeed; lock files cannot rule that out
 * without `flock`, which Node does not offer.
 *
 * The whole state is also kept in memory (as the Raft log is), so `load()` needs no I/O.
 */
import {
  mkdir,
  open as openFile,
  readdir,
  readFile,
  realpath,
  rename,
  unlink,
  type FileHandle,
} from "node:fs/promises";
import { join } from "node:path";
import { AssertionFailure, assert } from "../assert.ts";
import {
  decodeEntries,
  decodeHardState,
  decodeSnapshot,
  encodeEntries,
  encodeHardState,
  encodeSnapshot,
} from "../codec/codec.ts";
import { ConfigError, StorageError } from "../errors.ts";
import type { Entry, HardState, Snapshot } from "../raft/messages.ts";
import type { RestoredState } from "../raft/raft.ts";
import { crc32c } from "./crc32c.ts";
import { EMPTY_STATE, applyBatchInPlace, applySnapshot, mustSync, type Storage, type StorageBatch } from "./storage.ts";

/** The largest record payload written or read, in bytes (64 MiB). Larger appends are refused. */
export const RECORD_BYTES_MAX = 64 * 1024 * 1024;
/** The largest encoded snapshot written or read, in bytes (1 GiB). */
export const SNAPSHOT_BYTES_MAX = 1024 * 1024 * 1024;
/** The default size at which a segment is left for a new one, in bytes (64 MiB). */
export const SEGMENT_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;
/** Bytes before a record's payload: length, checksum, type. */
export const RECORD_HEADER_BYTES = 9;

const RECORD_HARD_STATE = 1;
const RECORD_ENTRIES = 2;
const RECORD_INSTALL = 3;
const RECORD_SNAPSHOT = 4;
const RECORD_SEGMENT_START = 5;

const LOCK_FILE = "LOCK";
const SNAPSHOT_FILE = "snapshot";
const SNAPSHOT_TMP_FILE = "snapshot.tmp";
const SEGMENT_NAME = /^wal-(\d{16})\.log$/;

/** Options of {@link FileStorage.open}. */
export interface FileStorageOptions {
  /**
   * A segment that has reached this many bytes is left for a new one. Positive integer.
   * @defaultValue {@link SEGMENT_BYTES_MAX_DEFAULT}
   */
  readonly segmentBytesMax?: number;
  /**
   * Appends whose entries or hard state record would exceed this many payload bytes are refused
   * with a {@link StorageError} `limit`, before anything is written. At most {@link RECORD_BYTES_MAX}.
   * @defaultValue {@link RECORD_BYTES_MAX}
   */
  readonly recordBytesMax?: number;
}

/** What `open` found and fixed. */
export interface RecoveryReport {
  /** The torn tail cut off the last segment, if there was one. */
  readonly tailCut: { readonly file: string; readonly offset: number; readonly bytes: number } | null;
  /** Whether an installed snapshot left in `snapshot.tmp` by a crash was renamed into place. */
  readonly snapshotRolledForward: boolean;
}

/** What {@link FileStorage.repair} cut. */
export interface RepairReport {
  /** The segment cut, and the offset of the first bad record in it (its new length). */
  readonly file: string;
  readonly offset: number;
  /** Why the record there was bad. */
  readonly why: string;
  /** Bytes removed from `file`. */
  readonly bytesCut: number;
  /** Later segments deleted whole. */
  readonly filesDeleted: readonly string[];
}

interface Options {
  readonly segmentBytesMax: number;
  readonly recordBytesMax: number;
}

/** One segment as the storage tracks it. */
interface SegmentInfo {
  readonly seq: number;
  readonly name: string;
  bytes: number;
  /** The highest entry index in any entries record of the segment, 0 if none. */
  entryIndexMax: number;
}

type WalRecord =
  | { readonly type: typeof RECORD_HARD_STATE; readonly hardState: HardState }
  | { readonly type: typeof RECORD_ENTRIES; readonly entries: Entry[] }
  | { readonly type: typeof RECORD_INSTALL; readonly index: number; readonly term: number }
  | { readonly type: typeof RECORD_SEGMENT_START; readonly previousBytes: number };

interface ScannedRecord {
  readonly offset: number;
  readonly record: WalRecord;
}

/** A segment's records up to the first bad one. */
interface SegmentScan {
  readonly seq: number;
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly records: ScannedRecord[];
  readonly bad: { readonly offset: number; readonly why: string } | null;
}

/** Directories open in this process (by real path): the lock file cannot tell them apart. */
const openDirs = new Set<string>();

/** A {@link Storage} in files: a write-ahead log of segments plus a snapshot file. */
export class FileStorage implements Storage {
  /** The directory, as a real path. */
  readonly dir: string;
  /** What the open that created this storage found and fixed. */
  readonly recovery: RecoveryReport;
  private readonly options: Options;
  private state: RestoredState;
  /** Oldest first; writes go to the last. */
  private readonly segments: SegmentInfo[];
  /** Open on the last segment once something is written to it. */
  private handle: FileHandle | null = null;
  private status: "open" | "closed" | "failed" = "open";
  /** Operations run one at a time, in call order. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(dir: string, options: Options, recovered: Recovered) {
    this.dir = dir;
    this.options = options;
    this.state = recovered.state;
    this.segments = recovered.segments;
    this.recovery = recovered.report;
  }

  /**
   * Opens (creating if needed) the WAL in `dir`, takes its lock and recovers its state.
   * @throws StorageError `locked` if another storage holds the directory, `corrupt` if the data is
   * damaged anywhere but a torn tail, `io` if the system refuses; ConfigError for bad options.
   */
  static async open(dir: string, options: FileStorageOptions = {}): Promise<FileStorage> {
    const resolved = validateOptions(options);
    const real = await io(dir, async () => {
      await mkdir(dir, { recursive: true });
      return await realpath(dir);
    });
    await acquireLock(real);
    try {
      const recovered = await io(real, () => recover(real));
      return new FileStorage(real, resolved, recovered);
    } catch (error) {
      await releaseLock(real);
      throw error;
    }
  }

  /**
   * For an operator, after `open` refused with `corrupt`: truncates the WAL at its first bad record
   * (a bad record, a missing segment or a segment that lost its end) and deletes every later
   * segment. What was cut may include acknowledged writes; the report says exactly what went.
   * Returns `null` when nothing needed cutting. A corrupt snapshot file is not repaired (the log
   * cannot rebuild it): restore the member from another one.
   * @throws StorageError `locked` if the directory is open.
   */
  static async repair(dir: string): Promise<RepairReport | null> {
    const real = await io(dir, () => realpath(dir));
    await acquireLock(real);
    try {
      return await io(real, () => repairLocked(real));
    } finally {
      await releaseLock(real);
    }
  }

  /** What the storage holds. */
  load(): Promise<RestoredState> {
    return this.run("load", async () => ({ ...this.state, entries: [...this.state.entries] }));
  }

  /**
   * Makes `batch` durable: one write and one fdatasync (a leader's snapshot takes more, see above).
   * A batch whose only change is the commit index is written without the fdatasync, as etcd does:
   * the commit index is not needed for safety (a restarted member learns it again from the
   * leader), and the next synced batch makes it durable too. Term, vote, entries and snapshots are
   * always synced before this resolves.
   */
  append(batch: StorageBatch): Promise<void> {
    return this.run("append", async () => {
      const framed = this.frameBatch(batch);
      const sync = mustSync(batch, this.state.hardState);
      if (batch.snapshot !== undefined) await this.install(batch.snapshot, framed, lastEntryIndex(batch.entries));
      else if (framed.length > 0) await this.writeRecords(framed, false, lastEntryIndex(batch.entries), sync);
      this.state = applyBatchInPlace(this.state, batch);
    });
  }

  /**
   * Stores a snapshot of the member's own state, then deletes the oldest segments whose entries it
   * covers. A snapshot not beyond the stored one is ignored.
   */
  saveSnapshot(snapshot: Snapshot): Promise<void> {
    return this.run("saveSnapshot", async () => {
      const stored = this.state.snapshot;
      if (stored !== undefined && snapshot.index <= stored.index) return;
      await this.writeSnapshotFile(snapshot);
      await rename(join(this.dir, SNAPSHOT_TMP_FILE), join(this.dir, SNAPSHOT_FILE));
      await syncDir(this.dir);
      this.state = applySnapshot(this.state, snapshot);
      let covered = 0;
      while (covered < this.segments.length - 1 && (this.segments[covered] as SegmentInfo).entryIndexMax <= snapshot.index) {
        covered += 1;
      }
      if (covered === 0) return;
      // The latest hard state may be in a segment about to go: write it again first.
      await this.writeRecords([frameRecord(RECORD_HARD_STATE, encodeHardState(this.state.hardState))], false, 0);
      await this.deleteOldestSegments(covered);
    });
  }

  /** Closes the files and releases the lock. Further calls are refused; closing again does nothing. */
  close(): Promise<void> {
    const result = this.queue.then(async () => {
      if (this.status === "closed") return;
      this.status = "closed";
      const handle = this.handle;
      this.handle = null;
      try {
        await handle?.close();
      } finally {
        await releaseLock(this.dir);
      }
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Runs `op` after every earlier operation, refusing if closed or failed. */
  private run<T>(what: string, op: () => Promise<T>): Promise<T> {
    const result = this.queue.then(async () => {
      if (this.status === "closed") throw new StorageError("closed", `${what} after close`, { file: this.dir });
      if (this.status === "failed") {
        throw new StorageError("io", `${what} refused: an earlier write failed; reopen the storage`, { file: this.dir });
      }
      try {
        return await op();
      } catch (error) {
        if (StorageError.is(error) || error instanceof AssertionFailure) throw error;
        // After a failed write or fsync nothing is known about what reached the disk.
        this.status = "failed";
        throw new StorageError("io", `${what} failed: ${String(error)}`, { file: this.dir, cause: error });
      }
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Frames a batch's hard state and entries, refusing (before any write) what is over a limit. */
  private frameBatch(batch: StorageBatch): Uint8Array[] {
    const framed: Uint8Array[] = [];
    const first = batch.entries[0];
    if (first !== undefined) {
      const base = batch.snapshot?.index ?? lastIndex(this.state);
      assert(first.index <= base + 1, () => `appended entries start at ${first.index}, after the log's end ${base}`);
    }
    if (batch.snapshot !== undefined) {
      const hardState = batch.hardState ?? this.state.hardState;
      framed.push(frameRecord(RECORD_HARD_STATE, encodeHardState(hardState)));
    } else if (batch.hardState !== undefined) {
      framed.push(frameRecord(RECORD_HARD_STATE, encodeHardState(batch.hardState)));
    }
    if (first !== undefined) {
      const payload = encodeEntries(batch.entries);
      if (payload.byteLength > this.options.recordBytesMax) {
        throw new StorageError(
          "limit",
          `an entries record of ${payload.byteLength} bytes is over recordBytesMax ${this.options.recordBytesMax}; nothing was written`,
        );
      }
      framed.push(frameRecord(RECORD_ENTRIES, payload));
    }
    return framed;
  }

  /** A leader's snapshot: the order is explained in the module comment. */
  private async install(snapshot: Snapshot, framed: Uint8Array[], entryIndexMax: number): Promise<void> {
    await this.writeSnapshotFile(snapshot);
    await this.writeRecords([frameRecord(RECORD_INSTALL, encodeInstall(snapshot)), ...framed], true, entryIndexMax);
    await rename(join(this.dir, SNAPSHOT_TMP_FILE), join(this.dir, SNAPSHOT_FILE));
    await syncDir(this.dir);
    await this.deleteOldestSegments(this.segments.length - 1);
  }

  /** Writes `snapshot.tmp` and syncs it. */
  private async writeSnapshotFile(snapshot: Snapshot): Promise<void> {
    const payload = encodeSnapshot(snapshot);
    if (payload.byteLength > SNAPSHOT_BYTES_MAX) {
      throw new StorageError("limit", `a snapshot of ${payload.byteLength} bytes is over SNAPSHOT_BYTES_MAX ${SNAPSHOT_BYTES_MAX}`);
    }
    const handle = await openFile(join(this.dir, SNAPSHOT_TMP_FILE), "w");
    try {
      await writeAll(handle, frameRecord(RECORD_SNAPSHOT, payload), 0);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /**
   * Appends framed records to the last segment (or a new one) with one write and one fdatasync.
   * `entryIndexMax` is the highest entry index among them, 0 if none.
   */
  private async writeRecords(
    framed: Uint8Array[],
    newSegment: boolean,
    entryIndexMax: number,
    sync = true,
  ): Promise<void> {
    let segment = this.segments[this.segments.length - 1];
    const created = segment === undefined || newSegment || segment.bytes >= this.options.segmentBytesMax;
    if (created) {
      const previousBytes = segment?.bytes ?? 0;
      segment = await this.createSegment();
      framed = [frameRecord(RECORD_SEGMENT_START, encodeU64s([previousBytes])), ...framed];
    }
    assert(segment !== undefined, "a segment to write to");
    const handle = this.handle ?? (await openFile(join(this.dir, segment.name), "r+"));
    this.handle = handle;
    const buffer = Buffer.concat(framed);
    await writeAll(handle, buffer, segment.bytes);
    if (sync || created) await handle.datasync();
    if (created) await syncDir(this.dir);
    segment.bytes += buffer.byteLength;
    segment.entryIndexMax = Math.max(segment.entryIndexMax, entryIndexMax);
  }

  private async createSegment(): Promise<SegmentInfo> {
    const last = this.segments[this.segments.length - 1];
    const seq = (last?.seq ?? 0) + 1;
    const segment: SegmentInfo = { seq, name: segmentName(seq), bytes: 0, entryIndexMax: 0 };
    const handle = this.handle;
    this.handle = null;
    await handle?.close();
    this.handle = await openFile(join(this.dir, segment.name), "wx");
    this.segments.push(segment);
    return segment;
  }

  /** Deletes the `count` oldest segments, oldest first, so that a crash leaves a suffix. */
  private async deleteOldestSegments(count: number): Promise<void> {
    assert(count < this.segments.length || count === 0, "the newest segment is kept");
    if (count <= 0) return;
    for (const segment of this.segments.slice(0, count)) await unlink(join(this.dir, segment.name));
    this.segments.splice(0, count);
    await syncDir(this.dir);
  }
}

// ---------------------------------------------------------------------------------------------
// Recovery.

interface Recovered {
  readonly state: RestoredState;
  readonly segments: SegmentInfo[];
  readonly report: RecoveryReport;
}

async function recover(dir: string): Promise<Recovered> {
  const scans = await scanSegments(dir);
  const tailCut = await cutTornTail(dir, scans);
  const problem = firstProblem(scans);
  if (problem !== null) {
    throw new StorageError("corrupt", `${problem.file} at byte ${problem.offset}: ${problem.why}; see FileStorage.repair`, {
      file: join(dir, problem.file),
      offset: problem.offset,
    });
  }
  const { snapshot, rolledForward } = await recoverSnapshot(dir, scans);
  const state = replay(dir, snapshot, scans);
  const segments = scans.map((scan) => ({
    seq: scan.seq,
    name: scan.name,
    bytes: scan.bytes.byteLength,
    entryIndexMax: entryIndexMaxOfScan(scan),
  }));
  // An empty last segment (its start record was torn) is removed, so every segment starts right.
  const last = segments[segments.length - 1];
  if (last !== undefined && last.bytes === 0) {
    await unlink(join(dir, last.name));
    segments.pop();
    await syncDir(dir);
  }
  return { state, segments, report: { tailCut, snapshotRolledForward: rolledForward } };
}

/** Reads and checks every segment, oldest first. */
async function scanSegments(dir: string): Promise<SegmentScan[]> {
  const names = (await readdir(dir)).filter((name) => SEGMENT_NAME.test(name)).sort();
  const scans: SegmentScan[] = [];
  for (const name of names) {
    const seq = Number((SEGMENT_NAME.exec(name) as RegExpExecArray)[1]);
    const bytes = new Uint8Array(await readFile(join(dir, name)));
    scans.push({ seq, name, bytes, ...scanRecords(bytes) });
  }
  return scans;
}

/**
 * Cuts a torn tail off the last segment: a bad record with no valid record after it. The scan is
 * updated in place to what is left.
 */
async function cutTornTail(dir: string, scans: SegmentScan[]): Promise<RecoveryReport["tailCut"]> {
  const last = scans[scans.length - 1];
  if (last === undefined || last.bad === null) return null;
  if (hasValidRecordAfter(last.bytes, last.bad.offset)) return null;
  const offset = last.bad.offset;
  const handle = await openFile(join(dir, last.name), "r+");
  try {
    await handle.truncate(offset);
    await handle.sync();
  } finally {
    await handle.close();
  }
  scans[scans.length - 1] = { ...last, bytes: last.bytes.subarray(0, offset), bad: null };
  return { file: join(dir, last.name), offset, bytes: last.bytes.byteLength - offset };
}

interface Problem {
  /** The file and offset to name. */
  readonly file: string;
  readonly offset: number;
  readonly why: string;
  /** Where repair cuts: the segment index and the offset in it (later segments go). */
  readonly cutIndex: number;
  readonly cutOffset: number;
}

/** The first thing wrong with the segments in order: a bad record, a gap, a short segment. */
function firstProblem(scans: readonly SegmentScan[]): Problem | null {
  for (let i = 0; i < scans.length; i += 1) {
    const scan = scans[i] as SegmentScan;
    const previous = scans[i - 1];
    if (previous !== undefined && scan.seq !== previous.seq + 1) {
      return { file: scan.name, offset: 0, why: `segment ${previous.seq + 1} is missing`, cutIndex: i, cutOffset: 0 };
    }
    const first = scan.records[0];
    if (first === undefined && scan.bad === null && i < scans.length - 1) {
      return { file: scan.name, offset: 0, why: "a segment before the last is empty", cutIndex: i, cutOffset: 0 };
    }
    if (first !== undefined && first.record.type !== RECORD_SEGMENT_START) {
      return { file: scan.name, offset: 0, why: "the segment does not begin with a start record", cutIndex: i, cutOffset: 0 };
    }
    if (previous !== undefined && first !== undefined && first.record.type === RECORD_SEGMENT_START) {
      const expected = first.record.previousBytes;
      if (expected !== previous.bytes.byteLength) {
        const why = `the segment is ${previous.bytes.byteLength} bytes long but ${scan.name} says it was ${expected}`;
        return { file: previous.name, offset: Math.min(expected, previous.bytes.byteLength), why, cutIndex: i, cutOffset: 0 };
      }
    }
    if (scan.bad !== null) return { file: scan.name, offset: scan.bad.offset, why: scan.bad.why, cutIndex: i, cutOffset: scan.bad.offset };
  }
  return null;
}

/**
 * Loads the snapshot file, finishing an install that a crash interrupted after its marker was
 * synced but before `snapshot.tmp` was renamed. A leftover `snapshot.tmp` is otherwise removed.
 */
async function recoverSnapshot(dir: string, scans: readonly SegmentScan[]): Promise<{ snapshot: Snapshot | undefined; rolledForward: boolean }> {
  let snapshot = await readSnapshotFile(dir, SNAPSHOT_FILE, true);
  const tmpPath = join(dir, SNAPSHOT_TMP_FILE);
  const marker = lastInstall(scans);
  let rolledForward = false;
  const matches = (s: Snapshot | undefined) => s !== undefined && marker !== null && s.index === marker.index && s.term === marker.term;
  if (marker !== null && !matches(snapshot) && !(snapshot !== undefined && snapshot.index > marker.index)) {
    const pending = await readSnapshotFile(dir, SNAPSHOT_TMP_FILE, false);
    if (!matches(pending)) {
      const why = `the log installs the snapshot at index ${marker.index} term ${marker.term}, which neither snapshot file holds`;
      throw new StorageError("corrupt", why, { file: join(dir, SNAPSHOT_FILE), offset: 0 });
    }
    await rename(tmpPath, join(dir, SNAPSHOT_FILE));
    await syncDir(dir);
    snapshot = pending;
    rolledForward = true;
  }
  await unlink(tmpPath).catch((error: unknown) => {
    if (!isErrno(error, "ENOENT")) throw error;
  });
  return { snapshot, rolledForward };
}

/**
 * Reads a snapshot file: one SNAPSHOT record and nothing else. With `strict`, a damaged file is
 * corruption; otherwise (the temporary file, perhaps half written) it reads as absent.
 */
async function readSnapshotFile(dir: string, name: string, strict: boolean): Promise<Snapshot | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(join(dir, name)));
  } catch (error) {
    if (isErrno(error, "ENOENT")) return undefined;
    throw error;
  }
  const read = readRecord(bytes, 0, SNAPSHOT_BYTES_MAX);
  let why = "";
  if (!read.ok) why = read.why;
  else if (read.type !== RECORD_SNAPSHOT) why = `record type ${read.type} where a snapshot belongs`;
  else if (read.end !== bytes.byteLength) why = `${bytes.byteLength - read.end} bytes after the snapshot record`;
  else {
    try {
      return decodeSnapshot(read.payload, { bytesMax: SNAPSHOT_BYTES_MAX });
    } catch (error) {
      why = `the snapshot does not decode: ${String(error)}`;
    }
  }
  if (!strict) return undefined;
  throw new StorageError("corrupt", `${name} at byte 0: ${why}`, { file: join(dir, name), offset: 0 });
}

function lastInstall(scans: readonly SegmentScan[]): { index: number; term: number } | null {
  for (let i = scans.length - 1; i >= 0; i -= 1) {
    const records = (scans[i] as SegmentScan).records;
    for (let j = records.length - 1; j >= 0; j -= 1) {
      const record = (records[j] as ScannedRecord).record;
      if (record.type === RECORD_INSTALL) return record;
    }
  }
  return null;
}

/** Replays the records over the snapshot file into the state they persist. */
function replay(dir: string, snapshot: Snapshot | undefined, scans: readonly SegmentScan[]): RestoredState {
  const base = snapshot?.index ?? 0;
  let hardState = EMPTY_STATE.hardState;
  let entries: Entry[] = [];
  for (const scan of scans) {
    for (const { offset, record } of scan.records) {
      if (record.type === RECORD_HARD_STATE) hardState = record.hardState;
      else if (record.type === RECORD_INSTALL) {
        if (record.index > base) {
          throw new StorageError("corrupt", `${scan.name} at byte ${offset}: installs index ${record.index}, beyond the snapshot file's ${base}`, {
            file: join(dir, scan.name),
            offset,
          });
        }
        entries = [];
      } else if (record.type === RECORD_ENTRIES) {
        const first = record.entries[0];
        if (first === undefined) continue;
        // The run replaces stored entries from its first index on; those the snapshot covers go.
        entries.length = Math.max(0, Math.min(entries.length, first.index - 1 - base));
        for (const entry of record.entries) if (entry.index > base) entries.push(entry);
      }
    }
  }
  entries.forEach((entry, i) => {
    if (entry.index !== base + 1 + i) {
      throw new StorageError("corrupt", `the replayed log has index ${entry.index} where ${base + 1 + i} belongs`, { file: dir });
    }
  });
  return snapshot === undefined ? { hardState, entries } : { hardState, snapshot, entries };
}

async function repairLocked(dir: string): Promise<RepairReport | null> {
  const scans = await scanSegments(dir);
  const problem = firstProblem(scans);
  if (problem === null) return null;
  const cut = scans[problem.cutIndex] as SegmentScan;
  const handle = await openFile(join(dir, cut.name), "r+");
  try {
    await handle.truncate(problem.cutOffset);
    await handle.sync();
  } finally {
    await handle.close();
  }
  const filesDeleted: string[] = [];
  for (const scan of scans.slice(problem.cutIndex + 1)) {
    await unlink(join(dir, scan.name));
    filesDeleted.push(join(dir, scan.name));
  }
  await syncDir(dir);
  return {
    file: join(dir, cut.name),
    offset: problem.cutOffset,
    why: problem.why,
    bytesCut: cut.bytes.byteLength - problem.cutOffset,
    filesDeleted,
  };
}

// ---------------------------------------------------------------------------------------------
// Records (pure).

/** `[length u32 LE][crc32c u32 LE][type u8][payload]`, the CRC over type and payload. */
function frameRecord(type: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(RECORD_HEADER_BYTES + payload.byteLength);
  const view = new DataView(out.buffer);
  out[8] = type;
  out.set(payload, RECORD_HEADER_BYTES);
  view.setUint32(0, payload.byteLength, true);
  view.setUint32(4, crc32c(out.subarray(8)), true);
  return out;
}

type ReadRecord =
  | { readonly ok: true; readonly type: number; readonly payload: Uint8Array; readonly end: number }
  | { readonly ok: false; readonly why: string };

/** Reads the record framed at `offset`, checking its length and checksum (not its payload). */
function readRecord(bytes: Uint8Array, offset: number, payloadBytesMax: number): ReadRecord {
  const left = bytes.byteLength - offset;
  if (left < RECORD_HEADER_BYTES) return { ok: false, why: `a ${left}-byte header (a record needs ${RECORD_HEADER_BYTES})` };
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, RECORD_HEADER_BYTES);
  const length = view.getUint32(0, true);
  if (length > payloadBytesMax) return { ok: false, why: `a length of ${length} bytes, over the maximum ${payloadBytesMax}` };
  const end = offset + RECORD_HEADER_BYTES + length;
  if (end > bytes.byteLength) return { ok: false, why: `a ${length}-byte record with only ${left - RECORD_HEADER_BYTES} bytes left` };
  if (crc32c(bytes.subarray(offset + 8, end)) !== view.getUint32(4, true)) return { ok: false, why: "a checksum mismatch" };
  return { ok: true, type: bytes[offset + 8] as number, payload: bytes.subarray(offset + RECORD_HEADER_BYTES, end), end };
}

/** Reads records until the end or the first bad one (bad frame, or a payload that does not decode). */
function scanRecords(bytes: Uint8Array): { records: ScannedRecord[]; bad: SegmentScan["bad"] } {
  const records: ScannedRecord[] = [];
  let offset = 0;
  while (offset < bytes.byteLength) {
    const read = readRecord(bytes, offset, RECORD_BYTES_MAX);
    if (!read.ok) return { records, bad: { offset, why: read.why } };
    let record: WalRecord;
    try {
      record = decodeRecord(read.type, read.payload);
    } catch (error) {
      return { records, bad: { offset, why: `a record that does not decode: ${String(error)}` } };
    }
    records.push({ offset, record });
    offset = read.end;
  }
  return { records, bad: null };
}

/** Whether any well-framed record with a known type starts after `offset`: then it is not a tail. */
function hasValidRecordAfter(bytes: Uint8Array, offset: number): boolean {
  for (let at = offset + 1; at + RECORD_HEADER_BYTES <= bytes.byteLength; at += 1) {
    const type = bytes[at + 8] as number;
    if (type < RECORD_HARD_STATE || type > RECORD_SEGMENT_START || type === RECORD_SNAPSHOT) continue;
    if (readRecord(bytes, at, RECORD_BYTES_MAX).ok) return true;
  }
  return false;
}

/** @throws on a payload that is not what its type says (CodecError, or Error for the u64 forms). */
function decodeRecord(type: number, payload: Uint8Array): WalRecord {
  const decode = { bytesMax: RECORD_BYTES_MAX };
  if (type === RECORD_HARD_STATE) return { type, hardState: decodeHardState(payload, decode) };
  if (type === RECORD_ENTRIES) return { type, entries: decodeEntries(payload, decode) };
  if (type === RECORD_INSTALL) {
    const [index, term] = decodeU64s(payload, 2) as [number, number];
    if (index < 1) throw new Error(`an install marker at index ${index}`);
    return { type, index, term };
  }
  if (type === RECORD_SEGMENT_START) return { type, previousBytes: decodeU64s(payload, 1)[0] as number };
  throw new Error(`unknown record type ${type}`);
}

function encodeInstall(snapshot: Snapshot): Uint8Array {
  return encodeU64s([snapshot.index, snapshot.term]);
}

function encodeU64s(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(8 * values.length);
  const view = new DataView(out.buffer);
  values.forEach((value, i) => {
    assert(Number.isSafeInteger(value) && value >= 0, () => `a u64 field is a safe non-negative integer, got ${value}`);
    view.setBigUint64(8 * i, BigInt(value), true);
  });
  return out;
}

function decodeU64s(payload: Uint8Array, count: number): number[] {
  if (payload.byteLength !== 8 * count) throw new Error(`${payload.byteLength} bytes where ${8 * count} belong`);
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const out: number[] = [];
  for (let i = 0; i < count; i += 1) {
    const value = view.getBigUint64(8 * i, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`a u64 field of ${value}, over the safe integers`);
    out.push(Number(value));
  }
  return out;
}

function lastEntryIndex(run: readonly Entry[]): number {
  return run[run.length - 1]?.index ?? 0;
}

function entryIndexMaxOfScan(scan: SegmentScan): number {
  let max = 0;
  for (const { record } of scan.records) {
    if (record.type === RECORD_ENTRIES) max = Math.max(max, record.entries[record.entries.length - 1]?.index ?? 0);
  }
  return max;
}

function lastIndex(state: RestoredState): number {
  return state.entries[state.entries.length - 1]?.index ?? state.snapshot?.index ?? 0;
}


/** `wal-<seq, 16 digits>.log`. */
export function segmentName(seq: number): string {
  return `wal-${String(seq).padStart(16, "0")}.log`;
}

// ---------------------------------------------------------------------------------------------
// Files, locks, options.

function validateOptions(options: FileStorageOptions): Options {
  const segmentBytesMax = options.segmentBytesMax ?? SEGMENT_BYTES_MAX_DEFAULT;
  const recordBytesMax = options.recordBytesMax ?? RECORD_BYTES_MAX;
  if (!Number.isSafeInteger(segmentBytesMax) || segmentBytesMax < 1) throw new ConfigError("segmentBytesMax", "must be a positive integer");
  if (!Number.isSafeInteger(recordBytesMax) || recordBytesMax < 1 || recordBytesMax > RECORD_BYTES_MAX) {
    throw new ConfigError("recordBytesMax", `must be an integer from 1 to ${RECORD_BYTES_MAX}`);
  }
  return { segmentBytesMax, recordBytesMax };
}

async function writeAll(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done, position + done);
    assert(bytesWritten > 0, "a write makes progress");
    done += bytesWritten;
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await openFile(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Runs file work, turning system errors into StorageError `io`. */
async function io<T>(file: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (StorageError.is(error) || error instanceof AssertionFailure) throw error;
    throw new StorageError("io", `${file}: ${String(error)}`, { file, cause: error });
  }
}

function isErrno(error: unknown, code: string): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === code;
}

/** Takes the directory's lock (see the module comment), or throws StorageError `locked`. */
async function acquireLock(dir: string): Promise<void> {
  if (openDirs.has(dir)) throw new StorageError("locked", `${dir} is already open in this process`, { file: join(dir, LOCK_FILE) });
  openDirs.add(dir);
  try {
    await io(dir, () => takeLockFile(dir));
  } catch (error) {
    openDirs.delete(dir);
    throw error;
  }
}

async function takeLockFile(dir: string): Promise<void> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      const handle = await openFile(path, "wx");
      try {
        await handle.writeFile(`${process.pid}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      return;
    } catch (error) {
      if (!isErrno(error, "EEXIST")) throw error;
    }
    const holder = await readLockPid(path);
    if (holder === null || isAlive(holder)) {
      const who = holder === null ? "a process that did not write its pid" : `process ${holder}`;
      throw new StorageError("locked", `${dir} is locked by ${who} (${path}); remove the file only if no process uses the directory`, {
        file: path,
      });
    }
    // The holder is dead: the lock is stale, left by a crash. Take it over.
    await unlink(path).catch((unlinkError: unknown) => {
      if (!isErrno(unlinkError, "ENOENT")) throw unlinkError;
    });
  }
  throw new StorageError("locked", `${dir} was locked by another process while taking over a stale lock`, { file: path });
}

async function readLockPid(path: string): Promise<number | null> {
  try {
    const text = (await readFile(path, "utf8")).trim();
    return /^\d+$/.test(text) ? Number(text) : null;
  } catch (error) {
    if (isErrno(error, "ENOENT")) return 0; // gone meanwhile: "dead", try again
    throw error;
  }
}

function isAlive(pid: number): boolean {
  // This process with the directory not open (openDirs was checked) is an earlier incarnation
  // that had the same pid, as happens to pid 1 in containers.
  if (pid === process.pid || pid === 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return !isErrno(error, "ESRCH");
  }
}

async function releaseLock(dir: string): Promise<void> {
  try {
    await unlink(join(dir, LOCK_FILE));
  } catch (error) {
    if (!isErrno(error, "ENOENT")) throw new StorageError("io", `cannot remove the lock of ${dir}: ${String(error)}`, { file: dir, cause: error });
  } finally {
    openDirs.delete(dir);
  }
}
