/**
 * Membership configurations and the changes between them. A change of voters goes through joint
 * consensus (Raft thesis §4.3): from C_old the leader appends C_old,new (`voters` = new,
 * `outgoing` = old), in which elections and commits need a majority of both; once that entry is
 * applied, the leader appends C_new. Learners can be added or removed in one step, since they never
 * count toward a quorum. Every configuration entry carries the whole resulting configuration, so
 * applying one is just adopting it.
 *
 * Pure: no I/O, no clock.
 */
import { ConfChangeError } from "../errors.ts";
import { VOTERS_MAX } from "./config.ts";
import type { ConfState, NodeId } from "./messages.ts";

/** One operation of a membership change. */
export interface ConfChangeOp {
  /**
   * `addVoter`: add a voter, or promote a learner to voter; `addLearner`: add a non-voting member;
   * `remove`: remove a voter or a learner.
   */
  readonly kind: "addVoter" | "addLearner" | "remove";
  readonly id: NodeId;
}

/** The empty configuration of a member that joins an existing cluster and waits to be contacted. */
export const EMPTY_CONF: ConfState = { voters: [], outgoing: [], learners: [] };

/** Whether `conf` is a joint configuration (C_old,new). */
export function isJoint(conf: ConfState): boolean {
  return conf.outgoing.length > 0;
}

/** Whether `id` votes in `conf` (in either half of a joint configuration). */
export function isVoter(conf: ConfState, id: NodeId): boolean {
  return conf.voters.includes(id) || conf.outgoing.includes(id);
}

/** Every member of `conf` (voters of both halves and learners), sorted. */
export function confMembers(conf: ConfState): NodeId[] {
  return sortedUnique([...conf.voters, ...conf.outgoing, ...conf.learners]);
}

/** Every voter of `conf` (both halves), sorted. */
export function confVoters(conf: ConfState): NodeId[] {
  return sortedUnique([...conf.voters, ...conf.outgoing]);
}

/** Whether two configurations are the same. */
export function sameConf(a: ConfState, b: ConfState): boolean {
  return sameList(a.voters, b.voters) && sameList(a.outgoing, b.outgoing) && sameList(a.learners, b.learners);
}

/** A one-line rendering, e.g. `voters=n1,n2 outgoing=n1,n3 learners=n4`. */
export function describeConf(conf: ConfState): string {
  const parts = [`voters=${conf.voters.join(",")}`];
  if (conf.outgoing.length > 0) parts.push(`outgoing=${conf.outgoing.join(",")}`);
  if (conf.learners.length > 0) parts.push(`learners=${conf.learners.join(",")}`);
  return parts.join(" ");
}

/**
 * The configuration that `ops` lead to from `current`, which must not be joint. When the voters
 * change, the result is the joint configuration (`voters` = new, `outgoing` = current voters);
 * when only learners change, it is the final one.
 * @throws ConfChangeError when the change is invalid.
 */
export function enterConf(current: ConfState, ops: readonly ConfChangeOp[]): ConfState {
  if (isJoint(current)) {
    throw new ConfChangeError("pending", "the joint configuration has not been left yet");
  }
  if (ops.length === 0) throw new ConfChangeError("malformed", "the change lists no operation");
  const seen = new Set<NodeId>();
  const voters = new Set(current.voters);
  const learners = new Set(current.learners);
  for (const op of ops) {
    if (typeof op !== "object" || op === null) throw new ConfChangeError("malformed", "an operation is not an object");
    if (!isIdList([op.id])) {
      throw new ConfChangeError("malformed", `member id ${JSON.stringify(op.id)} is not a string of 1 to ${ID_LENGTH_MAX} characters`);
    }
    if (seen.has(op.id)) throw new ConfChangeError("malformed", `${op.id} is named twice`);
    seen.add(op.id);
    switch (op.kind) {
      case "addVoter":
        if (voters.has(op.id)) throw new ConfChangeError("already-member", `${op.id} is already a voter`);
        learners.delete(op.id);
        voters.add(op.id);
        break;
      case "addLearner":
        if (voters.has(op.id)) {
          throw new ConfChangeError("already-member", `${op.id} is a voter; demotion is not supported`);
        }
        if (learners.has(op.id)) throw new ConfChangeError("already-member", `${op.id} is already a learner`);
        learners.add(op.id);
        break;
      case "remove":
        if (!voters.delete(op.id) && !learners.delete(op.id)) {
          throw new ConfChangeError("unknown-member", `${op.id} is not a member`);
        }
        break;
      default:
        throw new ConfChangeError("malformed", `unknown operation ${JSON.stringify((op as { kind?: unknown }).kind)}`);
    }
  }
  if (voters.size === 0) throw new ConfChangeError("last-voter", "the change would leave no voter");
  if (voters.size > VOTERS_MAX) {
    throw new ConfChangeError("too-many-voters", `${voters.size} voters; at most ${VOTERS_MAX}`);
  }
  const next = { voters: sortedUnique([...voters]), learners: sortedUnique([...learners]) };
  if (sameList(next.voters, current.voters)) return { ...next, outgoing: [] };
  return { ...next, outgoing: current.voters };
}

/** The configuration that leaves the joint configuration `joint`: C_new. */
export function leaveConf(joint: ConfState): ConfState {
  return { voters: joint.voters, outgoing: [], learners: joint.learners };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes a configuration as the data of a `confChange` entry. */
export function encodeConfState(conf: ConfState): Uint8Array {
  return encoder.encode(JSON.stringify({ voters: conf.voters, outgoing: conf.outgoing, learners: conf.learners }));
}

/**
 * Decodes the data of a `confChange` entry, or returns `null` when it is not a valid
 * configuration (sorted, unique, non-empty ids; no learner that votes; at least one voter).
 */
export function decodeConfState(data: Uint8Array): ConfState | null {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(data));
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const { voters, outgoing, learners } = value as Record<string, unknown>;
  if (!isIdList(voters) || !isIdList(outgoing) || !isIdList(learners)) return null;
  const conf: ConfState = { voters, outgoing, learners };
  return isValidConf(conf) ? conf : null;
}

/** Whether `conf` is well formed: sorted unique lists, a voter, no learner among the voters. */
export function isValidConf(conf: ConfState): boolean {
  for (const list of [conf.voters, conf.outgoing, conf.learners]) {
    if (!isIdList(list)) return false;
    for (let i = 1; i < list.length; i += 1) if (!((list[i - 1] as string) < (list[i] as string))) return false;
  }
  if (conf.voters.length === 0 || conf.voters.length > VOTERS_MAX || conf.outgoing.length > VOTERS_MAX) return false;
  return conf.learners.every((id) => !isVoter(conf, id));
}

/** The longest member id, in UTF-16 code units (the codec's limit too). */
const ID_LENGTH_MAX = 256;

function isIdList(value: unknown): value is NodeId[] {
  return Array.isArray(value) && value.every((id) => typeof id === "string" && id.length > 0 && id.length <= ID_LENGTH_MAX);
}

function sortedUnique(ids: readonly NodeId[]): NodeId[] {
  return [...new Set(ids)].sort();
}

function sameList(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}
