/**
 * Majority math, kept small and pure so that it can be checked against a deliberately naive
 * version (see quorum.test.ts). Joint quorums (issue #4) combine two majorities.
 */
import type { ConfState, NodeId } from "./messages.ts";

/** The outcome of counting votes. */
export type VoteResult = "won" | "lost" | "pending";

/** The smallest number of `voters` that forms a majority. */
export function majoritySize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The highest index that a majority of `voters` has reached, given each voter's acknowledged
 * index (missing voters count as 0). For an empty voter set, returns `Infinity` so that a joint
 * configuration with one empty half is decided by the other half alone.
 */
export function committedIndex(
  voters: readonly NodeId[],
  acked: (id: NodeId) => number,
): number {
  if (voters.length === 0) return Infinity;
  const indexes = voters.map(acked).sort((a, b) => b - a);
  // The majority's lowest member: sorted descending, the element at position (majority - 1).
  return indexes[majoritySize(voters.length) - 1] ?? 0;
}

/**
 * Counts `votes` (voter -> granted?) among `voters`: "won" once a majority granted, "lost" once a
 * majority can no longer be reached, else "pending". Votes from non-voters are ignored.
 */
export function voteResult(
  voters: readonly NodeId[],
  votes: ReadonlyMap<NodeId, boolean>,
): VoteResult {
  if (voters.length === 0) return "won";
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const vote = votes.get(id);
    if (vote === undefined) missing += 1;
    else if (vote) granted += 1;
  }
  const needed = majoritySize(voters.length);
  if (granted >= needed) return "won";
  if (granted + missing >= needed) return "pending";
  return "lost";
}

/** True when the members in `active` include a majority of `voters`. */
export function isQuorum(voters: readonly NodeId[], active: (id: NodeId) => boolean): boolean {
  if (voters.length === 0) return true;
  let count = 0;
  for (const id of voters) if (active(id)) count += 1;
  return count >= majoritySize(voters.length);
}

/**
 * The highest index committed under `conf`: in a joint configuration, the lower of what each half's
 * majority has reached (an empty `outgoing` half imposes nothing).
 */
export function jointCommittedIndex(conf: ConfState, acked: (id: NodeId) => number): number {
  const index = Math.min(committedIndex(conf.voters, acked), committedIndex(conf.outgoing, acked));
  return index === Infinity ? 0 : index;
}

/** Counts votes under `conf`: won when both halves are won, lost when either is lost. */
export function jointVoteResult(conf: ConfState, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const incoming = voteResult(conf.voters, votes);
  const outgoing = voteResult(conf.outgoing, votes);
  if (incoming === "won" && outgoing === "won") return "won";
  if (incoming === "lost" || outgoing === "lost") return "lost";
  return "pending";
}

/** True when `active` includes a majority of each half of `conf`. */
export function jointIsQuorum(conf: ConfState, active: (id: NodeId) => boolean): boolean {
  return isQuorum(conf.voters, active) && isQuorum(conf.outgoing, active);
}
