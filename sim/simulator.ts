/**
 * The deterministic simulator. One seed decides everything: the options (swarm testing), the
 * network's behaviour, the faults, the clocks and the workload. An event queue ordered by
 * (time, sequence) drives members, clients and faults. A run has two phases, as TigerBeetle's
 * VOPR does: a safety phase with faults on, then a liveness phase that heals everything and
 * requires the cluster to recover within a stated bound.
 */
import { AssertionFailure } from "../lib/assert.ts";
import { confMembers, confVoters, isJoint, type ConfChangeOp } from "../lib/raft/conf.ts";
import { MESSAGE_TYPES, type Entry, type Message, type Snapshot } from "../lib/raft/messages.ts";
import type { Role } from "../lib/raft/raft.ts";
import { SimClient } from "./client.ts";
import { SimClock } from "./clock.ts";
import { checkLinearizability } from "./checkers/linearizability.ts";
import {
  CommittedLog,
  DurableAcks,
  ElectionSafety,
  LogMatching,
  checkLiveness,
  type Violation,
} from "./checkers/raft-safety.ts";
import { ConfChangeInFlight, ConfigElectionSafety } from "./checkers/membership.ts";
import {
  FailoverBound,
  FencedResource,
  FencingEpochs,
  SingleOwnership,
  TableIntegrity,
  checkBalance,
  failoverBoundUs,
} from "./checkers/placement.ts";
import type { LeaseGrant } from "../lib/placement/leases.ts";
import type { PlacementResult } from "../lib/placement/table.ts";
import type { PlacementCommand } from "../lib/placement/types.ts";
import { PlacementClient } from "./placement-client.ts";
import { SimWorker, type WorkerReply, type WorkerRequest, type WriteReply, type WriteRequest } from "./worker.ts";
import type { RouteReply } from "./member.ts";
import { EventQueue } from "./event-queue.ts";
import type { Operation, TraceEvent } from "./history.ts";
import { commandKey } from "./kv.ts";
import { SimMember, type ClientReply, type ClientRequest, type MemberHost } from "./member.ts";
import { SimNetwork, type Partition } from "./network.ts";
import { drawOptions, type SimOptionOverrides, type SimOptions } from "./options.ts";
import { Random } from "./random.ts";
import { Interner, TraceRecorder } from "./trace.ts";

/** Counters of a run. `simulatedMs` and `wallMs` give the speed. */
export interface SimStats {
  events: number;
  simulatedMs: number;
  wallMs: number;
  eventsPerSecond: number;
  /** Simulated time divided by wall time. */
  speedup: number;
  messages: number;
  messagesDropped: number;
  elections: number;
  commits: number;
  clientOps: number;
  clientOpsUnknown: number;
  crashes: number;
  partitions: number;
  tornWrites: number;
  fsyncs: number;
  /** Gets served by ReadIndex or lease (not through the log). */
  reads: number;
  /** Leadership transfers requested of a leader (they may be abandoned). */
  leaderTransfers: number;
  /** Snapshot transfers leaders began (InstallSnapshot). */
  snapshotsSent: number;
  /** Snapshots members received from a leader and installed. */
  snapshotsInstalled: number;
  /** Snapshots members took of their own state (log compactions). */
  snapshotsTaken: number;
  /** Configuration entries committed (a joint change commits two). */
  confChanges: number;
  /** Members added to the cluster during the run. */
  membersAdded: number;
  /** Members removed from the configuration and then stopped. */
  membersRetired: number;
  /** Keys granted to a worker for the first time (acquire). */
  acquisitions: number;
  /** Keys of an expired worker granted to another. */
  failovers: number;
  /** Draining keys granted to their next owner (after a release or a lapsed lease). */
  handoffs: number;
  /** The longest failover observed, in ticks of 10 ms true time (see FailoverBound). */
  failoverTicksMax: number;
  /** Writes the fenced resource refused (stale owners). */
  fencedWritesRefused: number;
  /** Worker crashes, pauses and cuts from the members. */
  workerFaults: number;
  /**
   * Times two workers believed they owned one key at once, in runs whose clocks drift beyond ρ on
   * purpose (`clocks.exceedDrift`): there the lease guarantee does not hold, so this is counted
   * rather than reported as a violation, and only fencing must hold.
   */
  ownershipOverlapsBeyondDrift: number;
  /** Violations beyond {@link VIOLATIONS_MAX}, counted but not recorded. */
  violationsDropped: number;
}

/** Everything a run produced. */
export interface SimResult {
  readonly seed: number;
  readonly options: SimOptions;
  readonly traceHash: string;
  readonly violations: readonly Violation[];
  readonly stats: SimStats;
  readonly history: readonly Operation[];
  /** Kept events, when `keepTraceEventsMax` was set. */
  readonly trace: readonly TraceEvent[];
}

/** How to run. */
export interface RunOptions {
  /** Fixes some options instead of drawing them. */
  readonly overrides?: SimOptionOverrides;
  /** Use exactly these options (a replay); `seed` still seeds every random stream. */
  readonly options?: SimOptions;
  /**
   * An explicit fault schedule instead of drawn faults (fuzzing and replays): the drawn partition
   * and crash processes are off, and exactly these faults happen.
   */
  readonly schedule?: readonly FaultEvent[];
  /** Keep up to this many trace events for a diagram. @defaultValue 0 */
  readonly keepTraceEventsMax?: number;
  /** A clock for `wallMs`; the simulator itself never reads one. @defaultValue none (0) */
  readonly wallClock?: () => number;
}

/**
 * The liveness bound, stated once: after healing, within
 * - 20 maximal election timeouts (elections may split, and pre-vote adds a round), plus
 * - 4 client request timeouts (a request in flight must time out and reach the new leader), plus
 * - for the member furthest behind, its missing entries streamed at the flow-control window: one
 *   window (`inflightMessagesMax` appends of `messageBytesMax`, at least one entry each) per
 *   worst-case round trip (twice the maximal latency and jitter, plus the slowest fsync),
 * - for a member behind the leader's compaction point, the snapshot streamed one window of chunks
 *   per round trip,
 * a leader is known to every member, every pending client operation completes and every member
 * applies the same state. `lagEntries` is that member's distance behind the longest log at healing,
 * `snapshotBytes` the largest snapshot a member may need.
 */
