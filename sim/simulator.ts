/**
 * The deterministic simulator. One seed decides everything: the options (swarm testing), the
 * network's behaviour, the faults, the clocks and the workload. The cluster is the real host —
 * `createNode` for key-value runs, `createPlacementMember` and the worker agent for placement
 * runs — on the world's ports (sim/world.ts: clocks; sim/transport.ts: the network; sim/disk.ts:
 * the disks). A run has two phases, as TigerBeetle's VOPR does: a safety phase with faults on, then
 * a liveness phase that heals everything and requires the cluster to recover within a stated bound.
 */
import { AssertionFailure } from "../lib/assert.ts";
import { ClosedError, NotLeaderError, OrreryError, ProposalDroppedError, TimeoutError } from "../lib/errors.ts";
import { resolveLeaseConfig } from "../lib/placement/leases.ts";
import type { PlacementResult } from "../lib/placement/table.ts";
import { resolveConfig } from "../lib/raft/config.ts";
import type { PlacementCommand } from "../lib/placement/types.ts";
import { confMembers, isJoint, type ConfChangeOp } from "../lib/raft/conf.ts";
import { MESSAGE_TYPES, type ConfState, type Entry, type Message } from "../lib/raft/messages.ts";
import type { Ready } from "../lib/raft/raw-node.ts";
import { SimClient, type ClientReply, type ClientRequest } from "./client.ts";
import { SimClock } from "./clock.ts";
import { CheckQuorumStepDown, OperationsSettle, PreVoteStability } from "./checkers/host.ts";
import { checkLinearizability } from "./checkers/linearizability.ts";
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
import { CommittedLog, DurableAcks, ElectionSafety, LogMatching, checkLiveness, type Violation } from "./checkers/raft-safety.ts";
import { Faults } from "./faults.ts";
import { Gateways } from "./gateway.ts";
import type { KvOutput, Operation, TraceEvent } from "./history.ts";
import { commandKey, encodeCommand, entryCommand, type KvCommand } from "./kv.ts";
import { SimMember, type MemberHooks, type MemberSetup, type MemberView } from "./members.ts";
import { SimNetwork, type Partition } from "./network.ts";
import { drawOptions, type ScenarioKind, type SimOptionOverrides, type SimOptions } from "./options.ts";
import { PlacementClient } from "./placement-client.ts";
import { Random } from "./random.ts";
import { Interner, TraceRecorder } from "./trace.ts";
import { SimWire, type Parcel } from "./transport.ts";
import { SimWorker } from "./workers.ts";
import { Scheduler, SimProcess } from "./world.ts";

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
  /** Gets served by ReadIndex or lease (through `read()`, not the log). */
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
  /** Graceful `close()` of members (then restarted). */
  memberCloses: number;
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
  /** Routed requests that a worker answered with a write (200). */
  routedWrites: number;
  /** Worker crashes, pauses, cuts from the members and graceful closes. */
  workerFaults: number;
  /** Narrow-window scenarios run (see `ScenarioKind`). */
  scenarios: number;
  /** Crashes right after a vote grant or an append acknowledgement. */
  crashesAfterGrant: number;
  /** `propose()`/`read()` calls checked to settle by their deadline. */
  operationsSettled: number;
  /** Leaders cut off from a quorum whose step-down was checked (check-quorum). */
  checkQuorumChecks: number;
  /** Rejoins after which the leader's stability was checked (pre-vote). */
  preVoteChecks: number;
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

/**
 * Events one run may process. A healthy default run takes a few hundred thousand; a run past this
 * is stuck (after a violation a broken host can loop forever), and is stopped with a violation.
 */
export const SIM_EVENTS_MAX = 20_000_000;

/** Violations a run records; later ones are counted in `violationsDropped` only. */
export const VIOLATIONS_MAX = 100;

/** Checkers whose first violation ends the run: what follows a broken safety property is noise. */
const SAFETY_CHECKERS: ReadonlySet<string> = new Set([
  "unhandled-rejection",
  "election-safety",
  "log-matching",
  "state-machine-safety",
  "leader-completeness",
  "assertion",
  "member-failed",
  "one-conf-change-in-flight",
  "config-election-safety",
]);

/** Keys of slack in the balance check, for zone-first placement (about one key per zone). */
const BALANCE_SLACK_KEYS = 3;

/** Member ids a run may use (n1..n9): the cluster's initial members and those added later. */
const MEMBERS_MAX = 9;

/** Rebalance rounds run at most every this many ticks. */
const REBALANCE_EVERY_TICKS = 20;

/** Keys one rebalance round moves at most. */
const REBALANCE_MOVES_PER_ROUND = 8;

/** Stops the run loop after the first safety violation or a stuck run. */
class RunAborted extends Error {}

