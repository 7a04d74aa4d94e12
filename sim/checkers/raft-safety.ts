/**
 * Checkers for Raft's safety properties (Raft paper Figure 3), fed by the simulator as a run goes.
 * Each is a small observer over plain data, so a unit test can hand it a violating history and see
 * it fire. None of them reads the core's internals: they see what a member persisted, committed,
 * applied and announced, as an outside observer would.
 */
import type { Entry } from "../../lib/raft/messages.ts";

/** A safety or liveness property that did not hold. `t` is simulated true time in µs. */
export interface Violation {
  readonly checker: string;
  readonly message: string;
  readonly t: number;
}

/** Where checkers report. */
export type Report = (violation: Violation) => void;

function sameEntry(a: Entry, b: Entry): boolean {
  if (a === b) return true;
  if (a.term !== b.term || a.index !== b.index || a.data.byteLength !== b.data.byteLength) {
    return false;
  }
  for (let i = 0; i < a.data.byteLength; i += 1) if (a.data[i] !== b.data[i]) return false;
  return true;
}

/** Election safety: at most one leader per term. */
export class ElectionSafety {
  static readonly checker = "election-safety";
  private readonly leaders = new Map<number, string>();

  constructor(private readonly report: Report) {}

  /** `member` announced itself leader of `term`. */
  onLeader(t: number, term: number, member: string): void {
    const known = this.leaders.get(term);
    if (known === undefined) this.leaders.set(term, member);
    else if (known !== member) {
      this.report({
        checker: ElectionSafety.checker,
        message: `two leaders in term ${term}: ${known} and ${member}`,
        t,
      });
    }
  }

  /** Terms that had a leader. */
  get elections(): number {
    return this.leaders.size;
  }
}

/**
 * Log matching: if two logs contain an entry with the same index and term, the logs are identical
 * in all entries up through that index.
 */
export class LogMatching {
  static readonly checker = "log-matching";

  constructor(private readonly report: Report) {}

  /** Checks every pair of `logs` (member -> entries from index 1). */
  check(t: number, logs: ReadonlyMap<string, readonly Entry[]>): void {
    const members = [...logs.keys()].sort();
    for (let a = 0; a < members.length; a += 1) {
      for (let b = a + 1; b < members.length; b += 1) {
        const left = logs.get(members[a] as string) as readonly Entry[];
        const right = logs.get(members[b] as string) as readonly Entry[];
        const problem = this.comparePair(left, right);
        if (problem !== null) {
          this.report({ checker: LogMatching.checker, message: `${members[a]} vs ${members[b]}: ${problem}`, t });
          return;
        }
      }
    }
  }

  private comparePair(left: readonly Entry[], right: readonly Entry[]): string | null {
    let last = Math.min(left.length, right.length) - 1;
    while (last >= 0 && (left[last] as Entry).term !== (right[last] as Entry).term) last -= 1;
    for (let i = 0; i <= last; i += 1) {
      if (!sameEntry(left[i] as Entry, right[i] as Entry)) {
        return `both hold term ${(left[last] as Entry).term} at index ${last + 1} but differ at index ${i + 1}`;
      }
    }
    return null;
  }
}

/**
 * The committed log as the world has seen it, and two properties over it:
 * - state machine safety at commit: once an index is committed, no member ever commits (or
 *   applies) a different entry there;
 * - leader completeness: a leader's log contains every entry committed before its term.
 */
export class CommittedLog {
  static readonly stateMachine = "state-machine-safety";
  static readonly completeness = "leader-completeness";
  /** `committed[i]` is the entry committed at index i + 1. */
  private readonly committed: Entry[] = [];
  /** Per member, the commit index up to which its log was already compared. */
  private readonly checkedUpTo = new Map<string, number>();

  constructor(private readonly report: Report) {}

  /** The highest index known committed. */
  get commitIndex(): number {
    return this.committed.length;
  }

  /** The committed entries, from index 1. */
  entries(): readonly Entry[] {
    return this.committed;
  }

  /** `member` declared entries up to `commit` committed, with `log` its log at that moment. */
  onCommit(t: number, member: string, commit: number, log: readonly Entry[]): void {
    const known = Math.min(commit, this.committed.length);
    // Compare what this member newly commits; what it committed before was compared then, and a
    // member never uncommits (its log up to its commit index never changes; a restart resets it).
    for (let index = (this.checkedUpTo.get(member) ?? 0) + 1; index <= known; index += 1) {
      const mine = log[index - 1];
      if (mine === undefined || !sameEntry(mine, this.committed[index - 1] as Entry)) {
        this.report({
          checker: CommittedLog.stateMachine,
          message: `${member} committed index ${index} with another entry than was committed there before`,
          t,
        });
        return;
      }
    }
    for (let index = this.committed.length + 1; index <= commit; index += 1) {
      const entry = log[index - 1];
      if (entry === undefined) {
        this.report({ checker: CommittedLog.stateMachine, message: `${member} committed index ${index} it does not hold`, t });
        return;
      }
      this.committed.push(entry);
    }
    this.checkedUpTo.set(member, Math.max(this.checkedUpTo.get(member) ?? 0, commit));
  }

