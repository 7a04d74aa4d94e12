/**
 * The worker agent: a process that holds resources under leases (DESIGN.md §3) and serves the
 * requests members' gateways route to it, written against the `Transport` and `Clock` ports.
 * Production wraps it in an HTTP server (`createWorker` from `orrery`); the simulator runs the same
 * agent on its simulated network and clock.
 *
 * The worker speaks to members over the same transports members use among themselves (TCP or
 * HTTP, the same handshake and shared secret), as peer `worker:<id>`. It joins, then renews every
 * `renewEveryMs`; each renewal answer lists the keys it owns, and the pure {@link WorkerLease}
 * decides what may be served and until when. `onAcquire`/`onRelease` run as grants come and go
 * (serialized, in key order; a key's in-flight requests finish before its `onRelease`), and a
 * draining key is released and then confirmed so the leader can hand it on. A routed request for a
 * key the worker may not serve at that epoch is refused (`admit`), except that a grant newer than
 * any the worker knows of makes it renew at once and look again (so a key's first request is
 * served, not bounced).
 */
import { ClosedError, ConfigError, StaleEpochError, TimeoutError } from "../errors.ts";
import { silentLogger, type Logger } from "../logger.ts";
import { LEASE_MS_DEFAULT, resolveLeaseConfig, type LeaseConfig, type LeaseConfigInput, type LeaseGrant } from "../placement/leases.ts";
import type { ResourceKey, WorkerId } from "../placement/types.ts";
import { WorkerLease } from "../placement/worker.ts";
import { sleep, type Cancel, type Clock } from "../ports/clock.ts";
import type { Transport } from "../ports/transport.ts";
import type { NodeId } from "../raft/messages.ts";
import type { RefusalReason, ServeContext, WorkerRequest, WorkerResponse } from "./routing.ts";
import {
  decodeWorkerAnswer,
  encodeWorkerRequest,
  validWorkerId,
  workerPeerId,
  type WorkerAnswerPayload,
  type WorkerRequestPayload,
} from "./worker-protocol.ts";

/** Requests to members awaiting an answer at once; more fail at once. */
export const WORKER_CALLS_PENDING_MAX = 1_024;
/** Tries of one request to members (each to the believed leader, then the next member). */
export const WORKER_CALL_ATTEMPTS_MAX = 12;
/** How long a worker waits for one answer from a member, by default (ms). */
export const WORKER_CALL_TIMEOUT_MS_DEFAULT = 1_000;
/** How long a handler may take, by default (ms); the request is then answered 504. */
export const WORKER_HANDLE_TIMEOUT_MS_DEFAULT = 30_000;
/** How long a graceful leave waits for the keys to move away, by default (ms). */
export const WORKER_LEAVE_TIMEOUT_MS_DEFAULT = 30_000;
/** How often the worker looks at its lease between renewals (ms), so a lapse releases promptly. */
export const WORKER_RECONCILE_EVERY_MS = 50;
/** How long a worker waits after a refusal that names no leader before it asks again (ms). */
export const WORKER_CALL_BACKOFF_MS = 50;

/** Options of the worker agent ({@link startWorkerAgent}); `createWorker` adds the HTTP server. */
export interface WorkerAgentOptions {
  /** The worker's id: 1 to 128 of `[A-Za-z0-9._-]`, stable across restarts. */
  readonly id: WorkerId;
  /**
   * The members by id, with their transport addresses (`host:port`); the agent sets them as peers
   * of its transport.
   */
  readonly members: Readonly<Record<NodeId, string>>;
  /**
   * How the worker reaches members: a transport whose id is `workerPeerId(id)`
   * (`worker:<id>`), with the cluster's id and secret. The agent starts and closes it.
   */
  readonly transport: Transport;
  /** The worker's time: renewals, lease checks and handler timeouts. */
  readonly clock: Clock;
  /** Where gateways send this worker's routed requests (`host:port`). */
  readonly address: string;
  /**
   * A number no earlier incarnation of this worker used as a renewal sequence number, and larger
   * than all of them (the wall clock in microseconds does): an answer to a renewal sent before a
   * restart must never be taken for one sent after it.
   */
  readonly incarnation: number;
  /** Relative capacity (a worker of 2 gets twice the keys of one of 1). @defaultValue 1 */
  readonly capacity?: number;
  /** Failure domain; keys of a failed worker spread across zones. @defaultValue "default" */
  readonly zone?: string;
  /** The lease settings, the same as the members'. @defaultValue `{ leaseMs: LEASE_MS_DEFAULT }` */
  readonly lease?: LeaseConfigInput;
  /** How often to renew (ms). @defaultValue a quarter of `leaseMs` */
  readonly renewEveryMs?: number;
  /** @defaultValue {@link WORKER_CALL_TIMEOUT_MS_DEFAULT} */
  readonly callTimeoutMs?: number;
  /** @defaultValue {@link WORKER_HANDLE_TIMEOUT_MS_DEFAULT} */
  readonly handleTimeoutMs?: number;
  /** Called (awaited) before requests for `key` at `epoch` are served: open the resource, fence it. */
  readonly onAcquire?: (key: ResourceKey, epoch: number) => void | Promise<void>;
  /** Called (awaited) once `key` at `epoch` may no longer be served and its requests finished. */
  readonly onRelease?: (key: ResourceKey, epoch: number) => void | Promise<void>;
  /** Serves one routed request. Throw `StaleEpochError` when the resource's fence refuses a write. */
  readonly handle: (request: WorkerRequest, context: ServeContext) => WorkerResponse | Promise<WorkerResponse>;
  readonly logger?: Logger;
}

