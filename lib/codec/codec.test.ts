import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { Packr, Unpackr } from "msgpackr";
import { AssertionFailure } from "../assert.ts";
import { expectCodecError as codecError, packedAnythingArb } from "../testing.ts";
import { CodecError } from "../errors.ts";
import { encodeConfState, isValidConf } from "../raft/conf.ts";
import {
  MESSAGE_TYPES,
  type ConfState,
  type Entry,
  type EntryType,
  type HardState,
  type Message,
  type MessageType,
  type Snapshot,
} from "../raft/messages.ts";
import {
  CODEC_VERSION,
  DECODE_BYTES_MAX,
  NODE_ID_LENGTH_MAX,
  decodeEntries,
  decodeEntry,
  decodeHardState,
  decodeMessage,
  decodeSnapshot,
  encodeEntries,
  encodeEntry,
  encodeHardState,
  encodeMessage,
  encodeSnapshot,
} from "./index.ts";

// ---------------------------------------------------------------------------------------------
// Arbitraries for valid values.

const MAX = Number.MAX_SAFE_INTEGER;

/** Read request ids: short strings without lone surrogates (msgpack cannot carry those). */
const requestIdArb = fc.oneof(fc.constantFrom("r1", "read-42"), fc.string({ minLength: 1, maxLength: 40, unit: "grapheme" }));

const nodeIdArb = fc.oneof(
  fc.constantFrom("n1", "n2", "n3"),
  fc.string({ minLength: 1, maxLength: 12 }),
  fc.string({ minLength: 1, maxLength: 12, unit: "binary" }),
  fc.string({ minLength: NODE_ID_LENGTH_MAX, maxLength: NODE_ID_LENGTH_MAX }),
);

const naturalArb = fc.oneof(
  fc.nat(100),
  fc.maxSafeNat(),
  fc.constantFrom(0, 2 ** 31, 2 ** 32, MAX),
);

const dataArb = fc.uint8Array({ maxLength: 32 });

const entryTypeArb: fc.Arbitrary<EntryType> = fc.constantFrom("normal", "confChange");

/** The most voters a configuration has in either half (`VOTERS_MAX`). */
const VOTERS_MAX = 9;

/**
 * Valid configurations: each id is given a role, and the lists are sorted. Voters beyond the
 * limit are dropped; with none left the first id votes.
 */
const confArb: fc.Arbitrary<ConfState> = fc
  .uniqueArray(fc.tuple(nodeIdArb, fc.constantFrom("voter", "outgoing", "both", "learner")), {
    selector: ([id]) => id,
    minLength: 1,
    maxLength: 14,
  })
  .map((roles) => {
    const having = (...wanted: string[]) =>
      roles.filter(([, role]) => wanted.includes(role)).map(([id]) => id);
    const voters = having("voter", "both").slice(0, VOTERS_MAX);
    const outgoing = having("outgoing", "both").slice(0, VOTERS_MAX);
    const learners = having("learner");
    if (voters.length === 0) {
      const [first] = roles[0]!;
      voters.push(first);
      if (learners.includes(first)) learners.splice(learners.indexOf(first), 1);
    }
    return { voters: voters.sort(), outgoing: outgoing.sort(), learners: learners.sort() };
  });

/** Snapshot indexes start at 1. */
const snapshotIndexArb = fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1, max: MAX }));

/** A value in [low, high] picked by `raw`. */
function within(raw: number, low: number, high: number): number {
  return low + (raw % (high - low + 1));
}

/** A run of entries after (prevIndex, prevTerm): consecutive indexes, terms rising to termMax. */
function runOf(
  raws: readonly (readonly [number, Uint8Array, EntryType])[],
  prevIndex: number,
  prevTerm: number,
  termMax: number,
): Entry[] {
  const terms = raws.map(([raw]) => within(raw, prevTerm, termMax)).sort((a, b) => a - b);
  return raws.map(([, data, type], i) => ({
    term: terms[i]!,
    index: prevIndex + 1 + i,
    type,
    data,
  }));
}

const entryRawsArb = fc.array(fc.tuple(fc.maxSafeNat(), dataArb, entryTypeArb), { maxLength: 6 });
const prevIndexArb = fc.oneof(fc.nat(100), fc.integer({ min: 0, max: MAX - 6 }));

const headerArb = fc.record({ from: nodeIdArb, to: nodeIdArb, term: naturalArb });

const appendArb: fc.Arbitrary<Message> = fc
  .record({
    header: headerArb,
    prevIndex: prevIndexArb,
    prevTermRaw: fc.maxSafeNat(),
    raws: entryRawsArb,
    commit: naturalArb,
  })
  .map(({ header, prevIndex, prevTermRaw, raws, commit }) => {
    const prevTerm = prevIndex === 0 ? 0 : within(prevTermRaw, 0, header.term);
    const entries = runOf(raws, prevIndex, prevTerm, header.term);
    return { type: "append", ...header, prevIndex, prevTerm, entries, commit };
  });

function voteRequestArb(type: "requestVote" | "requestPreVote"): fc.Arbitrary<Message> {
  return fc
    .record({
      header: headerArb,
      lastIndex: naturalArb,
      lastTermRaw: fc.maxSafeNat(),
      transfer: fc.boolean(),
    })
    .map(({ header, lastIndex, lastTermRaw, transfer }) => {
      const lastTerm = lastIndex === 0 ? 0 : within(lastTermRaw, 0, header.term);
      return { type, ...header, lastIndex, lastTerm, transfer };
    });
}

function voteResponseArb(type: "voteResponse" | "preVoteResponse"): fc.Arbitrary<Message> {
  return fc.record({ header: headerArb, reject: fc.boolean() }).map(({ header, reject }) => ({
    type,
    ...header,
    reject,
  }));
}

