/**
 * Configuration: defaults fill every optional field, and every invalid value is refused once, at
 * construction, with a ConfigError that names the field at fault.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ConfigError } from "../errors.ts";
import {
  RAFT_CONFIG_DEFAULTS,
  VOTERS_MAX,
  resolveConfig,
  type RaftConfig,
  type RaftConfigInput,
} from "./config.ts";
import { RaftNode } from "./raw-node.ts";

const random = (): number => 0.5;

function validInput(overrides: Record<string, unknown> = {}): RaftConfigInput {
  return { id: "n1", voters: ["n1", "n2", "n3"], random, ...overrides } as RaftConfigInput;
}

/** Asserts that `run` throws a ConfigError naming `field` (and, if given, matching `message`). */
function assertConfigError(run: () => unknown, field: string, message?: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(ConfigError.is(error), `expected a ConfigError, got ${String(error)}`);
    assert.ok(error instanceof ConfigError);
    assert.equal(error.code, "ORRERY_CONFIG");
    assert.equal(error.field, field);
    assert.match(error.message, new RegExp(field));
    if (message !== undefined) assert.match(error.message, message);
    return true;
  });
}

type NumericField = {
  [K in keyof RaftConfig]: RaftConfig[K] extends number ? K : never;
}[keyof RaftConfig];

/** Every numeric field with its smallest valid value. */
const NUMERIC_MINIMUMS: ReadonlyArray<[NumericField, number]> = [
  ["readIndexPendingMax", 1],
  ["clockDriftMax", 0],
  ["electionTicks", 2],
  ["heartbeatTicks", 1],
  ["inflightMessagesMax", 1],
  ["inflightBytesMax", 1],
  ["messageBytesMax", 1],
  ["proposalBytesMax", 1],
  ["uncommittedBytesMax", 1],
  ["applyBytesMax", 1],
  ["outboxMessagesMax", 16],
  ["snapshotChunkBytes", 1],
  ["snapshotChunksInflightMax", 1],
  ["snapshotBytesMax", 1],
];

describe("resolveConfig", () => {
  it("applies every default when only id, voters and random are given", () => {
    const config = resolveConfig(validInput());
    assert.deepEqual(config, { ...RAFT_CONFIG_DEFAULTS, id: "n1", voters: ["n1", "n2", "n3"], random });
    assert.equal(config.random, random);
  });

  it("applies the defaults that the TSDoc of RaftConfig states with @defaultValue", () => {
    const source = readFileSync(new URL("./config.ts", import.meta.url), "utf8");
    const documented = new Map<string, string>();
    for (const match of source.matchAll(/\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*readonly (\w+)/g)) {
      const value = /@defaultValue (\S+)/.exec(match[1] ?? "")?.[1];
      if (value !== undefined) documented.set(match[2] ?? "", value);
    }
    assert.deepEqual([...documented.keys()].sort(), Object.keys(RAFT_CONFIG_DEFAULTS).sort());
    for (const [field, value] of Object.entries(RAFT_CONFIG_DEFAULTS)) {
      const shown = typeof value === "string" ? JSON.stringify(value) : String(value);
      assert.equal(shown, documented.get(field), field);
    }
  });

  it("treats a field explicitly set to undefined as absent", () => {
    const config = resolveConfig(validInput({ electionTicks: undefined, preVote: undefined }));
    assert.equal(config.electionTicks, RAFT_CONFIG_DEFAULTS.electionTicks);
    assert.equal(config.preVote, RAFT_CONFIG_DEFAULTS.preVote);
  });

  it("keeps values that override the defaults", () => {
    const config = resolveConfig(
      validInput({ electionTicks: 20, heartbeatTicks: 3, preVote: false, checkQuorum: false }),
    );
    assert.equal(config.electionTicks, 20);
    assert.equal(config.heartbeatTicks, 3);
    assert.equal(config.preVote, false);
    assert.equal(config.checkQuorum, false);
  });

  it("sorts the voters without touching the caller's array", () => {
    const voters = ["n3", "n1", "n2"];
    const config = resolveConfig(validInput({ voters }));
    assert.deepEqual(config.voters, ["n1", "n2", "n3"]);
    assert.deepEqual(voters, ["n3", "n1", "n2"]);
  });

  it("sorts any permutation of unique voters to the same list", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: VOTERS_MAX }),
        (voters) => {
          const config = resolveConfig(validInput({ voters }));
          assert.deepEqual(config.voters, [...voters].sort());
          assert.deepEqual(resolveConfig(validInput({ voters: [...voters].reverse() })).voters, config.voters);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("accepts VOTERS_MAX voters", () => {
    const voters = Array.from({ length: VOTERS_MAX }, (_, i) => `n${i}`);
    assert.equal(resolveConfig(validInput({ voters })).voters.length, VOTERS_MAX);
  });

  it("accepts a member that is not among the voters (one that will join later)", () => {
    assert.equal(resolveConfig(validInput({ id: "n9" })).id, "n9");
  });

  it("knows the smallest valid value of every numeric field that has a default", () => {
    const known = new Set(NUMERIC_MINIMUMS.map(([field]) => field));
    for (const [field, value] of Object.entries(RAFT_CONFIG_DEFAULTS)) {
      if (typeof value === "number") assert.ok(known.has(field as NumericField), `add ${field} to NUMERIC_MINIMUMS`);
    }
  });

  it("accepts the smallest valid value of every numeric field", () => {
    for (const [field, min] of NUMERIC_MINIMUMS) {
      // A tiny limit also needs the limit that must fit inside it to be tiny.
      const extra =
        field === "uncommittedBytesMax"
          ? { proposalBytesMax: min }
          : field === "inflightBytesMax"
            ? { messageBytesMax: min }
            : field === "snapshotBytesMax"
              ? { snapshotChunkBytes: min }
              : {};
      assert.equal(resolveConfig(validInput({ [field]: min, ...extra }))[field], min, field);
    }
  });

  it("accepts a proposalBytesMax equal to uncommittedBytesMax", () => {
    const config = resolveConfig(validInput({ proposalBytesMax: 1000, uncommittedBytesMax: 1000 }));
    assert.equal(config.proposalBytesMax, 1000);
  });

  it("accepts a messageBytesMax equal to inflightBytesMax", () => {
    const config = resolveConfig(validInput({ messageBytesMax: 1000, inflightBytesMax: 1000 }));
    assert.equal(config.messageBytesMax, 1000);
  });
});

