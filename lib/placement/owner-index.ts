/**
 * The balancer's choice of owner (`chooseOwner` in balancer.ts), kept incrementally so that a table
 * of a million keys over a thousand workers does not scan every worker for every key: per zone, the
 * zone's load and capacity and an indexed min-heap of its workers by ((load + 1) / capacity, id).
 * Choosing costs O(zones + log workers); a load change costs O(log workers). It must choose exactly
 * what `chooseOwner` chooses (owner-index.test.ts checks it against it).
 *
 * Pure: no I/O.
 */
import { assert } from "../assert.ts";
import type { WorkerId } from "./types.ts";

/** A worker in the index. `load` is read when the index is told it changed. */
export interface IndexedWorker {
  readonly id: WorkerId;
  readonly capacity: number;
  readonly zone: string;
  readonly load: number;
}

interface Zone {
  readonly name: string;
  load: number;
  capacity: number;
  readonly heap: IndexedWorker[];
}

function before(a: IndexedWorker, b: IndexedWorker): boolean {
  const scoreA = (a.load + 1) / a.capacity;
  const scoreB = (b.load + 1) / b.capacity;
  if (scoreA !== scoreB) return scoreA < scoreB;
  return a.id < b.id;
}

/** The workers that may receive keys, indexed for `choose`. */
export class OwnerIndex {
  private readonly zones = new Map<string, Zone>();
  /** Zone names in order; `null` after a zone was added or removed. */
  private zoneNames: string[] | null = null;
  /** Where each worker sits: its zone's heap position, and the load the zone sums counted. */
  private readonly where = new Map<WorkerId, { zone: Zone; position: number; load: number }>();

  /** Whether `id` is in the index. */
  has(id: WorkerId): boolean {
    return this.where.has(id);
  }

  /** Adds a worker. */
  add(worker: IndexedWorker): void {
    assert(!this.where.has(worker.id), `${worker.id} is not indexed yet`);
    let zone = this.zones.get(worker.zone);
    if (zone === undefined) {
      zone = { name: worker.zone, load: 0, capacity: 0, heap: [] };
      this.zones.set(worker.zone, zone);
      this.zoneNames = null;
    }
    zone.load += worker.load;
    zone.capacity += worker.capacity;
    zone.heap.push(worker);
    this.where.set(worker.id, { zone, position: zone.heap.length - 1, load: worker.load });
    this.siftUp(zone, zone.heap.length - 1);
  }

  /** Removes a worker (it may no longer receive keys). */
  remove(id: WorkerId): void {
    const at = this.where.get(id);
    if (at === undefined) return;
    const { zone } = at;
    zone.load -= at.load;
    zone.capacity -= (zone.heap[at.position] as IndexedWorker).capacity;
    this.where.delete(id);
    const last = zone.heap.pop() as IndexedWorker;
    if (at.position < zone.heap.length) {
      zone.heap[at.position] = last;
      (this.where.get(last.id) as { position: number }).position = at.position;
      this.siftDown(zone, at.position);
      this.siftUp(zone, at.position);
    }
    if (zone.heap.length === 0) {
      this.zones.delete(zone.name);
      this.zoneNames = null;
    }
  }

  /** Tells the index that `id`'s load changed. */
  updated(id: WorkerId): void {
    const at = this.where.get(id);
    if (at === undefined) return;
    const worker = at.zone.heap[at.position] as IndexedWorker;
    at.zone.load += worker.load - at.load;
    at.load = worker.load;
    this.siftUp(at.zone, at.position);
    this.siftDown(at.zone, at.position);
  }

  /** What `chooseOwner(all indexed workers, exclude)` returns. */
  choose(exclude?: WorkerId): WorkerId | null {
    const excluded = exclude === undefined ? undefined : this.where.get(exclude);
    let bestZone: Zone | null = null;
    let bestScore = Infinity;
    this.zoneNames ??= [...this.zones.keys()].sort();
    for (const name of this.zoneNames) {
      const zone = this.zones.get(name) as Zone;
      let load = zone.load;
      let capacity = zone.capacity;
      if (excluded !== undefined && excluded.zone === zone) {
        if (zone.heap.length === 1) continue;
        load -= excluded.load;
        capacity -= (zone.heap[excluded.position] as IndexedWorker).capacity;
      }
      const score = (load + 1) / capacity;
      if (score < bestScore) {
        bestZone = zone;
        bestScore = score;
      }
    }
    if (bestZone === null) return null;
    const heap = bestZone.heap;
    const top = heap[0] as IndexedWorker;
    if (top.id !== exclude) return top.id;
    // The excluded worker is on top: the next best is one of its children.
    const left = heap[1];
    const right = heap[2];
    if (left === undefined) return right?.id ?? null;
    if (right === undefined) return left.id;
    return before(left, right) ? left.id : right.id;
  }

  private siftUp(zone: Zone, position: number): void {
    const heap = zone.heap;
    let at = position;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!before(heap[at] as IndexedWorker, heap[parent] as IndexedWorker)) break;
      this.swap(zone, at, parent);
      at = parent;
    }
  }

  private siftDown(zone: Zone, position: number): void {
    const heap = zone.heap;
    let at = position;
    for (;;) {
      const left = 2 * at + 1;
      const right = left + 1;
      let smallest = at;
      if (left < heap.length && before(heap[left] as IndexedWorker, heap[smallest] as IndexedWorker)) smallest = left;
      if (right < heap.length && before(heap[right] as IndexedWorker, heap[smallest] as IndexedWorker)) smallest = right;
      if (smallest === at) return;
      this.swap(zone, at, smallest);
      at = smallest;
    }
  }

  private swap(zone: Zone, i: number, j: number): void {
    const heap = zone.heap;
    const a = heap[i] as IndexedWorker;
    const b = heap[j] as IndexedWorker;
    heap[i] = b;
    heap[j] = a;
    (this.where.get(a.id) as { position: number }).position = j;
    (this.where.get(b.id) as { position: number }).position = i;
  }
}
