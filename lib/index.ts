/**
 * orrery: exactly-one ownership of resources on top of Raft, proven by deterministic simulation.
 *
 * This entry point exports the pure Raft core (with membership configurations and snapshots), the
 * codec and the errors users handle. Adapters (transports, file storage, the simulator) come as
 * subpath exports as they land.
 */
export * from "./raft/index.ts";
export * from "./codec/index.ts";
export * from "./errors.ts";
export { AssertionFailure } from "./assert.ts";
export { MemoryStorage } from "./storage/memory.ts";
export { EMPTY_STATE, emptyState, applyBatch, applyBatchInPlace, applySnapshot } from "./storage/storage.ts";
export type { Storage, StorageBatch, MaybePromise } from "./storage/storage.ts";
