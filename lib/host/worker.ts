/**
 * `createWorker`: a process that holds resources under leases (DESIGN.md §3) and serves the
 * requests members' gateways route to it.
 *
 * The worker speaks to members over the same transports members use among themselves (TCP or
 * HTTP, the same handshake and shared secret), as peer `worker:<id>`. It joins, then renews every
 * `renewEveryMs`; each renewal answer lists the keys it owns, and the pure {@link WorkerLease}
 * decides what may be served and until when. `onAcquire`/`onRelease` run as grants come and go
 * (serialized, in key order; a key's in-flight requests finish before its `onRelease`), and a
 * draining key is released and then confirmed so the leader can hand it on. Requests arrive on the
 * worker's own HTTP server with `x-orrery-key` and `x-orrery-epoch`; one for a key the worker may
 * not serve at that epoch is answered 409 with `x-orrery-refused`, except that a grant newer than
 * any the worker knows of makes it renew at once and look again (so a key's first request is
 * served, not bounced).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { ClosedError, ConfigError, StaleEpochError, TimeoutError, TransportError } from "../errors.ts";
import { silentLogger, type Logger } from "../logger.ts";
import { LEASE_MS_DEFAULT, resolveLeaseConfig, type LeaseConfig, type LeaseConfigInput, type LeaseGrant } from "../placement/leases.ts";
import type { ResourceKey, WorkerId } from "../placement/types.ts";
import { WorkerLease } from "../placement/worker.ts";
import type { NodeId } from "../raft/messages.ts";
import { createHttpTransport } from "../../transports/http/http.ts";
import { createTcpTransport } from "../../transports/tcp/tcp.ts";
import type { Transport, TransportTlsOptions } from "../../transports/transport.ts";
import { ROUTING_HEADERS, keyOfUrl, type RefusalReason, type ServeContext, type WorkerRequest, type WorkerResponse } from "./routing.ts";
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
/** The largest routed request body a worker reads, by default (1 MiB). */
export const WORKER_BODY_BYTES_MAX_DEFAULT = 1024 * 1024;
/** How long a handler may take, by default (ms); the request is then answered 504. */
export const WORKER_HANDLE_TIMEOUT_MS_DEFAULT = 30_000;
/** How long a graceful leave waits for the keys to move away, by default (ms). */
export const WORKER_LEAVE_TIMEOUT_MS_DEFAULT = 30_000;
/** How often the worker looks at its lease between renewals (ms), so a lapse releases promptly. */
export const WORKER_RECONCILE_EVERY_MS = 50;

/** How a worker reaches the cluster. */
export interface WorkerClusterOptions {
  /** The cluster's id, as members were given it. */
  readonly id: string;
  /** Members' transport addresses by member id (`host:port`). */
  readonly members: Readonly<Record<NodeId, string>>;
  /** The cluster's shared secret, when members have one. */
  readonly secret?: string;
  readonly tls?: TransportTlsOptions;
  /** The transport the members use. @defaultValue "tcp" */
  readonly transport?: "tcp" | "http";
}

