/**
 * Linearizability of the simulator's key-value histories: a Wing–Gong search with Lowe's
 * memoization, in the manner of Porcupine, partitioned per key.
 *
 * Each key is an independent register (initially absent, `null`), so a history is linearizable
 * exactly when each key's sub-history is (linearizability is compositional; Herlihy & Wing §3.3).
 * Keys are checked in sorted order so that the verdict and its message are deterministic.
 *
 * Real-time order: operation A must come before operation B only when `A.returnedUs <
 * B.invokedUs`, strictly. When A returns at the very microsecond B is invoked the two count as
 * concurrent. In the event list this means that at equal times calls sort before returns. That is
 * the conservative rule: it allows every order the strict rule allows, so the checker never
 * reports a violation that only a tie of clock readings would create.
 *
 * Unknown outcome (`output === null && returnedUs === null`: the client gave up): as in
 * Porcupine, the operation's return is at +infinity and its output unconstrained, so it may take
 * effect at any instant after `invokedUs`, and because an operation placed after every completed
 * one is invisible, it may also never take effect. An unknown `get` changes nothing and is dropped.
 * The search keeps unknown writes out of the event list and tries them only after every
 * completed candidate, and only when they would change the register, since an unknown write that
 * changes nothing is as good as omitted.
 *
 * Memoization: a search state is (completed operations linearized, unknown operations used,
 * register value). A state is recorded when its whole subtree has failed. A state with the same
 * completed set and value as a failed one, and at least the same unknown operations used, has
 * fewer choices left and fails too, so it is pruned (Lowe's rule, strengthened by that
 * dominance over unknown operations, which are optional).
 *
 * The search is iterative (an explicit stack), bounded by a step budget, and pure: no clock, no
 * randomness, no host I/O.
 */
import { assert, unreachable } from "../../lib/assert.ts";
import type { Operation } from "../history.ts";

/** The default search budget per key, in steps (one step tries one candidate operation). */
export const SEARCH_STEPS_MAX_DEFAULT = 1_000_000;

/** Options for {@link checkLinearizability}. */
export interface LinearizabilityOptions {
  /**
   * The most search steps to spend on one key before giving up with status `"unknown"`. The
   * search for a smaller failing subset after a violation gets the same budget again, in total.
   * @defaultValue {@link SEARCH_STEPS_MAX_DEFAULT}
   */
  readonly searchStepsMax?: number;
}

/**
 * The verdict of {@link checkLinearizability}.
 * - `ok`: every key's history is linearizable; `keys` were checked, holding `operations` in all.
 * - `violation`: `key`'s history is not linearizable. `operations` are that key's operations
 *   invoked up to the end of the shortest failing prefix found, in input order (unknown-outcome
 *   reads left out); they form a failing history on their own.
 * - `unknown`: the search on `key` ran out of budget; nothing was proven either way.
 */
export type LinearizabilityResult =
  | { readonly status: "ok"; readonly keys: number; readonly operations: number }
  | {
      readonly status: "violation";
      readonly key: string;
      readonly message: string;
      readonly operations: Operation[];
    }
  | { readonly status: "unknown"; readonly key: string; readonly message: string };

/**
 * Checks that `ops` (any order) are linearizable against a register per key. Every key is
 * checked; the result names the first key in sorted order with a violation, or if there is
 * none, the first whose search ran out of budget. A violation is proven; `unknown` never hides
 * one that was found on another key.
 *
 * Throws an `AssertionFailure` on a malformed history (duplicate ids, output kind not matching
 * the input, only one of `output` and `returnedUs` missing, a return before its invocation).
 */
