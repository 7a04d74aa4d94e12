/**
 * The placement protocol's leader side on a member (DESIGN.md §3): workers join, renew and release through the leader; the
 * leader answers a renewal only after a ReadIndex round that began after it arrived (`node.read`),
 * expires a worker `L*(1+ρ)` after the receipt of its last answered renewal (or after its own
 * election), hands a drained key on once its owner confirms the release or its lease has run out,
 * and runs bounded rebalance rounds. Every member runs one; only the leader acts. Time comes from
 * the member's `Clock`, so the simulator runs these rules as they run in production.
 */
import { NotLeaderError } from "../errors.ts";
import { silentLogger, type Logger } from "../logger.ts";
import { encodePlacementCommand } from "../placement/commands.ts";
import { LeaseTracker, type LeaseConfigInput } from "../placement/leases.ts";
import type { PlacementResult } from "../placement/table.ts";
import type { PlacementCommand, ResourceKey, WorkerId } from "../placement/types.ts";
import type { AnsweredKey } from "../placement/worker.ts";
import type { Cancel, Clock } from "../ports/clock.ts";
import type { OrreryNode } from "./node.ts";
import type { PlacementMachine } from "./placement-machine.ts";

/** How often the leader looks for expired workers and lapsed drains, by default (ms). */
export const PLACEMENT_TICK_MS_DEFAULT = 50;
/** How often a rebalance round may run, by default (ms). */
export const REBALANCE_EVERY_MS_DEFAULT = 1000;
/** Keys one rebalance round moves at most, by default. */
export const REBALANCE_MOVES_PER_ROUND_DEFAULT = 8;

/** Options of {@link PlacementLeader}. */
export interface PlacementLeaderOptions {
  readonly node: OrreryNode<PlacementResult>;
  readonly machine: PlacementMachine;
  /** The lease settings, identical on every member and worker. */
  readonly lease: LeaseConfigInput;
  /** @defaultValue {@link PLACEMENT_TICK_MS_DEFAULT} */
  readonly tickMs?: number;
  /** @defaultValue {@link REBALANCE_EVERY_MS_DEFAULT} */
  readonly rebalanceEveryMs?: number;
  /** @defaultValue {@link REBALANCE_MOVES_PER_ROUND_DEFAULT} */
  readonly rebalanceMovesPerRound?: number;
  readonly logger?: Logger;
  /** The member's clock: expiries and drains are timed on it. */
  readonly clock: Clock;
}

/** The answer to a renewal: the worker's grants (none when the leader may not list them). */
export interface RenewalAnswer {
  readonly keys: readonly AnsweredKey[];
  /** Whether the worker is in the table at all (a worker that is not must join again). */
  readonly member: boolean;
}

/** Where a request for a key goes. */
export type RouteAnswer =
  | { readonly status: "ok"; readonly owner: WorkerId; readonly address: string; readonly epoch: number }
  /** The key is moving, or no worker can take it now: try again shortly. */
  | { readonly status: "retry"; readonly reason: string };

/** The leader side of placement on one member. */
export class PlacementLeader {
  private readonly node: OrreryNode<PlacementResult>;
  private readonly machine: PlacementMachine;
  private readonly tracker: LeaseTracker;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly tickMs: number;
  private readonly rebalanceEveryMs: number;
  private readonly movesPerRound: number;
  private timer: Cancel | null = null;
  private started = false;
  private unsubscribe: (() => void) | null = null;
  private unsubscribeApplied: (() => void) | null = null;
  private lastRebalanceAt = 0;
  /** Expiries and handoffs proposed and not yet applied, so a slow commit is not proposed twice. */
  private readonly proposedExpires = new Set<WorkerId>();
  private readonly proposedHandoffs = new Set<string>();

  constructor(options: PlacementLeaderOptions) {
    this.node = options.node;
    this.machine = options.machine;
    this.tracker = new LeaseTracker(options.lease);
    this.logger = options.logger ?? silentLogger;
    this.clock = options.clock;
    this.tickMs = options.tickMs ?? PLACEMENT_TICK_MS_DEFAULT;
    this.rebalanceEveryMs = options.rebalanceEveryMs ?? REBALANCE_EVERY_MS_DEFAULT;
    this.movesPerRound = options.rebalanceMovesPerRound ?? REBALANCE_MOVES_PER_ROUND_DEFAULT;
  }

  /** Starts following leadership and applied commands, and the expiry timer. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.unsubscribeApplied = this.machine.subscribe((command, result) => this.onApplied(command, result));
    this.unsubscribe = this.node.onLeadershipChange(({ role }) => this.onRole(role === "leader"));
    this.onRole(this.node.leadership().leading);
  }

  /** Stops the timer and the subscriptions. */
  close(): void {
    this.started = false;
    this.timer?.();
    this.timer = null;
    this.unsubscribe?.();
    this.unsubscribeApplied?.();
    this.tracker.onSteppedDown();
  }

  /** The expiry timer runs only while this member leads: nothing else acts on it. */
  private arm(): void {
    if (this.timer !== null || !this.started) return;
    this.timer = this.clock.after(this.tickMs, () => {
      this.timer = null;
      if (!this.started || !this.tracker.isLeading()) return;
      this.arm();
      this.tick();
    });
  }

