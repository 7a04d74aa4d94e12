/**
 * The msgpack codec for Raft messages, log entries and hard state, shared by the WAL and the
 * transports. See `codec.ts` for the wire format.
 */
export {
  CODEC_VERSION,
  DECODE_BYTES_MAX,
  NODE_ID_LENGTH_MAX,
  decodeEntries,
  decodeEntry,
  decodeHardState,
  decodeMessage,
  encodeEntries,
  encodeEntry,
  encodeHardState,
  encodeMessage,
} from "./codec.ts";
export type { DecodeOptions } from "./codec.ts";
