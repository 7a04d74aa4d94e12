/**
 * A small simulated world for tests of the host: processes with drifting clocks, the simulated
 * network as their transports and simulated disks as their storage, and a way to run simulated
 * time until something happens. Tests build members with the real `createNode`,
 * `createPlacementMember` and worker agent on it and assert on them; nothing waits on the wall
 * clock, so a busy machine cannot make them flaky, and the same seed always runs the same way.
 *
 * ```ts
 * const world = new SimHarness({ seed: 1 });
 * const node = await world.settle(createNode({ id: "n1", ...world.ports("n1"), members, stateMachine }), 1_000);
 * await world.until(() => node.status().role === "leader", 5_000, "a leader");
 * const result = await world.settle(node.propose(command), 1_000);
 * world.close();
 * ```
 */
import type { Clock } from "../lib/ports/clock.ts";
import type { Storage } from "../lib/ports/storage.ts";
import type { Transport } from "../lib/ports/transport.ts";
import { SimClock } from "./clock.ts";
import { SimDisk } from "./disk.ts";
import { SimNetwork, type NetworkOptions } from "./network.ts";
import { Random } from "./random.ts";
import { SimWire } from "./transport.ts";
import { Scheduler, SimProcess } from "./world.ts";

/** How a harness's world behaves. Times in µs unless named otherwise. */
export interface HarnessOptions {
  /** Seeds the network, the fsync latencies and every member's randomness. @defaultValue 1 */
  readonly seed?: number;
  /** The network; by default a quiet one: 100–500 µs per hop, nothing lost. */
  readonly network?: Partial<NetworkOptions>;
  /** fsync latency is drawn from `[fsyncUsMin, fsyncUsMax]`. @defaultValue 100 and 500 */
  readonly fsyncUsMin?: number;
  readonly fsyncUsMax?: number;
}

/** The ports a process's current incarnation gets: what `createNode` and the worker agent take. */
export interface ProcessPorts {
  readonly transport: Transport;
  readonly clock: Clock;
  readonly random: () => number;
}

/** Thrown when simulated time ran out before what a test waited for happened. */
export class SimTimeout extends Error {
  constructor(what: string, withinMs: number) {
    super(`${what} did not happen within ${withinMs} ms of simulated time`);
    this.name = "SimTimeout";
  }
}

/** A simulated world for tests. Call {@link close} at the end (in `finally` or `after`). */
export class SimHarness {
  readonly scheduler = new Scheduler();
  readonly network: SimNetwork;
  readonly wire: SimWire;
  private readonly random: Random;
  private readonly processes = new Map<string, SimProcess>();
  private readonly disks = new Map<string, SimDisk>();
  private readonly fsyncUsMin: number;
  private readonly fsyncUsMax: number;
  /** Parcels the network dropped (lost, cut, or to a process that was down). */
  dropped = 0;

  constructor(options: HarnessOptions = {}) {
    this.random = new Random(`harness:${options.seed ?? 1}`);
    this.network = new SimNetwork(this.random.fork("network"), {
      latencyUsMin: 100,
      latencyUsMax: 500,
      jitterUs: 100,
      lossRate: 0,
      duplicateRate: 0,
      reorderRate: 0,
      reorderDelayUsMax: 0,
      ...options.network,
    });
    this.wire = new SimWire(this.scheduler, this.network, {
      sent: () => {},
      delivered: () => {},
      dropped: () => {
        this.dropped += 1;
      },
      left: () => {},
    });
    this.fsyncUsMin = options.fsyncUsMin ?? 100;
    this.fsyncUsMax = options.fsyncUsMax ?? 500;
  }

  /** Simulated true time, ms. */
  get nowMs(): number {
    return this.scheduler.now / 1000;
  }

