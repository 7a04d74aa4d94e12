/**
 * Checkers of the host's promises and of two liveness rules of the core, fed by the simulator:
 *
 * - {@link OperationsSettle}: every `propose()` and `read()` settles (resolves, or rejects with a
 *   typed error) by its deadline, unless its member died first.
 * - {@link CheckQuorumStepDown}: a leader cut off from a quorum steps down within two election
 *   timeouts (CheckQuorum looks, every election timeout, at whether a quorum was active during the
 *   previous one).
 * - {@link PreVoteStability}: a member that rejoins after a partition does not depose a leader a
 *   quorum still follows (PreVote: it never raised its term while it was cut off).
 *
 * Like the other checkers they see plain data (times, ids, terms), so a unit test can hand each a
 * violating history. Times are simulated true time in µs.
 */
import { assert } from "../../lib/assert.ts";
import type { Report } from "./raft-safety.ts";

function ms(us: number): string {
  return `${(us / 1000).toFixed(3)} ms`;
}

/** Operations {@link OperationsSettle} tracks at once; beyond it new ones are counted, not tracked. */
export const SETTLE_TRACKED_MAX = 100_000;

/** One operation awaiting its outcome. */
interface Tracked {
  readonly member: string;
  /** The member's incarnation: an operation of a member that died is not expected to settle. */
  readonly generation: number;
  readonly what: string;
  readonly startedUs: number;
  readonly deadlineUs: number;
}

/**
 * Every operation the API accepted settles by its deadline. `track` it when it is called and
 * `settled` when its promise settles; `check(t)` as time passes (after every event) reports those
 * still pending past their deadline, and `settled` one that settles late; `died` forgets a
 * member's operations when its incarnation ends (a dead process owes no answers).
 */
export class OperationsSettle {
  static readonly checker = "operations-settle";
  private readonly pending = new Map<number, Tracked>();
  /** Deadlines of the pending operations, a min-heap of [deadline, id]. */
  private readonly heap: [number, number][] = [];
  private nextId = 1;
  private untracked = 0;
  private settledCount = 0;

  constructor(private readonly report: Report) {}

  /** An operation called on `member` (incarnation `generation`) at `t`, due by `deadlineUs`. Returns its handle. */
  track(t: number, member: string, generation: number, what: string, deadlineUs: number): number {
    assert(deadlineUs >= t, "a deadline is not in the past");
    if (this.pending.size >= SETTLE_TRACKED_MAX) {
      this.untracked += 1;
      return 0;
    }
    const id = this.nextId++;
    this.pending.set(id, { member, generation, what, startedUs: t, deadlineUs });
    this.push([deadlineUs, id]);
    return id;
  }

  /** Operation `id` settled at `t`: reported if that is past its deadline. */
  settled(id: number, t: number): void {
    const op = this.pending.get(id);
    if (op === undefined) return;
    this.pending.delete(id);
    if (t > op.deadlineUs) this.fire(t, op, `settled only at ${ms(t)}`);
    else this.settledCount += 1;
  }

  /** Incarnation `generation` of `member` ended: its operations will never settle, and need not. */
  died(member: string, generation: number): void {
    for (const [id, op] of this.pending) if (op.member === member && op.generation === generation) this.pending.delete(id);
  }

  /** Time reached `t`: every operation still pending past its deadline is reported. */
  check(t: number): void {
    while (this.heap.length > 0 && (this.heap[0] as [number, number])[0] < t) {
      const [, id] = this.pop();
      const op = this.pending.get(id);
      if (op === undefined) continue;
      this.pending.delete(id);
      this.fire(t, op, `had not settled at ${ms(t)}`);
    }
  }

  /** Operations that settled in time. */
  get settledInTime(): number {
    return this.settledCount;
  }

  /** Operations not tracked because {@link SETTLE_TRACKED_MAX} were pending. */
  get untrackedCount(): number {
    return this.untracked;
  }

  private fire(t: number, op: Tracked, what: string): void {
    this.report({
      checker: OperationsSettle.checker,
      message: `${op.what} on ${op.member}, called at ${ms(op.startedUs)} and due by ${ms(op.deadlineUs)}, ${what}`,
      t,
    });
  }