/** Options of {@link createWorker}. */
export interface WorkerOptions {
  /** The worker's id: 1 to 128 of `[A-Za-z0-9._-]`, stable across restarts. */
  readonly id: WorkerId;
  readonly cluster: WorkerClusterOptions;
  /** Relative capacity (a worker of 2 gets twice the keys of one of 1). @defaultValue 1 */
  readonly capacity?: number;
  /** Failure domain; keys of a failed worker spread across zones. @defaultValue "default" */
  readonly zone?: string;
  /** The lease settings, the same as the members'. @defaultValue `{ leaseMs: LEASE_MS_DEFAULT }` */
  readonly lease?: LeaseConfigInput;
  /** Where routed requests arrive (`host:port`). @defaultValue "127.0.0.1:0" */
  readonly listen?: string;
  /** The address gateways use to reach `listen` (e.g. behind NAT). @defaultValue the bound address */
  readonly advertise?: string;
  /** HTTP transport only: where members' answers arrive. @defaultValue "127.0.0.1:0" */
  readonly transportListen?: string;
  /** How often to renew (ms). @defaultValue a quarter of `leaseMs` */
  readonly renewEveryMs?: number;
  /** @defaultValue {@link WORKER_CALL_TIMEOUT_MS_DEFAULT} */
  readonly callTimeoutMs?: number;
  /** @defaultValue {@link WORKER_BODY_BYTES_MAX_DEFAULT} */
  readonly bodyBytesMax?: number;
  /** @defaultValue {@link WORKER_HANDLE_TIMEOUT_MS_DEFAULT} */
  readonly handleTimeoutMs?: number;
  /** Called (awaited) before requests for `key` at `epoch` are served: open the resource, fence it. */
  readonly onAcquire?: (key: ResourceKey, epoch: number) => void | Promise<void>;
  /** Called (awaited) once `key` at `epoch` may no longer be served and its requests finished. */
  readonly onRelease?: (key: ResourceKey, epoch: number) => void | Promise<void>;
  /** Serves one routed request. Throw `StaleEpochError` when the resource's fence refuses a write. */
  readonly handle: (request: WorkerRequest, context: ServeContext) => WorkerResponse | Promise<WorkerResponse>;
  readonly logger?: Logger;
  /** The worker's monotonic clock (ms). @defaultValue performance.now */
  readonly now?: () => number;
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

/** A running worker. */
export interface OrreryWorker {
  readonly id: WorkerId;
  /** Where routed requests arrive (the advertised address). */
  address(): string;
  /** Resolves once the worker has joined and its first renewal was answered. @throws TimeoutError, ClosedError */
  ready(timeoutMs?: number): Promise<void>;
  /** The keys (with epochs) the worker serves now, in key order. */
  owned(): Array<{ readonly key: ResourceKey; readonly epoch: number }>;
  stats(): WorkerStats;
  /**
   * Leaves gracefully: the worker's keys drain to others (each released after its in-flight
   * requests finish), then the leader removes it. Resolves once removed.
   * @throws TimeoutError after `timeoutMs`
   */
  leave(timeoutMs?: number): Promise<void>;
  /** Stops the worker; with `leave` (the default) it first leaves gracefully. Idempotent. */
  close(options?: { readonly leave?: boolean }): Promise<void>;
}

/**
 * Starts a worker: listens for routed requests, connects to the members, joins and starts renewing.
 * Resolves once listening; `ready()` tells when it has joined.
 * @throws ConfigError for bad options; TransportError when it cannot listen.
 */
export async function createWorker(options: WorkerOptions): Promise<OrreryWorker> {
  const worker = new Worker(options);
  await worker.start();
  return worker;
}

interface PendingCall {
  readonly resolve: (answer: WorkerAnswerPayload) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

class Worker implements OrreryWorker {
  readonly id: WorkerId;
  private readonly lease: WorkerLease;
  private readonly leaseConfig: LeaseConfig;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly transport: Transport;
  private readonly memberIds: readonly NodeId[];
  private readonly renewEveryMs: number;
  private readonly callTimeoutMs: number;
  private readonly bodyBytesMax: number;
  private readonly handleTimeoutMs: number;
  private readonly replyTo: () => string | null;
  private server: Server | null = null;
  private advertised = "";
  private target: NodeId;
  private nextRequestId = 1;
  private readonly calls = new Map<number, PendingCall>();
  /** Renewal sequence numbers start from the wall clock, so they never repeat across restarts. */
  private nextSeq = Date.now() * 1000;
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
  private renewTimer: ReturnType<typeof setTimeout> | null = null;
  private reconcileTimer: ReturnType<typeof setInterval> | null = null;
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