export function livenessBoundUs(options: SimOptions, lagEntries = 0, snapshotBytes = 0): number {
  const electionTimeoutMaxUs = 2 * options.electionTicks * options.tickMs * 1000;
  const roundTripUs = 2 * (options.network.latencyUsMax + options.network.jitterUs) + options.disk.fsyncUsMax;
  // Simulated commands are small (under 128 bytes with overhead): a message holds at least one.
  const entriesPerMessage = Math.max(1, Math.floor(options.messageBytesMax / 128));
  const entriesPerRoundTrip = options.inflightMessagesMax * entriesPerMessage;
  const catchUpUs = Math.ceil(lagEntries / entriesPerRoundTrip) * roundTripUs;
  // A member behind the leader's compaction point receives the snapshot instead: one window of
  // chunks per round trip, plus the probe that finds it needs one and the append that follows.
  const chunksPerRoundTrip = options.snapshots.chunkBytes * options.snapshots.chunksInflightMax;
  const snapshotUs = snapshotBytes > 0 ? (Math.ceil(snapshotBytes / chunksPerRoundTrip) + 2) * roundTripUs : 0;
  return 20 * electionTimeoutMaxUs + 4 * options.workload.requestTimeoutMs * 1000 + catchUpUs + snapshotUs;
}

/** One scheduled fault. `atMs` is simulated true time within the safety phase. */
export type FaultEvent =
  | { readonly atMs: number; readonly kind: "cut"; readonly links: readonly (readonly [string, string])[] }
  | { readonly atMs: number; readonly kind: "heal" }
  | { readonly atMs: number; readonly kind: "crash"; readonly member: string }
  | { readonly atMs: number; readonly kind: "restart"; readonly member: string };

type SimEvent = () => void;

/**
 * Events one run may process. A healthy default run takes about 100,000; a run past this is stuck
 * (after a violation a broken core can loop forever), and is stopped with a violation.
 */
export const SIM_EVENTS_MAX = 20_000_000;

/** Violations a run records; later ones are counted in `violationsDropped` only. */
export const VIOLATIONS_MAX = 100;

/** Checkers whose first violation ends the run: what follows a broken safety property is noise. */
const SAFETY_CHECKERS: ReadonlySet<string> = new Set([
  "election-safety",
  "log-matching",
  "state-machine-safety",
  "leader-completeness",
  "assertion",
  "one-conf-change-in-flight",
  "config-election-safety",
]);

/** Keys of slack in the balance check, for zone-first placement (about one key per zone). */
const BALANCE_SLACK_KEYS = 3;

/** Member ids a run may use (n1..n9): the cluster's initial members and those added later. */
const MEMBERS_MAX = 9;

/** Stops the run loop after an assertion failure in a member. */
class RunAborted extends Error {}

/** One simulated run. Use {@link runSimulation}. */
class Simulation implements MemberHost {
  readonly options: SimOptions;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly network: SimNetwork;
  private readonly members = new Map<string, SimMember>();
  private readonly memberIds: string[];
  private readonly clients: SimClient[] = [];
  private readonly faults: Random;
  private readonly trace: TraceRecorder;
  private readonly names = new Interner();
  private readonly violations: Violation[] = [];
  private readonly history: Operation[] = [];
  private readonly electionSafety: ElectionSafety;
  private readonly logMatching: LogMatching;
  private readonly committedLog: CommittedLog;
  private readonly durableAcks: DurableAcks;
  private readonly confInFlight: ConfChangeInFlight;
  private readonly configElection: ConfigElectionSafety;
  /** Randomness for members created during the run (their clocks and cores). */
  private readonly root: Random;
  private readonly clockRandom: Random;
  /** Members stopped for good after their removal from the configuration was committed. */
  private readonly retired = new Set<string>();
  /** Member ids handed out so far (n1, n2, ...). */
  private membersCreated = 0;
  private readonly stats: SimStats = {
    events: 0, simulatedMs: 0, wallMs: 0, eventsPerSecond: 0, speedup: 0, messages: 0,
    messagesDropped: 0, elections: 0, commits: 0, clientOps: 0, clientOpsUnknown: 0, crashes: 0,
    partitions: 0, tornWrites: 0, fsyncs: 0, reads: 0, leaderTransfers: 0, snapshotsSent: 0,
    snapshotsInstalled: 0, snapshotsTaken: 0, confChanges: 0, membersAdded: 0, membersRetired: 0,
    acquisitions: 0, failovers: 0, handoffs: 0, failoverTicksMax: 0, fencedWritesRefused: 0, workerFaults: 0,
    ownershipOverlapsBeyondDrift: 0,
    violationsDropped: 0,
  };
  private readonly workers = new Map<string, SimWorker>();
  private readonly placementClients: PlacementClient[] = [];
  private readonly fenced = new FencedResource();
  private readonly singleOwnership: SingleOwnership;
  private readonly fencingEpochs: FencingEpochs;
  private readonly failover: FailoverBound;
  private readonly tableIntegrity: TableIntegrity;
  /** The highest index whose placement command the simulator has seen applied (first member to apply it). */
  private placementSeenUpTo = 0;
  /** Keys the table should hold, from the commands seen applied. */
  private expectedKeys = 0;
  /** Workers cut off from every member. */
  private readonly workersCut = new Set<string>();
  /** Set by the first safety violation: the event loop stops at the next event. */
  private aborted = false;
  private time = 0;
  private messageIds = 0;
  private requestIds = 0;
  private operationIds = 0;
  private phase: "safety" | "liveness" = "safety";
  private partition: Partition | null = null;