export function checkLinearizability(
  ops: readonly Operation[],
  options: LinearizabilityOptions = {},
): LinearizabilityResult {
  const searchStepsMax = options.searchStepsMax ?? SEARCH_STEPS_MAX_DEFAULT;
  assert(
    Number.isSafeInteger(searchStepsMax) && searchStepsMax > 0,
    `searchStepsMax must be a positive integer, got ${searchStepsMax}`,
  );
  validateHistory(ops);
  const byKey = partitionByKey(ops);
  const keys = [...byKey.keys()].sort(compareStrings);
  let firstUnknown: LinearizabilityResult | null = null;
  for (const key of keys) {
    const keyOps = byKey.get(key) ?? [];
    const verdict = searchKey(keyOps, searchStepsMax);
    if (verdict.kind === "violation") return violation(key, keyOps, verdict, searchStepsMax);
    if (verdict.kind === "unknown" && firstUnknown === null) {
      firstUnknown = {
        status: "unknown",
        key,
        message:
          `key ${quote(key)}: search budget of ${searchStepsMax} steps exhausted on ` +
          `${keyOps.length} operations; linearizability neither proven nor refuted`,
      };
    }
  }
  return firstUnknown ?? { status: "ok", keys: keys.length, operations: ops.length };
}

// ---------------------------------------------------------------------------------------------
// Input checks and partitioning.

function validateHistory(ops: readonly Operation[]): void {
  const ids = new Set<number>();
  for (const op of ops) {
    assert(!ids.has(op.id), `operation id ${op.id} appears twice`);
    ids.add(op.id);
    assert(Number.isFinite(op.invokedUs), `operation #${op.id}: invokedUs is not finite`);
    assert(
      (op.output === null) === (op.returnedUs === null),
      `operation #${op.id}: output and returnedUs must be both present or both null`,
    );
    if (op.output !== null) {
      assert(
        op.output.kind === op.input.kind,
        `operation #${op.id}: ${op.input.kind} answered with a ${op.output.kind} output`,
      );
    }
    if (op.returnedUs !== null) {
      assert(Number.isFinite(op.returnedUs), `operation #${op.id}: returnedUs is not finite`);
      assert(op.returnedUs >= op.invokedUs, `operation #${op.id}: returned before invoked`);
    }
  }
}

function partitionByKey(ops: readonly Operation[]): Map<string, Operation[]> {
  const byKey = new Map<string, Operation[]>();
  for (const op of ops) {
    const list = byKey.get(op.input.key);
    if (list === undefined) byKey.set(op.input.key, [op]);
    else list.push(op);
  }
  return byKey;
}

/** Code-unit order, independent of locale. */
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isUnknown(op: Operation): boolean {
  return op.output === null;
}

// ---------------------------------------------------------------------------------------------
// One key's history, compiled to arrays. Register values are interned: 0 is `null` (absent).

const OP_PUT = 0;
const OP_GET = 1;
const OP_CAS = 2;
/** A value no operation writes; a read or compare against it never matches the register. */
const VALUE_NEVER_WRITTEN = -1;

interface Compiled {
  /** Completed operations, indexed 0..completed.length-1. */
  readonly completed: readonly Operation[];
  readonly kind: Uint8Array;
  /** put: the value written; get: the value read; cas: the value expected. */
  readonly argA: Int32Array;
  /** cas: the value written. */
  readonly argB: Int32Array;
  /** cas: 1 when it answered ok. */
  readonly casOk: Uint8Array;
  /** Unknown-outcome puts and cas, sorted by invocation (then id). */
  readonly unknown: readonly Operation[];
  readonly unknownKind: Uint8Array;
  readonly unknownExpected: Int32Array;
  readonly unknownValue: Int32Array;
  readonly unknownInvokedUs: Float64Array;
}

function compileKey(ops: readonly Operation[]): Compiled {
  const interned = new Map<string, number>();
  const intern = (value: string): number => {
    let id = interned.get(value);
    if (id === undefined) {
      id = interned.size + 1;
      interned.set(value, id);
    }
    return id;
  };
  // Only writes create values; reads and compares look them up.
  for (const op of ops) if (op.input.kind !== "get") intern(op.input.value);
  const lookup = (value: string | null): number =>
    value === null ? 0 : (interned.get(value) ?? VALUE_NEVER_WRITTEN);

  const completed = ops.filter((op) => !isUnknown(op));
  const unknown = ops
    .filter((op) => isUnknown(op) && op.input.kind !== "get")
    .sort((a, b) => a.invokedUs - b.invokedUs || a.id - b.id);
  const c: Compiled = {
    completed,
    kind: new Uint8Array(completed.length),
    argA: new Int32Array(completed.length),
    argB: new Int32Array(completed.length),
    casOk: new Uint8Array(completed.length),
    unknown,
    unknownKind: new Uint8Array(unknown.length),
    unknownExpected: new Int32Array(unknown.length),
    unknownValue: new Int32Array(unknown.length),
    unknownInvokedUs: Float64Array.from(unknown, (op) => op.invokedUs),
  };
  completed.forEach((op, i) => compileCompleted(c, i, op, lookup));
  unknown.forEach((op, j) => {
    const input = op.input;
    if (input.kind === "get") return; // filtered out above
    c.unknownKind[j] = input.kind === "put" ? OP_PUT : OP_CAS;
    c.unknownExpected[j] = input.kind === "cas" ? lookup(input.expected) : 0;
    c.unknownValue[j] = lookup(input.value);
  });
  return c;
}