/** One simulated run. Use {@link runSimulation}. */
class Simulation {
  readonly options: SimOptions;
  readonly scheduler = new Scheduler();
  readonly network: SimNetwork;
  readonly wire: SimWire;
  readonly faults: Random;
  /** Draws of the workload (API timeouts), apart from the faults'. */
  private readonly workRandom: Random;
  private readonly diskRandom: Random;
  private readonly root: Random;
  private readonly clockRandom: Random;
  private readonly trace: TraceRecorder;
  private readonly names = new Interner();
  private readonly violations: Violation[] = [];
  private readonly history: Operation[] = [];
  readonly members = new Map<string, SimMember>();
  /** Ids of the members that may serve (neither retired nor unborn), in creation order. */
  readonly memberIds: string[];
  /** Members started with `join` (added during the run): they restart that way. */
  private readonly joiners = new Set<string>();
  private readonly initialIds: readonly string[];
  private readonly clients: SimClient[] = [];
  readonly workers = new Map<string, SimWorker>();
  private readonly placementClients: PlacementClient[] = [];
  private gateways: Gateways | null = null;
  // Checkers.
  private readonly electionSafety: ElectionSafety;
  private readonly logMatching: LogMatching;
  private readonly committedLog: CommittedLog;
  private readonly durableAcks: DurableAcks;
  private readonly confInFlight: ConfChangeInFlight;
  private readonly configElection: ConfigElectionSafety;
  private readonly settles: OperationsSettle;
  private readonly checkQuorum: CheckQuorumStepDown;
  private readonly preVote: PreVoteStability;
  readonly fenced = new FencedResource();
  private readonly singleOwnership: SingleOwnership;
  private readonly fencingEpochs: FencingEpochs;
  private readonly failover: FailoverBound;
  private readonly tableIntegrity: TableIntegrity;
  /** Acknowledged routed writes (write id -> key), and the writes the resource accepted. */
  private readonly acknowledgedWrites = new Map<string, string>();
  private readonly acceptedWrites = new Set<string>();
  /** Members stopped for good after their removal from the configuration was committed. */
  private readonly retired = new Set<string>();
  /** Member ids handed out so far (n1, n2, ...). */
  private membersCreated: number;
  readonly stats: SimStats = {
    events: 0, simulatedMs: 0, wallMs: 0, eventsPerSecond: 0, speedup: 0, messages: 0,
    messagesDropped: 0, elections: 0, commits: 0, clientOps: 0, clientOpsUnknown: 0, crashes: 0,
    partitions: 0, tornWrites: 0, fsyncs: 0, reads: 0, leaderTransfers: 0, snapshotsSent: 0,
    snapshotsInstalled: 0, snapshotsTaken: 0, confChanges: 0, membersAdded: 0, membersRetired: 0,
    memberCloses: 0, acquisitions: 0, failovers: 0, handoffs: 0, failoverTicksMax: 0, fencedWritesRefused: 0,
    routedWrites: 0, workerFaults: 0, scenarios: 0, crashesAfterGrant: 0, operationsSettled: 0,
    checkQuorumChecks: 0, preVoteChecks: 0, ownershipOverlapsBeyondDrift: 0, violationsDropped: 0,
  };
  /** The highest index whose placement command the simulator has seen applied (first member to apply it). */
  private placementSeenUpTo = 0;
  /** Keys the table should hold, from the commands seen applied. */
  private expectedKeys = 0;
  /** Workers whose `owned()` may have changed during the event: probed once it settles. */
  private readonly touchedWorkers = new Set<SimWorker>();
  /** Set by the first safety violation: the event loop stops at the next event. */
  private aborted = false;
  phase: "safety" | "liveness" = "safety";
  private partition: Partition | null = null;
  /** A narrow-window scenario in progress: the random fault processes wait. */
  quiet = false;
  /** The member whose next vote grant or append acknowledgement crashes it (a scenario). */
  private crashAfterGrant: string | null = null;
  private requestIds = 0;
  private operationIds = 0;

  constructor(
    readonly seed: number,
    options: SimOptions,
    keepTraceEventsMax: number,
    private readonly schedule: readonly FaultEvent[] | undefined,
  ) {
    this.options = options;
    const root = new Random(`run:${seed}`);
    this.root = root;
    this.network = new SimNetwork(root.fork("network"), options.network);
    this.faults = root.fork("faults");
    this.workRandom = root.fork("work");
    this.diskRandom = root.fork("disk");
    this.clockRandom = root.fork("clocks");
    this.trace = new TraceRecorder(keepTraceEventsMax);
    this.wire = new SimWire(this.scheduler, this.network, {
      sent: (id, from, to, parcel) => this.onSent(id, from, to, parcel),
      delivered: (id, to, parcel) => this.onDelivered(id, to, parcel),
      dropped: (id, reason) => {
        this.stats.messagesDropped += 1;
        this.mix(6, id);
        this.keep({ t: this.now, kind: "drop", id, reason });
      },
      left: (from, parcel) => this.onLeft(from, parcel),
    });
    this.scheduler.afterEvent = () => this.afterEvent();
    const report = (v: Violation) => this.violate(v);
    this.electionSafety = new ElectionSafety(report);
    this.logMatching = new LogMatching(report);
    this.committedLog = new CommittedLog(report);
    this.durableAcks = new DurableAcks(report);
    this.settles = new OperationsSettle(report);
    this.checkQuorum = new CheckQuorumStepDown(report);
    this.preVote = new PreVoteStability(report);
    this.memberIds = Array.from({ length: options.members }, (_, i) => `n${i + 1}`);
    this.initialIds = [...this.memberIds];
    this.membersCreated = options.members;
    this.confInFlight = new ConfChangeInFlight(report);
    this.configElection = new ConfigElectionSafety(report, { voters: [...this.memberIds], outgoing: [], learners: [] });
    // Single ownership is promised only while clocks drift within ρ (DESIGN.md §3).
    this.singleOwnership = new SingleOwnership(
      options.clocks.exceedDrift ? () => (this.stats.ownershipOverlapsBeyondDrift += 1) : report,
    );
    this.fencingEpochs = new FencingEpochs(report);
    this.tableIntegrity = new TableIntegrity(report);
    this.failover = new FailoverBound(report, this.failoverBound());
    const setup = this.memberSetup();
    // Options a replay file brings are input: a bad one is refused here, with the field it names,
    // before any member starts (a member's own start would fail it as a member-failed violation).
    resolveConfig({ ...setup.raft, id: "n1", voters: [...this.memberIds], random: () => 0 });
    if (setup.placement !== null) resolveLeaseConfig(setup.placement.lease);
    for (const id of this.memberIds) this.createMember(id, setup);
    if (options.workers.enabled) this.createWorkers(root);
    else this.createClients(root);
  }

  get now(): number {
    return this.scheduler.now;
  }

  // ---------------------------------------------------------------------------------------------
  // Building the world.

  /** A drifting clock: within ρ, or (in runs that exceed it on purpose) up to many times ρ. */
  private drawClock(): SimClock {
    const clocks = this.clockRandom;
    const rho = this.options.clocks.clockDriftMax;
    const drift = this.options.clocks.exceedDrift && clocks.chance(0.5) ? clocks.between(2, this.options.clocks.exceedFactorMax ?? 10) * rho : rho;
    return new SimClock(clocks.int(0, 10_000_000), 1 + clocks.between(-drift, drift));
  }

