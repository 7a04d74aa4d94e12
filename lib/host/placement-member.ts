/**
 * A member that places resources: `createNode` with the placement table as its state machine, the
 * leader's side of the lease protocol ({@link PlacementLeader}), a desk that answers workers'
 * requests arriving over the member's transport, and the routes the gateway asks (`routes`).
 * Production adds the HTTP gateway (`createPlacementMember` from `orrery`); the simulator drives
 * the same member with its own clock, network and disk.
 */
import { ConfigError, InvalidRequestError, NoOwnerError, OrreryError, CodecError } from "../errors.ts";
import { silentLogger, type Logger } from "../logger.ts";
import { encodePlacementCommand } from "../placement/commands.ts";
import { LEASE_MS_DEFAULT, resolveLeaseConfig, type LeaseConfigInput } from "../placement/leases.ts";
import type { PlacementResult, PlacementTable } from "../placement/table.ts";
import type { ResourceKey, WorkerId } from "../placement/types.ts";
import { sleep, type Clock } from "../ports/clock.ts";
import type { NodeId } from "../raft/messages.ts";
import type { GatewayRoutes } from "./gateway-routing.ts";
import { MetricsRegistry } from "./metrics.ts";
import { createNode, type OrreryNode } from "./node.ts";
import type { NodeOptions } from "./options.ts";
import { PlacementLeader, type RouteAnswer } from "./placement-leader.ts";
import { PlacementMachine, type PlacementApplied } from "./placement-machine.ts";
import {
  decodeWorkerRequest,
  encodeWorkerAnswer,
  workerOfPeer,
  type WorkerAnswerPayload,
  type WorkerRequestPayload,
} from "./worker-protocol.ts";

/** Worker requests a member works on at once; more are refused as busy (the worker retries). */
export const WORKER_REQUESTS_IN_FLIGHT_MAX = 4_096;

/** First-use acquisitions a member proposes at once; more answer "retry". */
export const ACQUIRES_IN_FLIGHT_MAX = 4_096;

/** How long a routed request waits for a moving key to land on its next owner, by default (ms). */
export const MOVE_WAIT_MS_DEFAULT = 5_000;

/** How often a waiting request looks at a moving key again (ms). */
export const MOVE_POLL_MS = 20;

/** Workers listed one by one in `/metrics` at most (the totals count every one). */
export const WORKER_SERIES_MAX = 256;

/** A member is ready when it knows a leader and has applied within this many entries of its commit index. */
export const READY_APPLY_LAG_MAX = 1_000;

/** The longest resource key (bytes of UTF-16 code units, as the table stores it). */
export const RESOURCE_KEY_LENGTH_MAX = 1_024;

/** Options of {@link createPlacementMember}: those of `createNode` without the state machine, and: */
export interface PlacementMemberOptions extends Omit<NodeOptions<PlacementResult>, "stateMachine" | "onWorkerPayload"> {
  /**
   * The lease settings; must be the same on every member and worker.
   * @defaultValue `{ leaseMs: LEASE_MS_DEFAULT }`
   */
  readonly lease?: LeaseConfigInput;
  /** How often the leader checks expiries, in ms. @defaultValue 50 */
  readonly placementTickMs?: number;
  /** How often a rebalance round may run, in ms. @defaultValue 1000 */
  readonly rebalanceEveryMs?: number;
  /** Keys one rebalance round moves at most. @defaultValue 8 */
  readonly rebalanceMovesPerRound?: number;
  /** How long a routed request waits for a moving key. @defaultValue {@link MOVE_WAIT_MS_DEFAULT} */
  readonly moveWaitMs?: number;
  /**
   * Told of every placement command this member applies, in log order, with what it did (grants
   * and their epochs, workers removed): for an audit log, or a test's checkers. Must not throw.
   */
  readonly onApplied?: PlacementApplied;
}

