#!/usr/bin/env node
// The `orrery` executable. In a source checkout (cli/dev.ts is present) it runs the TypeScript
// source through tsx, a development dependency, so it never runs a stale build, with the examples'
// commands too; in an installed package, which ships only dist/ and this file, it runs the built CLI.
import { existsSync } from "node:fs";

const source = new URL("./dev.ts", import.meta.url);
let cli;
if (existsSync(source)) {
  const { register } = await import("tsx/esm/api");
  register();
  cli = await import(source.href);
} else {
  cli = await import(new URL("../dist/cli.js", import.meta.url).href);
}
process.exitCode = await cli.main(process.argv.slice(2));
