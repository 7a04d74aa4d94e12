/**
 * The placement table: resource key -> owner, epoch, state; worker -> address, capacity, zone,
 * status. A deterministic state machine: `apply(command, index)` depends only on the table and
 * its arguments, and every choice iterates in sorted order (never in `Map` insertion order, which
 * differs between a member that applied the log and one restored from a snapshot). An epoch is the
 * log index of the command that made the grant, so epochs are unique and strictly increase per key.
 *
 * Pure: no I/O, no clock. See DESIGN.md §3.
 */
import { assert } from "../assert.ts";
import { CodecError } from "../errors.ts";
import { decodePlain, encodePlain } from "../codec/codec.ts";
import { planMoves, type Candidate } from "./balancer.ts";
import { OwnerIndex } from "./owner-index.ts";
import type { Assignment, PlacementCommand, ResourceKey, WorkerId, WorkerInfo } from "./types.ts";

/** Workers a table holds; a `join` beyond it is refused. */
export const WORKERS_MAX = 100_000;
/** Keys a table holds; an `acquire` beyond it is refused. */
export const KEYS_MAX = 10_000_000;
/** The longest key, worker id, address or zone, in UTF-16 code units. */
export const NAME_LENGTH_MAX = 1024;
/** The largest capacity a worker may declare. */
export const CAPACITY_MAX = 1_000_000;
/** Keys moved at most by one `rebalance` command. */
export const REBALANCE_MOVES_MAX = 10_000;

/** Options of a table, the same on every member (they shape what `apply` does). */
export interface PlacementOptions {
  /** Keys moved to a worker when it joins (one rebalance round). @defaultValue 16 */
  readonly joinMovesMax: number;
}

/** Defaults for {@link PlacementOptions}. */
export const PLACEMENT_DEFAULTS: PlacementOptions = { joinMovesMax: 16 };

/** What applying one command did. */
export interface PlacementResult {
  /** Assignments created or changed (new grants, drains), in key order. */
  readonly changed: readonly Assignment[];
  /** Keys that left the table (released, or no worker left to take them), in key order. */
  readonly removed: readonly ResourceKey[];
  /** Workers removed (expired, or left once empty), in id order. */
  readonly workersRemoved: readonly WorkerId[];
  /** Why the command changed nothing, when it was refused; `null` when it applied. */
  readonly refused: string | null;
}

/** A worker's key as it sees it. */
export interface OwnedKey {
  readonly key: ResourceKey;
  readonly epoch: number;
  readonly state: "active" | "draining";
}

const SNAPSHOT_VERSION = 1;

/** A worker as the balancer sees it; `load` changes with every assignment. */
interface Slot {
  readonly id: WorkerId;
  capacity: number;
  zone: string;
  load: number;
}

/** The replicated placement table. */
export class PlacementTable {
  readonly options: PlacementOptions;
  private readonly workerInfo = new Map<WorkerId, WorkerInfo>();
  private readonly assignments = new Map<ResourceKey, Assignment>();
  /** Keys each worker owns (active or draining away from it). */
  private readonly owned = new Map<WorkerId, Set<ResourceKey>>();
  /** Keys draining towards each worker (it is their `next`). */
  private readonly incoming = new Map<WorkerId, Set<ResourceKey>>();
  /** Each worker as the balancer sees it, with its load (see `load`) kept up to date. */
  private readonly slots = new Map<WorkerId, Slot>();
  /** Worker ids in order; `null` when a join or removal changed them. */
  private sortedIds: WorkerId[] | null = null;
  /** The workers that may receive keys, in id order; `null` when a worker's status changed. */
  private eligibleSlots: Slot[] | null = null;
  /** The balancer's choice of owner among eligible workers, kept incrementally. */
  private readonly owners = new OwnerIndex();
  /** The index of the last command applied. */
  appliedIndex = 0;

  constructor(options: Partial<PlacementOptions> = {}) {
    this.options = { ...PLACEMENT_DEFAULTS, ...options };
    assert(
      Number.isSafeInteger(this.options.joinMovesMax) && this.options.joinMovesMax >= 0,
      "joinMovesMax is a non-negative integer",
    );
  }

  // ---------------------------------------------------------------------------------------------
  // Queries