  /** `member` applied `entry`. Each index must be applied with the committed entry, in order. */
  onApply(t: number, member: string, entry: Entry): void {
    const committed = this.committed[entry.index - 1];
    if (committed === undefined) {
      this.report({ checker: CommittedLog.stateMachine, message: `${member} applied index ${entry.index} before anyone committed it`, t });
    } else if (!sameEntry(committed, entry)) {
      this.report({ checker: CommittedLog.stateMachine, message: `${member} applied another entry at index ${entry.index} than the committed one`, t });
    }
  }

  /**
   * `member` installed a snapshot covering entries up to `index`, whose entry there has `term`: it
   * must stand for committed entries, ending with the committed entry at `index`.
   */
  onSnapshot(t: number, member: string, index: number, term: number): void {
    const committed = this.committed[index - 1];
    if (committed === undefined) {
      this.report({ checker: CommittedLog.stateMachine, message: `${member} installed a snapshot at ${index}, beyond anything committed`, t });
    } else if (committed.term !== term) {
      this.report({
        checker: CommittedLog.stateMachine,
        message: `${member} installed a snapshot at ${index} of term ${term}; the committed entry there has term ${committed.term}`,
        t,
      });
    }
  }

  /** A member restarted: its log is re-read from disk, so compare it afresh. */
  onRestart(member: string): void {
    this.checkedUpTo.delete(member);
  }

  /** `member` became leader of `term` holding `log`: it must hold every committed entry. */
  onLeader(t: number, term: number, member: string, log: readonly Entry[]): void {
    for (let index = 1; index <= this.committed.length; index += 1) {
      const mine = log[index - 1];
      if (mine === undefined || !sameEntry(mine, this.committed[index - 1] as Entry)) {
        this.report({
          checker: CommittedLog.completeness,
          message: `${member}, leader of term ${term}, lacks committed entry ${index}`,
          t,
        });
        return;
      }
    }
  }
}

/** Acknowledged writes survive: every write a client was told succeeded is in every final log. */
export class DurableAcks {
  static readonly checker = "acknowledged-writes-survive";
  private readonly acked = new Map<string, number>();

  constructor(private readonly report: Report) {}

  /** A client was told the command `key` (client:seq) took effect, at `t`. */
  onAck(t: number, key: string): void {
    if (!this.acked.has(key)) this.acked.set(key, t);
  }

  /** Acknowledged commands. */
  get count(): number {
    return this.acked.size;
  }

  /** Checks that `member`'s committed commands (by key) include every acknowledged one. */
  check(t: number, member: string, committedKeys: ReadonlySet<string>): void {
    for (const [key, ackedAt] of this.acked) {
      if (!committedKeys.has(key)) {
        this.report({
          checker: DurableAcks.checker,
          message: `command ${key}, acknowledged at ${(ackedAt / 1000).toFixed(3)} ms, is missing from ${member}'s committed log`,
          t,
        });
        return;
      }
    }
  }
}

/** What the liveness phase observed, for {@link checkLiveness}. Times in µs. */
export interface LivenessObservation {
  /** When faults stopped and every member was restarted. */
  readonly healedAt: number;
  /** The stated bound: everything below must happen within `healedAt + boundUs`. */
  readonly boundUs: number;
  /** When a leader known to every member first existed after healing, or `null` if never. */
  readonly leaderAt: number | null;
  /** When the last client operation pending at healing completed, or `null` if some never did. */
  readonly opsDoneAt: number | null;
  /** When every member had applied the same entries (and held the same state), or `null`. */
  readonly convergedAt: number | null;
  /** What each member held at the end (role, commit, applied), to say why it did not converge. */
  readonly membersAtEnd?: string;
}

/** The liveness bound: after healing, a leader, completed operations and convergence in time. */
export function checkLiveness(observation: LivenessObservation): Violation[] {
  const deadline = observation.healedAt + observation.boundUs;
  const late = (what: string, at: number | null): Violation | null =>
    at !== null && at <= deadline
      ? null
      : {
          checker: "liveness",
          message:
            at === null
              ? `${what} never happened after healing (bound ${observation.boundUs / 1000} ms)`
              : `${what} took ${((at - observation.healedAt) / 1000).toFixed(1)} ms after healing; bound ${observation.boundUs / 1000} ms`,
          t: deadline,
        };
  return [
    late("a leader known to all members", observation.leaderAt),
    late("completion of every pending client operation", observation.opsDoneAt),
    late("convergence of every member's applied state", observation.convergedAt),
  ]
    .filter((v): v is Violation => v !== null)
    .map((v) => (observation.membersAtEnd === undefined ? v : { ...v, message: `${v.message}; at the end: ${observation.membersAtEnd}` }));
}