  constructor(
    readonly seed: number,
    options: SimOptions,
    keepTraceEventsMax: number,
    private readonly schedule: readonly FaultEvent[] | undefined,
  ) {
    this.options = options;
    const root = new Random(`run:${seed}`);
    this.network = new SimNetwork(root.fork("network"), options.network);
    this.faults = root.fork("faults");
    this.trace = new TraceRecorder(keepTraceEventsMax);
    const report = (v: Violation) => this.violate(v);
    this.electionSafety = new ElectionSafety(report);
    this.logMatching = new LogMatching(report);
    this.committedLog = new CommittedLog(report);
    this.durableAcks = new DurableAcks(report);
    this.memberIds = Array.from({ length: options.members }, (_, i) => `n${i + 1}`);
    this.membersCreated = options.members;
    this.confInFlight = new ConfChangeInFlight(report);
    this.configElection = new ConfigElectionSafety(report, { voters: [...this.memberIds], outgoing: [], learners: [] });
    this.root = root;
    this.clockRandom = root.fork("clocks");
    // Single ownership is promised only while clocks drift within ρ (DESIGN.md §3).
    this.singleOwnership = new SingleOwnership(
      options.clocks.exceedDrift ? () => (this.stats.ownershipOverlapsBeyondDrift += 1) : report,
    );
    this.fencingEpochs = new FencingEpochs(report);
    this.tableIntegrity = new TableIntegrity(report);
    this.failover = new FailoverBound(report, this.failoverBound());
    for (const id of this.memberIds) this.createMember(id, [...this.memberIds]);
    this.createClients(root);
    if (options.workers.enabled) this.createWorkers(root);
  }

  /** The stated failover bound for this run's options (see failoverBoundUs). */
  private failoverBound(): number {
    const o = this.options;
    return failoverBoundUs({
      leaseMs: o.workers.leaseMs,
      clockDriftMax: o.clocks.clockDriftMax,
      electionTimeoutMaxMs: 2 * o.electionTicks * o.tickMs,
      heartbeatMs: o.heartbeatTicks * o.tickMs,
      renewalIntervalMs: o.workers.renewIntervalMs,
      messageDelayMaxMs: (o.network.latencyUsMax + o.network.jitterUs + o.disk.fsyncUsMax) / 1000,
    });
  }

  private createWorkers(root: Random): void {
    const w = this.options.workers;
    const rho = this.options.clocks.clockDriftMax;
    for (let i = 1; i <= w.count; i += 1) {
      const id = `w${i}`;
      const clocks = this.clockRandom;
      const drift = this.options.clocks.exceedDrift && clocks.chance(0.5) ? clocks.between(2, this.options.clocks.exceedFactorMax ?? 10) * rho : rho;
      const clock = new SimClock(clocks.int(0, 10_000_000), 1 + clocks.between(-drift, drift));
      const worker = new SimWorker(id, clock, {
        lease: { leaseMs: w.leaseMs, clockDriftMax: rho, marginMs: w.marginMs },
        renewIntervalMs: w.renewIntervalMs,
        capacity: 1 + (i % 3),
        zone: `z${i % 3}`,
        writeDelayUs: w.writeDelayUs,
      }, this.workerHost());
      this.workers.set(id, worker);
    }
    for (let i = 1; i <= w.clients; i += 1) {
      this.placementClients.push(new PlacementClient(i, this.memberIds, root.fork(`pclient:${i}`), {
        keys: w.keys,
        thinkMs: w.thinkMs,
        timeoutMs: this.options.workload.requestTimeoutMs,
      }, {
        now: () => this.time,
        route: (client, member, requestId, key) =>
          this.deliver(++this.messageIds, `p${client.id}`, member, () => this.members.get(member)?.route(client.id, requestId, key)),
        write: (client, worker, request) => this.sendWrite(client, worker, request),
        after: (delayUs, fn) => this.at(this.time + delayUs, fn),
        nextRequestId: () => ++this.requestIds,
      }));
    }
  }

  private workerHost(): import("./worker.ts").WorkerHost {
    return {
      now: () => this.time,
      sendToMember: (worker, member, request) => this.sendWorkerRequest(worker, member, request),
      replyToClient: (worker, client, reply) => this.replyWrite(worker, client, reply),
      after: (worker, delayUs, fn) => {
        const generation = worker.generation;
        this.at(this.time + delayUs, () => {
          if (worker.up && worker.generation === generation) fn();
        });
      },
      onServe: (worker, grant, serving) => this.onServe(worker, grant, serving),
      write: (worker, key, epoch) => {
        const result = this.fenced.write(key, epoch);
        this.fencingEpochs.onWrite(this.time, key, worker.id, epoch, result.accepted);
        if (!result.accepted) this.stats.fencedWritesRefused += 1;
        this.mix(16, worker.id, key, epoch, result.accepted ? 1 : 0);
        return result.accepted;
      },
      anyMember: () => this.faults.pick(this.memberIds),
    };
  }

  private onServe(worker: SimWorker, grant: LeaseGrant, serving: boolean): void {
    if (serving) this.singleOwnership.onServeStart(this.time, worker.id, grant.key, grant.epoch);
    else this.singleOwnership.onServeEnd(this.time, worker.id, grant.key);
    this.mix(17, worker.id, grant.key, grant.epoch, serving ? 1 : 0);
  }

  private sendWorkerRequest(worker: SimWorker, member: string, request: WorkerRequest): void {
    if (this.workersCut.has(worker.id)) return;
    this.deliver(++this.messageIds, worker.id, member, () => this.members.get(member)?.workerRequest(worker.id, request));
  }

  replyToWorker(member: SimMember, worker: string, reply: WorkerReply): void {
    if (this.workersCut.has(worker)) return;
    this.deliver(++this.messageIds, member.id, worker, () => this.workers.get(worker)?.onReply(member.id, reply));
  }

  replyRoute(member: SimMember, client: number, reply: RouteReply): void {
    this.deliver(++this.messageIds, member.id, `p${client}`, () => this.placementClients[client - 1]?.onRoute(reply));
  }

  private sendWrite(client: PlacementClient, worker: string, request: WriteRequest): void {
    this.deliver(++this.messageIds, `p${client.id}`, worker, () => this.workers.get(worker)?.onWrite(request));
  }

  private replyWrite(worker: SimWorker, client: number, reply: WriteReply): void {
    this.deliver(++this.messageIds, worker.id, `p${client}`, () => this.placementClients[client - 1]?.onWrite(reply));
  }

  onPlacementApplied(_member: SimMember, index: number, command: PlacementCommand, result: PlacementResult): void {
    // Every member applies the same command at the same index; the first application stands for all.
    if (index <= this.placementSeenUpTo) return;
    this.placementSeenUpTo = index;
    for (const a of result.changed) {
      if (a.state !== "active" || a.epoch !== index) continue;
      this.fencingEpochs.onGrant(this.time, a.key, a.owner, a.epoch);
      this.failover.onGrant(this.time, a.key, a.owner, a.epoch);
      if (command.type === "acquire") {
        this.stats.acquisitions += 1;
        this.expectedKeys += 1;
      } else if (command.type === "expire") this.stats.failovers += 1;
      else this.stats.handoffs += 1;
    }
    this.expectedKeys -= result.removed.length;
    for (const key of result.removed) this.failover.onKeyDropped(key);
    this.mix(18, index, result.changed.length, result.removed.length);
  }

