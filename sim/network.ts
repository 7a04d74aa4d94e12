/**
 * The simulated network: per-link latency, loss, duplication and reordering, and partitions. It
 * only decides; the simulator schedules the deliveries it returns. Every draw comes from the
 * network's own random stream.
 */
import type { Random } from "./random.ts";

/** How the network misbehaves. Times are microseconds. */
export interface NetworkOptions {
  /** Each link's base one-way latency is drawn once from `[latencyUsMin, latencyUsMax]`. */
  readonly latencyUsMin: number;
  readonly latencyUsMax: number;
  /** Per-message jitter added to the base, uniform in `[0, jitterUs]`. */
  readonly jitterUs: number;
  /** Probability that a message is lost. */
  readonly lossRate: number;
  /** Probability that a message is delivered twice (the copy with its own delay). */
  readonly duplicateRate: number;
  /** Probability that a message is held back by up to `reorderDelayUsMax`, overtaking later ones. */
  readonly reorderRate: number;
  readonly reorderDelayUsMax: number;
}

/** The kinds of partition the simulator creates. */
export type PartitionKind = "halves" | "isolate" | "one-way" | "bridge";

/** A partition as created: what to call it and which directed links it cuts. */
export interface Partition {
  /** `cut`: an explicit set of links from a fault schedule. */
  readonly kind: PartitionKind | "cut";
  readonly description: string;
  readonly blocked: readonly (readonly [string, string])[];
}

/** The network between members (and between clients and members). */
export class SimNetwork {
  /** from -> to -> the link's base latency, drawn on first use. */
  private readonly baseLatencyUs = new Map<string, Map<string, number>>();
  private blocked = new Set<string>();
  /** Processes cut off (workers): each with the processes it can still reach, both ways. */
  private readonly cutOff = new Map<string, ReadonlySet<string>>();
  /** Options may be swapped between phases (the liveness phase turns faults off). */
  options: NetworkOptions;

  constructor(
    private readonly random: Random,
    options: NetworkOptions,
  ) {
    this.options = options;
  }

  /**
   * Decides the fate of one message from `from` to `to`: the delays (µs) after which its copies
   * arrive: none when it is lost, two when duplicated.
   */
  route(from: string, to: string): number[] {
    const o = this.options;
    if (this.random.chance(o.lossRate)) return [];
    const copies = this.random.chance(o.duplicateRate) ? 2 : 1;
    const delays: number[] = [];
    for (let copy = 0; copy < copies; copy += 1) {
      let delay = this.linkLatency(from, to) + Math.floor(this.random.next() * (o.jitterUs + 1));
      if (this.random.chance(o.reorderRate)) {
        delay += Math.floor(this.random.next() * (o.reorderDelayUsMax + 1));
      }
      delays.push(Math.max(1, delay));
    }
    return delays;
  }

  private linkLatency(from: string, to: string): number {
    let links = this.baseLatencyUs.get(from);
    if (links === undefined) {
      links = new Map();
      this.baseLatencyUs.set(from, links);
    }
    let latency = links.get(to);
    if (latency === undefined) {
      const o = this.options;
      latency = o.latencyUsMin + Math.floor(this.random.next() * (o.latencyUsMax - o.latencyUsMin + 1));
      links.set(to, latency);
    }
    return latency;
  }

  /** Whether traffic from `from` to `to` is cut. */
  isBlocked(from: string, to: string): boolean {
    if (this.cutOff.size > 0) {
      const fromCut = this.cutOff.get(from);
      if (fromCut !== undefined && !fromCut.has(to)) return true;
      const toCut = this.cutOff.get(to);
      if (toCut !== undefined && !toCut.has(from)) return true;
    }
    return this.blocked.size > 0 && this.blocked.has(`${from}>${to}`);
  }

  /**
   * Cuts `peer` off from every process but `except`, both ways, until {@link reconnect}; apart
   * from the partitions, which come and go on their own.
   */
  cutPeer(peer: string, except: readonly string[] = []): void {
    this.cutOff.set(peer, new Set(except));
  }

  /** Ends `peer`'s cut. */
  reconnect(peer: string): void {
    this.cutOff.delete(peer);
  }

  /** Ends every cut. */
  reconnectAll(): void {
    this.cutOff.clear();
  }

  /** Whether any link is cut. */
  get partitioned(): boolean {
    return this.blocked.size > 0;
  }

  /**
   * Cuts links among `members` according to `kind` (replacing any earlier partition). `leader`,
   * when known, is the member `isolate` cuts off; otherwise one is drawn.
   */
  partition(kind: PartitionKind, members: readonly string[], leader: string | null): Partition {
    const shuffled = this.random.shuffle(members);
    const blocked: [string, string][] = [];
    const cut = (a: string, b: string) => {
      blocked.push([a, b], [b, a]);
    };
    let description: string;
    switch (kind) {
      case "halves": {
        const size = 1 + Math.floor(this.random.next() * (members.length - 1));
        const left = shuffled.slice(0, size).sort();
        const right = shuffled.slice(size).sort();
        for (const a of left) for (const b of right) cut(a, b);
        description = `halves {${left.join(",")}} | {${right.join(",")}}`;
        break;
      }
      case "isolate": {
        const victim = leader ?? (shuffled[0] as string);
        for (const other of members) if (other !== victim) cut(victim, other);
        description = `isolate ${victim}`;
        break;
      }
      case "one-way": {
        const [from, to] = shuffled as [string, string];
        blocked.push([from, to]);
        description = `one-way ${from}->${to}`;
        break;
      }
      case "bridge": {
        // Two sides that cannot talk, and one member that talks to both.
        const [bridge, ...rest] = shuffled as [string, ...string[]];
        const half = Math.max(1, Math.floor(rest.length / 2));
        const left = rest.slice(0, half).sort();
        const right = rest.slice(half).sort();
        for (const a of left) for (const b of right) cut(a, b);
        description = `bridge ${bridge} between {${left.join(",")}} and {${right.join(",")}}`;
        break;
      }
    }
    this.blocked = new Set(blocked.map(([a, b]) => `${a}>${b}`));
    return { kind, description, blocked };
  }

  /** Cuts exactly `links` (directed), replacing any earlier partition. */
  cut(links: readonly (readonly [string, string])[]): Partition {
    this.blocked = new Set(links.map(([a, b]) => `${a}>${b}`));
    const description = links.length === 0 ? "no links cut" : `cut ${links.map(([a, b]) => `${a}->${b}`).join(" ")}`;
    return { kind: "cut", description, blocked: links };
  }

  /** The directed links the current partition cuts. */
  blockedLinks(): [string, string][] {
    return [...this.blocked].map((link) => link.split(">") as [string, string]);
  }

  /** Restores every link. */
  heal(): void {
    this.blocked = new Set();
  }
}
