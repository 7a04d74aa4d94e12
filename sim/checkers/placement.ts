/**
 * Checkers for the exactly-one placement protocol (DESIGN.md §3, §7), fed by the simulator as a run
 * goes, and the fenced resource the simulated workers write to. Like the Raft safety checkers they
 * are small observers over plain data: they see what workers believe and do, what the placement
 * table granted and what a resource accepted, never the internals of a member or a worker, so a
 * unit test can hand each a violating history and see it fire.
 *
 * Every time is simulated TRUE time in µs, not any node's clock. Each checker keeps state only for
 * live things (open intervals, keys awaiting failover) or up to a named maximum.
 */
import { assert } from "../../lib/assert.ts";
import type { ResourceKey, WorkerId } from "../../lib/placement/types.ts";
import type { Report, Violation } from "./raft-safety.ts";

function ms(us: number): string {
  return `${(us / 1000).toFixed(3)} ms`;
}

function assertTime(t: number, what: string): void {
  assert(typeof t === "number" && !Number.isNaN(t), `${what} is a number`);
}

// -------------------------------------------------------------------------------------------------
// 1. At most one owner per key at any real instant

/**
 * Overlaps that {@link SingleOwnership} holds while it waits to see whether they last beyond the
 * instant they began. Beyond it, further ones are counted in
 * {@link SingleOwnership.suspectsDropped} instead of checked.
 */
export const OWNERSHIP_SUSPECTS_MAX = 10_000;

/** One worker's span of believing it may serve one key: `[since, end)` in true time. */
interface ServeInterval {
  readonly worker: WorkerId;
  readonly since: number;
  /** The epoch it started with. */
  readonly epochFirst: number;
  /** The latest epoch it announced (a re-grant to the same worker continues the interval). */
  epoch: number;
}

/** Two intervals of one key that were both open at `t`, waiting for time to move past `t`. */
interface Suspect {
  readonly key: ResourceKey;
  readonly held: ServeInterval;
  readonly started: ServeInterval;
}

/**
 * At most one worker believes it owns a key at any real instant. The simulator reports when a
 * worker starts believing it may serve a key ({@link onServeStart}: it accepted a renewal answer
 * listing the key, or `onAcquire` fired) and when it stops ({@link onServeEnd}: its lease ran out on
 * its clock, the key was dropped or began draining; {@link onWorkerCrash}: everything at once).
 *
 * Intervals are half-open, `[start, end)`: a worker that stops at the very instant another starts
 * does not overlap it. Since events at one instant arrive in an arbitrary order, an overlap that
 * begins at `t` is only confirmed once time moves past `t` with both intervals still open (or one of
 * them ends later than `t`); the next event, or {@link settle}, confirms it. Events must come in
 * non-decreasing time order. Memory: one record per open interval, plus the overlaps of the current
 * instant (at most {@link OWNERSHIP_SUSPECTS_MAX}).
 */
export class SingleOwnership {
  static readonly checker = "single-ownership";
  /** key -> worker -> its open interval. */
  private readonly open = new Map<ResourceKey, Map<WorkerId, ServeInterval>>();
  /** worker -> keys it has an open interval for (so a crash ends them all). */
  private readonly byWorker = new Map<WorkerId, Set<ResourceKey>>();
  // invariant: every suspect began at `now`.
  private suspects: Suspect[] = [];
  private now = -Infinity;
  private overlapsCount = 0;
  private droppedCount = 0;

  constructor(private readonly report: Report) {}

  /**
   * `worker` starts believing, at true time `t`, that it may serve `key` with grant `epoch`. If it
   * already does, this continues its interval (a re-grant to the same worker with a new epoch is
   * not a new owner).
   */
  onServeStart(t: number, worker: WorkerId, key: ResourceKey, epoch: number): void {
    this.advance(t);
    let holders = this.open.get(key);
    const mine = holders?.get(worker);
    if (mine !== undefined) {
      mine.epoch = epoch;
      return;
    }
    const started: ServeInterval = { worker, since: t, epochFirst: epoch, epoch };
    for (const held of holders?.values() ?? []) this.suspect({ key, held, started });
    if (holders === undefined) {
      holders = new Map();
      this.open.set(key, holders);
    }
    holders.set(worker, started);
    let keys = this.byWorker.get(worker);
    if (keys === undefined) {
      keys = new Set();
      this.byWorker.set(worker, keys);
    }
    keys.add(key);
  }

