/**
 * The package as a user gets it: `npm pack` (which builds it first), installed from the tarball
 * into an empty project, and its `orrery` executable run there — help, one simulated seed and a
 * short fuzz — plus both module formats of its entry point. This is what catches a build that
 * bundles something the package does not ship (the examples, a development dependency). The
 * README's TypeScript examples are type-checked there too, against the declarations the package
 * ships, so a quick start that no longer compiles fails here.
 */
import assert from "node:assert/strict";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
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

/**
 * What the README's examples take from their surroundings (the reader's database, the member list
 * of the example before, the pieces of a hand-written host), declared once for all of them. Each
 * example is compiled as a module, so whatever it declares itself shadows these.
 */
const README_CONTEXT = `import type { Entry, HardState, Message, RaftNode, Snapshot } from "orrery";
declare global {
  const members: Record<string, string>;
  const secret: string | undefined;
  const db: {
    open(key: string, epoch: number): void;
    close(key: string): void;
    write(key: string, epoch: number, body: Uint8Array): boolean;
    fence(key: string): number;
  };
  const node: RaftNode;
  const transport: { onMessage(handler: (message: Message) => void): void; send(messages: readonly Message[]): void };
  const storage: {
    save(snapshot: Snapshot | undefined, hardState: HardState | undefined, entries: readonly Entry[]): Promise<void>;
    saveSnapshot(snapshot: Snapshot): Promise<void>;
  };
  const stateMachine: { apply(entry: Entry): void; restore(data: Uint8Array): void; snapshot(): Uint8Array };
  function redirect(leader: string | null): void;
}
export {};
`;

/** The ```ts blocks of a Markdown text, in order. */
function typescriptBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((match) => match[1] ?? "");
}

describe("the packed package, installed in an empty project", { timeout: 900_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "orrery-package-"));
  const project = join(dir, "project");
  after(() => rmSync(dir, { recursive: true, force: true }));

  before(() => {
    run(NPM, ["pack", "--pack-destination", dir, "--silent"], ROOT);
    const tarball = readdirSync(dir).find((name) => name.endsWith(".tgz"));
    assert.ok(tarball !== undefined, "npm pack wrote a tarball");
    run("mkdir", ["-p", project], dir);
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "orrery-smoke", private: true, type: "module" }));
    // The dependencies come from npm's cache, which the project's own install filled.
    run(NPM, ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", "--omit=optional", join(dir, tarball)], project);
  });

  it("runs orrery --help, orrery sim and orrery fuzz", () => {
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

  it("compiles the README's TypeScript examples against the declarations it ships", () => {
    const blocks = typescriptBlocks(readFileSync(join(ROOT, "README.md"), "utf8"));
    assert.ok(blocks.length >= 4, `the README has its examples (found ${blocks.length})`);
    const files = blocks.map((block, i) => {
      const name = `readme-${i + 1}.ts`;
      // `export {}` makes every example a module: top-level await, and its own scope.
      writeFileSync(join(project, name), `${block}\nexport {};\n`);
      return name;
    });
    writeFileSync(join(project, "readme-context.d.ts"), README_CONTEXT);
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          lib: ["ES2022"],
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          // Node's types from this checkout: the empty project installed only the package.
          typeRoots: [join(ROOT, "node_modules", "@types")],
          types: ["node"],
        },
        files: ["readme-context.d.ts", ...files],
      }),
    );
    run(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], project);
  });
});
