/**
 * The safety phase's faults, each process on its own schedule drawn from the seed: partitions of
 * every shape, member crashes (with torn writes) and graceful closes, leadership transfers,
 * membership changes, and for placement runs worker crashes, pauses longer than a lease, cuts from
 * the members and graceful closes. Beside them, scenarios aim faults at the narrow windows where
 * the host's rules matter (see `ScenarioKind`); while one runs, the random processes hold off.
 */
import type { ScenarioKind } from "./options.ts";
import type { SimMember } from "./members.ts";
import type { SimulationContext } from "./simulator.ts";
import type { SimWorker } from "./workers.ts";

/** The fault processes of one run. */
export class Faults {
  constructor(private readonly sim: SimulationContext) {}

  /** Starts every process the options enable. */
  start(): void {
    const o = this.sim.options;
    if (o.partitions.enabled) this.schedulePartition();
    if (o.crashes.enabled) this.every(o.crashes.meanIntervalMs, () => this.crashMember());
    if (o.transferMeanIntervalMs > 0) this.every(o.transferMeanIntervalMs, () => this.transfer());
    if (o.membership.enabled) this.every(o.membership.meanIntervalMs, () => this.sim.changeMembership());
    if (o.closes.enabled) this.every(o.closes.meanIntervalMs, () => this.closeMember());
    if (o.workers.enabled) this.startWorkerFaults();
    if (o.scenarios.enabled) this.every(o.scenarios.meanIntervalMs, () => this.scenario());
  }

  /** Runs `fault` at exponentially distributed intervals of mean `meanMs`, in the safety phase, unless a scenario holds faults off. */
  private every(meanMs: number, fault: () => void): void {
    if (meanMs <= 0) return;
    const next = (): void => {
      const sim = this.sim;
      sim.scheduler.at(sim.now + Math.max(1, Math.floor(sim.faults.exponential(meanMs * 1000))), () => {
        if (sim.phase !== "safety") return;
        if (!sim.quiet) fault();
        next();
      });
    };
    next();
  }

  private schedulePartition(): void {
    const sim = this.sim;
    const p = sim.options.partitions;
    sim.scheduler.at(sim.now + Math.floor(sim.faults.exponential(p.meanIntervalMs * 1000)), () => {
      if (sim.phase !== "safety") return;
      if (sim.quiet || sim.partitioned) {
        this.schedulePartition();
        return;
      }
      const leader = sim.currentLeader()?.id ?? null;
      const kind = sim.faults.pick(p.kinds);
      sim.setPartition(sim.network.partition(kind, sim.memberIds, leader));
      sim.scheduler.at(sim.now + sim.faults.int(1, p.durationMsMax * 1000), () => {
        if (sim.phase !== "safety") return;
        sim.heal();
        this.schedulePartition();
      });
    });
  }

  /** Members that may be taken down now while a majority of the active ones stays up (most of the time). */
  private downable(): SimMember[] {
    const sim = this.sim;
    const active = sim.activeMembers();
    const down = active.filter((m) => !m.process.up || m.closing).length;
    const up = active.filter((m) => m.process.up && !m.closing);
    // Keep a majority up most of the time, so that the run is not all waiting.
    const allowed = Math.floor((active.length - 1) / 2) + (sim.faults.chance(0.1) ? 1 : 0);
    return down < allowed ? up : [];
  }

  private crashMember(): void {
    const sim = this.sim;
    const candidates = this.downable();
    if (candidates.length === 0) return;
    const victim = sim.faults.pick(candidates);
    sim.crashMember(victim);
    sim.scheduler.at(sim.now + sim.faults.int(1, sim.options.crashes.downMsMax * 1000), () => {
      if (!victim.process.up && sim.activeMembers().includes(victim)) sim.restartMember(victim);
    });
  }

  private closeMember(): void {
    const sim = this.sim;
    const candidates = this.downable().filter((m) => m.up);
    if (candidates.length === 0) return;
    sim.closeMember(sim.faults.pick(candidates), sim.faults.int(1, sim.options.closes.downMsMax * 1000));
  }

  /** Asks the current leader to hand leadership to a random other voter. */
  private transfer(): void {
    const sim = this.sim;
    const leader = sim.currentLeader();
    const voters = leader?.node?.status().config.voters.filter((id) => id !== leader.id) ?? [];
    if (leader === undefined || voters.length === 0) return;
    sim.transfer(leader, sim.faults.pick(voters));
  }

  // --- Workers --------------------------------------------------------------------------------