  /** Creates member `id`: `voters` is its first configuration, empty for a member that joins. */
  private createMember(id: string, voters: readonly string[]): SimMember {
    const clocks = this.clockRandom;
    const rho = this.options.clocks.clockDriftMax;
    {
      const raftRandom = this.root.fork(`raft:${id}`);
      const drift = this.options.clocks.exceedDrift && clocks.chance(0.5) ? clocks.between(2, this.options.clocks.exceedFactorMax ?? 10) * rho : rho;
      const clock = new SimClock(clocks.int(0, 10_000_000), 1 + clocks.between(-drift, drift));
      const config = {
        id,
        voters,
        random: () => raftRandom.next(),
        electionTicks: this.options.electionTicks,
        heartbeatTicks: this.options.heartbeatTicks,
        preVote: this.options.preVote,
        checkQuorum: this.options.checkQuorum,
        messageBytesMax: this.options.messageBytesMax,
        inflightMessagesMax: this.options.inflightMessagesMax,
        readOnly: this.options.reads === "lease" ? ("lease" as const) : ("safe" as const),
        clockDriftMax: this.options.clocks.clockDriftMax,
        snapshotChunkBytes: this.options.snapshots.chunkBytes,
        snapshotChunksInflightMax: this.options.snapshots.chunksInflightMax,
      };
      const compaction = { compactEveryEntries: this.options.snapshots.enabled ? this.options.snapshots.compactEveryEntries : 0 };
      const lease = this.options.workers.enabled
        ? { leaseMs: this.options.workers.leaseMs, clockDriftMax: this.options.clocks.clockDriftMax, marginMs: this.options.workers.marginMs }
        : null;
      const member = new SimMember(id, clock, config, this, this.options.reads !== "log", compaction, lease);
      this.members.set(id, member);
      return member;
    }
  }

  private createClients(root: Random): void {
    for (let i = 1; i <= this.options.workload.clients; i += 1) {
      this.clients.push(
        new SimClient(i, this.memberIds, root.fork(`client:${i}`), this.options.workload, {
          now: () => this.time,
          send: (client, member, request) => this.sendClientRequest(client, member, request),
          after: (delayUs, fn) => this.at(this.time + delayUs, fn),
          nextRequestId: () => ++this.requestIds,
          record: (operation, seq) => this.recordOperation(operation, seq),
        }, () => ++this.operationIds),
      );
    }
  }

  // ---------------------------------------------------------------------------------------------
  // The run

  run(): void {
    for (const member of this.members.values()) this.startMember(member);
    for (const client of this.clients) this.at(this.faults.int(0, 20_000), () => client.wake());
    if (this.schedule !== undefined) {
      for (const fault of this.schedule) this.at(Math.round(fault.atMs * 1000), () => this.applyFault(fault));
    } else {
      if (this.options.partitions.enabled) this.scheduleNextPartition();
      if (this.options.crashes.enabled) this.scheduleNextCrash();
    }
    if (this.options.transferMeanIntervalMs > 0) this.scheduleNextTransfer();
    if (this.options.membership.enabled) this.scheduleNextConfChange();
    for (const worker of this.workers.values()) this.at(this.faults.int(0, 50_000), () => worker.start());
    for (const client of this.placementClients) this.at(this.faults.int(100_000, 300_000), () => client.wake());
    if (this.options.workers.enabled) this.scheduleWorkerFaults();
    this.recordPhase("safety");
    const safetyEndUs = this.options.safetyTicks * this.options.tickMs * 1000;
    try {
      this.runUntil(safetyEndUs);
      this.logMatching.check(this.time, this.logs());
      this.runLiveness(safetyEndUs);
    } catch (error) {
      if (!(error instanceof RunAborted)) throw error;
    }
    this.finalChecks();
  }

  private runUntil(endUs: number, stop?: () => boolean): void {
    while (this.queue.peekTime() <= endUs) {
      if (this.aborted) throw new RunAborted();
      if (this.stats.events >= SIM_EVENTS_MAX) {
        this.violate({ checker: "events-max", message: `the run passed SIM_EVENTS_MAX (${SIM_EVENTS_MAX}) events; it is stuck`, t: this.time });
        throw new RunAborted();
      }
      const next = this.queue.pop();
      if (next === undefined) break;
      this.time = next.time;
      this.stats.events += 1;
      try {
        next.event();
      } catch (error) {
        if (error instanceof AssertionFailure) {
          this.violate({ checker: "assertion", message: error.message, t: this.time });
          throw new RunAborted();
        }
        throw error;
      }
      if (stop?.()) return;
    }
    this.time = Math.max(this.time, endUs);
  }

  /** Heals everything, then requires recovery within the stated bound. */
  private runLiveness(healedAt: number): void {
    this.phase = "liveness";
    this.recordPhase("liveness");
    this.heal();
    for (const member of this.members.values()) {
      if (!member.up && !this.retired.has(member.id)) this.restartMember(member);
    }
    this.network.options = { ...this.network.options, lossRate: 0, duplicateRate: 0, reorderRate: 0 };
    for (const client of this.clients) {
      client.accepting = false;
      client.patient = true;
    }
    this.healWorkers(healedAt);
    const active = this.activeMembers();
    const longest = Math.max(...active.map((m) => m.log.length));
    const lagEntries = Math.max(...active.map((m) => longest - m.kv.appliedIndex));
    const snapshotBytes = this.options.snapshots.enabled ? Math.max(...active.map((m) => m.kv.snapshot().byteLength)) : 0;
    const boundUs = livenessBoundUs(this.options, lagEntries, snapshotBytes);
    let leaderAt: number | null = null;
    let opsDoneAt: number | null = null;
    let convergedAt: number | null = null;
    const stepUs = this.options.tickMs * 1000;
    // With workers, also wait (within its bound) for the dead worker's keys to fail over.
    const failoverDeadline = healedAt + this.failover.boundUs;
    let settledAt: number | null = this.options.workers.enabled ? null : healedAt;
    const waiting = (t: number): boolean =>
      convergedAt === null || settledAt === null || (this.failover.pending > 0 && t <= failoverDeadline);
    for (let t = healedAt; t <= Math.max(healedAt + boundUs, failoverDeadline) && waiting(t); t += stepUs) {
      this.runUntil(t);
      if (leaderAt === null && this.leaderKnownToAll()) leaderAt = this.time;
      if (opsDoneAt === null && this.clients.every((c) => !c.busy)) opsDoneAt = this.time;
      if (leaderAt !== null && opsDoneAt !== null && this.converged()) convergedAt = this.time;
      if (settledAt === null && convergedAt !== null && this.placementSettled()) settledAt = this.time;
    }
    for (const v of checkLiveness({ healedAt, boundUs, leaderAt, opsDoneAt, convergedAt })) this.violate(v);
    this.failover.check(this.time);
    if (this.options.workers.enabled) this.checkPlacementSettled(healedAt, settledAt);
  }

