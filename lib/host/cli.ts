/**
 * `orrery node`: runs one member of the replicated key-value service (examples/kv) with the file
 * WAL and a TCP or HTTP transport, until SIGINT or SIGTERM.
 */
import { MEMBER_USAGE, runMember } from "../../examples/kv/member.ts";
import type { Command } from "../cli.ts";

/** The `orrery node` command. */
export const nodeCommand: Command = {
  name: "node",
  summary: "run a member (replicated key-value API, file WAL, TCP or HTTP transport)",
  usage: MEMBER_USAGE,
  run: (args, io) => runMember(args, io.err),
};
