/**
 * What the simulator records, as plain data: the client operations (for the linearizability
 * checker) and the trace of everything that happened (for the trace hash and the space-time
 * diagram). Times are integers in microseconds of simulated *true* time.
 */

/** A key-value operation as a client invokes it. */
export type KvInput =
  | { readonly kind: "put"; readonly key: string; readonly value: string }
  | { readonly kind: "get"; readonly key: string }
  | {
      readonly kind: "cas";
      readonly key: string;
      /** The value the key must hold (`null`: absent) for the swap to happen. */
      readonly expected: string | null;
      readonly value: string;
    };

/** What the key-value state machine answered. */
export type KvOutput =
  | { readonly kind: "put" }
  | { readonly kind: "get"; readonly value: string | null }
  | { readonly kind: "cas"; readonly ok: boolean };

/**
 * One client operation. `output` and `returnedUs` are `null` when the client never learned the
 * outcome (it timed out and gave up): such an operation may have taken effect, at any time after
 * `invokedUs`, or never.
 */
export interface Operation {
  /** Unique within a run, in invocation order. */
  readonly id: number;
  readonly client: number;
  readonly input: KvInput;
  readonly output: KvOutput | null;
  readonly invokedUs: number;
  readonly returnedUs: number | null;
}

/** One thing that happened in a run. `t` is simulated true time in microseconds. */
export type TraceEvent =
  | {
      readonly t: number;
      readonly kind: "send";
      /** Unique per message copy within a run. */
      readonly id: number;
      readonly from: string;
      readonly to: string;
      /** The message type, e.g. `append`, or `client:put` for client traffic. */
      readonly type: string;
      readonly term: number;
      /** A short human-readable summary, e.g. `prev=4/2 n=3 commit=4`. */
      readonly detail: string;
    }
  | { readonly t: number; readonly kind: "deliver"; readonly id: number }
  | {
      readonly t: number;
      readonly kind: "drop";
      readonly id: number;
      readonly reason: "loss" | "partition" | "crashed";
    }
  | {
      readonly t: number;
      readonly kind: "role";
      readonly member: string;
      readonly role: "follower" | "preCandidate" | "candidate" | "leader";
      readonly term: number;
      readonly leader: string | null;
    }
  | { readonly t: number; readonly kind: "commit"; readonly member: string; readonly index: number }
  | { readonly t: number; readonly kind: "crash"; readonly member: string }
  | { readonly t: number; readonly kind: "restart"; readonly member: string }
  | {
      readonly t: number;
      readonly kind: "partition";
      /** e.g. `halves {n1,n2} | {n3}`, `isolate n2`, `one-way n1->n3`, `bridge n3`. */
      readonly description: string;
      /** Directed links that are cut, as `[from, to]`. */
      readonly blocked: readonly (readonly [string, string])[];
    }
  | { readonly t: number; readonly kind: "heal" }
  | { readonly t: number; readonly kind: "phase"; readonly phase: "safety" | "liveness" }
  | {
      readonly t: number;
      readonly kind: "violation";
      readonly checker: string;
      readonly message: string;
    };