  /** `worker` stops believing, at `t`, that it may serve `key`. Ignored if it did not. */
  onServeEnd(t: number, worker: WorkerId, key: ResourceKey): void {
    this.advance(t);
    this.close(worker, key);
  }

  /** `worker` crashed at `t`: every interval it had open ends. */
  onWorkerCrash(t: number, worker: WorkerId): void {
    this.advance(t);
    for (const key of [...(this.byWorker.get(worker) ?? [])]) this.close(worker, key);
  }

  /**
   * Time reached `t` (≥ every earlier event): overlaps that began before `t` and are still open are
   * reported. Call it at the end of a run so that an overlap at the last instant is not missed.
   */
  settle(t: number): void {
    this.advance(t);
  }

  /** Overlaps reported so far. */
  get overlaps(): number {
    return this.overlapsCount;
  }

  /** Overlaps not checked because {@link OWNERSHIP_SUSPECTS_MAX} were pending at one instant. */
  get suspectsDropped(): number {
    return this.droppedCount;
  }

  /** Intervals open now, across all keys. */
  get openIntervals(): number {
    let count = 0;
    for (const holders of this.open.values()) count += holders.size;
    return count;
  }

  private suspect(s: Suspect): void {
    if (this.suspects.length >= OWNERSHIP_SUSPECTS_MAX) this.droppedCount += 1;
    else this.suspects.push(s);
  }

  private advance(t: number): void {
    assertTime(t, "event time");
    assert(t >= this.now, `events come in time order (${t} after ${this.now})`);
    if (t === this.now) return;
    // Time moved past the instant the suspects began: those still open overlapped.
    for (const s of this.suspects) if (this.isOpen(s.key, s.held) && this.isOpen(s.key, s.started)) this.fire(s);
    this.suspects = [];
    this.now = t;
  }

  private close(worker: WorkerId, key: ResourceKey): void {
    const holders = this.open.get(key);
    const interval = holders?.get(worker);
    if (holders === undefined || interval === undefined) return;
    // Every suspect began at `now`, and `advance` ran before this: ending now means the two
    // intervals never shared a positive span, so the suspicion is dropped.
    this.suspects = this.suspects.filter((s) => s.key !== key || (s.held !== interval && s.started !== interval));
    holders.delete(worker);
    if (holders.size === 0) this.open.delete(key);
    const keys = this.byWorker.get(worker) as Set<ResourceKey>;
    keys.delete(key);
    if (keys.size === 0) this.byWorker.delete(worker);
  }

  private isOpen(key: ResourceKey, interval: ServeInterval): boolean {
    return this.open.get(key)?.get(interval.worker) === interval;
  }

  private fire({ key, held, started }: Suspect): void {
    this.overlapsCount += 1;
    this.report({
      checker: SingleOwnership.checker,
      message:
        `two owners of ${key}: ${held.worker} (epoch ${held.epochFirst}` +
        `${held.epoch !== held.epochFirst ? `..${held.epoch}` : ""}, since ${ms(held.since)}) and ` +
        `${started.worker} (epoch ${started.epoch}, since ${ms(started.since)}), both serving at ${ms(started.since)}`,
      t: started.since,
    });
  }
}

// -------------------------------------------------------------------------------------------------
// 2. Fencing epochs, and the fenced resource

/**
 * Keys whose latest grant and highest accepted write epoch {@link FencingEpochs} remembers. Beyond
 * it, the key granted or written least recently is forgotten: its next grant or write is then
 * checked as if it were the first.
 */
export const FENCING_KEYS_MAX = 1_000_000;

/** Keys a {@link FencedResource} holds a fence for by default. */
export const FENCED_KEYS_MAX = 1_000_000;

/** What a {@link FencedResource} did with one write. */
export interface FencedWrite {
  readonly key: ResourceKey;
  readonly epoch: number;
  readonly accepted: boolean;
  /** The fence before the write: the highest epoch accepted for the key, `null` if none. */
  readonly fenceBefore: number | null;
}

