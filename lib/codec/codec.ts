/**
 * The msgpack encoding of the Raft core's data: messages, log entries and hard state. The WAL and
 * every transport share it, so a byte string that one member wrote is read the same way by all.
 *
 * Wire format, version {@link CODEC_VERSION}. Every encoding is one msgpack array whose first
 * element is the version:
 *
 * ```
 * message     [version, typeCode, from, to, term, ...body]
 * entry       [version, term, index, entryTypeCode, data]
 * entries     [version, [[term, index, entryTypeCode, data], ...]]
 * hard state  [version, term, vote | nil, commit]
 * snapshot    [version, index, term, origin, config, data]
 * config      [[voter, ...], [outgoing voter, ...], [learner, ...]]
 * ```
 *
 * A message's `typeCode` is its type's position in `MESSAGE_TYPES`, and its body is the fields of
 * its type in the order `MESSAGE_BODIES` lists them (an entry inside an `append` is the
 * 4-tuple without a version). Arrays rather than maps keep the encoding small and leave no room for
 * missing or extra keys.
 *
 * A configuration (`ConfState`, inside a snapshot and a `snapshot` message) must be valid by
 * `isValidConf`: sorted lists without duplicates, at least one voter, no learner that votes. The
 * data of a `confChange` entry is opaque here, like any entry's.
 *
 * Decoding is total: any input that is not a valid encoding raises a {@link CodecError} naming
 * where the problem is, and nothing half-decoded is ever returned. Decoded values carry exactly the
 * fields of their TypeScript type, and byte fields are plain `Uint8Array`s that own their memory.
 *
 * Pure: no I/O, no clock, no randomness.
 */
import { Packr, Unpackr } from "msgpackr";
import { AssertionFailure, assert } from "../assert.ts";
import { CodecError } from "../errors.ts";
import { isValidConf, isVoter } from "../raft/conf.ts";
import { VOTERS_MAX } from "../raft/config.ts";
import {
  MESSAGE_TYPES,
  REQUEST_ID_LENGTH_MAX,
  type AppendMessage,
  type ConfState,
  type Entry,
  type EntryType,
  type HardState,
  type Message,
  type MessageType,
  type NodeId,
  type RequestVoteMessage,
  type Snapshot,
  type SnapshotMessage,
} from "../raft/messages.ts";

/**
 * The version of the wire format, the first element of every encoding. Decoders refuse any other
 * version. Changing a layout below (the order of fields, a type code) means incrementing it.
 */
export const CODEC_VERSION = 1;

/**
 * The default limit on the size of an input a decoder accepts, in bytes (64 MiB). Larger inputs
 * are refused before they are parsed.
 */
export const DECODE_BYTES_MAX = 64 * 1024 * 1024;

/** The longest node id the codec accepts, in UTF-16 code units. Ids are never empty. */
export const NODE_ID_LENGTH_MAX = 256;

/** Options every decoder takes. */
export interface DecodeOptions {
  /**
   * Inputs longer than this many bytes are refused with a {@link CodecError} before parsing.
   * Must be a positive safe integer.
   * @defaultValue {@link DECODE_BYTES_MAX}
   */
  readonly bytesMax?: number;
}

// ---------------------------------------------------------------------------------------------
// msgpackr, configured so that encoding is deterministic and decoding sees only plain data.

const MSGPACK_OPTIONS = {
  // Records would put shared structure definitions on the wire; every encoding is self-contained.
  useRecords: false,
  structuredClone: false,
  moreTypes: false,
  bundleStrings: false,
  mapsAsObjects: true,
  // 64-bit integers decode to numbers; any beyond 2^53 fails the safe-integer checks below.
  int64AsType: "number",
  // Byte fields are copied out of the input, so a decoded entry never pins or aliases a frame.
  copyBuffers: true,
} as const;

const packr = new Packr(MSGPACK_OPTIONS);
const unpackr = new Unpackr(MSGPACK_OPTIONS);

// ---------------------------------------------------------------------------------------------
// Fields: how one value travels, and how it is checked when it comes back.

/** How one field travels. Each field is a small codec of its own. */
interface Field<V> {
  /** The msgpack form of `value`. */
  toWire(value: V): unknown;
  /** Checks the msgpack value `wire` and returns the field's value; throws CodecError at `path`. */
  fromWire(wire: unknown, path: string): V;
}

