/**
 * A simulated worker: it joins the cluster, renews its lease with the leader, and serves requests
 * for the keys it owns — running the same pure lease logic a real worker runs
 * (`lib/placement/worker.ts`), on its own drifting clock. It writes to a fenced resource with the
 * epoch of its grant, so that a write it makes after losing a key (say, after a pause) is refused.
 */
import { WorkerLease, type AnsweredKey } from "../lib/placement/worker.ts";
import type { LeaseConfigInput, LeaseGrant } from "../lib/placement/leases.ts";
import type { SimClock } from "./clock.ts";

/** Worker -> member. */
export type WorkerRequest =
  | { readonly kind: "join"; readonly worker: string; readonly capacity: number; readonly zone: string }
  | { readonly kind: "renew"; readonly worker: string; readonly seq: number }
  | { readonly kind: "release"; readonly worker: string; readonly key: string; readonly epoch: number };

/** Member -> worker. */
export type WorkerReply =
  | { readonly kind: "joined" }
  | {
      readonly kind: "renewed";
      readonly seq: number;
      readonly keys: readonly AnsweredKey[];
      /** Whether the table lists the worker (false once it was expired: it must join again). */
      readonly member: boolean;
    }
  | { readonly kind: "notLeader"; readonly leaderHint: string | null };

/** A client's write to the owner of `key`, carrying the epoch the gateway told it. */
export interface WriteRequest {
  readonly requestId: number;
  readonly client: number;
  readonly key: string;
  readonly epoch: number;
}

/** The worker's answer: written, or refused because it does not own `key` at that epoch (409). */
export interface WriteReply {
  readonly requestId: number;
  readonly status: "ok" | "stale";
}

/** What a worker needs from the simulator. */
export interface WorkerHost {
  /** Simulated true time, µs. */
  now(): number;
  sendToMember(worker: SimWorker, member: string, request: WorkerRequest): void;
  replyToClient(worker: SimWorker, client: number, reply: WriteReply): void;
  /** Calls `fn` after `delayUs` of true time, unless the worker's generation changed. */
  after(worker: SimWorker, delayUs: number, fn: () => void): void;
  /** The worker began (or stopped) believing it may serve `key`, at true time now. */
  onServe(worker: SimWorker, grant: LeaseGrant, serving: boolean): void;
  /** The worker writes to the fenced resource; returns whether the fence accepted the write. */
  write(worker: SimWorker, key: string, epoch: number): boolean;
  /** A member to ask when no leader is known. */
  anyMember(): string;
}

/** How a worker behaves. */
export interface WorkerOptions {
  readonly lease: LeaseConfigInput;
  /** Local time between renewals. */
  readonly renewIntervalMs: number;
  readonly capacity: number;
  readonly zone: string;
  /** Local time between accepting a write and making it (a window a pause can fall into). */
  readonly writeDelayUs: number;
}

/** One simulated worker. */
export class SimWorker {
  lease: WorkerLease;
  /** Incremented on every crash: events of an earlier incarnation are ignored. */
  generation = 0;
  up = false;
  joined = false;
  /** While paused (true time, µs), the worker runs nothing; events wait until it resumes. */
  pausedUntilUs = 0;
  private seq = 0;
  private leaderGuess: string | null = null;
  /** Writes it made, and writes the fence refused. */
  writes = 0;
  writesRefused = 0;

  constructor(
    readonly id: string,
    readonly clock: SimClock,
    private readonly options: WorkerOptions,
    private readonly host: WorkerHost,
  ) {
    this.lease = new WorkerLease(options.lease);
  }

  /** Local time in milliseconds. */
  private localMs(): number {
    return this.clock.localAt(this.host.now()) / 1000;
  }

  /** Starts (or restarts) the worker: a fresh lease, a join, and the renewal loop. */
  start(): void {
    this.up = true;
    this.joined = false;
    this.lease = new WorkerLease(this.options.lease);
    // Sequence numbers never repeat across incarnations (see WorkerLease.renewalSent).
    this.seq = this.generation * 1_000_000_000;
    this.sendJoin();
    this.renewSoon(0);
  }

  /** Crashes the worker: it stops, and believes nothing any more. */
  crash(): void {
    for (const grant of this.lease.servable(this.localMs()).entries()) {
      this.host.onServe(this, { key: grant[0], epoch: grant[1] }, false);
    }
    this.up = false;
    this.generation += 1;
  }

