/**
 * Each simulated member and client has its own clock: an offset and a rate relative to true time.
 * `local = offset + rate * true`. A rate within `[1 - ρ, 1 + ρ]` models drift within the bound
 * `clockDriftMax` (ρ); a run may deliberately exceed it.
 */

/** A drifting clock. Times are microseconds. */
export class SimClock {
  constructor(
    /** Local time when true time is 0, in microseconds. */
    readonly offsetUs: number,
    /** Local microseconds per true microsecond; 1 means no drift. */
    readonly rate: number,
  ) {
    if (!(rate > 0)) throw new RangeError(`clock rate must be positive, got ${rate}`);
  }

  /** Local time at true time `trueUs`. */
  localAt(trueUs: number): number {
    return this.offsetUs + this.rate * trueUs;
  }

  /**
   * The first whole true microsecond at which this clock reads at least `localMs` milliseconds
   * (as a process reads it: `localAt(t) / 1000`), and not before `notBeforeUs`.
   */
  firstTrueTimeAt(localMs: number, notBeforeUs: number): number {
    let t = Math.max(notBeforeUs, Math.ceil((localMs * 1000 - this.offsetUs) / this.rate));
    while (t > notBeforeUs && this.localAt(t - 1) / 1000 >= localMs) t -= 1;
    while (this.localAt(t) / 1000 < localMs) t += 1;
    return t;
  }

  /** The true duration that `localUs` of this clock's time takes (rounded up to whole µs). */
  trueDuration(localUs: number): number {
    return Math.max(1, Math.ceil(localUs / this.rate));
  }
}