/** A term or log index: a non-negative safe integer. */
const natural: Field<number> = {
  toWire: (value) => value,
  fromWire(wire, path) {
    if (typeof wire !== "number" || !Number.isSafeInteger(wire) || wire < 0) {
      throw new CodecError(path, `is ${describe(wire)}; expected a non-negative safe integer`);
    }
    // A float64 -0 passes the checks above; it re-encodes as 0, so it decodes as 0.
    return wire === 0 ? 0 : wire;
  },
};

const term = natural;
const index = natural;

/** A snapshot's last index: from 1, since a snapshot that covers no entry is no snapshot. */
const snapshotIndex: Field<number> = {
  toWire: (value) => value,
  fromWire(wire, path) {
    const value = index.fromWire(wire, path);
    if (value < 1) throw new CodecError(path, "is 0; a snapshot covers at least index 1");
    return value;
  },
};

const boolean: Field<boolean> = {
  toWire: (value) => value,
  fromWire(wire, path) {
    if (typeof wire !== "boolean") {
      throw new CodecError(path, `is ${describe(wire)}; expected a boolean`);
    }
    return wire;
  },
};

/** Lone surrogates have no UTF-8 form: msgpack cannot carry them, so they never come back equal. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

const nodeId: Field<NodeId> = {
  toWire: (value) => value,
  fromWire(wire, path) {
    if (typeof wire !== "string") {
      throw new CodecError(path, `is ${describe(wire)}; expected a node id string`);
    }
    if (wire.length === 0 || wire.length > NODE_ID_LENGTH_MAX) {
      throw new CodecError(
        path,
        `is ${wire.length} characters long; expected 1 to ${NODE_ID_LENGTH_MAX}`,
      );
    }
    if (LONE_SURROGATE.test(wire)) {
      throw new CodecError(path, "contains a lone UTF-16 surrogate");
    }
    return wire;
  },
};

/** A read request's id: a string of 1 to `REQUEST_ID_LENGTH_MAX` characters. */
const requestId: Field<string> = {
  toWire: (value) => value,
  fromWire(wire, path) {
    if (typeof wire !== "string" || wire.length === 0 || wire.length > REQUEST_ID_LENGTH_MAX) {
      throw new CodecError(path, `is ${describe(wire)}; expected a string of 1 to ${REQUEST_ID_LENGTH_MAX} characters`);
    }
    if (LONE_SURROGATE.test(wire)) throw new CodecError(path, "contains a lone UTF-16 surrogate");
    return wire;
  },
};

const vote: Field<NodeId | null> = {
  toWire: (value) => value,
  fromWire: (wire, path) => (wire === null ? null : nodeId.fromWire(wire, path)),
};

const bytes: Field<Uint8Array> = {
  toWire: (value) => value,
  fromWire(wire, path) {
    if (!(wire instanceof Uint8Array)) {
      throw new CodecError(path, `is ${describe(wire)}; expected bytes`);
    }
    // Subclasses (a Node Buffer) become a plain Uint8Array, so decoded values compare equal to
    // the Uint8Arrays they were made from.
    return wire.constructor === Uint8Array ? wire : new Uint8Array(wire);
  },
};

// ---------------------------------------------------------------------------------------------
// Entries.

/**
 * The code of each entry type on the wire. Codes are dense from 0, and the mapped type makes the
 * compiler ask for a code whenever `EntryType` grows.
 */
const ENTRY_TYPE_CODES: { readonly [T in EntryType]: number } = { normal: 0, confChange: 1 };

const ENTRY_TYPES_BY_CODE: readonly EntryType[] = invertCodes(ENTRY_TYPE_CODES);

const ENTRY_TUPLE_LENGTH = 4;

function entryToTuple(entry: Entry): unknown[] {
  return [entry.term, entry.index, ENTRY_TYPE_CODES[entry.type], entry.data];
}

