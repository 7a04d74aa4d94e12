/**
 * The simulator's replicated state machine: a key-value register per key, with client sessions
 * (Raft thesis §6.3) so that a command retried after a timeout takes effect at most once.
 */
import { decodePlain, encodePlain } from "../lib/codec/codec.ts";
import { decodePlacementCommand } from "../lib/placement/commands.ts";
import { PlacementTable, type PlacementResult } from "../lib/placement/table.ts";
import type { PlacementCommand } from "../lib/placement/types.ts";
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

/** Encodes a command as entry data. */
export function encodeCommand(command: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(command));
}

/**
 * Decoded commands by entry data. Members share entry objects in the simulator, so each command
 * is parsed once rather than once per member; a WeakMap lets entries be collected as usual.
 */
const decoded = new WeakMap<Uint8Array, KvCommand>();

/**
 * Whether entry data is a placement command (a msgpack array) rather than a key-value command (a
 * JSON object): the simulated members replicate both through one log.
 */
export function isPlacementData(data: Uint8Array): boolean {
  const first = data[0];
  return first !== undefined && ((first >= 0x90 && first <= 0x9f) || first === 0xdc || first === 0xdd);
}

/** Decodes entry data into a command; `null` for an empty entry (a new leader's) or a placement command. */
export function decodeCommand(data: Uint8Array): KvCommand | null {
  if (data.byteLength === 0 || isPlacementData(data)) return null;
  let command = decoded.get(data);
  if (command === undefined) {
    command = JSON.parse(decoder.decode(data)) as KvCommand;
    decoded.set(data, command);
  }
  return command;
}

/** The key identifying a command across retries: `client:seq`. */
export function commandKey(command: KvCommand): string {
  return `${command.client}:${command.seq}`;
}

/** The key-value store one member applies committed entries to. */
export class KvStore {
  private readonly data = new Map<string, string>();
  private readonly sessions = new Map<number, { seq: number; output: KvOutput }>();
  /** The index of the last entry applied. */
  appliedIndex = 0;
  /** The placement table, replicated through the same log. */
  table = new PlacementTable();
  /** The placement command applied by the last `apply`, with its result; `null` otherwise. */
  lastPlacement: { readonly command: PlacementCommand; readonly result: PlacementResult } | null = null;

  /**
   * Applies a committed entry. Returns the command's output, the cached output when the command
   * was already applied (a retry), or `null` for an empty entry or a command superseded by a
   * later one from the same client.
   */
  apply(entry: Entry): { command: KvCommand; output: KvOutput } | null {
    this.appliedIndex = entry.index;
    this.lastPlacement = null;
    if (entry.type !== "normal") return null;
    if (isPlacementData(entry.data)) {
      const command = decodePlacementCommand(entry.data);
      this.lastPlacement = { command, result: this.table.apply(command, entry.index) };
      return null;
    }
    const command = decodeCommand(entry.data);
    if (command === null) return null;
    const session = this.sessions.get(command.client);
    if (session !== undefined && command.seq <= session.seq) {
      return command.seq === session.seq ? { command, output: session.output } : null;
    }
    const output = this.execute(command.input);
    this.sessions.set(command.client, { seq: command.seq, output });
    return { command, output };
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
   * The whole state as snapshot bytes: the data, the client sessions and the applied index, in a
   * canonical (sorted) order so that members at the same index produce the same bytes.
   */
  snapshot(): Uint8Array {
    const data = [...this.data.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const sessions = [...this.sessions.entries()].sort(([a], [b]) => a - b);
    const kv = encoder.encode(JSON.stringify({ appliedIndex: this.appliedIndex, data, sessions }));
    return encodePlain([kv, this.table.snapshot()]);
  }

  /** A store holding the state of snapshot `bytes` (from {@link KvStore.snapshot}). */
  static fromSnapshot(bytes: Uint8Array): KvStore {
    const [kv, table] = decodePlain(bytes, "simSnapshot", { bytesMax: 256 * 1024 * 1024 }) as [Uint8Array, Uint8Array];
    const state = JSON.parse(decoder.decode(kv)) as {
      appliedIndex: number;
      data: [string, string][];
      sessions: [number, { seq: number; output: KvOutput }][];
    };
    const store = new KvStore();
    store.appliedIndex = state.appliedIndex;
    for (const [key, value] of state.data) store.data.set(key, value);
    for (const [client, session] of state.sessions) store.sessions.set(client, session);
    store.table = PlacementTable.restore(table);
    return store;
  }

  /** A canonical rendering of the whole state (sorted), to compare members. */
  fingerprint(): string {
    const keys = [...this.data.keys()].sort();
    const kv = keys.map((k) => `${k}=${this.data.get(k)}`).join(";");
    const workers = this.table.workers().map((w) => `${w.id}:${w.status}:${this.table.keysOf(w.id).map((k) => `${k.key}@${k.epoch}${k.state === "draining" ? "d" : ""}`).join(",")}`);
    return workers.length === 0 ? kv : `${kv}|${workers.join(";")}`;
  }
}
