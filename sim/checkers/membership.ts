/**
 * Checkers for membership changes, fed by the simulator as a run goes. Like the Raft safety
 * checkers they observe what members announce and send, never the core's internals, so a unit
 * test can hand them a violating history.
 */
import { decodeConfState, describeConf, isJoint } from "../../lib/raft/conf.ts";
import type { ConfState, Entry } from "../../lib/raft/messages.ts";
import type { Report } from "./raft-safety.ts";

/**
 * At most one configuration change in flight: when a leader appends a configuration entry, every
 * earlier configuration entry in its log is already applied by that leader. (A joint change is one
 * change: the leader appends C_new only after applying C_old,new.)
 */
export class ConfChangeInFlight {
  static readonly checker = "one-conf-change-in-flight";

  constructor(private readonly report: Report) {}

  /**
   * Leader `member` appended configuration entry `entry`; `log` is its log (from index 1) and
   * `applied` the index its state machine has applied.
   */
  onAppend(t: number, member: string, entry: Entry, log: readonly Entry[], applied: number): void {
    for (let index = entry.index - 1; index > applied; index -= 1) {
      const earlier = log[index - 1];
      if (earlier !== undefined && earlier.type === "confChange") {
        this.report({
          checker: ConfChangeInFlight.checker,
          message:
            `${member} appended configuration entry ${entry.index} while the one at ${index} was ` +
            `not applied (applied ${applied})`,
          t,
        });
        return;
      }
    }
  }
}

/** Terms whose vote grants {@link ConfigElectionSafety} keeps. */
export const GRANT_TERMS_MAX = 1024;

/**
 * Election safety across configuration changes. Beyond one leader per term (ElectionSafety), each
 * leader must have won the votes of a majority of the configuration the cluster has committed: of
 * its voters, or, while a joint configuration C_old,new is the latest committed one, of C_old
 * (C_new's majority is required too once C_new is committed, which makes it the latest). A leader
 * elected by a superseded configuration could miss entries committed under the new one.
 */
export class ConfigElectionSafety {
  static readonly checker = "config-election-safety";
  /** term -> candidate -> voters who granted it (as delivered). */
  private readonly grants = new Map<number, Map<string, Set<string>>>();
  /** The latest committed configuration and its index. */
  private committed: { conf: ConfState; index: number };

  constructor(
    private readonly report: Report,
    bootstrap: ConfState,
  ) {
    this.committed = { conf: bootstrap, index: 0 };
  }

  /** The latest committed configuration. */
  get committedConf(): ConfState {
    return this.committed.conf;
  }

  /** Entries up to and including `entries` were committed (in order). */
  onCommitted(entries: readonly Entry[]): void {
    for (const entry of entries) {
      if (entry.type !== "confChange" || entry.index <= this.committed.index) continue;
      const conf = decodeConfState(entry.data);
      if (conf !== null) this.committed = { conf, index: entry.index };
    }
  }

  /** `voter` granted `candidate` its vote for `term` (a delivered `voteResponse`). */
  onGrant(term: number, candidate: string, voter: string): void {
    let byCandidate = this.grants.get(term);
    if (byCandidate === undefined) {
      byCandidate = new Map();
      this.grants.set(term, byCandidate);
      // Bounded: a leader is announced soon after its votes, so only the highest terms matter.
      // (Not "terms close to this one": a cut-off minority can run its term far ahead while the
      // majority elects a leader in a much lower term.)
      if (this.grants.size > GRANT_TERMS_MAX) this.grants.delete(Math.min(...this.grants.keys()));
    }
    let voters = byCandidate.get(candidate);
    if (voters === undefined) {
      voters = new Set();
      byCandidate.set(candidate, voters);
    }
    voters.add(voter);
  }

  /** `member` announced itself leader of `term`. */
  onLeader(t: number, term: number, member: string): void {
    const granted = new Set(this.grants.get(term)?.get(member) ?? []);
    granted.add(member);
    const conf = this.committed.conf;
    const required = isJoint(conf) ? conf.outgoing : conf.voters;
    const count = required.filter((id) => granted.has(id)).length;
    if (count < Math.floor(required.length / 2) + 1) {
      this.report({
        checker: ConfigElectionSafety.checker,
        message:
          `${member} leads term ${term} with votes from ${[...granted].sort().join(",")}, not a ` +
          `majority of ${required.join(",")} (committed configuration ${describeConf(conf)})`,
        t,
      });
    }
  }
}
