/**
 * The `Clock` port: the only way the host reads time, sets timers or defers work. Production passes
 * the Node clock (`nodeClock()`: `performance.now`, `setTimeout`, `setImmediate`); the simulator
 * passes each member and worker a clock of its own that runs on simulated time, with an offset and
 * a drifting rate, so that every timer the host sets fires when the seed says.
 *
 * ```ts
 * const cancel = clock.after(50, () => renew());   // a timer is a value: cancel() stops it
 * clock.defer(() => runReadyLoop());                // after the I/O already waiting, on this turn's end
 * const elapsedMs = clock.now() - startedMs;        // monotonic milliseconds
 * ```
 */

/** Stops a timer set with {@link Clock.after}. Calling it again, or after the timer fired, does nothing. */
export type Cancel = () => void;

/** Time as the host sees it. Every method must be cheap: the host calls `now()` per operation. */
export interface Clock {
  /**
   * Milliseconds on a monotonic clock (fractions allowed). It never goes backwards; its origin is
   * arbitrary, so only differences mean anything.
   */
  now(): number;
  /**
   * Calls `fn` once, no sooner than `ms` milliseconds of this clock from now (`ms` < 0 counts as 0).
   * Timers set for the same instant fire in the order they were set.
   * @returns a function that cancels the timer
   */
  after(ms: number, fn: () => void): Cancel;
  /**
   * Calls `fn` soon, after the I/O that is already waiting has been delivered (Node's
   * `setImmediate`): the host defers its Ready loop and its ticks this way, so that what arrived
   * meanwhile is stepped first.
   */
  defer(fn: () => void): void;
}

/** Resolves after `ms` milliseconds of `clock`. */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => {
    clock.after(ms, resolve);
  });
}
