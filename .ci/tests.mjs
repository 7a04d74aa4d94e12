// Runs every `*.test.ts` under the source folders with node:test, TypeScript loaded through tsx.
// Node 20's test runner does not glob `.ts` files itself, so this script finds them, in sorted
// order so that runs are reproducible. Extra arguments are passed through as file filters:
//   node .ci/tests.mjs raft       -> only test files whose path contains "raft"
import { spawnSync } from "node:child_process";
import { readdirSync, statSync, existsSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const folders = ["lib", "sim", "transports", "cli", "fuzz", "examples", "bench"];

/** @param {string} dir @returns {string[]} */
function findTests(dir) {
  if (!existsSync(dir)) return [];
  const found = [];
  for (const name of readdirSync(dir).sort()) {
    if (name === "node_modules" || name.startsWith(".")) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...findTests(path));
    else if (name.endsWith(".test.ts")) found.push(path);
  }
  return found;
}

const filters = process.argv.slice(2);
const files = folders
  .flatMap((folder) => findTests(join(root, folder)))
  .map((path) => relative(root, path))
  .filter((path) => filters.length === 0 || filters.some((f) => path.includes(f)));

if (files.length === 0) {
  console.error("no test files found");
  process.exit(1);
}

/**
 * Every test runs under a timeout (a file may set a longer one for its own tests), and a file's
 * process is made to exit once its tests are done even if something left a handle open, so that a
 * failing test can never hold the run. The whole run has a deadline too.
 */
const TEST_TIMEOUT_MS = 900_000;
const RUN_TIMEOUT_MS = 40 * 60_000;

const result = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-concurrency=2", `--test-timeout=${TEST_TIMEOUT_MS}`, "--test-force-exit", ...files],
  { cwd: root, stdio: "inherit", timeout: RUN_TIMEOUT_MS, killSignal: "SIGKILL" },
);
if (result.error !== undefined) console.error(`tests: ${result.error.message}`);
process.exit(result.status ?? 1);
