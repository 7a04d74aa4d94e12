/**
 * Placement commands on the wire: every command type round-trips, and decoding is strict and
 * total — anything that is not a valid command of this version is a CodecError naming the field,
 * and nothing else is ever thrown.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Packr } from "msgpackr";
import { encodePlain } from "../codec/codec.ts";
import { expectCodecError as codecError, packedAnythingArb } from "../testing.ts";
import { CodecError } from "../errors.ts";
import { COMMAND_BYTES_MAX, COMMAND_VERSION, decodePlacementCommand, encodePlacementCommand } from "./commands.ts";
import type { PlacementCommand, PlacementCommandType } from "./types.ts";

// ---------------------------------------------------------------------------------------------
// Arbitraries.

/** Strings msgpack can carry (no lone surrogates), including empty and long ones. */
const stringArb = fc.oneof(
  fc.constantFrom("w1", "/db/users", "zone-a", "10.0.0.1:8080", ""),
  fc.string({ maxLength: 40, unit: "grapheme" }),
  fc.string({ minLength: 1000, maxLength: 1100, unit: "grapheme-ascii" }),
);

const countArb = fc.oneof(fc.nat(100), fc.maxSafeNat(), fc.constantFrom(0, 2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER));

/** A record with a plain prototype (fast-check's records have none, which deepStrictEqual notices). */
function plain<T extends object>(arb: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return arb.map((value) => ({ ...value }));
}

const COMMAND_ARBS: { readonly [T in PlacementCommandType]: fc.Arbitrary<Extract<PlacementCommand, { type: T }>> } = {
  join: plain(fc.record({
    type: fc.constant("join"),
    worker: stringArb,
    address: stringArb,
    capacity: countArb,
    zone: stringArb,
  })),
  leave: plain(fc.record({ type: fc.constant("leave"), worker: stringArb })),
  drain: plain(fc.record({ type: fc.constant("drain"), worker: stringArb })),
  undrain: plain(fc.record({ type: fc.constant("undrain"), worker: stringArb })),
  acquire: plain(fc.record({ type: fc.constant("acquire"), key: stringArb })),
  release: plain(fc.record({ type: fc.constant("release"), worker: stringArb, key: stringArb, epoch: countArb })),
  handoff: plain(fc.record({ type: fc.constant("handoff"), key: stringArb, epoch: countArb })),
  move: plain(fc.record({ type: fc.constant("move"), key: stringArb, to: fc.option(stringArb, { nil: null }) })),
  rebalance: plain(fc.record({ type: fc.constant("rebalance"), movesMax: countArb })),
  expire: plain(fc.record({ type: fc.constant("expire"), worker: stringArb })),
};

const TYPES = Object.keys(COMMAND_ARBS) as PlacementCommandType[];

const commandArb: fc.Arbitrary<PlacementCommand> = fc.oneof(...TYPES.map((type) => COMMAND_ARBS[type]));

/** Field values of every kind, valid and not. */
const fieldishArb = fc.oneof(
  stringArb,
  countArb,
  fc.constantFrom(null, true, false, -1, 1.5, -0, NaN, Infinity, 2 ** 53, -(2 ** 53)),
  fc.uint8Array({ maxLength: 4 }),
  fc.array(fc.nat(3), { maxLength: 2 }),
);

// ---------------------------------------------------------------------------------------------
// Helpers.

const rawPackr = new Packr({ useRecords: false, structuredClone: false, moreTypes: false, mapsAsObjects: true });

function packRaw(value: unknown): Uint8Array {
  return new Uint8Array(rawPackr.pack(value));
}


function assertRefused(bytes: Uint8Array, path: string, why?: RegExp): void {
  const error = codecError(() => decodePlacementCommand(bytes));
  assert.equal(error.path, path, error.message);
  if (why !== undefined) assert.match(error.message, why);
}

/**
 * The totality property: `bytes` decodes to a command that re-encodes to a command equal to it, or
 * is refused with a CodecError. Any other exception fails the test.
 */
function assertTotal(bytes: Uint8Array): void {
  let command: PlacementCommand;
  try {
    command = decodePlacementCommand(bytes);
  } catch (error) {
    if (error instanceof CodecError && CodecError.is(error)) return;
    throw error;
  }
  assert.ok(TYPES.includes(command.type));
  assert.deepStrictEqual(decodePlacementCommand(encodePlacementCommand(command)), command);
}

/** The wire tuple of a valid command, for hand-made variations. */
function wireOf(command: PlacementCommand): unknown[] {
  return rawPackr.unpack(encodePlacementCommand(command)) as unknown[];
}

