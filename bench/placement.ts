/**
 * The placement table's costs: how fast commands apply, how much memory a table of 1,000,000 keys
 * over 1,000 workers takes, and how long its snapshot takes to write and to restore. Prints one
 * JSON object. Run: `npm run bench:placement` (memory needs `--expose-gc`, which the script passes).
 *
 * `PLACEMENT_BENCH_KEYS` and `PLACEMENT_BENCH_WORKERS` shrink the run (the test does, to check that
 * the benchmark still runs).
 */
import { performance } from "node:perf_hooks";
import { PlacementTable } from "../lib/placement/table.ts";
import { decodePlacementCommand, encodePlacementCommand } from "../lib/placement/commands.ts";
import type { PlacementCommand } from "../lib/placement/types.ts";

const KEYS = Number(process.env.PLACEMENT_BENCH_KEYS ?? 1_000_000);
const WORKERS = Number(process.env.PLACEMENT_BENCH_WORKERS ?? 1_000);
const ZONES = 3;

function collect(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
}

function heapUsed(): number {
  collect();
  return process.memoryUsage().heapUsed;
}

/** Applies `commands` from `index + 1` on, returning commands per second. */
function applyRate(table: PlacementTable, commands: readonly PlacementCommand[], index: number): number {
  const started = performance.now();
  for (let i = 0; i < commands.length; i += 1) table.apply(commands[i] as PlacementCommand, index + i + 1);
  return Math.round(commands.length / ((performance.now() - started) / 1000));
}

function main(): void {
  const before = heapUsed();
  const table = new PlacementTable({ joinMovesMax: 0 });
  let index = 0;
  const joins: PlacementCommand[] = Array.from({ length: WORKERS }, (_, i) => ({
    type: "join",
    worker: `w${i}`,
    address: `10.0.${Math.floor(i / 250)}.${i % 250}:7000`,
    capacity: 1 + (i % 3),
    zone: `z${i % ZONES}`,
  }));
  const joinRate = applyRate(table, joins, index);
  index += joins.length;

  const acquires: PlacementCommand[] = Array.from({ length: KEYS }, (_, i) => ({ type: "acquire", key: `/db/${i}` }));
  const acquireRate = applyRate(table, acquires, index);
  index += acquires.length;
  const memoryBytes = heapUsed() - before;

  // Entry data round trip, as a member decodes each committed command before applying it.
  const sample = acquires.slice(0, Math.min(100_000, KEYS)).map(encodePlacementCommand);
  const decodeStarted = performance.now();
  for (const bytes of sample) decodePlacementCommand(bytes);
  const decodeRate = Math.round(sample.length / ((performance.now() - decodeStarted) / 1000));

  // Failover: expire ten workers, one command each, every key reassigned.
  const expires: PlacementCommand[] = Array.from({ length: 10 }, (_, i) => ({ type: "expire", worker: `w${i * 7}` }));
  const expireStarted = performance.now();
  let reassigned = 0;
  for (const command of expires) reassigned += table.apply(command, ++index).changed.length;
  const expireMs = performance.now() - expireStarted;

  const snapshotStarted = performance.now();
  const snapshot = table.snapshot();
  const snapshotWriteMs = performance.now() - snapshotStarted;
  const restoreStarted = performance.now();
  const restored = PlacementTable.restore(snapshot);
  const snapshotRestoreMs = performance.now() - restoreStarted;
  if (restored.size !== table.size) throw new Error("the restored table differs");

  process.stdout.write(
    `${JSON.stringify({
      keys: KEYS,
      workers: WORKERS,
      zones: ZONES,
      joinsPerSecond: joinRate,
      acquiresPerSecond: acquireRate,
      decodesPerSecond: decodeRate,
      expire: { workers: expires.length, keysReassigned: reassigned, ms: Math.round(expireMs) },
      memoryBytes,
      memoryBytesPerKey: Math.round(memoryBytes / KEYS),
      snapshotBytes: snapshot.byteLength,
      snapshotWriteMs: Math.round(snapshotWriteMs),
      snapshotRestoreMs: Math.round(snapshotRestoreMs),
      node: process.version,
    })}\n`,
  );
}

main();
