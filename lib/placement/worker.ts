/**
 * The worker's half of the lease protocol (DESIGN.md §3): which keys a worker may serve, and until
 * when, from the renewals it sent and the answers it got. The leader's half, and the safety
 * argument that ties the two together, are in `leases.ts`.
 *
 * Pure: times are the worker's own clock readings in milliseconds, passed in as arguments.
 */
import { assert } from "../assert.ts";
import {
  resolveLeaseConfig,
  workerLeaseMs,
  type LeaseConfig,
  type LeaseConfigInput,
  type LeaseGrant,
} from "./leases.ts";
import type { ResourceKey } from "./types.ts";

/** One key in a renewal answer: a grant the worker holds, and whether it is draining away. */
export interface AnsweredKey extends LeaseGrant {
  /** A draining key is never served: the worker stops, and confirms it released the grant. */
  readonly draining: boolean;
}

/**
 * What became of an answer given to {@link WorkerLease.answered}:
 * - `accepted`: it is now the answer the worker serves by.
 * - `stale`: an answer to this renewal or a later one was already accepted; it changes nothing.
 * - `unknown`: no renewal with this sequence number is pending (never sent, or forgotten after
 *   {@link RENEWALS_PENDING_MAX} later ones); it changes nothing.
 * - `invalid`: malformed (a repeated key, a bad epoch, too many keys); it changes nothing.
 */
export type AnswerVerdict = "accepted" | "stale" | "unknown" | "invalid";

/**
 * What a host must do after {@link WorkerLease.reconcile}, in this order: call `onRelease` for each
 * of `released`, then `onAcquire` for each of `acquired`, then send a release confirmation for each
 * of `confirm`. Each list is sorted by key.
 */
export interface LeaseChanges {
  /** Grants the worker may serve now and had not reported as served. */
  readonly acquired: readonly LeaseGrant[];
  /** Grants reported as served that the worker may no longer serve (lapsed, dropped, draining, or re-epoched). */
  readonly released: readonly LeaseGrant[];
  /**
   * Grants given up, from the answer accepted since the last reconcile: those it lists as draining,
   * and those it lists again after an earlier answer listed them draining (a drain the leader took
   * back). The worker serves none of them, so it may confirm their release; each new answer that
   * still lists one repeats it, which retries a lost confirmation.
   */
  readonly confirm: readonly LeaseGrant[];
}

/** Counts of answers a {@link WorkerLease} took or refused, and renewals it stopped waiting for. */
export interface WorkerLeaseCounters {
  answersAccepted: number;
  answersStale: number;
  answersUnknown: number;
  answersInvalid: number;
  /** Pending renewals dropped, oldest first, to stay within {@link RENEWALS_PENDING_MAX}. */
  renewalsForgotten: number;
}

/**
 * Renewals a worker waits for an answer to at once. Sending another drops the oldest: its answer,
 * if it ever comes, is then `unknown`. At one renewal every third of a lease, 64 covers answers
 * delayed by about twenty leases, long after they could extend anything.
 */
export const RENEWALS_PENDING_MAX = 64;

/** Keys one renewal answer may list; a longer answer is `invalid`. The balancer must stay below it. */
export const LEASE_KEYS_MAX = 100_000;

/**
 * A worker's lease: feed it the renewals sent and the answers received, ask it what may be served.
 *
 * A key at an epoch may be served at local time `now` only while `now` is before
 * `s + L*(1-ρ) - margin`, where `s` is when the answered renewal was sent, and only if the latest
 * accepted answer lists it, not draining, at that epoch. An answer is accepted only if it answers a
 * pending renewal newer than the one last answered: an older answer arriving late never replaces or
 * extends a newer one.
 *
 * Every time given to it (`sentAt`, `now`) is on the worker's own monotonic clock and must not go
 * backwards; a time that does is a host bug and fails an assertion.
 */
export class WorkerLease {
  /** The validated settings. */
  readonly config: LeaseConfig;
  /** What happened to answers and renewals so far. */
  readonly counters: Readonly<WorkerLeaseCounters>;
  private readonly count: WorkerLeaseCounters = {
    answersAccepted: 0,
    answersStale: 0,
    answersUnknown: 0,
    answersInvalid: 0,
    renewalsForgotten: 0,
  };
  /** Sequence number -> local send time of renewals awaiting an answer, oldest first. */
  private readonly pending = new Map<number, number>();
  // invariant: every pending seq is > answeredSeq and <= lastSentSeq.
  private lastSentSeq: number | null = null;
  private answeredSeq: number | null = null;
  /** Local time before which the accepted answer may be served by; null before any answer. */
  private until: number | null = null;
  /** The accepted answer's keys that are not draining, in key order. */
  private active: ReadonlyMap<ResourceKey, number> = new Map();
  /** The accepted answer's draining keys, in key order. */
  private drainingGrants: readonly LeaseGrant[] = [];
  private confirmPending: readonly LeaseGrant[] = [];
  /**
   * Grants (key -> epoch) this worker was told were draining, and so may have confirmed releasing:
   * it never serves them again, even if a later answer lists one as active (the leader's table can
   * take a drain back, while a confirmation already sent could still hand the key on). Holds only
   * grants the latest answer still lists at that epoch.
   */
  private relinquished = new Map<ResourceKey, number>();
  /** What the last {@link reconcile} reported as served. */
  private reported: ReadonlyMap<ResourceKey, number> = new Map();
  /** The latest time seen: times must not go backwards. */
  private clockHigh = -Infinity;

  /** Validates `input` (see `resolveLeaseConfig`); throws `ConfigError` naming the field. */
  constructor(input: LeaseConfigInput) {
    this.config = resolveLeaseConfig(input);
    this.counters = this.count;
  }