const SAMPLES: { readonly [T in PlacementCommandType]: Extract<PlacementCommand, { type: T }> } = {
  join: { type: "join", worker: "w1", address: "10.0.0.1:80", capacity: 2, zone: "a" },
  leave: { type: "leave", worker: "w1" },
  drain: { type: "drain", worker: "w1" },
  undrain: { type: "undrain", worker: "w1" },
  acquire: { type: "acquire", key: "/db/users" },
  release: { type: "release", worker: "w1", key: "/db/users", epoch: 7 },
  handoff: { type: "handoff", key: "/db/users", epoch: 7 },
  move: { type: "move", key: "/db/users", to: "w2" },
  rebalance: { type: "rebalance", movesMax: 16 },
  expire: { type: "expire", worker: "w1" },
};

// ---------------------------------------------------------------------------------------------

describe("placement command round trip", () => {
  for (const type of TYPES) {
    it(`a ${type} command decodes to itself`, () => {
      fc.assert(
        fc.property(COMMAND_ARBS[type], (command) => {
          const bytes = encodePlacementCommand(command);
          assert.ok(bytes.byteLength <= COMMAND_BYTES_MAX || command.type === "join");
          assert.deepStrictEqual(decodePlacementCommand(bytes), command);
        }),
        { numRuns: 200 },
      );
    });
  }

  it("a move to no worker in particular keeps its null", () => {
    const command: PlacementCommand = { type: "move", key: "k", to: null };
    assert.deepStrictEqual(decodePlacementCommand(encodePlacementCommand(command)), command);
  });

  it("encoding is deterministic and starts with the version and the type code", () => {
    TYPES.forEach((type, code) => {
      const bytes = encodePlacementCommand(SAMPLES[type]);
      assert.deepEqual(encodePlacementCommand({ ...SAMPLES[type] }), bytes);
      const wire = wireOf(SAMPLES[type]);
      assert.equal(wire[0], COMMAND_VERSION);
      assert.equal(wire[1], code);
    });
  });

  it("decoding ignores no extra property and adds none", () => {
    const decoded = decodePlacementCommand(encodePlacementCommand(SAMPLES.release));
    assert.deepEqual(Object.keys(decoded).sort(), ["epoch", "key", "type", "worker"]);
  });
});

describe("placement command strict decoding", () => {
  it("refuses another version", () => {
    for (const version of [0, 2, "1", null]) {
      assertRefused(packRaw([version, 0, "w1", "a", 1, "z"]), "command.version");
    }
  });

  it("refuses an unknown type code", () => {
    for (const code of [TYPES.length, TYPES.length + 1, -1, 1.5, "join", null, 2 ** 32]) {
      assertRefused(packRaw([COMMAND_VERSION, code, "w1"]), "command.type", /unknown code/);
    }
  });

  it("refuses a wrong number of fields for every type", () => {
    for (const type of TYPES) {
      const wire = wireOf(SAMPLES[type]);
      assertRefused(packRaw(wire.slice(0, -1)), "command", /fields/);
      assertRefused(packRaw([...wire, "extra"]), "command", /fields/);
    }
  });

  it("refuses something that is not a command tuple", () => {
    for (const value of [[], [COMMAND_VERSION], 1, "join", null, { 0: 1, 1: 0 }]) {
      assertRefused(packRaw(value), "command");
    }
  });

  it("refuses a field of the wrong type, naming it", () => {
    const cases: [PlacementCommandType, number, unknown, string][] = [
      ["join", 0, 1, "command.worker"],
      ["join", 1, null, "command.address"],
      ["join", 2, "2", "command.capacity"],
      ["join", 2, -1, "command.capacity"],
      ["join", 2, 1.5, "command.capacity"],
      ["join", 2, 2 ** 53, "command.capacity"],
      ["join", 3, true, "command.zone"],
      ["leave", 0, null, "command.worker"],
      ["drain", 0, new Uint8Array([1]), "command.worker"],
      ["undrain", 0, ["w1"], "command.worker"],
      ["acquire", 0, 7, "command.key"],
      ["release", 0, null, "command.worker"],
      ["release", 1, 3, "command.key"],
      ["release", 2, "7", "command.epoch"],
      ["release", 2, null, "command.epoch"],
      ["handoff", 0, null, "command.key"],
      ["handoff", 1, -7, "command.epoch"],
      ["move", 0, null, "command.key"],
      ["move", 1, 2, "command.to"],
      ["move", 1, false, "command.to"],
      ["rebalance", 0, Infinity, "command.movesMax"],
      ["rebalance", 0, NaN, "command.movesMax"],
      ["expire", 0, 1, "command.worker"],
    ];
    for (const [type, field, value, path] of cases) {
      const wire = wireOf(SAMPLES[type]);
      wire[2 + field] = value;
      assertRefused(packRaw(wire), path, /is not a/);
    }
  });

  it("refuses input over COMMAND_BYTES_MAX before parsing, and honours a smaller bytesMax", () => {
    const big = encodePlain([COMMAND_VERSION, TYPES.indexOf("acquire"), "k".repeat(COMMAND_BYTES_MAX)]);
    assert.ok(big.byteLength > COMMAND_BYTES_MAX);
    assertRefused(big, "command", /over bytesMax/);
    const small = encodePlacementCommand(SAMPLES.join);
    const error = codecError(() => decodePlacementCommand(small, { bytesMax: small.byteLength - 1 }));
    assert.equal(error.path, "command");
    assert.deepStrictEqual(decodePlacementCommand(small, { bytesMax: small.byteLength }), SAMPLES.join);
    // A larger limit lets a large command through.
    assert.equal(decodePlacementCommand(big, { bytesMax: big.byteLength }).type, "acquire");
  });

  it("refuses empty input, truncations and trailing bytes", () => {
    fc.assert(
      fc.property(commandArb, fc.uint8Array({ minLength: 1, maxLength: 4 }), (command, tail) => {
        const bytes = encodePlacementCommand(command);
        for (let length = 0; length < bytes.length; length++) {
          assertRefused(bytes.subarray(0, length), "command");
        }
        const longer = new Uint8Array(bytes.length + tail.length);
        longer.set(bytes);
        longer.set(tail, bytes.length);
        assertRefused(longer, "command");
      }),
      { numRuns: 60 },
    );
  });

  it("refuses input that is not a Uint8Array", () => {
    assertRefused("abc" as unknown as Uint8Array, "command");
  });
});