describe("resolveConfig rejects", () => {
  it("rejects heartbeatTicks equal to or above electionTicks, naming both", () => {
    for (const heartbeatTicks of [10, 11]) {
      assertConfigError(
        () => resolveConfig(validInput({ electionTicks: 10, heartbeatTicks })),
        "heartbeatTicks",
        /electionTicks/,
      );
    }
  });

  it("rejects electionTicks below 2", () => {
    assertConfigError(() => resolveConfig(validInput({ electionTicks: 1 })), "electionTicks");
    assertConfigError(() => resolveConfig(validInput({ electionTicks: 0 })), "electionTicks");
  });

  it("rejects a non-integer, negative, NaN, infinite, too small or non-number value of every numeric field", () => {
    for (const [field, min] of NUMERIC_MINIMUMS) {
      for (const bad of [min - 1, -1, min + 0.5, Number.NaN, Infinity, -Infinity, 2 ** 53, "10", null, true]) {
        assertConfigError(() => resolveConfig(validInput({ [field]: bad })), field);
      }
    }
  });

  it("rejects an empty id", () => {
    assertConfigError(() => resolveConfig(validInput({ id: "" })), "id");
  });

  it("rejects an id that is not a string", () => {
    assertConfigError(() => resolveConfig(validInput({ id: 1 })), "id");
    assertConfigError(() => resolveConfig(validInput({ id: undefined })), "id");
  });

  it("accepts an empty voter list: a member joining an existing cluster", () => {
    assert.deepEqual(resolveConfig(validInput({ voters: [] })).voters, []);
  });

  it("rejects snapshot limits that cannot work", () => {
    assertConfigError(() => resolveConfig(validInput({ snapshotChunkBytes: 0 })), "snapshotChunkBytes");
    assertConfigError(() => resolveConfig(validInput({ snapshotChunksInflightMax: 0 })), "snapshotChunksInflightMax");
    assertConfigError(
      () => resolveConfig(validInput({ snapshotChunkBytes: 4096, snapshotBytesMax: 1024 })),
      "snapshotChunkBytes",
      /snapshotBytesMax/,
    );
  });

  it("rejects a missing voter list", () => {
    assertConfigError(() => resolveConfig(validInput({ voters: undefined })), "voters");
  });

  it("rejects a voter listed twice rather than de-duplicating it", () => {
    assertConfigError(() => resolveConfig(validInput({ voters: ["n1", "n2", "n1"] })), "voters", /twice/);
  });

  it("rejects an empty or non-string voter", () => {
    assertConfigError(() => resolveConfig(validInput({ voters: ["n1", ""] })), "voters");
    assertConfigError(() => resolveConfig(validInput({ voters: ["n1", 2] })), "voters");
  });

  it("rejects voters given as a string instead of an array", () => {
    assertConfigError(() => resolveConfig(validInput({ voters: "n1" })), "voters");
  });

  it("rejects voters given as a non-iterable value with a ConfigError", () => {
    assertConfigError(() => resolveConfig(validInput({ voters: 5 })), "voters");
  });

  it("rejects a field that is not part of the config, naming it", () => {
    assertConfigError(() => resolveConfig(validInput({ heartbeatTick: 3 })), "heartbeatTick");
  });

  it("rejects a config that is not an object", () => {
    assertConfigError(() => resolveConfig(null as never), "config");
  });

  it("rejects more than VOTERS_MAX voters", () => {
    const voters = Array.from({ length: VOTERS_MAX + 1 }, (_, i) => `n${i}`);
    assertConfigError(() => resolveConfig(validInput({ voters })), "voters", new RegExp(`${VOTERS_MAX}`));
  });

  it("rejects a random that is not a function", () => {
    for (const bad of [undefined, 0.5, "Math.random", {}]) {
      assertConfigError(() => resolveConfig(validInput({ random: bad })), "random");
    }
  });

  it("rejects a proposalBytesMax above uncommittedBytesMax, naming both", () => {
    assertConfigError(
      () => resolveConfig(validInput({ proposalBytesMax: 1001, uncommittedBytesMax: 1000 })),
      "proposalBytesMax",
      /uncommittedBytesMax/,
    );
    // The default proposalBytesMax (8 MiB) does not fit a 1 MiB uncommittedBytesMax either.
    assertConfigError(
      () => resolveConfig(validInput({ uncommittedBytesMax: 1024 * 1024 })),
      "proposalBytesMax",
    );
  });

  it("rejects a messageBytesMax above inflightBytesMax, naming both", () => {
    assertConfigError(
      () => resolveConfig(validInput({ messageBytesMax: 1001, inflightBytesMax: 1000 })),
      "messageBytesMax",
      /inflightBytesMax/,
    );
  });

  it("rejects a non-boolean preVote or checkQuorum", () => {
    for (const field of ["preVote", "checkQuorum"]) {
      for (const bad of [1, 0, "true", null]) {
        assertConfigError(() => resolveConfig(validInput({ [field]: bad })), field);
      }
    }
  });
});