  constructor(private readonly options: WorkerOptions) {
    if (typeof options.id !== "string" || !validWorkerId(options.id)) {
      throw new ConfigError("id", `a worker id is 1 to 128 of [A-Za-z0-9._-], got ${JSON.stringify(options.id)}`);
    }
    this.id = options.id;
    this.leaseConfig = resolveLeaseConfig(options.lease ?? { leaseMs: LEASE_MS_DEFAULT });
    this.lease = new WorkerLease(this.leaseConfig);
    this.logger = options.logger ?? silentLogger;
    this.now = options.now ?? (() => performance.now());
    this.renewEveryMs = options.renewEveryMs ?? this.leaseConfig.leaseMs / 4;
    this.callTimeoutMs = options.callTimeoutMs ?? WORKER_CALL_TIMEOUT_MS_DEFAULT;
    this.bodyBytesMax = options.bodyBytesMax ?? WORKER_BODY_BYTES_MAX_DEFAULT;
    this.handleTimeoutMs = options.handleTimeoutMs ?? WORKER_HANDLE_TIMEOUT_MS_DEFAULT;
    positive("renewEveryMs", this.renewEveryMs);
    positive("callTimeoutMs", this.callTimeoutMs);
    positive("bodyBytesMax", this.bodyBytesMax);
    positive("handleTimeoutMs", this.handleTimeoutMs);
    if (this.renewEveryMs >= this.leaseConfig.leaseMs * (1 - this.leaseConfig.clockDriftMax)) {
      throw new ConfigError("renewEveryMs", `must be well below the lease (${this.leaseConfig.leaseMs} ms)`);
    }
    const capacity = options.capacity ?? 1;
    if (!(typeof capacity === "number" && Number.isFinite(capacity) && capacity > 0)) throw new ConfigError("capacity", "must be a number > 0");
    this.memberIds = Object.keys(options.cluster.members).sort();
    if (this.memberIds.length === 0) throw new ConfigError("cluster.members", "name at least one member");
    this.target = this.memberIds[0] as NodeId;
    const common = {
      id: workerPeerId(options.id),
      clusterId: options.cluster.id,
      peers: options.cluster.members,
      logger: this.logger,
      ...(options.cluster.secret === undefined ? {} : { secret: options.cluster.secret }),
      ...(options.cluster.tls === undefined ? {} : { tls: options.cluster.tls }),
    };
    if ((options.cluster.transport ?? "tcp") === "http") {
      const transport = createHttpTransport({ ...common, listen: options.transportListen ?? "127.0.0.1:0" });
      this.transport = transport;
      this.replyTo = () => transport.address();
    } else {
      this.transport = createTcpTransport({ ...common, listen: "127.0.0.1:0", dialAlways: true });
      this.replyTo = () => null;
    }
  }

  async start(): Promise<void> {
    this.server = await this.listen(this.options.listen ?? "127.0.0.1:0");
    const bound = this.server.address();
    this.advertised = this.options.advertise ?? (typeof bound === "object" && bound !== null ? `${hostOf(bound.address)}:${bound.port}` : "");
    await this.transport.start({
      onMessage: () => this.logger.warn("dropping a Raft message sent to a worker"),
      onPayload: (from, payload) => this.onAnswer(from, payload),
    });
    this.reconcileTimer = setInterval(() => this.onReconcileTimer(), WORKER_RECONCILE_EVERY_MS);
    this.scheduleRenewal(0);
  }

  address(): string {
    return this.advertised;
  }

  ready(timeoutMs = 30_000): Promise<void> {
    if (this.isReady) return Promise.resolve();
    if (this.closed) return Promise.reject(new ClosedError("worker ready"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new TimeoutError(`worker ${this.id} joining`, timeoutMs)), timeoutMs);
      this.readyWaiters.push({
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (error) => (clearTimeout(timer), reject(error)),
      });
    });
  }

