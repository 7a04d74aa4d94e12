/**
 * The linearizability checker, fed hand-written histories (each violation named after the bug it
 * models), histories produced by actually running operations against a register, and random tiny
 * histories cross-checked against a deliberately naive search over every order.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { KvInput, KvOutput, Operation } from "../history.ts";
import { checkLinearizability, type LinearizabilityResult } from "./linearizability.ts";

const NUM_RUNS = 300;

// ---------------------------------------------------------------------------------------------
// Building histories by hand. `returnedUs: null` makes the operation's outcome unknown.

class History {
  readonly ops: Operation[] = [];

  private add(client: number, input: KvInput, output: KvOutput, inv: number, ret: number | null) {
    this.ops.push({
      id: this.ops.length,
      client,
      input,
      output: ret === null ? null : output,
      invokedUs: inv,
      returnedUs: ret,
    });
    return this;
  }

  put(client: number, key: string, value: string, inv: number, ret: number | null): this {
    return this.add(client, { kind: "put", key, value }, { kind: "put" }, inv, ret);
  }

  get(client: number, key: string, value: string | null, inv: number, ret: number | null): this {
    return this.add(client, { kind: "get", key }, { kind: "get", value }, inv, ret);
  }

  cas(
    client: number,
    key: string,
    expected: string | null,
    value: string,
    ok: boolean,
    inv: number,
    ret: number | null,
  ): this {
    return this.add(client, { kind: "cas", key, expected, value }, { kind: "cas", ok }, inv, ret);
  }
}

function check(h: History | readonly Operation[], searchStepsMax?: number): LinearizabilityResult {
  const ops = h instanceof History ? h.ops : h;
  return checkLinearizability(ops, searchStepsMax === undefined ? {} : { searchStepsMax });
}

function assertOk(h: History | readonly Operation[]): void {
  const result = check(h);
  assert.equal(result.status, "ok", JSON.stringify(result));
}

function assertViolation(h: History | readonly Operation[], key = "x"): void {
  const result = check(h);
  assert.equal(result.status, "violation", JSON.stringify(result));
  assert.equal(result.key, key);
}

// ---------------------------------------------------------------------------------------------
// Histories produced by running operations against a real register. Each operation takes effect
// at one instant inside its interval (an unknown one: at any instant after its invocation, or
// never), and the register's answers become the outputs, so the history is linearizable.

interface PlannedOp {
  readonly client: number;
  readonly key: string;
  readonly kind: "put" | "get" | "cas";
  readonly value: string;
  readonly expected: string | null;
  readonly gapUs: number;
  readonly durationUs: number;
  /** Where in its interval the operation takes effect, in thousandths. */
  readonly effectPermille: number;
  readonly outcome: "known" | "unknownApplied" | "unknownDropped";
  /** How long after its invocation an unknown operation takes effect. */
  readonly lateUs: number;
}

function plannedOp(clients: number, keys: readonly string[]): fc.Arbitrary<PlannedOp> {
  return fc.record({
    client: fc.nat({ max: clients - 1 }),
    key: fc.constantFrom(...keys),
    kind: fc.constantFrom("put" as const, "get" as const, "cas" as const),
    value: fc.constantFrom("a", "b", "c"),
    expected: fc.constantFrom(null, "a", "b", "c"),
    gapUs: fc.nat({ max: 20 }),
    durationUs: fc.nat({ max: 40 }),
    effectPermille: fc.nat({ max: 1000 }),
    outcome: fc.oneof(
      { weight: 8, arbitrary: fc.constant("known" as const) },
      { weight: 1, arbitrary: fc.constant("unknownApplied" as const) },
      { weight: 1, arbitrary: fc.constant("unknownDropped" as const) },
    ),
    lateUs: fc.nat({ max: 200 }),
  });
}

function inputOf(p: PlannedOp): KvInput {
  if (p.kind === "put") return { kind: "put", key: p.key, value: p.value };
  if (p.kind === "get") return { kind: "get", key: p.key };
  return { kind: "cas", key: p.key, expected: p.expected, value: p.value };
}