/** One arbitrary per message type; the mapped type makes a new message type fail to compile. */
const MESSAGE_ARBS: { readonly [T in MessageType]: fc.Arbitrary<Message> } = {
  append: appendArb,
  appendResponse: fc
    .record({
      header: headerArb,
      index: naturalArb,
      reject: fc.boolean(),
      rejectHint: naturalArb,
      rejectHintTerm: naturalArb,
    })
    .map(({ header, ...body }) => ({ type: "appendResponse", ...header, ...body })),
  heartbeat: fc
    .record({ header: headerArb, commit: naturalArb, round: naturalArb })
    .map(({ header, commit, round }) => ({ type: "heartbeat", ...header, commit, round })),
  heartbeatResponse: fc
    .record({ header: headerArb, round: naturalArb })
    .map(({ header, round }) => ({ type: "heartbeatResponse", ...header, round })),
  requestVote: voteRequestArb("requestVote"),
  requestPreVote: voteRequestArb("requestPreVote"),
  voteResponse: voteResponseArb("voteResponse"),
  preVoteResponse: voteResponseArb("preVoteResponse"),
  timeoutNow: headerArb.map((header) => ({ type: "timeoutNow", ...header })),
  readIndex: fc
    .record({ header: headerArb, requestId: requestIdArb })
    .map(({ header, requestId }) => ({ type: "readIndex", ...header, requestId })),
  readIndexResponse: fc
    .record({ header: headerArb, requestId: requestIdArb, index: naturalArb })
    .map(({ header, requestId, index }) => ({ type: "readIndexResponse", ...header, requestId, index })),
  snapshot: fc
    .record({
      header: headerArb,
      index: snapshotIndexArb,
      snapshotTermRaw: fc.maxSafeNat(),
      origin: nodeIdArb,
      config: confArb,
      offset: naturalArb,
      data: dataArb,
      done: fc.boolean(),
    })
    .map(({ header, index, snapshotTermRaw, origin, config, offset, data, done }) => ({
      type: "snapshot",
      ...header,
      index,
      snapshotTerm: within(snapshotTermRaw, 0, header.term),
      origin,
      config,
      offset: Math.min(offset, MAX - data.byteLength),
      data,
      done,
    })),
  snapshotResponse: fc
    .record({ header: headerArb, index: snapshotIndexArb, offset: naturalArb, reject: fc.boolean() })
    .map(({ header, ...body }) => ({ type: "snapshotResponse", ...header, ...body })),
};

const messageArb: fc.Arbitrary<Message> = fc.oneof(...Object.values(MESSAGE_ARBS));

const entryArb: fc.Arbitrary<Entry> = fc.record(
  {
    term: naturalArb,
    index: fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1, max: MAX })),
    type: entryTypeArb,
    data: fc.oneof(dataArb, fc.uint8Array({ minLength: 256, maxLength: 70_000 })),
  },
  { noNullPrototype: true },
);

/** A `confChange` entry as the core writes it: its data is an encoded configuration. */
const confChangeEntryArb: fc.Arbitrary<Entry> = fc
  .record({ term: naturalArb, index: fc.integer({ min: 1, max: MAX }), config: confArb })
  .map(({ term, index, config }) => ({ term, index, type: "confChange", data: encodeConfState(config) }));

const snapshotArb: fc.Arbitrary<Snapshot> = fc.record(
  {
    index: snapshotIndexArb,
    term: naturalArb,
    config: confArb,
    origin: nodeIdArb,
    data: fc.oneof(dataArb, dataArb, fc.uint8Array({ minLength: 256, maxLength: 70_000 })),
  },
  { noNullPrototype: true },
);

const runArb: fc.Arbitrary<Entry[]> = fc
  .record({ prevIndex: prevIndexArb, firstTerm: naturalArb, raws: entryRawsArb })
  .map(({ prevIndex, firstTerm, raws }) => runOf(raws, prevIndex, firstTerm, MAX));

const hardStateArb: fc.Arbitrary<HardState> = fc
  .record({ term: naturalArb, vote: fc.option(nodeIdArb), commit: naturalArb })
  .map((hs) => ({ ...hs, term: hs.vote !== null && hs.term === 0 ? 1 : hs.term }));

// ---------------------------------------------------------------------------------------------
// Helpers.

/** The five codecs, so that every garbage property runs against each decoder. */
interface AnyCodec {
  readonly name: string;
  readonly arb: fc.Arbitrary<unknown>;
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array, options?: { bytesMax?: number }): unknown;
}

const CODECS: readonly AnyCodec[] = [
  {
    name: "message",
    arb: messageArb,
    encode: (v) => encodeMessage(v as Message),
    decode: decodeMessage,
  },
  { name: "entry", arb: entryArb, encode: (v) => encodeEntry(v as Entry), decode: decodeEntry },
  {
    name: "entries",
    arb: runArb,
    encode: (v) => encodeEntries(v as Entry[]),
    decode: decodeEntries,
  },
  {
    name: "hard state",
    arb: hardStateArb,
    encode: (v) => encodeHardState(v as HardState),
    decode: decodeHardState,
  },
  {
    name: "snapshot",
    arb: snapshotArb,
    encode: (v) => encodeSnapshot(v as Snapshot),
    decode: decodeSnapshot,
  },
];

/** Packs raw shapes the way the codec does, to build inputs by hand. */
const rawPackr = new Packr({ useRecords: false });
const rawUnpackr = new Unpackr({ useRecords: false, int64AsType: "number" });

function packRaw(value: unknown): Uint8Array {
  return new Uint8Array(rawPackr.pack(value));
}

/** The codec's own tuple form of a valid encoding. */
function unpackRaw(bytes: Uint8Array): unknown[] {
  return rawUnpackr.unpack(bytes) as unknown[];
}

/**
 * The totality property: `bytes` either decodes to a value that survives a re-encode unchanged,
 * or is refused with a CodecError. Any other exception fails the test.
 */
function assertTotal(codec: AnyCodec, bytes: Uint8Array): void {
  let value: unknown;
  try {
    value = codec.decode(bytes);
  } catch (error) {
    if (error instanceof CodecError && CodecError.is(error)) return;
    throw error;
  }
  assert.deepStrictEqual(codec.decode(codec.encode(value)), value);
}


function assertRefused(bytes: Uint8Array, path: string, why?: RegExp): void {
  const error = codecError(() => decodeMessage(bytes));
  assert.equal(error.path, path, error.message);
  if (why !== undefined) assert.match(error.message, why);
}

/** A message tuple as on the wire: `[version, code, from, to, term, ...body]`. */
function wireMessage(type: MessageType, term: unknown, ...body: unknown[]): unknown[] {
  return [CODEC_VERSION, MESSAGE_TYPES.indexOf(type), "n1", "n2", term, ...body];
}

function entryTuple(term: number, index: number, data = new Uint8Array([1])): unknown[] {
  return [term, index, 0, data];
}