  owned(): Array<{ readonly key: ResourceKey; readonly epoch: number }> {
    const now = this.now();
    return [...this.serving]
      .filter(([key, epoch]) => this.lease.canServe(key, epoch, now))
      .map(([key, epoch]) => ({ key, epoch }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  stats(): WorkerStats {
    return { keys: this.serving.size, ...this.counts };
  }

  async leave(timeoutMs = WORKER_LEAVE_TIMEOUT_MS_DEFAULT): Promise<void> {
    if (this.removed) return;
    this.leaving = true;
    const deadline = this.now() + timeoutMs;
    const answer = await this.call({ kind: "leave", requestId: 0, replyTo: this.replyTo() }, deadline);
    if (answer.kind === "refused") throw new TimeoutError(`worker ${this.id} leaving (${answer.reason})`, timeoutMs);
    this.logger.info("leaving: waiting for keys to move", { worker: this.id, keys: this.serving.size });
    while (!this.removed) {
      if (this.closed) throw new ClosedError("worker leave");
      if (this.now() >= deadline) throw new TimeoutError(`worker ${this.id} leaving`, timeoutMs);
      await this.renewNow();
      if (!this.removed) await sleep(Math.min(this.renewEveryMs, 100));
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
    if (this.renewTimer !== null) clearTimeout(this.renewTimer);
    if (this.reconcileTimer !== null) clearInterval(this.reconcileTimer);
    for (const waiter of this.readyWaiters) waiter.reject(new ClosedError("worker ready"));
    this.readyWaiters = [];
    for (const [id, call] of this.calls) {
      clearTimeout(call.timer);
      this.calls.delete(id);
      call.resolve({ kind: "refused", requestId: id, code: "ORRERY_CLOSED", reason: "closed", leaderHint: null });
    }
    await this.reconciling;
    for (const [key, epoch] of [...this.serving]) await this.releaseGrant({ key, epoch });
    const server = this.server;
    if (server !== null) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    }
    await this.transport.close();
  }

  // --- Talking to members -------------------------------------------------------------------

  /** Sends `request` to the believed leader, following hints and moving on after silence, until `deadline`. */
  private async call(request: WorkerRequestPayload, deadline: number): Promise<WorkerAnswerPayload> {
    let last: WorkerAnswerPayload | null = null;
    for (let attempt = 0; attempt < WORKER_CALL_ATTEMPTS_MAX && !this.closed; attempt += 1) {
      const remaining = deadline - this.now();
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
        if (answer.leaderHint === null) await sleep(Math.min(50, remaining));
        continue;
      }
      if (answer.code === "ORRERY_CLOSED" || answer.code === "ORRERY_INVALID_REQUEST") return answer;
      await sleep(Math.min(50, remaining));
    }
    return last ?? { kind: "refused", requestId: request.requestId, code: "ORRERY_TIMEOUT", reason: "no member answered", leaderHint: null };
  }

  /** One try: resolves with the answer, or `null` after `timeoutMs` of silence. */
  private callOnce(request: WorkerRequestPayload, to: NodeId, timeoutMs: number): Promise<WorkerAnswerPayload | null> {
    if (this.calls.size >= WORKER_CALLS_PENDING_MAX) return Promise.resolve(null);
    const requestId = this.nextRequestId;
    this.nextRequestId += 1;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.calls.delete(requestId);
        resolve(null);
      }, timeoutMs);
      this.calls.set(requestId, { resolve, timer });
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
    clearTimeout(call.timer);
    call.resolve(answer);
  }

  private nextMember(id: NodeId): NodeId {
    const i = this.memberIds.indexOf(id);
    return this.memberIds[(i + 1) % this.memberIds.length] as NodeId;
  }

  // --- Joining and renewing ----------------------------------------------------------------