/** Runs `planned` against a register per key and records what the clients saw. */
function execute(planned: readonly PlannedOp[]): Operation[] {
  const clockUs = new Map<number, number>();
  const timed = planned.map((p, index) => {
    const inv = (clockUs.get(p.client) ?? 0) + p.gapUs;
    const ret = inv + p.durationUs;
    clockUs.set(p.client, ret);
    const effectUs =
      p.outcome === "known"
        ? inv + Math.floor((p.durationUs * p.effectPermille) / 1000)
        : inv + p.lateUs;
    return { p, index, inv, ret, effectUs };
  });
  const register = new Map<string, string>();
  const outputs = new Map<number, KvOutput>();
  const applied = timed
    .filter((t) => t.p.outcome !== "unknownDropped")
    .sort((a, b) => a.effectUs - b.effectUs || a.index - b.index);
  for (const { p, index } of applied) {
    const current = register.get(p.key) ?? null;
    if (p.kind === "put") {
      register.set(p.key, p.value);
      outputs.set(index, { kind: "put" });
    } else if (p.kind === "get") {
      outputs.set(index, { kind: "get", value: current });
    } else {
      const ok = current === p.expected;
      if (ok) register.set(p.key, p.value);
      outputs.set(index, { kind: "cas", ok });
    }
  }
  return timed.map(({ p, index, inv, ret }) => {
    const known = p.outcome === "known";
    return {
      id: index,
      client: p.client,
      input: inputOf(p),
      output: known ? (outputs.get(index) ?? null) : null,
      invokedUs: inv,
      returnedUs: known ? ret : null,
    };
  });
}

/** Completed reads, by index into `ops`. */
function completedGets(ops: readonly Operation[]): number[] {
  return ops.flatMap((op, i) => (op.input.kind === "get" && op.output !== null ? [i] : []));
}

/** The value `op` may have written: not a get's, nor a cas's that answered it failed. */
function writtenValue(op: Operation): string | null {
  if (op.input.kind === "get") return null;
  if (op.output?.kind === "cas" && !op.output.ok) return null;
  return op.input.value;
}

/**
 * Stale values for completed reads: (read, value) such that some write w surely took effect
 * (a completed put, or a completed cas that answered ok) of another value, returned before the
 * read was invoked, and every write of `value` (`null` has none) returned before w was invoked.
 * Whatever the order, `value` was overwritten for good before the read began, so a read of it
 * is a violation that only the search can find: the value was written, and early enough.
 */
function staleReads(ops: readonly Operation[]): { index: number; value: string | null }[] {
  const found: { index: number; value: string | null }[] = [];
  for (const index of completedGets(ops)) {
    const read = ops[index];
    if (read === undefined) continue;
    const sameKey = ops.filter((op) => op.input.key === read.input.key);
    // When each value was last possibly written: never for null, forever if a write is unknown.
    const lastWriteUs = new Map<string | null, number>([[null, -Infinity]]);
    for (const op of sameKey) {
      const value = writtenValue(op);
      if (value === null) continue;
      const until = op.returnedUs ?? Infinity;
      lastWriteUs.set(value, Math.max(lastWriteUs.get(value) ?? -Infinity, until));
    }
    const overwrites = sameKey.filter(
      (w) =>
        w.returnedUs !== null &&
        w.returnedUs < read.invokedUs &&
        (w.output?.kind === "put" || (w.output?.kind === "cas" && w.output.ok)),
    );
    for (const [value, lastUs] of lastWriteUs) {
      if (overwrites.some((w) => writtenValue(w) !== value && lastUs < w.invokedUs)) {
        found.push({ index, value });
      }
    }
  }
  return found;
}

function replaceRead(ops: readonly Operation[], index: number, value: string | null): Operation[] {
  return ops.map((op, i) => (i === index ? { ...op, output: { kind: "get", value } } : op));
}