function compileCompleted(
  c: Compiled,
  i: number,
  op: Operation,
  lookup: (value: string | null) => number,
): void {
  const input = op.input;
  const output = op.output;
  assert(output !== null && output.kind === input.kind, `operation #${op.id} is completed`);
  switch (input.kind) {
    case "put":
      c.kind[i] = OP_PUT;
      c.argA[i] = lookup(input.value);
      return;
    case "get":
      c.kind[i] = OP_GET;
      c.argA[i] = output.kind === "get" ? lookup(output.value) : VALUE_NEVER_WRITTEN;
      return;
    case "cas":
      c.kind[i] = OP_CAS;
      c.argA[i] = lookup(input.expected);
      c.argB[i] = lookup(input.value);
      c.casOk[i] = output.kind === "cas" && output.ok ? 1 : 0;
      return;
    default:
      unreachable(input, "operation kind");
  }
}

/** The register after completed operation `i` from `value`, or -1 if its output rules it out. */
function stepCompleted(c: Compiled, i: number, value: number): number {
  const a = c.argA[i] ?? VALUE_NEVER_WRITTEN;
  switch (c.kind[i]) {
    case OP_PUT:
      return a;
    case OP_GET:
      return a === value ? value : -1;
    default: {
      const swaps = a === value;
      if (swaps !== (c.casOk[i] === 1)) return -1;
      return swaps ? (c.argB[i] ?? VALUE_NEVER_WRITTEN) : value;
    }
  }
}

/** The register after unknown operation `j` from `value`, or -1 if it would change nothing. */
function stepUnknown(c: Compiled, j: number, value: number): number {
  const written = c.unknownValue[j] ?? value;
  if (c.unknownKind[j] === OP_CAS && c.unknownExpected[j] !== value) return -1;
  return written === value ? -1 : written;
}

// ---------------------------------------------------------------------------------------------
// The search.

type KeyVerdict =
  | { readonly kind: "ok"; readonly steps: number }
  | { readonly kind: "unknown"; readonly steps: number }
  | {
      readonly kind: "violation";
      readonly steps: number;
      /** The most completed operations any branch of the search linearized. */
      readonly linearizedMax: number;
      /** The completed operation that branch could not get past. */
      readonly blocking: Operation | null;
      readonly completedCount: number;
    };

function searchKey(ops: readonly Operation[], searchStepsMax: number): KeyVerdict {
  return new KeySearch(compileKey(ops)).run(searchStepsMax);
}

/** A sorted, doubly linked list of call and return events; node 0 is the head sentinel. */
class EventList {
  readonly prev: Int32Array;
  readonly next: Int32Array;
  /** The completed operation each node belongs to. */
  readonly op: Int32Array;
  readonly isCall: Uint8Array;
  readonly timeUs: Float64Array;
  /** For a call node, its return node. */
  readonly match: Int32Array;

