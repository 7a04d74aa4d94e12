/**
 * Runs every transcript in `testdata/`. `ORRERY_REWRITE=1 node .ci/tests.mjs transcript`
 * regenerates the expected outputs; review the diff before committing.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { TranscriptRunner, parseTranscript, renderTranscript } from "./transcript.ts";

const dir = fileURLToPath(new URL("./testdata/", import.meta.url));
const rewrite = process.env.ORRERY_REWRITE === "1";

for (const file of readdirSync(dir).filter((f) => f.endsWith(".txt")).sort()) {
  describe(`transcript ${file}`, () => {
    const source = readFileSync(`${dir}${file}`, "utf8");
    const cases = parseTranscript(source);
    const runner = new TranscriptRunner();
    const outputs: string[] = [];
    for (const c of cases) {
      it(`line ${c.line}: ${[c.command, ...c.args].join(" ")}`, () => {
        const output = runner.run(c.command, c.args);
        outputs.push(output);
        if (!rewrite) assert.equal(output, c.expected, `${file}:${c.line}`);
      });
    }
    if (rewrite) {
      it("rewrites the expected output", () => {
        writeFileSync(`${dir}${file}`, renderTranscript(cases, outputs));
      });
    }
  });
}
