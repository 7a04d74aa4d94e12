/**
 * The data the Raft core exchanges: log entries, the hard state a member persists, and the
 * messages members send each other. Messages form one discriminated union keyed on `type`; every
 * `switch` over it ends in an exhaustiveness check.
 */

/** A member's id, e.g. `"n1"`. Ids are compared as strings and sorted with `<`. */
export type NodeId = string;

/**
 * The kinds of log entry: `normal` entries carry the host's commands; `confChange` entries carry a
 * new membership configuration (see {@link ConfState}), which takes effect when applied.
 */
export type EntryType = "normal" | "confChange";

/**
 * One log entry. `data` is opaque to Raft for `normal` entries (a new leader appends one with empty
 * `data`); for `confChange` entries it is the encoded configuration (`decodeConfState`).
 */
export interface Entry {
  /** The term of the leader that created the entry. */
  readonly term: number;
  /** The position in the log, from 1. */
  readonly index: number;
  /** What the entry carries. */
  readonly type: EntryType;
  /** The command, as bytes the state machine understands. */
  readonly data: Uint8Array;
}

/** What a member must persist before it sends any message that depends on it. */
export interface HardState {
  /** The latest term this member has seen. */
  readonly term: number;
  /** Whom this member voted for in `term`, or `null`. */
  readonly vote: NodeId | null;
  /** The highest log index known to be committed. */
  readonly commit: number;
}

/**
 * A membership configuration. Outside a change it is just `voters` (and `learners`). During a
 * joint-consensus change (C_old,new) `voters` are the new voters and `outgoing` the old ones:
 * elections and commits then need a majority of each. All lists are sorted, without duplicates,
 * and no member is both a voter (of either half) and a learner.
 */
export interface ConfState {
  /** The voters (in a joint configuration: the incoming voters, C_new). */
  readonly voters: readonly NodeId[];
  /** In a joint configuration the outgoing voters (C_old); empty otherwise. */
  readonly outgoing: readonly NodeId[];
  /** Members that receive the log but do not vote, e.g. new members catching up. */
  readonly learners: readonly NodeId[];
}

/** Describes a snapshot: the state machine's state after applying entries up to `index`. */
export interface SnapshotMeta {
  /** The last log index the snapshot covers. */
  readonly index: number;
  /** The term of the entry at `index`. */
  readonly term: number;
  /** The configuration in effect after applying entries up to `index`. */
  readonly config: ConfState;
  /**
   * The member whose state machine produced the bytes. A snapshot is identified by
   * (`index`, `term`, `origin`), so that a transfer interrupted by a leader change resumes only
   * when the new leader sends the very same bytes.
   */
  readonly origin: NodeId;
}

/** A snapshot: its description and the state machine's bytes. */
export interface Snapshot extends SnapshotMeta {
  readonly data: Uint8Array;
}

/** Fields every message carries. */
interface MessageBase {
  /** The sender. */
  readonly from: NodeId;
  /** The addressee. */
  readonly to: NodeId;
  /**
   * The sender's term; for `requestPreVote` the term the sender would campaign in, and for a
   * granted `preVoteResponse` the term it grants.
   */
  readonly term: number;
}

/** Leader -> follower: entries following (`prevIndex`, `prevTerm`), and the leader's commit index. */
export interface AppendMessage extends MessageBase {
  readonly type: "append";
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
}

/**
 * Follower -> leader: the answer to an `append`. When accepted, `index` is the last index now known
 * to match the leader's log. When rejected, `index` is the `prevIndex` that did not match, and
 * (`rejectHint`, `rejectHintTerm`) is the follower's last entry at or below it whose term is at most
 * the leader's `prevTerm`: the leader can skip a whole conflicting term in one round trip.
 */
export interface AppendResponseMessage extends MessageBase {
  readonly type: "appendResponse";
  readonly index: number;
  readonly reject: boolean;
  readonly rejectHint: number;
  readonly rejectHintTerm: number;
}

/**
 * Leader -> follower: "I am still leader"; carries a commit index the follower can safely use, and
 * the leader's latest read round (0: none), which the follower echoes so that the leader can
 * confirm its leadership for the reads of that round (ReadIndex).
 */
export interface HeartbeatMessage extends MessageBase {
  readonly type: "heartbeat";
  readonly commit: number;
  readonly round: number;
}