describe("RaftNode construction", () => {
  it("builds a member from a valid input", () => {
    const node = new RaftNode(validInput());
    assert.equal(node.status().id, "n1");
  });

  it("throws the same ConfigError as resolveConfig", () => {
    const cases: ReadonlyArray<[Record<string, unknown>, string]> = [
      [{ heartbeatTicks: 10 }, "heartbeatTicks"],
      [{ electionTicks: 1 }, "electionTicks"],
      [{ id: "" }, "id"],
      [{ voters: "n1" }, "voters"],
      [{ voters: ["n1", "n1"] }, "voters"],
      [{ random: undefined }, "random"],
      [{ preVote: "yes" }, "preVote"],
      [{ proposalBytesMax: 2, uncommittedBytesMax: 1 }, "proposalBytesMax"],
      [{ messageBytesMax: 2, inflightBytesMax: 1 }, "messageBytesMax"],
      [{ outboxMessagesMax: 15 }, "outboxMessagesMax"],
    ];
    for (const [overrides, field] of cases) {
      const input = validInput(overrides);
      let expected: unknown;
      try {
        resolveConfig(input);
      } catch (error) {
        expected = error;
      }
      assert.ok(ConfigError.is(expected), field);
      assertConfigError(() => new RaftNode(input), field);
      assert.throws(() => new RaftNode(input), { message: (expected as ConfigError).message });
    }
  });
});