  /** Every worker, in id order. */
  workers(): WorkerInfo[] {
    return this.workerIds().map((id) => this.workerInfo.get(id) as WorkerInfo);
  }

  private workerIds(): WorkerId[] {
    this.sortedIds ??= [...this.workerInfo.keys()].sort(compare);
    return this.sortedIds;
  }

  /** The worker `id`, if known. */
  worker(id: WorkerId): WorkerInfo | undefined {
    return this.workerInfo.get(id);
  }

  /** The assignment of `key`, if it has one. */
  assignment(key: ResourceKey): Assignment | undefined {
    return this.assignments.get(key);
  }

  /** Keys in the table. */
  get size(): number {
    return this.assignments.size;
  }

  /** The keys `worker` owns, in key order (what a renewal answer lists). */
  keysOf(worker: WorkerId): OwnedKey[] {
    return [...(this.owned.get(worker) ?? [])].sort(compare).map((key) => {
      const a = this.assignments.get(key) as Assignment;
      return { key, epoch: a.epoch, state: a.state };
    });
  }

  /** How many keys `worker` owns (draining ones included): `keysOf(worker).length` without sorting. */
  keyCount(worker: WorkerId): number {
    return this.owned.get(worker)?.size ?? 0;
  }

  /** Keys in the `draining` state, in key order. */
  drainingKeys(): ResourceKey[] {
    const keys: ResourceKey[] = [];
    for (const set of this.incoming.values()) for (const key of set) keys.push(key);
    return keys.sort(compare);
  }

  /**
   * Whether a `rebalance` command would move anything now: keys are not spread by capacity as far
   * as the balancer can take them.
   */
  unbalanced(): boolean {
    const movable = (worker: WorkerId) => this.keysOf(worker).filter((k) => k.state === "active").map((k) => k.key);
    return planMoves(this.candidates(), movable, 1).length > 0;
  }

  /** A worker's load: keys it owns and keeps (not draining away) plus keys draining to it. */
  load(worker: WorkerId): number {
    return this.slots.get(worker)?.load ?? 0;
  }

  // ---------------------------------------------------------------------------------------------
  // Applying commands

  /** Applies `command`, the entry at log `index` (greater than every index applied before). */
  apply(command: PlacementCommand, index: number): PlacementResult {
    assert(index > this.appliedIndex, () => `index ${index} follows ${this.appliedIndex}`);
    this.appliedIndex = index;
    const out = new ResultBuilder();
    const refused = this.applyCommand(command, index, out);
    return out.build(refused);
  }

  private applyCommand(command: PlacementCommand, index: number, out: ResultBuilder): string | null {
    switch (command.type) {
      case "join":
        return this.join(command, index, out);
      case "leave":
      case "drain": {
        const worker = this.workerInfo.get(command.worker);
        if (worker === undefined) return `unknown worker ${command.worker}`;
        this.setWorker({ ...worker, status: "draining", leaving: worker.leaving || command.type === "leave" });
        for (const { key, state } of this.keysOf(worker.id)) if (state === "active") this.drainKey(key, null, out);
        this.removeIfLeftEmpty(worker.id, out);
        return null;
      }
      case "undrain": {
        const worker = this.workerInfo.get(command.worker);
        if (worker === undefined) return `unknown worker ${command.worker}`;
        if (worker.leaving) return `${command.worker} is leaving`;
        this.setWorker({ ...worker, status: "active" });
        return null;
      }
      case "acquire": {
        if (this.assignments.has(command.key)) return null;
        if (!validName(command.key)) return "malformed key";
        if (this.assignments.size >= KEYS_MAX) return `the table holds KEYS_MAX (${KEYS_MAX}) keys`;
        const owner = this.chooseOwner();
        if (owner === null) return "no worker can take keys";
        this.grant(command.key, owner, index, out);
        return null;
      }
      case "release": {
        const a = this.assignments.get(command.key);
        if (a === undefined || a.owner !== command.worker || a.epoch !== command.epoch) return "stale release";
        if (a.state === "draining") this.handOver(a, index, out);
        else this.removeKey(a, out);
        this.removeIfLeftEmpty(command.worker, out);
        return null;
      }
      case "handoff": {
        const a = this.assignments.get(command.key);
        if (a === undefined || a.state !== "draining" || a.epoch !== command.epoch) return "stale handoff";
        this.handOver(a, index, out);
        this.removeIfLeftEmpty(a.owner, out);
        return null;
      }
      case "move": {
        const a = this.assignments.get(command.key);
        if (a === undefined || a.state !== "active") return "not an active key";
        if (command.to !== null && !this.eligible(command.to)) return `${command.to} cannot take keys`;
        if (command.to === a.owner) return null;
        return this.drainKey(command.key, command.to, out) ? null : "no worker can take the key";
      }
      case "rebalance": {
        const movesMax = Math.min(command.movesMax, REBALANCE_MOVES_MAX);
        if (!Number.isSafeInteger(movesMax) || movesMax < 0) return "malformed movesMax";
        this.rebalance(movesMax, out);
        return null;
      }
      case "expire":
        return this.expire(command.worker, index, out);
    }
  }

