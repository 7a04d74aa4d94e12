/**
 * A simulated worker: the real worker agent (`startWorkerAgent`) on its process's drifting clock
 * and the simulated network, serving routed requests by writing to the fenced resource with its
 * grant's epoch after a delay (a window a pause can fall into). The simulator watches what the
 * agent would serve (`owned()`, the one rule requests are served by) after every event the worker
 * ran, and at the instant its lease runs out on its own clock, to check single ownership exactly.
 */
import { StaleEpochError } from "../lib/errors.ts";
import type { WorkerRequest } from "../lib/host/routing.ts";
import { startWorkerAgent, type ServeResult, type WorkerAgent } from "../lib/host/worker.ts";
import { workerPeerId } from "../lib/host/worker-protocol.ts";
import type { LeaseConfigInput } from "../lib/placement/leases.ts";
import type { ResourceKey } from "../lib/placement/types.ts";
import { sleep } from "../lib/ports/clock.ts";
import type { SimWire } from "./transport.ts";
import type { Scheduler, SimProcess } from "./world.ts";

/** Renewal sequence numbers of one incarnation, so that no two incarnations share any. */
const SEQUENCES_PER_INCARNATION = 1_000_000_000;

/** How every worker of a run behaves. */
export interface WorkerSetup {
  readonly lease: LeaseConfigInput;
  readonly renewEveryMs: number;
  readonly callTimeoutMs: number;
  readonly handleTimeoutMs: number;
  /** Local time between a request's admission and its write to the resource (ms). */
  readonly writeDelayMs: number;
}

/** What a worker does to the world, and what the simulator learns from it. */
export interface WorkerHooks {
  /** Writes to the fenced resource at `epoch`; `writeId` names an acknowledged client write. Returns the fence's verdict. */
  write(worker: SimWorker, key: ResourceKey, epoch: number, writeId: string | null): { accepted: boolean; fence: number };
  /** The worker began (`serving`) or stopped believing it may serve `key` at `epoch`, now. */
  serveChanged(worker: SimWorker, key: ResourceKey, epoch: number, serving: boolean): void;
  /** The agent failed to start (a bug). */
  failed(worker: SimWorker, error: Error): void;
}

/** One worker across its incarnations. */
export class SimWorker {
  agent: WorkerAgent | null = null;
  /** What the agent would serve at the last probe: key -> epoch. */
  private owned = new Map<ResourceKey, number>();
  /** The true time of the pending lapse probe, if one is scheduled. */
  private lapseProbeAt: number | null = null;
  /** The agent's `ownershipVersion()` at the last probe (NaN: compare next time). */
  private probedVersion = Number.NaN;
  closing = false;

  constructor(
    readonly id: string,
    readonly process: SimProcess,
    private readonly scheduler: Scheduler,
    private readonly wire: SimWire,
    private readonly setup: WorkerSetup,
    private readonly hooks: WorkerHooks,
    readonly capacity: number,
    readonly zone: string,
  ) {}

  /** The transport id the worker speaks as (`worker:<id>`), also the address gateways send to. */
  get peer(): string {
    return workerPeerId(this.id);
  }

  get up(): boolean {
    return this.process.up;
  }

  /** Starts a new incarnation: a fresh agent that joins and renews. */
  start(members: readonly string[]): void {
    this.process.start();
    const generation = this.process.generation;
    const clock = this.process.clockPort();
    void startWorkerAgent({
      id: this.id,
      members: Object.fromEntries(members.map((id) => [id, id])),
      transport: this.wire.transport(this.peer),
      clock,
      address: this.peer,
      incarnation: (generation + 1) * SEQUENCES_PER_INCARNATION,
      capacity: this.capacity,
      zone: this.zone,
      lease: this.setup.lease,
      renewEveryMs: this.setup.renewEveryMs,
      callTimeoutMs: this.setup.callTimeoutMs,
      handleTimeoutMs: this.setup.handleTimeoutMs,
      onAcquire: (key, epoch) => {
        // Opening the resource raises its fence to the new epoch (the router example's `_fence`
        // row), so that from now on a former owner's writes are refused.
        this.hooks.write(this, key, epoch, null);
      },
      handle: async (request, context) => {
        await sleep(clock, this.setup.writeDelayMs);
        // No second look at the lease: a worker paused between its admission and its write writes
        // with the epoch it was admitted at, and only the fence stands in the way.
        const writeId = new TextDecoder().decode(request.body);
        const { accepted, fence } = this.hooks.write(this, context.key, context.epoch, writeId);
        if (!accepted) throw new StaleEpochError(context.key, context.epoch, fence);
        return { status: 200, body: request.body };
      },
    }).then(
      (agent) => {
        if (this.process.up && this.process.generation === generation) this.agent = agent;
        else void agent.close({ leave: false });
      },
      (error: unknown) => this.hooks.failed(this, error as Error),
    );
  }

  /** Serves one routed request in the current incarnation (the gateway's attempt arrived). */
  serve(key: ResourceKey, epoch: number, writeId: string): Promise<ServeResult> | null {
    const agent = this.agent;
    if (agent === null) return null;
    const request: WorkerRequest = {
      method: "PUT",
      url: key,
      path: key,
      query: "",
      headers: {},
      body: new TextEncoder().encode(writeId),
    };
    return agent.serve(request, key, epoch);
  }

  /**
   * Compares what the agent would serve now with the last probe and reports the difference; then
   * makes sure a probe runs at the instant the lease runs out on the worker's clock.
   */
  probe(force = false): void {
    const agent = this.agent;
    // Nothing that decides what it serves changed since the last look (a lapse forces one).
    if (!force && agent !== null && this.process.up && agent.ownershipVersion() === this.probedVersion) return;
    this.probedVersion = agent === null || !this.process.up ? Number.NaN : agent.ownershipVersion();
    const now = new Map<ResourceKey, number>();
    if (agent !== null && this.process.up) for (const { key, epoch } of agent.owned()) now.set(key, epoch);
    for (const [key, epoch] of this.owned) {
      if (now.get(key) !== epoch) this.hooks.serveChanged(this, key, epoch, false);
    }
    for (const [key, epoch] of now) {
      if (this.owned.get(key) !== epoch) this.hooks.serveChanged(this, key, epoch, true);
    }
    this.owned = now;
    if (now.size > 0 && agent !== null) this.scheduleLapseProbe(agent.leaseUntil());
  }

  private scheduleLapseProbe(untilMs: number | null): void {
    if (untilMs === null) return;
    // The first true instant at which the worker's clock reads `untilMs` or later: its lease is over.
    const atUs = this.process.clock.firstTrueTimeAt(untilMs, this.scheduler.now);
    // Already over, yet something is served: the lease is not what ends it; nothing to wait for.
    if (atUs <= this.scheduler.now) return;
    if (this.lapseProbeAt !== null && this.lapseProbeAt <= atUs && this.lapseProbeAt >= this.scheduler.now) return;
    this.lapseProbeAt = atUs;
    this.scheduler.at(atUs, () => {
      if (this.lapseProbeAt === atUs) this.lapseProbeAt = null;
      this.probe(true);
    });
  }

  /** Ends the incarnation abruptly: it believes nothing any more. */
  stop(): void {
    this.agent = null;
    this.closing = false;
    this.process.stop();
    this.probe(true);
  }
}
