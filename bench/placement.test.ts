/**
 * The placement benchmark still runs and prints the fields the README quotes (at a size small
 * enough for CI; the numbers themselves are never asserted).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";

/** How long the run may take before it is killed: generous, for tsx and a busy machine. */
const RUN_TIMEOUT_MS = 120_000;

describe("bench/placement.ts", { timeout: 2 * RUN_TIMEOUT_MS }, () => {
  it("prints one JSON object with apply rates, memory and snapshot timings", () => {
    const stdout = execFileSync(process.execPath, ["--expose-gc", "--import", "tsx", "bench/placement.ts"], {
      env: { ...process.env, PLACEMENT_BENCH_KEYS: "2000", PLACEMENT_BENCH_WORKERS: "20" },
      encoding: "utf8",
      timeout: RUN_TIMEOUT_MS,
      killSignal: "SIGKILL",
    });
    const result = JSON.parse(stdout) as Record<string, unknown>;
    for (const field of ["acquiresPerSecond", "memoryBytes", "snapshotBytes", "snapshotWriteMs", "snapshotRestoreMs"]) {
      assert.equal(typeof result[field], "number", field);
    }
    assert.equal(result.keys, 2000);
    assert.equal(result.workers, 20);
  });
});
