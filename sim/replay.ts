/**
 * A saved run: what `orrery sim --replay FILE` reads and the fuzzer writes when it finds a failure.
 * With a schedule, exactly those faults happen; network loss, duplication and reordering still come
 * from the options and the seed. The same file gives the same trace hash in every process.
 */
import type { SimOptions } from "./options.ts";
import type { FaultEvent } from "./simulator.ts";

/** A replay file's contents: `{ seed, options, schedule? }`. */
export interface ReplayFile {
  readonly seed: number;
  readonly options: SimOptions;
  readonly schedule?: readonly FaultEvent[];
}

/** Checks the shape of parsed JSON; `null` when it is not a replay file. */
export function asReplayFile(value: unknown): ReplayFile | null {
  if (typeof value !== "object" || value === null) return null;
  const { seed, options, schedule } = value as Partial<Record<keyof ReplayFile, unknown>>;
  if (!Number.isSafeInteger(seed) || typeof options !== "object" || options === null) return null;
  if (schedule !== undefined && !Array.isArray(schedule)) return null;
  return value as ReplayFile;
}
