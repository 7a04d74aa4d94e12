/**
 * Lease configuration, shared by both sides, and the leader's half of the lease protocol
 * (DESIGN.md §3): when a worker may be declared expired, and when a draining key may be handed to
 * its next owner. The worker's half is in `worker.ts`.
 *
 * The safety argument, in one place. Clock rates are within ρ (`clockDriftMax`) of true time. A
 * worker sends a renewal at true time `Ts`; the leader receives it at `Tr >= Ts` and answers after a
 * quorum round that began after `Tr`. The worker serves until `L*(1-ρ) - margin` has passed on its
 * clock since it sent, which is at most `L` of true time: it stops by `Ts + L`. The leader expires the
 * worker once `L*(1+ρ)` has passed on its clock since it received the last renewal it answered,
 * which is at least `L` of true time: not before `Tr + L >= Ts + L`. A new leader was elected after
 * every renewal any earlier leader answered was received (the quorum that confirmed that answer and
 * the quorum that elected it share a member, which acknowledged the old term before voting), so
 * waiting `L*(1+ρ)` from its election covers answers it never saw. A draining key is listed as
 * draining in every answer to a renewal received after the drain was applied, so the last answer
 * that lets the worker serve it was received before then: `L*(1+ρ)` after the later of that moment
 * and the election, the old owner has stopped.
 *
 * Pure: times are the caller's own clock readings in milliseconds, passed in as arguments.
 */
import { assert } from "../assert.ts";
import { ConfigError } from "../errors.ts";
import type { ResourceKey, WorkerId } from "./types.ts";

/** A grant of `key` at `epoch` (the fencing token: the log index of the command that made it). */
export interface LeaseGrant {
  readonly key: ResourceKey;
  readonly epoch: number;
}

/** The lease settings, identical on every member and worker. Build one with {@link resolveLeaseConfig}. */
export interface LeaseConfig {
  /**
   * The lease length `L` in milliseconds: how long one answered renewal lets a worker serve, in
   * true time, before drift and margin are taken off.
   */
  readonly leaseMs: number;
  /**
   * The bound ρ on how far any clock's *rate* may stray from true time (0.01: a clock gains or loses
   * at most 1%). Offsets between clocks do not matter; only rates do.
   * @defaultValue 0.01
   */
  readonly clockDriftMax: number;
  /**
   * Milliseconds a worker stops serving before its lease runs out on its own clock, to cover the
   * time between checking its lease and acting on a request. Must be less than `leaseMs * (1 - ρ)`.
   * @defaultValue 0
   */
  readonly marginMs: number;
}

/**
 * The lease length members and workers use unless told otherwise (ms). Failover after a worker
 * dies takes about `leaseMs * (1 + clockDriftMax)`; a worker pause (GC, SIGSTOP) longer than about
 * `leaseMs` costs it its keys.
 */
export const LEASE_MS_DEFAULT = 2_000;

/** The input to {@link resolveLeaseConfig}: `leaseMs` is required, the rest default. */
export type LeaseConfigInput = Pick<LeaseConfig, "leaseMs"> & Partial<Omit<LeaseConfig, "leaseMs">>;

/** Defaults for every optional field of {@link LeaseConfig}. */
export const LEASE_CONFIG_DEFAULTS = {
  clockDriftMax: 0.01,
  marginMs: 0,
} as const satisfies Partial<LeaseConfig>;

/**
 * Workers a {@link LeaseTracker} keeps renewal times for. Beyond it, renewals of further workers are
 * answered without keys (see {@link LeaseTracker.onRenewalAnswered}), which is safe but stops them
 * serving: the placement table must hold fewer workers than this.
 */
export const LEASE_WORKERS_MAX = 10_000;

/**
 * Draining keys a {@link LeaseTracker} keeps drain times and release confirmations for. Beyond it,
 * further drains are not recorded until a {@link LeaseTracker.handoffsDue} call lists them, which
 * only delays their handoff.
 */
