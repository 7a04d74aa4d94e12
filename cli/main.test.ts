import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { main, type CliIo } from "./main.ts";

function capture(): CliIo & { stdout: string; stderr: string } {
  const io = {
    stdout: "",
    stderr: "",
    out: (text: string) => {
      io.stdout += text;
    },
    err: (text: string) => {
      io.stderr += text;
    },
  };
  return io;
}

describe("orrery command line", () => {
  it("prints help and exits 0", async () => {
    const io = capture();
    assert.equal(await main(["--help"], io), 0);
    assert.match(io.stdout, /Usage: orrery <command>/);
  });

  it("prints the package version", async () => {
    const io = capture();
    assert.equal(await main(["--version"], io), 0);
    assert.match(io.stdout, /^\d+\.\d+\.\d+/);
  });

  it("refuses an unknown command with exit status 2", async () => {
    const io = capture();
    assert.equal(await main(["frobnicate"], io), 2);
    assert.match(io.stderr, /unknown command "frobnicate"/);
  });

  it("runs as an executable through the bin shim", () => {
    const bin = fileURLToPath(new URL("./bin.mjs", import.meta.url));
    const result = spawnSync(process.execPath, [bin, "--help"], { encoding: "utf8" });
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /orrery/);
  });
});
