/**
 * The file WAL beyond the conformance suite (which storage.test.ts runs against it): the lock,
 * recovery from torn tails and corruption, repair, segment rotation and deletion, limits.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cp, mkdtemp, readdir, readFile, rename, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, afterEach, before, describe, it } from "node:test";
import fc from "fast-check";
import { StorageError } from "../errors.ts";
import type { HardState, Snapshot } from "../raft/messages.ts";
import type { RestoredState } from "../raft/raft.ts";
import { entry } from "./conformance.ts";
import { FileStorage, RECORD_HEADER_BYTES } from "./file.ts";
import { mustSync } from "./storage.ts";
import { EMPTY_STATE, applyBatch, applySnapshot, type StorageBatch } from "./storage.ts";

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "orrery-file-"));
  dirs.push(dir);
  return dir;
}

/** Every storage a test opened; those a failing test left open are closed after it. */
const opened = new Set<FileStorage>();
async function openStorage(...args: Parameters<typeof FileStorage.open>): Promise<FileStorage> {
  const storage = await FileStorage.open(...args);
  opened.add(storage);
  return storage;
}
afterEach(async () => {
  // close() is idempotent, so storages the test closed itself are closed again harmlessly.
  for (const storage of opened) await storage.close();
  opened.clear();
});
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

function plain(state: RestoredState): unknown {
  return {
    hardState: state.hardState,
    snapshot: state.snapshot === undefined ? null : { ...state.snapshot, data: [...state.snapshot.data] },
    entries: state.entries.map((e) => ({ ...e, data: [...e.data] })),
  };
}

function snapshot(index: number, term: number): Snapshot {
  return { index, term, config: { voters: ["n1"], outgoing: [], learners: [] }, origin: "n1", data: new TextEncoder().encode(`s${index}`) };
}

async function segmentsOf(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.startsWith("wal-")).sort();
}

/** The records framed in a segment, as the format says: `[length][crc][type][payload]`. */
function framesOf(bytes: Uint8Array): { offset: number; end: number; type: number }[] {
  const out: { offset: number; end: number; type: number }[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let offset = 0; offset < bytes.byteLength; ) {
    const end = offset + RECORD_HEADER_BYTES + view.getUint32(offset, true);
    out.push({ offset, end, type: bytes[offset + 8] as number });
    offset = end;
  }
  return out;
}

async function expectCorrupt(dir: string, file: string, offset: number): Promise<void> {
  await assert.rejects(openStorage(dir), (error: unknown) => {
    assert.ok(StorageError.is(error), String(error));
    assert.equal(error.reason, "corrupt", error.message);
    assert.equal(error.file, join(dir, file), error.message);
    assert.equal(error.offset, offset, error.message);
    return true;
  });
}

/** Appends single-record batches (alternating entries and hard states) and returns each state. */
async function writeScenario(dir: string, batches: number, segmentBytesMax: number): Promise<RestoredState[]> {
  const storage = await openStorage(dir, { segmentBytesMax });
  const models: RestoredState[] = [EMPTY_STATE];
  let model = EMPTY_STATE;
  for (let i = 1; i <= batches; i += 1) {
    const index = model.entries.length + 1;
    const hardState: HardState = { term: i, vote: "n1", commit: index - 1 };
    const batch: StorageBatch = i % 3 === 0 ? { hardState, entries: [] } : { entries: [entry(index, 1)] };
    await storage.append(batch);
    model = applyBatch(model, batch);
    models.push(model);
  }
  await storage.close();
  return models;
}

