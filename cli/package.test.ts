/**
 * The package as a user gets it: `npm pack` (which builds it first), installed from the tarball
 * into an empty project, and its `orrery` executable run there — help, one simulated seed and a
 * short fuzz — plus both module formats of its entry point. This is what catches a build that
 * bundles something the package does not ship (the examples, a development dependency).
 */
import assert from "node:assert/strict";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const NPM = process.platform === "win32" ? "npm.cmd" : "npm";

/** Runs a command, with a bound on how long it may take; a failure says what it printed. */
function run(command: string, args: readonly string[], cwd: string, timeoutMs = 300_000): SpawnSyncReturns<string> {
  const result = spawnSync(command, args, { cwd, encoding: "utf8", timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  assert.equal(result.error, undefined, `${command} ${args.join(" ")} did not run: ${String(result.error)}`);
  assert.equal(result.status, 0, `${command} ${args.join(" ")} exited ${result.status}\n${result.stdout}\n${result.stderr}`);
  return result;
}

describe("the packed package, installed in an empty project", { timeout: 900_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "orrery-package-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("packs, installs and runs orrery --help, orrery sim and orrery fuzz", () => {
    run(NPM, ["pack", "--pack-destination", dir, "--silent"], ROOT);
    const tarball = readdirSync(dir).find((name) => name.endsWith(".tgz"));
    assert.ok(tarball !== undefined, "npm pack wrote a tarball");
    const project = join(dir, "project");
    run("mkdir", ["-p", project], dir);
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "orrery-smoke", private: true, type: "module" }));
    // The dependencies come from npm's cache, which the project's own install filled.
    run(NPM, ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", "--omit=optional", join(dir, tarball)], project);
    const bin = join(project, "node_modules", ".bin", "orrery");

    const help = run(bin, ["--help"], project);
    assert.match(help.stdout, /Usage: orrery <command>/);
    assert.match(help.stdout, /\bsim\b/);
    assert.doesNotMatch(help.stdout, /\bdemo\b/, "the shipped command line has no example commands");

    const sim = run(bin, ["sim", "--seed", "1"], project);
    assert.match(sim.stdout, /^SEED=1$/m);
    assert.match(sim.stdout, /^violations none$/m);
    assert.match(sim.stdout, /^TRACE=[0-9a-f]{16}$/m);

    const fuzz = run(bin, ["fuzz", "--seeds", "2", "--json"], project);
    const summary = JSON.parse(fuzz.stdout) as { seeds: number; failed: number };
    assert.deepEqual({ seeds: summary.seeds, failed: summary.failed }, { seeds: 2, failed: 0 });

    const esm = run(process.execPath, ["--input-type=module", "-e", 'const m = await import("orrery"); console.log(typeof m.createNode, typeof m.createWorker, typeof m.nodeClock);'], project);
    assert.equal(esm.stdout.trim(), "function function function");
    const cjs = run(process.execPath, ["-e", 'const m = require("orrery"); const tcp = require("orrery/transports/tcp"); console.log(typeof m.createPlacementMember, typeof tcp.createTcpTransport);'], project);
    assert.equal(cjs.stdout.trim(), "function function");
  });
});
