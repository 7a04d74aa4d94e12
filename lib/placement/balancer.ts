/**
 * Where keys go: deterministic choices from the table alone, so that every member applying the
 * same command makes the same choice. New keys go to the least loaded worker relative to its
 * capacity, in the least loaded zone relative to the zone's capacity (so one zone's failure takes
 * few keys); a dead worker's keys are placed one by one, each choice seeing the previous ones, so
 * they spread over the survivors; rebalancing moves a bounded number of keys from the most to the
 * least loaded workers.
 *
 * Pure: no I/O, no clock, no randomness. Ties break by zone name, then worker id.
 */
import type { ResourceKey, WorkerId } from "./types.ts";

/** A worker that may receive keys, with its current load (keys it holds or is about to). */
export interface Candidate {
  readonly id: WorkerId;
  readonly capacity: number;
  readonly zone: string;
  readonly load: number;
}

/** A planned move of `key` from `from` to `to`. */
export interface Move {
  readonly key: ResourceKey;
  readonly from: WorkerId;
  readonly to: WorkerId;
}

/**
 * The owner for one more key: in the zone whose (load + 1) / capacity is lowest, the worker whose
 * (load + 1) / capacity is lowest. `null` when there is no candidate. `exclude` is left out (the
 * key's current owner, when moving a key away).
 */
export function chooseOwner(candidates: readonly Candidate[], exclude?: WorkerId): WorkerId | null {
  const zones = new Map<string, { load: number; capacity: number }>();
  for (const c of candidates) {
    if (c.id === exclude) continue;
    const zone = zones.get(c.zone) ?? { load: 0, capacity: 0 };
    zone.load += c.load;
    zone.capacity += c.capacity;
    zones.set(c.zone, zone);
  }
  let bestZone: string | null = null;
  let bestZoneScore = Infinity;
  for (const [name, zone] of zones) {
    const score = (zone.load + 1) / zone.capacity;
    if (score < bestZoneScore || (score === bestZoneScore && bestZone !== null && name < bestZone)) {
      bestZone = name;
      bestZoneScore = score;
    }
  }
  let best: Candidate | null = null;
  for (const c of candidates) {
    if (c.zone !== bestZone || c.id === exclude) continue;
    if (best === null || better(c, best)) best = c;
  }
  return best?.id ?? null;
}

/** Whether `a` should receive the next key before `b`. */
function better(a: Candidate, b: Candidate): boolean {
  const scoreA = (a.load + 1) / a.capacity;
  const scoreB = (b.load + 1) / b.capacity;
  if (scoreA !== scoreB) return scoreA < scoreB;
  return a.id < b.id;
}

/**
 * Up to `movesMax` moves that even out load relative to capacity: each takes the first movable key
 * (in key order) of the most loaded worker that still has one to the least loaded worker, while
 * that narrows the gap between them. `movable(worker)` lists a worker's keys that may move, sorted;
 * it is asked at most once per worker.
 */
export function planMoves(
  candidates: readonly Candidate[],
  movable: (worker: WorkerId) => readonly ResourceKey[],
  movesMax: number,
): Move[] {
  const loads = new Map(candidates.map((c) => [c.id, c.load]));
  const lists = new Map<WorkerId, readonly ResourceKey[]>();
  const taken = new Map<WorkerId, number>();
  /** Sources with no movable key left: the next most loaded worker gives instead. */
  const exhausted = new Set<WorkerId>();
  const moves: Move[] = [];
  const sorted = [...candidates].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  while (moves.length < movesMax) {
    let most: Candidate | null = null;
    let least: Candidate | null = null;
    for (const c of sorted) {
      const ratio = (loads.get(c.id) as number) / c.capacity;
      if (!exhausted.has(c.id) && (most === null || ratio > (loads.get(most.id) as number) / most.capacity)) most = c;
      const after = ((loads.get(c.id) as number) + 1) / c.capacity;
      if (least === null || after < ((loads.get(least.id) as number) + 1) / least.capacity) least = c;
    }
    if (most === null || least === null || most.id === least.id) break;
    const mostLoad = loads.get(most.id) as number;
    const leastLoad = loads.get(least.id) as number;
    // Moving one key must leave the source no less loaded than the target is after it.
    if ((mostLoad - 1) / most.capacity < (leastLoad + 1) / least.capacity) break;
    let list = lists.get(most.id);
    if (list === undefined) {
      list = movable(most.id);
      lists.set(most.id, list);
    }
    const used = taken.get(most.id) ?? 0;
    const key = list[used];
    if (key === undefined) {
      exhausted.add(most.id);
      continue;
    }
    taken.set(most.id, used + 1);
    loads.set(most.id, mostLoad - 1);
    loads.set(least.id, leastLoad + 1);
    moves.push({ key, from: most.id, to: least.id });
  }
  return moves;
}