  /**
   * The members the liveness phase waits for: those of the latest committed configuration (voters
   * of both halves and learners) that have not been retired.
   */
  private activeMembers(): SimMember[] {
    const ids = confMembers(this.configElection.committedConf);
    return ids.filter((id) => !this.retired.has(id)).map((id) => this.members.get(id) as SimMember);
  }

  private leaderKnownToAll(): boolean {
    const members = this.activeMembers();
    const leader = members.find((m) => m.role === "leader");
    return leader !== undefined && members.every((m) => m.leader === leader.id && m.term === leader.term);
  }

  private converged(): boolean {
    const members = this.activeMembers();
    const first = members[0] as SimMember;
    const index = first.kv.appliedIndex;
    const fingerprint = first.kv.fingerprint();
    return members.every((m) => m.kv.appliedIndex === index && m.commit === index && m.kv.fingerprint() === fingerprint);
  }

  private finalChecks(): void {
    this.logMatching.check(this.time, this.logs());
    if (this.options.workers.enabled) {
      this.singleOwnership.settle(this.time);
      const leader = this.currentLeader() ?? this.activeMembers().find((m) => m.up);
      if (leader !== undefined && leader.kv.appliedIndex >= this.placementSeenUpTo) {
        this.tableIntegrity.check(this.time, leader.kv.table, this.expectedKeys);
      }
      this.stats.failoverTicksMax = Math.ceil(this.failover.failoverUsMax / (this.options.tickMs * 1000));
    }
    for (const member of this.activeMembers()) {
      if (member.up) this.durableAcks.check(this.time, member.id, member.committedCommandKeys());
    }
    for (const client of this.clients) {
      const pending = client.pending();
      if (pending !== null) {
        this.history.push({ id: pending.id, client: client.id, input: pending.input, output: null, invokedUs: pending.invokedUs, returnedUs: null });
        this.stats.clientOpsUnknown += 1;
      }
    }
    this.history.sort((a, b) => a.id - b.id);
    const result = checkLinearizability(this.history);
    if (result.status === "violation") {
      this.violate({ checker: "linearizability", message: `key ${result.key}: ${result.message}`, t: this.time });
    } else if (result.status === "unknown") {
      this.violate({ checker: "linearizability", message: `key ${result.key}: undecided (${result.message})`, t: this.time });
    }
    this.stats.simulatedMs = Math.round(this.time / 1000);
    this.stats.elections = this.electionSafety.elections;
    this.stats.commits = this.committedLog.commitIndex;
    for (const member of this.members.values()) {
      this.stats.fsyncs += member.disk.syncs;
      this.stats.reads += member.readsServed;
      const snapshots = member.snapshotCounters();
      this.stats.snapshotsSent += snapshots.sent;
      this.stats.snapshotsInstalled += snapshots.installed;
      this.stats.snapshotsTaken += member.snapshotsTaken;
    }
  }

  private logs(): Map<string, readonly Entry[]> {
    const logs = new Map<string, readonly Entry[]>();
    for (const member of this.members.values()) {
      if (member.up) {
        logs.set(member.id, member.log);
        continue;
      }
      const restored = member.disk.load();
      const prefix = restored.snapshot !== undefined ? this.committedPrefix(restored.snapshot.index) : [];
      logs.set(member.id, [...prefix, ...restored.entries]);
    }
    return logs;
  }

  // ---------------------------------------------------------------------------------------------
  // Members

  private startMember(member: SimMember): void {
    member.start();
    this.scheduleTick(member, this.faults.int(1, this.options.tickMs * 1000));
  }

  private scheduleTick(member: SimMember, delayUs: number): void {
    const generation = member.generation;
    this.at(this.time + delayUs, () => {
      if (member.generation !== generation || !member.up) return;
      this.mix(1, member.id);
      member.tick();
      this.scheduleTick(member, member.clock.trueDuration(this.options.tickMs * 1000));
    });
  }

  private crashMember(member: SimMember): void {
    const outcome = member.disk.crash(this.faults, this.options.crashes.tornWrites);
    member.crash();
    this.stats.crashes += 1;
    if (outcome.torn) this.stats.tornWrites += 1;
    this.mix(2, member.id);
    this.keep({ t: this.time, kind: "crash", member: member.id });
  }

  private restartMember(member: SimMember): void {
    this.committedLog.onRestart(member.id);
    this.startMember(member);
    this.mix(3, member.id);
    this.keep({ t: this.time, kind: "restart", member: member.id });
  }

  // MemberHost ------------------------------------------------------------------------------------

  now(): number {
    return this.time;
  }

  sendRaft(message: Message): void {
    const id = ++this.messageIds;
    this.stats.messages += 1;
    this.mix(4, message.from, message.to, MESSAGE_TYPES.indexOf(message.type), message.term);
    if (this.trace.keeping) {
      this.keep({ t: this.time, kind: "send", id, from: message.from, to: message.to, type: message.type, term: message.term, detail: describe(message) });
    }
    this.deliver(id, message.from, message.to, () => {
      if (message.type === "voteResponse" && !message.reject) this.configElection.onGrant(message.term, message.to, message.from);
      this.members.get(message.to)?.step(message);
    });
  }

