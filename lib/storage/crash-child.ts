/**
 * The child program of the crash test (crash.test.ts, issue #6): it writes to a {@link FileStorage}
 * until the test kills it with SIGKILL, and reports on stdout, one line each, what the storage
 * acknowledged, so the test can check afterwards that none of it was lost.
 *
 * ```
 * node --import tsx lib/storage/crash-child.ts <dir> <seed>
 * ```
 *
 * It opens the storage in `dir`, loads it, then appends batches of consecutive entries after the
 * last one loaded, forever (up to {@link CRASH_BATCHES_MAX}). The seed drives every choice, so a
 * failing run can be replayed up to the moment of the kill. Lines, each written once the operation
 * it names has resolved:
 *
 * ```
 * ready <lastIndex> <term>       the storage is open and loaded (lastIndex counts the snapshot)
 * acked <lastIndex> <term>       an append resolved; its entries (if any) have term <term>
 * snapshot <index> <term>        a saveSnapshot resolved
 * done                           CRASH_BATCHES_MAX batches were written and the storage closed
 * ```
 *
 * Entry and snapshot data are derived from the index ({@link crashEntryData},
 * {@link crashSnapshotData}), so the test can check every byte it reads back. Test support; not
 * exported from the package.
 */
import { realpathSync } from "node:fs";
import seedrandom from "seedrandom";
import type { Entry, HardState, Snapshot } from "../raft/messages.ts";
import type { RestoredState } from "../raft/raft.ts";
import { FileStorage } from "./file.ts";
import type { StorageBatch } from "./storage.ts";

/** Small, so that segments rotate every few batches and snapshots delete whole segments. */
export const CRASH_SEGMENT_BYTES_MAX = 4096;
/** The child stops by itself after this many batches, should nobody kill it. */
export const CRASH_BATCHES_MAX = 2000;
/** The most entries in one batch. */
export const CRASH_BATCH_ENTRIES_MAX = 20;
/** The member id the child votes for, and the snapshot's only voter and origin. */
export const CRASH_MEMBER = "n1";

const encoder = new TextEncoder();

/** The data of the entry at `index`: `v<index>` and 0 to 22 dots, varying with the index. */
export function crashEntryData(index: number): Uint8Array {
  return encoder.encode(`v${index}${".".repeat((index * 37) % 23)}`);
}

/** The state machine bytes of a snapshot at `index`. */
export function crashSnapshotData(index: number): Uint8Array {
  return encoder.encode(`s${index}`);
}

/** The index of the last entry, or of the snapshot when no entry follows it. */
export function crashLastIndex(state: RestoredState): number {
  return state.entries[state.entries.length - 1]?.index ?? state.snapshot?.index ?? 0;
}

/** What the child knows of the log it is writing. */
interface Writer {
  readonly random: () => number;
  readonly storage: FileStorage;
  /** The term of every entry above the snapshot, for the terms of later snapshots. */
  readonly terms: Map<number, number>;
  lastIndex: number;
  /** The hard state's term; every entry written from now on has it. */
  term: number;
  snapshotIndex: number;
}

function say(line: string): void {
  // A write to a pipe is synchronous on Linux: once this returns, the line outlives a SIGKILL.
  process.stdout.write(`${line}\n`);
}

function randomInt(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

/** One batch: 1 to 20 entries (rarely none), with a hard state when the term moves or by chance. */
function nextBatch(writer: Writer): StorageBatch {
  const { random } = writer;
  const bump = writer.term === 0 || random() < 0.1;
  if (bump) writer.term += randomInt(random, 1, 2);
  const withHardState = bump || random() < 0.2;
  const count = withHardState && random() < 0.05 ? 0 : randomInt(random, 1, CRASH_BATCH_ENTRIES_MAX);
  const entries: Entry[] = [];
  for (let i = 1; i <= count; i += 1) {
    const index = writer.lastIndex + i;
    entries.push({ index, term: writer.term, type: "normal", data: crashEntryData(index) });
  }
  // The commit names only entries already durable, so it never runs ahead of a recovered log.
  const hardState: HardState = { term: writer.term, vote: CRASH_MEMBER, commit: writer.lastIndex };
  return withHardState ? { hardState, entries } : { entries };
}

/** A snapshot of an index already written, with that entry's term. */
async function takeSnapshot(writer: Writer): Promise<void> {
  const index = randomInt(writer.random, writer.snapshotIndex + 1, writer.lastIndex);
  const term = writer.terms.get(index);
  if (term === undefined) throw new Error(`crash-child: no term known for index ${index}`);
  const snapshot: Snapshot = {
    index,
    term,
    config: { voters: [CRASH_MEMBER], outgoing: [], learners: [] },
    origin: CRASH_MEMBER,
    data: crashSnapshotData(index),
  };
  await writer.storage.saveSnapshot(snapshot);
  for (let i = writer.snapshotIndex + 1; i <= index; i += 1) writer.terms.delete(i);
  writer.snapshotIndex = index;
  say(`snapshot ${index} ${term}`);
}

async function main(dir: string, seed: string): Promise<void> {
  const storage = await FileStorage.open(dir, { segmentBytesMax: CRASH_SEGMENT_BYTES_MAX });
  const state = await storage.load();
  const writer: Writer = {
    random: seedrandom(`crash-child-${seed}`),
    storage,
    terms: new Map(state.entries.map((e) => [e.index, e.term])),
    lastIndex: crashLastIndex(state),
    term: state.hardState.term,
    snapshotIndex: state.snapshot?.index ?? 0,
  };
  say(`ready ${writer.lastIndex} ${writer.term}`);
  for (let batchNo = 0; batchNo < CRASH_BATCHES_MAX; batchNo += 1) {
    const batch = nextBatch(writer);
    await storage.append(batch);
    for (const e of batch.entries) writer.terms.set(e.index, e.term);
    writer.lastIndex += batch.entries.length;
    say(`acked ${writer.lastIndex} ${writer.term}`);
    if (writer.lastIndex > writer.snapshotIndex && writer.random() < 0.12) await takeSnapshot(writer);
  }
  await storage.close();
  say("done");
}

function isMain(): boolean {
  const script = process.argv[1];
  return script !== undefined && realpathSync(script) === realpathSync(import.meta.filename);
}

if (isMain()) {
  const [dir, seed] = process.argv.slice(2);
  if (dir === undefined || seed === undefined) {
    process.stderr.write("usage: crash-child.ts <dir> <seed>\n");
    process.exit(2);
  }
  // The parent gone (its end of the pipe closed): nobody will kill us, so stop.
  process.stdout.on("error", () => process.exit(3));
  main(dir, seed).catch((error: unknown) => {
    process.stderr.write(`crash-child: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
