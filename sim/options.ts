/**
 * A run's options. Swarm testing: the seed draws which faults are on and how often, the cluster
 * size and the workload mix, so that across many seeds the simulator explores many different
 * environments rather than one average one. Every option is printed with the run, and any of them
 * may be fixed by the caller (`--members 5`).
 */
import type { PartitionKind } from "./network.ts";
import { Random } from "./random.ts";
import type { NetworkOptions } from "./network.ts";

/** Everything that shapes one simulated run. Times are in milliseconds unless named otherwise. */
export interface SimOptions {
  readonly seed: number;
  /** Voting members. */
  readonly members: number;
  /** Real time per Raft tick on each member's own clock. */
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** Raft's per-append entry bytes; small values exercise batching and flow control. */
  readonly messageBytesMax: number;
  readonly inflightMessagesMax: number;
  /** Length of the safety phase, in ticks. */
  readonly safetyTicks: number;
  readonly network: NetworkOptions;
  readonly partitions: {
    readonly enabled: boolean;
    /** Mean time between partitions (exponential). */
    readonly meanIntervalMs: number;
    /** How long a partition lasts, drawn uniformly up to this. */
    readonly durationMsMax: number;
    readonly kinds: readonly PartitionKind[];
  };
  readonly crashes: {
    readonly enabled: boolean;
    readonly meanIntervalMs: number;
    /** How long a crashed member stays down, drawn uniformly up to this. */
    readonly downMsMax: number;
    /** Whether a crash may leave a torn record at the disk's tail. */
    readonly tornWrites: boolean;
  };
  readonly clocks: {
    /** The bound ρ on clock rate drift the protocol assumes. */
    readonly clockDriftMax: number;
    /** When true, some clocks drift beyond ρ on purpose. */
    readonly exceedDrift: boolean;
    /** With `exceedDrift`, such a clock drifts by up to this many times ρ (at least 2). */
    readonly exceedFactorMax: number;
  };
  readonly disk: {
    /** fsync latency is drawn per sync from `[fsyncUsMin, fsyncUsMax]` µs. */
    readonly fsyncUsMin: number;
    readonly fsyncUsMax: number;
  };
  /**
   * How gets are served: through the log like writes, by ReadIndex (on whichever member the client
   * asks, leader or follower), or by the leader's check-quorum lease (only drawn when clocks stay
   * within ρ and check-quorum is on, the conditions lease reads rely on).
   */
  readonly reads: "log" | "readIndex" | "lease";
  /** Leadership transfers the leader is asked to make; 0 for none. Mean time between them. */
  readonly transferMeanIntervalMs: number;
  /** Log compaction and InstallSnapshot. */
  readonly snapshots: {
    /** Whether members compact their logs (when off, no snapshot is ever taken or sent). */
    readonly enabled: boolean;
    /** A member snapshots its state once it applied this many entries since its last snapshot. */
    readonly compactEveryEntries: number;
    /** `snapshotChunkBytes`: small values make transfers take many chunks. */
    readonly chunkBytes: number;
    /** `snapshotChunksInflightMax`. */
    readonly chunksInflightMax: number;
  };
  /** Membership changes the leader is asked to make during the safety phase. */
  readonly membership: {
    readonly enabled: boolean;
    /** Mean time between change requests (exponential). */
    readonly meanIntervalMs: number;
  };
  /** Graceful `close()` of a member (a leader hands leadership over first), then a restart. */
  readonly closes: {
    readonly enabled: boolean;
    readonly meanIntervalMs: number;
    /** How long a closed member stays down, drawn uniformly up to this. */
    readonly downMsMax: number;
  };
  /**
   * Faults aimed at the narrow windows where the host's rules matter, rather than at random
   * times (see `ScenarioKind`). While one runs, the random faults wait.
   */
  readonly scenarios: {
    readonly enabled: boolean;
    /** Mean time between scenarios (exponential). */
    readonly meanIntervalMs: number;
    readonly kinds: readonly ScenarioKind[];
  };
  /** Workers that own keys under leases (placement), with clients routing writes to them. */
  readonly workers: {
    readonly enabled: boolean;
    readonly count: number;
    /** The lease `L`. */
    readonly leaseMs: number;
    /** How often a worker renews, on its clock. */
    readonly renewIntervalMs: number;
    /** The worker's safety margin. */
    readonly marginMs: number;
    /** Placement clients and the keys they use. */
    readonly clients: number;
    readonly keys: number;
    readonly thinkMs: number;
    /** Worker faults: crashes, pauses (stalls longer than the lease), cut off from the members, graceful closes. */
    readonly crashMeanIntervalMs: number;
    readonly pauseMeanIntervalMs: number;
    readonly cutMeanIntervalMs: number;
    readonly closeMeanIntervalMs: number;
    /** How long a fault lasts, drawn uniformly up to this. */
    readonly faultDurationMsMax: number;
    /** Local time between a worker's lease check and its write (a pause can fall in between). */
    readonly writeDelayUs: number;
  };
  readonly workload: {
    readonly clients: number;
    readonly keys: number;
    /** Relative weights of put, get and compare-and-set. */
    readonly putWeight: number;
    readonly getWeight: number;
    readonly casWeight: number;
    /** Mean pause between one client's operations (exponential). */
    readonly thinkMs: number;
    /** A client resends after this long without an answer. */
    readonly requestTimeoutMs: number;
    /** Attempts per operation before the client gives up (its outcome becomes unknown). */
    readonly attemptsMax: number;
    /**
     * The timeout a member passes to `propose` or `read` for each request, drawn uniformly from
     * this range (ms): calls with shorter and longer deadlines interleave.
     */
    readonly apiTimeoutMsMin: number;
    readonly apiTimeoutMsMax: number;
  };
}