  private scheduleRenewal(delayMs: number): void {
    if (this.closed) return;
    if (this.renewTimer !== null) clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => {
      this.renewTimer = null;
      void this.renewNow().finally(() => this.scheduleRenewal(this.renewEveryMs));
    }, delayMs);
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
    const sentAt = this.now();
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
      await this.reconcile();
      return;
    }
    this.lease.answered(seq, answer.keys);
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
        address: this.advertised,
        capacity: this.options.capacity ?? 1,
        zone: this.options.zone ?? "default",
      },
      this.now() + this.renewEveryMs * 2,
    );
    if (answer.kind === "joined") {
      this.joined = true;
      this.counts.joins += 1;
      this.logger.info("joined the cluster", { worker: this.id, address: this.advertised });
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

  /**
   * Answers reconcile as they arrive; between them only a lapse changes what may be served, so the
   * timer reconciles (a walk over every key) only once the lease ran out with keys still served.
   */
  private onReconcileTimer(): void {
    const until = this.lease.validUntil();
    if (this.serving.size > 0 && (until === null || this.now() >= until)) void this.reconcile();
  }

  /** Applies lease changes in order: releases, then acquisitions, then release confirmations. */
  private reconcile(): Promise<void> {
    this.reconciling = this.reconciling.then(async () => {
      if (this.closed) return;
      const changes = this.lease.reconcile(this.now());
      for (const grant of changes.released) await this.releaseGrant(grant);
      for (const grant of changes.acquired) await this.acquireGrant(grant);
      for (const grant of changes.confirm) {
        if (this.serving.get(grant.key) === grant.epoch) await this.releaseGrant(grant);
        void this.call(
          { kind: "release", requestId: 0, replyTo: this.replyTo(), key: grant.key, epoch: grant.epoch },
          this.now() + this.renewEveryMs * 2,
        );
      }
    });
    return this.reconciling;
  }

  private async acquireGrant(grant: LeaseGrant): Promise<void> {
    try {
      await this.options.onAcquire?.(grant.key, grant.epoch);
    } catch (error) {
      // The resource would not open under this grant: give the key up rather than serve it.
      this.logger.error("onAcquire failed; releasing the key", { worker: this.id, key: grant.key, epoch: grant.epoch, error });
      void this.call({ kind: "release", requestId: 0, replyTo: this.replyTo(), key: grant.key, epoch: grant.epoch }, this.now() + this.renewEveryMs * 2);
      return;
    }
    this.serving.set(grant.key, grant.epoch);
    this.counts.acquired += 1;
    this.logger.debug("acquired", { worker: this.id, key: grant.key, epoch: grant.epoch });
  }

  private async releaseGrant(grant: LeaseGrant): Promise<void> {
    if (this.serving.get(grant.key) !== grant.epoch) return;
    this.serving.delete(grant.key);
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
      const timer = setTimeout(resolve, this.handleTimeoutMs);
      entry.idle.push(() => (clearTimeout(timer), resolve()));
    });
  }

  // --- Serving routed requests ---------------------------------------------------------------

  private listen(address: string): Promise<Server> {
    const colon = address.lastIndexOf(":");
    const host = address.slice(0, colon).replace(/^\[|\]$/g, "");
    const port = Number(address.slice(colon + 1));
    if (colon <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError("listen", `not host:port: ${address}`);
    const server = createServer({ keepAlive: true }, (req, res) => {
      this.serve(req, res).catch((error: unknown) => {
        this.logger.error("serving a request failed", { worker: this.id, error });
        if (!res.headersSent) answerJson(res, 500, { error: "internal" });
        else res.destroy();
      });
    });
    server.keepAliveTimeout = 60_000;
    return new Promise((resolve, reject) => {
      server.once("error", (error) => reject(new TransportError("config", `worker cannot listen on ${address}: ${error.message}`)));
      server.listen({ host, port }, () => resolve(server));
    });
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? "/";
    const path = keyOfUrl(url);
    const key = header(req, ROUTING_HEADERS.key);
    const epoch = Number(header(req, ROUTING_HEADERS.epoch));
    if (key === undefined || key !== path || !Number.isSafeInteger(epoch) || epoch < 1) {
      answerJson(res, 400, { error: "not-routed", message: "a routed request carries x-orrery-key (its path) and x-orrery-epoch" });
      return;
    }
    const refusal = await this.admit(key, epoch);
    if (refusal !== null) {
      this.counts.requestsRefused += 1;
      res.setHeader(ROUTING_HEADERS.refused, refusal);
      answerJson(res, 409, { error: "refused", reason: refusal, key, epoch });
      req.resume();
      return;
    }
    const body = await readBody(req, this.bodyBytesMax);
    if (body === null) {
      answerJson(res, 413, { error: "too-large", message: `bodies are limited to ${this.bodyBytesMax} bytes` });
      return;
    }
    await this.run(req, res, { key, epoch, url, path, body });
  }

  /** `null` when `key` at `epoch` may be served now, else why not (after one prompt renewal for a newer grant). */
  private async admit(key: ResourceKey, epoch: number): Promise<RefusalReason | null> {
    if (this.servable(key, epoch)) return null;
    const known = this.serving.get(key);
    if (!this.closed && !this.leaving && (known === undefined || known < epoch)) {
      // A grant newer than any this worker knows of: most likely the key was just acquired for it.
      await withTimeout(this.renewNow(), this.leaseConfig.leaseMs / 2);
      await this.reconciling;
      if (this.servable(key, epoch)) return null;
    }
    if (this.lease.validUntil() === null || this.now() >= (this.lease.validUntil() as number)) return "lease-expired";
    if (this.lease.draining().some((g) => g.key === key)) return "draining";
    return "not-owner";
  }

  private servable(key: ResourceKey, epoch: number): boolean {
    return this.serving.get(key) === epoch && this.lease.canServe(key, epoch, this.now());
  }

  private async run(
    req: IncomingMessage,
    res: ServerResponse,
    r: { key: ResourceKey; epoch: number; url: string; path: string; body: Uint8Array },
  ): Promise<void> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new TimeoutError("handler", this.handleTimeoutMs)), this.handleTimeoutMs);
    res.once("close", () => {
      if (!res.writableFinished) controller.abort(new ClosedError("the client went away"));
    });
    const entry = this.inFlight.get(r.key) ?? { count: 0, idle: [] };
    entry.count += 1;
    this.inFlight.set(r.key, entry);
    const q = r.url.indexOf("?");
    try {
      const response = await this.options.handle(
        { method: req.method ?? "GET", url: r.url, path: r.path, query: q === -1 ? "" : r.url.slice(q + 1), headers: req.headers, body: r.body },
        { key: r.key, epoch: r.epoch, signal: controller.signal, stillOwned: () => this.servable(r.key, r.epoch) },
      );
      this.counts.requestsServed += 1;
      writeResponse(res, response, r.key, r.epoch, this.id);
    } catch (error) {
      if (StaleEpochError.is(error)) {
        this.counts.requestsRefused += 1;
        res.setHeader(ROUTING_HEADERS.refused, "stale-epoch");
        answerJson(res, 409, { error: "refused", reason: "stale-epoch", message: error.message });
      } else if (controller.signal.aborted && TimeoutError.is(controller.signal.reason)) {
        this.counts.requestsFailed += 1;
        answerJson(res, 504, { error: "timeout", message: `the handler took longer than ${this.handleTimeoutMs} ms` });
      } else {
        this.counts.requestsFailed += 1;
        this.logger.error("a handler failed", { worker: this.id, key: r.key, error });
        answerJson(res, 500, { error: "internal", message: error instanceof Error ? error.message : String(error) });
      }
    } finally {
      clearTimeout(timer);
      entry.count -= 1;
      if (entry.count === 0) {
        this.inFlight.delete(r.key);
        for (const wake of entry.idle) wake();
      }
    }
  }
}

function writeResponse(res: ServerResponse, response: WorkerResponse, key: ResourceKey, epoch: number, owner: WorkerId): void {
  if (res.headersSent || res.destroyed) return;
  const body = response.body ?? "";
  for (const [name, value] of Object.entries(response.headers ?? {})) res.setHeader(name, value as string | number | string[]);
  res.setHeader(ROUTING_HEADERS.epoch, String(epoch));
  res.setHeader(ROUTING_HEADERS.owner, owner);
  res.setHeader(ROUTING_HEADERS.key, key);
  res.statusCode = response.status ?? 200;
  res.end(body);
}

function answerJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Reads the body, or `null` (and stops reading) once it passes `limit` bytes. */
async function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array | null> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limit) {
    req.resume();
    return null;
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      req.destroy();
      return null;
    }
    chunks.push(chunk);
  }
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
}

function positive(field: string, value: number): void {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) throw new ConfigError(field, `must be a number > 0, got ${String(value)}`);
}

function hostOf(address: string): string {
  return address.includes(":") ? `[${address}]` : address;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits for `promise`, or `ms`, whichever comes first (never rejects). */
async function withTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([promise.catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