/** A running placement member. */
export interface PlacementMember {
  /** The Raft member underneath (status, membership, leadership transfer). */
  readonly node: OrreryNode<PlacementResult>;
  /** Where each key's requests go, for the gateway ({@link routeRequest} asks it). */
  readonly routes: GatewayRoutes;
  /** The placement table as this member has applied it (read-only: change it through commands). */
  table(): PlacementTable;
  /**
   * Where `key`'s requests go, acquiring it on first use; `fresh` first waits for a linearizable
   * read, so the answer reflects every command committed before the call.
   */
  route(key: ResourceKey, fresh?: boolean): Promise<RouteAnswer>;
  /** Whether the member is ready to route: a leader is known and this member has caught up. */
  ready(): { readonly ready: boolean; readonly reason?: string };
  /** Prometheus text: the node's metrics and the placement's (workers, keys, worker requests). */
  metrics(): string;
  /** What `/status` answers: the member's role, indexes and the table's workers. */
  statusJson(): unknown;
  /** Stops the placement timers and the node (which hands leadership over first). */
  close(): Promise<void>;
}

/**
 * Starts a placement member: the node, the placement leader logic and the worker desk.
 * @throws ConfigError for bad options; whatever `createNode` throws.
 */
export async function createPlacementMember(options: PlacementMemberOptions): Promise<PlacementMember> {
  const lease = options.lease ?? { leaseMs: LEASE_MS_DEFAULT };
  resolveLeaseConfig(lease);
  const moveWaitMs = options.moveWaitMs ?? MOVE_WAIT_MS_DEFAULT;
  if (!Number.isFinite(moveWaitMs) || moveWaitMs < 0) throw new ConfigError("moveWaitMs", `must be a number >= 0, got ${moveWaitMs}`);
  const logger = options.logger ?? silentLogger;
  if (options.clock === undefined) throw new ConfigError("clock", "is required");
  const clock = options.clock;
  const machine = new PlacementMachine();
  if (options.onApplied !== undefined) machine.subscribe(options.onApplied);
  const registry = new MetricsRegistry({ node: options.id });
  registry.counter("orrery_worker_requests_total", "Worker requests this member answered, by kind and outcome.");
  let desk: WorkerDesk | null = null;
  const { lease: _lease, placementTickMs, rebalanceEveryMs, rebalanceMovesPerRound, moveWaitMs: _wait, onApplied: _applied, ...nodeOptions } = options;
  const node = await createNode<PlacementResult>({
    ...nodeOptions,
    stateMachine: machine,
    onWorkerPayload: (from, payload) => desk?.onPayload(from, payload),
  });
  const leader = new PlacementLeader({
    node,
    machine,
    lease,
    logger,
    clock,
    ...(placementTickMs === undefined ? {} : { tickMs: placementTickMs }),
    ...(rebalanceEveryMs === undefined ? {} : { rebalanceEveryMs }),
    ...(rebalanceMovesPerRound === undefined ? {} : { rebalanceMovesPerRound }),
  });
  leader.start();
  desk = new WorkerDesk(node, leader, options.transport, registry, logger);
  const routes = new PlacementRoutes(node, machine, moveWaitMs, registry, clock);
  return new Member(node, machine, leader, routes, registry);
}

class Member implements PlacementMember {
  private closed = false;

  constructor(
    readonly node: OrreryNode<PlacementResult>,
    private readonly machine: PlacementMachine,
    private readonly leader: PlacementLeader,
    readonly routes: PlacementRoutes,
    private readonly registry: MetricsRegistry,
  ) {}

  table(): PlacementTable {
    return this.machine.table;
  }

  route(key: ResourceKey, fresh = false): Promise<RouteAnswer> {
    return this.routes.route(key, fresh);
  }

  ready(): { readonly ready: boolean; readonly reason?: string } {
    const status = this.node.status();
    if (status.closed || status.failure !== null) return { ready: false, reason: status.failure ?? "closed" };
    if (status.leader === null) return { ready: false, reason: "no leader known" };
    if (status.commit - status.applied > READY_APPLY_LAG_MAX) {
      return { ready: false, reason: `applied ${status.applied} of ${status.commit} committed entries` };
    }
    return { ready: true };
  }