/**
 * The narrow windows the swarm aims at:
 * - `crash-after-grant`: a member crashes right after it grants a vote or acknowledges an append,
 *   before anything else (a rule that sent either before its persist completed would lose it);
 * - `leader-change-worker-cut`: a worker is cut off from every member but the leader, and
 *   leadership moves while the worker is still inside its lease (the new leader must wait);
 * - `isolate-leader`: the leader is cut off from the other members while workers and clients
 *   keep talking to it (it must not answer as a leader it no longer is);
 * - `rejoin`: a follower is cut off for several election timeouts and rejoins a healthy cluster,
 *   with every other fault held off (with PreVote, the leader must not be deposed).
 */
export type ScenarioKind = "crash-after-grant" | "leader-change-worker-cut" | "isolate-leader" | "rejoin";

/** Every scenario kind. */
export const SCENARIO_KINDS: readonly ScenarioKind[] = ["crash-after-grant", "leader-change-worker-cut", "isolate-leader", "rejoin"];

/** Options a caller may fix; the rest are drawn from the seed. */
export interface SimOptionOverrides {
  readonly members?: number;
  readonly safetyTicks?: number;
  /** Run workers (placement) whatever the seed draws. */
  readonly workers?: boolean;
}

/** Cluster sizes the simulator runs. */
export const MEMBER_COUNTS = [3, 5, 7] as const;

