/**
 * The simulator's event queue: a binary min-heap ordered by (time, sequence). The sequence number
 * breaks ties in insertion order, so that two events at the same instant always run in the same
 * order, on every machine.
 */

interface Slot<T> {
  readonly time: number;
  readonly sequence: number;
  readonly event: T;
}

/** A priority queue of events by (time, insertion order). */
export class EventQueue<T> {
  private readonly heap: Slot<T>[] = [];
  private sequence = 0;

  /** Events waiting. */
  get size(): number {
    return this.heap.length;
  }

  /** Schedules `event` at `time`. */
  push(time: number, event: T): void {
    this.heap.push({ time, sequence: this.sequence++, event });
    this.siftUp(this.heap.length - 1);
  }

  /** The time of the next event, or `Infinity` if none. */
  peekTime(): number {
    return this.heap[0]?.time ?? Infinity;
  }

  /** Removes and returns the next event with its time, or `undefined` if none. */
  pop(): { time: number; event: T } | undefined {
    const top = this.heap[0];
    if (top === undefined) return undefined;
    const last = this.heap.pop() as Slot<T>;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      this.siftDown(0);
    }
    return { time: top.time, event: top.event };
  }

  private less(a: Slot<T>, b: Slot<T>): boolean {
    return a.time < b.time || (a.time === b.time && a.sequence < b.sequence);
  }

  private siftUp(index: number): void {
    const heap = this.heap;
    let i = index;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(heap[i] as Slot<T>, heap[parent] as Slot<T>)) break;
      [heap[i], heap[parent]] = [heap[parent] as Slot<T>, heap[i] as Slot<T>];
      i = parent;
    }
  }

  private siftDown(index: number): void {
    const heap = this.heap;
    const n = heap.length;
    let i = index;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < n && this.less(heap[left] as Slot<T>, heap[smallest] as Slot<T>)) smallest = left;
      if (right < n && this.less(heap[right] as Slot<T>, heap[smallest] as Slot<T>)) smallest = right;
      if (smallest === i) return;
      [heap[i], heap[smallest]] = [heap[smallest] as Slot<T>, heap[i] as Slot<T>];
      i = smallest;
    }
  }
}