  private memberSetup(): MemberSetup {
    const o = this.options;
    const electionTimeoutMs = 2 * o.electionTicks * o.tickMs;
    const w = o.workers;
    return {
      tickMs: o.tickMs,
      raft: {
        electionTicks: o.electionTicks,
        heartbeatTicks: o.heartbeatTicks,
        preVote: o.preVote,
        checkQuorum: o.checkQuorum,
        messageBytesMax: o.messageBytesMax,
        inflightMessagesMax: o.inflightMessagesMax,
        readOnly: o.reads === "lease" ? "lease" : "safe",
        clockDriftMax: o.clocks.clockDriftMax,
        snapshotChunkBytes: o.snapshots.chunkBytes,
        snapshotChunksInflightMax: o.snapshots.chunksInflightMax,
      },
      snapshotEntries: o.snapshots.enabled ? o.snapshots.compactEveryEntries : Number.MAX_SAFE_INTEGER,
      closeTransferMs: 2 * electionTimeoutMs,
      placement: w.enabled
        ? {
            lease: { leaseMs: w.leaseMs, clockDriftMax: o.clocks.clockDriftMax, marginMs: w.marginMs },
            placementTickMs: o.tickMs,
            rebalanceEveryMs: REBALANCE_EVERY_TICKS * o.tickMs,
            rebalanceMovesPerRound: REBALANCE_MOVES_PER_ROUND,
            moveWaitMs: 2 * w.leaseMs,
            onApplied: (command, result, index) => this.onPlacementApplied(command, result, index),
          }
        : null,
    };
  }

  /** Creates member `id` (not started). */
  private createMember(id: string, setup: MemberSetup): SimMember {
    const process = new SimProcess(id, this.drawClock(), this.scheduler);
    this.wire.register(id, process);
    const raftRandom = this.root.fork(`raft:${id}`);
    const { fsyncUsMin, fsyncUsMax } = this.options.disk;
    const member = new SimMember(id, process, this.wire, setup, this.memberHooks(), () => this.diskRandom.int(fsyncUsMin, fsyncUsMax), () => raftRandom.next());
    this.members.set(id, member);
    return member;
  }

  private createClients(root: Random): void {
    for (let i = 1; i <= this.options.workload.clients; i += 1) {
      const id = `c${i}`;
      const process = new SimProcess(id, new SimClock(0, 1), this.scheduler);
      process.start();
      this.wire.register(id, process);
      this.clients.push(
        new SimClient(i, this.memberIds, root.fork(`client:${i}`), this.options.workload, {
          now: () => this.now,
          send: (client, member, request) => this.sendClientRequest(client, member, request),
          after: (delayUs, fn) => this.scheduler.at(this.now + delayUs, fn),
          nextRequestId: () => ++this.requestIds,
          record: (operation, seq) => this.recordOperation(operation, seq),
        }, () => ++this.operationIds),
      );
    }
  }

