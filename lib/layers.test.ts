/**
 * The direction of dependencies (DESIGN.md §1): core <- ports <- host <- adapters <- the package's
 * entry <- the command line. The simulator uses the core, the ports and the host, never an adapter
 * (it supplies the other side of every port itself); nothing in lib/ imports sim/, cli/, fuzz/,
 * examples/ or bench/; the shipped command line imports no example. Checked on every import of
 * every non-test source file, from the source text (see source-scan.ts); a self-test shows the
 * check fires.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { importsOf, isBuiltinSpecifier, isTestFile, sourceFiles } from "./source-scan.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** A layer: where its files are, what it may import, which packages and whether Node builtins. */
interface Layer {
  readonly name: string;
  /** Path prefixes (files or folders) from the repository root; the first layer that matches wins. */
  readonly paths: readonly string[];
  /** Layers it may import (itself included when listed). `"*"`: any. */
  readonly may: readonly string[] | "*";
  /** npm packages it may import. `"*"`: any. */
  readonly packages: readonly string[] | "*";
  /** Whether it may import Node builtins (`node:*`). */
  readonly builtins: boolean;
}

/** The layers, most specific paths first. */
export const LAYERS: readonly Layer[] = [
  {
    name: "testing",
    // Suites and helpers other tests import; never shipped.
    paths: [
      "lib/testing.ts",
      "lib/source-scan.ts",
      "lib/free-ports.ts",
      "lib/host/testing.ts",
      "lib/raft/testing.ts",
      "lib/raft/transcript.ts",
      "lib/storage/conformance.ts",
      "lib/storage/crash-child.ts",
      "transports/conformance.ts",
    ],
    may: "*",
    packages: "*",
    builtins: true,
  },
  {
    name: "core",
    paths: ["lib/raft/", "lib/placement/", "lib/codec/", "lib/assert.ts", "lib/errors.ts", "lib/storage/crc32c.ts"],
    may: ["core"],
    packages: ["msgpackr"],
    builtins: false,
  },
  { name: "ports", paths: ["lib/ports/", "lib/logger.ts", "lib/storage/storage.ts"], may: ["core", "ports"], packages: [], builtins: false },
  { name: "host", paths: ["lib/host/"], may: ["core", "ports", "host"], packages: [], builtins: false },
  {
    name: "adapters",
    paths: ["lib/runtime/", "lib/storage/", "transports/"],
    may: ["core", "ports", "host", "adapters"],
    packages: ["msgpackr", "undici"],
    builtins: true,
  },
  { name: "entry", paths: ["lib/index.ts"], may: ["core", "ports", "host", "adapters"], packages: [], builtins: false },
  { name: "sim", paths: ["sim/"], may: ["core", "ports", "host", "sim"], packages: ["seedrandom"], builtins: true },
  { name: "cli-dev", paths: ["cli/dev.ts"], may: "*", packages: "*", builtins: true },
  {
    name: "cli",
    paths: ["cli/"],
    may: ["core", "ports", "host", "adapters", "entry", "sim", "cli"],
    // tsx only from a source checkout (cli/bin.mjs loads the TypeScript through it).
    packages: ["tsx"],
    builtins: true,
  },
  { name: "fuzz", paths: ["fuzz/"], may: ["core", "ports", "host", "sim", "fuzz", "testing"], packages: ["fast-check"], builtins: true },
  {
    name: "examples",
    paths: ["examples/"],
    may: ["core", "ports", "host", "adapters", "entry", "examples", "testing"],
    packages: "*",
    builtins: true,
  },
  { name: "bench", paths: ["bench/"], may: "*", packages: "*", builtins: true },
];

/** The folders whose files are checked. */
const FOLDERS = ["lib", "transports", "sim", "cli", "fuzz", "examples", "bench"];

/** The layer of a repository path, or `null` when none matches. */
export function layerOf(path: string, layers: readonly Layer[] = LAYERS): Layer | null {
  return layers.find((layer) => layer.paths.some((p) => (p.endsWith("/") ? path.startsWith(p) : path === p))) ?? null;
}