/** Counters of a worker. */
export interface WorkerStats {
  readonly keys: number;
  readonly requestsServed: number;
  readonly requestsRefused: number;
  readonly requestsFailed: number;
  readonly renewalsSent: number;
  readonly renewalsAnswered: number;
  readonly acquired: number;
  readonly released: number;
  readonly joins: number;
}

/** How a routed request ended, for the server that carries it to answer. */
export type ServeResult =
  | { readonly kind: "response"; readonly response: WorkerResponse }
  /** The worker may not serve the key at that epoch (or the resource's fence refused): 409. */
  | { readonly kind: "refused"; readonly reason: RefusalReason; readonly message: string }
  /** The handler took longer than `handleTimeoutMs`: 504. */
  | { readonly kind: "timeout"; readonly message: string }
  /** The handler threw, or the client went away: 500. */
  | { readonly kind: "failed"; readonly message: string };

/** The agent's side of the worker, as servers and the simulator drive it. */
export interface WorkerAgent {
  readonly id: WorkerId;
  /** Where routed requests arrive (the advertised address). */
  address(): string;
  /** Resolves once the worker has joined and its first renewal was answered. @throws TimeoutError, ClosedError */
  ready(timeoutMs?: number): Promise<void>;
  /** The keys (with epochs) the worker serves now, in key order: those a request would be served for. */
  owned(): Array<{ readonly key: ResourceKey; readonly epoch: number }>;
  /**
   * The time on the worker's clock (ms) until which its lease holds, or `null` before the first
   * answer: nothing is served at or after it unless a renewal answer extends it.
   */
  leaseUntil(): number | null;
  /**
   * A number that changes whenever what `owned()` returns may have changed, other than by the
   * lease running out (see `leaseUntil`): a watcher can skip comparing while it stays the same.
   */
  ownershipVersion(): number;
  stats(): WorkerStats;
  /**
   * `null` when `key` at `epoch` may be served now, else why not. A grant newer than any this
   * worker knows of makes it renew once, at once, and look again.
   */
  admit(key: ResourceKey, epoch: number): Promise<RefusalReason | null>;
  /** Runs the handler for an admitted request (within `handleTimeoutMs`; `signal`: the client left). */
  run(request: WorkerRequest, key: ResourceKey, epoch: number, signal?: AbortSignal): Promise<ServeResult>;
  /** `admit`, then `run`: what a server calls when it has the whole request. */
  serve(request: WorkerRequest, key: ResourceKey, epoch: number, signal?: AbortSignal): Promise<ServeResult>;
  /**
   * Leaves gracefully: the worker's keys drain to others (each released after its in-flight
   * requests finish), then the leader removes it. Resolves once removed.
   * @throws TimeoutError after `timeoutMs`
   */
  leave(timeoutMs?: number): Promise<void>;
  /** Stops the agent; with `leave` (the default) it first leaves gracefully. Idempotent. */
  close(options?: { readonly leave?: boolean }): Promise<void>;
}

/**
 * Starts a worker agent: starts its transport, joins and starts renewing. `ready()` tells when it
 * has joined.
 * @throws ConfigError for bad options; TransportError when the transport cannot start.
 */
