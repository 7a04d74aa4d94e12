/**
 * The space-time page: a complete, self-contained document that draws what the trace says,
 * escapes whatever the trace contains, is the same bytes for the same input, and cuts long traces
 * to a window it reports.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { TraceEvent } from "./history.ts";
import { renderSpaceTime, type SpaceTimeOptions } from "./html.ts";

const MEMBERS = ["n1", "n2", "n3"] as const;

/** Builds a trace in time order; `message` records a send and, optionally, its fate. */
class TraceBuilder {
  readonly events: TraceEvent[] = [];
  private nextId = 1;

  add(event: TraceEvent): this {
    this.events.push(event);
    return this;
  }

  message(
    t: number,
    from: string,
    to: string,
    type: string,
    fate: { readonly at: number; readonly drop?: "loss" | "partition" | "crashed" } | null,
    detail = `${type} detail`,
  ): number {
    const id = this.nextId;
    this.nextId += 1;
    this.events.push({ t, kind: "send", id, from, to, type, term: 1, detail });
    if (fate !== null) {
      this.events.push(
        fate.drop === undefined
          ? { t: fate.at, kind: "deliver", id }
          : { t: fate.at, kind: "drop", id, reason: fate.drop },
      );
    }
    return id;
  }

  sorted(): TraceEvent[] {
    return [...this.events].sort((a, b) => a.t - b.t);
  }
}

/** An election, appends, a partition, a crash and restart, a drop, client traffic, a violation. */
function smallTrace(): TraceEvent[] {
  const b = new TraceBuilder();
  b.add({ t: 0, kind: "phase", phase: "safety" });
  b.add({ t: 1_000, kind: "role", member: "n1", role: "candidate", term: 1, leader: null });
  b.message(1_000, "n1", "n2", "requestVote", { at: 2_000 });
  b.message(1_000, "n1", "n3", "requestVote", { at: 2_500, drop: "loss" });
  b.message(2_000, "n2", "n1", "voteResponse", { at: 3_000 });
  b.add({ t: 3_000, kind: "role", member: "n1", role: "leader", term: 1, leader: "n1" });
  b.message(4_000, "client-7", "n1", "client:put", { at: 4_500 });
  b.message(5_000, "n1", "n2", "append", { at: 6_000 });
  b.message(5_000, "n1", "n3", "append", { at: 6_200 });
  b.add({ t: 7_000, kind: "commit", member: "n1", index: 1 });
  b.add({ t: 8_000, kind: "partition", description: "isolate n3 [desc]", blocked: [["n1", "n3"], ["n3", "n1"]] });
  b.message(9_000, "n1", "n3", "heartbeat", { at: 9_000, drop: "partition" });
  b.add({ t: 10_000, kind: "heal" });
  b.add({ t: 11_000, kind: "crash", member: "n2" });
  b.add({ t: 15_000, kind: "restart", member: "n2" });
  b.add({ t: 16_000, kind: "phase", phase: "liveness" });
  b.add({ t: 17_000, kind: "violation", checker: "electionSafety", message: "two leaders in term 1" });
  b.message(18_000, "n1", "n2", "heartbeat", null);
  return b.sorted();
}

const OPTIONS: SpaceTimeOptions = { title: "small run", members: MEMBERS, summary: { seed: 42, loss: true } };

/** The ids of every delivered, dropped and in-flight arrow drawn, by shape. */
function arrowCount(html: string, shape: "d" | "p" | "f"): number {
  return [...html.matchAll(new RegExp(`<line class="m k\\d+ ${shape}( c)?"`, "g"))].length;
}

function deliveredCount(trace: readonly TraceEvent[]): number {
  return trace.filter((event) => event.kind === "deliver").length;
}

/** A long run of heartbeats between n1 and n2, with optionally a violation at event `violationAt`. */
function longTrace(messages: number, violationAt: number | null): TraceEvent[] {
  const b = new TraceBuilder();
  b.add({ t: 0, kind: "partition", description: "early partition", blocked: [["n2", "n3"]] });
  for (let i = 0; i < messages; i += 1) {
    const t = 1_000 + i * 1_000;
    if (violationAt !== null && b.events.length >= violationAt && !b.events.some((e) => e.kind === "violation")) {
      b.add({ t, kind: "violation", checker: "logMatching", message: "mismatch at index 9" });
    }
    b.message(t, "n1", "n2", "heartbeat", { at: t + 500 }, `beat-${i}`);
  }
  return b.sorted();
}

