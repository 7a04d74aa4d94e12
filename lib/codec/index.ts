/**
 * The msgpack codec for Raft messages, log entries, hard state and snapshots, shared by the WAL
 * and the transports. See `codec.ts` for the wire format.
 */
export {
  CODEC_VERSION,
  DECODE_BYTES_MAX,
  NODE_ID_LENGTH_MAX,
  decodeEntries,
  decodeEntry,
  decodeHardState,
  decodeMessage,
  decodePlain,
  decodeSnapshot,
  encodeEntries,
  encodeEntry,
  encodeHardState,
  encodeMessage,
  encodeMessageWithPrefix,
  encodePlain,
  encodeSnapshot,
} from "./codec.ts";
export type { DecodeOptions } from "./codec.ts";