export async function startWorkerAgent(options: WorkerAgentOptions): Promise<WorkerAgent> {
  const agent = new Agent(options);
  await agent.start();
  return agent;
}

interface PendingCall {
  readonly resolve: (answer: WorkerAnswerPayload) => void;
  readonly cancel: Cancel;
}

/** The agent. Exported for the mutation tests, which patch its rules; use {@link startWorkerAgent}. */
export class Agent implements WorkerAgent {
  readonly id: WorkerId;
  private readonly lease: WorkerLease;
  private readonly leaseConfig: LeaseConfig;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly transport: Transport;
  private readonly memberIds: readonly NodeId[];
  private readonly renewEveryMs: number;
  private readonly callTimeoutMs: number;
  private readonly handleTimeoutMs: number;
  private target: NodeId;
  private nextRequestId = 1;
  private readonly calls = new Map<number, PendingCall>();
  private nextSeq: number;
  private renewal: Promise<void> | null = null;
  private queuedRenewal: Promise<void> | null = null;
  private reconciling: Promise<void> = Promise.resolve();
  /** Keys whose `onAcquire` completed and that are not released: what requests may be served by. */
  private readonly serving = new Map<ResourceKey, number>();
  private readonly inFlight = new Map<ResourceKey, { count: number; idle: (() => void)[] }>();
  private joined = false;
  private leaving = false;
  private removed = false;
  private closed = false;
  private readyWaiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  private isReady = false;
  private renewTimer: Cancel | null = null;
  private reconcileTimer: Cancel | null = null;
  /** Incremented whenever a renewal answer is taken or a grant starts or stops being served. */
  private ownershipChanges = 0;
  private readonly counts = {
    requestsServed: 0,
    requestsRefused: 0,
    requestsFailed: 0,
    renewalsSent: 0,
    renewalsAnswered: 0,
    acquired: 0,
    released: 0,
    joins: 0,
  };

  constructor(private readonly options: WorkerAgentOptions) {
    if (typeof options.id !== "string" || !validWorkerId(options.id)) {
      throw new ConfigError("id", `a worker id is 1 to 128 of [A-Za-z0-9._-], got ${JSON.stringify(options.id)}`);
    }
    if (typeof options.transport !== "object" || options.transport === null) throw new ConfigError("transport", "is required");
    if (typeof options.clock !== "object" || options.clock === null) throw new ConfigError("clock", "is required");
    if (options.transport.id !== workerPeerId(options.id)) {
      throw new ConfigError("transport", `must speak as ${workerPeerId(options.id)}, not ${options.transport.id}`);
    }
    if (!Number.isSafeInteger(options.incarnation) || options.incarnation < 0) {
      throw new ConfigError("incarnation", "must be a non-negative safe integer");
    }
    this.id = options.id;
    this.leaseConfig = resolveLeaseConfig(options.lease ?? { leaseMs: LEASE_MS_DEFAULT });
    this.lease = new WorkerLease(this.leaseConfig);
    this.logger = options.logger ?? silentLogger;
    this.clock = options.clock;
    this.transport = options.transport;
    this.nextSeq = options.incarnation;
    this.renewEveryMs = options.renewEveryMs ?? this.leaseConfig.leaseMs / 4;
    this.callTimeoutMs = options.callTimeoutMs ?? WORKER_CALL_TIMEOUT_MS_DEFAULT;
    this.handleTimeoutMs = options.handleTimeoutMs ?? WORKER_HANDLE_TIMEOUT_MS_DEFAULT;
    positive("renewEveryMs", this.renewEveryMs);
    positive("callTimeoutMs", this.callTimeoutMs);
    positive("handleTimeoutMs", this.handleTimeoutMs);
    if (this.renewEveryMs >= this.leaseConfig.leaseMs * (1 - this.leaseConfig.clockDriftMax)) {
      throw new ConfigError("renewEveryMs", `must be well below the lease (${this.leaseConfig.leaseMs} ms)`);
    }
    const capacity = options.capacity ?? 1;
    if (!(typeof capacity === "number" && Number.isFinite(capacity) && capacity > 0)) throw new ConfigError("capacity", "must be a number > 0");
    if (typeof options.members !== "object" || options.members === null) throw new ConfigError("members", "must map member ids to addresses");
    this.memberIds = Object.keys(options.members).sort();
    if (this.memberIds.length === 0) throw new ConfigError("members", "name at least one member");
    this.target = this.memberIds[0] as NodeId;
  }

