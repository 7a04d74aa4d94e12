/**
 * The in-process benchmark still runs, for a fraction of a second, over the memory transport and
 * over TCP, and prints the fields issue #7 asks for. Its numbers are never asserted.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";

/** How long one run may take before it is killed: a fraction of a second of load, but tsx and a busy machine. */
const RUN_TIMEOUT_MS = 120_000;

/**
 * Runs the benchmark (one process; its members, transports and WAL are all inside it) and parses
 * its output. Its temporary folder goes in a folder of this test's, removed even if it is killed.
 */
function run(args: readonly string[]): Record<string, unknown> {
  const tmp = mkdtempSync(join(tmpdir(), "orrery-bench-inprocess-test-"));
  try {
    const stdout = execFileSync(process.execPath, ["--import", "tsx", "bench/inprocess.ts", ...args], {
      env: { ...process.env, INPROCESS_BENCH_SECONDS: "0.3", TMPDIR: tmp },
      encoding: "utf8",
      timeout: RUN_TIMEOUT_MS,
      killSignal: "SIGKILL",
    });
    assert.equal(stdout.trim().split("\n").length, 1, "one line of output");
    return JSON.parse(stdout) as Record<string, unknown>;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

describe("bench/inprocess.ts", { timeout: 4 * RUN_TIMEOUT_MS }, () => {
  for (const args of [["--inflight", "16"], ["--transport", "tcp", "--inflight", "16"]]) {
    it(`prints commits per second and latencies (${args.join(" ")})`, () => {
      const result = run(args);
      assert.equal(result.bench, "inprocess");
      assert.equal(result.members, 3);
      assert.equal(result.inflight, 16);
      for (const field of ["commitsPerSecond", "p50Ms", "p99Ms", "entriesPerLeaderAppend", "rssMb"]) {
        assert.equal(typeof result[field], "number", field);
      }
      assert.ok((result.commits as number) > 0, "something committed");
      assert.ok((result.p50Ms as number) <= (result.p99Ms as number));
      assert.equal((result.fsyncs as unknown[]).length, 3);
    });
  }
});
