/**
 * The replicated key-value state machine of the example: string keys and values, with put, delete
 * and compare-and-set. Commands and snapshots are msgpack (the library's `encodePlain`), and every
 * command a client could send is validated in `apply`, which answers a bad one with an error value
 * instead of throwing (a throw would stop the member).
 */
import { decodePlain, encodePlain } from "../../lib/codec/codec.ts";
import { CodecError } from "../../lib/errors.ts";
import type { StateMachine } from "../../lib/host/options.ts";

/** The longest key, in UTF-16 code units. */
export const KEY_LENGTH_MAX = 1024;

/** The longest value, in UTF-16 code units (a value travels in one log entry). */
export const VALUE_LENGTH_MAX = 1024 * 1024;

/** A command for the store. */
export type KvCommand =
  | { readonly kind: "put"; readonly key: string; readonly value: string }
  | { readonly kind: "delete"; readonly key: string }
  /** Sets `key` to `value` (`null`: deletes it) if it holds `expected` (`null`: absent). */
  | { readonly kind: "cas"; readonly key: string; readonly expected: string | null; readonly value: string | null };

/** What applying a command returns. */
export type KvResult =
  | { readonly kind: "put" }
  | { readonly kind: "delete"; readonly deleted: boolean }
  | { readonly kind: "cas"; readonly ok: boolean; readonly value: string | null }
  | { readonly kind: "error"; readonly message: string };

/** Encodes a command for `node.propose`. */
export function encodeKvCommand(command: KvCommand): Uint8Array {
  switch (command.kind) {
    case "put":
      return encodePlain(["put", command.key, command.value]);
    case "delete":
      return encodePlain(["delete", command.key]);
    case "cas":
      return encodePlain(["cas", command.key, command.expected, command.value]);
  }
}

/** Decodes and validates a command. @throws CodecError */
export function decodeKvCommand(bytes: Uint8Array): KvCommand {
  const wire = decodePlain(bytes, "kvCommand");
  if (!Array.isArray(wire)) throw new CodecError("kvCommand", "not an array");
  const [kind, key, a, b] = wire as unknown[];
  if (!isKey(key)) throw new CodecError("kvCommand.key", `not a key of 1 to ${KEY_LENGTH_MAX} characters`);
  if (kind === "put" && wire.length === 3 && isValue(a)) return { kind, key, value: a };
  if (kind === "delete" && wire.length === 2) return { kind, key };
  if (kind === "cas" && wire.length === 4 && (a === null || isValue(a)) && (b === null || isValue(b))) {
    return { kind, key, expected: a, value: b };
  }
  throw new CodecError("kvCommand", `not a valid ${String(kind)} command`);
}

/** Whether `key` is an acceptable key. */
export function isKey(key: unknown): key is string {
  return typeof key === "string" && key.length > 0 && key.length <= KEY_LENGTH_MAX;
}

function isValue(value: unknown): value is string {
  return typeof value === "string" && value.length <= VALUE_LENGTH_MAX;
}

/** The key-value state machine. Reads go through `get` after `node.read()`. */
export class KvStore implements StateMachine<KvResult> {
  private readonly data = new Map<string, string>();

  /** The value of `key`, or `null`. */
  get(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  /** The number of keys. */
  get size(): number {
    return this.data.size;
  }

  apply(bytes: Uint8Array, _position?: { readonly index: number; readonly term: number }): KvResult {
    let command: KvCommand;
    try {
      command = decodeKvCommand(bytes);
    } catch (error) {
      if (CodecError.is(error)) return { kind: "error", message: error.message };
      throw error;
    }
    switch (command.kind) {
      case "put":
        this.data.set(command.key, command.value);
        return { kind: "put" };
      case "delete":
        return { kind: "delete", deleted: this.data.delete(command.key) };
      case "cas": {
        const current = this.get(command.key);
        if (current !== command.expected) return { kind: "cas", ok: false, value: current };
        if (command.value === null) this.data.delete(command.key);
        else this.data.set(command.key, command.value);
        return { kind: "cas", ok: true, value: command.value };
      }
    }
  }

  snapshot(): Uint8Array {
    const pairs = [...this.data.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return encodePlain([1, pairs]);
  }

  restore(bytes: Uint8Array): void {
    const wire = decodePlain(bytes, "kvSnapshot");
    if (!Array.isArray(wire) || wire[0] !== 1 || !Array.isArray(wire[1])) {
      throw new CodecError("kvSnapshot", "not a version 1 snapshot");
    }
    this.data.clear();
    for (const pair of wire[1] as unknown[]) {
      if (!Array.isArray(pair) || !isKey(pair[0]) || !isValue(pair[1])) throw new CodecError("kvSnapshot", "bad pair");
      this.data.set(pair[0], pair[1]);
    }
  }
}