  constructor(completed: readonly Operation[]) {
    const size = 2 * completed.length + 1;
    this.prev = new Int32Array(size);
    this.next = new Int32Array(size);
    this.op = new Int32Array(size);
    this.isCall = new Uint8Array(size);
    this.timeUs = new Float64Array(size);
    this.match = new Int32Array(size);
    const events: { op: number; call: boolean; t: number }[] = [];
    completed.forEach((op, i) => {
      events.push({ op: i, call: true, t: op.invokedUs });
      events.push({ op: i, call: false, t: op.returnedUs ?? Infinity });
    });
    // The tie rule: at equal times calls come first, so touching intervals are concurrent.
    events.sort((a, b) => a.t - b.t || Number(b.call) - Number(a.call) || a.op - b.op);
    const callNode = new Int32Array(completed.length);
    events.forEach((event, k) => {
      const node = k + 1;
      this.prev[node] = k;
      this.next[node] = k + 2 < size ? k + 2 : -1;
      this.op[node] = event.op;
      this.isCall[node] = event.call ? 1 : 0;
      this.timeUs[node] = event.t;
      if (event.call) callNode[event.op] = node;
      else this.match[callNode[event.op] ?? 0] = node;
    });
    this.next[0] = size > 1 ? 1 : -1;
  }

  first(): number {
    return this.next[0] ?? -1;
  }

  /** Takes call node `c` and its return out of the list (Porcupine's `lift`). */
  lift(c: number): void {
    const r = this.match[c] ?? 0;
    this.next[this.prev[c] ?? 0] = this.next[c] ?? -1;
    this.prev[this.next[c] ?? 0] = this.prev[c] ?? 0;
    const afterReturn = this.next[r] ?? -1;
    this.next[this.prev[r] ?? 0] = afterReturn;
    if (afterReturn !== -1) this.prev[afterReturn] = this.prev[r] ?? 0;
  }

  /** Undoes the latest `lift(c)`; lifts are undone in reverse order. */
  unlift(c: number): void {
    const r = this.match[c] ?? 0;
    const afterReturn = this.next[r] ?? -1;
    this.next[this.prev[r] ?? 0] = r;
    if (afterReturn !== -1) this.prev[afterReturn] = r;
    this.next[this.prev[c] ?? 0] = c;
    this.prev[this.next[c] ?? 0] = c;
  }

  /** The first return node still in the list: the window of candidates ends there. */
  firstReturn(): number {
    let node = this.first();
    while (node !== -1 && this.isCall[node] === 1) node = this.next[node] ?? -1;
    return node;
  }
}

const FRAME_COMPLETED = 0;
const FRAME_UNKNOWN = 1;

/**
 * The depth-first search over one key. Its state: which completed operations are linearized
 * (`completedBits`, and lifted out of `events`), which unknown ones were used (`unknownBits`),
 * and the register `value`. A cursor walks the current state's candidates: first the calls
 * ahead of the first return in `events` (phase 0), then the unknown operations invoked no later
 * than that return (phase 1). Taking a candidate pushes a frame; running out pops one.
 */
class KeySearch {
  private readonly events: EventList;
  private readonly completedBits: Uint32Array;
  private readonly unknownBits: Uint32Array;
  /** Failed states: key (completed set, value) -> minimal sets of unknown operations used. */
  private readonly failed = new Map<string, Uint32Array[]>();
  private readonly frameKind: number[] = [];
  private readonly frameRef: number[] = [];
  private readonly frameValue: number[] = [];
  private value = 0;
  private linearized = 0;
  private phase = 0;
  private cursor = -1;
  private unknownCursor = 0;
  private windowEndUs = 0;
  private blocking = -1;
  private linearizedMax = -1;
  private blockingAtMax = -1;

  constructor(private readonly c: Compiled) {
    this.events = new EventList(c.completed);
    // An even number of words, so that the set reads as 16-bit character codes (see stateKey).
    this.completedBits = new Uint32Array(2 * Math.ceil(c.completed.length / 64));
    this.unknownBits = new Uint32Array(Math.ceil(c.unknown.length / 32));
    this.cursor = this.events.first();
  }

  run(searchStepsMax: number): KeyVerdict {
    const total = this.c.completed.length;
    let steps = 0;
    for (;;) {
      // Unknown operations left over can all go after the last completed one, or nowhere.
      if (this.linearized === total) return { kind: "ok", steps };
      if (steps >= searchStepsMax) return { kind: "unknown", steps };
      steps += 1;
      if (this.phase === 0) this.stepCompletedCandidate();
      else if (!this.stepUnknownCandidate() && !this.backtrack()) {
        return {
          kind: "violation",
          steps,
          linearizedMax: this.linearizedMax,
          blocking: this.c.completed[this.blockingAtMax] ?? null,
          completedCount: total,
        };
      }
    }
  }