/** Reads the four entry fields from `tuple` starting at `offset`. */
function entryFromTuple(tuple: readonly unknown[], offset: number, path: string): Entry {
  const entryTerm = term.fromWire(tuple[offset], `${path}.term`);
  const entryIndex = index.fromWire(tuple[offset + 1], `${path}.index`);
  if (entryIndex < 1) {
    throw new CodecError(`${path}.index`, "is 0; log indexes start at 1");
  }
  return {
    term: entryTerm,
    index: entryIndex,
    type: entryTypeFromWire(tuple[offset + 2], `${path}.type`),
    data: bytes.fromWire(tuple[offset + 3], `${path}.data`),
  };
}

/**
 * The common case of {@link entryFromTuple} without building a path string per field: the entry
 * when `wire` is a well-formed tuple the slow path would return unchanged, else `null` (and the
 * slow path then finds and names the fault). Entries are checked on every encode and decode, so
 * this is on the hot path of both the WAL and the transports.
 */
function validEntryTuple(wire: unknown): Entry | null {
  if (!Array.isArray(wire) || wire.length !== ENTRY_TUPLE_LENGTH) return null;
  const [t, i, code, data] = wire as [unknown, unknown, unknown, unknown];
  if (typeof t !== "number" || !Number.isSafeInteger(t) || t < 0 || Object.is(t, -0)) return null;
  if (typeof i !== "number" || !Number.isSafeInteger(i) || i < 1) return null;
  const type = typeof code === "number" ? ENTRY_TYPES_BY_CODE[code] : undefined;
  if (type === undefined || !(data instanceof Uint8Array) || data.constructor !== Uint8Array) return null;
  return { term: t, index: i, type, data };
}

function entryTypeFromWire(wire: unknown, path: string): EntryType {
  const type = typeof wire === "number" ? ENTRY_TYPES_BY_CODE[wire] : undefined;
  if (type === undefined) {
    throw new CodecError(path, `is ${describe(wire)}; expected an entry type code`);
  }
  return type;
}

/** A list of entries, each an `[term, index, entryTypeCode, data]` tuple. */
const entries: Field<readonly Entry[]> = {
  toWire: (value) =>
    Array.isArray(value) ? value.map((entry: Entry) => tolerantEntryToTuple(entry)) : value,
  fromWire(wire, path) {
    if (!Array.isArray(wire)) {
      throw new CodecError(path, `is ${describe(wire)}; expected an array of entries`);
    }
    const decoded: Entry[] = [];
    for (let i = 0; i < wire.length; i++) {
      const fast = validEntryTuple(wire[i]);
      if (fast !== null) {
        decoded.push(fast);
        continue;
      }
      const tuple = tupleFromWire(wire[i], `${path}[${i}]`, ENTRY_TUPLE_LENGTH);
      decoded.push(entryFromTuple(tuple, 0, `${path}[${i}]`));
    }
    return decoded;
  },
};

/** Like entryToTuple, but leaves a non-object as it is for the check after it to reject. */
function tolerantEntryToTuple(entry: Entry): unknown {
  return typeof entry === "object" && entry !== null ? entryToTuple(entry) : entry;
}

/**
 * Checks that `run` continues a log after (`prevIndex`, `prevTerm`): indexes consecutive from
 * `prevIndex + 1`, terms never decreasing (a Raft log's terms never do) and at most `termMax`.
 */
function checkRun(
  run: readonly Entry[],
  prevIndex: number,
  prevTerm: number,
  termMax: number,
  path: string,
): void {
  let lastTerm = prevTerm;
  for (let i = 0; i < run.length; i++) {
    const entry = run[i]!;
    const expected = prevIndex + 1 + i;
    if (entry.index !== expected) {
      throw new CodecError(
        `${path}[${i}].index`,
        `is ${entry.index}; expected ${expected} (entries are consecutive after ${prevIndex})`,
      );
    }
    if (entry.term < lastTerm) {
      throw new CodecError(`${path}[${i}].term`, `is ${entry.term}, below ${lastTerm} before it`);
    }
    if (entry.term > termMax) {
      throw new CodecError(`${path}[${i}].term`, `is ${entry.term}, above the term ${termMax}`);
    }
    lastTerm = entry.term;
  }
}

/** Index 0 is the empty log's sentinel and has term 0; no real entry has index 0. */
function checkLogPosition(lastIndex: number, lastTerm: number, path: string): void {
  if (lastIndex === 0 && lastTerm !== 0) {
    throw new CodecError(path, `is ${lastTerm}, but the position is index 0, whose term is 0`);
  }
}