  reply(member: string, client: number, reply: ClientReply): void {
    const id = ++this.messageIds;
    const target = this.clients[client - 1];
    if (target === undefined) return;
    if (this.trace.keeping) {
      this.keep({ t: this.time, kind: "send", id, from: member, to: `c${client}`, type: `client:${reply.status}`, term: 0, detail: `seq=${reply.seq}` });
    }
    this.deliver(id, member, `c${client}`, () => target.onReply(reply));
  }

  private sendClientRequest(client: SimClient, member: string, request: ClientRequest): void {
    const id = ++this.messageIds;
    if (this.trace.keeping) {
      this.keep({ t: this.time, kind: "send", id, from: `c${client.id}`, to: member, type: `client:${request.input.kind}`, term: 0, detail: `seq=${request.seq} key=${request.input.key}` });
    }
    this.deliver(id, `c${client.id}`, member, () => this.members.get(member)?.request(request));
  }

  /** Routes one message through the network: lost, partitioned, or delivered (maybe twice). */
  private deliver(id: number, from: string, to: string, handle: () => void): void {
    if (this.network.isBlocked(from, to)) {
      this.drop(id, "partition");
      return;
    }
    const delays = this.network.route(from, to);
    if (delays.length === 0) this.drop(id, "loss");
    for (const delay of delays) {
      this.at(this.time + delay, () => {
        const member = this.members.get(to);
        if (this.network.isBlocked(from, to)) return this.drop(id, "partition");
        if (member !== undefined && !member.up) return this.drop(id, "crashed");
        this.mix(5, id);
        this.keep({ t: this.time, kind: "deliver", id });
        handle();
      });
    }
  }

  private drop(id: number, reason: "loss" | "partition" | "crashed"): void {
    this.stats.messagesDropped += 1;
    this.mix(6, id);
    this.keep({ t: this.time, kind: "drop", id, reason });
  }

  scheduleSync(member: SimMember, done: () => void): void {
    const { fsyncUsMin, fsyncUsMax } = this.options.disk;
    this.at(this.time + this.faults.int(fsyncUsMin, fsyncUsMax), done);
  }

  onRole(member: SimMember, role: Role, term: number, leader: string | null): void {
    this.mix(7, member.id, ["follower", "preCandidate", "candidate", "leader"].indexOf(role), term);
    this.keep({ t: this.time, kind: "role", member: member.id, role, term, leader });
    if (role === "leader") {
      this.electionSafety.onLeader(this.time, term, member.id);
      this.committedLog.onLeader(this.time, term, member.id, member.log);
      this.configElection.onLeader(this.time, term, member.id);
    }
  }

  onCommit(member: SimMember, commit: number): void {
    const before = this.committedLog.commitIndex;
    this.committedLog.onCommit(this.time, member.id, commit, member.log);
    this.keep({ t: this.time, kind: "commit", member: member.id, index: commit });
    if (this.committedLog.commitIndex > before) this.onNewlyCommitted(this.committedLog.entries().slice(before));
  }

  /** Follows configuration entries as they commit; retires members the new configuration removed. */
  private onNewlyCommitted(entries: readonly Entry[]): void {
    const before = this.configElection.committedConf;
    this.configElection.onCommitted(entries);
    for (const entry of entries) if (entry.type === "confChange") this.stats.confChanges += 1;
    const conf = this.configElection.committedConf;
    if (conf === before || isJoint(conf)) return;
    const members = new Set(confMembers(conf));
    for (const id of this.memberIds) {
      if (members.has(id) || !confMembers(before).includes(id)) continue;
      // Removed for good: give it an election timeout to hear of it, then stop it, as an operator
      // would (a removed member that never learns of its removal could otherwise keep campaigning).
      const member = this.members.get(id) as SimMember;
      this.at(this.time + 2 * this.options.electionTicks * this.options.tickMs * 1000, () => this.retire(member));
    }
  }

  private retire(member: SimMember): void {
    if (this.retired.has(member.id) || confMembers(this.configElection.committedConf).includes(member.id)) return;
    if (member.up) {
      member.disk.crash(this.faults, false);
      member.crash();
    }
    this.retired.add(member.id);
    const at = this.memberIds.indexOf(member.id);
    if (at >= 0) this.memberIds.splice(at, 1);
    this.stats.membersRetired += 1;
    this.mix(13, member.id);
    this.keep({ t: this.time, kind: "crash", member: member.id });
  }

  committedPrefix(index: number): Entry[] {
    return this.committedLog.entries().slice(0, index);
  }

  onSnapshotInstalled(member: SimMember, snapshot: Snapshot): void {
    this.committedLog.onSnapshot(this.time, member.id, snapshot.index, snapshot.term);
    this.mix(14, member.id, snapshot.index);
  }

  onConfAppend(member: SimMember, entry: Entry): void {
    this.confInFlight.onAppend(this.time, member.id, entry, member.log, member.kv.appliedIndex);
  }

  onApply(member: SimMember, entry: Entry): void {
    this.committedLog.onApply(this.time, member.id, entry);
  }

  // Clients ---------------------------------------------------------------------------------------

  private recordOperation(operation: Operation, seq: number): void {
    this.history.push(operation);
    this.stats.clientOps += 1;
    if (operation.output === null) this.stats.clientOpsUnknown += 1;
    const output = operation.output;
    if (output !== null && (output.kind === "put" || (output.kind === "cas" && output.ok))) {
      this.durableAcks.onAck(this.time, commandKey({ client: operation.client, seq, input: operation.input }));
    }
  }

  // Faults ----------------------------------------------------------------------------------------

  private scheduleNextPartition(): void {
    const p = this.options.partitions;
    this.at(this.time + Math.floor(this.faults.exponential(p.meanIntervalMs * 1000)), () => {
      if (this.phase !== "safety") return;
      const leader = [...this.members.values()].find((m) => m.up && m.role === "leader")?.id ?? null;
      const kind = this.faults.pick(p.kinds);
      this.partition = this.network.partition(kind, this.memberIds, leader);
      this.stats.partitions += 1;
      this.mix(8, p.kinds.indexOf(kind));
      this.keep({ t: this.time, kind: "partition", description: this.partition.description, blocked: this.partition.blocked });
      this.at(this.time + this.faults.int(1, p.durationMsMax * 1000), () => {
        if (this.phase !== "safety") return;
        this.heal();
        this.scheduleNextPartition();
      });
    });
  }