  /**
   * The process `id` (made on first use, with a clock of the given `rate` and `offsetMs`), up in
   * a new incarnation if it was down.
   */
  process(id: string, clock: { readonly rate?: number; readonly offsetMs?: number } = {}): SimProcess {
    let process = this.processes.get(id);
    if (process === undefined) {
      process = new SimProcess(id, new SimClock((clock.offsetMs ?? 0) * 1000, clock.rate ?? 1), this.scheduler);
      this.processes.set(id, process);
      this.wire.register(id, process);
    }
    if (!process.up) process.start();
    return process;
  }

  /** The transport, clock and randomness of `id`'s current incarnation (starting it if down). */
  ports(id: string, clock: { readonly rate?: number; readonly offsetMs?: number } = {}): ProcessPorts {
    const process = this.process(id, clock);
    const random = this.random.fork(`${id}:${process.generation}`);
    return { transport: this.wire.transport(id), clock: process.clockPort(), random: () => random.next() };
  }

  /** The clock of `id`'s current incarnation, for a test's own waits in simulated time. */
  clock(id: string): Clock {
    return this.process(id).clockPort();
  }

  /**
   * The disk of member `id` as its current incarnation's storage: each fsync takes simulated
   * time; a crash keeps only what was synced.
   */
  storage(id: string): Storage {
    const process = this.process(id);
    let disk = this.disks.get(id);
    if (disk === undefined) {
      disk = new SimDisk();
      this.disks.set(id, disk);
    }
    const generation = process.generation;
    const fsync = this.random.fork(`fsync:${id}:${generation}`);
    return disk.open((done) => process.after(fsync.int(this.fsyncUsMin, this.fsyncUsMax), done));
  }

  /** The disk of member `id` (to inspect it, or to tear its tail). */
  disk(id: string): SimDisk | undefined {
    return this.disks.get(id);
  }

  /** Crashes `id`: its incarnation ends at once, and its disk keeps only what was synced. */
  crash(id: string): void {
    this.disks.get(id)?.crash(this.random.fork(`crash:${id}`), false);
    this.processes.get(id)?.stop();
  }

  /** Pauses `id` for `ms` of simulated time: it runs nothing meanwhile; its clock goes on. */
  pause(id: string, ms: number): void {
    const process = this.processes.get(id);
    if (process !== undefined) process.pausedUntilUs = Math.max(process.pausedUntilUs, this.scheduler.now + ms * 1000);
  }

  /** Cuts the links between `a` and `b`, both ways, until {@link heal}. */
  cut(a: string, b: string): void {
    this.network.cut([...this.network.blockedLinks(), [a, b], [b, a]]);
  }

  /** Cuts `id` off from everyone but `except`, until {@link reconnect}. */
  isolate(id: string, except: readonly string[] = []): void {
    this.network.cutPeer(id, except);
  }

  reconnect(id: string): void {
    this.network.reconnect(id);
  }

  /** Restores every link. */
  heal(): void {
    this.network.heal();
    this.network.reconnectAll();
  }

  /** Runs simulated time forward by `ms`. */
  async advance(ms: number): Promise<void> {
    await this.scheduler.runUntil(this.scheduler.now + ms * 1000, () => {});
  }

  /**
   * Runs simulated time until `condition()` holds, for at most `withinMs`.
   * @throws SimTimeout when it does not
   */
  async until(condition: () => boolean, withinMs: number, what: string): Promise<void> {
    await this.scheduler.drain();
    if (condition()) return;
    await this.scheduler.runUntil(this.scheduler.now + withinMs * 1000, () => {}, condition);
    if (!condition()) throw new SimTimeout(what, withinMs);
  }

  /**
   * Runs simulated time until `promise` settles, for at most `withinMs`, and returns its value (or
   * throws its error).
   * @throws SimTimeout when it does not settle in time
   */
  async settle<T>(promise: Promise<T>, withinMs: number, what = "the promise"): Promise<T> {
    let settled = false;
    promise.then(
      () => (settled = true),
      () => (settled = true),
    );
    await this.until(() => settled, withinMs, `${what} settling`);
    return promise;
  }

  /** Releases the world's event loop; call it last, whatever happened. */
  close(): void {
    this.scheduler.close();
  }
}