  private join(
    command: Extract<PlacementCommand, { type: "join" }>,
    index: number,
    out: ResultBuilder,
  ): string | null {
    const { worker, address, capacity, zone } = command;
    if (!validName(worker) || !validName(address) || !validName(zone)) return "malformed worker";
    if (!Number.isSafeInteger(capacity) || capacity < 1 || capacity > CAPACITY_MAX) return "malformed capacity";
    const known = this.workerInfo.get(worker);
    if (known === undefined && this.workerInfo.size >= WORKERS_MAX) return `the table holds WORKERS_MAX (${WORKERS_MAX}) workers`;
    // A known worker (restarted, say) keeps its status: rejoining does not undo a drain or a leave.
    this.setWorker({ id: worker, address, capacity, zone, status: known?.status ?? "active", leaving: known?.leaving ?? false });
    void index;
    this.rebalance(this.options.joinMovesMax, out);
    return null;
  }

  /** The workers that may receive keys, with their loads. */
  private candidates(): readonly Candidate[] {
    this.eligibleSlots ??= this.workerIds()
      .filter((id) => this.eligible(id))
      .map((id) => this.slots.get(id) as Slot);
    return this.eligibleSlots;
  }

  /** Sets worker `info` (new or changed), keeping the balancer's view in step. */
  private setWorker(info: WorkerInfo): void {
    const known = this.workerInfo.has(info.id);
    this.workerInfo.set(info.id, info);
    if (!known) {
      this.owned.set(info.id, new Set());
      this.incoming.set(info.id, new Set());
      this.slots.set(info.id, { id: info.id, capacity: info.capacity, zone: info.zone, load: 0 });
      this.sortedIds = null;
    } else {
      const slot = this.slots.get(info.id) as Slot;
      this.owners.remove(info.id);
      slot.capacity = info.capacity;
      slot.zone = info.zone;
    }
    if (this.eligible(info.id)) {
      if (!this.owners.has(info.id)) this.owners.add(this.slots.get(info.id) as Slot);
    } else {
      this.owners.remove(info.id);
    }
    this.eligibleSlots = null;
  }

  /** The balancer's owner for one more key (see `chooseOwner`), leaving out `exclude`. */
  private chooseOwner(exclude?: WorkerId): WorkerId | null {
    return this.owners.choose(exclude);
  }

  /** Puts `a` in place of `key`'s assignment, keeping the per-worker indexes and loads. */
  private setAssignment(a: Assignment): void {
    const previous = this.assignments.get(a.key);
    if (previous !== undefined) this.unlink(previous);
    this.assignments.set(a.key, a);
    this.link(a);
  }

  private link(a: Assignment): void {
    (this.owned.get(a.owner) as Set<ResourceKey>).add(a.key);
    if (a.state === "active") this.adjustLoad(a.owner, 1);
    if (a.next !== null) {
      (this.incoming.get(a.next) as Set<ResourceKey>).add(a.key);
      this.adjustLoad(a.next, 1);
    }
  }

  /** Removes `a` from the per-worker indexes and loads. */
  private unlink(a: Assignment): void {
    this.owned.get(a.owner)?.delete(a.key);
    if (a.state === "active") this.adjustLoad(a.owner, -1);
    if (a.next !== null) {
      this.incoming.get(a.next)?.delete(a.key);
      this.adjustLoad(a.next, -1);
    }
  }

  private adjustLoad(worker: WorkerId, delta: number): void {
    const slot = this.slots.get(worker) as Slot;
    slot.load += delta;
    assert(slot.load >= 0, () => `load of ${worker} stays non-negative`);
    this.owners.updated(worker);
  }