  private applyFault(fault: FaultEvent): void {
    if (this.phase !== "safety") return;
    const member = "member" in fault ? this.members.get(fault.member) : undefined;
    switch (fault.kind) {
      case "cut": {
        const links = fault.links.filter(([a, b]) => a !== b && this.members.has(a) && this.members.has(b));
        this.partition = this.network.cut(links);
        this.stats.partitions += 1;
        this.mix(8, links.length);
        this.keep({ t: this.time, kind: "partition", description: this.partition.description, blocked: this.partition.blocked });
        return;
      }
      case "heal":
        this.heal();
        return;
      case "crash":
        if (member?.up === true) this.crashMember(member);
        return;
      case "restart":
        if (member !== undefined && !member.up) this.restartMember(member);
        return;
    }
  }

  private heal(): void {
    if (this.partition === null) return;
    this.network.heal();
    this.partition = null;
    this.mix(9);
    this.keep({ t: this.time, kind: "heal" });
  }

  private scheduleNextCrash(): void {
    const c = this.options.crashes;
    this.at(this.time + Math.floor(this.faults.exponential(c.meanIntervalMs * 1000)), () => {
      if (this.phase !== "safety") return;
      const candidates = this.activeMembers();
      const down = candidates.filter((m) => !m.up).length;
      const up = candidates.filter((m) => m.up);
      // Keep a majority up most of the time, so that the run is not all waiting.
      if (down < Math.floor((candidates.length - 1) / 2) + (this.faults.chance(0.1) ? 1 : 0) && up.length > 0) {
        const victim = this.faults.pick(up);
        this.crashMember(victim);
        this.at(this.time + this.faults.int(1, c.downMsMax * 1000), () => {
          if (!victim.up && !this.retired.has(victim.id)) this.restartMember(victim);
        });
      }
      this.scheduleNextCrash();
    });
  }

  /** Asks the current leader, now and then, to hand leadership to a random other voter. */
  private scheduleNextTransfer(): void {
    const meanUs = this.options.transferMeanIntervalMs * 1000;
    this.at(this.time + Math.max(1, Math.floor(this.faults.exponential(meanUs))), () => {
      if (this.phase !== "safety") return;
      const leader = this.currentLeader();
      const voters = leader?.status()?.config.voters.filter((id) => id !== leader.id) ?? [];
      if (leader !== undefined && voters.length > 0) {
        const target = this.faults.pick(voters);
        leader.transferLeadership(target);
        this.stats.leaderTransfers += 1;
        this.mix(12, leader.id, target);
      }
      this.scheduleNextTransfer();
    });
  }

  /** No key moving and nothing left to rebalance, on the leader's table. */
  private placementSettled(): boolean {
    const leader = this.currentLeader();
    if (leader === undefined) return false;
    const table = leader.kv.table;
    return table.drainingKeys().length === 0 && !table.unbalanced();
  }

  /**
   * Balance, once placement has settled after healing: every worker's load is within the stated
   * bound of its capacity share (see checkBalance; `BALANCE_SLACK_KEYS` covers zone-first
   * placement). Settling is part of liveness: it must happen within the liveness bound.
   */
  private checkPlacementSettled(healedAt: number, settledAt: number | null): void {
    if (settledAt === null) {
      this.violate({ checker: "liveness", message: "placement did not settle (keys still moving or unbalanced) after healing", t: this.time });
      return;
    }
    const leader = this.currentLeader();
    if (leader === undefined) return;
    const table = leader.kv.table;
    const workers = table.workers().filter((w) => w.status === "active" && !w.leaving)
      .map((w) => ({ id: w.id, capacity: w.capacity, load: table.load(w.id) }));
    for (const v of checkBalance(this.time, workers, BALANCE_SLACK_KEYS)) this.violate(v);
    void healedAt;
  }

  /** Crashes, pauses and cuts workers off from the members, each process on its own schedule. */
  private scheduleWorkerFaults(): void {
    const w = this.options.workers;
    const workers = [...this.workers.values()];
    const every = (meanMs: number, fault: (worker: SimWorker, durationUs: number) => void): void => {
      if (meanMs <= 0) return;
      const next = (): void => {
        this.at(this.time + Math.max(1, Math.floor(this.faults.exponential(meanMs * 1000))), () => {
          if (this.phase !== "safety") return;
          const worker = this.faults.pick(workers);
          fault(worker, this.faults.int(1, w.faultDurationMsMax * 1000));
          this.stats.workerFaults += 1;
          next();
        });
      };
      next();
    };
    every(w.crashMeanIntervalMs, (worker, durationUs) => {
      if (!worker.up) return;
      this.crashWorker(worker);
      this.at(this.time + durationUs, () => {
        if (!worker.up && this.phase === "safety") worker.start();
      });
    });
    every(w.pauseMeanIntervalMs, (worker, durationUs) => {
      worker.pausedUntilUs = Math.max(worker.pausedUntilUs, this.time + durationUs);
      this.mix(19, worker.id, 1);
    });
    every(w.cutMeanIntervalMs, (worker, durationUs) => {
      this.workersCut.add(worker.id);
      this.mix(19, worker.id, 2);
      this.at(this.time + durationUs, () => this.workersCut.delete(worker.id));
    });
  }

  private crashWorker(worker: SimWorker): void {
    worker.crash();
    this.singleOwnership.onWorkerCrash(this.time, worker.id);
    this.mix(19, worker.id, 3);
  }

  /**
   * Liveness: worker faults end and crashed workers restart, except one worker, which (with three
   * or more) dies for good so that its keys must fail over within the stated bound.
   */
  private healWorkers(healedAt: number): void {
    if (!this.options.workers.enabled) return;
    this.workersCut.clear();
    for (const client of this.placementClients) client.accepting = false;
    const workers = [...this.workers.values()];
    for (const worker of workers) {
      worker.pausedUntilUs = 0;
      if (!worker.up) worker.start();
    }
    const victim = workers.length >= 3 ? workers[0] : undefined;
    if (victim !== undefined) {
      const leader = this.currentLeader();
      const keys = leader?.kv.table.keysOf(victim.id).map((k) => k.key) ?? [];
      this.crashWorker(victim);
      this.failover.onWorkerDead(this.time, victim.id, keys);
    }
    this.failover.onClusterHealthy(healedAt);
  }