export const LEASE_DRAINS_MAX = 100_000;

const KNOWN_FIELDS: ReadonlySet<string> = new Set(["leaseMs", ...Object.keys(LEASE_CONFIG_DEFAULTS)]);

/** Applies defaults to `input` and validates the result. Throws {@link ConfigError} naming the field. */
export function resolveLeaseConfig(input: LeaseConfigInput): LeaseConfig {
  if (typeof input !== "object" || input === null) {
    throw new ConfigError("lease", "must be an object");
  }
  for (const key of Object.keys(input)) {
    if (!KNOWN_FIELDS.has(key)) throw new ConfigError(key, "is not a lease config field (a typo?)");
  }
  const config: LeaseConfig = {
    leaseMs: input.leaseMs,
    clockDriftMax: input.clockDriftMax ?? LEASE_CONFIG_DEFAULTS.clockDriftMax,
    marginMs: input.marginMs ?? LEASE_CONFIG_DEFAULTS.marginMs,
  };
  const { leaseMs, clockDriftMax, marginMs } = config;
  if (typeof leaseMs !== "number" || !Number.isFinite(leaseMs) || leaseMs <= 0) {
    throw new ConfigError("leaseMs", `must be a finite number > 0, got ${String(leaseMs)}`);
  }
  if (typeof clockDriftMax !== "number" || !(clockDriftMax >= 0 && clockDriftMax < 0.5)) {
    throw new ConfigError("clockDriftMax", `must be a number in [0, 0.5), got ${String(clockDriftMax)}`);
  }
  if (typeof marginMs !== "number" || !Number.isFinite(marginMs) || marginMs < 0) {
    throw new ConfigError("marginMs", `must be a finite number >= 0, got ${String(marginMs)}`);
  }
  if (marginMs >= leaseMs * (1 - clockDriftMax)) {
    throw new ConfigError(
      "marginMs",
      `(${marginMs}) must be less than leaseMs * (1 - clockDriftMax) (${leaseMs * (1 - clockDriftMax)}), ` +
        "or a worker could never serve",
    );
  }
  return config;
}

/**
 * `L*(1+ρ)`: milliseconds on the leader's clock after which at least `L` of true time has passed.
 * The leader waits this long after receiving a worker's last answered renewal before expiring it,
 * after its election before expiring anyone, and after a drain before handing its key off.
 */
export function leaseExpiryDelayMs(config: LeaseConfig): number {
  return config.leaseMs * (1 + config.clockDriftMax);
}

/**
 * `L*(1-ρ) - margin`: milliseconds on a worker's clock, from sending a renewal, during which the
 * answer to it lets the worker serve. At most `L` of true time passes in that span.
 */
export function workerLeaseMs(config: LeaseConfig): number {
  return config.leaseMs * (1 - config.clockDriftMax) - config.marginMs;
}

/** What the tracker knows of one draining key. */
interface DrainRecord {
  readonly epoch: number;
  /**
   * The leader's time at or after which the drain was applied, or `null` when only a release
   * confirmation has been heard (the first {@link LeaseTracker.handoffsDue} listing it fills it in).
   */
  since: number | null;
  /** Whether the old owner confirmed it released the key at `epoch`. */
  confirmed: boolean;
}

/**
 * The leader's lease bookkeeping: when each worker's lease has surely run out, and when each
 * draining key's old owner has surely stopped serving it. It decides nothing by itself: the host
 * asks {@link expiredWorkers} and {@link handoffsDue} and proposes `expire` and `handoff` commands.
 *
 * The host's duties, on which safety rests:
 * - Call {@link onElected} on becoming leader and {@link onSteppedDown} on losing leadership. Call
 *   {@link handoffsDue} with the table's draining keys right after the election, so that drains
 *   applied before it count from the election rather than from a later first listing.
 * - Answer a renewal only after a quorum round that began after it was received; then call
 *   {@link onRenewalAnswered}, and list the worker's keys in the answer only if it returned true.
 *   Decide the answer's content at that moment, not when the renewal arrived.
 * - List a key as draining (never as active) in every answer to a renewal received after the drain
 *   was applied on this member, and call {@link onDrainApplied} when it is applied.
 * - Call {@link forget} for a worker only once its `expire` (or its removal) has been applied.
 */
