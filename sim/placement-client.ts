/**
 * A simulated user of the placement layer: it picks a key, asks a member's gateway who owns it
 * (acquiring it on first use), and sends a write to the owner carrying the owner's epoch. Like a
 * gateway it caches routes, so a write may reach an owner that has since lost the key: a stale route
 * (the worker answers 409) drops the cached route and asks again; no answer in time makes it try
 * another member.
 */
import type { RouteReply } from "./member.ts";
import type { Random } from "./random.ts";
import type { WriteReply, WriteRequest } from "./worker.ts";

/** What a placement client needs from the simulator. */
export interface PlacementClientHost {
  now(): number;
  route(client: PlacementClient, member: string, requestId: number, key: string): void;
  write(client: PlacementClient, worker: string, request: WriteRequest): void;
  after(delayUs: number, fn: () => void): void;
  nextRequestId(): number;
}

/** How placement clients behave. */
export interface PlacementClientOptions {
  /** Keys drawn from `/k0` .. `/k{keys-1}`. */
  readonly keys: number;
  readonly thinkMs: number;
  /** A request without an answer after this long is sent again (to another member). */
  readonly timeoutMs: number;
}

/** One placement client. */
export class PlacementClient {
  private target: string;
  private requestId = 0;
  private key = "";
  /** Whether it may start new operations (false once the liveness phase begins). */
  accepting = true;
  writesOk = 0;
  writesStale = 0;
  /** Cached routes, key -> owner and epoch; at most `keys` entries. */
  private readonly routes = new Map<string, { readonly owner: string; readonly epoch: number }>();

  constructor(
    readonly id: number,
    private readonly members: readonly string[],
    private readonly random: Random,
    private readonly options: PlacementClientOptions,
    private readonly host: PlacementClientHost,
  ) {
    this.target = random.pick(members);
  }

  /** Starts the next operation. */
  wake(): void {
    if (!this.accepting) return;
    this.key = `/k${this.random.int(0, this.options.keys - 1)}`;
    const cached = this.routes.get(this.key);
    if (cached !== undefined) this.sendWrite(cached.owner, cached.epoch);
    else this.sendRoute();
  }

  private sendRoute(): void {
    const requestId = this.host.nextRequestId();
    this.requestId = requestId;
    this.host.route(this, this.target, requestId, this.key);
    this.host.after(this.options.timeoutMs * 1000, () => {
      if (this.requestId !== requestId) return;
      this.target = this.random.pick(this.members);
      this.sendRoute();
    });
  }

  private next(): void {
    this.requestId = 0;
    this.host.after(Math.max(1, Math.floor(this.random.exponential(this.options.thinkMs * 1000))), () => this.wake());
  }

  /** A gateway's answer. */
  onRoute(reply: RouteReply): void {
    if (reply.requestId !== this.requestId) return;
    switch (reply.status) {
      case "ok":
        this.routes.set(this.key, { owner: reply.owner, epoch: reply.epoch });
        this.sendWrite(reply.owner, reply.epoch);
        return;
      case "notLeader":
        this.target = reply.leaderHint ?? this.random.pick(this.members);
        this.retrySoon();
        return;
      case "retry":
        this.retrySoon();
        return;
    }
  }

  private sendWrite(owner: string, epoch: number): void {
    const requestId = this.host.nextRequestId();
    this.requestId = requestId;
    this.host.write(this, owner, { requestId, client: this.id, key: this.key, epoch });
    this.host.after(this.options.timeoutMs * 1000, () => {
      if (this.requestId !== requestId) return;
      this.routes.delete(this.key); // the owner may be gone
      this.next();
    });
  }

  private retrySoon(): void {
    const requestId = this.requestId;
    this.host.after(this.random.int(1000, 20_000), () => {
      if (this.requestId === requestId) this.sendRoute();
    });
  }

  /** The owner's answer to a write. */
  onWrite(reply: WriteReply): void {
    if (reply.requestId !== this.requestId) return;
    if (reply.status === "ok") {
      this.writesOk += 1;
      this.next();
      return;
    }
    // 409: the route is stale. Ask the gateway again, shortly.
    this.writesStale += 1;
    this.routes.delete(this.key);
    this.retrySoon();
  }
}
