/**
 * The Node clock: the `Clock` port on `performance.now`, `setTimeout` and `setImmediate`. This is
 * what members and workers run on unless given another clock (the simulator gives its own).
 */
import type { Cancel, Clock } from "../ports/clock.ts";

const NODE_CLOCK: Clock = Object.freeze({
  now: () => performance.now(),
  after(ms: number, fn: () => void): Cancel {
    const timer = setTimeout(fn, Math.max(0, ms));
    return () => clearTimeout(timer);
  },
  defer(fn: () => void): void {
    setImmediate(fn);
  },
});

/** The Node clock (one shared, stateless instance). */
export function nodeClock(): Clock {
  return NODE_CLOCK;
}
