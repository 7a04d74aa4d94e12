/**
 * Placement commands as Raft entry data: `[version, type code, ...fields]` in the codec's
 * deterministic msgpack. Decoding is strict: anything malformed is a `CodecError` naming the field,
 * so a command from a newer version, or garbage, is never half-applied.
 *
 * Pure: no I/O.
 */
import { decodePlain, encodePlain, type DecodeOptions } from "../codec/codec.ts";
import { CodecError } from "../errors.ts";
import type { PlacementCommand, PlacementCommandType } from "./types.ts";

/** The version of the command encoding. */
export const COMMAND_VERSION = 1;

/** Bytes a command may take; commands are small, so anything larger is garbage. */
export const COMMAND_BYTES_MAX = 16 * 1024;

/** Field kinds of a command, in wire order. */
type FieldKind = "string" | "count" | "nullableString";

/** Each command's fields after the type code, in order (the compiler checks every type has a line). */
const COMMAND_FIELDS: { readonly [T in PlacementCommandType]: readonly (readonly [string, FieldKind])[] } = {
  join: [["worker", "string"], ["address", "string"], ["capacity", "count"], ["zone", "string"]],
  leave: [["worker", "string"]],
  drain: [["worker", "string"]],
  undrain: [["worker", "string"]],
  acquire: [["key", "string"]],
  release: [["worker", "string"], ["key", "string"], ["epoch", "count"]],
  handoff: [["key", "string"], ["epoch", "count"]],
  move: [["key", "string"], ["to", "nullableString"]],
  rebalance: [["movesMax", "count"]],
  expire: [["worker", "string"]],
};

/** Type codes, by the order of {@link COMMAND_FIELDS}. */
const TYPES = Object.keys(COMMAND_FIELDS) as PlacementCommandType[];

/** Encodes `command` as entry data. */
export function encodePlacementCommand(command: PlacementCommand): Uint8Array {
  const fields = COMMAND_FIELDS[command.type];
  const values = command as unknown as Record<string, unknown>;
  return encodePlain([COMMAND_VERSION, TYPES.indexOf(command.type), ...fields.map(([name]) => values[name])]);
}

/**
 * Decodes entry data into a command.
 * @throws CodecError when the bytes are not a valid command of this version.
 */
export function decodePlacementCommand(bytes: Uint8Array, options?: DecodeOptions): PlacementCommand {
  const wire = decodePlain(bytes, "command", { bytesMax: options?.bytesMax ?? COMMAND_BYTES_MAX });
  if (!Array.isArray(wire) || wire.length < 2) throw new CodecError("command", "is not a command tuple");
  if (wire[0] !== COMMAND_VERSION) throw new CodecError("command.version", `expected ${COMMAND_VERSION}`);
  const type = TYPES[wire[1] as number];
  if (typeof wire[1] !== "number" || type === undefined) throw new CodecError("command.type", `unknown code ${String(wire[1])}`);
  const fields = COMMAND_FIELDS[type];
  if (wire.length !== 2 + fields.length) {
    throw new CodecError("command", `a ${type} command has ${fields.length} fields, got ${wire.length - 2}`);
  }
  const command: Record<string, unknown> = { type };
  fields.forEach(([name, kind], i) => {
    const value: unknown = wire[2 + i];
    const ok =
      kind === "count"
        ? typeof value === "number" && Number.isSafeInteger(value) && value >= 0
        : kind === "string"
          ? typeof value === "string"
          : value === null || typeof value === "string";
    if (!ok) throw new CodecError(`command.${name}`, `is not a ${kind}`);
    // A count may arrive as a float -0; it is 0.
    command[name] = kind === "count" ? (value as number) + 0 : value;
  });
  return command as unknown as PlacementCommand;
}