/** Follower -> leader: the answer to a heartbeat, echoing its read round. */
export interface HeartbeatResponseMessage extends MessageBase {
  readonly type: "heartbeatResponse";
  readonly round: number;
}

/** Follower -> leader: a linearizable read request, to be answered with a read index. */
export interface ReadIndexMessage extends MessageBase {
  readonly type: "readIndex";
  /** The host's id for the read, returned in the `ReadState`. */
  readonly requestId: string;
}

/** Leader -> follower: the read index for `requestId`, once the leader confirmed its leadership. */
export interface ReadIndexResponseMessage extends MessageBase {
  readonly type: "readIndexResponse";
  readonly requestId: string;
  readonly index: number;
}

/**
 * Candidate -> voter: a request for a vote (`requestVote`) or, before a real election, for a
 * non-binding pre-vote (`requestPreVote`) that changes no one's term.
 */
export interface RequestVoteMessage extends MessageBase {
  readonly type: "requestVote" | "requestPreVote";
  readonly lastIndex: number;
  readonly lastTerm: number;
  /**
   * Set when the election was started by a leadership transfer: voters grant it even if they heard
   * from the current leader recently, since that leader asked for it.
   */
  readonly transfer: boolean;
}

/** Voter -> candidate: the answer to `requestVote` or `requestPreVote`. */
export interface VoteResponseMessage extends MessageBase {
  readonly type: "voteResponse" | "preVoteResponse";
  readonly reject: boolean;
}

/**
 * Leader -> follower: one chunk of a snapshot, for a follower that needs entries the leader has
 * compacted away. Chunks follow each other by `offset`; the last has `done`. The total size is not
 * sent: a leader may stream a snapshot it has not finished reading.
 */
export interface SnapshotMessage extends MessageBase {
  readonly type: "snapshot";
  /** The snapshot's last index. */
  readonly index: number;
  /** The term of the entry at `index`. */
  readonly snapshotTerm: number;
  /** The member whose state machine produced the bytes (see {@link SnapshotMeta.origin}). */
  readonly origin: NodeId;
  /** The configuration after `index`. */
  readonly config: ConfState;
  /** Where `data` begins within the snapshot's bytes. */
  readonly offset: number;
  readonly data: Uint8Array;
  /** Whether this chunk ends the snapshot. */
  readonly done: boolean;
}

/**
 * Follower -> leader: how many bytes of snapshot `index` the follower holds (`offset`). It answers
 * every chunk, so a leader that sees an offset below what it sent resends from there (a chunk was
 * lost), and a new leader resumes a transfer its predecessor began. Once the follower has installed
 * the snapshot it answers with an `appendResponse` instead.
 */
export interface SnapshotResponseMessage extends MessageBase {
  readonly type: "snapshotResponse";
  readonly index: number;
  readonly offset: number;
  /** Set when the chunk did not follow on from `offset`: the leader resends from there. */
  readonly reject: boolean;
}

/** Leader -> transfer target: "campaign now", the last step of a leadership transfer. */
export interface TimeoutNowMessage extends MessageBase {
  readonly type: "timeoutNow";
}

/** Every message one member sends another. */
export type Message =
  | AppendMessage
  | AppendResponseMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | RequestVoteMessage
  | VoteResponseMessage
  | TimeoutNowMessage
  | ReadIndexMessage
  | ReadIndexResponseMessage
  | SnapshotMessage
  | SnapshotResponseMessage;

/** The `type` of every message. */
export type MessageType = Message["type"];

/** All message types, in a fixed order (the codec numbers them by this order). */
export const MESSAGE_TYPES: readonly MessageType[] = [
  "append",
  "appendResponse",
  "heartbeat",
  "heartbeatResponse",
  "requestVote",
  "requestPreVote",
  "voteResponse",
  "preVoteResponse",
  "timeoutNow",
  "readIndex",
  "readIndexResponse",
  "snapshot",
  "snapshotResponse",
];

/** The longest read request id, in UTF-16 code units. */
export const REQUEST_ID_LENGTH_MAX = 256;

/** Bytes an entry is counted as beyond its data, for size limits (term, index, type, framing). */
export const ENTRY_OVERHEAD_BYTES = 24;

/** The size an entry counts for against byte limits. */
export function entryBytes(entry: Entry): number {
  return entry.data.byteLength + ENTRY_OVERHEAD_BYTES;
}