  private eligible(worker: WorkerId): boolean {
    const w = this.workerInfo.get(worker);
    return w !== undefined && w.status === "active" && !w.leaving;
  }

  /** Grants `key` to `owner` at `epoch` (active). */
  private grant(key: ResourceKey, owner: WorkerId, epoch: number, out: ResultBuilder): void {
    const a: Assignment = { key, owner, epoch, state: "active", next: null };
    this.setAssignment(a);
    out.changed(a);
  }

  /** Starts moving an active key to `to` (or the balancer's choice); false when nobody can take it. */
  private drainKey(key: ResourceKey, to: WorkerId | null, out: ResultBuilder): boolean {
    const a = this.assignments.get(key) as Assignment;
    const next = to ?? this.chooseOwner(a.owner);
    if (next === null) return false;
    const draining: Assignment = { ...a, state: "draining", next };
    this.setAssignment(draining);
    out.changed(draining);
    return true;
  }

  /** A draining key goes to its next owner, or, if that one can no longer take it, another. */
  private handOver(a: Assignment, index: number, out: ResultBuilder): void {
    const next = a.next !== null && this.eligible(a.next) ? a.next : this.chooseOwner(a.owner);
    if (next === null) this.removeKey(a, out);
    else this.grant(a.key, next, index, out);
    // A leaving worker that was only this key's next owner may now hold nothing.
    if (a.next !== null && a.next !== next) this.removeIfLeftEmpty(a.next, out);
  }

  private removeKey(a: Assignment, out: ResultBuilder): void {
    this.unlink(a);
    this.assignments.delete(a.key);
    out.removed(a.key);
  }

  private rebalance(movesMax: number, out: ResultBuilder): void {
    const movable = (worker: WorkerId) => this.keysOf(worker).filter((k) => k.state === "active").map((k) => k.key);
    for (const move of planMoves(this.candidates(), movable, movesMax)) this.drainKey(move.key, move.to, out);
  }

  /** The leader declared `worker` dead: each of its keys goes to a new owner now, one by one. */
  private expire(worker: WorkerId, index: number, out: ResultBuilder): string | null {
    if (!this.workerInfo.has(worker)) return `unknown worker ${worker}`;
    // Out of the candidates first, so that none of its keys comes back to it.
    this.setWorker({ ...(this.workerInfo.get(worker) as WorkerInfo), status: "draining", leaving: true });
    for (const { key } of this.keysOf(worker)) {
      const a = this.assignments.get(key) as Assignment;
      this.handOver(a, index, out);
    }
    // Keys that were on their way to it find another next owner (or stay where they are).
    for (const key of [...(this.incoming.get(worker) ?? [])].sort(compare)) {
      const a = this.assignments.get(key) as Assignment;
      this.setAssignment({ ...a, state: "active", next: null }); // off the dead worker first
      const next = this.chooseOwner(a.owner);
      const moved: Assignment = next === null ? { ...a, state: "active", next: null } : { ...a, next };
      this.setAssignment(moved);
      out.changed(moved);
    }
    this.removeWorker(worker, out);
    return null;
  }

  private removeIfLeftEmpty(worker: WorkerId, out: ResultBuilder): void {
    const w = this.workerInfo.get(worker);
    if (w === undefined || !w.leaving) return;
    if ((this.owned.get(worker)?.size ?? 0) > 0 || (this.incoming.get(worker)?.size ?? 0) > 0) return;
    this.removeWorker(worker, out);
  }

  private removeWorker(worker: WorkerId, out: ResultBuilder): void {
    assert((this.owned.get(worker)?.size ?? 0) === 0, `removed worker ${worker} owns nothing`);
    assert(this.load(worker) === 0, `removed worker ${worker} has no load`);
    this.workerInfo.delete(worker);
    this.owned.delete(worker);
    this.incoming.delete(worker);
    this.owners.remove(worker);
    this.slots.delete(worker);
    this.sortedIds = null;
    this.eligibleSlots = null;
    out.workerRemoved(worker);
  }

  // ---------------------------------------------------------------------------------------------
  // Snapshots

