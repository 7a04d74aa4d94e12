import { TranscriptRunner, parseTranscript } from "./transcript.ts";
import { readFileSync } from "node:fs";
const r = new TranscriptRunner();
const cases = parseTranscript(readFileSync(new URL("./testdata/snapshot.txt", import.meta.url), "utf8"));
for (const c of cases) {
  if (c.command === "drop" ) break;
  const out = r.run(c.command, c.args);
  if (c.command === "deliver") { console.log(">>", c.command); console.log(out); }
}
const cl = (r as any).cluster;
console.log(cl.inFlight.map((m: any) => `${m.message.from}->${m.message.to} ${m.message.type} ${m.message.offset ?? ""}`));
