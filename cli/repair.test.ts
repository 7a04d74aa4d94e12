/** `orrery repair`: refuses nothing silently, cuts only when asked, and says what it cut. */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { StorageError } from "../lib/errors.ts";
import { entry } from "../lib/storage/conformance.ts";
import { FileStorage } from "../lib/storage/file.ts";
import { main } from "./main.ts";

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

function capture(): { io: { out: (t: string) => void; err: (t: string) => void }; out: () => string; err: () => string } {
  let out = "";
  let err = "";
  return { io: { out: (t) => (out += t), err: (t) => (err += t) }, out: () => out, err: () => err };
}

describe("orrery repair", () => {
  it("cuts a WAL damaged before its tail, which then opens with the prefix; a second run cuts nothing", async () => {
    const dir = await mkdtemp(join(tmpdir(), "orrery-repair-"));
    dirs.push(dir);
    const storage = await FileStorage.open(dir, { segmentBytesMax: 256 });
    for (let index = 1; index <= 40; index += 1) await storage.append({ entries: [entry(index, 1)] });
    await storage.close();
    const first = (await readdir(dir)).filter((f) => f.startsWith("wal-")).sort()[0] as string;
    const bytes = await readFile(join(dir, first));
    bytes[bytes.length - 3] = (bytes[bytes.length - 3] as number) ^ 0xff; // inside a record, not the last segment's tail
    await writeFile(join(dir, first), bytes);
    await assert.rejects(FileStorage.open(dir), (error: unknown) => StorageError.is(error) && error.reason === "corrupt");

    const run = capture();
    assert.equal(await main(["repair", "--data", dir, "--json"], run.io), 0, run.err());
    const report = JSON.parse(run.out()) as { cut: { file: string; bytesCut: number } | null };
    assert.equal(report.cut?.file.endsWith(first), true, run.out());
    const reopened = await FileStorage.open(dir);
    const state = await reopened.load();
    assert.ok(state.entries.length > 0 && state.entries.length < 40, `a prefix survives: ${state.entries.length}`);
    state.entries.forEach((e, i) => assert.equal(e.index, i + 1));
    await reopened.close();

    const again = capture();
    assert.equal(await main(["repair", "--data", dir], again.io), 0);
    assert.match(again.out(), /nothing to cut/);
  });

  it("needs --data, and refuses a WAL that is open elsewhere", async () => {
    const usage = capture();
    assert.equal(await main(["repair"], usage.io), 2);
    assert.match(usage.err(), /--data DIR is required/);
    const dir = await mkdtemp(join(tmpdir(), "orrery-repair-"));
    dirs.push(dir);
    const open = await FileStorage.open(dir);
    const locked = capture();
    assert.equal(await main(["repair", "--data", dir], locked.io), 1);
    assert.match(locked.err(), /lock/i);
    await open.close();
  });
});