  /**
   * The worker sent renewal `seq` at local time `sentAt`. Sequence numbers must increase, and must
   * never repeat across restarts of the worker (start from a fresh incarnation, e.g. the wall-clock
   * milliseconds at start): an answer to a renewal from before a restart must never be taken for
   * one sent after it.
   */
  renewalSent(seq: number, sentAt: number): void {
    assert(Number.isSafeInteger(seq) && seq >= 0, "a renewal sequence number is a non-negative integer");
    if (this.lastSentSeq !== null) assert(seq > this.lastSentSeq, "renewal sequence numbers increase");
    this.observe(sentAt);
    this.lastSentSeq = seq;
    this.pending.set(seq, sentAt);
    if (this.pending.size > RENEWALS_PENDING_MAX) {
      const oldest = this.pending.keys().next().value as number;
      this.pending.delete(oldest);
      this.count.renewalsForgotten += 1;
    }
  }

  /**
   * The leader answered renewal `seq` with `keys`: every key the worker owns, each with its epoch,
   * draining or not. Returns what became of the answer (refused ones are counted, see
   * {@link counters}). An accepted answer replaces the key set entirely.
   */
  answered(seq: number, keys: readonly AnsweredKey[]): AnswerVerdict {
    if (this.answeredSeq !== null && seq <= this.answeredSeq) {
      this.count.answersStale += 1;
      return "stale";
    }
    const sentAt = this.pending.get(seq);
    if (sentAt === undefined) {
      this.count.answersUnknown += 1;
      return "unknown";
    }
    const sorted = validAnswer(keys);
    if (sorted === null) {
      this.count.answersInvalid += 1;
      return "invalid";
    }
    for (const pendingSeq of this.pending.keys()) if (pendingSeq <= seq) this.pending.delete(pendingSeq);
    this.answeredSeq = seq;
    this.until = sentAt + workerLeaseMs(this.config);
    const relinquished = new Map<ResourceKey, number>();
    for (const k of sorted) {
      if (k.draining || this.relinquished.get(k.key) === k.epoch) relinquished.set(k.key, k.epoch);
    }
    this.relinquished = relinquished;
    this.active = new Map(sorted.filter((k) => relinquished.get(k.key) !== k.epoch).map((k) => [k.key, k.epoch]));
    this.drainingGrants = sorted.filter((k) => k.draining).map(({ key, epoch }) => ({ key, epoch }));
    // Confirm every grant given up, listed draining or listed again after a drain was taken back:
    // the leader's release then hands the key on or frees it, so it never stays with this worker.
    this.confirmPending = sorted.filter((k) => relinquished.get(k.key) === k.epoch).map(({ key, epoch }) => ({ key, epoch }));
    this.count.answersAccepted += 1;
    return "accepted";
  }

  /**
   * The local time before which the accepted answer may be served by (exclusive), or `null`
   * before any answer. A host renews well before it, e.g. every third of a lease.
   */
  validUntil(): number | null {
    return this.until;
  }

  /** The keys (with epochs, in key order) that may be served at local time `now`. */
  servable(now: number): ReadonlyMap<ResourceKey, number> {
    this.observe(now);
    return this.live(now) ? new Map(this.active) : new Map();
  }

  /** Whether a request for `key` carrying `epoch` may be served at local time `now`. */
  canServe(key: ResourceKey, epoch: number, now: number): boolean {
    this.observe(now);
    return this.live(now) && this.active.get(key) === epoch;
  }

  /** The grants the accepted answer lists as draining, in key order. None of them is servable. */
  draining(): readonly LeaseGrant[] {
    return this.drainingGrants;
  }

  /**
   * What changed since the last call, at local time `now`: grants to acquire, to release and to
   * confirm (see {@link LeaseChanges}). A key whose epoch changed is released at its old epoch and
   * acquired at its new one. A lease that lapsed and is renewed releases and then re-acquires.
   */
  reconcile(now: number): LeaseChanges {
    const current = this.servable(now);
    const released: LeaseGrant[] = [];
    const acquired: LeaseGrant[] = [];
    for (const [key, epoch] of this.reported) {
      if (current.get(key) !== epoch) released.push({ key, epoch });
    }
    for (const [key, epoch] of current) {
      if (this.reported.get(key) !== epoch) acquired.push({ key, epoch });
    }
    this.reported = current;
    const confirm = this.confirmPending;
    this.confirmPending = [];
    // Both maps iterate in key order, so both lists come out sorted.
    return { acquired, released, confirm };
  }

  private live(now: number): boolean {
    return this.until !== null && now < this.until;
  }

  private observe(time: number): void {
    assert(typeof time === "number" && Number.isFinite(time), "a worker time is a finite number");
    assert(time >= this.clockHigh, () => `the worker's clock does not go backwards (${time} < ${this.clockHigh})`);
    this.clockHigh = time;
  }
}

/** The answer's keys sorted by key, or `null` when the answer is malformed. */
function validAnswer(keys: readonly AnsweredKey[]): AnsweredKey[] | null {
  if (!Array.isArray(keys) || keys.length > LEASE_KEYS_MAX) return null;
  const seen = new Set<ResourceKey>();
  for (const entry of keys as readonly unknown[]) {
    if (typeof entry !== "object" || entry === null) return null;
    const { key, epoch, draining } = entry as Partial<AnsweredKey>;
    if (typeof key !== "string" || key.length === 0 || seen.has(key)) return null;
    if (typeof epoch !== "number" || !Number.isSafeInteger(epoch) || epoch < 1) return null;
    if (typeof draining !== "boolean") return null;
    seen.add(key);
  }
  return [...keys].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
