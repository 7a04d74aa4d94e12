/**
 * The `orrery` command line as the package ships it: `sim`, `fuzz` and `repair`. Each command is
 * an entry in {@link COMMANDS}. `main` returns the exit status instead of exiting, so tests can call
 * it directly. A source checkout adds the examples' commands (`demo`, `member`, `worker`, `node`,
 * see `cli/dev.ts`); nothing shipped imports an example.
 */
import { readFileSync } from "node:fs";
import { repairCommand } from "./repair.ts";
import { fuzzCommand, simCommand } from "./sim.ts";

/** One `orrery` subcommand. */
export interface Command {
  /** The word typed after `orrery`. */
  readonly name: string;
  /** One line for `orrery --help`. */
  readonly summary: string;
  /** The full usage text for `orrery <name> --help`. */
  readonly usage: string;
  /** Runs the command with the arguments after its name; resolves to the exit status. */
  readonly run: (args: readonly string[], io: CliIo) => Promise<number>;
}

/** Where the command line writes; tests pass their own. */
export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

const STANDARD_IO: CliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/** The commands the shipped `orrery` knows, in the order `--help` lists them. */
export const COMMANDS: readonly Command[] = [simCommand, fuzzCommand, repairCommand];

function version(): string {
  const manifest = JSON.parse(
    readFileSync(new URL("../package.json", import.meta.url), "utf8"),
  ) as { version?: unknown };
  return typeof manifest.version === "string" ? manifest.version : "unknown";
}

function help(commands: readonly Command[]): string {
  const lines = [
    "orrery — exactly-one ownership of resources on top of Raft, proven by deterministic simulation",
    "",
    "Usage: orrery <command> [options]",
    "",
    "Commands:",
    ...commands.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`),
    `  ${"help".padEnd(10)} show this help, or a command's: orrery help <command>`,
    "",
    "Options:",
    "  -h, --help     show help",
    "  -v, --version  print the version",
    "",
    "Library documentation: README.md",
    "",
  ];
  return lines.join("\n");
}

/**
 * Runs the command line with `args` (without `node` and the script); resolves to the exit status.
 * `commands` defaults to the shipped ones.
 */
export async function main(args: readonly string[], io: CliIo = STANDARD_IO, commands: readonly Command[] = COMMANDS): Promise<number> {
  const [first, ...rest] = args;
  if (first === undefined || first === "-h" || first === "--help") {
    io.out(help(commands));
    return 0;
  }
  if (first === "-v" || first === "--version") {
    io.out(`${version()}\n`);
    return 0;
  }
  if (first === "help") {
    const topic = rest[0];
    const command = commands.find((c) => c.name === topic);
    if (topic !== undefined && command === undefined) {
      io.err(`orrery: no command named "${topic}"\n`);
      return 2;
    }
    io.out(command?.usage ?? help(commands));
    return 0;
  }
  const command = commands.find((c) => c.name === first);
  if (command === undefined) {
    io.err(`orrery: unknown command "${first}". Run "orrery --help" for the list.\n`);
    return 2;
  }
  if (rest.includes("-h") || rest.includes("--help")) {
    io.out(command.usage);
    return 0;
  }
  return command.run(rest, io);
}