  /** Phase 0: tries the call under the cursor, or ends the window at a return. */
  private stepCompletedCandidate(): void {
    const node = this.cursor;
    assert(node !== -1, "a return remains while completed operations remain");
    if (this.events.isCall[node] !== 1) {
      this.windowEndUs = this.events.timeUs[node] ?? Infinity;
      this.blocking = this.events.op[node] ?? -1;
      this.phase = 1;
      this.unknownCursor = 0;
      return;
    }
    const i = this.events.op[node] ?? -1;
    const next = stepCompleted(this.c, i, this.value);
    if (next >= 0) {
      setBit(this.completedBits, i);
      if (!this.isDominated(next)) {
        this.push(FRAME_COMPLETED, node, next);
        this.events.lift(node);
        this.linearized += 1;
        return;
      }
      clearBit(this.completedBits, i);
    }
    this.cursor = this.events.next[node] ?? -1;
  }

  /** Phase 1: tries the unknown operation under the cursor; false when none is left. */
  private stepUnknownCandidate(): boolean {
    const j = this.unknownCursor;
    if (j >= this.c.unknown.length) return false;
    if ((this.c.unknownInvokedUs[j] ?? Infinity) > this.windowEndUs) return false;
    this.unknownCursor = j + 1;
    if (hasBit(this.unknownBits, j)) return true;
    const next = stepUnknown(this.c, j, this.value);
    if (next < 0) return true;
    setBit(this.unknownBits, j);
    if (!this.isDominated(next)) this.push(FRAME_UNKNOWN, j, next);
    else clearBit(this.unknownBits, j);
    return true;
  }

  /** Enters the child state reached by a candidate; the bit sets are already updated. */
  private push(kind: number, ref: number, next: number): void {
    this.frameKind.push(kind);
    this.frameRef.push(ref);
    this.frameValue.push(this.value);
    this.value = next;
    this.phase = 0;
    this.cursor = this.events.first();
  }

  /** Records the current state as failed and returns to its parent; false at the root. */
  private backtrack(): boolean {
    this.recordFailure();
    if (this.linearized > this.linearizedMax) {
      this.linearizedMax = this.linearized;
      this.blockingAtMax = this.blocking;
    }
    const kind = this.frameKind.pop();
    const ref = this.frameRef.pop();
    const value = this.frameValue.pop();
    if (kind === undefined || ref === undefined || value === undefined) return false;
    this.value = value;
    if (kind === FRAME_COMPLETED) {
      this.events.unlift(ref);
      clearBit(this.completedBits, this.events.op[ref] ?? -1);
      this.linearized -= 1;
      this.phase = 0;
      this.cursor = this.events.next[ref] ?? -1;
    } else {
      clearBit(this.unknownBits, ref);
      const end = this.events.firstReturn();
      this.windowEndUs = this.events.timeUs[end] ?? Infinity;
      this.blocking = this.events.op[end] ?? -1;
      this.phase = 1;
      this.unknownCursor = ref + 1;
    }
    return true;
  }

  /** True when a failed state has these completed ops and `value`, and no more unknowns used. */
  private isDominated(value: number): boolean {
    if (this.failed.size === 0) return false;
    const used = this.failed.get(this.stateKey(value));
    if (used === undefined) return false;
    return used.some((bits) => isSubset(bits, this.unknownBits));
  }

  private recordFailure(): void {
    const key = this.stateKey(this.value);
    const mine = Uint32Array.from(this.unknownBits);
    // Keep an antichain: a set that contains the new one is now redundant.
    const kept = (this.failed.get(key) ?? []).filter((bits) => !isSubset(mine, bits));
    kept.push(mine);
    this.failed.set(key, kept);
  }