/** A tiny deterministic PRNG for the larger fixed workloads (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// A deliberately naive checker: tries every order of the operations (unknown ones optional),
// remembering only which (set placed, value) pairs already failed, so that 12 operations are fast.

function naiveLinearizable(ops: readonly Operation[]): Map<string, boolean> {
  const keys = [...new Set(ops.map((op) => op.input.key))].sort();
  return new Map(keys.map((key) => [key, naiveKey(ops.filter((op) => op.input.key === key))]));
}

function naiveKey(ops: readonly Operation[]): boolean {
  assert.ok(ops.length <= 30);
  const failed = new Set<string>();
  const place = (placed: number, value: string | null): boolean => {
    const remaining = ops.filter((_, i) => (placed & (1 << i)) === 0);
    if (remaining.every((op) => op.output === null)) return true; // unknown ones: never
    if (failed.has(`${placed} ${value}`)) return false;
    const found = ops.some((op, i) => {
      if ((placed & (1 << i)) !== 0) return false;
      const mustWait = remaining.some(
        (r) => r !== op && r.returnedUs !== null && r.returnedUs < op.invokedUs,
      );
      const next = mustWait ? undefined : naiveStep(op, value);
      return next !== undefined && place(placed | (1 << i), next);
    });
    if (!found) failed.add(`${placed} ${value}`);
    return found;
  };
  return place(0, null);
}

/** The register after `op`, or undefined when its recorded output rules it out. */
function naiveStep(op: Operation, value: string | null): string | null | undefined {
  const input = op.input;
  const output = op.output;
  if (input.kind === "put") return input.value;
  if (input.kind === "get") {
    if (output === null) return value;
    return output.kind === "get" && output.value === value ? value : undefined;
  }
  const swaps = input.expected === value;
  if (output !== null && output.kind === "cas" && output.ok !== swaps) return undefined;
  return swaps ? input.value : value;
}

const tinyOp: fc.Arbitrary<Omit<Operation, "id">> = fc
  .record({
    client: fc.nat({ max: 3 }),
    key: fc.constantFrom("x", "y"),
    kind: fc.constantFrom("put" as const, "get" as const, "cas" as const),
    value: fc.constantFrom("a", "b"),
    expected: fc.constantFrom(null, "a", "b"),
    read: fc.constantFrom(null, "a", "b"),
    ok: fc.boolean(),
    inv: fc.nat({ max: 20 }),
    durationUs: fc.nat({ max: 12 }),
    unknown: fc.nat({ max: 4 }).map((n) => n === 0),
  })
  .map((r) => {
    const input: KvInput =
      r.kind === "put"
        ? { kind: "put", key: r.key, value: r.value }
        : r.kind === "get"
          ? { kind: "get", key: r.key }
          : { kind: "cas", key: r.key, expected: r.expected, value: r.value };
    const output: KvOutput =
      r.kind === "put"
        ? { kind: "put" }
        : r.kind === "get"
          ? { kind: "get", value: r.read }
          : { kind: "cas", ok: r.ok };
    return {
      client: r.client,
      input,
      output: r.unknown ? null : output,
      invokedUs: r.inv,
      returnedUs: r.unknown ? null : r.inv + r.durationUs,
    };
  });

// ---------------------------------------------------------------------------------------------

