/**
 * Test support for the host's tests, in simulated time and with real sockets alike: a small state
 * machine and command encoding. Not exported from the package.
 */
import type { StateMachine } from "./options.ts";

/** A state machine that appends strings to a list; a command's result is the list's new length. */
export class ListMachine implements StateMachine<number> {
  items: string[] = [];

  apply(command: Uint8Array): number {
    this.items.push(new TextDecoder().decode(command));
    return this.items.length;
  }

  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(this.items));
  }

  restore(data: Uint8Array): void {
    this.items = JSON.parse(new TextDecoder().decode(data)) as string[];
  }
}

/** A command: the UTF-8 bytes of `s`. */
export function text(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}
