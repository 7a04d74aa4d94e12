/**
 * `orrery sim` and `orrery fuzz` as a user runs them: separate processes, real output.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { drawOptions } from "../sim/options.ts";

const bin = fileURLToPath(new URL("./bin.mjs", import.meta.url));

function orrery(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("orrery sim", () => {
  it("gives the same trace hash for the same seed in two separate processes", () => {
    const first = JSON.parse(orrery("sim", "--seed", "11", "--ticks", "400", "--json").stdout) as { traceHash: string };
    const second = JSON.parse(orrery("sim", "--seed", "11", "--ticks", "400", "--json").stdout) as { traceHash: string };
    assert.match(first.traceHash, /^[0-9a-f]{16}$/);
    assert.equal(first.traceHash, second.traceHash);
  });

  it("prints SEED=, every option, a summary and TRACE=, and exits 0 without violations", () => {
    const run = orrery("sim", "--seed", "4", "--members", "5", "--ticks", "300");
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^SEED=4$/m);
    assert.match(run.stdout, /^option members=5$/m);
    assert.match(run.stdout, /^option network\.lossRate=/m);
    assert.match(run.stdout, /^option workload\.clients=/m);
    assert.match(run.stdout, /^summary .*events=\d+ .*elections=\d+ .*crashes=\d+ .*partitions=\d+/m);
    assert.match(run.stdout, /^violations none$/m);
    assert.match(run.stdout, /^TRACE=[0-9a-f]{16}$/m);
  });

  it("reports the required stats in --json", () => {
    const result = JSON.parse(orrery("sim", "--seed", "2", "--ticks", "300", "--json").stdout) as Record<string, unknown>;
    for (const key of ["seed", "options", "traceHash", "violations", "stats"]) assert.ok(key in result, key);
    const stats = result.stats as Record<string, number>;
    for (const key of ["events", "simulatedMs", "wallMs", "messages", "elections", "commits", "clientOps", "crashes", "partitions", "eventsPerSecond", "speedup"]) {
      assert.equal(typeof stats[key], "number", key);
    }
    assert.ok(stats.events! > 0 && stats.simulatedMs! > 0);
  });

  it("checks determinism against a second process with --check-determinism", () => {
    const run = orrery("sim", "--seed", "8", "--ticks", "300", "--check-determinism");
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /determinism ok/);
  });

  it("replays a saved schedule with the same trace as the seed it came from", () => {
    const dir = mkdtempSync(join(tmpdir(), "orrery-replay-"));
    const file = join(dir, "replay.json");
    writeFileSync(file, JSON.stringify({ seed: 12, options: drawOptions(12, { safetyTicks: 300 }) }));
    const replayed = JSON.parse(orrery("sim", "--replay", file, "--json").stdout) as { traceHash: string };
    const direct = JSON.parse(orrery("sim", "--seed", "12", "--ticks", "300", "--json").stdout) as { traceHash: string };
    assert.equal(replayed.traceHash, direct.traceHash);
  });

  it("refuses a replay file whose options are invalid, as a usage error", () => {
    const dir = mkdtempSync(join(tmpdir(), "orrery-replay-bad-"));
    const file = join(dir, "bad.json");
    const options = { ...drawOptions(3, { safetyTicks: 100 }), checkQuorum: false, reads: "lease" };
    writeFileSync(file, JSON.stringify({ seed: 3, options }));
    const run = orrery("sim", "--replay", file);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /readOnly/);
  });

  it("writes a space-time diagram with --html", () => {
    const dir = mkdtempSync(join(tmpdir(), "orrery-html-"));
    const file = join(dir, "run.html");
    const run = orrery("sim", "--seed", "5", "--ticks", "200", "--html", file);
    assert.equal(run.status, 0, run.stderr);
    const html = readFileSync(file, "utf8");
    assert.match(html, /<svg/);
    assert.match(html, /n1/);
  });

  it("refuses bad arguments with exit status 2 and a reason", () => {
    const run = orrery("sim", "--seed", "x");
    assert.equal(run.status, 2);
    assert.match(run.stderr, /--seed must be an integer/);
    assert.equal(orrery("sim", "--members", "4", "--seed", "1").status, 2);
    assert.equal(orrery("sim", "--bogus").status, 2);
  });
});

describe("orrery fuzz", () => {
  it("runs a range of seeds and summarises them", () => {
    const run = orrery("fuzz", "--seeds", "3", "--start", "20", "--ticks", "200", "--json");
    assert.equal(run.status, 0, run.stdout + run.stderr);
    const summary = JSON.parse(run.stdout) as { seeds: number; start: number; failed: number; failing: unknown[] };
    assert.equal(summary.seeds, 3);
    assert.equal(summary.start, 20);
    assert.equal(summary.failed, 0);
    assert.deepEqual(summary.failing, []);
  });
});
