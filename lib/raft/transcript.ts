/**
 * Transcript tests, in the manner of etcd-io/raft's `testdata/*.txt`: a scenario is a text file
 * of commands, each followed by `----` and the output it must produce. One handler per command;
 * `ORRERY_REWRITE=1` regenerates the expected output (review the diff before committing it).
 *
 * ```
 * # A comment.
 * cluster n1 n2 n3
 * ----
 * ok
 *
 * campaign n1
 * ----
 * n1: follower -> preCandidate (term 0)
 * ```
 */
import { assert } from "../assert.ts";
import { decodeConfState, describeConf } from "./conf.ts";
import type { Entry, Message, NodeId } from "./messages.ts";
import { TestCluster, bytes, lcg, text } from "./testing.ts";

/** One command of a transcript with the output it expects. */
export interface TranscriptCase {
  /** 1-based line of the command. */
  readonly line: number;
  readonly command: string;
  readonly args: readonly string[];
  readonly expected: string;
}

/** Parses a transcript file into cases. */
export function parseTranscript(source: string): TranscriptCase[] {
  const lines = source.split("\n");
  const cases: TranscriptCase[] = [];
  let i = 0;
  while (i < lines.length) {
    const raw = (lines[i] as string).trim();
    if (raw === "" || raw.startsWith("#")) {
      i += 1;
      continue;
    }
    const line = i + 1;
    const [command, ...args] = raw.split(/\s+/) as [string, ...string[]];
    i += 1;
    assert(lines[i]?.trim() === "----", `line ${line + 1}: "----" follows the command`);
    i += 1;
    const output: string[] = [];
    while (i < lines.length && (lines[i] as string).trim() !== "") {
      output.push(lines[i] as string);
      i += 1;
    }
    cases.push({ line, command, args, expected: output.join("\n") });
  }
  return cases;
}

/** Renders cases back into a transcript, with `outputs` replacing the expected output. */
export function renderTranscript(cases: readonly TranscriptCase[], outputs: readonly string[], header: string): string {
  const blocks = cases.map((c, i) => `${[c.command, ...c.args].join(" ")}\n----\n${outputs[i] ?? ""}`);
  return `${header}${blocks.join("\n\n")}\n`;
}

