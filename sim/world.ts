/**
 * The simulated world: one event queue ordered by (true time, sequence), and the processes that
 * live in it (members, workers, clients), each with its own drifting clock, its incarnations and
 * its pauses. The host runs here unchanged: every timer it sets (`Clock.after`), every deferral
 * (`Clock.defer`), every message (the network) and every fsync (the disk) becomes an event, and
 * nothing else can make time pass.
 *
 * Determinism with promises: the host is asynchronous, so after each event the world lets the
 * microtask queue drain completely before it takes the next event. It does that by yielding to a
 * macrotask (a MessageChannel message): Node runs every queued microtask, and those they queue,
 * before it delivers the message. No real timer or I/O is ever scheduled by anything in the world,
 * so nothing but the world's own events can run in between, and the order of everything is a
 * function of the seed.
 */
import { assert } from "../lib/assert.ts";
import type { Cancel, Clock } from "../lib/ports/clock.ts";
import type { SimClock } from "./clock.ts";
import { EventQueue } from "./event-queue.ts";

/**
 * One event: a function run at its time. It returns `false` when it turned out to run nothing (a
 * cancelled timer, a message for an incarnation that ended): no microtask can have been queued,
 * so the scheduler need not yield before the next event.
 */
export type SimEvent = () => boolean | void;

/**
 * Yields to a macrotask, so that every microtask queued so far (and those they queue) runs first.
 * The channel is opened on first use and must be closed after the run: an open port keeps the
 * process alive (as it should while a run awaits it).
 */
class MacrotaskGate {
  private channel: InstanceType<typeof MessageChannel> | null = null;
  private wake: (() => void) | null = null;

  /** Resolves in a later macrotask, after the microtask queue has drained. */
  pass(): Promise<void> {
    let channel = this.channel;
    if (channel === null) {
      channel = new MessageChannel();
      channel.port1.on("message", () => {
        const wake = this.wake;
        this.wake = null;
        wake?.();
      });
      this.channel = channel;
    }
    const port = channel.port2;
    return new Promise((resolve) => {
      this.wake = resolve;
      port.postMessage(null);
    });
  }

  close(): void {
    this.channel?.port1.close();
    this.channel = null;
  }
}

/** The event loop of simulated true time (microseconds). */
export class Scheduler {
  private readonly queue = new EventQueue<SimEvent>();
  private readonly gate = new MacrotaskGate();
  /** Simulated true time, µs. */
  now = 0;
  /** Events run so far. */
  events = 0;
  /** Called after each event, once the microtasks it caused have run. */
  afterEvent: (() => void) | null = null;

  /** Schedules `event` at true time `timeUs` (never before now). */
  at(timeUs: number, event: SimEvent): void {
    this.queue.push(Math.max(timeUs, this.now), event);
  }

  /** The time of the next event, or `Infinity`. */
  peekTime(): number {
    return this.queue.peekTime();
  }

  /**
   * Runs events up to and including time `endUs` (then sets the time to `endUs`), or until
   * `stop()` answers true after an event. `guard` runs before each event and may throw to abort.
   */
  async runUntil(endUs: number, guard: () => void, stop?: () => boolean): Promise<void> {
    // What the caller started (a member's start, say) may still be in microtasks that will
    // schedule events: let them run before looking at the queue.
    await this.gate.pass();
    if (stop?.()) return;
    while (this.queue.peekTime() <= endUs) {
      guard();
      const next = this.queue.pop();
      if (next === undefined) break;
      this.now = next.time;
      this.events += 1;
      if (next.event() === false) continue;
      await this.gate.pass();
      this.afterEvent?.();
      if (stop?.()) return;
    }
    this.now = Math.max(this.now, endUs);
  }

  /** Lets every microtask queued so far run (and those they queue), without running an event. */
  drain(): Promise<void> {
    return this.gate.pass();
  }

  /** Releases the macrotask channel (a run's last step). */
  close(): void {
    this.gate.close();
  }
}

/**
 * A process of the world: it can be up or down (each start is a new incarnation: what an earlier
 * one scheduled never runs again), and paused (what it would run waits until the pause ends, while
 * its clock keeps going, as a stopped process's clock does).
 */
export class SimProcess {
  /** Incarnation: incremented on every crash or stop. */
  generation = 0;
  up = false;
  /** True time (µs) until which the process runs nothing. */
  pausedUntilUs = 0;

  constructor(
    readonly id: string,
    readonly clock: SimClock,
    private readonly scheduler: Scheduler,
    /** Called when this process ran something (the world probes workers after each event). */
    private readonly onRan: (process: SimProcess) => void = () => {},
  ) {}

  /** Marks a new incarnation up. */
  start(): void {
    assert(!this.up, () => `${this.id} is down before it starts`);
    this.up = true;
  }

  /** Ends the incarnation: nothing it scheduled runs any more. */
  stop(): void {
    this.up = false;
    this.generation += 1;
    this.pausedUntilUs = 0;
  }

  /** Whether the process is paused at the current time. */
  paused(): boolean {
    return this.scheduler.now < this.pausedUntilUs;
  }

  /**
   * Runs `fn` in incarnation `generation` of this process: now, or when its pause ends; never if
   * that incarnation ended.
   */
  run(generation: number, fn: () => void): boolean {
    if (!this.up || this.generation !== generation) return false;
    if (this.paused()) {
      this.scheduler.at(this.pausedUntilUs, () => this.run(generation, fn));
      return false;
    }
    this.onRan(this);
    fn();
    return true;
  }

  /** Schedules `fn` in the current incarnation after `delayUs` of true time. */
  after(delayUs: number, fn: () => void): void {
    const generation = this.generation;
    this.scheduler.at(this.scheduler.now + delayUs, () => this.run(generation, fn));
  }

  /** The `Clock` port of the current incarnation: local time, timers and deferrals. */
  clockPort(): Clock {
    return new ProcessClock(this, this.generation, this.scheduler);
  }
}

/** A process's `Clock`: its own drifting time; timers in true time; nothing after its incarnation ends. */
class ProcessClock implements Clock {
  constructor(
    private readonly process: SimProcess,
    private readonly generation: number,
    private readonly scheduler: Scheduler,
  ) {}

  now(): number {
    return this.process.clock.localAt(this.scheduler.now) / 1000;
  }

  after(ms: number, fn: () => void): Cancel {
    let cancelled = false;
    const delayUs = this.process.clock.trueDuration(Math.max(0, ms) * 1000);
    this.scheduler.at(this.scheduler.now + delayUs, () => !cancelled && this.process.run(this.generation, fn));
    return () => {
      cancelled = true;
    };
  }

  defer(fn: () => void): void {
    this.scheduler.at(this.scheduler.now, () => this.process.run(this.generation, fn));
  }
}
