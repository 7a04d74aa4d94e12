/**
 * A simulated user of the placement layer: it picks a key and sends a write for it to a member's
 * gateway, which routes it to the key's owner (see sim/gateway.ts: the host's own routing rules
 * decide). A 503 (no owner now) or a gateway's 502/504 is retried shortly; no answer in time makes
 * it try another member. A 200 is an acknowledged write, which the resource must hold.
 */
import type { RoutedClient, RoutedReply, RoutedRequest } from "./gateway.ts";
import type { Random } from "./random.ts";

/** What a placement client needs from the simulator. */
export interface PlacementClientHost {
  now(): number;
  send(client: PlacementClient, member: string, request: RoutedRequest): void;
  after(delayUs: number, fn: () => void): void;
  nextRequestId(): number;
  /** The write `writeId` to `key` was acknowledged (200). */
  acknowledged(writeId: string, key: string): void;
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
export class PlacementClient implements RoutedClient {
  private target: string;
  private requestId = 0;
  private key = "";
  private writes = 0;
  /** Whether it may start new operations (false once the liveness phase begins). */
  accepting = true;
  writesOk = 0;
  writesRefused = 0;

  constructor(
    readonly id: number,
    private readonly members: readonly string[],
    private readonly random: Random,
    private readonly options: PlacementClientOptions,
    private readonly host: PlacementClientHost,
  ) {
    this.target = random.pick(members);
  }

  /** Starts the next write. */
  wake(): void {
    if (!this.accepting) return;
    this.key = `/k${this.random.int(0, this.options.keys - 1)}`;
    this.send();
  }

  private send(): void {
    const requestId = this.host.nextRequestId();
    this.requestId = requestId;
    this.writes += 1;
    const writeId = `p${this.id}-${this.writes}`;
    this.host.send(this, this.target, { requestId, client: this.id, key: this.key, writeId });
    this.host.after(this.options.timeoutMs * 1000, () => {
      if (this.requestId !== requestId) return;
      this.target = this.random.pick(this.members);
      this.send();
    });
  }

  /** A gateway's answer. */
  onReply(reply: RoutedReply): void {
    if (reply.requestId !== this.requestId) return;
    if (reply.status === 200) {
      this.host.acknowledged(`p${this.id}-${this.writes}`, this.key);
      this.writesOk += 1;
      this.requestId = 0;
      this.host.after(Math.max(1, Math.floor(this.random.exponential(this.options.thinkMs * 1000))), () => this.wake());
      return;
    }
    // No owner now, or the attempt failed: try again shortly, sometimes through another member.
    this.writesRefused += 1;
    if (this.random.chance(0.3)) this.target = this.random.pick(this.members);
    const requestId = this.requestId;
    this.host.after(this.random.int(1000, 20_000), () => {
      if (this.requestId === requestId) this.send();
    });
  }
}
