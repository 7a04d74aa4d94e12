/**
 * Test support: reads TypeScript and JavaScript source as text, to check the rules a type checker
 * cannot — which globals a layer may touch (lib/purity.test.ts) and which modules it may import
 * (lib/layers.test.ts).
 *
 * The scanner blanks comments and the contents of strings, templates and regular expressions
 * (keeping every offset and newline, so line numbers stay true) before it looks at identifiers, so
 * TSDoc that says "Date" does not trip it; string literals in module-specifier position are still
 * read. It is a lexer, not a parser: the tests that use it prove it can fire.
 */
import { readdirSync, statSync, existsSync } from "node:fs";
import { builtinModules } from "node:module";
import { join } from "node:path";

/** Source files the scans read. */
export const SOURCE_EXTENSIONS = [".ts", ".mts", ".cts", ".tsx", ".js", ".mjs", ".cjs"];

/** Globals that reach the outside world: the clock, timers, the process, I/O, ambient randomness. */
export const WORLD_GLOBALS = [
  "Date",
  "performance",
  "process",
  "setTimeout",
  "setInterval",
  "setImmediate",
  "queueMicrotask",
  "globalThis",
  "crypto",
] as const;

const BUILTINS = new Set(builtinModules);

/** One breach of the rule: where, and what. */
export interface Violation {
  readonly line: number;
  readonly what: string;
}

export interface StringLiteral {
  readonly start: number;
  readonly value: string;
}

export interface Lexed {
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
export function lex(source: string): Lexed {
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

export function lineAt(source: string, offset: number): number {
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
export function isBuiltinSpecifier(specifier: string): boolean {
  return (
    specifier.startsWith("node:") ||
    BUILTINS.has(specifier) ||
    BUILTINS.has(specifier.split("/")[0] as string)
  );
}

/**
 * Every breach in one file's source text: an import of a Node builtin, `require()`, a dynamic
 * `import()`, `Math.random`, or a reference to one of `forbidden` (globals).
 */
export function scanSource(source: string, forbidden: readonly string[]): Violation[] {
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
    [new RegExp(`(?<![\\w$])(?:${forbidden.join("|")})(?![\\w$])`, "g"), "references"],
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

/** One module specifier a source file imports (statically, re-exports from, or imports dynamically). */
export interface ImportSite {
  readonly specifier: string;
  readonly line: number;
}

/** Every string-literal module specifier in `source`: `import … from "x"`, `export … from "x"`, `import("x")`, `require("x")`. */
export function importsOf(source: string): ImportSite[] {
  const { code, strings } = lex(source);
  const found: ImportSite[] = [];
  for (const literal of strings) {
    const before = code.slice(Math.max(0, literal.start - 200), literal.start);
    if (/(?:\bfrom|\bimport|\bimport\s*\(|\brequire\s*\()\s*$/.test(before)) {
      found.push({ specifier: literal.value, line: lineAt(source, literal.start) });
    }
  }
  return found;
}

/** Whether `name` is a test file (`x.test.ts`). */
export function isTestFile(name: string): boolean {
  return /\.test\.[cm]?[jt]sx?$/.test(name);
}

/** Every source file under `dir` (recursively, sorted), tests included; `[]` when it does not exist. */
export function sourceFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const files: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (name === "node_modules" || name.startsWith(".")) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) files.push(...sourceFiles(path));
    else if (SOURCE_EXTENSIONS.some((ext) => name.endsWith(ext))) files.push(path);
  }
  return files;
}