/** A configuration as on the wire: `[voters, outgoing, learners]`. */
function wireConf(conf: ConfState): unknown[] {
  return [conf.voters, conf.outgoing, conf.learners];
}

/** A snapshot chunk as on the wire, with `config` in place; the rest is valid. */
function wireSnapshotMessage(config: unknown): unknown[] {
  return wireMessage("snapshot", 5, 10, 4, "n1", config, 0, new Uint8Array([1]), true);
}

/** A stored snapshot as on the wire, with `config` in place; the rest is valid. */
function wireSnapshot(config: unknown): unknown[] {
  return [CODEC_VERSION, 10, 4, "n1", config, new Uint8Array([1])];
}

/** Values of many msgpack shapes, for building near-miss inputs. */
const fieldishArb: fc.Arbitrary<unknown> = fc.oneof(
  nodeIdArb,
  naturalArb,
  fc.integer({ min: -5, max: 5 }),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.string({ maxLength: 300 }),
  dataArb,
  fc.array(fc.tuple(naturalArb, naturalArb, fc.nat(2), dataArb), { maxLength: 3 }),
  fc.array(fc.nat(3), { maxLength: 5 }),
  confArb.map(wireConf),
  fc.array(fc.array(fc.constantFrom("n1", "n2", "n3", ""), { maxLength: 3 }), { maxLength: 4 }),
);

// ---------------------------------------------------------------------------------------------

describe("codec round trips", () => {
  test("every valid message decodes to itself", () => {
    fc.assert(
      fc.property(messageArb, (message) => {
        assert.deepStrictEqual(decodeMessage(encodeMessage(message)), message);
      }),
      { numRuns: 600 },
    );
  });

  test("every message type round-trips", () => {
    for (const type of MESSAGE_TYPES) {
      fc.assert(
        fc.property(MESSAGE_ARBS[type], (message) => {
          const decoded = decodeMessage(encodeMessage(message));
          assert.equal(decoded.type, type);
          assert.deepStrictEqual(decoded, message);
        }),
        { numRuns: 30 },
      );
    }
  });

  test("entries, runs of entries, hard states and snapshots decode to themselves", () => {
    fc.assert(
      fc.property(entryArb, (entry) => {
        assert.deepStrictEqual(decodeEntry(encodeEntry(entry)), entry);
      }),
      { numRuns: 100 },
    );
    fc.assert(
      fc.property(confChangeEntryArb, (entry) => {
        assert.deepStrictEqual(decodeEntry(encodeEntry(entry)), entry);
      }),
      { numRuns: 100 },
    );
    fc.assert(
      fc.property(snapshotArb, (snapshot) => {
        assert.deepStrictEqual(decodeSnapshot(encodeSnapshot(snapshot)), snapshot);
      }),
      { numRuns: 100 },
    );
    fc.assert(
      fc.property(runArb, (run) => {
        assert.deepStrictEqual(decodeEntries(encodeEntries(run)), run);
      }),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(hardStateArb, (hardState) => {
        assert.deepStrictEqual(decodeHardState(encodeHardState(hardState)), hardState);
      }),
      { numRuns: 200 },
    );
  });

  test("encoding is deterministic", () => {
    fc.assert(
      fc.property(messageArb, (message) => {
        assert.deepStrictEqual(encodeMessage(message), encodeMessage(structuredClone(message)));
      }),
      { numRuns: 100 },
    );
  });

  test("the wire format is pinned: a heartbeat, an entry, a run and a hard state", () => {
    const heartbeat: Message = { type: "heartbeat", from: "n1", to: "n2", term: 3, commit: 7, round: 2 };
    assert.equal(hex(encodeMessage(heartbeat)), "9701" + "02" + "a26e31" + "a26e32" + "03" + "07" + "02");
    const entry: Entry = { term: 2, index: 5, type: "normal", data: new Uint8Array([0xab]) };
    assert.equal(hex(encodeEntry(entry)), "95" + "01" + "02" + "05" + "00" + "c401ab");
    assert.equal(hex(encodeEntries([entry])), "92" + "01" + "91" + "94" + "0205" + "00" + "c401ab");
    assert.equal(hex(encodeHardState({ term: 4, vote: null, commit: 9 })), "9401" + "04c009");
    assert.equal(hex(encodeHardState({ term: 4, vote: "n3", commit: 9 })), "9401" + "04a26e3309");
  });

  test("the wire format is pinned: a confChange entry, snapshot messages and a snapshot", () => {
    const confEntry: Entry = { term: 2, index: 5, type: "confChange", data: new Uint8Array([0xab]) };
    assert.equal(hex(encodeEntry(confEntry)), "95" + "01" + "02" + "05" + "01" + "c401ab");
    const config: ConfState = { voters: ["n1"], outgoing: [], learners: ["n2"] };
    const conf = "93" + "91a26e31" + "90" + "91a26e32";
    const chunk: Message = {
      type: "snapshot",
      from: "n1",
      to: "n2",
      term: 3,
      index: 7,
      snapshotTerm: 2,
      origin: "n1",
      config,
      offset: 0,
      data: new Uint8Array([0xab]),
      done: true,
    };
    const chunkHex = "9c01" + "0b" + "a26e31" + "a26e32" + "03" + "07" + "02" + "a26e31" + conf;
    assert.equal(hex(encodeMessage(chunk)), chunkHex + "00" + "c401ab" + "c3");
    const response: Message = {
      type: "snapshotResponse",
      from: "n2",
      to: "n1",
      term: 3,
      index: 7,
      offset: 1,
      reject: false,
    };
    const responseHex = "9801" + "0c" + "a26e32" + "a26e31" + "03" + "07" + "01" + "c2";
    assert.equal(hex(encodeMessage(response)), responseHex);
    const snapshot: Snapshot = { index: 7, term: 2, origin: "n1", config, data: new Uint8Array([0xab]) };
    assert.equal(hex(encodeSnapshot(snapshot)), "9601" + "07" + "02" + "a26e31" + conf + "c401ab");
  });

  test("type codes follow the order of MESSAGE_TYPES", () => {
    MESSAGE_TYPES.forEach((type, code) => {
      const message = fc.sample(MESSAGE_ARBS[type], { numRuns: 1, seed: 1 })[0]!;
      assert.equal(unpackRaw(encodeMessage(message))[1], code);
    });
  });

  test("decoded values have exactly the fields of their type, and plain Uint8Array data", () => {
    const entry: Entry = { term: 1, index: 1, type: "normal", data: new Uint8Array([1, 2]) };
    const message: Message = {
      type: "append",
      from: "n1",
      to: "n2",
      term: 1,
      prevIndex: 0,
      prevTerm: 0,
      entries: [entry],
      commit: 0,
    };
    const decoded = decodeMessage(encodeMessage(message));
    assert.deepEqual(Object.keys(decoded).sort(), Object.keys(message).sort());
    assert.equal(decoded.type, "append");
    const decodedEntry = (decoded as typeof message).entries[0]!;
    assert.deepEqual(Object.keys(decodedEntry).sort(), ["data", "index", "term", "type"]);
    assert.equal(Object.getPrototypeOf(decodedEntry.data), Uint8Array.prototype);
    assert.equal(Object.getPrototypeOf(decodeEntry(encodeEntry(entry)).data), Uint8Array.prototype);
  });

  test("decoded snapshots and configurations have exactly the fields of their type", () => {
    class Bytes extends Uint8Array {}
    const snapshot: Snapshot = {
      index: 3,
      term: 1,
      config: { voters: ["n1", "n2"], outgoing: ["n1"], learners: [] },
      origin: "n2",
      data: new Bytes([1, 2]),
    };
    const decoded = decodeSnapshot(encodeSnapshot(snapshot));
    assert.deepEqual(Object.keys(decoded).sort(), ["config", "data", "index", "origin", "term"]);
    assert.deepEqual(Object.keys(decoded.config).sort(), ["learners", "outgoing", "voters"]);
    assert.equal(Object.getPrototypeOf(decoded.data), Uint8Array.prototype);
    assert.deepStrictEqual(decoded.data, new Uint8Array([1, 2]));
    const chunk = decodeMessage(encodeMessage(fc.sample(MESSAGE_ARBS.snapshot, { numRuns: 1, seed: 2 })[0]!));
    assert.equal(chunk.type, "snapshot");
    assert.deepEqual(Object.keys(chunk.type === "snapshot" ? chunk.config : {}).sort(), [
      "learners",
      "outgoing",
      "voters",
    ]);
  });

  test("decoded data owns its memory and the input is left untouched", () => {
    const entry: Entry = { term: 1, index: 1, type: "normal", data: new Uint8Array([7, 7, 7]) };
    const bytes = encodeEntry(entry);
    const before = bytes.slice();
    const decoded = decodeEntry(bytes);
    bytes.fill(0);
    assert.deepEqual(decoded.data, new Uint8Array([7, 7, 7]));
    assert.deepEqual(Object.keys(before), Object.keys(bytes));
    assert.ok(!("dataView" in bytes));
  });

  test("data given as a Uint8Array subclass decodes as a plain Uint8Array", () => {
    class Bytes extends Uint8Array {}
    const entry: Entry = { term: 1, index: 3, type: "normal", data: new Bytes([1, 2, 3]) };
    const decoded = decodeEntry(encodeEntry(entry));
    assert.deepStrictEqual(decoded.data, new Uint8Array([1, 2, 3]));
  });

  test("encodings own their memory", () => {
    const a = encodeHardState({ term: 1, vote: null, commit: 0 });
    const b = encodeHardState({ term: 2, vote: null, commit: 0 });
    assert.notEqual(a.buffer, b.buffer);
    assert.equal(a.byteOffset, 0);
    assert.equal(a.buffer.byteLength, a.byteLength);
  });
});