// It spawns processes, so a hang fails here with this suite's name rather than at the run's timeout.
describe("FileStorage lock", { timeout: 300_000 }, () => {
  it("refuses a second open of the same directory in this process, and opens again after close", async () => {
    const dir = await tempDir();
    const first = await openStorage(dir);
    await assert.rejects(openStorage(dir), (error: unknown) => StorageError.is(error) && error.reason === "locked");
    assert.equal((await readFile(join(dir, "LOCK"), "utf8")).trim(), String(process.pid));
    await first.close();
    const second = await openStorage(dir);
    await second.close();
  });

  it("refuses an open from another process while the lock is held", async () => {
    const dir = await tempDir();
    const storage = await openStorage(dir);
    const url = pathToFileURL(join(import.meta.dirname, "file.ts")).href;
    const script = `import(${JSON.stringify(url)}).then((m) => m.FileStorage.open(${JSON.stringify(dir)}))
      .then(() => console.log("opened"), (e) => console.log(e.code, e.reason));`;
    // Bounded, but generously: tsx compiling the storage on a busy machine can take many seconds.
    const child = spawnSync(process.execPath, ["--import", "tsx", "-e", script], { encoding: "utf8", timeout: 120_000, killSignal: "SIGKILL" });
    assert.equal(child.stdout.trim(), "ORRERY_STORAGE locked", child.stderr);
    await storage.close();
  });

  it("takes over a stale lock whose process is dead", async () => {
    const dir = await tempDir();
    const dead = spawnSync(process.execPath, ["-e", ""], { timeout: 60_000, killSignal: "SIGKILL" }).pid as number;
    await writeFile(join(dir, "LOCK"), `${dead}\n`);
    const storage = await openStorage(dir);
    assert.equal((await readFile(join(dir, "LOCK"), "utf8")).trim(), String(process.pid));
    await storage.close();
  });

  it("refuses use after close with reason closed", async () => {
    const storage = await openStorage(await tempDir());
    await storage.close();
    await assert.rejects(storage.load(), (error: unknown) => StorageError.is(error) && error.reason === "closed");
    await storage.close();
  });
});

describe("FileStorage recovery", () => {
  it("cuts a torn last record and keeps every acknowledged batch before it", async () => {
    const pristine = await tempDir();
    const models = await writeScenario(pristine, 6, 1 << 20);
    const [name] = await segmentsOf(pristine);
    const bytes = new Uint8Array(await readFile(join(pristine, name as string)));
    const last = framesOf(bytes).pop() as { offset: number; end: number };
    for (const cut of [last.offset + 1, last.offset + RECORD_HEADER_BYTES, last.end - 1, last.offset + 4]) {
      const dir = await tempDir();
      await cp(pristine, dir, { recursive: true });
      await truncate(join(dir, name as string), cut);
      const storage = await openStorage(dir);
      assert.deepEqual(plain(await storage.load()), plain(models[5] as RestoredState));
      assert.deepEqual(storage.recovery.tailCut, { file: join(dir, name as string), offset: last.offset, bytes: cut - last.offset });
      assert.equal((await stat(join(dir, name as string))).size, last.offset);
      // The storage goes on from the cut, and what it writes survives.
      await storage.append({ entries: [entry(5, 2)] });
      await storage.close();
      const reopened = await openStorage(dir);
      const expected = applyBatch(models[5] as RestoredState, { entries: [entry(5, 2)] });
      assert.deepEqual(plain(await reopened.load()), plain(expected));
      await reopened.close();
    }
  });

  it("refuses a corrupt record before the tail, naming file and offset; repair cuts it", async () => {
    const dir = await tempDir();
    const models = await writeScenario(dir, 6, 1 << 20);
    const [name] = await segmentsOf(dir);
    const path = join(dir, name as string);
    const bytes = new Uint8Array(await readFile(path));
    const victim = framesOf(bytes)[3] as { offset: number; end: number }; // the third batch
    bytes[victim.end - 1] = (bytes[victim.end - 1] as number) ^ 0x40;
    await writeFile(path, bytes);
    await expectCorrupt(dir, name as string, victim.offset);
    const report = await FileStorage.repair(dir);
    assert.equal(report?.file, path);
    assert.equal(report?.offset, victim.offset);
    assert.equal(report?.bytesCut, bytes.byteLength - victim.offset);
    assert.equal(await FileStorage.repair(dir), null);
    const storage = await openStorage(dir);
    assert.deepEqual(plain(await storage.load()), plain(models[2] as RestoredState));
    await storage.close();
  });

  it("refuses a missing middle segment and a segment that lost its end", async () => {
    const dir = await tempDir();
    await writeScenario(dir, 12, 60);
    const names = await segmentsOf(dir);
    assert.ok(names.length >= 4, `${names.length} segments`);
    const copy = await tempDir();
    await cp(dir, copy, { recursive: true });
    await rm(join(copy, names[1] as string));
    await expectCorrupt(copy, names[2] as string, 0);
    // Truncated exactly at a record boundary: only the next segment's start record can tell.
    const first = framesOf(new Uint8Array(await readFile(join(dir, names[0] as string))));
    const boundary = (first[first.length - 1] as { offset: number }).offset;
    await truncate(join(dir, names[0] as string), boundary);
    await expectCorrupt(dir, names[0] as string, boundary);
  });

  it("finishes an install that a crash left in snapshot.tmp", async () => {
    const dir = await tempDir();
    const storage = await openStorage(dir);
    let model = EMPTY_STATE;
    const batches: StorageBatch[] = [{ entries: [entry(1, 1), entry(2, 1), entry(3, 1)] }];
    for (const batch of batches) await storage.append(batch);
    model = applyBatch(model, batches[0] as StorageBatch);
    await storage.saveSnapshot(snapshot(2, 1));
    model = applySnapshot(model, snapshot(2, 1));
    const older = await readFile(join(dir, "snapshot"));
    const install: StorageBatch = { snapshot: snapshot(9, 3), hardState: { term: 3, vote: null, commit: 9 }, entries: [entry(10, 3)] };
    await storage.append(install);
    model = applyBatch(model, install);
    await storage.close();
    // As if the crash came after the install's segment was synced, before the rename.
    await rename(join(dir, "snapshot"), join(dir, "snapshot.tmp"));
    await writeFile(join(dir, "snapshot"), older);
    const reopened = await openStorage(dir);
    assert.equal(reopened.recovery.snapshotRolledForward, true);
    assert.deepEqual(plain(await reopened.load()), plain(model));
    assert.ok(!(await readdir(dir)).includes("snapshot.tmp"));
    await reopened.close();
  });
});

