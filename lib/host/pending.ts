/**
 * The host's bookkeeping of operations awaiting an outcome: proposals by log position, reads by
 * request id, and a FIFO of deadlines to time them out without one timer per operation.
 */

/** How a pending operation is settled. */
export interface Settle<T> {
  readonly resolve: (value: T) => void;
  readonly reject: (error: Error) => void;
}

/** A deadline queue: entries are pushed in deadline order (same timeout for all), popped when due. */
export class DeadlineQueue<K> {
  private keys: K[] = [];
  private deadlines: number[] = [];
  private head = 0;

  /** Adds `key` due at `deadline` (not before the last deadline pushed, for the same timeout). */
  push(key: K, deadline: number): void {
    this.keys.push(key);
    this.deadlines.push(deadline);
  }

  /** Removes and returns every key due at or before `now`, oldest first. */
  due(now: number): K[] {
    const out: K[] = [];
    while (this.head < this.keys.length && (this.deadlines[this.head] as number) <= now) {
      out.push(this.keys[this.head] as K);
      this.head += 1;
    }
    // Drop the consumed prefix once it dominates, so the arrays do not grow without bound.
    if (this.head > 1024 && this.head * 2 > this.keys.length) {
      this.keys = this.keys.slice(this.head);
      this.deadlines = this.deadlines.slice(this.head);
      this.head = 0;
    }
    return out;
  }

  /** Entries not yet popped (some may be settled already). */
  get size(): number {
    return this.keys.length - this.head;
  }

  /** Forgets everything. */
  clear(): void {
    this.keys = [];
    this.deadlines = [];
    this.head = 0;
  }
}

/** A proposal waiting for the entry at its position to be applied. */
export interface PendingProposal<R> extends Settle<R> {
  readonly term: number;
}

/** A read waiting for its read index, then for that index to be applied. */
export interface PendingRead extends Settle<void> {
  /** The read index, once the leader confirmed it; `null` before. */
  index: number | null;
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