describe("codec garbage input", () => {
  for (const codec of CODECS) {
    test(`random bytes decode as a ${codec.name} or raise CodecError`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => assertTotal(codec, bytes)),
        { numRuns: 500 },
      );
    });

    test(`every truncation of a valid ${codec.name} raises CodecError`, () => {
      fc.assert(
        fc.property(codec.arb, (value) => {
          const bytes = codec.encode(value);
          for (let length = 0; length < bytes.length; length++) {
            codecError(() => codec.decode(bytes.subarray(0, length)));
          }
        }),
        { numRuns: codec.name === "entry" || codec.name === "snapshot" ? 10 : 60 },
      );
    });

    test(`a valid ${codec.name} with trailing bytes raises CodecError`, () => {
      fc.assert(
        fc.property(codec.arb, fc.uint8Array({ minLength: 1, maxLength: 4 }), (value, tail) => {
          const bytes = codec.encode(value);
          const longer = new Uint8Array(bytes.length + tail.length);
          longer.set(bytes);
          longer.set(tail, bytes.length);
          codecError(() => codec.decode(longer));
        }),
        { numRuns: 100 },
      );
    });

    test(`single-byte changes of a valid ${codec.name} decode or raise CodecError`, () => {
      fc.assert(
        fc.property(codec.arb, fc.integer({ min: 1, max: 255 }), (value, mask) => {
          const bytes = codec.encode(value);
          // Every position, but at most 400 of them (entries may carry large data).
          const step = Math.max(1, Math.floor(bytes.length / 400));
          for (let at = 0; at < bytes.length; at += step) {
            const changed = bytes.slice();
            changed[at]! ^= mask;
            assertTotal(codec, changed);
          }
        }),
        { numRuns: 60 },
      );
    });

    test(`packed arbitrary values decode as a ${codec.name} or raise CodecError`, () => {
      fc.assert(
        fc.property(packedAnythingArb, (bytes) => {
          if (bytes !== null) assertTotal(codec, bytes);
        }),
        { numRuns: 300 },
      );
    });
  }

  test("near-miss tuples decode as a message or raise CodecError", () => {
    const nearMissArb = fc.tuple(
      fc.constantFrom(CODEC_VERSION, CODEC_VERSION, CODEC_VERSION, 0, 2, "1"),
      fc.integer({ min: -1, max: MESSAGE_TYPES.length + 1 }),
      fc.array(fieldishArb, { maxLength: 10 }),
    );
    fc.assert(
      fc.property(nearMissArb, ([version, code, rest]) => {
        for (const codec of CODECS) assertTotal(codec, packRaw([version, code, ...rest]));
      }),
      { numRuns: 1500 },
    );
  });

  test("valid messages with one element of their tuple replaced, removed or added", () => {
    fc.assert(
      fc.property(
        messageArb,
        fc.nat(),
        fc.nat(),
        fieldishArb,
        fc.constantFrom("replace", "remove", "insert"),
        (message, at, entryAt, value, how) => {
          const tuple = unpackRaw(encodeMessage(message));
          // Half the time, when there are entries or a configuration, edit inside one instead.
          let inner = tuple;
          if (message.type === "append" && message.entries.length > 0 && entryAt % 2 === 0) {
            inner = (tuple[7] as unknown[][])[entryAt % message.entries.length]!;
          }
          if (message.type === "snapshot" && entryAt % 2 === 0) {
            const conf = tuple[8] as unknown[][];
            inner = entryAt % 8 === 0 ? conf : conf[(entryAt >> 1) % conf.length]!;
          }
          const i = at % (inner.length + 1);
          if (how === "replace") inner[i] = value;
          else if (how === "remove") inner.splice(i, 1);
          else inner.splice(i, 0, value);
          assertTotal(CODECS[0]!, packRaw(tuple));
        },
      ),
      { numRuns: 1500 },
    );
  });
});

