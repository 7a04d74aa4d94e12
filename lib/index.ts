/**
 * orrery: exactly-one ownership of resources on top of Raft, proven by deterministic simulation.
 *
 * This entry point exports ownership (`createPlacementMember`: a member with the placement table and
 * its gateway; `createWorker`: a process that holds resources under leases), the host (`createNode`:
 * a member with its Ready loop, proposals, reads, membership and metrics), all on the Node clock
 * unless given another; the pure Raft core (with membership configurations and snapshots), the
 * codec, the errors users handle, the logger, and the ports the host is written against (`Clock`,
 * `Transport`, `Storage`). Adapters come as subpath exports: `orrery/storage/file` (the file WAL),
 * `orrery/transports/tcp`, `orrery/transports/http` and `orrery/transports/memory`.
 */
export * from "./raft/index.ts";
export * from "./codec/index.ts";
export * from "./errors.ts";
export { AssertionFailure } from "./assert.ts";
export { MemoryStorage } from "./storage/memory.ts";
export { EMPTY_STATE, emptyState, applyBatch, applyBatchInPlace, applySnapshot } from "./storage/storage.ts";

// The ports.
export type { Cancel, Clock } from "./ports/clock.ts";
export { sleep } from "./ports/clock.ts";
export type { Storage, StorageBatch, MaybePromise } from "./ports/storage.ts";
export type { Transport, TransportHandler, TransportStats } from "./ports/transport.ts";
export type { TransportOptions, TransportTlsOptions } from "../transports/transport.ts";
export { nodeClock } from "./runtime/clock.ts";

// A member of any replicated state machine.
export { createNode } from "./runtime/node.ts";
export { RECENT_RESULTS_MAX, TICKS_PER_TIMER_MAX, FORWARD_RETRY_MS } from "./host/node.ts";
export type { OrreryNode, NodeStatus, LeadershipListener } from "./host/node.ts";
export { NODE_DEFAULTS } from "./host/options.ts";
export type { NodeOptions, NodeObserver, StateMachine, HostRaftOptions } from "./host/options.ts";
export { MetricsRegistry, LATENCY_BUCKETS_SECONDS, SERIES_PER_METRIC_MAX } from "./host/metrics.ts";
export type { Counter, Gauge, Histogram, Labels } from "./host/metrics.ts";
export { jsonLogger, silentLogger, childLogger } from "./logger.ts";
export type { Logger, LogFields, LogLevel, JsonLoggerOptions } from "./logger.ts";

// Ownership: members that place resources, workers that hold them, the gateway that routes to them.
export { createPlacementMember } from "./runtime/node.ts";
export type { PlacementMember, PlacementMemberOptions } from "./runtime/node.ts";
export {
  ACQUIRES_IN_FLIGHT_MAX,
  MOVE_WAIT_MS_DEFAULT,
  READY_APPLY_LAG_MAX,
  RESOURCE_KEY_LENGTH_MAX,
  WORKER_REQUESTS_IN_FLIGHT_MAX,
  WORKER_SERIES_MAX,
} from "./host/placement-member.ts";
export type { PlacementApplied } from "./host/placement-machine.ts";
export { createWorker, WORKER_BODY_BYTES_MAX_DEFAULT } from "./runtime/worker.ts";
export type { OrreryWorker, WorkerOptions } from "./runtime/worker.ts";
export {
  WORKER_CALL_ATTEMPTS_MAX,
  WORKER_CALL_TIMEOUT_MS_DEFAULT,
  WORKER_CALLS_PENDING_MAX,
  WORKER_HANDLE_TIMEOUT_MS_DEFAULT,
  WORKER_LEAVE_TIMEOUT_MS_DEFAULT,
} from "./host/worker.ts";
export type { WorkerAgentOptions, WorkerStats, ServeResult } from "./host/worker.ts";
export { createGateway, KEY_BYTES_MAX } from "./runtime/gateway.ts";
export type { Gateway, GatewayOptions, GatewayStats } from "./runtime/gateway.ts";
export { routeRequest } from "./host/gateway-routing.ts";
export type { AttemptResult, GatewayAnswer, GatewayRoutes, OwnerRoute, RoutingContext } from "./host/gateway-routing.ts";
export type { RouteAnswer } from "./host/placement-leader.ts";
export { ROUTING_HEADERS, keyOfUrl } from "./host/routing.ts";
export type { RefusalReason, ServeContext, WorkerRequest, WorkerResponse } from "./host/routing.ts";
export { workerAdmission, workerPeerId, WORKER_PEER_PREFIX } from "./host/worker-protocol.ts";
export { LEASE_MS_DEFAULT, LEASE_CONFIG_DEFAULTS } from "./placement/leases.ts";
export type { LeaseConfig, LeaseConfigInput, LeaseGrant } from "./placement/leases.ts";
export type { Assignment, ResourceKey, WorkerId } from "./placement/types.ts";
