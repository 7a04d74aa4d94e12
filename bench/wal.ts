/**
 * The file WAL's append throughput with fsync on (issue #6), next to what the disk itself can do.
 * Prints one JSON object. Run: `npm run bench:wal` (or `node --import tsx bench/wal.ts`).
 *
 * Everything runs in a fresh directory under `os.tmpdir()`, removed at the end; `dir` in the output
 * says which filesystem that was, since a tmpfs or a disk with a volatile write cache makes fsync
 * nearly free and the numbers meaningless for durability.
 *
 * 1. The disk: a loop of `write(100 bytes)` at the end of a plain file + `fdatasync`, through a
 *    `FileHandle`, for `WAL_BENCH_SECONDS`. Its rate is about the most fsyncs per second anything
 *    appending to a file can do there. A shared or virtual disk's rate drifts by tens of percent
 *    from second to second, so the loop runs half its time before the WAL runs and half after, and
 *    `rawFsyncsPerSecondBefore` / `After` show the drift.
 * 2. The WAL: for each batch size (1, 16, 256 entries of 100 data bytes), a fresh `FileStorage`
 *    appends batches of entries, one after another, for `WAL_BENCH_SECONDS`. Every append is one
 *    write and one fdatasync (group commit), so batches per second is the WAL's fsync rate, and
 *    `ratioToRawFsync` (batches/s ÷ raw fsyncs/s) is how close the WAL comes to the disk's limit:
 *    near 1 means fsync dominates, well below 1 means the WAL's own work (encoding, checksums,
 *    copying) does.
 *
 * `mbPerSecond` counts entry data bytes (10^6 bytes per MB); `walBytesPerEntry` says how many bytes
 * each entry took on disk with its framing and encoding. Batches are appended with entries only, no
 * hard state, as a leader's steady-state Ready mostly is. Nothing is compacted, so the log grows for
 * the whole run: `batchP50MsFirstTenth` and `batchP50MsLastTenth` show whether an append's cost
 * grows with the log's length.
 *
 * `WAL_BENCH_SECONDS` (default 3) shrinks the run; the test sets it small to check that the
 * benchmark still runs.
 */
import { randomFillSync } from "node:crypto";
import { mkdtemp, open as openFile, readdir, readFile, realpath, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { FileStorage } from "../lib/storage/file.ts";
import type { Entry } from "../lib/raft/messages.ts";

const SECONDS = Number(process.env.WAL_BENCH_SECONDS ?? 3);
const BATCH_ENTRIES = [1, 16, 256] as const;
const ENTRY_DATA_BYTES = 100;
/** Bytes per write in the raw fsync loop: as small as a one-entry WAL record, roughly. */
const RAW_WRITE_BYTES = 100;

/** Where the benchmark ran. */
interface DirInfo {
  readonly tmp: string;
  readonly path: string;
  readonly mount: string;
  readonly filesystem: string;
  readonly device: string;
}

/** One timed loop's results. */
interface Timing {
  readonly count: number;
  readonly seconds: number;
  /** Each call's latency in milliseconds, in call order. */
  readonly latenciesMs: readonly number[];
}

/** Runs `step` back to back (at least once) until `seconds` have passed, timing each call. */
async function timeLoop(seconds: number, step: (i: number) => Promise<void>): Promise<Timing> {
  const latencies: number[] = [];
  const started = performance.now();
  const deadline = started + seconds * 1000;
  let now = started;
  do {
    const stepStarted = now;
    await step(latencies.length);
    now = performance.now();
    latencies.push(now - stepStarted);
  } while (now < deadline);
  return { count: latencies.length, seconds: (now - started) / 1000, latenciesMs: latencies };
}

/** The `p`-quantile (0 < p ≤ 1) of non-empty `values`, by nearest rank, rounded to microseconds. */
function quantileMs(values: readonly number[], p: number): number {
  const sorted = Float64Array.from(values).sort();
  const rank = Math.max(1, Math.ceil(p * sorted.length));
  return round(sorted[rank - 1] as number, 3);
}

/** The median of the first or last tenth of `values` (at least one value). */
function tenthP50Ms(values: readonly number[], which: "first" | "last"): number {
  const length = Math.max(1, Math.floor(values.length / 10));
  return quantileMs(which === "first" ? values.slice(0, length) : values.slice(values.length - length), 0.5);
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** The disk's own fsync rate: append a small buffer to a new file `name`, fdatasync, repeat. */
async function rawFsyncs(dir: string, name: string, seconds: number): Promise<Timing> {
  const buffer = randomFillSync(Buffer.alloc(RAW_WRITE_BYTES));
  const handle = await openFile(join(dir, name), "wx");
  try {
    return await timeLoop(seconds, async (i) => {
      await handle.write(buffer, 0, buffer.byteLength, i * buffer.byteLength);
      await handle.datasync();
    });
  } finally {
    await handle.close();
  }
}

/** Appends batches of `batchEntries` entries to a fresh FileStorage in `dir` for `seconds`. */
async function walAppends(dir: string, batchEntries: number, seconds: number): Promise<Timing & { walBytes: number }> {
  const data = randomFillSync(new Uint8Array(ENTRY_DATA_BYTES));
  const storage = await FileStorage.open(dir);
  let timing: Timing;
  try {
    let index = 0;
    const nextBatch = (): Entry[] =>
      Array.from({ length: batchEntries }, () => ({ term: 1, index: ++index, type: "normal" as const, data }));
    let batch = nextBatch();
    timing = await timeLoop(seconds, async () => {
      await storage.append({ entries: batch });
      batch = nextBatch(); // timed too, but tiny next to a write and an fsync
    });
  } finally {
    await storage.close();
  }
  return { ...timing, walBytes: await segmentBytes(dir) };
}

/** The total size of the WAL segments in `dir`. */
async function segmentBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) {
    if (name.startsWith("wal-")) total += (await stat(join(dir, name))).size;
  }
  return total;
}

