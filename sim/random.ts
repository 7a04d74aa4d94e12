/**
 * Seeded randomness for the simulator. One seed decides everything; independent streams are
 * derived from it by label (`fork("network")`), so that adding draws to one part of the simulator
 * does not shift the draws of another.
 */
import seedrandom from "seedrandom";

/** A seeded pseudo-random stream. */
export class Random {
  private readonly prng: () => number;

  /** A stream determined entirely by `seed` (any string or number). */
  constructor(readonly seed: string) {
    this.prng = seedrandom.alea(seed);
  }

  /** An independent stream derived from this one's seed and `label`. */
  fork(label: string): Random {
    return new Random(`${this.seed}/${label}`);
  }

  /** A number in `[0, 1)`. */
  next(): number {
    return this.prng();
  }

  /** An integer in `[min, max]`. */
  int(min: number, max: number): number {
    return min + Math.floor(this.prng() * (max - min + 1));
  }

  /** A number in `[min, max)`. */
  between(min: number, max: number): number {
    return min + this.prng() * (max - min);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return p > 0 && this.prng() < p;
  }

  /** One element of `items` (which must not be empty). */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("pick from an empty list");
    return items[Math.floor(this.prng() * items.length)] as T;
  }

  /** A shuffled copy of `items` (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i -= 1) {
      const j = Math.floor(this.prng() * (i + 1));
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  }

  /** An exponentially distributed number with the given mean (for inter-arrival times). */
  exponential(mean: number): number {
    return -Math.log(1 - this.prng()) * mean;
  }
}
