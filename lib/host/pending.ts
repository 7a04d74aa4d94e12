/**
 * The host's bookkeeping of operations awaiting an outcome: proposals by log position, reads by
 * request id, and one queue of deadlines, ordered by deadline, to time them all out without a timer
 * per operation.
 */

/** How a pending operation is settled. */
export interface Settle<T> {
  readonly resolve: (value: T) => void;
  readonly reject: (error: Error) => void;
}

/**
 * A deadline queue: a binary min-heap ordered by (deadline, arrival). Operations with different
 * timeouts arrive in any deadline order; each comes out when its own deadline is due.
 */
export class DeadlineQueue<K> {
  private readonly keys: K[] = [];
  private readonly deadlines: number[] = [];
  private readonly arrivals: number[] = [];
  private arrived = 0;

  /** Adds `key`, due at `deadline`. */
  push(key: K, deadline: number): void {
    this.keys.push(key);
    this.deadlines.push(deadline);
    this.arrivals.push(this.arrived++);
    this.up(this.keys.length - 1);
  }

  /** The earliest deadline, or `Infinity` when empty. */
  next(): number {
    return this.deadlines[0] ?? Number.POSITIVE_INFINITY;
  }

  /** Removes and returns every key due at or before `now`, earliest first. */
  due(now: number): K[] {
    const out: K[] = [];
    while (this.keys.length > 0 && (this.deadlines[0] as number) <= now) out.push(this.pop());
    return out;
  }

  /** Entries not yet popped (some may be settled already). */
  get size(): number {
    return this.keys.length;
  }

  /** Forgets everything. */
  clear(): void {
    this.keys.length = 0;
    this.deadlines.length = 0;
    this.arrivals.length = 0;
  }

  private pop(): K {
    const top = this.keys[0] as K;
    const last = this.keys.length - 1;
    this.swap(0, last);
    this.keys.pop();
    this.deadlines.pop();
    this.arrivals.pop();
    this.down(0);
    return top;
  }

  private less(a: number, b: number): boolean {
    const da = this.deadlines[a] as number;
    const db = this.deadlines[b] as number;
    return da < db || (da === db && (this.arrivals[a] as number) < (this.arrivals[b] as number));
  }

  private swap(a: number, b: number): void {
    [this.keys[a], this.keys[b]] = [this.keys[b] as K, this.keys[a] as K];
    [this.deadlines[a], this.deadlines[b]] = [this.deadlines[b] as number, this.deadlines[a] as number];
    [this.arrivals[a], this.arrivals[b]] = [this.arrivals[b] as number, this.arrivals[a] as number];
  }

  private up(index: number): void {
    let i = index;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(index: number): void {
    const n = this.keys.length;
    let i = index;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < n && this.less(left, smallest)) smallest = left;
      if (right < n && this.less(right, smallest)) smallest = right;
      if (smallest === i) return;
      this.swap(i, smallest);
      i = smallest;
    }
  }
}

/** A proposal waiting for the entry at its position to be applied. */
export interface PendingProposal<R> extends Settle<R> {
  readonly term: number;
  /** The caller's timeout, for the error that reports it. */
  readonly timeoutMs: number;
}

/** A read waiting for its read index, then for that index to be applied. */
export interface PendingRead extends Settle<void> {
  /** The read index, once the leader confirmed it; `null` before. */
  index: number | null;
  /** The caller's timeout, for the error that reports it. */
  readonly timeoutMs: number;
}

/**
 * Reads whose index is known, ordered by index, so that each apply serves a prefix.
 */
export class ReadsByIndex {
  private readonly items: { index: number; id: string }[] = [];

  /** Adds read `id` to be served once `index` is applied. */
  add(index: number, id: string): void {
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.items[mid] as { index: number }).index <= index) lo = mid + 1;
      else hi = mid;
    }
    this.items.splice(lo, 0, { index, id });
  }

  /** Removes and returns the ids of reads whose index is at most `applied`. */
  servable(applied: number): string[] {
    let n = 0;
    while (n < this.items.length && (this.items[n] as { index: number }).index <= applied) n += 1;
    return this.items.splice(0, n).map((item) => item.id);
  }

  get size(): number {
    return this.items.length;
  }
}
