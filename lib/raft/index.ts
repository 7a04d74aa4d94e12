/** The pure Raft core. See DESIGN.md §2. */
export { RaftNode } from "./raw-node.ts";
export type { Ready, SoftState, RaftStatus } from "./raw-node.ts";
export type { Role, RestoredState, RaftCounters, ReadState } from "./raft.ts";
export { resolveConfig, RAFT_CONFIG_DEFAULTS, VOTERS_MAX } from "./config.ts";
export type { RaftConfig, RaftConfigInput } from "./config.ts";
export { MESSAGE_TYPES, ENTRY_OVERHEAD_BYTES, REQUEST_ID_LENGTH_MAX, entryBytes } from "./messages.ts";
export type {
  AppendMessage,
  AppendResponseMessage,
  ConfState,
  Entry,
  EntryType,
  HardState,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  Message,
  MessageType,
  NodeId,
  ReadIndexMessage,
  ReadIndexResponseMessage,
  RequestVoteMessage,
  Snapshot,
  SnapshotMessage,
  SnapshotMeta,
  SnapshotResponseMessage,
  TimeoutNowMessage,
  VoteResponseMessage,
} from "./messages.ts";
export {
  majoritySize,
  committedIndex,
  voteResult,
  isQuorum,
  jointCommittedIndex,
  jointVoteResult,
  jointIsQuorum,
} from "./quorum.ts";
export {
  EMPTY_CONF,
  isJoint,
  isVoter,
  confMembers,
  confVoters,
  sameConf,
  describeConf,
  enterConf,
  leaveConf,
  encodeConfState,
  decodeConfState,
  isValidConf,
} from "./conf.ts";
export type { ConfChangeOp } from "./conf.ts";
export type { VoteResult } from "./quorum.ts";