  metrics(): string {
    const table = this.machine.table;
    const workers = table.workers();
    const node = `node="${escapeLabel(this.node.id)}"`;
    const lines = [
      "# HELP orrery_placement_workers Workers in the placement table, by status.",
      "# TYPE orrery_placement_workers gauge",
      `orrery_placement_workers{${node},status="active"} ${workers.filter((w) => w.status === "active").length}`,
      `orrery_placement_workers{${node},status="draining"} ${workers.filter((w) => w.status === "draining").length}`,
      "# HELP orrery_placement_keys Resource keys in the placement table.",
      "# TYPE orrery_placement_keys gauge",
      `orrery_placement_keys{${node}} ${table.size}`,
      "# HELP orrery_placement_keys_moving Keys draining from one owner to the next.",
      "# TYPE orrery_placement_keys_moving gauge",
      `orrery_placement_keys_moving{${node}} ${table.drainingKeys().length}`,
      "# HELP orrery_placement_worker_keys Keys each worker owns (the first WORKER_SERIES_MAX workers by id).",
      "# TYPE orrery_placement_worker_keys gauge",
      ...workers
        .slice(0, WORKER_SERIES_MAX)
        .map((w) => `orrery_placement_worker_keys{${node},worker="${escapeLabel(w.id)}"} ${table.keyCount(w.id)}`),
    ];
    return this.node.metrics() + this.registry.render() + lines.join("\n") + "\n";
  }

  statusJson(): unknown {
    const status = this.node.status();
    const table = this.machine.table;
    return {
      id: status.id,
      role: status.role,
      term: status.term,
      leader: status.leader,
      commit: status.commit,
      applied: status.applied,
      expiryDelayMs: this.leader.expiryDelayMs(),
      workers: table.workers().map((w) => ({ ...w, keys: table.keyCount(w.id) })),
      keys: table.size,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.leader.close();
    await this.node.close();
  }
}

/** Routes for the gateway: this member's applied table, acquiring on first use. */
class PlacementRoutes implements GatewayRoutes {
  private readonly acquiring = new Map<ResourceKey, Promise<PlacementResult>>();

  constructor(
    private readonly node: OrreryNode<PlacementResult>,
    private readonly machine: PlacementMachine,
    private readonly moveWaitMs: number,
    private readonly registry: MetricsRegistry,
    private readonly clock: Clock,
  ) {}

  async route(key: ResourceKey, fresh: boolean): Promise<RouteAnswer> {
    if (key.length === 0 || key.length > RESOURCE_KEY_LENGTH_MAX) {
      throw new InvalidRequestError(`a resource key has 1 to ${RESOURCE_KEY_LENGTH_MAX} characters`);
    }
    if (fresh) await this.node.read(() => undefined);
    const deadline = this.clock.now() + this.moveWaitMs;
    for (;;) {
      const table = this.machine.table;
      const assignment = table.assignment(key);
      if (assignment === undefined) {
        const result = await this.acquire(key);
        if (result.refused !== null && this.machine.table.assignment(key) === undefined) {
          return { status: "retry", reason: result.refused };
        }
        continue;
      }
      if (assignment.state === "active") {
        const address = table.worker(assignment.owner)?.address;
        if (address === undefined) throw new NoOwnerError(key, `its owner ${assignment.owner} is not in the table`);
        return { status: "ok", owner: assignment.owner, address, epoch: assignment.epoch };
      }
      // Moving: wait for the next owner's grant rather than fail the request.
      if (this.clock.now() >= deadline) return { status: "retry", reason: "the key is moving between owners" };
      this.registry.counter("orrery_gateway_move_waits_total", "Polls of a routed request waiting for a moving key.").inc();
      await sleep(this.clock, MOVE_POLL_MS);
    }
  }

  /** One acquire per key in flight, shared by every request that finds the key unowned. */
  private acquire(key: ResourceKey): Promise<PlacementResult> {
    const pending = this.acquiring.get(key);
    if (pending !== undefined) return pending;
    if (this.acquiring.size >= ACQUIRES_IN_FLIGHT_MAX) throw new NoOwnerError(key, "too many keys being acquired at once");
    this.registry.counter("orrery_gateway_acquires_total", "First-use acquisitions this member proposed.").inc();
    const promise = this.node.propose(encodePlacementCommand({ type: "acquire", key })).finally(() => this.acquiring.delete(key));
    this.acquiring.set(key, promise);
    return promise;
  }
}

/** Answers workers' requests (join, renew, release, leave); only the leader acts, others refuse with a hint. */
class WorkerDesk {
  private inFlight = 0;
  /** Reply addresses workers gave (HTTP transports), so a changed one is set again. */
  private readonly replyAddresses = new Map<NodeId, string>();