describe("FileStorage segments and limits", () => {
  it("rotates segments and deletes those wholly below a local snapshot", async () => {
    const dir = await tempDir();
    const storage = await openStorage(dir, { segmentBytesMax: 150 });
    let model = EMPTY_STATE;
    for (let index = 1; index <= 20; index += 1) {
      const batch: StorageBatch = { hardState: { term: 1, vote: "n1", commit: index - 1 }, entries: [entry(index, 1)] };
      await storage.append(batch);
      model = applyBatch(model, batch);
    }
    const before = await segmentsOf(dir);
    assert.ok(before.length >= 5, `${before.length} segments`);
    await storage.saveSnapshot(snapshot(12, 1));
    model = applySnapshot(model, snapshot(12, 1));
    const kept = await segmentsOf(dir);
    assert.ok(kept.length < before.length, `${kept.length} of ${before.length} kept`);
    // The newest segment is never deleted (the re-written hard state may have opened a newer one).
    assert.ok(kept.includes(before[before.length - 1] as string));
    assert.deepEqual(plain(await storage.load()), plain(model));
    await storage.close();
    const reopened = await openStorage(dir, { segmentBytesMax: 150 });
    assert.deepEqual(plain(await reopened.load()), plain(model));
    await reopened.close();
  });

  it("keeps only the new segment after installing a leader's snapshot", async () => {
    const dir = await tempDir();
    const storage = await openStorage(dir, { segmentBytesMax: 100 });
    let model = EMPTY_STATE;
    for (let index = 1; index <= 10; index += 1) {
      await storage.append({ entries: [entry(index, 1)] });
      model = applyBatch(model, { entries: [entry(index, 1)] });
    }
    const install: StorageBatch = { snapshot: snapshot(30, 2), entries: [entry(31, 2)] };
    await storage.append(install);
    model = applyBatch(model, install);
    assert.equal((await segmentsOf(dir)).length, 1);
    await storage.close();
    const reopened = await openStorage(dir);
    assert.deepEqual(plain(await reopened.load()), plain(model));
    await reopened.close();
  });

  it("refuses a record over recordBytesMax before writing anything", async () => {
    const dir = await tempDir();
    const storage = await openStorage(dir, { recordBytesMax: 100 });
    await storage.append({ entries: [entry(1, 1)] });
    const sizes = await Promise.all((await segmentsOf(dir)).map(async (name) => (await stat(join(dir, name))).size));
    const big = { index: 2, term: 1, type: "normal" as const, data: new Uint8Array(200) };
    await assert.rejects(storage.append({ entries: [big] }), (error: unknown) => StorageError.is(error) && error.reason === "limit");
    const after = await Promise.all((await segmentsOf(dir)).map(async (name) => (await stat(join(dir, name))).size));
    assert.deepEqual(after, sizes);
    assert.equal((await storage.load()).entries.length, 1); // still usable
    await storage.close();
  });
});