describe("checkLinearizability", () => {
  describe("accepts", () => {
    it("accepts an empty history", () => {
      assert.deepEqual(check([]), { status: "ok", keys: 0, operations: 0 });
    });

    it("accepts a sequential history", () => {
      const h = new History()
        .get(1, "x", null, 0, 1)
        .put(1, "x", "a", 2, 3)
        .get(2, "x", "a", 4, 5)
        .cas(1, "x", "a", "b", true, 6, 7)
        .cas(2, "x", "a", "c", false, 8, 9)
        .get(1, "x", "b", 10, 11)
        .cas(2, "x", null, "d", false, 12, 13);
      assert.deepEqual(check(h), { status: "ok", keys: 1, operations: 7 });
    });

    it("accepts a read concurrent with a write seeing either value", () => {
      assertOk(new History().put(1, "x", "a", 0, 10).get(2, "x", null, 1, 5));
      assertOk(new History().put(1, "x", "a", 0, 10).get(2, "x", "a", 1, 5));
    });

    it("accepts concurrent writes whose order the reads agree on", () => {
      const h = new History()
        .put(1, "x", "a", 0, 10)
        .put(2, "x", "b", 0, 10)
        .get(3, "x", "a", 2, 4) // b, then a ...
        .get(3, "x", "a", 20, 21) // ... and a stays
        .cas(4, "x", "a", "c", true, 1, 30)
        .get(5, "x", "c", 25, 40);
      assertOk(h);
    });

    it("treats an operation returning at the instant another is invoked as concurrent", () => {
      assertOk(new History().put(1, "x", "a", 0, 10).get(2, "x", null, 10, 20));
      assertViolation(new History().put(1, "x", "a", 0, 10).get(2, "x", null, 11, 20));
    });
  });

  describe("fires", () => {
    it("fires on a stale read after a completed write", () => {
      assertViolation(new History().put(1, "x", "a", 0, 10).get(2, "x", null, 20, 30));
    });

    it("fires on a read of a value never written", () => {
      assertViolation(new History().put(1, "x", "a", 0, 10).get(2, "x", "zzz", 5, 30));
    });

    it("fires on two sequential cas succeeding from the same expected value", () => {
      const h = new History()
        .put(1, "x", "a", 0, 10)
        .cas(1, "x", "a", "b", true, 20, 30)
        .cas(2, "x", "a", "c", true, 40, 50);
      assertViolation(h);
    });

    it("fires on a lost write: a read returns the older of two completed writes", () => {
      const h = new History()
        .put(1, "x", "a", 0, 10)
        .put(2, "x", "b", 20, 30)
        .get(3, "x", "a", 40, 50);
      assertViolation(h);
    });

    it("fires on non-monotonic reads by two readers in real-time order", () => {
      const h = new History()
        .put(1, "x", "a", 0, 10)
        .put(2, "x", "b", 20, 100)
        .get(3, "x", "b", 30, 40)
        .get(4, "x", "a", 50, 60);
      assertViolation(h);
    });

    it("fires on a read of a value whose put was invoked after the read returned", () => {
      assertViolation(new History().get(1, "x", "a", 0, 10).put(2, "x", "a", 20, 30));
    });
  });

  describe("unknown outcomes", () => {
    it("lets an unknown put explain a later read of its value", () => {
      const h = new History()
        .put(1, "x", "a", 0, 10)
        .put(2, "x", "b", 20, null)
        .get(3, "x", "b", 1000, 1010);
      assertOk(h);
    });

    it("lets an unknown put never take effect", () => {
      const h = new History()
        .put(1, "x", "a", 0, 10)
        .put(2, "x", "b", 20, null)
        .get(3, "x", "a", 30, 40)
        .get(3, "x", "a", 5000, 5010);
      assertOk(h);
    });

    it("lets an unknown put take effect long after the client gave up", () => {
      const h = new History()
        .put(1, "x", "a", 0, 10)
        .put(2, "x", "b", 20, null)
        .get(3, "x", "a", 30, 40)
        .get(3, "x", "b", 50, 60);
      assertOk(h);
    });

    it("does not let an unknown put take effect twice", () => {
      const h = new History()
        .put(1, "x", "a", 0, 10)
        .put(2, "x", "b", 20, null)
        .get(3, "x", "b", 30, 40)
        .put(1, "x", "a", 45, 46)
        .get(3, "x", "b", 50, 60);
      assertViolation(h);
    });

    it("does not let an unknown put invoked after a read returned explain that read", () => {
      assertViolation(new History().get(1, "x", "b", 0, 10).put(2, "x", "b", 20, null));
    });

    it("lets an unknown cas succeed or not happen", () => {
      assertOk(new History().cas(1, "x", null, "a", true, 0, null).get(2, "x", "a", 10, 20));
      assertOk(new History().cas(1, "x", null, "a", true, 0, null).get(2, "x", null, 10, 20));
    });

    it("does not let an unknown cas swap from a value the register never held then", () => {
      const h = new History()
        .put(1, "x", "a", 0, 10)
        .cas(2, "x", null, "b", true, 20, null)
        .get(3, "x", "b", 30, 40);
      assertViolation(h);
    });

    it("ignores unknown reads", () => {
      assertOk(new History().put(1, "x", "a", 0, 10).get(2, "x", "zzz", 20, null));
    });
  });

  describe("keys", () => {
    it("checks keys independently", () => {
      const h = new History()
        .put(1, "x", "a", 0, 10)
        .put(2, "y", "b", 0, 10)
        .get(3, "x", "a", 20, 30)
        .get(3, "y", "b", 20, 30)
        .get(4, "z", null, 0, 100);
      assert.deepEqual(check(h), { status: "ok", keys: 3, operations: 5 });
    });

    it("names the first failing key in sorted order", () => {
      const h = new History()
        .put(1, "c", "a", 0, 10)
        .get(1, "c", null, 20, 30) // violation on c
        .put(1, "a", "a", 0, 10)
        .get(1, "a", "a", 20, 30)
        .put(1, "b", "a", 0, 10)
        .get(1, "b", "zzz", 20, 30); // violation on b
      assertViolation(h, "b");
    });

    it("reports a violation on one key over a search out of budget on another", () => {
      const h = new History();
      for (let i = 0; i < 12; i += 1) h.put(i, "a", `v${i}`, 0, 100);
      h.get(20, "a", "v3", 200, 210).get(20, "a", "v5", 220, 230);
      h.put(1, "b", "a", 300, 310).get(1, "b", null, 320, 330);
      const result = check(h, 50);
      assert.equal(result.status, "violation");
      assert.equal(result.key, "b");
    });
  });

  describe("reports", () => {
    it("reports a small failing prefix that fails on its own, naming the stuck operation", () => {
      const h = new History().put(1, "x", "a", 0, 1);
      for (let i = 1; i <= 100; i += 1) {
        // A stale read at the 10th step; everything else sequential and correct.
        const read = i === 10 ? "v8" : `v${i}`;
        h.put(1, "x", `v${i}`, 10 * i, 10 * i + 2).get(2, "x", read, 10 * i + 4, 10 * i + 6);
      }
      const result = check(h);
      assert.equal(result.status, "violation");
      assert.ok(result.operations.length <= 22, `${result.operations.length} operations`);
      const readsV8 = (op: Operation) => op.output?.kind === "get" && op.output.value === "v8";
      assert.ok(result.operations.some(readsV8));
      assert.equal(check(result.operations).status, "violation");
      assert.match(result.message, /^no linearization of the key's 201 operations/);
      assert.match(result.message, /get\(\) => "v8"/);
    });

    it("throws on a malformed history", () => {
      const put: Operation = {
        id: 1,
        client: 1,
        input: { kind: "put", key: "x", value: "a" },
        output: { kind: "put" },
        invokedUs: 10,
        returnedUs: 20,
      };
      assert.throws(() => checkLinearizability([put, put]), /appears twice/);
      assert.throws(() => checkLinearizability([{ ...put, returnedUs: 5 }]), /returned before/);
      assert.throws(() => checkLinearizability([{ ...put, output: null }]), /both/);
      assert.throws(
        () => checkLinearizability([{ ...put, output: { kind: "get", value: null } }]),
        /answered with a get/,
      );
    });
  });

  describe("budget", () => {
    /** 14 concurrent writes, then two reads that no single order of them explains. */
    function pathological(): History {
      const h = new History();
      for (let i = 0; i < 14; i += 1) h.put(i, "x", `v${i}`, 0, 100);
      return h.get(20, "x", "v3", 200, 210).get(20, "x", "v5", 220, 230);
    }

    it("returns unknown, not ok, when the budget runs out", () => {
      const result = check(pathological(), 100);
      assert.equal(result.status, "unknown");
      assert.equal(result.key, "x");
      assert.match(result.message, /budget of 100 steps/);
    });

    it("returns unknown, not ok, on a linearizable history with a tiny budget", () => {
      const h = new History();
      for (let i = 0; i < 50; i += 1) {
        h.put(1, "x", `v${i}`, 10 * i, 10 * i + 1).get(2, "x", `v${i}`, 10 * i + 2, 10 * i + 3);
      }
      assert.equal(check(h, 5).status, "unknown");
      assert.equal(check(h).status, "ok");
    });

    it("ends quickly on the pathological history with the default budget", () => {
      const started = performance.now();
      const result = check(pathological());
      assert.notEqual(result.status, "ok");
      assert.ok(performance.now() - started < 3000);
    });
  });

  describe("performance", () => {
    it("checks 2,000 mostly sequential operations on one key in well under a second", () => {
      const random = prng(7);
      const h = new History();
      for (let i = 0; i < 1000; i += 1) {
        const t = 100 * i;
        // Now and then a slow write overlapping the next pair, left unknown half of the time;
        // it can always be ordered before the write of this pair.
        if (random() < 0.05) h.put(3, "x", `w${i}`, t, random() < 0.5 ? null : t + 150);
        h.put(1, "x", `v${i}`, t + 10, t + 20).get(2, "x", `v${i}`, t + 30, t + 40);
      }
      const started = performance.now();
      assert.equal(check(h).status, "ok");
      const elapsedMs = performance.now() - started;
      assert.ok(elapsedMs < 1000, `${elapsedMs} ms`);
    });

    it("finds a stale read late in 2,000 mostly sequential operations quickly", () => {
      const random = prng(8);
      const h = new History();
      for (let i = 0; i < 1000; i += 1) {
        const t = 100 * i;
        if (random() < 0.05) h.put(3, "x", `w${i}`, t, random() < 0.5 ? null : t + 150);
        // The 990th read sees the value of the write before.
        const read = i === 990 ? "v989" : `v${i}`;
        h.put(1, "x", `v${i}`, t + 10, t + 20).get(2, "x", read, t + 30, t + 40);
      }
      const started = performance.now();
      const result = check(h);
      const elapsedMs = performance.now() - started;
      assert.equal(result.status, "violation");
      assert.ok(elapsedMs < 1000, `${elapsedMs} ms`);
    });

    it("checks 20 concurrent clients with 200 operations on one key quickly", () => {
      const random = prng(11);
      const planned: PlannedOp[] = [];
      for (let i = 0; i < 200; i += 1) {
        const r = random();
        planned.push({
          client: i % 20,
          key: "x",
          kind: r < 0.4 ? "put" : r < 0.8 ? "get" : "cas",
          value: `v${i}`,
          expected: random() < 0.5 ? null : `v${Math.floor(random() * i)}`,
          gapUs: Math.floor(random() * 20),
          durationUs: 50 + Math.floor(random() * 200),
          effectPermille: Math.floor(random() * 1001),
          outcome: random() < 0.05 ? "unknownApplied" : "known",
          lateUs: Math.floor(random() * 500),
        });
      }
      const ops = execute(planned);
      let started = performance.now();
      assert.equal(check(ops).status, "ok");
      assert.ok(performance.now() - started < 1000, `${performance.now() - started} ms`);

      const stale = staleReads(ops);
      const { index, value } = stale[Math.floor(stale.length / 2)] ?? { index: -1, value: null };
      const mutated = replaceRead(ops, index, value);
      started = performance.now();
      assert.notEqual(check(mutated).status, "ok");
      assert.ok(performance.now() - started < 3000, `${performance.now() - started} ms`);
    });
  });

  describe("properties", () => {
    const history = fc
      .tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 3 }))
      .chain(([clients, keyCount]) =>
        fc.array(plannedOp(clients, ["x", "y", "z"].slice(0, keyCount)), { maxLength: 30 }),
      )
      .map(execute);

    it("accepts every history produced by running operations against a register", () => {
      fc.assert(
        fc.property(history, (ops) => {
          assert.equal(check(ops).status, "ok");
        }),
        { numRuns: NUM_RUNS },
      );
    });

    it("rejects such a history once a read returns a value nobody wrote", () => {
      fc.assert(
        fc.property(history, fc.nat(), (ops, pick) => {
          const gets = completedGets(ops);
          fc.pre(gets.length > 0);
          const index = gets[pick % gets.length] ?? -1;
          const result = check(replaceRead(ops, index, "never-written"));
          assert.equal(result.status, "violation");
          assert.equal(result.key, ops[index]?.input.key);
        }),
        { numRuns: NUM_RUNS },
      );
    });

    it("rejects such a history once a read returns a value written only after it returned", () => {
      fc.assert(
        fc.property(history, fc.nat(), (ops, pick) => {
          const candidates = completedGets(ops).flatMap((index) => {
            const read = ops[index];
            if (read === undefined || read.returnedUs === null) return [];
            const writtenLater = ["a", "b", "c"].filter((value) => {
              const writes = ops.filter(
                (op) => op.input.key === read.input.key && writtenValue(op) === value,
              );
              const afterRead = (op: Operation) => op.invokedUs > (read.returnedUs ?? 0);
              return writes.length > 0 && writes.every(afterRead);
            });
            return writtenLater.map((value) => ({ index, value }));
          });
          fc.pre(candidates.length > 0);
          const { index, value } = candidates[pick % candidates.length] ?? { index: -1, value: "" };
          const result = check(replaceRead(ops, index, value));
          assert.equal(result.status, "violation");
          assert.equal(result.key, ops[index]?.input.key);
        }),
        { numRuns: NUM_RUNS },
      );
    });

    it("rejects such a history once a read returns a value surely overwritten before it", () => {
      fc.assert(
        fc.property(history, fc.nat(), (ops, pick) => {
          const stale = staleReads(ops);
          fc.pre(stale.length > 0);
          const { index, value } = stale[pick % stale.length] ?? { index: -1, value: null };
          const result = check(replaceRead(ops, index, value));
          assert.equal(result.status, "violation");
          assert.equal(result.key, ops[index]?.input.key);
        }),
        { numRuns: NUM_RUNS },
      );
    });

    it("agrees with a naive search on run histories with one output changed", () => {
      const small = fc
        .integer({ min: 1, max: 4 })
        .chain((clients) => fc.array(plannedOp(clients, ["x"]), { maxLength: 12 }))
        .map(execute);
      fc.assert(
        fc.property(small, fc.nat(), fc.constantFrom(null, "a", "b", "c"), (ops, pick, read) => {
          const index = pick % Math.max(ops.length, 1);
          const changed = ops.map((op, i) => {
            if (i !== index || op.output === null) return op;
            if (op.output.kind === "cas") {
              return { ...op, output: { kind: "cas", ok: !op.output.ok } };
            }
            if (op.output.kind === "get") return { ...op, output: { kind: "get", value: read } };
            return op;
          }) as Operation[];
          const result = check(changed);
          assert.equal(result.status === "ok", naiveKey(changed));
          if (result.status === "violation") assert.equal(naiveKey(result.operations), false);
        }),
        { numRuns: 1_000 },
      );
    });

    it("agrees with a naive search over every order on tiny histories", () => {
      const tiny = fc
        .array(tinyOp, { maxLength: 9 })
        .map((ops) => ops.map((op, id) => ({ ...op, id })));
      fc.assert(
        fc.property(tiny, (ops) => {
          const naive = naiveLinearizable(ops);
          const firstBad = [...naive].find(([, ok]) => !ok)?.[0];
          const result = check(ops);
          if (firstBad === undefined) {
            assert.equal(result.status, "ok");
          } else {
            assert.equal(result.status, "violation");
            assert.equal(result.key, firstBad);
            assert.equal(naiveKey(result.operations), false, "the subset fails on its own");
          }
        }),
        { numRuns: 2_000 },
      );
    });
  });
});