describe("codec refuses", () => {
  const ok = wireMessage("heartbeat", 1, 0, 0);

  test("a well-formed message it could decode (the baseline for the cases below)", () => {
    assert.deepStrictEqual(decodeMessage(packRaw(ok)), {
      type: "heartbeat",
      from: "n1",
      to: "n2",
      term: 1,
      commit: 0,
      round: 0,
    });
  });

  test("an unknown type code", () => {
    assertRefused(packRaw([CODEC_VERSION, MESSAGE_TYPES.length, "n1", "n2", 1]), "message.type");
    assertRefused(packRaw([CODEC_VERSION, 99, "n1", "n2", 1]), "message.type");
    assertRefused(packRaw([CODEC_VERSION, -1, "n1", "n2", 1]), "message.type");
    assertRefused(packRaw([CODEC_VERSION, 1.5, "n1", "n2", 1]), "message.type");
    assertRefused(packRaw([CODEC_VERSION, "append", "n1", "n2", 1]), "message.type");
  });

  test("a wrong version", () => {
    assertRefused(packRaw([CODEC_VERSION + 1, ...ok.slice(1)]), "message.version", /expected 1/);
    assertRefused(packRaw([0, ...ok.slice(1)]), "message.version");
    assertRefused(packRaw([null, ...ok.slice(1)]), "message.version");
    const hs = codecError(() => decodeHardState(packRaw([2, 1, null, 0])));
    assert.equal(hs.path, "hardState.version");
  });

  test("input over bytesMax, before parsing it", () => {
    const bytes = packRaw(ok);
    assert.equal(decodeMessage(bytes, { bytesMax: bytes.length }).type, "heartbeat");
    const error = codecError(() => decodeMessage(bytes, { bytesMax: bytes.length - 1 }));
    assert.match(error.message, /bytesMax/);
    const big = new Uint8Array(DECODE_BYTES_MAX + 1);
    assert.match(codecError(() => decodeEntries(big)).message, /over bytesMax/);
  });

  test("a bytesMax that is not a positive integer, as a bug in the caller", () => {
    const bytes = packRaw(ok);
    for (const bytesMax of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => decodeMessage(bytes, { bytesMax }), AssertionFailure);
    }
  });

  test("a negative, fractional, unsafe or non-number term", () => {
    assertRefused(packRaw(wireMessage("heartbeat", -1, 0, 0)), "message.term", /non-negative/);
    assertRefused(packRaw(wireMessage("heartbeat", 0.5, 0, 0)), "message.term");
    assertRefused(packRaw(wireMessage("heartbeat", MAX + 1, 0, 0)), "message.term");
    assertRefused(packRaw(wireMessage("heartbeat", Number.NaN, 0, 0)), "message.term");
    assertRefused(packRaw(wireMessage("heartbeat", Infinity, 0, 0)), "message.term");
    assertRefused(packRaw(wireMessage("heartbeat", "1", 0, 0)), "message.term");
    assertRefused(packRaw(wireMessage("heartbeat", null, 0, 0)), "message.term");
    // 0xcf: a uint64 of 2^64 - 1.
    const uint64 = new Uint8Array([0x96, 1, 3, 0xa1, 0x61, 0xa1, 0x62, 0xcf, ...ones(8), 0]);
    assert.equal(codecError(() => decodeMessage(uint64)).path, "message.term");
  });

  test("a non-integer index", () => {
    const tuple = wireMessage("appendResponse", 1, 2.5, false, 0, 0);
    assertRefused(packRaw(tuple), "message.index", /safe integer/);
    assertRefused(packRaw(wireMessage("heartbeat", 1, 1.0000001, 0)), "message.commit");
  });

  test("a float64 -0 decodes as 0", () => {
    const header = [0x97, 1, 2, 0xa1, 0x61, 0xa1, 0x62, 1];
    const bytes = new Uint8Array([...header, 0xcb, 0x80, 0, 0, 0, 0, 0, 0, 0, 0]);
    const decoded = decodeMessage(bytes) as { commit: number };
    assert.ok(Object.is(decoded.commit, 0));
  });

  test("entries that are not consecutive after prevIndex", () => {
    const append = (prevIndex: number, ...entries: unknown[]) =>
      packRaw(wireMessage("append", 5, prevIndex, 1, entries, 0));
    const decoded = decodeMessage(append(3, entryTuple(1, 4), entryTuple(2, 5)));
    assert.equal(decoded.type === "append" && decoded.entries.length, 2);
    const gap = append(3, entryTuple(1, 4), entryTuple(1, 6));
    assertRefused(gap, "message.entries[1].index", /consecutive/);
    assertRefused(append(3, entryTuple(1, 4), entryTuple(1, 4)), "message.entries[1].index");
    assertRefused(append(3, entryTuple(1, 5)), "message.entries[0].index");
    assertRefused(append(3, entryTuple(1, 3)), "message.entries[0].index");
    const run = packRaw([CODEC_VERSION, [entryTuple(1, 7), entryTuple(1, 8), entryTuple(1, 10)]]);
    assert.equal(codecError(() => decodeEntries(run)).path, "entries[2].index");
  });

  test("entry terms that fall, pass the message term, or precede prevTerm", () => {
    const append = (prevTerm: number, ...entries: unknown[]) =>
      packRaw(wireMessage("append", 5, 3, prevTerm, entries, 0));
    assertRefused(append(1, entryTuple(3, 4), entryTuple(2, 5)), "message.entries[1].term");
    assertRefused(append(1, entryTuple(6, 4)), "message.entries[0].term", /above the term/);
    assertRefused(append(2, entryTuple(1, 4)), "message.entries[0].term");
    const run = packRaw([CODEC_VERSION, [entryTuple(3, 7), entryTuple(2, 8)]]);
    assert.equal(codecError(() => decodeEntries(run)).path, "entries[1].term");
  });

  test("a log position at index 0 with a term, or a term past the message's", () => {
    assertRefused(packRaw(wireMessage("append", 5, 0, 1, [], 0)), "message.prevTerm");
    assertRefused(packRaw(wireMessage("append", 5, 3, 6, [], 0)), "message.prevTerm");
    assertRefused(packRaw(wireMessage("requestVote", 5, 0, 1, false)), "message.lastTerm");
    assertRefused(packRaw(wireMessage("requestPreVote", 5, 9, 6, false)), "message.lastTerm");
  });

  test("an entry at index 0", () => {
    const entry = packRaw([CODEC_VERSION, 1, 0, 0, new Uint8Array()]);
    assert.equal(codecError(() => decodeEntry(entry)).path, "entry.index");
    const append = packRaw(wireMessage("append", 5, 0, 0, [entryTuple(1, 0)], 0));
    assertRefused(append, "message.entries[0].index");
  });

  test("an unknown entry type or data that is not bytes", () => {
    const refused = (type: unknown, data: unknown) =>
      codecError(() => decodeEntry(packRaw([CODEC_VERSION, 1, 1, type, data]))).path;
    assert.equal(decodeEntry(packRaw([CODEC_VERSION, 1, 1, 1, new Uint8Array()])).type, "confChange");
    assert.equal(refused(2, new Uint8Array()), "entry.type");
    assert.equal(refused(-1, new Uint8Array()), "entry.type");
    assert.equal(refused(0.5, new Uint8Array()), "entry.type");
    assert.equal(refused(null, new Uint8Array()), "entry.type");
    assert.equal(refused("normal", new Uint8Array()), "entry.type");
    assert.equal(refused("confChange", new Uint8Array()), "entry.type");
    const append = packRaw(wireMessage("append", 5, 0, 0, [[1, 1, 2, new Uint8Array()]], 0));
    assertRefused(append, "message.entries[0].type", /entry type code/);
    assert.equal(refused(0, "bytes"), "entry.data");
    assert.equal(refused(0, [1, 2]), "entry.data");
    assert.equal(refused(0, null), "entry.data");
  });

  test("extra trailing bytes", () => {
    const bytes = packRaw(ok);
    const longer = new Uint8Array([...bytes, 0x00]);
    assertRefused(longer, "message", /end of buffer/);
    assertRefused(new Uint8Array([...bytes, ...bytes]), "message");
  });

  test("tuples of the wrong length", () => {
    assertRefused(packRaw([...ok, 0]), "message", /array of 7 for a heartbeat message/);
    assertRefused(packRaw(ok.slice(0, 5)), "message");
    assertRefused(packRaw([CODEC_VERSION]), "message");
    assertRefused(packRaw([]), "message");
    const append = packRaw(wireMessage("append", 5, 0, 0, [[1, 1, 0]], 0));
    assertRefused(append, "message.entries[0]", /array of 4/);
    const hardState = packRaw([CODEC_VERSION, 1, null]);
    assert.equal(codecError(() => decodeHardState(hardState)).path, "hardState");
  });

  test("values that are not arrays", () => {
    for (const value of [null, 1, "x", true, { a: 1 }, new Uint8Array([1])]) {
      assertRefused(packRaw(value), "message");
    }
    assertRefused(packRaw(wireMessage("append", 5, 0, 0, { 0: 1 }, 0)), "message.entries");
  });

  test("node ids that are empty, too long, not strings or not well-formed", () => {
    const withFrom = (from: unknown) => packRaw([CODEC_VERSION, 2, from, "n2", 1, 0, 0]);
    const longest = "x".repeat(NODE_ID_LENGTH_MAX);
    assert.equal(decodeMessage(withFrom(longest)).from, longest);
    assertRefused(withFrom(""), "message.from");
    assertRefused(withFrom("x".repeat(NODE_ID_LENGTH_MAX + 1)), "message.from", /1 to 256/);
    assertRefused(withFrom(1), "message.from");
    assertRefused(withFrom(null), "message.from");
    assertRefused(withFrom(new Uint8Array([0x6e])), "message.from");
    // Ill-formed UTF-8 (here the encoding of U+D800) decodes to replacement characters, which
    // re-encode; a lone surrogate, which has no UTF-8 form, is refused by the encoder.
    const illFormed = new Uint8Array([0x97, 1, 2, 0xa3, 0xed, 0xa0, 0x80, 0xa1, 0x62, 1, 0, 0]);
    assert.equal(decodeMessage(illFormed).from, "\uFFFD\uFFFD\uFFFD");
    const lone: Message = { type: "heartbeatResponse", from: "n\uD800", to: "n2", term: 1, round: 0 };
    assert.throws(() => encodeMessage(lone), /lone UTF-16 surrogate/);
    const vote = packRaw([CODEC_VERSION, 1, "", 0]);
    assert.equal(codecError(() => decodeHardState(vote)).path, "hardState.vote");
  });

  test("booleans given as numbers", () => {
    assertRefused(packRaw(wireMessage("voteResponse", 1, 0)), "message.reject", /boolean/);
    assertRefused(packRaw(wireMessage("requestVote", 1, 0, 0, 1)), "message.transfer");
  });

  test("configurations that are unsorted, repeat an id, have no voter or a learner who votes", () => {
    const valid = [["n1", "n2", "n3"], ["n1", "n2"], ["n4", "n5"]];
    const decoded = decodeMessage(packRaw(wireSnapshotMessage(valid)));
    assert.deepStrictEqual(decoded.type === "snapshot" && decoded.config, {
      voters: ["n1", "n2", "n3"],
      outgoing: ["n1", "n2"],
      learners: ["n4", "n5"],
    });
    const cases: [unknown, string, RegExp][] = [
      [[["n2", "n1"], [], []], "config.voters[1]", /sorted/],
      [[["n1", "n1"], [], []], "config.voters[1]", /without duplicates/],
      [[["n1"], ["n3", "n2"], []], "config.outgoing[1]", /sorted/],
      [[["n1"], ["n2", "n2"], []], "config.outgoing[1]", /duplicates/],
      [[["n1"], [], ["n5", "n4"]], "config.learners[1]", /sorted/],
      [[["n1"], [], ["n4", "n4"]], "config.learners[1]", /duplicates/],
      [[["n1", "n2"], [], ["n2"]], "config.learners[0]", /also a voter/],
      [[["n1"], ["n2"], ["n0", "n2"]], "config.learners[1]", /also a voter/],
      [[[], [], []], "config.voters", /at least one voter/],
      [[[], ["n1"], ["n2"]], "config.voters", /at least one voter/],
      [[ids(10), [], []], "config.voters", /at most 9/],
      [[["n1"], ids(10), []], "config.outgoing", /at most 9/],
    ];
    for (const [config, path, why] of cases) {
      assertRefused(packRaw(wireSnapshotMessage(config)), `message.${path}`, why);
      const error = codecError(() => decodeSnapshot(packRaw(wireSnapshot(config))));
      assert.equal(error.path, `snapshot.${path}`, error.message);
      assert.match(error.message, why);
    }
    // Many learners are fine: they are bounded by bytesMax alone.
    assert.equal(decodeSnapshot(packRaw(wireSnapshot([["n1"], [], ids(100)]))).config.learners.length, 100);
  });

  test("configurations of the wrong shape", () => {
    const cases: [unknown, string][] = [
      [null, "config"],
      ["n1", "config"],
      [{ voters: ["n1"], outgoing: [], learners: [] }, "config"],
      [[["n1"], []], "config"],
      [[["n1"], [], [], []], "config"],
      [["n1", [], []], "config.voters"],
      [[["n1"], null, []], "config.outgoing"],
      [[["n1"], [], { 0: "n2" }], "config.learners"],
      [[["n1", 2], [], []], "config.voters[1]"],
      [[[""], [], []], "config.voters[0]"],
      [[["x".repeat(257)], [], []], "config.voters[0]"],
      [[["n1"], [new Uint8Array([0x6e])], []], "config.outgoing[0]"],
      [[["n1"], [], [null]], "config.learners[0]"],
    ];
    for (const [config, path] of cases) {
      assertRefused(packRaw(wireSnapshotMessage(config)), `message.${path}`);
      assert.equal(codecError(() => decodeSnapshot(packRaw(wireSnapshot(config)))).path, `snapshot.${path}`);
    }
  });

  test("exactly the configurations isValidConf accepts", () => {
    const idsArb = fc.array(fc.constantFrom("", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"), {
      maxLength: 11,
    });
    // Mostly sorted unique lists and empty ones, so that about one case in ten is valid.
    const listArb = fc.oneof(
      { arbitrary: idsArb, weight: 1 },
      { arbitrary: idsArb.map((list) => [...new Set(list)].sort()), weight: 3 },
      { arbitrary: fc.constant([]), weight: 1 },
    );
    const confLikeArb = fc.record({ voters: listArb, outgoing: listArb, learners: listArb });
    fc.assert(
      fc.property(confLikeArb, (conf) => {
        let accepted = true;
        try {
          decodeSnapshot(packRaw(wireSnapshot(wireConf(conf))));
        } catch (error) {
          if (!CodecError.is(error)) throw error;
          accepted = false;
        }
        assert.equal(accepted, isValidConf(conf), JSON.stringify(conf));
      }),
      { numRuns: 1000 },
    );
  });

  test("snapshot messages with fields of the wrong type or out of range", () => {
    const conf = [["n1"], [], []];
    const chunk = (...body: unknown[]) => packRaw(wireMessage("snapshot", 5, ...body));
    const data = new Uint8Array([1]);
    assert.equal(decodeMessage(chunk(10, 4, "n1", conf, 0, data, true)).type, "snapshot");
    assertRefused(chunk("10", 4, "n1", conf, 0, data, true), "message.index");
    assertRefused(chunk(0, 0, "n1", conf, 0, data, true), "message.index", /at least index 1/);
    assertRefused(chunk(10, -1, "n1", conf, 0, data, true), "message.snapshotTerm");
    assertRefused(chunk(10, 6, "n1", conf, 0, data, true), "message.snapshotTerm", /above the message term/);
    assertRefused(chunk(10, 4, "", conf, 0, data, true), "message.origin");
    assertRefused(chunk(10, 4, 1, conf, 0, data, true), "message.origin");
    assertRefused(chunk(10, 4, "n1", conf, 0.5, data, true), "message.offset");
    assertRefused(chunk(10, 4, "n1", conf, MAX, data, true), "message.offset", /2\^53/);
    assert.equal(decodeMessage(chunk(10, 4, "n1", conf, MAX - 1, data, true)).type, "snapshot");
    assertRefused(chunk(10, 4, "n1", conf, 0, "data", true), "message.data", /bytes/);
    assertRefused(chunk(10, 4, "n1", conf, 0, [1], true), "message.data");
    assertRefused(chunk(10, 4, "n1", conf, 0, data, 1), "message.done", /boolean/);
    assertRefused(chunk(10, 4, "n1", conf, 0, data), "message", /array of 12 for a snapshot message/);
    const response = (...body: unknown[]) => packRaw(wireMessage("snapshotResponse", 5, ...body));
    assert.equal(decodeMessage(response(10, 0, true)).type, "snapshotResponse");
    assertRefused(response(0, 0, false), "message.index");
    assertRefused(response(10, -1, false), "message.offset");
    assertRefused(response(10, "0", false), "message.offset");
    assertRefused(response(10, 0, 0), "message.reject", /boolean/);
    assertRefused(response(10, 0), "message", /array of 8 for a snapshotResponse message/);
  });

  test("stored snapshots with fields of the wrong type or out of range", () => {
    const conf = [["n1"], [], []];
    const refused = (...tuple: unknown[]) => codecError(() => decodeSnapshot(packRaw(tuple))).path;
    const data = new Uint8Array([1]);
    assert.equal(decodeSnapshot(packRaw([CODEC_VERSION, 10, 4, "n1", conf, data])).index, 10);
    assert.equal(refused(CODEC_VERSION + 1, 10, 4, "n1", conf, data), "snapshot.version");
    assert.equal(refused(CODEC_VERSION, 0, 0, "n1", conf, data), "snapshot.index");
    assert.equal(refused(CODEC_VERSION, 1.5, 0, "n1", conf, data), "snapshot.index");
    assert.equal(refused(CODEC_VERSION, 10, -4, "n1", conf, data), "snapshot.term");
    assert.equal(refused(CODEC_VERSION, 10, 4, null, conf, data), "snapshot.origin");
    assert.equal(refused(CODEC_VERSION, 10, 4, "n1", conf, "data"), "snapshot.data");
    assert.equal(refused(CODEC_VERSION, 10, 4, "n1", conf), "snapshot");
    assert.equal(refused(CODEC_VERSION, 10, 4, "n1", conf, data, 0), "snapshot");
    assert.equal(codecError(() => decodeSnapshot(packRaw({ index: 10 }))).path, "snapshot");
  });

  test("a vote in term 0", () => {
    const error = codecError(() => decodeHardState(packRaw([CODEC_VERSION, 0, "n1", 0])));
    assert.equal(error.path, "hardState.vote");
  });

  test("empty input, non-msgpack input and input that is not a Uint8Array", () => {
    assertRefused(new Uint8Array(), "message", /not one msgpack value/);
    assertRefused(new Uint8Array([0xc1]), "message");
    assertRefused(new Uint8Array([0xd4, 0x7f, 0x00]), "message"); // an unknown extension
    for (const input of [undefined, null, "bytes", [1, 2], new ArrayBuffer(4)]) {
      const error = codecError(() => decodeMessage(input as unknown as Uint8Array));
      assert.equal(error.path, "message");
    }
  });

  test("nesting deep enough to overflow the stack", () => {
    const deep = new Uint8Array(500_000).fill(0x91);
    assertRefused(deep, "message");
    // The decoder still works afterwards.
    assert.equal(decodeMessage(packRaw(ok)).type, "heartbeat");
  });

  test("array headers that claim more elements than the input holds", () => {
    assertRefused(new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff]), "message");
    assertRefused(new Uint8Array([0xc6, 0xff, 0xff, 0xff, 0xff]), "message");
  });
});