function checkTermAtMost(value: number, termMax: number, path: string): void {
  if (value > termMax) {
    throw new CodecError(path, `is ${value}, above the message term ${termMax}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Configurations.

const CONF_TUPLE_LENGTH = 3;

/**
 * A membership configuration as `[voters, outgoing, learners]`. The rules of `isValidConf` are
 * checked one by one so that an error names the offending id; `isValidConf` itself runs last, so
 * that the codec never accepts a configuration the core would refuse, even when its rules grow.
 */
const config: Field<ConfState> = {
  // A non-object is left as it is for the check after it to reject.
  toWire: (value) =>
    typeof value === "object" && value !== null
      ? [value.voters, value.outgoing, value.learners]
      : value,
  fromWire(wire, path) {
    const tuple = tupleFromWire(wire, path, CONF_TUPLE_LENGTH);
    const conf: ConfState = {
      voters: idListFromWire(tuple[0], `${path}.voters`, VOTERS_MAX),
      outgoing: idListFromWire(tuple[1], `${path}.outgoing`, VOTERS_MAX),
      // Learners have no limit of their own: they are bounded by the input's bytesMax.
      learners: idListFromWire(tuple[2], `${path}.learners`, Number.MAX_SAFE_INTEGER),
    };
    if (conf.voters.length === 0) {
      throw new CodecError(`${path}.voters`, "is empty; a configuration has at least one voter");
    }
    for (let i = 0; i < conf.learners.length; i++) {
      const learner = conf.learners[i]!;
      if (isVoter(conf, learner)) {
        const why = `is ${describe(learner)}, who is also a voter`;
        throw new CodecError(`${path}.learners[${i}]`, why);
      }
    }
    if (!isValidConf(conf)) {
      throw new CodecError(path, "is not a valid configuration (isValidConf)");
    }
    return conf;
  },
};

/** A list of at most `lengthMax` node ids, sorted with `<` and without duplicates. */
function idListFromWire(wire: unknown, path: string, lengthMax: number): NodeId[] {
  if (!Array.isArray(wire)) {
    throw new CodecError(path, `is ${describe(wire)}; expected an array of node ids`);
  }
  if (wire.length > lengthMax) {
    throw new CodecError(path, `lists ${wire.length} ids; at most ${lengthMax}`);
  }
  const ids: NodeId[] = [];
  for (let i = 0; i < wire.length; i++) {
    const id = nodeId.fromWire(wire[i], `${path}[${i}]`);
    const before = ids[i - 1];
    if (before !== undefined && !(before < id)) {
      throw new CodecError(
        `${path}[${i}]`,
        `is ${describe(id)}, not after ${describe(before)}; ids are sorted without duplicates`,
      );
    }
    ids.push(id);
  }
  return ids;
}

// ---------------------------------------------------------------------------------------------
// Messages.

/** The message variant whose `type` may be `T`. */
type MessageOf<T extends MessageType> = Message extends infer M
  ? M extends { readonly type: infer U }
    ? T extends U
      ? M
      : never
    : never
  : never;

/** The fields every message carries, encoded before the body. */
type HeaderKey = "type" | "from" | "to" | "term";

type BodyKey<T extends MessageType> = Exclude<keyof MessageOf<T>, HeaderKey>;

/** How one message type travels: its body fields and the checks across them. */
interface MessageSpec<T extends MessageType> {
  /** Every body field, in wire order: the order of the keys here is the order on the wire. */
  readonly body: { readonly [K in BodyKey<T>]-?: Field<MessageOf<T>[K]> };
  /** Checks across fields of a decoded message, beyond each field's own. */
  readonly check?: (message: MessageOf<T>, path: string) => void;
}

function checkAppend(message: AppendMessage, path: string): void {
  checkTermAtMost(message.prevTerm, message.term, `${path}.prevTerm`);
  checkLogPosition(message.prevIndex, message.prevTerm, `${path}.prevTerm`);
  checkRun(message.entries, message.prevIndex, message.prevTerm, message.term, `${path}.entries`);
}

function checkVoteRequest(message: RequestVoteMessage, path: string): void {
  checkTermAtMost(message.lastTerm, message.term, `${path}.lastTerm`);
  checkLogPosition(message.lastIndex, message.lastTerm, `${path}.lastTerm`);
}

function checkSnapshotChunk(message: SnapshotMessage, path: string): void {
  // The snapshot ends at an entry of the sender's log, so its term is at most the sender's.
  checkTermAtMost(message.snapshotTerm, message.term, `${path}.snapshotTerm`);
  // Offsets stay exact: the chunk must end at a position a number can hold.
  if (message.offset > Number.MAX_SAFE_INTEGER - message.data.byteLength) {
    const why = `is ${message.offset}, and its ${message.data.byteLength} bytes end past 2^53 - 1`;
    throw new CodecError(`${path}.offset`, why);
  }
}

/**
 * Every message type's layout. Adding a message type means adding its entry here (the compiler
 * insists) and its name to `MESSAGE_TYPES`; the type code is its position there.
 */
const MESSAGE_BODIES: { readonly [T in MessageType]: MessageSpec<T> } = {
  append: {
    body: { prevIndex: index, prevTerm: term, entries, commit: index },
    check: checkAppend,
  },
  appendResponse: {
    body: { index, reject: boolean, rejectHint: index, rejectHintTerm: term },
  },
  heartbeat: { body: { commit: index, round: natural } },
  heartbeatResponse: { body: { round: natural } },
  requestVote: {
    body: { lastIndex: index, lastTerm: term, transfer: boolean },
    check: checkVoteRequest,
  },
  requestPreVote: {
    body: { lastIndex: index, lastTerm: term, transfer: boolean },
    check: checkVoteRequest,
  },
  voteResponse: { body: { reject: boolean } },
  preVoteResponse: { body: { reject: boolean } },
  timeoutNow: { body: {} },
  readIndex: { body: { requestId } },
  readIndexResponse: { body: { requestId, index } },
  snapshot: {
    body: {
      index: snapshotIndex,
      snapshotTerm: term,
      origin: nodeId,
      config,
      offset: natural,
      data: bytes,
      done: boolean,
    },
    check: checkSnapshotChunk,
  },
  snapshotResponse: { body: { index: snapshotIndex, offset: natural, reject: boolean } },
};

/** One message type's layout, flattened for the encoder and decoder. */
interface Layout {
  readonly type: MessageType;
  readonly code: number;
  readonly names: readonly string[];
  readonly fields: readonly Field<unknown>[];
  readonly check: (message: Message, path: string) => void;
}

const HEADER_LENGTH = 5; // version, typeCode, from, to, term

const LAYOUTS: readonly Layout[] = MESSAGE_TYPES.map((type, code) => {
  const spec = MESSAGE_BODIES[type] as {
    readonly body: Readonly<Record<string, Field<unknown>>>;
    readonly check?: (message: Message, path: string) => void;
  };
  return {
    type,
    code,
    names: Object.keys(spec.body),
    fields: Object.values(spec.body),
    check: spec.check ?? (() => {}),
  };
});

const LAYOUT_BY_TYPE: ReadonlyMap<MessageType, Layout> = new Map(
  LAYOUTS.map((layout) => [layout.type, layout]),
);

assert(LAYOUT_BY_TYPE.size === MESSAGE_TYPES.length, "MESSAGE_TYPES has no duplicates");
assert(
  LAYOUT_BY_TYPE.size === Object.keys(MESSAGE_BODIES).length,
  "every message type in MESSAGE_BODIES is in MESSAGE_TYPES",
);

function messageToWire(message: Message): unknown[] {
  const layout = LAYOUT_BY_TYPE.get(message.type);
  assert(layout !== undefined, () => `encodeMessage: unknown message type ${describe(message.type)}`);
  const wire: unknown[] = [CODEC_VERSION, layout.code, message.from, message.to, message.term];
  const fields = message as unknown as Readonly<Record<string, unknown>>;
  for (let i = 0; i < layout.fields.length; i++) {
    wire.push(layout.fields[i]!.toWire(fields[layout.names[i]!]));
  }
  return wire;
}

function messageFromWire(wire: unknown, path: string): Message {
  const head = versionedFromWire(wire, path, 2);
  const layout = typeof head[1] === "number" ? LAYOUTS[head[1]] : undefined;
  if (layout === undefined) {
    throw new CodecError(`${path}.type`, `is ${describe(head[1])}; expected a message type code`);
  }
  const tuple = tupleFromWire(wire, path, HEADER_LENGTH + layout.fields.length, layout.type);
  const message: Record<string, unknown> = {
    type: layout.type,
    from: nodeId.fromWire(tuple[2], `${path}.from`),
    to: nodeId.fromWire(tuple[3], `${path}.to`),
    term: term.fromWire(tuple[4], `${path}.term`),
  };
  for (let i = 0; i < layout.fields.length; i++) {
    const name = layout.names[i]!;
    message[name] = layout.fields[i]!.fromWire(tuple[HEADER_LENGTH + i], `${path}.${name}`);
  }
  layout.check(message as unknown as Message, path);
  return message as unknown as Message;
}

// ---------------------------------------------------------------------------------------------
// Top-level values.

function entryFromWire(wire: unknown, path: string): Entry {
  const tuple = tupleFromWire(versionedFromWire(wire, path, 1), path, 1 + ENTRY_TUPLE_LENGTH);
  return entryFromTuple(tuple, 1, path);
}

function entriesFromWire(wire: unknown, path: string): Entry[] {
  const tuple = tupleFromWire(versionedFromWire(wire, path, 1), path, 2);
  const run = entries.fromWire(tuple[1], path) as Entry[];
  const first = run[0];
  if (first !== undefined) {
    checkRun(run, first.index - 1, first.term, Number.MAX_SAFE_INTEGER, path);
  }
  return run;
}

function hardStateFromWire(wire: unknown, path: string): HardState {
  const tuple = tupleFromWire(versionedFromWire(wire, path, 1), path, 4);
  const hardState: HardState = {
    term: term.fromWire(tuple[1], `${path}.term`),
    vote: vote.fromWire(tuple[2], `${path}.vote`),
    commit: index.fromWire(tuple[3], `${path}.commit`),
  };
  if (hardState.vote !== null && hardState.term === 0) {
    throw new CodecError(`${path}.vote`, "is set in term 0, but elections start at term 1");
  }
  return hardState;
}

const SNAPSHOT_TUPLE_LENGTH = 6; // version, index, term, origin, config, data

function snapshotFromWire(wire: unknown, path: string): Snapshot {
  const tuple = tupleFromWire(versionedFromWire(wire, path, 1), path, SNAPSHOT_TUPLE_LENGTH);
  return {
    index: snapshotIndex.fromWire(tuple[1], `${path}.index`),
    term: term.fromWire(tuple[2], `${path}.term`),
    origin: nodeId.fromWire(tuple[3], `${path}.origin`),
    config: config.fromWire(tuple[4], `${path}.config`),
    data: bytes.fromWire(tuple[5], `${path}.data`),
  };
}

/**
 * Encodes a Raft message as `[version, typeCode, from, to, term, ...body]`.
 * @throws AssertionFailure if `message` is not valid (decoding it would fail): a bug in the caller.
 */
export function encodeMessage(message: Message): Uint8Array {
  const wire = messageToWire(message);
  checkBeforeEncoding(wire, "message", messageFromWire);
  return pack(wire);
}

/**
 * {@link encodeMessage} with `prefixBytes` zeroed bytes in front of the encoding, for a
 * transport's frame header: one copy of the message instead of two on the hot path.
 * @throws AssertionFailure as `encodeMessage` does.
 */
export function encodeMessageWithPrefix(message: Message, prefixBytes: number): Uint8Array {
  assert(Number.isSafeInteger(prefixBytes) && prefixBytes >= 0, "prefixBytes is a non-negative integer");
  const wire = messageToWire(message);
  checkBeforeEncoding(wire, "message", messageFromWire);
  const packed = packr.pack(wire);
  const out = new Uint8Array(prefixBytes + packed.length);
  out.set(packed, prefixBytes);
  return out;
}

/**
 * Decodes a message that {@link encodeMessage} produced.
 * @throws CodecError if `bytes` is not exactly one valid message encoding of at most `bytesMax`
 * bytes.
 */
export function decodeMessage(bytes: Uint8Array, options?: DecodeOptions): Message {
  return messageFromWire(unpack(bytes, "message", options), "message");
}

/**
 * Encodes one log entry as `[version, term, index, entryTypeCode, data]`.
 * @throws AssertionFailure if `entry` is not valid.
 */
export function encodeEntry(entry: Entry): Uint8Array {
  const wire = [CODEC_VERSION, ...entryToTuple(entry)];
  checkBeforeEncoding(wire, "entry", entryFromWire);
  return pack(wire);
}

/**
 * Decodes an entry that {@link encodeEntry} produced.
 * @throws CodecError if `bytes` is not exactly one valid entry encoding of at most `bytesMax`
 * bytes.
 */
export function decodeEntry(bytes: Uint8Array, options?: DecodeOptions): Entry {
  return entryFromWire(unpack(bytes, "entry", options), "entry");
}

/**
 * Encodes a run of log entries (consecutive indexes, terms never decreasing; possibly empty) as
 * `[version, [[term, index, entryTypeCode, data], ...]]`.
 * @throws AssertionFailure if `run` is not a valid run of entries.
 */
export function encodeEntries(run: readonly Entry[]): Uint8Array {
  const wire = [CODEC_VERSION, entries.toWire(run)];
  checkBeforeEncoding(wire, "entries", entriesFromWire);
  return pack(wire);
}

/**
 * Decodes a run of entries that {@link encodeEntries} produced.
 * @throws CodecError if `bytes` is not exactly one valid encoding of a run of entries, of at most
 * `bytesMax` bytes.
 */
export function decodeEntries(bytes: Uint8Array, options?: DecodeOptions): Entry[] {
  return entriesFromWire(unpack(bytes, "entries", options), "entries");
}

/**
 * Encodes a hard state as `[version, term, vote | nil, commit]`.
 * @throws AssertionFailure if `hardState` is not valid.
 */
export function encodeHardState(hardState: HardState): Uint8Array {
  const wire = [CODEC_VERSION, hardState.term, hardState.vote, hardState.commit];
  checkBeforeEncoding(wire, "hardState", hardStateFromWire);
  return pack(wire);
}

/**
 * Decodes a hard state that {@link encodeHardState} produced.
 * @throws CodecError if `bytes` is not exactly one valid hard state encoding of at most `bytesMax`
 * bytes.
 */
export function decodeHardState(bytes: Uint8Array, options?: DecodeOptions): HardState {
  return hardStateFromWire(unpack(bytes, "hardState", options), "hardState");
}

/**
 * Encodes a snapshot, its description and the state machine's bytes, as
 * `[version, index, term, origin, config, data]`, for storage (the WAL's snapshot file, the
 * simulator's disk). Transports send snapshots in chunks, as `snapshot` messages, instead.
 *
 * The encoding holds a copy of `data` whole in memory. A snapshot over {@link DECODE_BYTES_MAX}
 * bytes encodes, but reading it back needs a larger `bytesMax`.
 * @throws AssertionFailure if `snapshot` is not valid: an index below 1, a term or origin that is
 * not one, or a configuration that `isValidConf` refuses.
 */
export function encodeSnapshot(snapshot: Snapshot): Uint8Array {
  const wire = [
    CODEC_VERSION,
    snapshot.index,
    snapshot.term,
    snapshot.origin,
    config.toWire(snapshot.config),
    snapshot.data,
  ];
  checkBeforeEncoding(wire, "snapshot", snapshotFromWire);
  return pack(wire);
}

/**
 * Decodes a snapshot that {@link encodeSnapshot} produced. The decoded `data` is a plain
 * `Uint8Array` that owns its memory.
 * @throws CodecError if `bytes` is not exactly one valid snapshot encoding of at most `bytesMax`
 * bytes.
 */
export function decodeSnapshot(bytes: Uint8Array, options?: DecodeOptions): Snapshot {
  return snapshotFromWire(unpack(bytes, "snapshot", options), "snapshot");
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/**
 * Data is checked when it is written as well as when it is read: what this member could not read
 * back, it must not send or persist. A failure here is a bug in the caller, not bad input.
 */
function checkBeforeEncoding(
  wire: unknown,
  path: string,
  fromWire: (wire: unknown, path: string) => unknown,
): void {
  try {
    fromWire(wire, path);
  } catch (error) {
    if (CodecError.is(error)) {
      throw new AssertionFailure(`refusing to encode an invalid ${path}: ${error.message}`);
    }
    throw error;
  }
}

/**
 * Encodes plain data (arrays, strings, numbers, booleans, null, `Uint8Array`) with the codec's
 * deterministic msgpack settings: a building block for state machines built on orrery (the
 * placement table's commands and snapshots use it). Pair it with {@link decodePlain}.
 */
export function encodePlain(value: unknown[]): Uint8Array {
  return pack(value);
}

/**
 * Decodes bytes made by {@link encodePlain} into plain data, refusing anything that is not one
 * msgpack value within `bytesMax`. The caller checks the shape. Throws {@link CodecError} naming
 * `path`.
 */
export function decodePlain(bytes: Uint8Array, path: string, options?: DecodeOptions): unknown {
  return unpack(bytes, path, options);
}

function pack(wire: unknown[]): Uint8Array {
  // packr returns a view into a buffer it goes on writing to; the copy owns its memory.
  return new Uint8Array(packr.pack(wire));
}

function unpack(bytes: Uint8Array, path: string, options: DecodeOptions | undefined): unknown {
  const bytesMax = options?.bytesMax ?? DECODE_BYTES_MAX;
  assert(Number.isSafeInteger(bytesMax) && bytesMax > 0, "bytesMax is a positive safe integer");
  if (!(bytes instanceof Uint8Array)) {
    throw new CodecError(path, `input is ${describe(bytes)}; expected a Uint8Array`);
  }
  if (bytes.byteLength > bytesMax) {
    throw new CodecError(path, `input is ${bytes.byteLength} bytes, over bytesMax ${bytesMax}`);
  }
  try {
    // A fresh plain view: msgpackr caches a DataView on its source, and slices of a plain
    // Uint8Array are plain Uint8Arrays (not Buffers).
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return unpackr.unpack(view);
  } catch (error) {
    // Truncated input, trailing bytes, unknown extensions and nesting too deep all land here.
    throw new CodecError(path, `input is not one msgpack value (${errorText(error)})`);
  }
}

/** Checks that `wire` is an array of at least `lengthMin` elements that starts with the version. */
function versionedFromWire(wire: unknown, path: string, lengthMin: number): readonly unknown[] {
  if (!Array.isArray(wire) || wire.length < lengthMin) {
    throw new CodecError(path, `is ${describe(wire)}; expected an array starting with a version`);
  }
  if (wire[0] !== CODEC_VERSION) {
    throw new CodecError(`${path}.version`, `is ${describe(wire[0])}; expected ${CODEC_VERSION}`);
  }
  return wire;
}

/** Checks that `wire` is an array of exactly `length` elements. */
function tupleFromWire(
  wire: unknown,
  path: string,
  length: number,
  what = "",
): readonly unknown[] {
  if (!Array.isArray(wire) || wire.length !== length) {
    const expected = `an array of ${length}${what === "" ? "" : ` for a ${what} message`}`;
    throw new CodecError(path, `is ${describe(wire)}; expected ${expected}`);
  }
  return wire;
}

/** Numbers the keys of `codes` back: `result[code] = key`. Codes must be dense from 0. */
function invertCodes<T extends string>(codes: { readonly [K in T]: number }): T[] {
  const keys = Object.keys(codes) as T[];
  const inverse: T[] = [];
  for (const key of keys) inverse[codes[key]] = key;
  assert(inverse.length === keys.length, "type codes are dense from 0");
  for (let code = 0; code < inverse.length; code++) {
    assert(inverse[code] !== undefined, `type code ${code} is used`);
  }
  return inverse;
}

/** A short description of a decoded value for an error message; never throws. */
function describe(value: unknown): string {
  switch (typeof value) {
    case "string":
      return value.length > 40 ? `${JSON.stringify(value.slice(0, 40))}...` : JSON.stringify(value);
    case "number":
    case "boolean":
      return Object.is(value, -0) ? "-0" : String(value);
    case "bigint":
      return `${value}n`;
    case "undefined":
      return "undefined";
    case "object":
      if (value === null) return "null";
      if (Array.isArray(value)) return `an array of ${value.length}`;
      if (value instanceof Uint8Array) return `${value.byteLength} bytes`;
      return "an object";
    default:
      return `a ${typeof value}`;
  }
}

function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message : describe(error);
  return text.length > 120 ? `${text.slice(0, 120)}...` : text;
}