/**
 * The simulated fenced resource (the stand-in for `examples/router`'s `_fence` row): per key, the
 * highest epoch it has accepted. A write is accepted iff its epoch is at least that, and raises it.
 * An equal epoch is the same grant writing again; a lower one is a stale owner, refused. It needs no
 * clock, which is why fencing keeps data safe even when leases fail (clock drift beyond ρ).
 *
 * A real fence cannot forget a key without letting a stale owner back in, so the key count is a
 * hard limit (`keysMax`), asserted rather than evicted.
 */
export class FencedResource {
  /** key -> highest accepted epoch. */
  private readonly fence = new Map<ResourceKey, number>();
  private acceptedCount = 0;
  private refusedCount = 0;

  /** @param keysMax - keys it may hold a fence for. @defaultValue {@link FENCED_KEYS_MAX} */
  constructor(private readonly keysMax: number = FENCED_KEYS_MAX) {
    assert(Number.isSafeInteger(keysMax) && keysMax > 0, "keysMax is a positive integer");
  }

  /** Writes to `key` with fencing token `epoch`: accepted iff `epoch` ≥ the highest accepted. */
  write(key: ResourceKey, epoch: number): FencedWrite {
    assert(Number.isSafeInteger(epoch) && epoch >= 0, `epoch ${epoch} is a non-negative integer`);
    const before = this.fence.get(key);
    if (before === undefined) assert(this.fence.size < this.keysMax, `the resource holds at most ${this.keysMax} keys`);
    const accepted = before === undefined || epoch >= before;
    if (accepted) {
      this.fence.set(key, epoch);
      this.acceptedCount += 1;
    } else {
      this.refusedCount += 1;
    }
    return { key, epoch, accepted, fenceBefore: before ?? null };
  }

  /** The highest epoch accepted for `key`, `null` if none. */
  fenceOf(key: ResourceKey): number | null {
    return this.fence.get(key) ?? null;
  }

  /** Writes accepted. */
  get accepted(): number {
    return this.acceptedCount;
  }

  /** Writes refused as stale. */
  get refused(): number {
    return this.refusedCount;
  }
}

/** What {@link FencingEpochs} remembers of one key. */
interface FencingRecord {
  /** The latest grant, `null` if none seen. */
  grant: { readonly owner: WorkerId; readonly epoch: number } | null;
  /** The highest epoch the resource accepted a write at, `null` if none. */
  accepted: number | null;
}

/**
 * Fencing epochs: per key, grant epochs strictly increase ({@link onGrant}), and the fenced resource
 * never accepts a write with an epoch lower than one it has accepted, nor refuses one at or above
 * it ({@link onWrite}: a refusal there is a broken fence, which would stall the rightful owner).
 * Also, an epoch names one grant, so a write accepted at the key's latest grant epoch must come from
 * that grant's owner.
 *
 * Memory: one record per key, at most {@link FENCING_KEYS_MAX} (least recently touched forgotten).
 */
export class FencingEpochs {
  static readonly checker = "fencing-epochs";
  /** Map order is least recently touched first. */
  private readonly keys = new Map<ResourceKey, FencingRecord>();

  constructor(private readonly report: Report) {}

  /**
   * The placement table granted `key` to `owner` at `epoch`. Feed each grant once, in apply order
   * (e.g. as the first member applies its index); an exact repeat of the latest grant is ignored.
   */
  onGrant(t: number, key: ResourceKey, owner: WorkerId, epoch: number): void {
    const record = this.touch(key);
    const last = record.grant;
    if (last !== null && last.epoch === epoch && last.owner === owner) return;
    if (last !== null && epoch <= last.epoch) {
      this.fire(
        t,
        `${key} granted to ${owner} at epoch ${epoch}, not above its previous grant to ${last.owner} at epoch ${last.epoch}`,
      );
      if (epoch < last.epoch) return; // keep the higher grant as the one to compare against
    }
    record.grant = { owner, epoch };
  }