/** The mount holding `path`, from /proc/mounts (Linux); "unknown" elsewhere. */
async function describeDir(path: string): Promise<DirInfo> {
  const real = await realpath(path);
  let best = { mount: "unknown", filesystem: "unknown", device: "unknown" };
  try {
    for (const line of (await readFile("/proc/mounts", "utf8")).split("\n")) {
      const [device, rawMount, filesystem] = line.split(" ");
      if (device === undefined || rawMount === undefined || filesystem === undefined) continue;
      const mount = rawMount.replace(/\\040/g, " ");
      const inside = real === mount || real.startsWith(mount.endsWith("/") ? mount : `${mount}/`);
      // The longest matching mount wins; a later line for the same mount point shadows earlier ones.
      if (inside && (best.mount === "unknown" || mount.length >= best.mount.length)) best = { mount, filesystem, device };
    }
  } catch {
    // No /proc/mounts (not Linux): the filesystem stays unknown.
  }
  return { tmp: tmpdir(), path: real, ...best };
}

async function main(): Promise<void> {
  if (!Number.isFinite(SECONDS) || SECONDS <= 0) throw new Error(`WAL_BENCH_SECONDS must be a positive number, not ${process.env.WAL_BENCH_SECONDS}`);
  const dir = await mkdtemp(join(tmpdir(), "orrery-wal-bench-"));
  try {
    const dirInfo = await describeDir(dir);
    const rawBefore = await rawFsyncs(dir, "raw-before.dat", SECONDS / 2);
    const wals = [];
    for (const batchEntries of BATCH_ENTRIES) {
      wals.push({ batchEntries, ...(await walAppends(join(dir, `batch-${batchEntries}`), batchEntries, SECONDS)) });
    }
    const rawAfter = await rawFsyncs(dir, "raw-after.dat", SECONDS / 2);
    const rawPerSecond = (rawBefore.count + rawAfter.count) / (rawBefore.seconds + rawAfter.seconds);
    const rawLatenciesMs = [...rawBefore.latenciesMs, ...rawAfter.latenciesMs];
    const sizes = wals.map((wal) => {
      const batchesPerSecond = wal.count / wal.seconds;
      const entries = wal.count * wal.batchEntries;
      return {
        batchEntries: wal.batchEntries,
        batches: wal.count,
        entriesPerSecond: Math.round(entries / wal.seconds),
        mbPerSecond: round((entries * ENTRY_DATA_BYTES) / 1e6 / wal.seconds, 3),
        batchesPerSecond: round(batchesPerSecond, 1),
        batchP50Ms: quantileMs(wal.latenciesMs, 0.5),
        batchP99Ms: quantileMs(wal.latenciesMs, 0.99),
        batchP50MsFirstTenth: tenthP50Ms(wal.latenciesMs, "first"),
        batchP50MsLastTenth: tenthP50Ms(wal.latenciesMs, "last"),
        ratioToRawFsync: round(batchesPerSecond / rawPerSecond, 3),
        walBytesPerEntry: round(wal.walBytes / entries, 1),
      };
    });
    process.stdout.write(
      `${JSON.stringify({
        node: process.version,
        dir: dirInfo,
        seconds: SECONDS,
        entryDataBytes: ENTRY_DATA_BYTES,
        rawFsyncsPerSecond: round(rawPerSecond, 1),
        rawFsyncsPerSecondBefore: round(rawBefore.count / rawBefore.seconds, 1),
        rawFsyncsPerSecondAfter: round(rawAfter.count / rawAfter.seconds, 1),
        rawFsyncP50Ms: quantileMs(rawLatenciesMs, 0.5),
        rawFsyncP99Ms: quantileMs(rawLatenciesMs, 0.99),
        sizes,
      })}\n`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
