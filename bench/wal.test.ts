/**
 * The WAL benchmark still runs and prints the fields issue #6 asks for (for a fraction of a second
 * per size, enough for CI; the numbers themselves are never asserted), and cleans up after itself.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";

/** How long the run may take before it is killed: a fraction of a second per size, but tsx and a busy machine. */
const RUN_TIMEOUT_MS = 120_000;

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

describe("bench/wal.ts", { timeout: 2 * RUN_TIMEOUT_MS }, () => {
  it("prints one JSON object with the raw fsync rate and WAL throughput per batch size", (t) => {
    // The benchmark's folder goes in one of this test's, removed even if the run is killed. That
    // the benchmark removes its own is checked below.
    const tmp = mkdtempSync(join(tmpdir(), "orrery-bench-wal-test-"));
    t.after(() => rmSync(tmp, { recursive: true, force: true }));
    const stdout = execFileSync(process.execPath, ["--import", "tsx", "bench/wal.ts"], {
      env: { ...process.env, WAL_BENCH_SECONDS: "0.2", TMPDIR: tmp },
      encoding: "utf8",
      timeout: RUN_TIMEOUT_MS,
      killSignal: "SIGKILL",
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