/** Describes a message in one line, the way transcripts show traffic. */
export function describeMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} term=${m.term}`;
  switch (m.type) {
    case "append": {
      const entries = m.entries.map((e) => `${e.index}/${e.term}${describeData(e)}`);
      return `${head} prev=${m.prevIndex}/${m.prevTerm} commit=${m.commit} entries=[${entries.join(" ")}]`;
    }
    case "appendResponse":
      return m.reject
        ? `${head} reject index=${m.index} hint=${m.rejectHint}/${m.rejectHintTerm}`
        : `${head} index=${m.index}`;
    case "heartbeat":
      return `${head} commit=${m.commit}${m.round > 0 ? ` round=${m.round}` : ""}`;
    case "heartbeatResponse":
      return m.round > 0 ? `${head} round=${m.round}` : head;
    case "readIndex":
      return `${head} request=${m.requestId}`;
    case "readIndexResponse":
      return `${head} request=${m.requestId} index=${m.index}`;
    case "requestVote":
    case "requestPreVote":
      return `${head} last=${m.lastIndex}/${m.lastTerm}${m.transfer ? " transfer" : ""}`;
    case "voteResponse":
    case "preVoteResponse":
      return `${head} ${m.reject ? "reject" : "grant"}`;
    case "timeoutNow":
      return head;
    case "snapshot":
      return `${head} snapshot=${m.index}/${m.snapshotTerm} origin=${m.origin} offset=${m.offset} bytes=${m.data.byteLength}${m.done ? " done" : ""}`;
    case "snapshotResponse":
      return `${head} snapshot=${m.index} offset=${m.offset}${m.reject ? " reject" : ""}`;
  }
}

/** An entry's data as transcripts show it: the text of a command, or `conf(...)` for a configuration. */
function describeData(entry: Entry): string {
  if (entry.type === "confChange") {
    const conf = decodeConfState(entry.data);
    return `:conf(${conf === null ? "malformed" : describeConf(conf)})`;
  }
  return entry.data.byteLength > 0 ? `:${text(entry.data)}` : "";
}

/**
 * Runs transcript commands against an in-memory cluster. Commands:
 * `cluster <ids...> [key=value config...]`, `campaign <id>`, `propose <id> <text>`,
 * `transfer <from> <to>`, `read <id> <requestId>`, `reads <id...>`, `tick <id|all> [n]`, `stabilize`, `deliver` (one round), `isolate <id>`,
 * `cut <a> <b>`, `heal`, `status <id...>`, `log <id...>`, `drop`.
 */
export class TranscriptRunner {
  private cluster: TestCluster | null = null;
  private roles = new Map<NodeId, string>();

  /** Runs one command and returns its output. */
  run(command: string, args: readonly string[]): string {
    switch (command) {
      case "cluster":
        return this.createCluster(args);
      case "campaign":
        this.node(args[0]).campaign();
        return this.settle(false);
      case "propose":
        return this.propose(args);
      case "read":
        return this.attempt(() => this.node(args[0]).readIndex(args[1] as string)) ?? this.settle(false);
      case "reads":
        return args.map((id) => `${id}: ${(this.c().reads.get(id) ?? []).map((r) => `${r.requestId}@${r.index}`).join(" ") || "none"}`).join("\n");
      case "transfer":
        return this.attempt(() => this.node(args[0]).transferLeadership(args[1] as string)) ?? this.settle(false);
      case "tick":
        return this.tick(args);
      case "stabilize":
        return this.settle(true);
      case "deliver":
        return this.settle(false);
      case "isolate":
        this.c().isolate(args[0] as string);
        return "ok";
      case "cut":
        this.c().cut(args[0] as string, args[1] as string);
        return "ok";
      case "heal":
        this.c().heal();
        return "ok";
      case "drop":
        this.c().dropInFlight();
        return "ok";
      case "status":
        return args.map((id) => this.status(id)).join("\n");
      case "log":
        return args.map((id) => `${id}: ${this.c().disks.get(id)?.entries.map((e) => `${e.index}/${e.term}`).join(" ") ?? ""}`).join("\n");
      default:
        return `error: unknown command ${command}`;
    }
  }

  private c(): TestCluster {
    assert(this.cluster !== null, "a transcript starts with `cluster`");
    return this.cluster;
  }

  private node(id: string | undefined) {
    return this.c().node(id as string);
  }

  private createCluster(args: readonly string[]): string {
    const ids = args.filter((a) => !a.includes("="));
    const config: Record<string, number | boolean> = {};
    for (const pair of args.filter((a) => a.includes("="))) {
      const [key, value] = pair.split("=") as [string, string];
      config[key] = value === "true" ? true : value === "false" ? false : Number(value);
    }
    this.cluster = new TestCluster(ids, { random: lcg(1), config });
    this.roles = new Map(ids.map((id) => [id, "follower (term 0)"]));
    return "ok";
  }

  private propose(args: readonly string[]): string {
    let result = "";
    const error = this.attempt(() => {
      const { index, term } = this.node(args[0]).propose(bytes(args.slice(1).join(" ")));
      result = `proposed ${index}/${term}`;
    });
    return error ?? result;
  }

  private tick(args: readonly string[]): string {
    const count = Number(args[1] ?? 1);
    const targets = args[0] === "all" ? this.c().ids : [args[0] as string];
    for (let i = 0; i < count; i += 1) {
      for (const id of targets) if (this.c().isUp(id)) this.node(id).tick();
    }
    return this.settle(false);
  }

  /** Runs `fn`; returns a one-line description of a thrown orrery error, or `undefined`. */
  private attempt(fn: () => void): string | undefined {
    try {
      fn();
      return undefined;
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === undefined) throw error;
      return `error ${code}: ${(error as Error).message}`;
    }
  }

  /** Processes Readies and delivers messages (once, or until quiet), narrating what happened. */
  private settle(untilQuiet: boolean): string {
    const cluster = this.c();
    const out: string[] = [];
    for (let round = 0; round < 100; round += 1) {
      const before = cluster.sent.length;
      cluster.processReady();
      out.push(...this.roleChanges());
      const sent = cluster.sent.slice(before);
      for (const m of sent) out.push(describeMessage(m));
      const delivered = cluster.deliverDue();
      cluster.processReady();
      out.push(...this.roleChanges());
      for (const m of cluster.sent.slice(before + sent.length)) out.push(describeMessage(m));
      if (!untilQuiet || (delivered === 0 && cluster.sent.length === before)) break;
    }
    return out.length === 0 ? "ok" : out.join("\n");
  }

  private roleChanges(): string[] {
    const out: string[] = [];
    for (const id of this.c().ids) {
      const status = this.node(id).status();
      const role = `${status.role} (term ${status.term})`;
      if (this.roles.get(id) !== role) {
        out.push(`${id}: ${this.roles.get(id) ?? "?"} -> ${role}`);
        this.roles.set(id, role);
      }
    }
    return out;
  }

  private status(id: string): string {
    const s = this.node(id).status();
    const matched = s.matched === undefined ? "" : ` matched=${Object.entries(s.matched).map(([k, v]) => `${k}:${v}`).join(",")}`;
    return `${id}: ${s.role} term=${s.term} leader=${s.leader ?? "none"} commit=${s.commit} applied=${s.applied} last=${s.lastIndex}/${s.lastTerm}${matched}`;
  }
}
