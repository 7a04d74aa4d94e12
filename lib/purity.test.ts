/**
 * The purity rules (DESIGN.md §1), checked on the source text (see source-scan.ts):
 *
 * - The core (lib/raft, lib/placement, lib/codec) touches nothing of the host: no Node builtin
 *   imports, no require(), no dynamic import(), and no reference to the clock, timers, process,
 *   Buffer, crypto, globalThis or Math.random. Time enters as `tick()`, randomness as an injected
 *   `random`, I/O leaves as data in `Ready`; that is what makes the simulator exact.
 * - The host (lib/host) reaches time, the network and the disk only through its ports (`Clock`,
 *   `Transport`, `Storage`): the same rules, except that it may use `Buffer` (a pooled allocation
 *   for log entries, no I/O). So the simulator, which gives it simulated ports, decides when every
 *   timer fires and every promise settles.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { WORLD_GLOBALS, isTestFile, scanSource, sourceFiles } from "./source-scan.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** What each rule scans, and the globals it forbids. */
const RULES = [
  { name: "core", folders: ["lib/raft", "lib/placement", "lib/codec"], forbidden: [...WORLD_GLOBALS, "Buffer"] },
  { name: "host", folders: ["lib/host"], forbidden: [...WORLD_GLOBALS] },
] as const;

/** The core's forbidden globals, for the scanner's self-test. */
const FORBIDDEN_GLOBALS = RULES[0].forbidden;

/** Every non-test source file under `folders`. */
function filesOf(folders: readonly string[]): string[] {
  return folders.flatMap((folder) => sourceFiles(join(ROOT, folder))).filter((file) => !isTestFile(file));
}

// ---------------------------------------------------------------------------------------------

describe("the purity rules", () => {
  for (const rule of RULES) {
    it(`hold for every non-test file of the ${rule.name} (${rule.folders.join(", ")})`, () => {
      const files = filesOf(rule.folders);
      for (const folder of rule.folders) {
        assert.ok(files.some((file) => relative(ROOT, file).startsWith(folder)), `the scan found ${folder} (an empty scan proves nothing)`);
      }
      const breaches: string[] = [];
      for (const file of files) {
        for (const { line, what } of scanSource(readFileSync(file, "utf8"), rule.forbidden)) {
          breaches.push(`${relative(ROOT, file)}:${line}: ${what}`);
        }
      }
      assert.deepEqual(breaches, [], `the ${rule.name} reaches the world directly:\n${breaches.join("\n")}`);
    });
  }
});

describe("the purity scanner", () => {
  const impure: ReadonlyArray<[string, string]> = [
    ["const t = Date.now();", "references Date"],
    ["const d = new Date();", "references Date"],
    ['import fs from "node:fs";', 'imports the builtin module "node:fs"'],
    ["import { readFile } from 'node:fs/promises';", 'imports the builtin module "node:fs/promises"'],
    ['import x from "fs";', 'imports the builtin module "fs"'],
    ['import { randomBytes } from "crypto";', 'imports the builtin module "crypto"'],
    ['import { setTimeout as sleep } from "timers/promises";', 'imports the builtin module "timers/promises"'],
    ['import type { Buffer as B } from "node:buffer";', 'imports the builtin module "node:buffer"'],
    ['export { join } from "path";', 'imports the builtin module "path"'],
    ['import "node:process";', 'imports the builtin module "node:process"'],
    ['const fs = require("fs");', "calls require()"],
    ['const m = await import("./other.ts");', "uses dynamic import()"],
    ["setTimeout(f, 1);", "references setTimeout"],
    ["const h = setInterval(f, 10);", "references setInterval"],
    ["setImmediate(f);", "references setImmediate"],
    ["queueMicrotask(f);", "references queueMicrotask"],
    ["const r = Math.random();", "reads Math.random"],
    ["const r = Math . random;", "reads Math.random"],
    ["const t = performance.now();", "references performance"],
    ["if (process.env.DEBUG) log();", "references process"],
    ["const b = Buffer.from(bytes);", "references Buffer"],
    ["const g = globalThis;", "references globalThis"],
    ["const id = crypto.randomUUID();", "references crypto"],
    ["const s = `at ${Date.now()} ms`;", "references Date"],
    ["const s = `a${`b${{ x: 1 }.x}`}c` + String(setTimeout);", "references setTimeout"],
    ["const copy = { ...process };", "references process"],
    ["const r = /Date/.test(s) ? 1 : Date.now();", "references Date"],
  ];
  for (const [source, what] of impure) {
    it(`flags ${JSON.stringify(source)}`, () => {
      const found = scanSource(source, FORBIDDEN_GLOBALS);
      assert.ok(
        found.some((violation) => violation.what === what && violation.line === 1),
        `expected "${what}", got ${JSON.stringify(found)}`,
      );
    });
  }

  it("reports the line of each breach", () => {
    const source = [
      "/** Date is not read here. */",
      "const a = `one",
      "two ${1}",
      "three`;",
      "const t = Date.now();",
    ].join("\n");
    assert.deepEqual(scanSource(source, FORBIDDEN_GLOBALS), [{ line: 5, what: "references Date" }]);
  });

  it("accepts clean code that mentions the forbidden names only in comments, strings and properties", () => {
    const source = [
      "/**",
      " * Uses no Date, no setTimeout and no Math.random: time comes from tick().",
      " * Like `import fs from \"node:fs\"`, this is only a comment.",
      " */",
      'import { assert } from "../assert.ts";',
      'import type { Entry } from "./messages.ts";',
      'import { Packr } from "msgpackr";',
      "// Date.now() would break determinism; process.env too.",
      'const label = "Date";',
      "const other = 'setTimeout(process)';",
      "const note = `the Date is ${label.length} ticks, not performance.now()`;",
      "const pattern = /Date|crypto\\/x/g;",
      "const ratio = total / count / 2;",
      "const { random } = config;",
      "const value = config.random() + stats.process + counters.Date;",
      "const optional = maybe?.crypto;",
      "function processReady(): void {}",
      "const copyBuffers = true;",
      "const dated = updatedAt;",
      "const imported = importer.from('fs');",
    ].join("\n");
    assert.deepEqual(scanSource(source, FORBIDDEN_GLOBALS), []);
  });

  it("lets the host use Buffer but not the clock", () => {
    const host = RULES[1].forbidden;
    assert.deepEqual(scanSource("const b = Buffer.allocUnsafe(8);", host), []);
    assert.deepEqual(scanSource("const t = performance.now();", host), [{ line: 1, what: "references performance" }]);
  });
});
