/**
 * The purity rule (DESIGN.md §1): nothing under lib/raft, lib/placement or lib/codec touches the
 * host. No Node builtin imports, no require(), no dynamic import(), and no reference to the clock,
 * timers, process, Buffer, crypto, globalThis or Math.random. Time enters as `tick()`, randomness
 * as an injected `random`, I/O leaves as data in `Ready`; that is what makes the simulator exact.
 *
 * The scanner blanks comments and the contents of strings, templates and regular expressions
 * (keeping every offset and newline, so line numbers stay true) before it looks at identifiers, so
 * TSDoc that says "Date" does not trip it; string literals in module-specifier position are still
 * checked. It is a lexer, not a parser: it is proven able to fire by the self-test below.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { builtinModules } from "node:module";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const PURE_FOLDERS = ["lib/raft", "lib/placement", "lib/codec"];
const SOURCE_EXTENSIONS = [".ts", ".mts", ".cts", ".tsx", ".js", ".mjs", ".cjs"];

/** Globals that reach the host: the clock, timers, the process, I/O, ambient randomness. */
const FORBIDDEN_GLOBALS = [
  "Date",
  "performance",
  "process",
  "setTimeout",
  "setInterval",
  "setImmediate",
  "queueMicrotask",
  "Buffer",
  "globalThis",
  "crypto",
];

const BUILTINS = new Set(builtinModules);

/** One breach of the rule: where, and what. */
export interface Violation {
  readonly line: number;
  readonly what: string;
}

interface StringLiteral {
  readonly start: number;
  readonly value: string;
}

interface Lexed {
  /** The source with comments and literal contents replaced by spaces; same length and lines. */
  readonly code: string;
  /** Every plain string literal (not templates), at the offset of its opening quote. */
  readonly strings: readonly StringLiteral[];
}

/** Keywords after which a `/` starts a regular expression rather than a division. */
const REGEX_AFTER_WORDS = new Set([
  "return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw", "case", "do",
  "else", "yield", "await",
]);

function blank(text: string): string {
  return text.replace(/[^\n]/g, " ");
}

/** Whether a `/` at `code.length` (the blanked code so far) starts a regular expression. */
function regexAllowed(code: string): boolean {
  const before = code.trimEnd();
  if (before.length === 0) return true;
  const last = before[before.length - 1] as string;
  if (/[\w$]/.test(last)) {
    const word = /[\w$]+$/.exec(before)?.[0] ?? "";
    return REGEX_AFTER_WORDS.has(word);
  }
  // After a closing bracket or a literal's closing quote, `/` divides.
  return !/[)\]}'"`]/.test(last);
}

/**
 * Splits `source` into code and literals: comments and literal contents become spaces, template
 * substitutions (`${...}`) stay code. Offsets and newlines are preserved.
 */
function lex(source: string): Lexed {
  let code = "";
  const strings: StringLiteral[] = [];
  // One entry per open template substitution: the brace depth inside it.
  const templateDepths: number[] = [];
  let i = 0;
  const n = source.length;
  while (i < n) {
    const ch = source[i] as string;
    const next = source[i + 1];
    if (ch === "/" && next === "/") {
      const end = source.indexOf("\n", i);
      const stop = end === -1 ? n : end;
      code += blank(source.slice(i, stop));
      i = stop;
    } else if (ch === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      const stop = end === -1 ? n : end + 2;
      code += blank(source.slice(i, stop));
      i = stop;
    } else if (ch === "'" || ch === '"') {
      let j = i + 1;
      let value = "";
      while (j < n && source[j] !== ch && source[j] !== "\n") {
        if (source[j] === "\\") {
          value += source.slice(j, j + 2);
          j += 2;
        } else {
          value += source[j];
          j += 1;
        }
      }
      strings.push({ start: i, value });
      // An unterminated string stops at the newline, which stays in the code for line numbers.
      const closed = source[j] === ch;
      code += ch + blank(source.slice(i + 1, j)) + (closed ? ch : "");
      i = closed ? j + 1 : j;
    } else if (ch === "`" || (ch === "}" && templateDepths.length > 0 && templateDepths[templateDepths.length - 1] === 0)) {
      // The start of a template, or the `}` that closes a substitution and resumes its template.
      if (ch === "}") templateDepths.pop();
      let j = i + 1;
      while (j < n && source[j] !== "`" && !(source[j] === "$" && source[j + 1] === "{")) {
        j += source[j] === "\\" ? 2 : 1;
      }
      code += ch + blank(source.slice(i + 1, Math.min(j, n)));
      if (j >= n) {
        i = n;
      } else if (source[j] === "`") {
        code += "`";
        i = j + 1;
      } else {
        code += "${";
        templateDepths.push(0);
        i = j + 2;
      }
    } else if (ch === "/" && regexAllowed(code)) {
      let j = i + 1;
      let inClass = false;
      while (j < n && source[j] !== "\n" && (inClass || source[j] !== "/")) {
        if (source[j] === "\\") j += 1;
        else if (source[j] === "[") inClass = true;
        else if (source[j] === "]") inClass = false;
        j += 1;
      }
      code += "/" + blank(source.slice(i + 1, Math.min(j, n))) + (j < n && source[j] === "/" ? "/" : "");
      i = j < n && source[j] === "/" ? j + 1 : j;
    } else {
      if (templateDepths.length > 0) {
        const top = templateDepths.length - 1;
        if (ch === "{") templateDepths[top] = (templateDepths[top] as number) + 1;
        else if (ch === "}") templateDepths[top] = (templateDepths[top] as number) - 1;
      }
      code += ch;
      i += 1;
    }
  }
  return { code, strings };
}