  /**
   * `worker` wrote to `key` with fencing token `epoch`, and the resource `accepted` it or not
   * (e.g. the {@link FencedWrite} a {@link FencedResource} returned).
   */
  onWrite(t: number, key: ResourceKey, worker: WorkerId, epoch: number, accepted: boolean): void {
    const record = this.touch(key);
    const max = record.accepted;
    if (accepted && max !== null && epoch < max) {
      this.fire(t, `${key} accepted a write from ${worker} at epoch ${epoch} after accepting epoch ${max}`);
    } else if (!accepted && (max === null || epoch >= max)) {
      this.fire(t, `broken fence: ${key} refused a write from ${worker} at epoch ${epoch}, highest accepted ${max ?? "none"}`);
    }
    const grant = record.grant;
    if (accepted && grant !== null && epoch === grant.epoch && worker !== grant.owner) {
      this.fire(t, `${key} accepted a write from ${worker} with epoch ${epoch}, which was granted to ${grant.owner}`);
    }
    if (accepted) record.accepted = Math.max(max ?? epoch, epoch);
  }

  /** Keys remembered now. */
  get size(): number {
    return this.keys.size;
  }

  /** The record of `key`, moved to the most recently touched end; forgets the oldest beyond the maximum. */
  private touch(key: ResourceKey): FencingRecord {
    const record = this.keys.get(key) ?? { grant: null, accepted: null };
    this.keys.delete(key);
    this.keys.set(key, record);
    if (this.keys.size > FENCING_KEYS_MAX) this.keys.delete(this.keys.keys().next().value as ResourceKey);
    return record;
  }

  private fire(t: number, message: string): void {
    this.report({ checker: FencingEpochs.checker, message, t });
  }
}

// -------------------------------------------------------------------------------------------------
// 3. Failover within a stated bound

/** The settings {@link failoverBoundUs} needs. Durations are in ms; see each term there. */
export interface FailoverBoundInput {
  /** The lease length `L`. */
  readonly leaseMs: number;
  /** ρ, the bound on clock rate drift (0.01 = 1%). */
  readonly clockDriftMax: number;
  /** The longest (randomised) election timeout, on a member's clock. */
  readonly electionTimeoutMaxMs: number;
  /** The leader's heartbeat interval, on its clock; it also looks for expired workers this often. */
  readonly heartbeatMs: number;
  /** How often a worker sends a renewal, on its clock. */
  readonly renewalIntervalMs: number;
  /** The longest one-way message delay once the network is healed, in true time. */
  readonly messageDelayMaxMs: number;
  /**
   * Replication round trips to commit the `expire` entry (more than one when a follower's log must
   * first be repaired). @defaultValue 2
   */
  readonly commitRoundTripsMax?: number;
}

/**
 * The failover bound, in µs of true time: how long after the later of a worker's death and the
 * moment the cluster became healthy (a leader known, no partition) every key the worker owned has a
 * new owner that knows it. It is `L*(1+ρ)` + an election timeout + a few heartbeats and round trips
 * (DESIGN.md §7), made exact here. Every span measured on a node's clock is multiplied by
 * `k = 1/(1-ρ)`, the most true time it can take on the slowest allowed clock; `δ` is
 * `messageDelayMaxMs`. The sum of:
 *
 * 1. `electionTimeoutMaxMs·k + 4δ` — the leader may have died too: a follower notices within the
 *    longest election timeout and wins in a pre-vote and a vote round (two round trips). When no
 *    election is needed this term covers instead the at most `δ` a renewal sent just before the
 *    death spends in flight, since the leader counts the lease from receiving it.
 * 2. `L*(1+ρ)·k` — the leader declares the worker expired once `L*(1+ρ)` has passed on its clock
 *    since the later of its election and its receipt of the last renewal it answered
 *    (`lib/placement/leases.ts`).
 * 3. `heartbeatMs·k` — the leader looks for expired workers once per heartbeat.
 * 4. `commitRoundTripsMax·2δ` — the `expire` entry is replicated and committed; applying it grants
 *    each key to a new owner with a new epoch.
 * 5. `(renewalIntervalMs + heartbeatMs)·k + 4δ` — the new owner learns its key: its next renewal
 *    leaves within one renewal interval, reaches the leader (`δ`), waits at most a heartbeat for the
 *    quorum round that confirms leadership (`2δ`), and the answer comes back (`δ`).
 *
 * Each term bounds a step that follows the previous one, so their sum bounds the whole, whether the
 * checker is fed the grant as the leader applies it or as the new owner learns it. Assumes one
 * election succeeds (no split vote), as the liveness phase does. Rounded up to a whole µs.
 */
