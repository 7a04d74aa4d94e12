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
 * effect at any instant after `invokedUs`; and since an operation placed after every completed
 * one is invisible, it may also never take effect. An unknown get changes nothing and is dropped.
 * Unknown writes stay out of the event list: they are moves the search may make once invoked.
 *
 * Per key, in order:
 * 1. A cheap test: a get that read a value (or a cas that swapped from one) no write of which was
 *    invoked before it returned is a violation on its face.
 * 2. The search, depth first over states (completed operations linearized, unknown operations
 *    used, register value), iterative with an explicit stack and bounded by `searchStepsMax`.
 *    Moves are ordered to find a linearization fast (see `KeySearch.enter`): a completed read
 *    that matches the register is taken alone, writes are tried when something pending needs
 *    their value, and unknown writes only when needed.
 * 3. On a violation, a binary search for the shortest failing prefix, to report few operations.
 *
 * Memoization: a state is recorded when its whole subtree has failed. A state with the same
 * completed set and value as a failed one, and at least the same unknown operations used, has
 * fewer choices left and fails too, so it is pruned (Lowe's rule, strengthened by that
 * dominance over unknown operations, which are optional).
 *
 * Pure and deterministic: no clock, no randomness, no host I/O.
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
 * - `violation`: `key`'s history is not linearizable. `operations`, in input order, fail on
 *   their own: a read of a value nobody had yet been asked to write and those writes, or else
 *   the key's operations invoked up to the end of the shortest failing prefix found (unknown
 *   reads left out). `message` names the operation the deepest attempt could not place.
 * - `unknown`: the search on `key` ran out of budget; nothing was proven either way.
 *
 * `message` does not repeat the key.
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
    const unexplained = unexplainedRead(key, keyOps);
    if (unexplained !== null) return unexplained;
    const verdict = searchKey(keyOps, searchStepsMax);
    if (verdict.kind === "violation") return violation(key, keyOps, verdict, searchStepsMax);
    if (verdict.kind === "unknown" && firstUnknown === null) {
      firstUnknown = {
        status: "unknown",
        key,
        message:
          `search budget of ${searchStepsMax} steps exhausted on ` +
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

/**
 * The cheap case first: an operation that observed a value (a get that read it, a cas that
 * swapped from it) which no write of that value had been invoked to produce by the time the
 * operation returned. It fails together with just those writes, so no search is needed; when
 * there are several, the one that returned first (then the lowest id) is reported.
 */
function unexplainedRead(key: string, ops: readonly Operation[]): LinearizabilityResult | null {
  const firstWriteUs = new Map<string, number>();
  for (const op of ops) {
    const value = writtenValue(op);
    if (value === null) continue;
    const earliest = firstWriteUs.get(value);
    if (earliest === undefined || op.invokedUs < earliest) firstWriteUs.set(value, op.invokedUs);
  }
  let culprit: { op: Operation; value: string } | null = null;
  for (const op of ops) {
    const value = observedValue(op);
    if (value === null || op.returnedUs === null) continue;
    if ((firstWriteUs.get(value) ?? Infinity) <= op.returnedUs) continue;
    const earlier =
      culprit === null ||
      op.returnedUs < (culprit.op.returnedUs ?? Infinity) ||
      (op.returnedUs === culprit.op.returnedUs && op.id < culprit.op.id);
    if (earlier) culprit = { op, value };
  }
  if (culprit === null) return null;
  const { op, value } = culprit;
  const operations = ops.filter((o) => o === op || writtenValue(o) === value);
  const verb = op.input.kind === "get" ? "read" : "swapped from";
  return {
    status: "violation",
    key,
    message:
      `${describeOperation(op)} ${verb} ${quote(value)}, but no write of ` +
      `${quote(value)} was invoked before it returned`,
    operations,
  };
}

/** The value `op` may have written: not a get's, nor a cas's that answered it failed. */
function writtenValue(op: Operation): string | null {
  if (op.input.kind === "get") return null;
  if (op.output?.kind === "cas" && !op.output.ok) return null;
  return op.input.value;
}

/** The non-null value a completed get read or a successful cas swapped from, else null. */
function observedValue(op: Operation): string | null {
  const output = op.output;
  if (output?.kind === "get") return output.value;
  if (output?.kind === "cas" && output.ok && op.input.kind === "cas") return op.input.expected;
  return null;
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
  /** Interned values, counting `null`: ids are 0..valueCount-1. */
  readonly valueCount: number;
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
    valueCount: interned.size + 1,
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

/** A completed get, or a completed cas that failed: it leaves the register as it is. */
function isReadOnly(c: Compiled, i: number): boolean {
  return c.kind[i] === OP_GET || (c.kind[i] === OP_CAS && c.casOk[i] === 0);
}

/**
 * The value completed operation `i` needs the register to hold (a get: what it read; a cas
 * that succeeded: what it expected), or VALUE_NEVER_WRITTEN when no single value is needed.
 */
function wantedValue(c: Compiled, i: number): number {
  if (c.kind[i] === OP_GET || (c.kind[i] === OP_CAS && c.casOk[i] === 1)) {
    return c.argA[i] ?? VALUE_NEVER_WRITTEN;
  }
  return VALUE_NEVER_WRITTEN;
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

/** Tiers of moves, tried in this order; see `KeySearch.enter`. */
const TIER_COUNT = 7;

/**
 * The depth-first search over one key. Its state: which completed operations are linearized
 * (`completedBits`, and lifted out of `events`), which unknown ones were used (`unknownBits`),
 * and the register value. Each state on the path is a level of the explicit stack, holding its
 * moves (a call node `> 0` of a completed operation, or `-(j + 1)` for unknown operation j) and
 * the register after each. Taking a move enters a child state; running out of moves records the
 * state as failed and backs up. The stack and the move lists live in typed arrays allocated once.
 */
class KeySearch {
  private readonly events: EventList;
  private readonly completedBits: Uint32Array;
  private readonly unknownBits: Uint32Array;
  /** Zobrist-style hash of `completedBits`, kept up to date move by move. */
  private completedHash = 0;
  private readonly failed: FailedStates;
  // The stack: one level per state on the current path; the root is level 0.
  private depth = 0;
  private readonly levelValue: Int32Array;
  private readonly levelBlocking: Int32Array;
  private readonly levelStart: Int32Array;
  private readonly levelCount: Int32Array;
  private readonly levelIndex: Int32Array;
  // Every level's moves, back to back (a stack too), and the register after each.
  private movePool: Int32Array;
  private valuePool: Int32Array;
  // Scratch for `enter`, sized for the widest possible window.
  private readonly scratchMove: Int32Array;
  private readonly scratchValue: Int32Array;
  private readonly scratchTier: Uint8Array;
  /** `wantedEpoch[value] === epoch`: some pending operation needs the register to hold it. */
  private readonly wantedEpoch: Float64Array;
  private epoch = 0;
  private linearized = 0;
  private linearizedMax = -1;
  private blockingAtMax = -1;

  constructor(private readonly c: Compiled) {
    this.events = new EventList(c.completed);
    this.completedBits = new Uint32Array(Math.ceil(c.completed.length / 32));
    this.unknownBits = new Uint32Array(Math.ceil(c.unknown.length / 32));
    this.failed = new FailedStates(this.completedBits.length, this.unknownBits.length);
    const depthMax = c.completed.length + c.unknown.length + 1;
    this.levelValue = new Int32Array(depthMax);
    this.levelBlocking = new Int32Array(depthMax);
    this.levelStart = new Int32Array(depthMax);
    this.levelCount = new Int32Array(depthMax);
    this.levelIndex = new Int32Array(depthMax);
    this.movePool = new Int32Array(1024);
    this.valuePool = new Int32Array(1024);
    this.scratchMove = new Int32Array(depthMax);
    this.scratchValue = new Int32Array(depthMax);
    this.scratchTier = new Uint8Array(depthMax);
    this.wantedEpoch = new Float64Array(c.valueCount);
  }

  run(searchStepsMax: number): KeyVerdict {
    const total = this.c.completed.length;
    if (total === 0) return { kind: "ok", steps: 0 };
    let steps = 0;
    this.enter(0);
    for (;;) {
      const top = this.depth - 1;
      const index = this.levelIndex[top] ?? 0;
      if (index >= (this.levelCount[top] ?? 0)) {
        if (!this.backtrack()) return this.violation(steps);
        continue;
      }
      if (steps >= searchStepsMax) return { kind: "unknown", steps };
      steps += 1;
      const slot = (this.levelStart[top] ?? 0) + index;
      const move = this.movePool[slot] ?? 0;
      const value = this.valuePool[slot] ?? 0;
      this.setMove(move, true);
      if (this.isDominated(value)) {
        this.setMove(move, false);
        this.levelIndex[top] = index + 1;
        continue;
      }
      if (move > 0) {
        this.events.lift(move);
        this.linearized += 1;
        // Unknown operations left over can all go after the last completed one, or nowhere.
        if (this.linearized === total) return { kind: "ok", steps };
      }
      this.enter(value);
    }
  }

  /**
   * Pushes the level of the state just entered, whose register holds `value`.
   *
   * A completed read (a get, or a cas that failed) that matches the register is the only move:
   * it changes nothing, and any linearization from here stays one with it moved to the front,
   * so trying anything else first is wasted work. Otherwise the moves are writes, in tiers: those
   * producing the value the blocking operation needs (completed, then unknown), the blocking
   * operation itself, those producing a value another pending operation needs (completed, then
   * unknown), other completed writes, and last other unknown writes, only when a failed cas needs
   * the register to change. This follows the just-in-time idea: linearize a write when something
   * needs it, so that orders of concurrent writes nothing observes are rarely explored.
   *
   * Leaving out the other unknown writes loses no linearization: in any linearization, an
   * unknown write followed by an operation that neither reads its value, nor expects it, nor is a
   * failed cas stuck on the value before it, is either overwritten by that operation (drop the
   * write: it may never take effect) or commutes with it (move the write later: it has no
   * deadline). Repeating this ends with every unknown write where something needs it, or gone.
   */
  private enter(value: number): void {
    const c = this.c;
    const end = this.events.firstReturn();
    const blocking = this.events.op[end] ?? -1;
    const windowEndUs = this.events.timeUs[end] ?? Infinity;
    const forced = this.forcedRead(value, end);
    if (forced !== -1) {
      this.pushLevel(value, blocking, 1);
      this.movePool[this.levelStart[this.depth - 1] ?? 0] = forced;
      this.valuePool[this.levelStart[this.depth - 1] ?? 0] = value;
      return;
    }
    const blockingWants = this.markWanted(value, end, windowEndUs);
    const stuck = this.isStuck(value, end);
    let count = 0;
    for (let node = this.events.first(); node !== end; node = this.events.next[node] ?? end) {
      const i = this.events.op[node] ?? -1;
      const next = stepCompleted(c, i, value);
      if (next < 0) continue;
      this.scratchMove[count] = node;
      this.scratchValue[count] = next;
      this.scratchTier[count] =
        next === blockingWants ? 0 : i === blocking ? 2 : this.isWanted(next) ? 3 : 5;
      count += 1;
    }
    for (let j = 0; j < c.unknown.length; j += 1) {
      if ((c.unknownInvokedUs[j] ?? Infinity) > windowEndUs) break;
      if (hasBit(this.unknownBits, j)) continue;
      const next = stepUnknown(c, j, value);
      if (next < 0) continue;
      const tier = next === blockingWants ? 1 : this.isWanted(next) ? 4 : stuck ? 6 : -1;
      if (tier === -1) continue;
      this.scratchMove[count] = -(j + 1);
      this.scratchValue[count] = next;
      this.scratchTier[count] = tier;
      count += 1;
    }
    this.pushLevel(value, blocking, count);
    let slot = this.levelStart[this.depth - 1] ?? 0;
    for (let tier = 0; tier < TIER_COUNT; tier += 1) {
      for (let k = 0; k < count; k += 1) {
        if (this.scratchTier[k] !== tier) continue;
        this.movePool[slot] = this.scratchMove[k] ?? 0;
        this.valuePool[slot] = this.scratchValue[k] ?? 0;
        slot += 1;
      }
    }
  }

  /** A call node of a completed read that matches `value`, or -1. */
  private forcedRead(value: number, end: number): number {
    for (let node = this.events.first(); node !== end; node = this.events.next[node] ?? end) {
      const i = this.events.op[node] ?? -1;
      if (isReadOnly(this.c, i) && stepCompleted(this.c, i, value) >= 0) return node;
    }
    return -1;
  }

  /**
   * Marks the values pending operations need: what a completed get read or a completed cas
   * expected (when the register holds something else), and what an unknown cas that could still
   * fire expects (unknown writes can chain). Returns the value the blocking operation needs.
   */
  private markWanted(value: number, end: number, windowEndUs: number): number {
    const c = this.c;
    this.epoch += 1;
    let blockingWants = VALUE_NEVER_WRITTEN;
    for (let node = this.events.first(); node !== end; node = this.events.next[node] ?? end) {
      const i = this.events.op[node] ?? -1;
      const wants = wantedValue(c, i);
      if (wants < 0 || wants === value) continue;
      this.wantedEpoch[wants] = this.epoch;
      if (i === (this.events.op[end] ?? -1)) blockingWants = wants;
    }
    for (let j = 0; j < c.unknown.length; j += 1) {
      if ((c.unknownInvokedUs[j] ?? Infinity) > windowEndUs) break;
      const expected = c.unknownExpected[j] ?? VALUE_NEVER_WRITTEN;
      if (c.unknownKind[j] !== OP_CAS || hasBit(this.unknownBits, j) || expected < 0) continue;
      this.wantedEpoch[expected] = this.epoch;
    }
    return blockingWants;
  }

  private isWanted(value: number): boolean {
    return this.wantedEpoch[value] === this.epoch;
  }

  /** True when a pending failed cas expects `value`: it needs the register changed, to anything. */
  private isStuck(value: number, end: number): boolean {
    const c = this.c;
    for (let node = this.events.first(); node !== end; node = this.events.next[node] ?? end) {
      const i = this.events.op[node] ?? -1;
      if (c.kind[i] === OP_CAS && c.casOk[i] === 0 && c.argA[i] === value) return true;
    }
    return false;
  }

  private pushLevel(value: number, blocking: number, count: number): void {
    const d = this.depth;
    const start = d === 0 ? 0 : (this.levelStart[d - 1] ?? 0) + (this.levelCount[d - 1] ?? 0);
    if (start + count > this.movePool.length) {
      const size = Math.max(2 * this.movePool.length, start + count);
      const moves = new Int32Array(size);
      moves.set(this.movePool);
      this.movePool = moves;
      const values = new Int32Array(size);
      values.set(this.valuePool);
      this.valuePool = values;
    }
    this.levelValue[d] = value;
    this.levelBlocking[d] = blocking;
    this.levelStart[d] = start;
    this.levelCount[d] = count;
    this.levelIndex[d] = 0;
    this.depth = d + 1;
  }

  /** Marks `move` as made (or unmade) in the bit sets. */
  private setMove(move: number, made: boolean): void {
    if (move > 0) {
      const i = this.events.op[move] ?? -1;
      if (made) setBit(this.completedBits, i);
      else clearBit(this.completedBits, i);
      this.completedHash = (this.completedHash ^ zobrist(i)) >>> 0;
    } else if (made) setBit(this.unknownBits, -move - 1);
    else clearBit(this.unknownBits, -move - 1);
  }

  /** Records the state on top as failed and returns to its parent; false at the root. */
  private backtrack(): boolean {
    const top = this.depth - 1;
    this.recordFailure(this.levelValue[top] ?? 0);
    if (this.linearized > this.linearizedMax) {
      this.linearizedMax = this.linearized;
      this.blockingAtMax = this.levelBlocking[top] ?? -1;
    }
    this.depth = top;
    if (top === 0) return false;
    const parent = top - 1;
    const index = this.levelIndex[parent] ?? 0;
    const move = this.movePool[(this.levelStart[parent] ?? 0) + index] ?? 0;
    if (move > 0) {
      this.events.unlift(move);
      this.linearized -= 1;
    }
    this.setMove(move, false);
    this.levelIndex[parent] = index + 1;
    return true;
  }

  private violation(steps: number): KeyVerdict {
    return {
      kind: "violation",
      steps,
      linearizedMax: this.linearizedMax,
      blocking: this.c.completed[this.blockingAtMax] ?? null,
      completedCount: this.c.completed.length,
    };
  }

  /**
   * True when a failed state had the same completed set and value and no more unknown
   * operations used: this state has the same moves or fewer, so it fails too.
   */
  private isDominated(value: number): boolean {
    return this.failed.dominates(this.completedHash, this.completedBits, value, this.unknownBits);
  }

  private recordFailure(value: number): void {
    this.failed.add(this.completedHash, this.completedBits, value, this.unknownBits);
  }
}

/** The most 32-bit words the failed-state memo may hold (64 MiB); past it, it stops growing. */
const FAILED_STATE_WORDS_MAX = 1 << 24;

/**
 * Lowe's memo: states whose every continuation failed, kept as an antichain per (completed set,
 * value) over the unknown operations used. Entries are packed in one growing word array, chained
 * per hash: [value, next entry + 1, completed words..., unknown words...]. A dead entry (made
 * redundant by a failure with fewer unknown operations used) has value DEAD.
 */
class FailedStates {
  private static readonly DEAD = 0xffffffff;
  private readonly heads = new Map<number, number>();
  private readonly entryWords: number;
  private words = new Uint32Array(1024);
  private entries = 0;

  constructor(
    private readonly completedWords: number,
    unknownWords: number,
  ) {
    this.entryWords = 2 + completedWords + unknownWords;
  }

  /** True when an entry has this completed set and value and a subset of `unknown`. */
  dominates(hash: number, completed: Uint32Array, value: number, unknown: Uint32Array): boolean {
    for (let e = this.heads.get(this.key(hash, value)) ?? -1; e !== -1; e = this.next(e)) {
      if (this.matches(e, completed, value) && this.unknownSubset(e, unknown, false)) return true;
    }
    return false;
  }

  add(hash: number, completed: Uint32Array, value: number, unknown: Uint32Array): void {
    const base = this.entries * this.entryWords;
    if (base + this.entryWords > FAILED_STATE_WORDS_MAX) return; // only pruning is lost
    const key = this.key(hash, value);
    const head = this.heads.get(key) ?? -1;
    for (let e = head; e !== -1; e = this.next(e)) {
      // An entry that used more unknown operations than this one says nothing new.
      if (this.matches(e, completed, value) && this.unknownSubset(e, unknown, true)) {
        this.words[e * this.entryWords] = FailedStates.DEAD;
      }
    }
    if (base + this.entryWords > this.words.length) {
      const size = Math.min(2 * this.words.length + this.entryWords, FAILED_STATE_WORDS_MAX);
      const grown = new Uint32Array(size);
      grown.set(this.words);
      this.words = grown;
    }
    this.words[base] = value;
    this.words[base + 1] = head + 1;
    this.words.set(completed, base + 2);
    this.words.set(unknown, base + 2 + this.completedWords);
    this.heads.set(key, this.entries);
    this.entries += 1;
  }

  private key(hash: number, value: number): number {
    return (hash ^ zobrist(~value)) >>> 0;
  }

  private next(e: number): number {
    return (this.words[e * this.entryWords + 1] ?? 0) - 1;
  }

  private matches(e: number, completed: Uint32Array, value: number): boolean {
    const base = e * this.entryWords;
    if (this.words[base] !== value) return false;
    for (let w = 0; w < this.completedWords; w += 1) {
      if (this.words[base + 2 + w] !== completed[w]) return false;
    }
    return true;
  }

  /** Entry's unknown set ⊆ `unknown`, or with `reversed`, `unknown` ⊆ entry's. */
  private unknownSubset(e: number, unknown: Uint32Array, reversed: boolean): boolean {
    const base = e * this.entryWords + 2 + this.completedWords;
    for (let w = 0; w < unknown.length; w += 1) {
      const entryWord = this.words[base + w] ?? 0;
      const givenWord = unknown[w] ?? 0;
      if ((reversed ? givenWord & ~entryWord : entryWord & ~givenWord) !== 0) return false;
    }
    return true;
  }
}

/** A fixed pseudo-random 32-bit code for `i` (a finalizer from MurmurHash3); no randomness. */
function zobrist(i: number): number {
  let h = (i + 0x9e3779b9) | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
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
  const times = [...new Set(keyOps.flatMap(eventTimesUs))].sort((a, b) => a - b);
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
    `no linearization of the key's ${keyOps.length} operations; the history up to ` +
    `t=${cutUs}us (${operations.length} operations) already fails${blocked}`;
  return { status: "violation", key, message, operations };
}

function eventTimesUs(op: Operation): number[] {
  return op.returnedUs === null ? [op.invokedUs] : [op.invokedUs, op.returnedUs];
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
  const interval = `[${op.invokedUs}, ${op.returnedUs ?? "?"}]us`;
  return `#${op.id} client ${op.client} ${call} => ${answer} over ${interval}`;
}