describe("FileStorage damage property", () => {
  let pristine = "";
  let models: RestoredState[] = [];
  /** Every record of every segment, in order, with how many batches come before it. */
  let records: { file: number; offset: number; end: number; batchesBefore: number }[] = [];
  let names: string[] = [];
  let sizes: number[] = [];

  before(async () => {
    pristine = await tempDir();
    models = await writeScenario(pristine, 14, 130);
    names = await segmentsOf(pristine);
    let batches = 0;
    for (let file = 0; file < names.length; file += 1) {
      const bytes = new Uint8Array(await readFile(join(pristine, names[file] as string)));
      sizes.push(bytes.byteLength);
      for (const frame of framesOf(bytes)) {
        records.push({ file, offset: frame.offset, end: frame.end, batchesBefore: batches });
        if (frame.type !== 5) batches += 1; // every batch is one record; type 5 starts a segment
      }
    }
    assert.equal(batches, 14);
  });

  it("opens with a prefix when the damage is in the last segment's tail, and otherwise refuses with corrupt", async () => {
    assert.ok(names.length >= 3, `${names.length} segments`);
    const damage = fc.record({ file: fc.nat(names.length - 1), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }), truncate: fc.boolean() });
    await fc.assert(
      fc.asyncProperty(damage, async ({ file, at, xor, truncate: cut }) => {
        const name = names[file] as string;
        const position = at % (sizes[file] as number);
        const dir = await tempDir();
        await cp(pristine, dir, { recursive: true });
        const path = join(dir, name);
        if (cut) await truncate(path, position);
        else {
          const bytes = new Uint8Array(await readFile(path));
          bytes[position] = (bytes[position] as number) ^ xor;
          await writeFile(path, bytes);
        }
        const hit = records.find((r) => r.file === file && r.offset <= position && position < r.end);
        assert.ok(hit !== undefined);
        const isLast = file === names.length - 1;
        const tailRecord = hit === records[records.length - 1];
        if (isLast && (cut || tailRecord)) {
          const storage = await openStorage(dir);
          assert.deepEqual(plain(await storage.load()), plain(models[hit.batchesBefore] as RestoredState));
          await storage.close();
        } else {
          await expectCorrupt(dir, name, hit.offset);
          assert.notEqual(await FileStorage.repair(dir), null);
          const storage = await openStorage(dir);
          assert.deepEqual(plain(await storage.load()), plain(models[hit.batchesBefore] as RestoredState));
          await storage.close();
        }
        await rm(dir, { recursive: true, force: true });
      }),
      { numRuns: 150 },
    );
  });
});

describe("FileStorage fsync policy", () => {
  const written: HardState = { term: 3, vote: "n1", commit: 10 };
  it("skips the fsync only for a batch that just moves the commit index", () => {
    assert.equal(mustSync({ hardState: { term: 3, vote: "n1", commit: 12 }, entries: [] }, written), false);
    assert.equal(mustSync({ entries: [] }, written), false);
  });
  it("syncs entries, snapshots, and any change of term or vote", () => {
    assert.equal(mustSync({ entries: [entry(11, 3)] }, written), true);
    assert.equal(mustSync({ hardState: { term: 4, vote: null, commit: 10 }, entries: [] }, written), true);
    assert.equal(mustSync({ hardState: { term: 3, vote: "n2", commit: 10 }, entries: [] }, written), true);
    const snapshot: Snapshot = {
      index: 5,
      term: 2,
      origin: "n1",
      config: { voters: ["n1"], outgoing: [], learners: [] },
      data: new Uint8Array(),
    };
    assert.equal(mustSync({ snapshot, entries: [] }, written), true);
  });
});
