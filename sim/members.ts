/**
 * A simulated member: the real host (`createNode`, or `createPlacementMember` for placement runs)
 * on the world's ports — its process's clock, the simulated network as its transport, the simulated
 * disk as its storage — and what the simulator observes of it: the log, the commit and applied
 * indexes and the role it reports, incarnation by incarnation.
 */
import { createNode, type OrreryNode } from "../lib/host/node.ts";
import type { NodeObserver } from "../lib/host/options.ts";
import { createPlacementMember, type PlacementMember } from "../lib/host/placement-member.ts";
import type { PlacementApplied } from "../lib/host/placement-machine.ts";
import type { LeaseConfigInput } from "../lib/placement/leases.ts";
import type { Storage } from "../lib/ports/storage.ts";
import type { HostRaftOptions } from "../lib/host/options.ts";
import type { Entry } from "../lib/raft/messages.ts";
import type { Ready } from "../lib/raft/raw-node.ts";
import type { Role } from "../lib/raft/raft.ts";
import { SimDisk } from "./disk.ts";
import { KvStore } from "./kv.ts";
import type { SimWire } from "./transport.ts";
import type { SimProcess } from "./world.ts";

/** What the simulator has seen of a member's current incarnation, from its observer. */
export interface MemberView {
  /** The member's log as of its last Ready (held, durable or being made so), from index 1. */
  log: Entry[];
  /** The commit index it persisted last. */
  commit: number;
  /** The last entry it applied. */
  applied: number;
  role: Role;
  term: number;
  leader: string | null;
}

/** What the simulator does with what a member reports (checkers, trace, stats). */
export interface MemberHooks {
  /** The committed entries 1..`index` as the world has seen them (the prefix a snapshot stands for). */
  committedPrefix(index: number): Entry[];
  ready(member: SimMember, rd: Ready, before: MemberView): void;
  persisted(member: SimMember, rd: Ready): void;
  applied(member: SimMember, entry: Entry): void;
  failed(member: SimMember, error: Error): void;
}

/** How every member of a run is configured. */
export interface MemberSetup {
  readonly tickMs: number;
  readonly raft: HostRaftOptions;
  readonly snapshotEntries: number;
  readonly closeTransferMs: number;
  /** Placement runs: the lease and the leader's pace; `null` for key-value runs. */
  readonly placement: {
    readonly lease: LeaseConfigInput;
    readonly placementTickMs: number;
    readonly rebalanceEveryMs: number;
    readonly rebalanceMovesPerRound: number;
    readonly moveWaitMs: number;
    readonly onApplied: PlacementApplied;
  } | null;
}

/** One member across its incarnations. */
export class SimMember {
  readonly disk = new SimDisk();
  /** The running host, once its start completed; `null` while down or starting. */
  node: OrreryNode<unknown> | null = null;
  /** Placement runs: the placement member around `node`. */
  placement: PlacementMember | null = null;
  /** Key-value runs: the state machine of the current incarnation. */
  kv: KvStore | null = null;
  view: MemberView = emptyView();
  /** Set while a graceful close is in progress. */
  closing = false;
  /** Counters of earlier incarnations (a restart starts the core's counters from zero). */
  readonly past = { snapshotsSent: 0, snapshotsInstalled: 0, reads: 0 };
  /** Snapshots this member took of its own state. */
  snapshotsTaken = 0;
  /** Gets this incarnation served by ReadIndex or lease. */
  reads = 0;

  constructor(
    readonly id: string,
    readonly process: SimProcess,
    private readonly wire: SimWire,
    private readonly setup: MemberSetup,
    private readonly hooks: MemberHooks,
    /** fsync latency, drawn per sync (µs). */
    private readonly fsyncUs: () => number,
    /** Randomness for this member's election timeouts. */
    private readonly random: () => number,
  ) {}

  /** Whether the member is running (its host started, not crashed). */
  get up(): boolean {
    return this.process.up && this.node !== null;
  }

