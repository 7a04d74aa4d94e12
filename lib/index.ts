/**
 * orrery: exactly-one ownership of resources on top of Raft, proven by deterministic simulation.
 *
 * This entry point exports the host (`createNode`: a member with its Ready loop, proposals, reads,
 * membership and metrics), the pure Raft core (with membership configurations and snapshots), the
 * codec, the errors users handle, the logger and the `Transport` interface. Adapters come as
 * subpath exports: `orrery/storage/file` (the file WAL), `orrery/transports/tcp`,
 * `orrery/transports/http` and `orrery/transports/memory`.
 */
export * from "./raft/index.ts";
export * from "./codec/index.ts";
export * from "./errors.ts";
export { AssertionFailure } from "./assert.ts";
export { MemoryStorage } from "./storage/memory.ts";
export { EMPTY_STATE, emptyState, applyBatch, applyBatchInPlace, applySnapshot } from "./storage/storage.ts";
export type { Storage, StorageBatch, MaybePromise } from "./storage/storage.ts";
export { createNode, RECENT_RESULTS_MAX, TICKS_PER_TIMER_MAX } from "./host/node.ts";
export type { OrreryNode, NodeStatus, LeadershipListener } from "./host/node.ts";
export { NODE_DEFAULTS } from "./host/options.ts";
export type { NodeOptions, StateMachine, HostRaftOptions } from "./host/options.ts";
export { MetricsRegistry, LATENCY_BUCKETS_SECONDS, SERIES_PER_METRIC_MAX } from "./host/metrics.ts";
export type { Counter, Gauge, Histogram, Labels } from "./host/metrics.ts";
export { jsonLogger, silentLogger, childLogger } from "./logger.ts";
export type { Logger, LogFields, LogLevel, JsonLoggerOptions } from "./logger.ts";
export type {
  Transport,
  TransportHandler,
  TransportOptions,
  TransportStats,
  TransportTlsOptions,
} from "../transports/transport.ts";