  /** The whole table as bytes (workers and assignments), for a Raft snapshot. */
  snapshot(): Uint8Array {
    const workers = this.workers().map((w) => [w.id, w.address, w.capacity, w.zone, w.status === "active" ? 0 : 1, w.leaving]);
    const assignments: unknown[] = [];
    for (const a of this.assignments.values()) {
      assignments.push(a.key, a.owner, a.epoch, a.state === "active" ? 0 : 1, a.next);
    }
    return encodePlain([SNAPSHOT_VERSION, this.appliedIndex, this.options.joinMovesMax, workers, assignments]);
  }

  /**
   * A table holding the state of `bytes` (from {@link PlacementTable.snapshot}).
   * @throws CodecError when the bytes are not a valid table.
   */
  static restore(bytes: Uint8Array, bytesMax = 1024 * 1024 * 1024): PlacementTable {
    const wire = decodePlain(bytes, "placement", { bytesMax });
    if (!Array.isArray(wire) || wire.length !== 5 || wire[0] !== SNAPSHOT_VERSION) {
      throw new CodecError("placement", "is not a placement snapshot of version 1");
    }
    const [, appliedIndex, joinMovesMax, workers, assignments] = wire as [number, unknown, unknown, unknown, unknown];
    if (!isCount(appliedIndex) || !isCount(joinMovesMax) || !Array.isArray(workers) || !Array.isArray(assignments)) {
      throw new CodecError("placement", "has a malformed header");
    }
    const table = new PlacementTable({ joinMovesMax });
    table.appliedIndex = appliedIndex;
    for (const [i, w] of workers.entries()) {
      if (!Array.isArray(w) || w.length !== 6) throw new CodecError(`placement.workers[${i}]`, "is not a worker");
      const [id, address, capacity, zone, status, leaving] = w as unknown[];
      if (!validName(id) || !validName(address) || !validName(zone) || !isCount(capacity) || capacity < 1 ||
        capacity > CAPACITY_MAX || (status !== 0 && status !== 1) || typeof leaving !== "boolean") {
        throw new CodecError(`placement.workers[${i}]`, "is malformed");
      }
      if (table.workerInfo.has(id)) throw new CodecError(`placement.workers[${i}]`, `repeats worker ${id}`);
      table.setWorker({ id, address, capacity, zone, status: status === 0 ? "active" : "draining", leaving });
    }
    if (assignments.length % 5 !== 0) throw new CodecError("placement.assignments", "is not a list of 5-tuples");
    for (let i = 0; i < assignments.length; i += 5) {
      const [key, owner, epoch, state, next] = assignments.slice(i, i + 5) as unknown[];
      const path = `placement.assignments[${i / 5}]`;
      if (!validName(key) || !validName(owner) || !isCount(epoch) || epoch > appliedIndex || (state !== 0 && state !== 1)) {
        throw new CodecError(path, "is malformed");
      }
      if (!table.workerInfo.has(owner)) throw new CodecError(path, `names unknown owner ${owner}`);
      const draining = state === 1;
      if (draining ? !(validName(next) && table.workerInfo.has(next) && next !== owner) : next !== null) {
        throw new CodecError(path, "has a malformed next owner");
      }
      if (table.assignments.has(key)) throw new CodecError(path, `repeats key ${key}`);
      const a: Assignment = { key, owner, epoch, state: draining ? "draining" : "active", next: draining ? (next as WorkerId) : null };
      table.setAssignment(a);
    }
    return table;
  }
}

/** Collects a command's effects, reported in sorted order. */
class ResultBuilder {
  private readonly changedByKey = new Map<ResourceKey, Assignment>();
  private readonly removedKeys = new Set<ResourceKey>();
  private readonly workers: WorkerId[] = [];

  changed(a: Assignment): void {
    this.removedKeys.delete(a.key);
    this.changedByKey.set(a.key, a);
  }

  removed(key: ResourceKey): void {
    this.changedByKey.delete(key);
    this.removedKeys.add(key);
  }

  workerRemoved(worker: WorkerId): void {
    this.workers.push(worker);
  }

  build(refused: string | null): PlacementResult {
    return {
      changed: [...this.changedByKey.values()].sort((a, b) => compare(a.key, b.key)),
      removed: [...this.removedKeys].sort(compare),
      workersRemoved: [...this.workers].sort(compare),
      refused,
    };
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function validName(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= NAME_LENGTH_MAX;
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}
