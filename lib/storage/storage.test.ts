/**
 * The storage conformance suite, run against the memory storage, the simulator's disk and the file
 * WAL (a fresh temporary directory per storage; a reopen closes it and opens the directory again).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { SimDisk } from "../../sim/disk.ts";
import { describeStorageConformance } from "./conformance.ts";
import { FileStorage } from "./file.ts";
import { MemoryStorage } from "./memory.ts";

describeStorageConformance("MemoryStorage", async () => {
  const storage = new MemoryStorage();
  return { storage, reopen: async () => storage };
});

describeStorageConformance("SimDisk (the simulator's disk)", async () => {
  const disk = new SimDisk();
  // A restart reads back only what was synced; append syncs, so everything is there.
  return { storage: disk, reopen: async () => disk };
});

/** Every file storage the suite opened, by directory, closed and removed after the suite. */
const fileStorages = new Map<string, FileStorage>();

after(async () => {
  for (const [dir, storage] of fileStorages) {
    // A storage that fails to close still has its directory removed.
    try {
      await storage.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
});

describeStorageConformance("FileStorage (the file WAL)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "orrery-wal-"));
  // Small segments, so that the suite also crosses segment boundaries and deletes segments.
  const options = { segmentBytesMax: 256 };
  const storage = await FileStorage.open(dir, options);
  fileStorages.set(dir, storage);
  return {
    storage,
    reopen: async () => {
      await (fileStorages.get(dir) as FileStorage).close();
      const reopened = await FileStorage.open(dir, options);
      fileStorages.set(dir, reopened);
      return reopened;
    },
  };
});