describe("renderSpaceTime", () => {
  it("renders a complete HTML document with the diagram as inline SVG", () => {
    const trace = smallTrace();
    const html = renderSpaceTime(trace, OPTIONS);
    assert.match(html, /^<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">/);
    assert.match(html, /<\/body><\/html>\n$/);
    assert.match(html, /<svg id="st" [^>]*>/);
    assert.match(html, /<title>small run<\/title>/);
    for (const member of MEMBERS) assert.match(html, new RegExp(`class="ln"[^>]*>${member}<title>`));
    assert.match(html, /<th>seed<\/th><td>42<\/td>/);
  });

  it("draws one arrow per delivered message, and the drops and the message still in flight", () => {
    const trace = smallTrace();
    const html = renderSpaceTime(trace, OPTIONS);
    assert.equal(arrowCount(html, "d"), deliveredCount(trace));
    assert.equal(arrowCount(html, "p"), 2);
    assert.equal([...html.matchAll(/<text class="x k\d+"/g)].length, 2);
    assert.equal(arrowCount(html, "f"), 1);
    assert.match(html, /DROPPED \(partition\)/);
  });

  it("shows the violation, the partition, the crash, the phases, roles and commits", () => {
    const html = renderSpaceTime(smallTrace(), OPTIONS);
    assert.match(html, /VIOLATION \[electionSafety\] two leaders in term 1/);
    assert.match(html, /id="v0"/);
    assert.match(html, /partition: isolate n3 \[desc\]/);
    assert.match(html, /heal 10 ms/);
    assert.match(html, /class="crashed"/);
    assert.match(html, /✖ crash 11/);
    assert.match(html, /↻ restart 15/);
    assert.match(html, /phase: liveness/);
    assert.match(html, />T1 leader</);
    assert.match(html, /class="r-leader"/);
    assert.match(html, /class="r-candidate"/);
    assert.match(html, />c1</);
  });

  it("gives client traffic its own lanes to the right of the members", () => {
    const html = renderSpaceTime(smallTrace(), OPTIONS);
    const labels = [...html.matchAll(/<text class="ln[^"]*" x="([\d.]+)"[^>]*>([^<]*)<title>/g)];
    assert.deepEqual(labels.map((m) => m[2]), ["n1", "n2", "n3", "client-7"]);
    const xs = labels.map((m) => Number(m[1]));
    assert.deepEqual(xs, [...xs].sort((a, b) => a - b));
    assert.match(html, /client:put/);
  });

  it("escapes every string that comes from the trace", () => {
    const evil = "<script>alert(1)</script>";
    const b = new TraceBuilder();
    b.add({ t: 0, kind: "role", member: evil, role: "leader", term: 1, leader: evil });
    b.message(1_000, evil, "n1", `<img src=x onerror=alert(2)>`, { at: 2_000 }, `"><script>alert(3)</script>`);
    b.add({ t: 3_000, kind: "partition", description: `<b onmouseover=alert(4)>`, blocked: [[evil, "n1"]] });
    b.add({ t: 4_000, kind: "violation", checker: "<i>", message: `${evil} & 'quotes' \u0000\uD800` });
    const html = renderSpaceTime(b.sorted(), {
      title: evil, members: ["n1", evil], summary: { [evil]: evil },
    });
    assert.equal([...html.matchAll(/<script/g)].length, 1, "only the page's own script");
    assert.doesNotMatch(html, /<img|<b |<i>|\u0000|\uD800/);
    assert.match(html, /&lt;b onmouseover=alert\(4\)&gt;/);
    assert.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
    assert.match(html, /&amp; &#39;quotes&#39;/);
  });

  it("is deterministic: the same trace gives byte-identical HTML", () => {
    const first = renderSpaceTime(smallTrace(), OPTIONS);
    const second = renderSpaceTime(structuredClone(smallTrace()), { ...OPTIONS });
    assert.equal(first, second);
    const long = longTrace(3_000, 2_000);
    assert.equal(renderSpaceTime(long, { ...OPTIONS, eventsMax: 500 }), renderSpaceTime(long, { ...OPTIONS, eventsMax: 500 }));
  });

  it("refers to nothing outside the page", () => {
    for (const html of [renderSpaceTime(smallTrace(), OPTIONS), renderSpaceTime([], OPTIONS)]) {
      assert.doesNotMatch(html, /https?:\/\//);
      assert.doesNotMatch(html, /<link|<img|<iframe|<object|<embed|@import/i);
      assert.doesNotMatch(html, /\ssrc=/i);
      assert.doesNotMatch(html, /\shref="(?!#)/);
      assert.doesNotMatch(html, /url\((?!#)/);
    }
  });

  it("carries an inline script that parses", () => {
    const html = renderSpaceTime(smallTrace(), OPTIONS);
    const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)];
    assert.equal(scripts.length, 1);
    assert.doesNotThrow(() => new Function((scripts[0] as RegExpMatchArray)[1] as string));
  });

  it("draws the whole trace, with no window note, when it fits in eventsMax", () => {
    const trace = smallTrace();
    const html = renderSpaceTime(trace, { ...OPTIONS, eventsMax: trace.length });
    assert.doesNotMatch(html, /Showing events/);
    assert.equal(arrowCount(html, "d"), deliveredCount(trace));
  });

  it("cuts a long trace to the window around the first violation and says so", () => {
    const trace = longTrace(2_000, 3_000);
    const violationIndex = trace.findIndex((event) => event.kind === "violation");
    const html = renderSpaceTime(trace, { ...OPTIONS, eventsMax: 400 });
    const note = /Showing events (\d+)–(\d+) of (\d+)/.exec(html);
    assert.ok(note, "the page reports the window");
    const [from, to, total] = [Number(note[1]), Number(note[2]), Number(note[3])];
    assert.equal(total, trace.length);
    assert.equal(to - from + 1, 400);
    assert.ok(from - 1 <= violationIndex && violationIndex < to, "the violation is inside the window");
    assert.match(html, /window around the first violation/);
    assert.match(html, /id="v0"/);
    assert.doesNotMatch(html, /beat-0\n/, "the start of the trace is cut");
    assert.doesNotMatch(html, /beat-1999\n/, "the end of the trace is cut");
    assert.match(html, /partition \(since 0 ms\): early partition/, "state is carried in");
    const drawn = arrowCount(html, "d") + arrowCount(html, "f");
    assert.ok(drawn >= 199 && drawn <= 201, `about 200 heartbeats drawn, got ${drawn}`);
  });

  it("shows the last part of a long trace without a violation and says so", () => {
    const trace = longTrace(2_000, null);
    const html = renderSpaceTime(trace, { ...OPTIONS, eventsMax: 300 });
    assert.match(html, new RegExp(`Showing events ${trace.length - 299}–${trace.length} of ${trace.length}`));
    assert.match(html, /the last part of the trace/);
    assert.match(html, /beat-1999\n/);
    assert.doesNotMatch(html, /beat-1000\n/);
  });

  it("keeps a 20k-event window to a few MB", () => {
    const trace = longTrace(15_000, null);
    const html = renderSpaceTime(trace, OPTIONS);
    assert.match(html, /Showing events/);
    assert.ok(html.length < 6_000_000, `page is ${html.length} characters`);
    const height = Number(/<svg id="st" width="[\d.]+" height="([\d.]+)"/.exec(html)?.[1]);
    assert.ok(height > 0 && height <= 41_000, `diagram height ${height}px`);
  });

  it("renders an empty trace", () => {
    const html = renderSpaceTime([], OPTIONS);
    assert.match(html, /<svg id="st"/);
    assert.match(html, /No violation\./);
  });

  it("rejects an eventsMax that is not a positive integer, and repeated members", () => {
    for (const eventsMax of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => renderSpaceTime([], { ...OPTIONS, eventsMax }), RangeError);
    }
    assert.throws(() => renderSpaceTime([], { ...OPTIONS, members: ["n1", "n1"] }), RangeError);
  });
});