  private currentLeader(): SimMember | undefined {
    return [...this.members.values()].find((m) => m.up && m.role === "leader");
  }

  /**
   * Asks the leader, now and then, to change the membership: add a new member as a learner,
   * promote a learner that has caught up (sometimes removing a voter in the same joint change),
   * remove a voter (possibly itself), or remove a learner. Voters stay between 3 and 7.
   */
  private scheduleNextConfChange(): void {
    const meanUs = this.options.membership.meanIntervalMs * 1000;
    this.at(this.time + Math.max(1, Math.floor(this.faults.exponential(meanUs))), () => {
      if (this.phase !== "safety") return;
      this.scheduleNextConfChange();
      const leader = this.currentLeader();
      const status = leader?.status();
      if (leader === undefined || status === undefined || isJoint(status.config)) return;
      const ops = this.drawConfChange(status.config, status.matched ?? {}, status.commit);
      if (ops === null) return;
      const refused = leader.proposeConfChange(ops);
      this.mix(15, leader.id, ops.length, refused === null ? 1 : 0);
    });
  }

  private drawConfChange(
    conf: { readonly voters: readonly string[]; readonly learners: readonly string[] },
    matched: Readonly<Record<string, number>>,
    commit: number,
  ): ConfChangeOp[] | null {
    const voters = conf.voters;
    const caughtUp = conf.learners.filter((id) => (matched[id] ?? 0) + 8 >= commit);
    const choices: string[] = [];
    if (caughtUp.length > 0 && voters.length < 7) choices.push("promote");
    if (voters.length > 3) choices.push("remove");
    if (conf.learners.length > 0) choices.push("removeLearner");
    if (conf.learners.length < 2 && this.membersCreated < MEMBERS_MAX) choices.push("add", "add");
    if (choices.length === 0) return null;
    const remove = (): ConfChangeOp => ({ kind: "remove", id: this.faults.pick(voters) });
    switch (this.faults.pick(choices)) {
      case "promote": {
        const ops: ConfChangeOp[] = [{ kind: "addVoter", id: this.faults.pick(caughtUp) }];
        if (voters.length > 3 && this.faults.chance(0.5)) ops.push(remove());
        return ops;
      }
      case "remove":
        return [remove()];
      case "removeLearner":
        return [{ kind: "remove", id: this.faults.pick(conf.learners) }];
      default: {
        this.membersCreated += 1;
        const id = `n${this.membersCreated}`;
        const member = this.createMember(id, []);
        this.memberIds.push(id);
        this.startMember(member);
        this.stats.membersAdded += 1;
        this.keep({ t: this.time, kind: "restart", member: id });
        return [{ kind: "addLearner", id }];
      }
    }
  }

  // Plumbing --------------------------------------------------------------------------------------

  private at(time: number, event: SimEvent): void {
    this.queue.push(Math.max(time, this.time), event);
  }

  /** Folds an event into the trace hash: its kind, the time, and up to four fields. */
  private mix(kind: number, a: string | number = 0, b: string | number = 0, c = 0, d = 0): void {
    const code = (f: string | number) => (typeof f === "number" ? f : this.names.code(f));
    this.trace.mix(kind, this.time, code(a), code(b), c, d);
  }

  private keep(event: TraceEvent): void {
    if (this.trace.keeping) this.trace.keep(event);
  }

  private recordPhase(phase: "safety" | "liveness"): void {
    this.mix(10, phase === "safety" ? 0 : 1);
    this.keep({ t: this.time, kind: "phase", phase });
  }

  private violate(violation: Violation): void {
    if (SAFETY_CHECKERS.has(violation.checker)) this.aborted = true;
    if (this.violations.length >= VIOLATIONS_MAX) {
      this.stats.violationsDropped += 1;
      return;
    }
    this.violations.push(violation);
    this.mix(11, violation.checker);
    this.keep({ t: violation.t, kind: "violation", checker: violation.checker, message: violation.message });
  }

  result(wallMs: number): SimResult {
    this.stats.wallMs = Math.round(wallMs);
    this.stats.eventsPerSecond = wallMs > 0 ? Math.round(this.stats.events / (wallMs / 1000)) : 0;
    this.stats.speedup = wallMs > 0 ? Math.round(this.stats.simulatedMs / wallMs) : 0;
    return {
      seed: this.seed,
      options: this.options,
      traceHash: this.trace.hash(),
      violations: this.violations,
      stats: this.stats,
      history: this.history,
      trace: this.trace.events(),
    };
  }
}

/** A one-line summary of a Raft message for the diagram. */
function describe(message: Message): string {
  switch (message.type) {
    case "append":
      return `prev=${message.prevIndex}/${message.prevTerm} n=${message.entries.length} commit=${message.commit}`;
    case "appendResponse":
      return message.reject ? `reject ${message.index} hint=${message.rejectHint}/${message.rejectHintTerm}` : `ok ${message.index}`;
    case "heartbeat":
      return `commit=${message.commit}${message.round > 0 ? ` round=${message.round}` : ""}`;
    case "readIndex":
      return `read ${message.requestId}`;
    case "readIndexResponse":
      return `read ${message.requestId} index=${message.index}`;
    case "requestVote":
    case "requestPreVote":
      return `last=${message.lastIndex}/${message.lastTerm}${message.transfer ? " transfer" : ""}`;
    case "voteResponse":
    case "preVoteResponse":
      return message.reject ? "reject" : "grant";
    case "heartbeatResponse":
      return message.round > 0 ? `round=${message.round}` : "";
    case "timeoutNow":
      return "";
    case "snapshot":
      return `snapshot ${message.index}/${message.snapshotTerm} offset=${message.offset} n=${message.data.byteLength}${message.done ? " done" : ""}`;
    case "snapshotResponse":
      return `snapshot ${message.index} offset=${message.offset}${message.reject ? " reject" : ""}`;
  }
}

/** Runs one seed. Deterministic: the same seed and options give the same trace hash. */
export function runSimulation(seed: number, run: RunOptions = {}): SimResult {
  const options = run.options ?? drawOptions(seed, run.overrides);
  const wallClock = run.wallClock ?? (() => 0);
  const started = wallClock();
  const simulation = new Simulation(seed, options, run.keepTraceEventsMax ?? 0, run.schedule);
  simulation.run();
  return simulation.result(wallClock() - started);
}