  async start(): Promise<void> {
    for (const id of this.memberIds) this.transport.setPeer(id, this.options.members[id] as string);
    await this.transport.start({
      onMessage: () => this.logger.warn("dropping a Raft message sent to a worker"),
      onPayload: (from, payload) => this.onAnswer(from, payload),
    });
    this.armReconcileTimer();
    this.scheduleRenewal(0);
  }

  address(): string {
    return this.options.address;
  }

  ready(timeoutMs = 30_000): Promise<void> {
    if (this.isReady) return Promise.resolve();
    if (this.closed) return Promise.reject(new ClosedError("worker ready"));
    return new Promise((resolve, reject) => {
      const cancel = this.clock.after(timeoutMs, () => {
        this.readyWaiters = this.readyWaiters.filter((w) => w !== waiter);
        reject(new TimeoutError(`worker ${this.id} joining`, timeoutMs));
      });
      const waiter = {
        resolve: () => (cancel(), resolve()),
        reject: (error: unknown) => (cancel(), reject(error)),
      };
      this.readyWaiters.push(waiter);
    });
  }

  owned(): Array<{ readonly key: ResourceKey; readonly epoch: number }> {
    return [...this.serving]
      .filter(([key, epoch]) => this.servable(key, epoch))
      .map(([key, epoch]) => ({ key, epoch }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  leaseUntil(): number | null {
    return this.lease.validUntil();
  }

  ownershipVersion(): number {
    return this.ownershipChanges;
  }

  stats(): WorkerStats {
    return { keys: this.serving.size, ...this.counts };
  }

  async leave(timeoutMs = WORKER_LEAVE_TIMEOUT_MS_DEFAULT): Promise<void> {
    if (this.removed) return;
    this.leaving = true;
    const deadline = this.clock.now() + timeoutMs;
    const answer = await this.call({ kind: "leave", requestId: 0, replyTo: this.replyTo() }, deadline);
    if (answer.kind === "refused") throw new TimeoutError(`worker ${this.id} leaving (${answer.reason})`, timeoutMs);
    this.logger.info("leaving: waiting for keys to move", { worker: this.id, keys: this.serving.size });
    while (!this.removed) {
      if (this.closed) throw new ClosedError("worker leave");
      if (this.clock.now() >= deadline) throw new TimeoutError(`worker ${this.id} leaving`, timeoutMs);
      await this.renewNow();
      if (!this.removed) await sleep(this.clock, Math.min(this.renewEveryMs, 100));
    }
    this.logger.info("left the cluster", { worker: this.id });
  }

  async close(options: { readonly leave?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    if ((options.leave ?? true) && this.joined && !this.removed) {
      try {
        await this.leave();
      } catch (error) {
        this.logger.warn("leaving gracefully failed; closing anyway", { worker: this.id, error });
      }
    }
    this.closed = true;
    this.renewTimer?.();
    this.reconcileTimer?.();
    for (const waiter of this.readyWaiters) waiter.reject(new ClosedError("worker ready"));
    this.readyWaiters = [];
    for (const [id, call] of this.calls) {
      call.cancel();
      this.calls.delete(id);
      call.resolve({ kind: "refused", requestId: id, code: "ORRERY_CLOSED", reason: "closed", leaderHint: null });
    }
    await this.reconciling;
    for (const [key, epoch] of [...this.serving]) await this.releaseGrant({ key, epoch });
    await this.transport.close();
  }

  // --- Talking to members -------------------------------------------------------------------

  /** Where members must send answers, for a transport that delivers by address (HTTP). */
  private replyTo(): string | null {
    return this.transport.replyAddress();
  }

  /** Sends `request` to the believed leader, following hints and moving on after silence, until `deadline`. */
  private async call(request: WorkerRequestPayload, deadline: number): Promise<WorkerAnswerPayload> {
    let last: WorkerAnswerPayload | null = null;
    for (let attempt = 0; attempt < WORKER_CALL_ATTEMPTS_MAX && !this.closed; attempt += 1) {
      const remaining = deadline - this.clock.now();
      if (remaining <= 0) break;
      const answer = await this.callOnce(request, this.target, Math.min(remaining, this.callTimeoutMs));
      if (answer === null) {
        this.target = this.nextMember(this.target);
        continue;
      }
      if (answer.kind !== "refused") return answer;
      last = answer;
      if (answer.code === "ORRERY_NOT_LEADER") {
        this.target = answer.leaderHint !== null && this.memberIds.includes(answer.leaderHint) ? answer.leaderHint : this.nextMember(this.target);
        if (answer.leaderHint === null) await sleep(this.clock, Math.min(WORKER_CALL_BACKOFF_MS, remaining));
        continue;
      }
      if (answer.code === "ORRERY_CLOSED" || answer.code === "ORRERY_INVALID_REQUEST") return answer;
      await sleep(this.clock, Math.min(WORKER_CALL_BACKOFF_MS, remaining));
    }
    return last ?? { kind: "refused", requestId: request.requestId, code: "ORRERY_TIMEOUT", reason: "no member answered", leaderHint: null };
  }

  /** One try: resolves with the answer, or `null` after `timeoutMs` of silence. */
  private callOnce(request: WorkerRequestPayload, to: NodeId, timeoutMs: number): Promise<WorkerAnswerPayload | null> {
    if (this.calls.size >= WORKER_CALLS_PENDING_MAX) return Promise.resolve(null);
    const requestId = this.nextRequestId;
    this.nextRequestId += 1;
    return new Promise((resolve) => {
      const cancel = this.clock.after(timeoutMs, () => {
        this.calls.delete(requestId);
        resolve(null);
      });
      this.calls.set(requestId, { resolve, cancel });
      if (!this.transport.sendPayload(to, encodeWorkerRequest({ ...request, requestId }))) {
        // Not even queued (no connection yet, or a full buffer): the timeout moves on to another member.
        this.logger.debug("a request to a member was dropped", { worker: this.id, member: to });
      }
    });
  }

  private onAnswer(from: NodeId, bytes: Uint8Array): void {
    let answer: WorkerAnswerPayload;
    try {
      answer = decodeWorkerAnswer(bytes);
    } catch (error) {
      this.logger.warn("dropping a malformed answer from a member", { worker: this.id, member: from, error });
      return;
    }
    const call = this.calls.get(answer.requestId);
    if (call === undefined) return;
    this.calls.delete(answer.requestId);
    call.cancel();
    call.resolve(answer);
  }

  private nextMember(id: NodeId): NodeId {
    const i = this.memberIds.indexOf(id);
    return this.memberIds[(i + 1) % this.memberIds.length] as NodeId;
  }

  // --- Joining and renewing ----------------------------------------------------------------

  private scheduleRenewal(delayMs: number): void {
    if (this.closed) return;
    this.renewTimer?.();
    this.renewTimer = this.clock.after(delayMs, () => {
      this.renewTimer = null;
      void this.renewNow().finally(() => this.scheduleRenewal(this.renewEveryMs));
    });
  }

  /**
   * Resolves once a renewal *sent after this call* was answered (or failed): a renewal already in
   * flight may predate a grant the caller wants to learn about, so one more is queued behind it.
   */
  private renewNow(): Promise<void> {
    if (this.renewal === null) {
      this.renewal = this.renewOnce().finally(() => (this.renewal = null));
      return this.renewal;
    }
    if (this.queuedRenewal === null) {
      this.queuedRenewal = this.renewal.then(() => {
        this.queuedRenewal = null;
        return this.renewNow();
      });
    }
    return this.queuedRenewal;
  }

  private async renewOnce(): Promise<void> {
    if (this.closed) return;
    if (!this.joined && !(await this.join())) return;
    const seq = this.nextSeq;
    this.nextSeq += 1;
    const sentAt = this.clock.now();
    this.lease.renewalSent(seq, sentAt);
    this.counts.renewalsSent += 1;
    const answer = await this.call({ kind: "renew", requestId: 0, replyTo: this.replyTo(), seq }, sentAt + this.renewEveryMs * 2);
    if (answer.kind !== "renewed") {
      if (answer.kind === "refused") this.logger.debug("a renewal was not answered", { worker: this.id, code: answer.code, reason: answer.reason });
      return;
    }
    this.counts.renewalsAnswered += 1;
    if (!answer.member) {
      // Expired (a pause, a partition) or removed after leaving: its grants are gone.
      if (this.leaving) this.removed = true;
      else {
        this.logger.warn("the cluster no longer lists this worker; joining again", { worker: this.id });
        this.joined = false;
      }
      this.lease.answered(seq, []);
      this.ownershipChanges += 1;
      await this.reconcile();
      return;
    }
    this.lease.answered(seq, answer.keys);
    this.ownershipChanges += 1;
    await this.reconcile();
    if (!this.isReady) {
      this.isReady = true;
      for (const waiter of this.readyWaiters) waiter.resolve();
      this.readyWaiters = [];
    }
  }

  private async join(): Promise<boolean> {
    if (this.leaving) return false;
    const answer = await this.call(
      {
        kind: "join",
        requestId: 0,
        replyTo: this.replyTo(),
        address: this.options.address,
        capacity: this.options.capacity ?? 1,
        zone: this.options.zone ?? "default",
      },
      this.clock.now() + this.renewEveryMs * 2,
    );
    if (answer.kind === "joined") {
      this.joined = true;
      this.counts.joins += 1;
      this.logger.info("joined the cluster", { worker: this.id, address: this.options.address });
      return true;
    }
    if (answer.kind === "refused" && answer.code === "ORRERY_INVALID_REQUEST") {
      const error = new ConfigError("worker", `the cluster refused the join: ${answer.reason}`);
      for (const waiter of this.readyWaiters) waiter.reject(error);
      this.readyWaiters = [];
    }
    this.logger.debug("joining failed; will try again", { worker: this.id, answer: answer.kind });
    return false;
  }

  private armReconcileTimer(): void {
    this.reconcileTimer = this.clock.after(WORKER_RECONCILE_EVERY_MS, () => {
      this.reconcileTimer = null;
      if (this.closed) return;
      this.armReconcileTimer();
      this.onReconcileTimer();
    });
  }

  /**
   * Answers reconcile as they arrive; between them only a lapse changes what may be served, so the
   * timer reconciles (a walk over every key) only once the lease ran out with keys still served.
   */
  private onReconcileTimer(): void {
    const until = this.lease.validUntil();
    if (this.serving.size > 0 && (until === null || this.clock.now() >= until)) void this.reconcile();
  }

  /** Applies lease changes in order: releases, then acquisitions, then release confirmations. */
  private reconcile(): Promise<void> {
    this.reconciling = this.reconciling.then(async () => {
      if (this.closed) return;
      const changes = this.lease.reconcile(this.clock.now());
      for (const grant of changes.released) await this.releaseGrant(grant);
      for (const grant of changes.acquired) await this.acquireGrant(grant);
      for (const grant of changes.confirm) {
        if (this.serving.get(grant.key) === grant.epoch) await this.releaseGrant(grant);
        this.confirmRelease(grant);
      }
    });
    return this.reconciling;
  }

  /** Tells the leader this worker released `grant`, so the key can move on. */
  private confirmRelease(grant: LeaseGrant): void {
    void this.call(
      { kind: "release", requestId: 0, replyTo: this.replyTo(), key: grant.key, epoch: grant.epoch },
      this.clock.now() + this.renewEveryMs * 2,
    );
  }

  private async acquireGrant(grant: LeaseGrant): Promise<void> {
    try {
      await this.options.onAcquire?.(grant.key, grant.epoch);
    } catch (error) {
      // The resource would not open under this grant: give the key up rather than serve it.
      this.logger.error("onAcquire failed; releasing the key", { worker: this.id, key: grant.key, epoch: grant.epoch, error });
      this.confirmRelease(grant);
      return;
    }
    this.serving.set(grant.key, grant.epoch);
    this.ownershipChanges += 1;
    this.counts.acquired += 1;
    this.logger.debug("acquired", { worker: this.id, key: grant.key, epoch: grant.epoch });
  }

  private async releaseGrant(grant: LeaseGrant): Promise<void> {
    if (this.serving.get(grant.key) !== grant.epoch) return;
    this.serving.delete(grant.key);
    this.ownershipChanges += 1;
    await this.idle(grant.key);
    this.counts.released += 1;
    try {
      await this.options.onRelease?.(grant.key, grant.epoch);
    } catch (error) {
      this.logger.error("onRelease failed", { worker: this.id, key: grant.key, epoch: grant.epoch, error });
    }
    this.logger.debug("released", { worker: this.id, key: grant.key, epoch: grant.epoch });
  }

  /** Resolves once `key` has no request in flight (at most `handleTimeoutMs` later). */
  private idle(key: ResourceKey): Promise<void> {
    const entry = this.inFlight.get(key);
    if (entry === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      const cancel = this.clock.after(this.handleTimeoutMs, resolve);
      entry.idle.push(() => (cancel(), resolve()));
    });
  }

  // --- Serving routed requests ---------------------------------------------------------------

  async admit(key: ResourceKey, epoch: number): Promise<RefusalReason | null> {
    const refusal = await this.refusal(key, epoch);
    if (refusal !== null) this.counts.requestsRefused += 1;
    return refusal;
  }

  private async refusal(key: ResourceKey, epoch: number): Promise<RefusalReason | null> {
    if (this.servable(key, epoch)) return null;
    const known = this.serving.get(key);
    if (!this.closed && !this.leaving && (known === undefined || known < epoch)) {
      // A grant newer than any this worker knows of: most likely the key was just acquired for it.
      await this.withTimeout(this.renewNow(), this.leaseConfig.leaseMs / 2);
      await this.reconciling;
      if (this.servable(key, epoch)) return null;
    }
    const until = this.lease.validUntil();
    if (until === null || this.clock.now() >= until) return "lease-expired";
    if (this.lease.draining().some((g) => g.key === key)) return "draining";
    return "not-owner";
  }

  /** Whether a request for `key` at `epoch` may be served now: the one rule for serving. */
  servable(key: ResourceKey, epoch: number): boolean {
    return this.serving.get(key) === epoch && this.lease.canServe(key, epoch, this.clock.now());
  }

  async serve(request: WorkerRequest, key: ResourceKey, epoch: number, signal?: AbortSignal): Promise<ServeResult> {
    const refusal = await this.admit(key, epoch);
    if (refusal !== null) {
      return { kind: "refused", reason: refusal, message: `${this.id} may not serve ${key} at epoch ${epoch}: ${refusal}` };
    }
    return this.run(request, key, epoch, signal);
  }

  async run(request: WorkerRequest, key: ResourceKey, epoch: number, signal?: AbortSignal): Promise<ServeResult> {
    // The handler's signal is made only if the handler asks for it (most never do): an abort that
    // comes first is kept, and the signal starts out aborted with its reason.
    let controller: AbortController | null = null;
    let abortedBy: Error | null = null;
    const abort = (reason: Error) => {
      if (abortedBy !== null) return;
      abortedBy = reason;
      controller?.abort(reason);
    };
    const cancelTimer = this.clock.after(this.handleTimeoutMs, () => abort(new TimeoutError("handler", this.handleTimeoutMs)));
    const onClientGone = () => abort(new ClosedError("the client went away"));
    signal?.addEventListener("abort", onClientGone, { once: true });
    const entry = this.inFlight.get(key) ?? { count: 0, idle: [] };
    entry.count += 1;
    this.inFlight.set(key, entry);
    try {
      const response = await this.options.handle(request, {
        key,
        epoch,
        get signal(): AbortSignal {
          if (controller === null) {
            controller = new AbortController();
            if (abortedBy !== null) controller.abort(abortedBy);
          }
          return controller.signal;
        },
        stillOwned: () => this.servable(key, epoch),
      });
      this.counts.requestsServed += 1;
      return { kind: "response", response };
    } catch (error) {
      if (StaleEpochError.is(error)) {
        this.counts.requestsRefused += 1;
        return { kind: "refused", reason: "stale-epoch", message: error.message };
      }
      this.counts.requestsFailed += 1;
      if (abortedBy !== null && TimeoutError.is(abortedBy)) {
        return { kind: "timeout", message: `the handler took longer than ${this.handleTimeoutMs} ms` };
      }
      this.logger.error("a handler failed", { worker: this.id, key, error });
      return { kind: "failed", message: error instanceof Error ? error.message : String(error) };
    } finally {
      cancelTimer();
      signal?.removeEventListener("abort", onClientGone);
      entry.count -= 1;
      if (entry.count === 0) {
        this.inFlight.delete(key);
        for (const wake of entry.idle) wake();
      }
    }
  }

  /** Waits for `promise`, or `ms`, whichever comes first (never rejects). */
  private async withTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
    let cancel: Cancel = () => {};
    await Promise.race([promise.catch(() => undefined), new Promise((resolve) => (cancel = this.clock.after(ms, () => resolve(undefined))))]);
    cancel();
  }
}

function positive(field: string, value: number): void {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) throw new ConfigError(field, `must be a number > 0, got ${String(value)}`);
}