/** Draws a run's options from `seed`, applying `overrides`. */
export function drawOptions(seed: number, overrides: SimOptionOverrides = {}): SimOptions {
  const random = new Random(`options:${seed}`);
  const members = overrides.members ?? random.pick([3, 3, 5, 5, 5, 7]);
  const tickMs = 10;
  const electionTicks = 10;
  const lossy = random.chance(0.6);
  const options = {
    seed,
    members,
    tickMs,
    electionTicks,
    heartbeatTicks: random.pick([1, 1, 2, 3]),
    preVote: random.chance(0.8),
    checkQuorum: random.chance(0.8),
    messageBytesMax: random.pick([256, 4096, 1024 * 1024]),
    inflightMessagesMax: random.pick([2, 16, 256]),
    safetyTicks: overrides.safetyTicks ?? 3000,
    network: {
      latencyUsMin: random.int(100, 1000),
      latencyUsMax: random.int(1000, 8000),
      jitterUs: random.int(0, 3000),
      lossRate: lossy ? random.between(0, 0.15) : 0,
      duplicateRate: random.chance(0.4) ? random.between(0, 0.05) : 0,
      reorderRate: random.chance(0.5) ? random.between(0, 0.2) : 0,
      reorderDelayUsMax: random.int(1000, 30_000),
    },
    partitions: {
      enabled: random.chance(0.7),
      meanIntervalMs: random.int(500, 5000),
      durationMsMax: random.int(200, 4000),
      kinds: random.shuffle<PartitionKind>(["halves", "isolate", "one-way", "bridge"]).slice(0, random.int(1, 4)).sort(),
    },
    crashes: {
      enabled: random.chance(0.6),
      meanIntervalMs: random.int(1000, 8000),
      downMsMax: random.int(100, 3000),
      tornWrites: random.chance(0.5),
    },
    clocks: {
      clockDriftMax: 0.01,
      exceedDrift: random.chance(0.1),
      exceedFactorMax: 10,
    },
    disk: {
      fsyncUsMin: random.int(50, 500),
      fsyncUsMax: random.int(500, 5000),
    },
    workload: {
      clients: random.int(1, 8),
      keys: random.int(1, 5),
      putWeight: random.int(1, 4),
      getWeight: random.int(1, 4),
      casWeight: random.int(0, 3),
      thinkMs: random.int(1, 50),
      requestTimeoutMs: random.int(100, 400),
      attemptsMax: random.int(3, 10),
    },
  };
  // Drawn last, so that adding it left every earlier draw (and so older seeds' options) unchanged.
  const readRoll = random.next();
  const leaseAllowed = options.checkQuorum && !options.clocks.exceedDrift;
  const reads: SimOptions["reads"] = readRoll < 0.3 ? "log" : readRoll < 0.8 || !leaseAllowed ? "readIndex" : "lease";
  const transferMeanIntervalMs = random.chance(0.5) ? random.int(500, 5000) : 0;
  const snapshots = {
    enabled: random.chance(0.6),
    compactEveryEntries: random.pick([8, 32, 128]),
    chunkBytes: random.pick([64, 512, 4096]),
    chunksInflightMax: random.pick([1, 2, 4]),
  };
  const membership = { enabled: random.chance(0.5), meanIntervalMs: random.int(300, 3000) };
  const leaseMs = random.pick([100, 200, 500]);
  const workersDrawn = random.chance(0.5);
  const workers = {
    enabled: overrides.workers ?? workersDrawn,
    count: random.int(2, 6),
    leaseMs,
    renewIntervalMs: Math.round(leaseMs / random.pick([3, 4, 5])),
    marginMs: Math.round(leaseMs * 0.02),
    clients: random.int(1, 4),
    keys: random.int(4, 60),
    thinkMs: random.int(2, 30),
    crashMeanIntervalMs: random.chance(0.7) ? random.int(500, 4000) : 0,
    pauseMeanIntervalMs: random.chance(0.6) ? random.int(500, 4000) : 0,
    cutMeanIntervalMs: random.chance(0.5) ? random.int(500, 4000) : 0,
    faultDurationMsMax: random.int(100, 3 * leaseMs),
    // Now and then a long write: a pause is then likely to fall between admission and write.
    writeDelayUs: random.chance(0.3) ? random.int(leaseMs * 100, leaseMs * 600) : random.int(10, 2000),
  };
  // Renewals must be answered after a quorum round (DESIGN.md §3), not from the read lease.
  const readsWithWorkers: SimOptions["reads"] = workers.enabled && reads === "lease" ? "readIndex" : reads;
  // Drawn after everything above, so that adding them left every earlier draw unchanged.
  const closes = { enabled: random.chance(0.4), meanIntervalMs: random.int(1000, 6000), downMsMax: random.int(100, 2000) };
  const scenarios = {
    enabled: random.chance(0.6),
    meanIntervalMs: random.int(800, 4000),
    kinds: random.shuffle(SCENARIO_KINDS).slice(0, random.int(1, SCENARIO_KINDS.length)).sort(),
  };
  const closeMeanIntervalMs = random.chance(0.4) ? random.int(1000, 5000) : 0;
  const timeout = options.workload.requestTimeoutMs;
  const workload = {
    ...options.workload,
    apiTimeoutMsMin: random.int(Math.ceil(timeout / 4), timeout),
    apiTimeoutMsMax: random.int(timeout, 3 * timeout),
  };
  return {
    ...options,
    workload,
    reads: readsWithWorkers,
    transferMeanIntervalMs,
    snapshots,
    membership,
    workers: { ...workers, closeMeanIntervalMs },
    closes,
    scenarios,
  };
}
