/**
 * The WAL benchmark still runs and prints the fields issue #6 asks for (for a fraction of a second
 * per size, enough for CI; the numbers themselves are never asserted), and cleans up after itself.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, it } from "node:test";

const SIZE_FIELDS = [
  "entriesPerSecond",
  "mbPerSecond",
  "batchesPerSecond",
  "batchP50Ms",
  "batchP99Ms",
  "ratioToRawFsync",
] as const;

function assertNumber(value: unknown, field: string): void {
  assert.equal(typeof value, "number", field);
  assert.ok(Number.isFinite(value), field);
}

describe("bench/wal.ts", () => {
  it("prints one JSON object with the raw fsync rate and WAL throughput per batch size", () => {
    const stdout = execFileSync(process.execPath, ["--import", "tsx", "bench/wal.ts"], {
      env: { ...process.env, WAL_BENCH_SECONDS: "0.2" },
      encoding: "utf8",
    });
    assert.equal(stdout.trim().split("\n").length, 1, "one line of output");
    const result = JSON.parse(stdout) as Record<string, unknown>;
    assert.equal(result.node, process.version);
    assertNumber(result.rawFsyncsPerSecond, "rawFsyncsPerSecond");

    const dir = result.dir as Record<string, unknown>;
    assert.equal(typeof dir.path, "string");
    assert.equal(typeof dir.filesystem, "string");
    assert.equal(existsSync(dir.path as string), false, "the temporary directory is removed");

    const sizes = result.sizes as Record<string, unknown>[];
    assert.deepEqual(
      sizes.map((size) => size.batchEntries),
      [1, 16, 256],
    );
    for (const size of sizes) {
      for (const field of SIZE_FIELDS) assertNumber(size[field], `${field} at ${String(size.batchEntries)} entries`);
    }
  });
});
