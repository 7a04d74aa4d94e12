/**
 * Test support for the benchmarks' smoke tests: runs a benchmark to its end in a process group of
 * its own, so that every member, worker or etcd process it starts is killed with it, whatever
 * happens; its temporary folders go in a folder removed afterwards.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Runs `node args` to its end and returns its stdout; throws on a failure or after `timeoutMs`.
 * The whole process group is killed when the run ends (a clean run leaves nothing to kill) or
 * this process exits.
 */
export async function runBench(args: readonly string[], timeoutMs: number, label: string): Promise<string> {
  const tmp = mkdtempSync(join(tmpdir(), `orrery-${label}-`));
  const child = spawn(process.execPath, args, { detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, TMPDIR: tmp } });
  const killGroup = () => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    } catch {
      // The group is already gone.
    }
  };
  process.once("exit", killGroup);
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr = (stderr + chunk).slice(-8000)));
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal }));
  });
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<"expired">((resolve) => (timer = setTimeout(() => resolve("expired"), timeoutMs)));
  try {
    const end = await Promise.race([ended, expired]);
    if (end === "expired") throw new Error(`the run did not finish within ${timeoutMs} ms; stderr:\n${stderr}`);
    if (end.code !== 0) throw new Error(`the run ended with ${end.code ?? end.signal}; stderr:\n${stderr}`);
    return stdout;
  } finally {
    clearTimeout(timer);
    killGroup();
    process.removeListener("exit", killGroup);
    rmSync(tmp, { recursive: true, force: true, maxRetries: 3 });
  }
}