  /**
   * Starts a new incarnation from what the disk holds. `voters` are the first members for a new
   * cluster (all of `members`); `join` starts it empty, to be added by a leader.
   */
  start(members: readonly string[], join: boolean): void {
    this.process.start();
    const generation = this.process.generation;
    const restored = this.disk.load();
    const snapshotIndex = restored.snapshot?.index ?? 0;
    this.view = {
      ...emptyView(),
      log: [...this.hooks.committedPrefix(snapshotIndex), ...restored.entries],
      commit: restored.hardState.commit,
      applied: snapshotIndex,
      term: restored.hardState.term,
    };
    const storage = this.storage(generation);
    const transport = this.wire.transport(this.id);
    const clock = this.process.clockPort();
    const live = () => this.process.up && this.process.generation === generation;
    const observer: NodeObserver = {
      ready: (rd) => live() && this.onReady(rd),
      persisted: (rd) => live() && this.hooks.persisted(this, rd),
      applied: (entry) => {
        if (!live()) return;
        this.view.applied = entry.index;
        this.hooks.applied(this, entry);
      },
      snapshotSaved: () => {
        if (live()) this.snapshotsTaken += 1;
      },
      failed: (error) => live() && this.hooks.failed(this, error),
    };
    const common = {
      id: this.id,
      members: Object.fromEntries(members.map((id) => [id, id])),
      join,
      transport,
      storage,
      clock,
      random: this.random,
      tickMs: this.setup.tickMs,
      raft: this.setup.raft,
      snapshotEntries: this.setup.snapshotEntries,
      closeTransferMs: this.setup.closeTransferMs,
      observer,
    };
    const placement = this.setup.placement;
    if (placement === null) {
      const kv = new KvStore();
      void createNode<unknown>({ ...common, stateMachine: kv }).then((node) => {
        if (!live()) return;
        this.kv = kv;
        this.attach(node);
      }, (error: unknown) => live() && this.hooks.failed(this, error as Error));
    } else {
      void createPlacementMember({ ...common, ...placement }).then((member) => {
        if (!live()) return;
        this.placement = member;
        this.attach(member.node as OrreryNode<unknown>);
      }, (error: unknown) => live() && this.hooks.failed(this, error as Error));
    }
  }

  /**
   * The incarnation's host is running. Its commit index may exceed the hard state's on disk: a
   * commit index alone is written without an fsync, but a snapshot taken after it stands for
   * committed entries, and the core restores its commit index to at least the snapshot's.
   */
  private attach(node: OrreryNode<unknown>): void {
    this.node = node;
    this.view.commit = Math.max(this.view.commit, node.status().commit);
  }

  /** The disk as this incarnation's storage: fsyncs take simulated time; a dead incarnation writes nothing. */
  private storage(generation: number): Storage {
    const live = () => this.process.up && this.process.generation === generation;
    const storage = this.disk.open((done) => this.process.after(this.fsyncUs(), done));
    return {
      load: () => storage.load(),
      append: (batch) => (live() ? storage.append(batch) : new Promise<void>(() => {})),
      saveSnapshot: (snapshot) => (live() ? storage.saveSnapshot(snapshot) : new Promise<void>(() => {})),
      close: () => storage.close(),
    };
  }

  private onReady(rd: Ready): void {
    const before = rd.softState === undefined ? this.view : { ...this.view };
    if (rd.snapshot !== undefined) {
      this.view.log = this.hooks.committedPrefix(rd.snapshot.index);
      this.view.applied = rd.snapshot.index;
    }
    const first = rd.entries[0];
    if (first !== undefined) {
      this.view.log.length = first.index - 1;
      for (const entry of rd.entries) this.view.log.push(entry);
    }
    if (rd.hardState !== undefined) this.view.term = rd.hardState.term;
    if (rd.softState !== undefined) {
      this.view.role = rd.softState.role;
      this.view.leader = rd.softState.leader;
    }
    this.hooks.ready(this, rd, before);
  }

  /** The core's counters, summed over incarnations. */
  snapshotCounters(): { sent: number; installed: number } {
    const counters = this.node?.status().counters;
    return {
      sent: this.past.snapshotsSent + (counters?.snapshotsSent ?? 0),
      installed: this.past.snapshotsInstalled + (counters?.snapshotsInstalled ?? 0),
    };
  }

  /** Ends the incarnation abruptly: what was not fsynced is lost (see SimDisk.crash). */
  stop(): void {
    const counters = this.node?.status().counters;
    if (counters !== undefined) {
      this.past.snapshotsSent += counters.snapshotsSent;
      this.past.snapshotsInstalled += counters.snapshotsInstalled;
    }
    this.past.reads += this.reads;
    this.reads = 0;
    this.node = null;
    this.placement = null;
    this.kv = null;
    this.closing = false;
    this.view = emptyView();
    this.process.stop();
  }
}

function emptyView(): MemberView {
  return { log: [], commit: 0, applied: 0, role: "follower", term: 0, leader: null };
}
