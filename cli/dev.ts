/**
 * `orrery` in a source checkout: the shipped commands and the examples' ones, which the package
 * does not ship (they need the examples, and the SQLite worker needs better-sqlite3):
 * - `orrery node`: one member of the replicated key-value service (examples/kv).
 * - `orrery member`: one member of a placement cluster with its gateway (examples/router).
 * - `orrery worker`: one SQLite worker of the path-routed example (examples/router).
 * - `orrery demo`: three members and three workers on loopback, with a worker and a leader killed.
 */
import { MEMBER_USAGE, runMember } from "../examples/kv/member.ts";
import { DEMO_USAGE, runDemo } from "../examples/router/demo.ts";
import { ROUTER_MEMBER_USAGE, runRouterMember } from "../examples/router/member.ts";
import { ROUTER_WORKER_USAGE, runRouterWorker } from "../examples/router/worker.ts";
import { COMMANDS, main as shippedMain, type CliIo, type Command } from "./main.ts";

/** The `orrery node` command. */
export const nodeCommand: Command = {
  name: "node",
  summary: "run a member (replicated key-value API, file WAL, TCP or HTTP transport)",
  usage: MEMBER_USAGE,
  run: (args, io) => runMember(args, io.err),
};

/** The `orrery member` command. */
export const memberCommand: Command = {
  name: "member",
  summary: "run a placement member with its gateway (routes HTTP paths to their owners)",
  usage: ROUTER_MEMBER_USAGE,
  run: (args, io) => runRouterMember(args, io.err),
};

/** The `orrery worker` command. */
export const workerCommand: Command = {
  name: "worker",
  summary: "run a worker of the path-routed SQLite example",
  usage: ROUTER_WORKER_USAGE,
  run: (args, io) => runRouterWorker(args, io.out, io.err),
};

/** The `orrery demo` command. */
export const demoCommand: Command = {
  name: "demo",
  summary: "3 members + 3 SQLite workers on loopback; kill a worker and the leader; show failover",
  usage: DEMO_USAGE,
  run: (args, io) => runDemo(args, io.out, io.err),
};

/** Every command of a source checkout, in the order `--help` lists them. */
export const DEV_COMMANDS: readonly Command[] = [demoCommand, memberCommand, workerCommand, nodeCommand, ...COMMANDS];

/** Runs the command line of a source checkout; resolves to the exit status. */
export function main(args: readonly string[], io?: CliIo): Promise<number> {
  return shippedMain(args, io, DEV_COMMANDS);
}
