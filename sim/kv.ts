/**
 * The simulator's replicated state machine for key-value runs: a register per key, with client
 * sessions (Raft thesis §6.3) so that a command retried after a timeout takes effect at most once.
 * Members run it under the real host (`createNode`), which hands it each committed command.
 */
import { decodePlain, encodePlain } from "../lib/codec/codec.ts";
import { ENTRY_TAG } from "../lib/host/envelope.ts";
import type { StateMachine } from "../lib/host/options.ts";
import type { Entry } from "../lib/raft/messages.ts";
import type { KvInput, KvOutput } from "./history.ts";

/** A client command as carried in a log entry. */
export interface KvCommand {
  readonly client: number;
  /** The client's sequence number; a client's commands apply in increasing `seq`, each at most once. */
  readonly seq: number;
  readonly input: KvInput;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes a command for `propose`. */
export function encodeCommand(command: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(command));
}

/**
 * Commands by the bytes that carry them: every member applies the same entry, whose bytes the
 * simulator shares by reference, so each is parsed once. Keyed by the backing buffer and offset
 * (the host hands the state machine a fresh view of the same bytes each time).
 */
const parsed = new WeakMap<ArrayBufferLike, Map<number, KvCommand>>();

/** Decodes a command's bytes. */
export function decodeCommand(data: Uint8Array): KvCommand {
  let byOffset = parsed.get(data.buffer);
  if (byOffset === undefined) {
    byOffset = new Map();
    parsed.set(data.buffer, byOffset);
  }
  let command = byOffset.get(data.byteOffset);
  if (command === undefined) {
    command = JSON.parse(decoder.decode(data)) as KvCommand;
    byOffset.set(data.byteOffset, command);
  }
  return command;
}

/**
 * Commands by entry data. Members share entry objects in the simulator, so each command in the
 * observed logs is parsed once rather than once per member and check.
 */
const decoded = new WeakMap<Uint8Array, KvCommand | null>();

/** The client command a log entry carries, or `null` (an empty entry, a host record, a conf change). */
export function entryCommand(entry: Entry): KvCommand | null {
  if (entry.type !== "normal" || entry.data.byteLength === 0 || entry.data[0] !== ENTRY_TAG.user) return null;
  let command = decoded.get(entry.data);
  if (command === undefined) {
    command = decodeCommand(entry.data.subarray(1));
    decoded.set(entry.data, command);
  }
  return command;
}

/** The key identifying a command across retries: `client:seq`. */
export function commandKey(command: KvCommand): string {
  return `${command.client}:${command.seq}`;
}

/**
 * The key-value store one member applies committed commands to. `apply` returns the command's
 * output, the cached output when the command was already applied (a retry), or `null` for a
 * command superseded by a later one from the same client.
 */
export class KvStore implements StateMachine<KvOutput | null> {
  private data = new Map<string, string>();
  private sessions = new Map<number, { seq: number; output: KvOutput }>();

  apply(bytes: Uint8Array): KvOutput | null {
    const command = decodeCommand(bytes);
    const session = this.sessions.get(command.client);
    if (session !== undefined && command.seq <= session.seq) {
      return command.seq === session.seq ? session.output : null;
    }
    const output = this.execute(command.input);
    this.sessions.set(command.client, { seq: command.seq, output });
    return output;
  }

  private execute(input: KvInput): KvOutput {
    switch (input.kind) {
      case "put":
        this.data.set(input.key, input.value);
        return { kind: "put" };
      case "get":
        return { kind: "get", value: this.data.get(input.key) ?? null };
      case "cas": {
        const current = this.data.get(input.key) ?? null;
        if (current !== input.expected) return { kind: "cas", ok: false };
        this.data.set(input.key, input.value);
        return { kind: "cas", ok: true };
      }
    }
  }

  /** The value of `key` now (for reads served by ReadIndex, outside the log). */
  read(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  /**
   * The whole state as snapshot bytes: the data and the client sessions, in a canonical (sorted)
   * order so that members at the same index produce the same bytes.
   */
  snapshot(): Uint8Array {
    const data = [...this.data.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const sessions = [...this.sessions.entries()].sort(([a], [b]) => a - b);
    return encodePlain([encoder.encode(JSON.stringify({ data, sessions }))]);
  }

  restore(bytes: Uint8Array): void {
    const [kv] = decodePlain(bytes, "simSnapshot", { bytesMax: 256 * 1024 * 1024 }) as [Uint8Array];
    const state = JSON.parse(decoder.decode(kv)) as {
      data: [string, string][];
      sessions: [number, { seq: number; output: KvOutput }][];
    };
    this.data = new Map(state.data);
    this.sessions = new Map(state.sessions);
  }

  /** A canonical rendering of the whole state (sorted), to compare members. */
  fingerprint(): string {
    const keys = [...this.data.keys()].sort();
    return keys.map((k) => `${k}=${this.data.get(k)}`).join(";");
  }
}