/** The npm package a bare specifier names (`@scope/name/x` -> `@scope/name`). */
function packageOf(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] as string);
}

/**
 * What is wrong with `from` (a repository path) importing `specifier`, or `null`. Relative
 * specifiers are resolved against `from`.
 */
export function importBreach(from: string, specifier: string, layers: readonly Layer[] = LAYERS): string | null {
  const layer = layerOf(from, layers);
  if (layer === null) return `${from} belongs to no layer`;
  if (isBuiltinSpecifier(specifier)) {
    return layer.builtins ? null : `the ${layer.name} imports the Node builtin "${specifier}"`;
  }
  if (!specifier.startsWith(".")) {
    const pkg = packageOf(specifier);
    return layer.packages === "*" || layer.packages.includes(pkg) ? null : `the ${layer.name} imports the package "${pkg}"`;
  }
  const target = relative(ROOT, resolve(ROOT, dirname(from), specifier)).split("\\").join("/");
  const targetLayer = layerOf(target, layers);
  if (targetLayer === null) return `the ${layer.name} imports ${target}, which belongs to no layer`;
  if (layer.may === "*" || layer.may.includes(targetLayer.name)) return null;
  return `the ${layer.name} imports ${target} (${targetLayer.name})`;
}

describe("the layers", () => {
  it("hold for every import of every non-test source file", () => {
    const files = FOLDERS.flatMap((folder) => sourceFiles(join(ROOT, folder))).filter((file) => !isTestFile(file));
    assert.ok(files.length > 100, `the scan found the sources (${files.length} files)`);
    const breaches: string[] = [];
    for (const file of files) {
      const from = relative(ROOT, file).split("\\").join("/");
      for (const { specifier, line } of importsOf(readFileSync(file, "utf8"))) {
        const breach = importBreach(from, specifier);
        if (breach !== null) breaches.push(`${from}:${line}: ${breach}`);
      }
    }
    assert.deepEqual(breaches, [], `imports against the direction of the layers:\n${breaches.join("\n")}`);
  });

  it("fire on an import against the direction", () => {
    assert.match(importBreach("lib/raft/raft.ts", "../host/node.ts") ?? "", /the core imports lib\/host\/node.ts \(host\)/);
    assert.match(importBreach("lib/host/node.ts", "../runtime/clock.ts") ?? "", /the host imports lib\/runtime\/clock.ts \(adapters\)/);
    assert.match(importBreach("lib/host/node.ts", "node:timers") ?? "", /the host imports the Node builtin/);
    assert.match(importBreach("lib/host/worker.ts", "undici") ?? "", /the host imports the package "undici"/);
    assert.match(importBreach("sim/world.ts", "../transports/tcp/tcp.ts") ?? "", /the sim imports transports\/tcp\/tcp.ts \(adapters\)/);
    assert.match(importBreach("sim/world.ts", "../lib/storage/file.ts") ?? "", /\(adapters\)/);
    assert.match(importBreach("lib/runtime/node.ts", "../../sim/world.ts") ?? "", /imports sim\/world.ts \(sim\)/);
    assert.match(importBreach("cli/main.ts", "../examples/kv/member.ts") ?? "", /the cli imports examples/);
    assert.match(importBreach("lib/index.ts", "../bench/sim.ts") ?? "", /\(bench\)/);
  });

  it("let each layer import what it may", () => {
    assert.equal(importBreach("lib/host/node.ts", "../raft/raw-node.ts"), null);
    assert.equal(importBreach("lib/host/node.ts", "../ports/clock.ts"), null);
    assert.equal(importBreach("lib/runtime/node.ts", "../host/node.ts"), null);
    assert.equal(importBreach("sim/members.ts", "../lib/host/placement-member.ts"), null);
    assert.equal(importBreach("sim/disk.ts", "../lib/storage/storage.ts"), null);
    assert.equal(importBreach("cli/dev.ts", "../examples/router/demo.ts"), null);
    assert.equal(importBreach("lib/codec/codec.ts", "msgpackr"), null);
  });
});
