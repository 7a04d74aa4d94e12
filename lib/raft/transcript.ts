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
import { decodeConfState, describeConf, type ConfChangeOp } from "./conf.ts";
import type { Entry, Message, NodeId } from "./messages.ts";
import { TestCluster, bytes, lcg, text } from "./testing.ts";

/** A `drop-next` rule: messages matching it are lost on delivery, `count` more times. */
interface DropRule {
  readonly type: Message["type"];
  readonly from?: NodeId;
  readonly to?: NodeId;
  readonly offset?: number;
  count: number;
}

/** The `conf` command's operation names. */
const CONF_OPS: Readonly<Record<string, ConfChangeOp["kind"]>> = {
  "add-voter": "addVoter",
  "add-learner": "addLearner",
  remove: "remove",
};

/** One command of a transcript with the output it expects. */
export interface TranscriptCase {
  /** 1-based line of the command. */
  readonly line: number;
  /** The comment and blank lines between the previous case and this command, kept on rewrite. */
  readonly leading: readonly string[];
  readonly command: string;
  readonly args: readonly string[];
  readonly expected: string;
}

/** Parses a transcript file into cases. */
export function parseTranscript(source: string): TranscriptCase[] {
  const lines = source.split("\n");
  const cases: TranscriptCase[] = [];
  let leadingFrom = 0;
  let i = 0;
  while (i < lines.length) {
    const raw = (lines[i] as string).trim();
    if (raw === "" || raw.startsWith("#")) {
      i += 1;
      continue;
    }
    const line = i + 1;
    const leading = lines.slice(leadingFrom, i);
    const [command, ...args] = raw.split(/\s+/) as [string, ...string[]];
    i += 1;
    assert(lines[i]?.trim() === "----", `line ${line + 1}: "----" follows the command`);
    i += 1;
    const output: string[] = [];
    while (i < lines.length && (lines[i] as string).trim() !== "") {
      output.push(lines[i] as string);
      i += 1;
    }
    cases.push({ line, leading, command, args, expected: output.join("\n") });
    leadingFrom = i;
  }
  return cases;
}

/**
 * Renders cases back into a transcript, with `outputs` replacing the expected output. Comments
 * (the file's header among them) stay where they were, above the command they precede.
 */
export function renderTranscript(cases: readonly TranscriptCase[], outputs: readonly string[]): string {
  const lines: string[] = [];
  cases.forEach((c, i) => {
    lines.push(...c.leading, [c.command, ...c.args].join(" "), "----", ...(outputs[i] ?? "").split("\n"));
  });
  return `${lines.join("\n")}\n`;
}