  private push(item: [number, number]): void {
    const heap = this.heap;
    heap.push(item);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((heap[parent] as [number, number])[0] <= item[0]) break;
      heap[i] = heap[parent] as [number, number];
      i = parent;
    }
    heap[i] = item;
  }

  private pop(): [number, number] {
    const heap = this.heap;
    const top = heap[0] as [number, number];
    const last = heap.pop() as [number, number];
    if (heap.length > 0) {
      // Sift `last` down from the root, moving smaller children up.
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let smallest = -1;
        let smallestDeadline = last[0];
        if (left < heap.length && (heap[left] as [number, number])[0] < smallestDeadline) {
          smallest = left;
          smallestDeadline = (heap[left] as [number, number])[0];
        }
        if (right < heap.length && (heap[right] as [number, number])[0] < smallestDeadline) smallest = right;
        if (smallest === -1) break;
        heap[i] = heap[smallest] as [number, number];
        i = smallest;
      }
      heap[i] = last;
    }
    return top;
  }
}

/** A leader expected to step down. */
interface Expectation {
  readonly leader: string;
  readonly term: number;
  readonly since: number;
  readonly deadlineUs: number;
}

/**
 * CheckQuorum's promise: a leader that cannot reach a quorum of its configuration steps down
 * within its bound. `cutOff` records that, as of `t`, `leader` (in `term`) can reach no quorum and
 * must step down by `deadlineUs`; `reachable` withdraws it (the links or members came back, or it
 * went down); `steppedDown` records that it did; `due` fires if it still leads in that term.
 */
export class CheckQuorumStepDown {
  static readonly checker = "check-quorum";
  private expectation: Expectation | null = null;
  private checks = 0;

  constructor(private readonly report: Report) {}

  /** As of `t`, `leader` in `term` cannot reach a quorum; it must step down by `deadlineUs`. */
  cutOff(t: number, leader: string, term: number, deadlineUs: number): void {
    const current = this.expectation;
    // Still cut off since an earlier moment: the earlier deadline stands.
    if (current !== null && current.leader === leader && current.term === term) return;
    this.expectation = { leader, term, since: t, deadlineUs };
    this.checks += 1;
  }

  /** The leader can reach a quorum again (or is gone): nothing is expected of it. */
  reachable(): void {
    this.expectation = null;
  }

  /** `member` no longer leads in `term` (it became a follower, or a later term began). */
  steppedDown(member: string, term: number): void {
    const e = this.expectation;
    if (e !== null && e.leader === member && e.term <= term) this.expectation = null;
  }

  /**
   * The deadline passed: `leadsNow` says whether the expected leader still leads in its term.
   * Returns whether an expectation was due.
   */
  due(t: number, leadsNow: (leader: string, term: number) => boolean): boolean {
    const e = this.expectation;
    if (e === null || t < e.deadlineUs) return false;
    this.expectation = null;
    if (!leadsNow(e.leader, e.term)) return true;
    this.report({
      checker: CheckQuorumStepDown.checker,
      message: `leader ${e.leader} (term ${e.term}) was cut off from a quorum at ${ms(e.since)} and still led at ${ms(t)}, past its bound ${ms(e.deadlineUs)}`,
      t,
    });
    return true;
  }

  /** The deadline of the pending expectation, if any. */
  get deadline(): number | null {
    return this.expectation?.deadlineUs ?? null;
  }

  /** Cut-off leaders checked so far. */
  get checked(): number {
    return this.checks;
  }
}

/**
 * PreVote's promise: when a member that was cut off rejoins a cluster whose leader a quorum still
 * follows, that leader keeps leading in its term. `rejoined` records the leader and term at the
 * moment of healing; `check` at the end of the window compares; `disturbed` withdraws the check
 * when anything else happened in the window that may legitimately change the leader.
 */
export class PreVoteStability {
  static readonly checker = "pre-vote";
  private watch: { readonly member: string; readonly leader: string; readonly term: number; readonly since: number } | null = null;
  private checks = 0;

  constructor(private readonly report: Report) {}

  /** `member` rejoined at `t`, while `leader` led in `term` with a quorum behind it. */
  rejoined(t: number, member: string, leader: string, term: number): void {
    this.watch = { member, leader, term, since: t };
  }

  /** Something else happened that may change the leader (a fault, a transfer): no verdict. */
  disturbed(): void {
    this.watch = null;
  }

  /** At `t`, `leader` leads in `term` (or not). */
  check(t: number, leads: (leader: string, term: number) => boolean, now: { readonly leader: string | null; readonly term: number }): void {
    const w = this.watch;
    if (w === null) return;
    this.watch = null;
    this.checks += 1;
    if (leads(w.leader, w.term)) return;
    this.report({
      checker: PreVoteStability.checker,
      message:
        `${w.member} rejoined at ${ms(w.since)} while ${w.leader} led in term ${w.term} with a quorum; ` +
        `by ${ms(t)} the leader was ${now.leader ?? "none"} in term ${now.term}`,
      t,
    });
  }

  /** Rejoins checked so far. */
  get checked(): number {
    return this.checks;
  }
}