export function failoverBoundUs(input: FailoverBoundInput): number {
  const { leaseMs, clockDriftMax: rho, electionTimeoutMaxMs, heartbeatMs, renewalIntervalMs } = input;
  const delay = input.messageDelayMaxMs;
  const roundTrips = input.commitRoundTripsMax ?? 2;
  assert(rho >= 0 && rho < 0.5, `clockDriftMax ${rho} is in [0, 0.5)`);
  const durations = {
    leaseMs,
    electionTimeoutMaxMs,
    heartbeatMs,
    renewalIntervalMs,
    messageDelayMaxMs: delay,
    commitRoundTripsMax: roundTrips,
  };
  for (const [name, value] of Object.entries(durations)) {
    assert(Number.isFinite(value) && value >= 0, `${name} is a finite number >= 0`);
  }
  const k = 1 / (1 - rho);
  const election = electionTimeoutMaxMs * k + 4 * delay;
  const expiry = leaseMs * (1 + rho) * k;
  const noticed = heartbeatMs * k;
  const committed = roundTrips * 2 * delay;
  const learned = (renewalIntervalMs + heartbeatMs) * k + 4 * delay;
  return Math.ceil((election + expiry + noticed + committed + learned) * 1000);
}

/** A dead worker's key waiting for a new owner. */
interface PendingFailover {
  readonly worker: WorkerId;
  readonly diedAt: number;
}

/**
 * Failover within the bound: every key of a worker that died for good is granted to a new owner
 * within `boundUs` (see {@link failoverBoundUs}) of the later of the death and the start of the
 * current healthy period. Only time spent healthy counts against the bound: {@link check} fires for
 * a key only while the cluster is healthy and past that deadline; a grant that arrives late while
 * healthy fires as well. Each key is reported at most once.
 *
 * The cluster starts unhealthy. Memory: one record per key of a dead worker not yet reassigned.
 */
export class FailoverBound {
  static readonly checker = "failover-bound";
  private readonly pendingKeys = new Map<ResourceKey, PendingFailover>();
  /** Start of the current healthy period; `null` while unhealthy. */
  private healthySince: number | null = null;
  /** Start of the latest healthy period, current or not. */
  private lastHealthyStart = -Infinity;
  private worstUs = 0;
  private worstSinceDeathUs = 0;
  private failoverCount = 0;

  /** @param boundUs - the stated bound, µs of true time (see {@link failoverBoundUs}). */
  constructor(
    private readonly report: Report,
    readonly boundUs: number,
  ) {
    assert(Number.isFinite(boundUs) && boundUs >= 0, "boundUs is a finite number >= 0");
  }

  /** `worker` crashed or stopped for good at `t`, owning `keys`. */
  onWorkerDead(t: number, worker: WorkerId, keys: readonly ResourceKey[]): void {
    assertTime(t, "death time");
    for (const key of keys) this.pendingKeys.set(key, { worker, diedAt: t });
  }

  /** From `t` a leader is known and no partition cuts the cluster. Repeats are ignored. */
  onClusterHealthy(t: number): void {
    assertTime(t, "healthy time");
    if (this.healthySince !== null) return;
    this.healthySince = t;
    this.lastHealthyStart = t;
  }

  /** From `t` the cluster is not healthy (no known leader, or a partition). */
  onClusterUnhealthy(t: number): void {
    assertTime(t, "unhealthy time");
    this.healthySince = null;
  }

  /**
   * `key` was granted to `owner` at `epoch`. A grant to anyone but the dead worker completes the
   * key's failover.
   */
  onGrant(t: number, key: ResourceKey, owner: WorkerId, epoch: number): void {
    const pending = this.pendingKeys.get(key);
    if (pending === undefined || owner === pending.worker) return;
    if (this.overdue(t, pending)) {
      this.fire(t, key, pending, `was granted to ${owner} at epoch ${epoch} only at ${ms(t)}`);
    }
    this.pendingKeys.delete(key);
    this.failoverCount += 1;
    this.worstUs = Math.max(this.worstUs, t - Math.max(pending.diedAt, this.lastHealthyStart));
    this.worstSinceDeathUs = Math.max(this.worstSinceDeathUs, t - pending.diedAt);
  }

