/**
 * orrery: exactly-one ownership of resources on top of Raft, proven by deterministic simulation.
 *
 * This entry point exports ownership (`createPlacementMember`: a member with the placement table and
 * its gateway; `createWorker`: a process that holds resources under leases), the host (`createNode`:
 * a member with its Ready loop, proposals, reads, membership and metrics), the pure Raft core (with membership configurations and snapshots), the
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

// Ownership: members that place resources, workers that hold them, the gateway that routes to them.
export {
  createPlacementMember,
  ACQUIRES_IN_FLIGHT_MAX,
  MOVE_WAIT_MS_DEFAULT,
  READY_APPLY_LAG_MAX,
  RESOURCE_KEY_LENGTH_MAX,
  WORKER_REQUESTS_IN_FLIGHT_MAX,
  WORKER_SERIES_MAX,
} from "./host/placement-member.ts";
export type { PlacementMember, PlacementMemberOptions } from "./host/placement-member.ts";
export {
  createWorker,
  WORKER_BODY_BYTES_MAX_DEFAULT,
  WORKER_CALL_ATTEMPTS_MAX,
  WORKER_CALL_TIMEOUT_MS_DEFAULT,
  WORKER_CALLS_PENDING_MAX,
  WORKER_HANDLE_TIMEOUT_MS_DEFAULT,
  WORKER_LEAVE_TIMEOUT_MS_DEFAULT,
} from "./host/worker.ts";
export type { OrreryWorker, WorkerOptions, WorkerClusterOptions, WorkerStats } from "./host/worker.ts";
export { createGateway, KEY_BYTES_MAX } from "./host/gateway.ts";
export type { Gateway, GatewayOptions, GatewayRoutes, GatewayStats } from "./host/gateway.ts";
export type { RouteAnswer } from "./host/placement-leader.ts";
export { ROUTING_HEADERS, keyOfUrl } from "./host/routing.ts";
export type { RefusalReason, ServeContext, WorkerRequest, WorkerResponse } from "./host/routing.ts";
export { workerAdmission, workerPeerId, WORKER_PEER_PREFIX } from "./host/worker-protocol.ts";
export { LEASE_MS_DEFAULT, LEASE_CONFIG_DEFAULTS } from "./placement/leases.ts";
export type { LeaseConfig, LeaseConfigInput, LeaseGrant } from "./placement/leases.ts";
export type { Assignment, ResourceKey, WorkerId, WorkerInfo } from "./placement/types.ts";