/** Describes a message in one line, the way transcripts show traffic. */
export function describeMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} term=${m.term}`;
  switch (m.type) {
    case "append": {
      const entries = m.entries.map(describeEntry);
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

/** An entry as transcripts show it: `index/term`, then its data. */
function describeEntry(entry: Entry): string {
  return `${entry.index}/${entry.term}${describeData(entry)}`;
}

/** Whether `message` is one a `drop-next` rule is to lose. */
function matchesRule(rule: DropRule, message: Message): boolean {
  if (rule.type !== message.type) return false;
  if (rule.from !== undefined && rule.from !== message.from) return false;
  if (rule.to !== undefined && rule.to !== message.to) return false;
  if (rule.offset !== undefined && (message.type !== "snapshot" || message.offset !== rule.offset)) return false;
  return true;
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
 *
 * - `cluster <ids...> [key=value config...]`: a new cluster (numbers and booleans as config).
 * - `campaign <id>`, `propose <id> <text>`, `transfer <from> <to>`, `read <id> <requestId>`:
 *   the node's API; a refusal prints `error <code>: <message>`, which names the typed reason.
 * - `conf <leader> <op>=<id>...`: `proposeConfChange`, with ops `add-voter`, `add-learner` and
 *   `remove` (e.g. `conf n1 add-voter=n4 remove=n1`); prints where the entry sits, or the refusal.
 * - `add-member <id>`: starts a new, empty member that waits to be contacted (`addMember`).
 * - `compact <id> [index]`: snapshots the member's state machine at its applied index (or
 *   `index`) and compacts its log there; prints the snapshot's index, term and size, the typed
 *   refusal of an index not applied, or that the log is already compacted there.
 * - `crash <id>`, `restart <id>`: a crash loses everything not on the member's disk; a restart
 *   prints the state it came back with.
 * - `tick <id|all> [n]`: ticks the member(s) `n` times, then delivers one round.
 * - `run <n>`: `n` ticks of the whole cluster, each followed by one round of delivery, the way
 *   time passes in a real cluster (so that one member's timeout is seen before the next one's).
 * - `stabilize`: delivers until the network is quiet. `deliver`: one round — what is in flight is
 *   delivered and the members' Readies handled; what they send stays in flight for the next round.
 * - `isolate <id>`, `cut <a> <b>`, `heal`, `drop` (lose every message in flight).
 * - `drop-next <type> [from=<id>] [to=<id>] [offset=<n>] [count=<n>]`: loses the next `count`
 *   (default 1) messages of that type (and sender, receiver, snapshot offset) when they are
 *   delivered; each loss is narrated as `dropped: <message>`.
 * - `status <id...>`, `reads <id...>`, `log <id...>` (persisted entries), `disk <id...>`
 *   (persisted snapshot and entries), `config <id...>` (configuration in effect, applied and
 *   commit), `applied <id...>` (what the state machine applied), `counters <id...>`.
 */
export class TranscriptRunner {
  private cluster: TestCluster | null = null;
  private roles = new Map<NodeId, string>();
  private dropRules: DropRule[] = [];
  /** Messages lost to `drop-next` rules since the narration last reported them. */
  private dropped: Message[] = [];

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
      case "run":
        return this.runTicks(Number(args[0] ?? 1));
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
      case "drop-next":
        return this.addDropRule(args);
      case "conf":
        return this.confChange(args);
      case "add-member":
        return this.addMember(args[0] as string);
      case "compact":
        return this.compact(args);
      case "crash":
        this.c().crash(args[0] as string);
        return "ok";
      case "restart":
        return this.restart(args[0] as string);
      case "config":
        return args.map((id) => this.config(id)).join("\n");
      case "disk":
        return args.map((id) => this.disk(id)).join("\n");
      case "applied":
        return args.map((id) => this.appliedBy(id)).join("\n");
      case "counters":
        return args.map((id) => this.counters(id)).join("\n");
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
    this.dropRules = [];
    this.dropped = [];
    for (const id of ids) this.interceptDelivery(id);
    return "ok";
  }

  /**
   * Routes deliveries to `id` through the `drop-next` rules. The cluster delivers by calling the
   * member's `step`, so losing a message there is the same as losing it in flight.
   */
  private interceptDelivery(id: NodeId): void {
    const node = this.node(id);
    const step = node.step.bind(node);
    node.step = (message: Message) => {
      const rule = this.dropRules.find((r) => matchesRule(r, message));
      if (rule === undefined) {
        step(message);
        return;
      }
      rule.count -= 1;
      if (rule.count === 0) this.dropRules = this.dropRules.filter((r) => r !== rule);
      this.dropped.push(message);
    };
  }

  private addDropRule(args: readonly string[]): string {
    const options = new Map(args.slice(1).map((a) => a.split("=") as [string, string]));
    const rule: DropRule = {
      type: args[0] as Message["type"],
      ...(options.has("from") ? { from: options.get("from") as string } : {}),
      ...(options.has("to") ? { to: options.get("to") as string } : {}),
      ...(options.has("offset") ? { offset: Number(options.get("offset")) } : {}),
      count: Number(options.get("count") ?? 1),
    };
    this.dropRules.push(rule);
    return "ok";
  }

  private confChange(args: readonly string[]): string {
    const ops: ConfChangeOp[] = [];
    for (const arg of args.slice(1)) {
      const [name, id] = arg.split("=") as [string, string | undefined];
      const kind = CONF_OPS[name];
      if (kind === undefined || id === undefined) return `error: unknown operation ${arg}`;
      ops.push({ kind, id });
    }
    let result = "";
    const error = this.attempt(() => {
      const { index, term } = this.node(args[0]).proposeConfChange(ops);
      result = `proposed ${index}/${term}`;
    });
    return error ?? result;
  }

  private addMember(id: NodeId): string {
    this.c().addMember(id);
    this.roles.set(id, "follower (term 0)");
    this.interceptDelivery(id);
    return "ok";
  }

  private compact(args: readonly string[]): string {
    const id = args[0] as string;
    const at = args[1] === undefined ? this.node(id).status().applied : Number(args[1]);
    const compactedTo = this.node(id).status().snapshotIndex;
    // The node returns null here (nothing to do), which the test cluster treats as a test error.
    if (Number.isSafeInteger(at) && at <= compactedTo) return `${id}: already compacted to ${compactedTo}`;
    let result = "";
    const error = this.attempt(() => {
      const snapshot = this.c().compact(id, at);
      const size = `snapshot of ${snapshot.data.byteLength} bytes (${describeConf(snapshot.config)})`;
      result = `${id}: compacted to ${snapshot.index}/${snapshot.term}; ${size}`;
    });
    return error ?? result;
  }

  private restart(id: NodeId): string {
    this.c().restart(id);
    this.interceptDelivery(id);
    const status = this.node(id).status();
    this.roles.set(id, `${status.role} (term ${status.term})`);
    return `${this.status(id)} snapshot=${status.snapshotIndex}`;
  }

  private config(id: NodeId): string {
    const s = this.node(id).status();
    return `${id}: ${describeConf(s.config)} applied=${s.applied} commit=${s.commit}`;
  }

  private disk(id: NodeId): string {
    const disk = this.c().disks.get(id);
    assert(disk !== undefined, `member ${id} has a disk`);
    const snapshot = disk.snapshot === undefined ? "none" : `${disk.snapshot.index}/${disk.snapshot.term}`;
    const entries = disk.entries.map((e) => `${e.index}/${e.term}`).join(" ") || "none";
    return `${id}: snapshot=${snapshot} entries=${entries}`;
  }

  private appliedBy(id: NodeId): string {
    return `${id}: ${(this.c().applied.get(id) ?? []).map(describeEntry).join(" ") || "none"}`;
  }

  private counters(id: NodeId): string {
    const c = this.node(id).status().counters;
    return (
      `${id}: snapshotsSent=${c.snapshotsSent} snapshotsInstalled=${c.snapshotsInstalled} ` +
      `invalidMessages=${c.invalidMessages} confChanges=${c.confChanges} campaigns=${c.campaigns}`
    );
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

  private runTicks(count: number): string {
    const out: string[] = [];
    for (let i = 0; i < count; i += 1) {
      for (const id of this.c().ids) if (this.c().isUp(id)) this.node(id).tick();
      const narrated = this.settle(false);
      if (narrated !== "ok") out.push(narrated);
    }
    return out.length === 0 ? "ok" : out.join("\n");
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
      for (const m of this.dropped) out.push(`dropped: ${describeMessage(m)}`);
      this.dropped = [];
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
