/**
 * The placement benchmark still runs and prints the fields the README quotes (at a size small
 * enough for CI; the numbers themselves are never asserted).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";

describe("bench/placement.ts", () => {
  it("prints one JSON object with apply rates, memory and snapshot timings", () => {
    const stdout = execFileSync(process.execPath, ["--expose-gc", "--import", "tsx", "bench/placement.ts"], {
      env: { ...process.env, PLACEMENT_BENCH_KEYS: "2000", PLACEMENT_BENCH_WORKERS: "20" },
      encoding: "utf8",
    });
    const result = JSON.parse(stdout) as Record<string, unknown>;
    for (const field of ["acquiresPerSecond", "memoryBytes", "snapshotBytes", "snapshotWriteMs", "snapshotRestoreMs"]) {
      assert.equal(typeof result[field], "number", field);
    }
    assert.equal(result.keys, 2000);
    assert.equal(result.workers, 20);
  });
});