  private startWorkerFaults(): void {
    const sim = this.sim;
    const w = sim.options.workers;
    const workers = [...sim.workers.values()];
    const each = (meanMs: number, fault: (worker: SimWorker, durationUs: number) => void): void => {
      this.every(meanMs, () => {
        const worker = sim.faults.pick(workers);
        fault(worker, sim.faults.int(1, w.faultDurationMsMax * 1000));
        sim.stats.workerFaults += 1;
      });
    };
    each(w.crashMeanIntervalMs, (worker, durationUs) => {
      if (!worker.up) return;
      sim.crashWorker(worker);
      this.restartWorkerAfter(worker, durationUs);
    });
    each(w.pauseMeanIntervalMs, (worker, durationUs) => {
      worker.process.pausedUntilUs = Math.max(worker.process.pausedUntilUs, sim.now + durationUs);
      sim.mix(19, worker.id, 1);
    });
    // Cut off from every member, or (half the time) from some: then renewals fail while some
    // gateways still reach the worker, so a stale owner can be sent requests (only the fence can
    // stop its writes, should its clock run beyond ρ).
    each(w.cutMeanIntervalMs, (worker, durationUs) => {
      const reachable = sim.faults.chance(0.5) ? sim.memberIds.filter(() => sim.faults.chance(0.5)) : [];
      this.cutWorker(worker, reachable, durationUs);
    });
    each(w.closeMeanIntervalMs, (worker, durationUs) => this.closeWorker(worker, durationUs));
  }

  private restartWorkerAfter(worker: SimWorker, durationUs: number): void {
    const sim = this.sim;
    sim.scheduler.at(sim.now + durationUs, () => {
      if (!worker.up && sim.phase === "safety") worker.start(sim.memberIds);
    });
  }

  /** Cuts `worker` off from every member but `except` for `durationUs`. */
  private cutWorker(worker: SimWorker, except: readonly string[], durationUs: number): void {
    const sim = this.sim;
    sim.network.cutPeer(worker.peer, except);
    sim.mix(19, worker.id, 2);
    sim.scheduler.at(sim.now + durationUs, () => sim.network.reconnect(worker.peer));
  }

  /** Closes `worker` gracefully (its keys drain to others first), then restarts it after `durationUs`. */
  private closeWorker(worker: SimWorker, durationUs: number): void {
    const sim = this.sim;
    const agent = worker.agent;
    if (agent === null || worker.closing) return;
    worker.closing = true;
    sim.mix(19, worker.id, 4);
    const generation = worker.process.generation;
    void agent.close().then(() => {
      if (!worker.process.up || worker.process.generation !== generation) return;
      sim.crashWorker(worker);
      this.restartWorkerAfter(worker, durationUs);
    });
  }

  // --- Narrow windows ---------------------------------------------------------------------------

  private scenario(): void {
    const sim = this.sim;
    const o = sim.options;
    const kinds = o.scenarios.kinds.filter((kind) => this.applicable(kind));
    if (kinds.length === 0) return;
    const kind = sim.faults.pick(kinds);
    sim.noteScenario(kind);
    switch (kind) {
      case "crash-after-grant":
        return this.crashAfterGrant();
      case "leader-change-worker-cut":
        return this.leaderChangeWorkerCut();
      case "isolate-leader":
        return this.isolateLeader();
      case "rejoin":
        return this.rejoin();
    }
  }

  private applicable(kind: ScenarioKind): boolean {
    const sim = this.sim;
    const leader = sim.currentLeader();
    switch (kind) {
      case "crash-after-grant":
        return sim.activeMembers().some((m) => m.up && !m.closing);
      case "leader-change-worker-cut":
        return sim.options.workers.enabled && leader !== undefined && !sim.partitioned;
      case "isolate-leader":
        return leader !== undefined && !sim.partitioned;
      case "rejoin": {
        const active = sim.activeMembers();
        const config = leader?.node?.status().config;
        return (
          sim.options.preVote &&
          leader !== undefined &&
          config !== undefined &&
          config.outgoing.length === 0 &&
          !sim.partitioned &&
          active.every((m) => m.up && !m.closing)
        );
      }
    }
  }

  /** The electionTicks × tickMs × 2 of the options: the longest election timeout, in µs. */
  private electionTimeoutMaxUs(): number {
    const o = this.sim.options;
    return 2 * o.electionTicks * o.tickMs * 1000;
  }

  /** Arms a crash of a random member at its next vote grant or append acknowledgement. */
  private crashAfterGrant(): void {
    const sim = this.sim;
    const candidates = this.downable();
    if (candidates.length === 0) return;
    const victim = sim.faults.pick(candidates);
    sim.armCrashAfterGrant(victim.id);
    sim.scheduler.at(sim.now + 5 * this.electionTimeoutMaxUs(), () => sim.armCrashAfterGrant(null));
  }