function lineAt(source: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i += 1) if (source.charCodeAt(i) === 10) line += 1;
  return line;
}

/** Whether the identifier at `offset` is a property access (`x.Date`, `x?.process`), not `...Date`. */
function isMemberAccess(code: string, offset: number): boolean {
  const before = code.slice(0, offset).trimEnd();
  return before.endsWith(".") && !before.endsWith("...");
}

/** Whether `specifier` names a Node builtin: `node:*`, or a bare builtin such as `fs/promises`. */
function isBuiltinSpecifier(specifier: string): boolean {
  return (
    specifier.startsWith("node:") ||
    BUILTINS.has(specifier) ||
    BUILTINS.has(specifier.split("/")[0] as string)
  );
}

/** Every breach of the purity rule in one file's source text. */
export function scanSource(source: string): Violation[] {
  const { code, strings } = lex(source);
  const found: Array<{ offset: number; what: string }> = [];

  for (const literal of strings) {
    const before = code.slice(Math.max(0, literal.start - 200), literal.start);
    const isSpecifier = /(?:\bfrom|\bimport|\bimport\s*\(|\brequire\s*\()\s*$/.test(before);
    if (isSpecifier && isBuiltinSpecifier(literal.value)) {
      found.push({ offset: literal.start, what: `imports the builtin module "${literal.value}"` });
    }
  }

  const patterns: Array<[RegExp, string]> = [
    [/(?<![\w$])require\s*\(/g, "calls require()"],
    [/(?<![\w$])import\s*\(/g, "uses dynamic import()"],
    [/(?<![\w$])Math\s*\??\.\s*random(?![\w$])/g, "reads Math.random"],
    [new RegExp(`(?<![\\w$])(?:${FORBIDDEN_GLOBALS.join("|")})(?![\\w$])`, "g"), "references"],
  ];
  for (const [pattern, what] of patterns) {
    for (const match of code.matchAll(pattern)) {
      const offset = match.index;
      if (isMemberAccess(code, offset)) continue;
      found.push({ offset, what: what === "references" ? `references ${match[0]}` : what });
    }
  }

  return found
    .sort((a, b) => a.offset - b.offset)
    .map(({ offset, what }) => ({ line: lineAt(source, offset), what }));
}

/** Every non-test source file under the pure folders that exist. */
function pureSourceFiles(): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      if (name === "node_modules" || name.startsWith(".")) continue;
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (SOURCE_EXTENSIONS.some((ext) => name.endsWith(ext)) && !/\.test\.[cm]?[jt]sx?$/.test(name)) {
        files.push(path);
      }
    }
  };
  for (const folder of PURE_FOLDERS) {
    const dir = join(ROOT, folder);
    if (existsSync(dir)) walk(dir);
  }
  return files;
}

// ---------------------------------------------------------------------------------------------

describe("the purity rule", () => {
  it("holds for every non-test file under lib/raft, lib/placement and lib/codec", () => {
    const files = pureSourceFiles();
    assert.ok(
      files.some((file) => relative(ROOT, file).startsWith(join("lib", "raft"))),
      "the scan found lib/raft (an empty scan proves nothing)",
    );
    const breaches: string[] = [];
    for (const file of files) {
      for (const { line, what } of scanSource(readFileSync(file, "utf8"))) {
        breaches.push(`${relative(ROOT, file)}:${line}: ${what}`);
      }
    }
    assert.deepEqual(breaches, [], `impure code in a pure folder:\n${breaches.join("\n")}`);
  });
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
      const found = scanSource(source);
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
    assert.deepEqual(scanSource(source), [{ line: 5, what: "references Date" }]);
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
    assert.deepEqual(scanSource(source), []);
  });
});