  private paused(): boolean {
    return this.host.now() < this.pausedUntilUs;
  }

  /** Runs `fn` now, or when a pause ends. */
  private run(fn: () => void): void {
    if (!this.up) return;
    if (this.paused()) {
      this.host.after(this, this.pausedUntilUs - this.host.now(), () => this.run(fn));
      return;
    }
    fn();
  }

  private sendJoin(): void {
    const request: WorkerRequest = { kind: "join", worker: this.id, capacity: this.options.capacity, zone: this.options.zone };
    this.host.sendToMember(this, this.leaderGuess ?? this.host.anyMember(), request);
  }

  private renewSoon(delayMs: number): void {
    this.host.after(this, this.clock.trueDuration(delayMs * 1000), () =>
      this.run(() => {
        this.renew();
        this.renewSoon(this.options.renewIntervalMs);
      }),
    );
  }

  private renew(): void {
    if (!this.joined) {
      this.sendJoin();
      return;
    }
    this.seq += 1;
    this.lease.renewalSent(this.seq, this.localMs());
    this.host.sendToMember(this, this.leaderGuess ?? this.host.anyMember(), { kind: "renew", worker: this.id, seq: this.seq });
  }

  /** A member's reply. */
  onReply(from: string, reply: WorkerReply): void {
    this.run(() => {
      switch (reply.kind) {
        case "joined":
          this.joined = true;
          this.leaderGuess = from;
          return;
        case "notLeader":
          this.leaderGuess = reply.leaderHint;
          return;
        case "renewed":
          this.leaderGuess = from;
          if (this.lease.answered(reply.seq, reply.keys) === "accepted") this.reconcile();
          if (!reply.member) this.joined = false;
          return;
      }
    });
  }

  /** Tells the host what it now serves, confirms released drains, and wakes when the lease lapses. */
  private reconcile(): void {
    const changes = this.lease.reconcile(this.localMs());
    for (const grant of changes.released) this.host.onServe(this, grant, false);
    for (const grant of changes.acquired) {
      this.host.onServe(this, grant, true);
      // Opening the resource raises its fence to the new epoch (the router example's `_fence` row),
      // so that from now on a former owner's writes are refused.
      this.host.write(this, grant.key, grant.epoch);
    }
    for (const grant of changes.confirm) {
      const request: WorkerRequest = { kind: "release", worker: this.id, key: grant.key, epoch: grant.epoch };
      this.host.sendToMember(this, this.leaderGuess ?? this.host.anyMember(), request);
    }
    const until = this.lease.validUntil();
    if (until !== null) {
      // The lease lapses on the worker's clock whether or not it is paused: belief is a matter of
      // its clock, and a paused worker that resumes must not serve past it either.
      const delayUs = Math.max(1, Math.ceil((until * 1000 - this.clock.localAt(this.host.now())) / this.clock.rate));
      const generation = this.generation;
      this.host.after(this, delayUs, () => {
        if (this.up && this.generation === generation) this.reconcileLapse();
      });
    }
  }

  private reconcileLapse(): void {
    // A lapse only ends grants; nothing new can be acquired without an answer.
    const changes = this.lease.reconcile(this.localMs());
    for (const grant of changes.released) this.host.onServe(this, grant, false);
  }

  /** A client's write: checked against the lease now, made after `writeDelayUs` (a pause may intervene). */
  onWrite(request: WriteRequest): void {
    this.run(() => {
      if (!this.lease.canServe(request.key, request.epoch, this.localMs())) {
        this.host.replyToClient(this, request.client, { requestId: request.requestId, status: "stale" });
        return;
      }
      // host.after drops the event if the worker crashes meanwhile; a pause only delays it.
      this.host.after(this, this.options.writeDelayUs, () =>
        this.run(() => {
          // No second look at the lease: a worker paused between its check and its write writes
          // with the epoch it checked, and only the fence stands in the way.
          const accepted = this.host.write(this, request.key, request.epoch);
          this.writes += 1;
          if (!accepted) this.writesRefused += 1;
          this.host.replyToClient(this, request.client, { requestId: request.requestId, status: accepted ? "ok" : "stale" });
        }),
      );
    });
  }
}