  /**
   * A worker that owns keys is cut off from every member but the leader; a renewal later,
   * leadership moves to another voter while the worker is still inside its lease. The new leader
   * must not expire it before `L(1+ρ)` from its own election.
   */
  private leaderChangeWorkerCut(): void {
    const sim = this.sim;
    const leader = sim.currentLeader() as SimMember;
    const table = leader.placement?.table();
    const owners = [...sim.workers.values()].filter((w) => w.up && (table?.keyCount(w.id) ?? 0) > 0);
    const worker = owners.length > 0 ? sim.faults.pick(owners) : undefined;
    if (worker === undefined) return;
    const w = sim.options.workers;
    sim.quiet = true;
    this.cutWorker(worker, [leader.id], 3 * w.leaseMs * 1000);
    sim.scheduler.at(sim.now + 2 * w.renewIntervalMs * 1000, () => {
      const voters = leader.node?.status().config.voters.filter((id) => id !== leader.id) ?? [];
      if (leader.up && leader.view.role === "leader" && voters.length > 0) sim.transfer(leader, sim.faults.pick(voters));
    });
    sim.scheduler.at(sim.now + 3 * w.leaseMs * 1000, () => (sim.quiet = false));
  }

  /**
   * The leader is cut off from the other members while workers and clients keep talking to it;
   * the others elect a new leader. The old one must answer nothing as a leader.
   */
  private isolateLeader(): void {
    const sim = this.sim;
    const leader = sim.currentLeader() as SimMember;
    const durationUs = 4 * this.electionTimeoutMaxUs() + 2 * sim.options.workers.leaseMs * 1000;
    sim.quiet = true;
    sim.setPartition(sim.network.partition("isolate", sim.memberIds, leader.id));
    sim.scheduler.at(sim.now + durationUs, () => {
      if (sim.phase === "safety") sim.heal();
      sim.quiet = false;
    });
  }

  /**
   * A follower is cut off for several election timeouts while nothing else goes wrong (no loss,
   * no other fault), then rejoins. With PreVote it never raised its term, so the leader a quorum
   * follows must still lead, in the same term, several election timeouts later.
   *
   * Without CheckQuorum a follower grants a pre-vote to any candidate whose log is at least as up
   * to date as its own, however recently it heard from its leader (the core follows etcd here:
   * the recent-leader test is CheckQuorum's). A majority may lag as far as the member that was cut
   * off (one entry per round trip to a slow follower), and then the member can win: PreVote
   * promises nothing in that case, so only a rejoin it cannot win is checked.
   */
  private rejoin(): void {
    const sim = this.sim;
    const leader = sim.currentLeader() as SimMember;
    const followers = sim.activeMembers().filter((m) => m !== leader);
    if (followers.length === 0) return;
    const member = sim.faults.pick(followers);
    sim.quiet = true;
    sim.armCrashAfterGrant(null);
    const saved = sim.network.options;
    sim.network.options = { ...saved, lossRate: 0, duplicateRate: 0, reorderRate: 0 };
    sim.setPartition(sim.network.partition("isolate", sim.memberIds, member.id));
    const cutUs = sim.faults.int(3, 6) * this.electionTimeoutMaxUs();
    const windowUs = 5 * this.electionTimeoutMaxUs();
    sim.scheduler.at(sim.now + cutUs, () => {
      if (sim.phase !== "safety") return;
      sim.heal();
      // PreVote promises nothing about a term the member raised before it was cut off (a
      // transfer's campaign skips pre-vote): only a rejoin at no higher term than the leader's counts.
      const now = sim.currentLeader();
      if (
        now !== undefined &&
        member.up &&
        member.view.term <= now.view.term &&
        (sim.options.checkQuorum || !canWinPreVote(member, votersOf(sim, now)))
      ) {
        sim.watchRejoin(member.id, now, windowUs);
      }
      sim.scheduler.at(sim.now + windowUs, () => {
        if (sim.phase === "safety") sim.network.options = saved;
        sim.quiet = false;
      });
    });
  }
}

/** The members `leader`'s configuration counts votes from. */
function votersOf(sim: SimulationContext, leader: SimMember): SimMember[] {
  const voters = leader.node?.status().config.voters ?? [];
  return sim.activeMembers().filter((m) => voters.includes(m.id));
}

/**
 * Whether `candidate` could gather a majority of pre-votes from `voters` on log comparison alone:
 * the voters whose log is no more up to date than its own (itself included) are a majority.
 */
function canWinPreVote(candidate: SimMember, voters: readonly SimMember[]): boolean {
  const last = (m: SimMember) => m.view.log[m.view.log.length - 1];
  const mine = last(candidate);
  const grants = voters.filter((m) => {
    const theirs = last(m);
    if (theirs === undefined) return true;
    if (mine === undefined) return false;
    return theirs.term < mine.term || (theirs.term === mine.term && theirs.index <= mine.index);
  });
  return grants.length * 2 > voters.length;
}