  /** `key` left the table (no worker could take it, or it was released): it awaits no owner. */
  onKeyDropped(key: ResourceKey): void {
    this.pendingKeys.delete(key);
  }

  /** Reports every key whose failover is overdue at `now` (only while healthy). */
  check(now: number): void {
    assertTime(now, "now");
    for (const [key, pending] of this.pendingKeys) {
      if (!this.overdue(now, pending)) continue;
      this.fire(now, key, pending, `has no new owner at ${ms(now)}`);
      this.pendingKeys.delete(key);
    }
  }

  /**
   * The worst failover seen, in µs: from the later of the death and the start of the latest
   * healthy period, to the grant. What the bound is compared against.
   */
  get failoverUsMax(): number {
    return this.worstUs;
  }

  /** The worst failover seen in µs from the death itself (includes unhealthy time). */
  get failoverSinceDeathUsMax(): number {
    return this.worstSinceDeathUs;
  }

  /** Keys that found a new owner. */
  get failovers(): number {
    return this.failoverCount;
  }

  /** Keys still waiting for a new owner. */
  get pending(): number {
    return this.pendingKeys.size;
  }

  private overdue(now: number, pending: PendingFailover): boolean {
    if (this.healthySince === null) return false;
    return now > Math.max(pending.diedAt, this.healthySince) + this.boundUs;
  }

  private fire(t: number, key: ResourceKey, pending: PendingFailover, what: string): void {
    const since = Math.max(pending.diedAt, this.healthySince ?? pending.diedAt);
    this.report({
      checker: FailoverBound.checker,
      message:
        `${key} of ${pending.worker} (dead at ${ms(pending.diedAt)}) ${what}; bound ${ms(this.boundUs)} ` +
        `from ${ms(since)}`,
      t,
    });
  }
}

// -------------------------------------------------------------------------------------------------
// 4. Table integrity

/** The problems {@link TableIntegrity} lists in one violation; the rest are counted. */
export const TABLE_PROBLEMS_MAX = 8;

/**
 * What {@link TableIntegrity} reads of a placement table: `PlacementTable` (lib/placement/table.ts)
 * satisfies it as is.
 */
export interface PlacementTableView {
  /** Every worker. */
  workers(): readonly { readonly id: WorkerId }[];
  /** The keys `worker` owns (active, or draining away from it). */
  keysOf(worker: WorkerId): readonly { readonly key: ResourceKey; readonly epoch: number; readonly state: "active" | "draining" }[];
  /** The assignment of `key`, if it has one. */
  assignment(key: ResourceKey):
    | { readonly owner: WorkerId; readonly epoch: number; readonly state: "active" | "draining"; readonly next: WorkerId | null }
    | undefined;
  /** Keys in the table. */
  readonly size: number;
}

/**
 * The placement table is well formed: no key is listed under two workers; each listed key's
 * assignment names that worker as owner with the same epoch and state; a draining key has a known
 * next owner other than its owner, an active one none; every key is listed under its owner (the
 * listed keys add up to `size`, so no assignment names an unknown owner); and `size` equals the
 * count the caller expects (keys acquired, minus released or dropped).
 *
 * Stateless: each {@link check} walks the table once.
 */
export class TableIntegrity {
  static readonly checker = "table-integrity";

  constructor(private readonly report: Report) {}

  /** Checks `table` at `t`; `expectedKeys` is the key count the run's history implies. */
  check(t: number, table: PlacementTableView, expectedKeys: number): void {
    const problems = tableProblems(table, expectedKeys);
    if (problems.length === 0) return;
    const shown = problems.slice(0, TABLE_PROBLEMS_MAX).join("; ");
    const more = problems.length > TABLE_PROBLEMS_MAX ? `; and ${problems.length - TABLE_PROBLEMS_MAX} more` : "";
    this.report({ checker: TableIntegrity.checker, message: shown + more, t });
  }
}