describe("placement command garbage input", () => {
  it("random bytes decode to a command or raise CodecError", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), assertTotal), { numRuns: 2_000 });
  });

  it("single-byte changes of a valid command decode or raise CodecError", () => {
    fc.assert(
      fc.property(commandArb, fc.integer({ min: 1, max: 255 }), (command, mask) => {
        const bytes = encodePlacementCommand(command);
        const step = Math.max(1, Math.floor(bytes.length / 200));
        for (let at = 0; at < bytes.length; at += step) {
          const changed = bytes.slice();
          changed[at]! ^= mask;
          assertTotal(changed);
        }
      }),
      { numRuns: 100 },
    );
  });

  it("near-miss tuples decode to a command or raise CodecError", () => {
    const nearMissArb = fc.tuple(
      fc.constantFrom(COMMAND_VERSION, COMMAND_VERSION, COMMAND_VERSION, 0, 2, "1"),
      fc.oneof(fc.integer({ min: -1, max: TYPES.length + 1 }), fc.constantFrom("length", "0", 1.0, 0.5, null)),
      fc.array(fieldishArb, { maxLength: 6 }),
    );
    fc.assert(
      fc.property(nearMissArb, ([version, code, rest]) => assertTotal(packRaw([version, code, ...rest]))),
      { numRuns: 2_000 },
    );
  });

  it("packed arbitrary values decode to a command or raise CodecError", () => {
    fc.assert(
      fc.property(packedAnythingArb, (bytes) => {
        if (bytes !== null) assertTotal(bytes);
      }),
      { numRuns: 300 },
    );
  });

  it("regression: a float64 -0 in a count field decodes as 0, the value it re-encodes to", () => {
    // The Raft codec's natural field turns -0 into 0 (see `natural` in lib/codec/codec.ts) so that a
    // decoded value survives a re-encode unchanged; the command decoder must do the same.
    // msgpackr writes -0 as the integer 0, so the float64 is written by hand: 0xcb, then 8 bytes.
    const zero = packRaw([COMMAND_VERSION, TYPES.indexOf("release"), "w1", "k", 0]);
    const bytes = new Uint8Array([...zero.subarray(0, -1), 0xcb, 0x80, 0, 0, 0, 0, 0, 0, 0]);
    const command = decodePlacementCommand(bytes);
    assert.equal(command.type, "release");
    assert.ok(!Object.is((command as { epoch: number }).epoch, -0), "epoch decoded as -0");
    assertTotal(bytes);
  });
});