  private now(): number {
    return this.clock.now();
  }

  /** `L*(1+ρ)`: how long after a worker's last answered renewal the leader may expire it (ms). */
  expiryDelayMs(): number {
    return this.tracker.expiryDelayMs();
  }

  /** A worker joins (or rejoins with new details). Leader only. @throws NotLeaderError */
  async join(worker: WorkerId, address: string, capacity: number, zone: string): Promise<PlacementResult> {
    return this.propose({ type: "join", worker, address, capacity, zone });
  }

  /** A worker leaves gracefully: its keys drain to others, then it is removed. */
  async leave(worker: WorkerId): Promise<PlacementResult> {
    return this.propose({ type: "leave", worker });
  }

  /** A worker confirms it released `key` granted at `epoch`. */
  async release(worker: WorkerId, key: ResourceKey, epoch: number): Promise<PlacementResult> {
    return this.propose({ type: "release", worker, key, epoch });
  }

  /**
   * Answers a worker's renewal: after a quorum round that began after this call and once this
   * member applied up to it, the worker's grants, or none when its lease may not be extended.
   * @throws NotLeaderError when this member does not lead (then or when the round completes)
   */
  async renew(worker: WorkerId): Promise<RenewalAnswer> {
    this.requireLeader();
    const receivedAt = this.now();
    await this.node.read(() => undefined);
    this.requireLeader();
    const table = this.machine.table;
    const keys = this.tracker.onRenewalAnswered(worker, receivedAt)
      ? table.keysOf(worker).map((k) => ({ key: k.key, epoch: k.epoch, draining: k.state === "draining" }))
      : [];
    return { keys, member: table.worker(worker) !== undefined };
  }

  private async propose(command: PlacementCommand): Promise<PlacementResult> {
    this.requireLeader();
    return this.node.propose(encodePlacementCommand(command));
  }

  private requireLeader(): void {
    const { leading, leader, leaderAddress } = this.node.leadership();
    if (!leading) throw new NotLeaderError(leader, leaderAddress);
  }

  private onRole(leading: boolean): void {
    this.proposedExpires.clear();
    this.proposedHandoffs.clear();
    if (leading && !this.tracker.isLeading()) {
      this.tracker.onElected(this.now());
      this.logger.info("placement: leading; expiries wait L(1+rho) from now", { expiryDelayMs: this.expiryDelayMs() });
      this.arm();
    } else if (!leading) {
      this.tracker.onSteppedDown();
      this.timer?.();
      this.timer = null;
    }
  }

  /** Keeps the tracker in step with what every member applies (only the leader's acts on it). */
  private onApplied(command: PlacementCommand, result: PlacementResult): void {
    if (!this.tracker.isLeading()) return;
    const now = this.now();
    // A worker that (re)joins starts its lease clock now, or it would be expired at once by a
    // deadline counted from before it existed.
    if (command.type === "join" && result.refused === null) this.tracker.onRenewalAnswered(command.worker, now);
    for (const a of result.changed) if (a.state === "draining") this.tracker.onDrainApplied(a.key, a.epoch, now);
    for (const worker of result.workersRemoved) {
      this.tracker.forget(worker);
      this.proposedExpires.delete(worker);
    }
  }

  /** Leader only: expires workers whose lease surely ran out, hands off lapsed drains, rebalances. */
  private tick(): void {
    if (!this.tracker.isLeading() || !this.node.leadership().leading) return;
    const now = this.now();
    const table = this.machine.table;
    for (const worker of this.tracker.expiredWorkers(now, table.workers().map((w) => w.id))) {
      if (this.proposedExpires.has(worker)) continue;
      this.proposedExpires.add(worker);
      this.fireAndLog({ type: "expire", worker }, () => this.proposedExpires.delete(worker));
    }
    const draining = table.drainingKeys().map((key) => ({ key, epoch: table.assignment(key)?.epoch ?? 0 }));
    const still = new Set(draining.map((g) => `${g.key}@${g.epoch}`));
    for (const id of this.proposedHandoffs) if (!still.has(id)) this.proposedHandoffs.delete(id);
    for (const grant of this.tracker.handoffsDue(now, draining)) {
      const id = `${grant.key}@${grant.epoch}`;
      if (this.proposedHandoffs.has(id)) continue;
      this.proposedHandoffs.add(id);
      this.fireAndLog({ type: "handoff", key: grant.key, epoch: grant.epoch }, () => this.proposedHandoffs.delete(id));
    }
    if (now - this.lastRebalanceAt >= this.rebalanceEveryMs && draining.length === 0 && table.unbalanced()) {
      this.lastRebalanceAt = now;
      this.fireAndLog({ type: "rebalance", movesMax: this.movesPerRound });
    }
  }

  /** Proposes `command` without waiting; `onLost` runs when it will not be applied (to try again). */
  private fireAndLog(command: PlacementCommand, onLost: () => void = () => {}): void {
    this.propose(command).then(
      (result) => {
        if (result.refused !== null) this.logger.debug("placement command refused", { command: command.type, why: result.refused });
      },
      (error: unknown) => {
        onLost();
        this.logger.debug("placement command not applied", { command: command.type, error });
      },
    );
  }
}