  /** The completed set as 16-bit character codes (fixed length per key), then the value. */
  private stateKey(value: number): string {
    const halves = new Uint16Array(this.completedBits.buffer);
    let key = "";
    const CHUNK = 4096;
    for (let start = 0; start < halves.length; start += CHUNK) {
      const chunk = halves.subarray(start, start + CHUNK);
      key += String.fromCharCode.apply(null, chunk as unknown as number[]);
    }
    return key + String.fromCharCode(value & 0xffff, value >>> 16);
  }
}

function setBit(bits: Uint32Array, i: number): void {
  bits[i >>> 5] = (bits[i >>> 5] ?? 0) | (1 << (i & 31));
}

function clearBit(bits: Uint32Array, i: number): void {
  bits[i >>> 5] = (bits[i >>> 5] ?? 0) & ~(1 << (i & 31));
}

function hasBit(bits: Uint32Array, i: number): boolean {
  return ((bits[i >>> 5] ?? 0) & (1 << (i & 31))) !== 0;
}

function isSubset(small: Uint32Array, large: Uint32Array): boolean {
  for (let w = 0; w < small.length; w += 1) {
    if (((small[w] ?? 0) & ~(large[w] ?? 0)) !== 0) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Reporting a violation, with the shortest failing prefix.

/**
 * The history as it stood at `cutUs`: operations invoked by then, with those not yet returned
 * turned into unknown-outcome ones. If a history is linearizable, so is every such prefix, so
 * failing prefixes are monotone in `cutUs` and a binary search finds the shortest.
 */
function prefixAt(ops: readonly Operation[], cutUs: number): Operation[] {
  const prefix: Operation[] = [];
  for (const op of ops) {
    if (op.invokedUs > cutUs) continue;
    if (op.returnedUs !== null && op.returnedUs <= cutUs) prefix.push(op);
    else prefix.push({ ...op, output: null, returnedUs: null });
  }
  return prefix;
}

function violation(
  key: string,
  keyOps: readonly Operation[],
  full: Extract<KeyVerdict, { kind: "violation" }>,
  searchStepsMax: number,
): LinearizabilityResult {
  const times = [
    ...new Set(keyOps.flatMap((op) => [op.invokedUs, ...(op.returnedUs === null ? [] : [op.returnedUs])])),
  ].sort((a, b) => a - b);
  let lo = 0;
  let hi = times.length - 1; // the cut at the last event is the whole history
  let best = full;
  let budget = searchStepsMax;
  while (lo < hi && budget > 0) {
    const mid = (lo + hi) >>> 1;
    const verdict = searchKey(prefixAt(keyOps, times[mid] ?? Infinity), budget);
    budget -= verdict.steps;
    if (verdict.kind === "violation") {
      hi = mid;
      best = verdict;
    } else {
      lo = mid + 1; // linearizable, or undecided within budget: look at longer prefixes
    }
  }
  const cutUs = times[hi] ?? Infinity;
  const operations = keyOps.filter(
    (op) => op.invokedUs <= cutUs && !(isUnknown(op) && op.input.kind === "get"),
  );
  const blocked =
    best.blocking === null
      ? ""
      : `; the deepest attempt linearized ${best.linearizedMax} of ${best.completedCount} ` +
        `completed operations and could not place ${describeOperation(best.blocking)}`;
  const message =
    `key ${quote(key)}: no linearization of its ${keyOps.length} operations; the history up to ` +
    `t=${cutUs}us (${operations.length} operations) already fails${blocked}`;
  return { status: "violation", key, message, operations };
}

function quote(value: string | null): string {
  return value === null ? "null" : JSON.stringify(value);
}

/** e.g. `#7 client 2 cas("a" -> "b") => ok over [100, 250]us`. */
function describeOperation(op: Operation): string {
  const input = op.input;
  const call =
    input.kind === "put"
      ? `put(${quote(input.value)})`
      : input.kind === "get"
        ? "get()"
        : `cas(${quote(input.expected)} -> ${quote(input.value)})`;
  const output = op.output;
  const answer =
    output === null
      ? "?"
      : output.kind === "get"
        ? quote(output.value)
        : output.kind === "cas" && !output.ok
          ? "failed"
          : "ok";
  return `#${op.id} client ${op.client} ${call} => ${answer} over [${op.invokedUs}, ${op.returnedUs ?? "?"}]us`;
}
