/**
 * The storage conformance suite, run against the memory storage and the simulator's disk (the file
 * WAL joins with issue #6).
 */
import { SimDisk } from "../../sim/disk.ts";
import { describeStorageConformance } from "./conformance.ts";
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