describe("codec encoders", () => {
  const base = { from: "n1", to: "n2", term: 2 };

  test("refuse invalid values with an AssertionFailure: the caller has a bug", () => {
    const bad: Message[] = [
      { type: "heartbeat", ...base, term: -1, commit: 0, round: 0 },
      { type: "heartbeat", ...base, from: "", commit: 0, round: 0 },
      { type: "heartbeat", ...base, commit: 0.5, round: 0 },
      {
        type: "append",
        ...base,
        prevIndex: 1,
        prevTerm: 1,
        entries: [{ term: 1, index: 3, type: "normal", data: new Uint8Array() }],
        commit: 0,
      },
      { type: "nope", ...base } as unknown as Message,
      { type: "voteResponse", ...base, reject: 1 } as unknown as Message,
      { type: "append", ...base, prevIndex: 0, prevTerm: 0, entries: [null], commit: 0 } as never,
      { type: "snapshotResponse", ...base, index: 0, offset: 0, reject: false },
      ...[
        { voters: ["n2", "n1"], outgoing: [], learners: [] },
        { voters: ["n1"], outgoing: [], learners: ["n1"] },
        { voters: [], outgoing: [], learners: [] },
        { voters: ["n1"], outgoing: [] } as unknown as ConfState,
        null as unknown as ConfState,
      ].map(
        (config): Message => ({
          type: "snapshot",
          ...base,
          index: 1,
          snapshotTerm: 1,
          origin: "n1",
          config,
          offset: 0,
          data: new Uint8Array(),
          done: true,
        }),
      ),
    ];
    for (const message of bad) {
      assert.throws(() => encodeMessage(message), AssertionFailure, JSON.stringify(message));
    }
    const entry = { term: 1, index: 0, type: "normal" as const, data: new Uint8Array() };
    assert.throws(() => encodeEntry(entry), AssertionFailure);
    const gap = [
      { ...entry, index: 2 },
      { ...entry, index: 4 },
    ];
    assert.throws(() => encodeEntries(gap), AssertionFailure);
    assert.throws(() => encodeHardState({ term: 0, vote: "n1", commit: 0 }), AssertionFailure);
    const snapshot: Snapshot = {
      index: 1,
      term: 1,
      config: { voters: ["n1"], outgoing: [], learners: [] },
      origin: "n1",
      data: new Uint8Array(),
    };
    assert.deepStrictEqual(decodeSnapshot(encodeSnapshot(snapshot)), snapshot);
    const badSnapshots: Snapshot[] = [
      { ...snapshot, index: 0 },
      { ...snapshot, origin: "" },
      { ...snapshot, config: { voters: ["n1", "n1"], outgoing: [], learners: [] } },
      { ...snapshot, config: { voters: ["n1"], outgoing: ["n2"], learners: ["n2"] } },
      { ...snapshot, data: [1] as unknown as Uint8Array },
    ];
    for (const bad of badSnapshots) {
      assert.throws(() => encodeSnapshot(bad), AssertionFailure, JSON.stringify(bad));
    }
  });

  test("encode only the fields of the type, dropping extras", () => {
    const message = { type: "timeoutNow", ...base, extra: 1 } as Message;
    assert.deepStrictEqual(decodeMessage(encodeMessage(message)), { type: "timeoutNow", ...base });
  });
});

describe("codec purity", () => {
  test("codec sources use no node: modules, clock, randomness, timers or Buffer", () => {
    const dir = fileURLToPath(new URL(".", import.meta.url));
    const sources = readdirSync(dir).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"));
    assert.ok(sources.length >= 2);
    const banned = new RegExp(
      [
        String.raw`from\s+["']node:`,
        String.raw`\b(Date|performance|process|Buffer)\b`,
        String.raw`Math\.random`,
        String.raw`\b(setTimeout|setInterval|setImmediate|queueMicrotask)\b`,
      ].join("|"),
    );
    for (const file of sources) {
      const code = readFileSync(dir + file, "utf8")
        .replace(/\/\*[\s\S]*?\*\//g, "")
        .replace(/\/\/.*$/gm, "");
      assert.doesNotMatch(code, banned, file);
    }
  });
});

/** `count` distinct node ids, sorted. */
function ids(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `n${String(i).padStart(3, "0")}`);
}

function ones(count: number): number[] {
  return new Array<number>(count).fill(0xff);
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