  private createWorkers(root: Random): void {
    const w = this.options.workers;
    const o = this.options;
    const setup = {
      lease: { leaseMs: w.leaseMs, clockDriftMax: o.clocks.clockDriftMax, marginMs: w.marginMs },
      renewEveryMs: w.renewIntervalMs,
      callTimeoutMs: Math.max(1, Math.round(w.renewIntervalMs)),
      handleTimeoutMs: 10 * w.leaseMs,
      writeDelayMs: w.writeDelayUs / 1000,
    };
    for (let i = 1; i <= w.count; i += 1) {
      const id = `w${i}`;
      const process = new SimProcess(`worker:${id}`, this.drawClock(), this.scheduler, () => this.touchedWorkers.add(worker));
      const worker: SimWorker = new SimWorker(id, process, this.scheduler, this.wire, setup, {
        write: (by, key, epoch, writeId) => this.resourceWrite(by, key, epoch, writeId),
        serveChanged: (by, key, epoch, serving) => this.onServeChanged(by, key, epoch, serving),
        failed: (by, error) => this.violate({ checker: "worker-failed", message: `${by.id}: ${error.message}`, t: this.now }),
      }, 1 + (i % 3), `z${i % 3}`);
      this.wire.register(worker.peer, process);
      this.workers.set(id, worker);
    }
    this.gateways = new Gateways(this);
    for (let i = 1; i <= w.clients; i += 1) {
      const id = `p${i}`;
      const process = new SimProcess(id, new SimClock(0, 1), this.scheduler);
      process.start();
      this.wire.register(id, process);
      this.placementClients.push(new PlacementClient(i, this.memberIds, root.fork(`pclient:${i}`), {
        keys: w.keys,
        thinkMs: w.thinkMs,
        timeoutMs: 4 * o.workload.requestTimeoutMs,
      }, {
        now: () => this.now,
        send: (client, member, request) => this.gateways?.send(client, member, request),
        after: (delayUs, fn) => this.scheduler.at(this.now + delayUs, fn),
        nextRequestId: () => ++this.requestIds,
        acknowledged: (writeId, key) => this.acknowledgedWrites.set(writeId, key),
      }));
    }
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

  // ---------------------------------------------------------------------------------------------
  // What members report.

  private memberHooks(): MemberHooks {
    return {
      committedPrefix: (index) => this.committedLog.entries().slice(0, index),
      ready: (member, rd, before) => this.onReady(member, rd, before),
      persisted: () => {},
      applied: (member, entry) => this.committedLog.onApply(this.now, member.id, entry),
      failed: (member, error) => {
        const checker = error instanceof AssertionFailure ? "assertion" : "member-failed";
        this.violate({ checker, message: `${member.id} stopped: ${error.message}`, t: this.now });
      },
    };
  }

  private onReady(member: SimMember, rd: Ready, before: MemberView): void {
    const view = member.view;
    if (rd.softState !== undefined) {
      this.mix(7, member.id, ["follower", "preCandidate", "candidate", "leader"].indexOf(view.role), view.term);
      this.keep({ t: this.now, kind: "role", member: member.id, role: view.role, term: view.term, leader: view.leader });
      if (view.role === "leader") {
        this.electionSafety.onLeader(this.now, view.term, member.id);
        this.committedLog.onLeader(this.now, view.term, member.id, view.log);
        this.configElection.onLeader(this.now, view.term, member.id);
      } else if (before.role === "leader") {
        this.checkQuorum.steppedDown(member.id, before.term);
      }
    }
    if (view.role === "leader") {
      for (const entry of rd.entries) if (entry.type === "confChange") this.confInFlight.onAppend(this.now, member.id, entry, view.log, view.applied);
    }
    if (rd.snapshot !== undefined) {
      this.committedLog.onSnapshot(this.now, member.id, rd.snapshot.index, rd.snapshot.term);
      this.mix(14, member.id, rd.snapshot.index);
    }
    // The commit index a Ready carries is already durable on a quorum: the member may apply up to
    // it while its own write is in progress, so it counts as committed now.
    if (rd.hardState !== undefined && rd.hardState.commit > view.commit) {
      view.commit = rd.hardState.commit;
      const known = this.committedLog.commitIndex;
      this.committedLog.onCommit(this.now, member.id, view.commit, view.log);
      this.keep({ t: this.now, kind: "commit", member: member.id, index: view.commit });
      if (this.committedLog.commitIndex > known) this.onNewlyCommitted(this.committedLog.entries().slice(known));
    }
  }

  /** Follows configuration entries as they commit; retires members the new configuration removed. */
  private onNewlyCommitted(entries: readonly Entry[]): void {
    const before = this.configElection.committedConf;
    this.configElection.onCommitted(entries);
    for (const entry of entries) if (entry.type === "confChange") this.stats.confChanges += 1;
    const conf = this.configElection.committedConf;
    // The quorum a leader needs may have changed with the configuration, and the core gives a
    // voter it adds an election timeout to answer: a leader still cut off is given its bound anew.
    if (conf !== before) {
      this.checkQuorum.reachable();
      this.topologyChanged();
    }
    if (conf === before || isJoint(conf)) return;
    const members = new Set(confMembers(conf));
    for (const id of [...this.memberIds]) {
      if (members.has(id) || !confMembers(before).includes(id)) continue;
      // Removed for good: give it an election timeout to hear of it, then stop it, as an operator
      // would (a removed member that never learns of its removal could otherwise keep campaigning).
      const member = this.members.get(id) as SimMember;
      this.scheduler.at(this.now + 2 * this.options.electionTicks * this.options.tickMs * 1000, () => this.retire(member));
    }
  }

  private retire(member: SimMember): void {
    if (this.retired.has(member.id) || confMembers(this.configElection.committedConf).includes(member.id)) return;
    if (member.process.up) this.crashMember(member, false);
    this.retired.add(member.id);
    const at = this.memberIds.indexOf(member.id);
    if (at >= 0) this.memberIds.splice(at, 1);
    this.stats.membersRetired += 1;
    this.mix(13, member.id);
    this.keep({ t: this.now, kind: "crash", member: member.id });
  }

  private onPlacementApplied(command: PlacementCommand, result: PlacementResult, index: number): void {
    // Every member applies the same command at the same index; the first application stands for all.
    if (index <= this.placementSeenUpTo) return;
    this.placementSeenUpTo = index;
    for (const a of result.changed) {
      if (a.state !== "active" || a.epoch !== index) continue;
      this.fencingEpochs.onGrant(this.now, a.key, a.owner, a.epoch);
      this.failover.onGrant(this.now, a.key, a.owner, a.epoch);
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

  // ---------------------------------------------------------------------------------------------
  // The wire, as the trace and the narrow-window faults see it.

  private onSent(id: number, from: string, to: string, parcel: Parcel): void {
    this.stats.messages += 1;
    if (parcel.kind === "message") {
      const m = parcel.message;
      this.mix(4, from, to, MESSAGE_TYPES.indexOf(m.type), m.term);
      if (this.trace.keeping) this.keep({ t: this.now, kind: "send", id, from, to, type: m.type, term: m.term, detail: describe(m) });
    } else {
      const label = parcel.kind === "call" ? parcel.label : "payload";
      this.mix(4, from, to, this.names.code(label));
      if (this.trace.keeping) this.keep({ t: this.now, kind: "send", id, from, to, type: label, term: 0, detail: "" });
    }
  }

  private onDelivered(id: number, _to: string, parcel: Parcel): void {
    this.mix(5, id);
    this.keep({ t: this.now, kind: "deliver", id });
    if (parcel.kind === "message" && parcel.message.type === "voteResponse" && !parcel.message.reject) {
      const m = parcel.message;
      this.configElection.onGrant(m.term, m.to, m.from);
    }
  }

  /** A narrow-window crash: right after the armed member's vote grant or append acknowledgement left. */
  private onLeft(from: string, parcel: Parcel): void {
    if (this.crashAfterGrant !== from || parcel.kind !== "message") return;
    const m = parcel.message;
    const grant = (m.type === "voteResponse" || m.type === "appendResponse") && !m.reject;
    if (!grant) return;
    this.crashAfterGrant = null;
    const member = this.members.get(from);
    if (member === undefined || !member.process.up) return;
    this.stats.crashesAfterGrant += 1;
    this.crashMember(member, true);
    this.mix(20, from, MESSAGE_TYPES.indexOf(m.type));
    this.scheduler.at(this.now + this.faults.int(1, Math.max(1, this.options.crashes.downMsMax) * 1000), () => {
      if (!member.process.up && !this.retired.has(member.id)) this.restartMember(member);
    });
  }

  /**
   * After each event: operations past their deadline are reported, and the workers the event
   * touched are probed (what they would serve may have changed).
   */
  private afterEvent(): void {
    this.settles.check(this.now);
    if (this.touchedWorkers.size === 0) return;
    for (const worker of this.touchedWorkers) worker.probe();
    this.touchedWorkers.clear();
  }

  // ---------------------------------------------------------------------------------------------
  // Key-value clients: a request crosses the network, the member serves it with propose or read.

  private sendClientRequest(client: SimClient, member: string, request: ClientRequest): void {
    const from = `c${client.id}`;
    if (this.trace.keeping) {
      this.keep({ t: this.now, kind: "send", id: 0, from, to: member, type: `client:${request.input.kind}`, term: 0, detail: `seq=${request.seq} key=${request.input.key}` });
    }
    this.wire.call(from, member, `client:${request.input.kind}`, () => this.serveKv(member, from, client, request));
  }

  /** The service around a member: a client's request through the member's own API. */
  private serveKv(id: string, from: string, client: SimClient, request: ClientRequest): void {
    const member = this.members.get(id);
    const node = member?.node;
    const kv = member?.kv;
    if (member === undefined || node === null || node === undefined || kv === null || kv === undefined) return;
    const generation = member.process.generation;
    const reply = (answer: ClientReply) => {
      if (!member.process.up || member.process.generation !== generation) return; // it died meanwhile
      this.wire.call(id, from, `client:${answer.status}`, () => client.onReply(answer));
    };
    const w = this.options.workload;
    const timeoutMs = this.workRandom.int(w.apiTimeoutMsMin, w.apiTimeoutMsMax);
    const command: KvCommand = { client: request.client, seq: request.seq, input: request.input };
    const base = { requestId: request.requestId, seq: request.seq };
    const input = request.input;
    let operation: Promise<unknown>;
    if (input.kind === "get" && this.options.reads !== "log") {
      operation = node.read(() => ({ kind: "get" as const, value: kv.read(input.key) }), { timeoutMs }).then((output) => {
        member.reads += 1;
        return output;
      });
    } else {
      operation = node.propose(encodeCommand(command), { timeoutMs });
    }
    const what = `${input.kind === "get" && this.options.reads !== "log" ? "read" : "propose"} (${timeoutMs} ms)`;
    const tracked = this.trackSettle(member, what, timeoutMs);
    operation.then(
      (output) => {
        this.settles.settled(tracked, this.now);
        if (output === null) return reply({ ...base, status: "retry" });
        const kind = (output as { kind?: unknown } | undefined)?.kind;
        if (kind !== input.kind) {
          // The API resolved with something that is not this command's result.
          this.violate({ checker: "api-result", message: `${what} of a ${input.kind} on ${id} resolved with ${JSON.stringify(output)}`, t: this.now });
          return;
        }
        reply({ ...base, status: "ok", output: output as KvOutput });
      },
      (error: unknown) => {
        this.settles.settled(tracked, this.now);
        if (NotLeaderError.is(error)) reply({ ...base, status: "notLeader", leaderHint: error.leaderHint });
        else if (ProposalDroppedError.is(error) || TimeoutError.is(error) || ClosedError.is(error)) reply({ ...base, status: "retry" });
        else if (member.process.up && member.process.generation === generation) {
          this.violate({ checker: "api-error", message: `${what} on ${id} failed with an unexpected error: ${describeError(error)}`, t: this.now });
        }
      },
    );
  }

  /**
   * Tracks an API call on `member` to settle by its deadline: its timeout on the member's clock,
   * plus two ticks (deadlines are looked at when ticks are delivered).
   */
  trackSettle(member: SimMember, what: string, timeoutMs: number): number {
    const slackMs = 2 * this.options.tickMs;
    const deadlineUs = this.now + member.process.clock.trueDuration((timeoutMs + slackMs) * 1000) + 1;
    return this.settles.track(this.now, member.id, member.process.generation, what, deadlineUs);
  }

  private recordOperation(operation: Operation, seq: number): void {
    this.history.push(operation);
    this.stats.clientOps += 1;
    if (operation.output === null) this.stats.clientOpsUnknown += 1;
    const output = operation.output;
    if (output !== null && (output.kind === "put" || (output.kind === "cas" && output.ok))) {
      this.durableAcks.onAck(this.now, commandKey({ client: operation.client, seq, input: operation.input }));
    }
    this.mix(21, operation.client, seq, output === null ? 0 : 1);
  }

  // ---------------------------------------------------------------------------------------------
  // Workers and the fenced resource.

  private resourceWrite(worker: SimWorker, key: string, epoch: number, writeId: string | null): { accepted: boolean; fence: number } {
    const result = this.fenced.write(key, epoch);
    this.fencingEpochs.onWrite(this.now, key, worker.id, epoch, result.accepted);
    if (!result.accepted) this.stats.fencedWritesRefused += 1;
    else if (writeId !== null) this.acceptedWrites.add(writeId);
    this.mix(16, worker.id, key, epoch, result.accepted ? 1 : 0);
    return { accepted: result.accepted, fence: this.fenced.fenceOf(key) ?? epoch };
  }

  private onServeChanged(worker: SimWorker, key: string, epoch: number, serving: boolean): void {
    if (serving) this.singleOwnership.onServeStart(this.now, worker.id, key, epoch);
    else this.singleOwnership.onServeEnd(this.now, worker.id, key);
    this.mix(17, worker.id, key, epoch, serving ? 1 : 0);
  }

  /** A routed write a worker answered 200. */
  onRoutedWrite(): void {
    this.stats.routedWrites += 1;
  }

  // ---------------------------------------------------------------------------------------------
  // The run.

  async run(): Promise<void> {
    // A promise of the host (or of the simulated services) that rejects with nobody listening is a
    // bug of that code: recorded as a violation instead of ending the process.
    const onUnhandled = (reason: unknown) => {
      this.violate({ checker: "unhandled-rejection", message: describeError(reason), t: this.now });
    };
    process.on("unhandledRejection", onUnhandled);
    try {
      for (const member of this.members.values()) this.startMember(member);
      for (const client of this.clients) this.scheduler.at(this.faults.int(0, 20_000), () => client.wake());
      if (this.schedule !== undefined) {
        for (const fault of this.schedule) this.scheduler.at(Math.round(fault.atMs * 1000), () => this.applyFault(fault));
      } else {
        new Faults(this).start();
      }
      for (const worker of this.workers.values()) this.scheduler.at(this.faults.int(0, 50_000), () => worker.start(this.memberIds));
      for (const client of this.placementClients) this.scheduler.at(this.faults.int(100_000, 300_000), () => client.wake());
      this.recordPhase("safety");
      const safetyEndUs = this.options.safetyTicks * this.options.tickMs * 1000;
      try {
        await this.runUntil(safetyEndUs);
        this.logMatching.check(this.now, this.logs());
        await this.runLiveness(safetyEndUs);
      } catch (error) {
        if (!(error instanceof RunAborted)) throw error;
      }
      this.finalChecks();
    } finally {
      this.scheduler.close();
      process.off("unhandledRejection", onUnhandled);
    }
  }

  /** Runs events up to `endUs`, or until `stop` answers true. */
  runUntil(endUs: number, stop?: () => boolean): Promise<void> {
    return this.scheduler.runUntil(
      endUs,
      () => {
        if (this.aborted) throw new RunAborted();
        if (this.scheduler.events >= SIM_EVENTS_MAX) {
          this.violate({ checker: "events-max", message: `the run passed SIM_EVENTS_MAX (${SIM_EVENTS_MAX}) events; it is stuck`, t: this.now });
          throw new RunAborted();
        }
      },
      stop,
    );
  }

  /** Heals everything, then requires recovery within the stated bound. */
  private async runLiveness(healedAt: number): Promise<void> {
    this.phase = "liveness";
    this.recordPhase("liveness");
    this.quiet = false;
    this.crashAfterGrant = null;
    this.heal();
    this.network.reconnectAll();
    for (const member of this.members.values()) {
      if (!member.process.up && !this.retired.has(member.id)) this.restartMember(member);
    }
    this.network.options = { ...this.network.options, lossRate: 0, duplicateRate: 0, reorderRate: 0 };
    for (const client of this.clients) {
      client.accepting = false;
      client.patient = true;
    }
    this.healWorkers(healedAt);
    const active = this.activeMembers();
    const longest = Math.max(...active.map((m) => m.view.log.length));
    const lagEntries = Math.max(...active.map((m) => longest - m.view.applied));
    const snapshotBytes = this.options.snapshots.enabled ? Math.max(...active.map((m) => this.stateBytes(m))) : 0;
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
      await this.runUntil(t);
      if (leaderAt === null && this.leaderKnownToAll()) leaderAt = this.now;
      if (opsDoneAt === null && this.clients.every((c) => !c.busy)) opsDoneAt = this.now;
      if (leaderAt !== null && opsDoneAt !== null && this.converged()) convergedAt = this.now;
      if (settledAt === null && convergedAt !== null && this.placementSettled()) settledAt = this.now;
    }
    const membersAtEnd = this.activeMembers()
      .map((m) => {
        const last = m.view.log[m.view.log.length - 1];
        const state = m.up ? `${m.view.role} term ${m.view.term}, last ${last?.index ?? 0}/${last?.term ?? 0}, commit ${m.view.commit}, applied ${m.view.applied}` : "down";
        return `${m.id} ${state}${m.up && this.fingerprint(m) !== this.fingerprint(this.activeMembers()[0] as SimMember) ? ", other state" : ""}`;
      })
      .join("; ");
    for (const v of checkLiveness({ healedAt, boundUs, leaderAt, opsDoneAt, convergedAt, membersAtEnd })) this.violate(v);
    this.failover.check(this.now);
    if (this.options.workers.enabled) this.checkPlacementSettled(settledAt);
  }

  /** The bytes of a member's state machine snapshot (for the liveness bound). */
  private stateBytes(member: SimMember): number {
    if (member.kv !== null) return member.kv.snapshot().byteLength;
    if (member.placement !== null) return member.placement.table().snapshot().byteLength;
    return 0;
  }

  /**
   * The members the liveness phase waits for: those of the latest committed configuration (voters
   * of both halves and learners) that have not been retired.
   */
  activeMembers(): SimMember[] {
    const ids = confMembers(this.configElection.committedConf);
    return ids.filter((id) => !this.retired.has(id)).map((id) => this.members.get(id) as SimMember);
  }

  private leaderKnownToAll(): boolean {
    const members = this.activeMembers();
    const leader = members.find((m) => m.up && m.view.role === "leader");
    return leader !== undefined && members.every((m) => m.up && m.view.leader === leader.id && m.view.term === leader.view.term);
  }

  private converged(): boolean {
    const members = this.activeMembers();
    if (members.some((m) => !m.up)) return false;
    const first = members[0] as SimMember;
    const applied = first.view.applied;
    const fingerprint = this.fingerprint(first);
    return members.every((m) => m.view.applied === applied && m.view.commit === applied && this.fingerprint(m) === fingerprint);
  }

  private fingerprint(member: SimMember): string {
    if (member.kv !== null) return member.kv.fingerprint();
    const table = member.placement?.table();
    if (table === undefined) return "";
    return table.workers().map((w) => `${w.id}:${w.status}:${table.keysOf(w.id).map((k) => `${k.key}@${k.epoch}${k.state === "draining" ? "d" : ""}`).join(",")}`).join(";");
  }

  currentLeader(): SimMember | undefined {
    return [...this.members.values()].find((m) => m.up && m.view.role === "leader");
  }

  /** No key moving and nothing left to rebalance, on the leader's table. */
  private placementSettled(): boolean {
    const table = this.currentLeader()?.placement?.table();
    return table !== undefined && table.drainingKeys().length === 0 && !table.unbalanced();
  }

  /**
   * Balance, once placement has settled after healing: every worker's load is within the stated
   * bound of its capacity share (see checkBalance; `BALANCE_SLACK_KEYS` covers zone-first
   * placement). Settling is part of liveness: it must happen within the liveness bound.
   */
  private checkPlacementSettled(settledAt: number | null): void {
    if (settledAt === null) {
      this.violate({ checker: "liveness", message: "placement did not settle (keys still moving or unbalanced) after healing", t: this.now });
      return;
    }
    const table = this.currentLeader()?.placement?.table();
    if (table === undefined) return;
    const workers = table.workers().filter((w) => w.status === "active" && !w.leaving)
      .map((w) => ({ id: w.id, capacity: w.capacity, load: table.load(w.id) }));
    for (const v of checkBalance(this.now, workers, BALANCE_SLACK_KEYS)) this.violate(v);
  }

  /**
   * Liveness: worker faults end and crashed workers restart, except one worker, which (with three
   * or more) dies for good so that its keys must fail over within the stated bound.
   */
  private healWorkers(healedAt: number): void {
    if (!this.options.workers.enabled) return;
    for (const client of this.placementClients) client.accepting = false;
    const workers = [...this.workers.values()];
    for (const worker of workers) {
      worker.process.pausedUntilUs = 0;
      if (!worker.up) worker.start(this.memberIds);
    }
    const victim = workers.length >= 3 ? workers[0] : undefined;
    if (victim !== undefined) {
      const keys = this.currentLeader()?.placement?.table().keysOf(victim.id).map((k) => k.key) ?? [];
      this.crashWorker(victim);
      this.failover.onWorkerDead(this.now, victim.id, keys);
    }
    this.failover.onClusterHealthy(healedAt);
  }

  private finalChecks(): void {
    this.settles.check(this.now);
    this.logMatching.check(this.now, this.logs());
    if (this.options.workers.enabled) {
      this.singleOwnership.settle(this.now);
      const leader = this.currentLeader() ?? this.activeMembers().find((m) => m.up);
      const table = leader?.placement?.table();
      if (leader !== undefined && table !== undefined && leader.view.applied >= this.placementSeenUpTo) {
        this.tableIntegrity.check(this.now, table, this.expectedKeys);
      }
      this.stats.failoverTicksMax = Math.ceil(this.failover.failoverUsMax / (this.options.tickMs * 1000));
      for (const [writeId, key] of this.acknowledgedWrites) {
        if (!this.acceptedWrites.has(writeId)) {
          this.violate({ checker: "acknowledged-writes-survive", message: `routed write ${writeId} to ${key} was acknowledged but the resource never accepted it`, t: this.now });
          break;
        }
      }
    } else {
      for (const member of this.activeMembers()) {
        if (member.up) this.durableAcks.check(this.now, member.id, this.committedCommandKeys(member.view));
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
        this.violate({ checker: "linearizability", message: `key ${result.key}: ${result.message}`, t: this.now });
      } else if (result.status === "unknown") {
        this.violate({ checker: "linearizability", message: `key ${result.key}: undecided (${result.message})`, t: this.now });
      }
    }
    this.stats.events = this.scheduler.events;
    this.stats.simulatedMs = Math.round(this.now / 1000);
    this.stats.elections = this.electionSafety.elections;
    this.stats.commits = this.committedLog.commitIndex;
    this.stats.operationsSettled = this.settles.settledInTime;
    this.stats.checkQuorumChecks = this.checkQuorum.checked;
    this.stats.preVoteChecks = this.preVote.checked;
    for (const member of this.members.values()) {
      this.stats.fsyncs += member.disk.syncs;
      this.stats.reads += member.past.reads + member.reads;
      const snapshots = member.snapshotCounters();
      this.stats.snapshotsSent += snapshots.sent;
      this.stats.snapshotsInstalled += snapshots.installed;
      this.stats.snapshotsTaken += member.snapshotsTaken;
    }
    this.mix(22, this.stats.events);
  }

  /** Keys (`client:seq`) of the commands in a member's committed log. */
  private committedCommandKeys(view: MemberView): Set<string> {
    const keys = new Set<string>();
    for (let i = 0; i < Math.min(view.commit, view.log.length); i += 1) {
      const command = entryCommand(view.log[i] as Entry);
      if (command !== null) keys.add(commandKey(command));
    }
    return keys;
  }

  private logs(): Map<string, readonly Entry[]> {
    const logs = new Map<string, readonly Entry[]>();
    for (const member of this.members.values()) {
      if (member.process.up) {
        logs.set(member.id, member.view.log);
        continue;
      }
      const restored = member.disk.load();
      const prefix = restored.snapshot !== undefined ? this.committedLog.entries().slice(0, restored.snapshot.index) : [];
      logs.set(member.id, [...prefix, ...restored.entries]);
    }
    return logs;
  }

  // ---------------------------------------------------------------------------------------------
  // Members: start, crash, close, restart.

  startMember(member: SimMember): void {
    const join = this.joiners.has(member.id);
    member.start(join ? [...this.memberIds] : this.initialIds, join);
    this.topologyChanged();
  }

  /** Crashes `member`: it stops at once; its disk keeps what was fsynced (maybe a torn record after it). */
  crashMember(member: SimMember, countAsCrash = true): void {
    this.preVote.disturbed();
    const outcome = member.disk.crash(this.faults, countAsCrash && this.options.crashes.tornWrites);
    this.settles.died(member.id, member.process.generation);
    member.stop();
    if (countAsCrash) {
      this.stats.crashes += 1;
      if (outcome.torn) this.stats.tornWrites += 1;
      this.mix(2, member.id);
      this.keep({ t: this.now, kind: "crash", member: member.id });
    }
    this.topologyChanged();
  }

  restartMember(member: SimMember): void {
    this.committedLog.onRestart(member.id);
    this.startMember(member);
    this.mix(3, member.id);
    this.keep({ t: this.now, kind: "restart", member: member.id });
  }

  /**
   * Closes `member` gracefully (a leader hands leadership over first), then restarts it after
   * `downUs`. What the host wrote without an fsync survives, as the page cache does a clean exit.
   */
  closeMember(member: SimMember, downUs: number): void {
    const node = member.placement ?? member.node;
    if (node === null || member.closing) return;
    member.closing = true;
    this.preVote.disturbed();
    this.stats.memberCloses += 1;
    this.mix(23, member.id);
    const generation = member.process.generation;
    void node.close().then(
      () => {
        if (!member.process.up || member.process.generation !== generation) return;
        member.disk.sync();
        this.settles.died(member.id, generation);
        member.stop();
        this.keep({ t: this.now, kind: "crash", member: member.id });
        this.topologyChanged();
        this.scheduler.at(this.now + downUs, () => {
          if (!member.process.up && !this.retired.has(member.id)) this.restartMember(member);
        });
      },
      (error: unknown) => this.violate({ checker: "member-failed", message: `${member.id} failed to close: ${describeError(error)}`, t: this.now }),
    );
  }

  // ---------------------------------------------------------------------------------------------
  // Faults the simulator (or a schedule) applies.

  applyFault(fault: FaultEvent): void {
    if (this.phase !== "safety") return;
    const member = "member" in fault ? this.members.get(fault.member) : undefined;
    switch (fault.kind) {
      case "cut": {
        const links = fault.links.filter(([a, b]) => a !== b && this.members.has(a) && this.members.has(b));
        this.setPartition(this.network.cut(links));
        return;
      }
      case "heal":
        this.heal();
        return;
      case "crash":
        if (member?.process.up === true) this.crashMember(member);
        return;
      case "restart":
        if (member !== undefined && !member.process.up) this.restartMember(member);
        return;
    }
  }

  setPartition(partition: Partition): void {
    this.preVote.disturbed();
    this.partition = partition;
    this.stats.partitions += 1;
    this.mix(8, partition.blocked.length);
    this.keep({ t: this.now, kind: "partition", description: partition.description, blocked: partition.blocked });
    this.topologyChanged();
  }

  heal(): void {
    if (this.partition === null) return;
    this.network.heal();
    this.partition = null;
    this.mix(9);
    this.keep({ t: this.now, kind: "heal" });
    this.topologyChanged();
  }

  get partitioned(): boolean {
    return this.partition !== null;
  }

  crashWorker(worker: SimWorker): void {
    worker.stop();
    this.singleOwnership.onWorkerCrash(this.now, worker.id);
    this.mix(19, worker.id, 3);
  }

  /** Arms a narrow-window crash of `member` at its next vote grant or append acknowledgement. */
  armCrashAfterGrant(member: string | null): void {
    this.crashAfterGrant = member;
  }

  /** Asks `leader` to hand leadership to `target` (the outcome is not awaited). */
  transfer(leader: SimMember, target: string): void {
    const node = leader.node;
    if (node === null) return;
    this.stats.leaderTransfers += 1;
    this.preVote.disturbed();
    this.mix(12, leader.id, target);
    void node.transferLeadership(target).catch(() => undefined);
    // A transfer restarts the leader's election timeout (it must finish within one), and with it
    // the count CheckQuorum keeps: a leader cut off is given its bound anew.
    this.checkQuorum.reachable();
    this.topologyChanged();
  }

  /**
   * Asks the leader, now and then, to change the membership: add a new member as a learner,
   * promote a learner that has caught up (sometimes removing a voter in the same joint change),
   * remove a voter (possibly itself), or remove a learner. Voters stay between 3 and 7.
   */
  changeMembership(): void {
    const leader = this.currentLeader();
    const node = leader?.node;
    if (leader === undefined || node === null || node === undefined) return;
    const status = node.status();
    if (isJoint(status.config)) return;
    const ops = this.drawConfChange(status.config, status.matched ?? {}, status.commit);
    if (ops === null) return;
    this.preVote.disturbed();
    this.mix(15, leader.id, ops.length);
    const added = ops.find((op) => op.kind === "addLearner");
    const change = added !== undefined ? node.addMember(added.id, added.id, { learner: true }) : node.changeMembership(ops);
    void change.catch(() => undefined);
  }

  private drawConfChange(conf: ConfState, matched: Readonly<Record<string, number>>, commit: number): ConfChangeOp[] | null {
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
        const member = this.createMember(id, this.memberSetup());
        this.memberIds.push(id);
        this.joiners.add(id);
        this.startMember(member);
        this.stats.membersAdded += 1;
        this.keep({ t: this.now, kind: "restart", member: id });
        return [{ kind: "addLearner", id }];
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Check-quorum and pre-vote.

  /**
   * The network, the set of live members or the configuration changed: a leader that can no longer
   * reach a quorum of its configuration must step down within two election timeouts (its clock:
   * CheckQuorum looks every election timeout at the one before), plus two ticks of delivery.
   */
  private topologyChanged(): void {
    if (!this.options.checkQuorum) return;
    if (this.phase !== "safety") {
      this.checkQuorum.reachable();
      return;
    }
    const leader = this.currentLeader();
    const node = leader?.node;
    if (leader === undefined || node === null || node === undefined || leader.closing) {
      this.checkQuorum.reachable();
      return;
    }
    const config = node.status().config;
    const reach = (id: string) =>
      id === leader.id ||
      (this.members.get(id)?.process.up === true && !this.network.isBlocked(leader.id, id) && !this.network.isBlocked(id, leader.id));
    const majority = (ids: readonly string[]) => ids.length === 0 || ids.filter(reach).length * 2 > ids.length;
    if (majority(config.voters) && majority(config.outgoing)) {
      this.checkQuorum.reachable();
      return;
    }
    const o = this.options;
    const boundMs = 2 * o.electionTicks * o.tickMs + 2 * o.tickMs;
    const deadlineUs = this.now + leader.process.clock.trueDuration(boundMs * 1000) + 1;
    this.checkQuorum.cutOff(this.now, leader.id, leader.view.term, deadlineUs);
    const expected = this.checkQuorum.deadline;
    if (expected === deadlineUs) {
      this.scheduler.at(deadlineUs, () => {
        if (this.checkQuorum.deadline !== deadlineUs) return;
        this.checkQuorum.due(this.now, (id, term) => {
          const m = this.members.get(id);
          return m !== undefined && m.up && !m.closing && m.view.role === "leader" && m.view.term === term;
        });
      });
    }
  }

  /** Pre-vote: `member` rejoins now while `leader` leads; the verdict comes after `windowUs`. */
  watchRejoin(member: string, leader: SimMember, windowUs: number): void {
    this.preVote.rejoined(this.now, member, leader.id, leader.view.term);
    this.scheduler.at(this.now + windowUs, () => {
      const now = this.currentLeader();
      this.preVote.check(
        this.now,
        (id, term) => {
          const m = this.members.get(id);
          return m !== undefined && m.up && m.view.role === "leader" && m.view.term === term;
        },
        { leader: now?.id ?? null, term: now?.view.term ?? 0 },
      );
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Plumbing.

  /** Folds an event into the trace hash: its kind, the time, and up to four fields. */
  mix(kind: number, a: string | number = 0, b: string | number = 0, c = 0, d = 0): void {
    this.trace.mix(kind, this.now, typeof a === "number" ? a : this.names.code(a), typeof b === "number" ? b : this.names.code(b), c, d);
  }

  keep(event: TraceEvent): void {
    if (this.trace.keeping) this.trace.keep(event);
  }

  private recordPhase(phase: "safety" | "liveness"): void {
    this.mix(10, phase === "safety" ? 0 : 1);
    this.keep({ t: this.now, kind: "phase", phase });
  }

  violate(violation: Violation): void {
    if (SAFETY_CHECKERS.has(violation.checker)) this.aborted = true;
    if (this.violations.length >= VIOLATIONS_MAX) {
      this.stats.violationsDropped += 1;
      return;
    }
    this.violations.push(violation);
    this.mix(11, violation.checker);
    this.keep({ t: violation.t, kind: "violation", checker: violation.checker, message: violation.message });
  }

  /** Counts a narrow-window scenario. */
  noteScenario(kind: ScenarioKind): void {
    this.stats.scenarios += 1;
    this.mix(24, kind);
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

/** The simulation as the fault processes and the gateways see it. */
export type SimulationContext = Simulation;

function describeError(error: unknown): string {
  if (OrreryError.isOrreryError(error)) return `${error.code}: ${error.message}`;
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
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
export async function runSimulation(seed: number, run: RunOptions = {}): Promise<SimResult> {
  const options = run.options ?? drawOptions(seed, run.overrides);
  const wallClock = run.wallClock ?? (() => 0);
  const started = wallClock();
  const simulation = new Simulation(seed, options, run.keepTraceEventsMax ?? 0, run.schedule);
  await simulation.run();
  return simulation.result(wallClock() - started);
}