export class LeaseTracker {
  /** The validated settings. */
  readonly config: LeaseConfig;
  // invariant: electedAt === null iff not leading; then receivedAt, expiring and drains are empty.
  private electedAt: number | null = null;
  /** Per worker: the latest receipt time (leader's clock) of a renewal answered with keys. */
  private readonly receivedAt = new Map<WorkerId, number>();
  /** Workers reported expired: their renewals are answered without keys until forgotten. */
  private readonly expiring = new Set<WorkerId>();
  private readonly drains = new Map<ResourceKey, DrainRecord>();

  /** Validates `input` (see {@link resolveLeaseConfig}); throws {@link ConfigError}. */
  constructor(input: LeaseConfigInput) {
    this.config = resolveLeaseConfig(input);
  }

  /** `L*(1+ρ)` in milliseconds of the leader's clock; see {@link leaseExpiryDelayMs}. */
  expiryDelayMs(): number {
    return leaseExpiryDelayMs(this.config);
  }

  /** Whether this member leads, as far as the tracker was told. */
  isLeading(): boolean {
    return this.electedAt !== null;
  }

  /**
   * This member became leader at `now`. Forgets everything from earlier terms: another leader may
   * have answered renewals since, so every deadline starts again from `now`.
   */
  onElected(now: number): void {
    assertTime(now, "election time");
    this.reset();
    this.electedAt = now;
  }

  /** This member is no longer leader: it expires and hands off nothing until elected again. */
  onSteppedDown(): void {
    this.reset();
  }

  /**
   * The leader answered a renewal of `worker` that it received at `receivedAt` (its clock), after a
   * quorum round that began after that. Returns whether the answer may list the worker's keys:
   * false when not leading, when the worker has been reported expired (its `expire` may be in
   * flight, and a lease granted now would outlive the reassignment), or when {@link LEASE_WORKERS_MAX}
   * workers are already tracked. An answer without keys is always safe.
   */
  onRenewalAnswered(worker: WorkerId, receivedAt: number): boolean {
    assertTime(receivedAt, "renewal receipt time");
    if (this.electedAt === null || this.expiring.has(worker)) return false;
    const previous = this.receivedAt.get(worker);
    if (previous === undefined && this.receivedAt.size >= LEASE_WORKERS_MAX) return false;
    // Answers may complete out of order: a renewal received earlier never moves the deadline back.
    this.receivedAt.set(worker, previous === undefined ? receivedAt : Math.max(previous, receivedAt));
    return true;
  }

  /**
   * The leader's time at and after which `worker` may be declared expired: `L*(1+ρ)` after the
   * later of its election and the receipt of the worker's last answered renewal. `Infinity` when
   * not leading.
   */
  expiresAt(worker: WorkerId): number {
    if (this.electedAt === null) return Infinity;
    const since = Math.max(this.electedAt, this.receivedAt.get(worker) ?? -Infinity);
    return since + this.expiryDelayMs();
  }

  /**
   * Which of `workers` (every worker in the placement table) may be declared expired at `now`,
   * sorted and without repeats. Each one returned is marked: its renewals are answered without keys
   * until {@link forget}. Empty when not leading.
   */
  expiredWorkers(now: number, workers: readonly WorkerId[]): WorkerId[] {
    assertTime(now, "now");
    if (this.electedAt === null) return [];
    const expired = [...new Set(workers)].filter((worker) => now >= this.expiresAt(worker)).sort(compare);
    for (const worker of expired) this.expiring.add(worker);
    return expired;
  }

