/**
 * The storage conformance suite: what every {@link Storage} must do, run against each
 * implementation (memory, the simulator's disk, the file WAL) by calling
 * {@link describeStorageConformance} from a test file. Test support; not exported from the package.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Entry, HardState, Snapshot } from "../raft/messages.ts";
import type { RestoredState } from "../raft/raft.ts";
import { EMPTY_STATE, applyBatch, applySnapshot, emptyState, type Storage, type StorageBatch } from "./storage.ts";

/** A storage under test, and how to open it again over the same data (a restart). */
export interface StorageUnderTest {
  readonly storage: Storage;
  /** Closes (if the implementation needs it) and opens the same data again. */
  reopen(): Promise<Storage>;
}

const encoder = new TextEncoder();

/** An entry whose data names its index and term. */
export function entry(index: number, term: number, text = `${index}@${term}`): Entry {
  return { index, term, type: "normal", data: encoder.encode(text) };
}

function entries(from: number, to: number, term: number, tag = ""): Entry[] {
  const out: Entry[] = [];
  for (let index = from; index <= to; index += 1) out.push(entry(index, term, `${index}@${term}${tag}`));
  return out;
}

function snapshot(index: number, term: number, text = `state@${index}`): Snapshot {
  return { index, term, config: { voters: ["n1", "n2", "n3"], outgoing: [], learners: [] }, origin: "n1", data: encoder.encode(text) };
}

/** Plain data for deep comparison (Uint8Array views compared by content). */
function plain(state: RestoredState): unknown {
  const bytes = (data: Uint8Array) => [...data];
  return {
    hardState: state.hardState,
    snapshot: state.snapshot === undefined ? null : { ...state.snapshot, data: bytes(state.snapshot.data) },
    entries: state.entries.map((e) => ({ ...e, data: bytes(e.data) })),
  };
}

async function loadOf(storage: Storage): Promise<RestoredState> {
  return await storage.load();
}

/** Registers the conformance tests for one implementation. `open` gives a fresh, empty storage. */
export function describeStorageConformance(name: string, open: () => Promise<StorageUnderTest>): void {
  describe(`Storage conformance: ${name}`, () => {
    it("starts empty", async () => {
      const { storage } = await open();
      assert.deepEqual(plain(await loadOf(storage)), plain(EMPTY_STATE));
    });

    it("keeps the hard state and entries across a reopen", async () => {
      const under = await open();
      const hardState: HardState = { term: 3, vote: "n2", commit: 2 };
      await under.storage.append({ hardState, entries: entries(1, 4, 3) });
      const expected = { hardState, entries: entries(1, 4, 3) };
      assert.deepEqual(plain(await loadOf(under.storage)), plain(expected));
      assert.deepEqual(plain(await loadOf(await under.reopen())), plain(expected));
    });

    it("replaces a conflicting suffix from the first appended index on", async () => {
      const under = await open();
      await under.storage.append({ entries: entries(1, 5, 1) });
      await under.storage.append({ entries: entries(3, 4, 2, "'") });
      const expected = [...entries(1, 2, 1), ...entries(3, 4, 2, "'")];
      assert.deepEqual(plain(await loadOf(await under.reopen())), plain({ hardState: EMPTY_STATE.hardState, entries: expected }));
    });

    it("replaces the whole log with a snapshot from the leader, and appends after it", async () => {
      const under = await open();
      await under.storage.append({ hardState: { term: 1, vote: null, commit: 3 }, entries: entries(1, 6, 1) });
      await under.storage.append({ snapshot: snapshot(8, 2), hardState: { term: 2, vote: null, commit: 8 }, entries: entries(9, 10, 2) });
      const expected: RestoredState = { hardState: { term: 2, vote: null, commit: 8 }, snapshot: snapshot(8, 2), entries: entries(9, 10, 2) };
      assert.deepEqual(plain(await loadOf(await under.reopen())), plain(expected));
    });

    it("compacts with a local snapshot, keeping the entries after it, and ignores an older one", async () => {
      const under = await open();
      await under.storage.append({ hardState: { term: 1, vote: "n1", commit: 6 }, entries: entries(1, 8, 1) });
      await under.storage.saveSnapshot(snapshot(5, 1));
      await under.storage.saveSnapshot(snapshot(3, 1, "older"));
      const expected: RestoredState = { hardState: { term: 1, vote: "n1", commit: 6 }, snapshot: snapshot(5, 1), entries: entries(6, 8, 1) };
      assert.deepEqual(plain(await loadOf(under.storage)), plain(expected));
      assert.deepEqual(plain(await loadOf(await under.reopen())), plain(expected));
    });

    it("holds what a model holds after any sequence of batches, snapshots and reopens", async () => {
      type Op =
        | { readonly kind: "append"; readonly back: number; readonly count: number; readonly hard: boolean }
        | { readonly kind: "snapshot"; readonly back: number }
        | { readonly kind: "install"; readonly ahead: number; readonly count: number }
        | { readonly kind: "reopen" };
      const op: fc.Arbitrary<Op> = fc.oneof(
        { weight: 5, arbitrary: fc.record({ kind: fc.constant("append" as const), back: fc.nat(4), count: fc.integer({ min: 0, max: 6 }), hard: fc.boolean() }) },
        { weight: 2, arbitrary: fc.record({ kind: fc.constant("snapshot" as const), back: fc.nat(5) }) },
        { weight: 1, arbitrary: fc.record({ kind: fc.constant("install" as const), ahead: fc.integer({ min: 1, max: 5 }), count: fc.nat(3) }) },
        { weight: 2, arbitrary: fc.record({ kind: fc.constant("reopen" as const) }) },
      );
      await fc.assert(
        fc.asyncProperty(fc.array(op, { maxLength: 25 }), async (ops) => {
          const under = await open();
          let storage = under.storage;
          let model: RestoredState = emptyState();
          let term = 1;
          for (const o of ops) {
            const last = model.entries[model.entries.length - 1]?.index ?? model.snapshot?.index ?? 0;
            const base = model.snapshot?.index ?? 0;
            if (o.kind === "append") {
              term += 1;
              const from = Math.max(base + 1, last + 1 - o.back);
              const batch: StorageBatch = {
                entries: entries(from, from + o.count - 1, term),
                ...(o.hard ? { hardState: { term, vote: "n1", commit: Math.min(base, last) } } : {}),
              };
              await storage.append(batch);
              model = applyBatch(model, batch);
            } else if (o.kind === "snapshot") {
              const at = last - o.back;
              if (at <= base || at < 1) continue;
              const held = model.entries.find((e) => e.index === at) as Entry;
              const snap = snapshot(at, held.term);
              await storage.saveSnapshot(snap);
              model = applySnapshot(model, snap);
            } else if (o.kind === "install") {
              term += 1;
              const at = last + o.ahead;
              const batch: StorageBatch = { snapshot: snapshot(at, term), hardState: { term, vote: null, commit: at }, entries: entries(at + 1, at + o.count, term) };
              await storage.append(batch);
              model = applyBatch(model, batch);
            } else {
              storage = await under.reopen();
            }
            assert.deepEqual(plain(await loadOf(storage)), plain(model));
          }
        }),
        { numRuns: 60 },
      );
    });

    it("refuses use after close", async () => {
      const { storage } = await open();
      await storage.close();
      await assert.rejects(async () => {
        await storage.append({ entries: entries(1, 1, 1) });
      });
    });
  });
}
