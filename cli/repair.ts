/**
 * `orrery repair --data DIR`: the explicit, documented way to cut a file WAL at its first corrupt
 * record (FileStorage.repair). Opening a damaged WAL never cuts anything but a torn tail; this
 * command is for an operator who has decided that losing what follows the damage is acceptable
 * (typically because the member will catch up from its peers).
 */
import { OrreryError } from "../lib/errors.ts";
import { FileStorage } from "../lib/storage/file.ts";
import type { CliIo, Command } from "./main.ts";

const USAGE = [
  "Usage: orrery repair --data DIR [--json]",
  "",
  "Cuts the file WAL in DIR at its first corrupt record: truncates that segment there and deletes",
  "every later segment. Prints what it cut (or that nothing needed cutting). The member must not be",
  "running (the WAL's lock is taken). Entries after the cut are lost from this member; restart it",
  "and it catches up from the leader. Exit status 0 when the WAL opens afterwards, 1 otherwise.",
  "",
  "  --json  print one JSON object: { dir, cut: null | { file, offset, why, bytesCut, filesDeleted } }",
  "",
].join("\n");

async function repair(args: readonly string[], io: CliIo): Promise<number> {
  let dir: string | undefined;
  let json = false;
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i];
    if (arg === "--data") dir = args[++i];
    else if (arg === "--json") json = true;
    else {
      io.err(`orrery repair: unknown option ${String(arg)}\n\n${USAGE}`);
      return 2;
    }
  }
  if (dir === undefined || dir.length === 0) {
    io.err(`orrery repair: --data DIR is required\n\n${USAGE}`);
    return 2;
  }
  try {
    const cut = await FileStorage.repair(dir);
    const check = await FileStorage.open(dir);
    await check.close();
    if (json) io.out(`${JSON.stringify({ dir, cut })}\n`);
    else if (cut === null) io.out(`${dir}: nothing to cut; the WAL opens\n`);
    else io.out(`${dir}: cut ${cut.file} at byte ${cut.offset} (${cut.why}); ${cut.bytesCut} bytes and ${cut.filesDeleted.length} later files removed; the WAL opens\n`);
    return 0;
  } catch (error) {
    if (!OrreryError.isOrreryError(error)) throw error;
    io.err(`orrery repair: ${error.message}\n`);
    return 1;
  }
}

/** `orrery repair`. */
export const repairCommand: Command = {
  name: "repair",
  summary: "cut a damaged file WAL at its first corrupt record (explicit; loses what follows)",
  usage: USAGE,
  run: repair,
};