  /**
   * The drain of `key`, owned at `epoch`, was applied on this member at `now`. From now on every
   * renewal answer lists the key as draining. Told again for the same grant (a drain undone and
   * redone), the wait starts over and an earlier confirmation no longer counts: a later start is
   * never unsafe. Ignored when not leading, and for an epoch older than the one recorded for the key.
   */
  onDrainApplied(key: ResourceKey, epoch: number, now: number): void {
    assertTime(now, "drain time");
    if (this.electedAt === null) return;
    const record = this.drainRecord(key, epoch);
    if (record === null) return;
    record.since = now;
    record.confirmed = false;
  }

  /**
   * The old owner of `key` confirmed that it stopped serving the grant at `epoch`: the key may be
   * handed off at once. A confirmation for an older epoch than the drain's says nothing about it.
   * Ignored when not leading.
   */
  onReleased(key: ResourceKey, epoch: number): void {
    if (this.electedAt === null) return;
    const record = this.drainRecord(key, epoch);
    if (record !== null) record.confirmed = true;
  }

  /**
   * The leader's time at and after which the draining grant may be handed off: at once if
   * confirmed, else `L*(1+ρ)` after the later of the election and the drain. `Infinity` when not
   * leading or when the drain was never recorded (see {@link handoffsDue}).
   */
  handoffDueAt(key: ResourceKey, epoch: number): number {
    if (this.electedAt === null) return Infinity;
    const record = this.drains.get(key);
    if (record === undefined || record.epoch !== epoch) return Infinity;
    if (record.confirmed) return -Infinity;
    if (record.since === null) return Infinity;
    return Math.max(this.electedAt, record.since) + this.expiryDelayMs();
  }

  /**
   * Which of the `draining` grants (every draining key in the placement table, with its owner's
   * epoch) may be handed to their next owner at `now`, sorted by key. A grant not recorded before
   * is recorded as drained at `now`, which is safe: the table already held the drain. Records of
   * grants not listed are dropped, so the tracker holds no more than the table.
   */
  handoffsDue(now: number, draining: readonly LeaseGrant[]): LeaseGrant[] {
    assertTime(now, "now");
    if (this.electedAt === null) return [];
    const listed = new Map<ResourceKey, number>();
    for (const { key, epoch } of draining) listed.set(key, epoch);
    for (const [key, record] of this.drains) {
      if (listed.get(key) !== record.epoch) this.drains.delete(key);
    }
    for (const [key, epoch] of listed) {
      const record = this.drainRecord(key, epoch);
      if (record !== null && record.since === null) record.since = now;
    }
    return [...listed]
      .filter(([key, epoch]) => now >= this.handoffDueAt(key, epoch))
      .map(([key, epoch]) => ({ key, epoch }))
      .sort((a, b) => compare(a.key, b.key));
  }

  /** Drops what is known of `worker`: call once its `expire` or removal has been applied. */
  forget(worker: WorkerId): void {
    this.receivedAt.delete(worker);
    this.expiring.delete(worker);
  }

  /**
   * The drain record of `key` at `epoch`, made if needed; `null` when the key's record is for a
   * later epoch (the call is stale) or when {@link LEASE_DRAINS_MAX} keys are recorded.
   */
  private drainRecord(key: ResourceKey, epoch: number): DrainRecord | null {
    const record = this.drains.get(key);
    if (record !== undefined && record.epoch === epoch) return record;
    if (record !== undefined && record.epoch > epoch) return null;
    // A record for an earlier epoch belongs to an earlier drain of the key, which is over.
    if (record === undefined && this.drains.size >= LEASE_DRAINS_MAX) return null;
    const fresh: DrainRecord = { epoch, since: null, confirmed: false };
    this.drains.set(key, fresh);
    return fresh;
  }

  private reset(): void {
    this.electedAt = null;
    this.receivedAt.clear();
    this.expiring.clear();
    this.drains.clear();
  }
}

function assertTime(value: number, what: string): void {
  assert(typeof value === "number" && Number.isFinite(value), () => `${what} is a finite number`);
}

/** Orders strings by UTF-16 code units, the same on every member. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
