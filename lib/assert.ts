/**
 * Assertions for invariants. A failed assertion means the code is wrong, not the input: it throws
 * an {@link AssertionFailure}, which must never be caught and handled. Input from the network or
 * the disk is checked with typed errors instead (see `lib/errors.ts`).
 */

/** Thrown when an invariant does not hold. Stop the member; do not catch this. */
export class AssertionFailure extends Error {
  constructor(message: string) {
    super(`assertion failed: ${message}`);
    this.name = "AssertionFailure";
  }
}

/**
 * Asserts `condition`; `message` says what was expected. On hot paths pass a function, so that a
 * message built from values is only built when the assertion fails.
 */
export function assert(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) throw new AssertionFailure(typeof message === "string" ? message : message());
}

/** Marks a branch that a total `switch` over a union can never reach. */
export function unreachable(value: never, what: string): never {
  throw new AssertionFailure(`unreachable ${what}: ${JSON.stringify(value)}`);
}
