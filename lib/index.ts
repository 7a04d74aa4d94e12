/**
 * orrery: exactly-one ownership of resources on top of Raft, proven by deterministic simulation.
 *
 * This entry point exports the pure Raft core, the codec and the errors users handle. Adapters
 * (transports, file storage, the simulator) come as subpath exports as they land.
 */
export {
  RaftNode,
  resolveConfig,
  RAFT_CONFIG_DEFAULTS,
  VOTERS_MAX,
  MESSAGE_TYPES,
  ENTRY_OVERHEAD_BYTES,
  REQUEST_ID_LENGTH_MAX,
  entryBytes,
  majoritySize,
  committedIndex,
  voteResult,
  isQuorum,
} from "./raft/index.ts";
export type {
  Ready,
  SoftState,
  RaftStatus,
  Role,
  RestoredState,
  RaftCounters,
  ReadState,
  RaftConfig,
  RaftConfigInput,
  AppendMessage,
  AppendResponseMessage,
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
  TimeoutNowMessage,
  VoteResponseMessage,
  VoteResult,
} from "./raft/index.ts";
export {
  encodeMessage,
  decodeMessage,
  encodeEntry,
  decodeEntry,
  encodeEntries,
  decodeEntries,
  encodeHardState,
  decodeHardState,
  CODEC_VERSION,
  DECODE_BYTES_MAX,
  NODE_ID_LENGTH_MAX,
} from "./codec/index.ts";
export type { DecodeOptions } from "./codec/index.ts";
export {
  OrreryError,
  NotLeaderError,
  ProposalDroppedError,
  ConfigError,
  CodecError,
  TimeoutError,
  InvalidRequestError,
} from "./errors.ts";
export type { OrreryErrorCode, DropReason } from "./errors.ts";
export { AssertionFailure } from "./assert.ts";