/** Every problem of `table`, as sentences, in worker and key order. */
function tableProblems(table: PlacementTableView, expectedKeys: number): string[] {
  const problems: string[] = [];
  const known = new Set(table.workers().map((w) => w.id));
  const listedUnder = new Map<ResourceKey, WorkerId>();
  for (const worker of [...known].sort()) {
    for (const owned of table.keysOf(worker)) {
      const other = listedUnder.get(owned.key);
      if (other !== undefined) problems.push(`${owned.key} is listed under both ${other} and ${worker}`);
      listedUnder.set(owned.key, worker);
      const a = table.assignment(owned.key);
      if (a === undefined) {
        problems.push(`${owned.key} is listed under ${worker} but has no assignment`);
        continue;
      }
      if (a.owner !== worker || a.epoch !== owned.epoch || a.state !== owned.state) {
        problems.push(
          `${owned.key} is listed under ${worker} at epoch ${owned.epoch} (${owned.state}) ` +
            `but assigned to ${a.owner} at epoch ${a.epoch} (${a.state})`,
        );
      }
      if (a.state === "draining" && (a.next === null || !known.has(a.next) || a.next === a.owner)) {
        problems.push(`${owned.key} drains from ${a.owner} to ${a.next ?? "nobody"}, not another known worker`);
      }
      if (a.state === "active" && a.next !== null) problems.push(`${owned.key} is active with a next owner ${a.next}`);
    }
  }
  if (listedUnder.size !== table.size) {
    problems.push(`the table holds ${table.size} keys but its workers list ${listedUnder.size} (an unknown owner?)`);
  }
  if (table.size !== expectedKeys) problems.push(`the table holds ${table.size} keys; the history implies ${expectedKeys}`);
  return problems;
}

// -------------------------------------------------------------------------------------------------
// 5. Balance

/** A worker as {@link checkBalance} sees it: its capacity and its load (`PlacementTable.load`). */
export interface BalanceWorker {
  readonly id: WorkerId;
  readonly capacity: number;
  readonly load: number;
}

/**
 * After stabilising (no faults, and rebalancing has run to its fixed point), each worker's load is
 * within a stated bound of its capacity share. With `total` the sum of loads, `C` the sum of
 * capacities and `cMin` the smallest capacity, worker i's share is `total·c_i/C`, and the check is
 *
 *     |load_i − total·c_i/C| ≤ 2·c_i/cMin + slack
 *
 * Why `2·c_i/cMin`: the balancer's rebalance stops only when moving one key from the worker of
 * highest load/capacity ratio `a` to the one that would have the lowest ratio after receiving it
 * `b` would leave the source below the target: `(load_a − 1)/c_a < (load_b + 1)/c_b`, so the ratios
 * span less than `1/c_a + 1/c_b ≤ 2/cMin` (as `balancer.test.ts` checks). The fair ratio `total/C` is
 * a capacity-weighted mean of the ratios, so it lies in that span: every ratio is within `2/cMin`
 * of it, and multiplying by `c_i` gives the term. `slack` (keys, ≥ 0) covers what rebalancing does
 * not: zones (new and failed-over keys go zone first, which rebalancing does not undo; about one
 * key per zone), and keys still in flight when the check runs. Pass only workers that receive keys
 * (active, not leaving). One violation per worker out of bound, at `t`.
 */
export function checkBalance(t: number, workers: readonly BalanceWorker[], slack: number): Violation[] {
  assert(Number.isFinite(slack) && slack >= 0, `slack ${slack} is a finite number >= 0`);
  if (workers.length === 0) return [];
  for (const w of workers) assert(Number.isFinite(w.capacity) && w.capacity > 0, `capacity of ${w.id} is > 0`);
  const total = workers.reduce((sum, w) => sum + w.load, 0);
  const capacity = workers.reduce((sum, w) => sum + w.capacity, 0);
  const capacityMin = Math.min(...workers.map((w) => w.capacity));
  const violations: Violation[] = [];
  for (const w of workers) {
    const share = (total * w.capacity) / capacity;
    const allowed = (2 * w.capacity) / capacityMin + slack;
    if (Math.abs(w.load - share) <= allowed) continue;
    violations.push({
      checker: "balance",
      message:
        `${w.id} (capacity ${w.capacity}) holds ${w.load} keys; its share of ${total} is ` +
        `${share.toFixed(2)}, allowed ±${allowed.toFixed(2)}`,
      t,
    });
  }
  return violations;
}