  constructor(
    private readonly node: OrreryNode<PlacementResult>,
    private readonly leader: PlacementLeader,
    private readonly transport: NodeOptions<PlacementResult>["transport"],
    private readonly registry: MetricsRegistry,
    private readonly logger: Logger,
  ) {}

  onPayload(from: NodeId, bytes: Uint8Array): void {
    const worker = workerOfPeer(from);
    if (worker === null) {
      this.logger.warn("dropping a payload from a malformed worker id", { peer: from });
      return;
    }
    let request: WorkerRequestPayload;
    try {
      request = decodeWorkerRequest(bytes);
    } catch (error) {
      if (!CodecError.is(error)) throw error;
      this.count("malformed", "malformed");
      this.logger.warn("dropping a malformed worker request", { peer: from, error });
      return;
    }
    if (request.replyTo !== null && this.replyAddresses.get(from) !== request.replyTo) {
      try {
        this.transport.setPeer(from, request.replyTo);
        this.replyAddresses.set(from, request.replyTo);
      } catch (error) {
        this.logger.warn("a worker gave a reply address that is not host:port", { peer: from, error });
        return;
      }
    }
    if (this.inFlight >= WORKER_REQUESTS_IN_FLIGHT_MAX) {
      this.answer(from, request, { kind: "refused", requestId: request.requestId, code: "ORRERY_DROPPED", reason: "busy", leaderHint: null });
      return;
    }
    this.inFlight += 1;
    this.handle(worker, request)
      .then((answer) => this.answer(from, request, answer))
      .catch((error: unknown) => this.logger.error("answering a worker failed", { peer: from, error }))
      .finally(() => (this.inFlight -= 1));
  }

  private async handle(worker: WorkerId, request: WorkerRequestPayload): Promise<WorkerAnswerPayload> {
    const requestId = request.requestId;
    const { leading, leader } = this.node.leadership();
    if (!leading) return { kind: "refused", requestId, code: "ORRERY_NOT_LEADER", reason: "not the leader", leaderHint: leader };
    try {
      switch (request.kind) {
        case "join": {
          const result = await this.leader.join(worker, request.address, request.capacity, request.zone);
          if (result.refused !== null) return { kind: "refused", requestId, code: "ORRERY_INVALID_REQUEST", reason: result.refused, leaderHint: null };
          this.logger.info("a worker joined", { worker, address: request.address, capacity: request.capacity, zone: request.zone });
          return { kind: "joined", requestId };
        }
        case "renew": {
          const answer = await this.leader.renew(worker);
          return { kind: "renewed", requestId, seq: request.seq, keys: answer.keys, member: answer.member };
        }
        case "release":
          await this.leader.release(worker, request.key, request.epoch);
          return { kind: "released", requestId };
        case "leave":
          await this.leader.leave(worker);
          this.logger.info("a worker is leaving", { worker });
          return { kind: "left", requestId };
      }
    } catch (error) {
      if (!OrreryError.isOrreryError(error)) throw error;
      const hint = (error as { leaderHint?: unknown }).leaderHint;
      return { kind: "refused", requestId, code: error.code, reason: error.message, leaderHint: typeof hint === "string" ? hint : null };
    }
  }

  private answer(to: NodeId, request: WorkerRequestPayload, answer: WorkerAnswerPayload): void {
    this.count(request.kind, answer.kind === "refused" ? answer.code : "ok");
    this.transport.sendPayload(to, encodeWorkerAnswer(answer));
  }

  private count(kind: string, outcome: string): void {
    this.registry.counter("orrery_worker_requests_total", "Worker requests this member answered, by kind and outcome.").inc(1, { kind, outcome });
  }
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}
