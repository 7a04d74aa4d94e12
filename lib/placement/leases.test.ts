/**
 * The leader's side of the lease (expiry, the new leader's wait, handoff of draining keys), the
 * shared configuration, and the safety argument of DESIGN.md §3 as a property: with clock rates
 * within ρ of true time, whatever the offsets, delays, losses, reorderings, drains and failovers, a
 * worker has stopped serving a key by the first true instant any leader may expire it or hand the
 * key off. With drift beyond ρ the same simulation finds overlaps, so the check can fire.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { AssertionFailure } from "../assert.ts";
import { ConfigError } from "../errors.ts";
import {
  LEASE_CONFIG_DEFAULTS,
  LEASE_WORKERS_MAX,
  LeaseTracker,
  leaseExpiryDelayMs,
  resolveLeaseConfig,
  workerLeaseMs,
  type LeaseConfigInput,
} from "./leases.ts";
import { WorkerLease, type AnsweredKey } from "./worker.ts";

const NUM_RUNS = 1_000;
// Every assert.ok here carries a message: without one, node rebuilds it by parsing this file's
// source, which under tsx can take minutes when the assertion fails.

/** L = 1000 ms, ρ = 1%: the leader waits 1010 ms of its clock. */
function tracker(): LeaseTracker {
  return new LeaseTracker({ leaseMs: 1_000, clockDriftMax: 0.01 });
}

function refusedField(input: unknown, field: string): void {
  assert.throws(
    () => resolveLeaseConfig(input as LeaseConfigInput),
    (error: unknown) => ConfigError.is(error) && error.field === field,
    `expected a ConfigError naming ${field} for ${JSON.stringify(input)}`,
  );
}

// ---------------------------------------------------------------------------------------------

describe("lease configuration", () => {
  it("applies defaults", () => {
    assert.deepEqual(resolveLeaseConfig({ leaseMs: 500 }), { leaseMs: 500, ...LEASE_CONFIG_DEFAULTS });
    assert.deepEqual(LEASE_CONFIG_DEFAULTS, { clockDriftMax: 0.01, marginMs: 0 });
  });

  it("computes L*(1+ρ) for the leader and L*(1-ρ) - margin for the worker", () => {
    const config = resolveLeaseConfig({ leaseMs: 1_000, clockDriftMax: 0.01, marginMs: 40 });
    assert.equal(leaseExpiryDelayMs(config), 1_010);
    assert.equal(workerLeaseMs(config), 950);
    assert.equal(tracker().expiryDelayMs(), 1_010);
  });

  it("refuses bad values, naming the field", () => {
    for (const leaseMs of [0, -1, Number.NaN, Infinity, "1000", undefined]) refusedField({ leaseMs }, "leaseMs");
    for (const clockDriftMax of [-0.01, 0.5, 1, Number.NaN, "0.01"]) {
      refusedField({ leaseMs: 1_000, clockDriftMax }, "clockDriftMax");
    }
    for (const marginMs of [-1, Number.NaN, Infinity, 990, 2_000]) {
      refusedField({ leaseMs: 1_000, clockDriftMax: 0.01, marginMs }, "marginMs");
    }
    refusedField({ leaseMs: 1_000, leaseTicks: 3 }, "leaseTicks");
    refusedField(null, "lease");
  });

  it("accepts the edges of each range", () => {
    assert.doesNotThrow(() => resolveLeaseConfig({ leaseMs: 0.5, clockDriftMax: 0, marginMs: 0.499 }));
    assert.doesNotThrow(() => resolveLeaseConfig({ leaseMs: 1_000, clockDriftMax: 0.49, marginMs: 0 }));
  });
});

describe("LeaseTracker expiry", () => {
  it("expires nobody and lists no keys while not leading", () => {
    const leases = tracker();
    assert.equal(leases.isLeading(), false);
    assert.equal(leases.onRenewalAnswered("w1", 0), false);
    assert.deepEqual(leases.expiredWorkers(1e9, ["w1"]), []);
    assert.equal(leases.expiresAt("w1"), Infinity);
  });

  it("makes a new leader wait L*(1+ρ) from its election before expiring anyone", () => {
    const leases = tracker();
    leases.onElected(5_000);
    assert.deepEqual(leases.expiredWorkers(6_009.999, ["w1", "w2"]), []);
    assert.deepEqual(leases.expiredWorkers(6_010, ["w2", "w1"]), ["w1", "w2"]);
  });

  it("expires a worker exactly L*(1+ρ) after receiving its last answered renewal", () => {
    const leases = tracker();
    leases.onElected(0);
    assert.equal(leases.onRenewalAnswered("w1", 7_000), true);
    assert.equal(leases.expiresAt("w1"), 8_010);
    assert.deepEqual(leases.expiredWorkers(8_009.999, ["w1"]), []);
    assert.deepEqual(leases.expiredWorkers(8_010, ["w1"]), ["w1"]);
  });

  it("counts from the receipt, not from the answer", () => {
    const leases = tracker();
    leases.onElected(0);
    // Received at 7000, answered at 7400 after the quorum round: the deadline is still 8010.
    leases.onRenewalAnswered("w1", 7_000);
    assert.deepEqual(leases.expiredWorkers(8_010, ["w1"]), ["w1"]);
  });

  it("never moves a deadline back when answers complete out of order", () => {
    const leases = tracker();
    leases.onElected(0);
    leases.onRenewalAnswered("w1", 7_000);
    leases.onRenewalAnswered("w1", 6_000);
    assert.equal(leases.expiresAt("w1"), 8_010);
  });

  it("keeps the election as the floor for renewals received before it", () => {
    const leases = tracker();
    leases.onElected(5_000);
    leases.onRenewalAnswered("w1", 4_500);
    assert.equal(leases.expiresAt("w1"), 6_010);
  });

  it("returns expired workers sorted and once each", () => {
    const leases = tracker();
    leases.onElected(0);
    leases.onRenewalAnswered("b", 2_000);
    assert.deepEqual(leases.expiredWorkers(2_000, ["c", "b", "a", "c"]), ["a", "c"]);
  });

  it("answers a worker reported expired without keys until it is forgotten", () => {
    const leases = tracker();
    leases.onElected(0);
    leases.onRenewalAnswered("w1", 100);
    assert.deepEqual(leases.expiredWorkers(1_110, ["w1"]), ["w1"]);
    // A renewal received before the expiry but answered after it must not extend the lease.
    assert.equal(leases.onRenewalAnswered("w1", 1_100), false);
    assert.equal(leases.expiresAt("w1"), 1_110);
    assert.deepEqual(leases.expiredWorkers(1_200, ["w1"]), ["w1"]);
    leases.forget("w1");
    assert.equal(leases.onRenewalAnswered("w1", 1_300), true);
    assert.equal(leases.expiresAt("w1"), 2_310);
  });

  it("starts over on re-election and stops on stepping down", () => {
    const leases = tracker();
    leases.onElected(0);
    leases.onRenewalAnswered("w1", 9_000);
    leases.onSteppedDown();
    assert.equal(leases.isLeading(), false);
    assert.deepEqual(leases.expiredWorkers(20_000, ["w1"]), []);
    leases.onElected(3_000);
    assert.equal(leases.expiresAt("w1"), 4_010);
  });

  it("answers renewals of workers beyond LEASE_WORKERS_MAX without keys", () => {
    const leases = tracker();
    leases.onElected(0);
    for (let i = 0; i < LEASE_WORKERS_MAX; i += 1) assert.equal(leases.onRenewalAnswered(`w${i}`, 1), true);
    assert.equal(leases.onRenewalAnswered("one-too-many", 1), false);
    assert.equal(leases.onRenewalAnswered("w0", 2), true);
    leases.forget("w0");
    assert.equal(leases.onRenewalAnswered("one-too-many", 3), true);
  });

  it("asserts that times are finite numbers", () => {
    const leases = tracker();
    assert.throws(() => leases.onElected(Number.NaN), AssertionFailure);
    leases.onElected(0);
    assert.throws(() => leases.onRenewalAnswered("w1", Infinity), AssertionFailure);
    assert.throws(() => leases.expiredWorkers(Number.NaN, []), AssertionFailure);
  });
});

describe("LeaseTracker handoff", () => {
  const a = { key: "a", epoch: 4 };

  it("hands off a draining key L*(1+ρ) after the drain was applied, exactly", () => {
    const leases = tracker();
    leases.onElected(0);
    leases.onDrainApplied("a", 4, 2_000);
    assert.deepEqual(leases.handoffsDue(3_009.999, [a]), []);
    assert.deepEqual(leases.handoffsDue(3_010, [a]), [a]);
  });

  it("counts from the election for a drain applied before it, listed at the election", () => {
    const leases = tracker();
    leases.onDrainApplied("a", 4, 100); // as a follower: ignored
    leases.onElected(5_000);
    assert.deepEqual(leases.handoffsDue(5_000, [a]), []);
    assert.deepEqual(leases.handoffsDue(6_009.999, [a]), []);
    assert.deepEqual(leases.handoffsDue(6_010, [a]), [a]);
  });

  it("counts from the election for a drain time given from before it", () => {
    const leases = tracker();
    leases.onElected(5_000);
    leases.onDrainApplied("a", 4, 4_000);
    assert.equal(leases.handoffDueAt("a", 4), 6_010);
  });

  it("counts from the election when a new leader never saw the drain applied", () => {
    const leases = tracker();
    leases.onElected(5_000);
    assert.deepEqual(leases.handoffsDue(5_000, [a]), []);
    assert.equal(leases.handoffDueAt("a", 4), 6_010);
    assert.deepEqual(leases.handoffsDue(6_010, [a]), [a]);
  });

  it("records a draining key it was not told of as drained when first listed", () => {
    const leases = tracker();
    leases.onElected(0);
    assert.deepEqual(leases.handoffsDue(3_000, [a]), []);
    assert.equal(leases.handoffDueAt("a", 4), 4_010);
  });

  it("restarts the wait, and forgets a confirmation, when the same grant is drained again", () => {
    // A drain undone and redone at the same epoch: the worker may have served in between.
    const leases = tracker();
    leases.onElected(0);
    leases.onDrainApplied("a", 4, 2_000);
    leases.onReleased("a", 4);
    leases.onDrainApplied("a", 4, 2_500);
    assert.equal(leases.handoffDueAt("a", 4), 3_510);
  });

  it("ignores a drain or a confirmation for an epoch older than the one recorded", () => {
    const leases = tracker();
    leases.onElected(0);
    leases.onDrainApplied("a", 9, 2_000);
    leases.onDrainApplied("a", 4, 2_500);
    leases.onReleased("a", 4);
    assert.equal(leases.handoffDueAt("a", 9), 3_010);
    assert.equal(leases.handoffDueAt("a", 4), Infinity);
  });

  it("hands off at once when the old owner confirms the release", () => {
    const leases = tracker();
    leases.onElected(0);
    leases.onDrainApplied("a", 4, 2_000);
    leases.onReleased("a", 4);
    assert.deepEqual(leases.handoffsDue(2_001, [a]), [a]);
  });

  it("ignores a confirmation for another epoch of the key", () => {
    const leases = tracker();
    leases.onElected(0);
    leases.onDrainApplied("a", 4, 2_000);
    leases.onReleased("a", 3);
    assert.deepEqual(leases.handoffsDue(2_001, [a]), []);
    assert.deepEqual(leases.handoffsDue(3_010, [a]), [a]);
  });

  it("takes a confirmation heard before the drain was applied", () => {
    const leases = tracker();
    leases.onElected(0);
    leases.onReleased("a", 4);
    assert.deepEqual(leases.handoffsDue(1, [a]), [a]);
  });

  it("starts the clock again for a new drain of the key at a new epoch", () => {
    const leases = tracker();
    leases.onElected(0);
    leases.onDrainApplied("a", 4, 2_000);
    leases.onReleased("a", 4);
    leases.onDrainApplied("a", 9, 5_000);
    const a9 = { key: "a", epoch: 9 };
    assert.deepEqual(leases.handoffsDue(5_001, [a9]), []);
    assert.deepEqual(leases.handoffsDue(6_010, [a9]), [a9]);
  });

  it("drops the records of keys no longer draining", () => {
    const leases = tracker();
    leases.onElected(0);
    leases.onDrainApplied("a", 4, 2_000);
    leases.onReleased("a", 4);
    assert.deepEqual(leases.handoffsDue(2_001, []), []);
    assert.equal(leases.handoffDueAt("a", 4), Infinity);
    // Listed again later, it counts from then: later, never sooner.
    assert.deepEqual(leases.handoffsDue(2_500, [a]), []);
    assert.equal(leases.handoffDueAt("a", 4), 3_510);
  });

  it("returns due handoffs sorted by key, and none while not leading", () => {
    const leases = tracker();
    assert.deepEqual(leases.handoffsDue(1e9, [a]), []);
    leases.onElected(0);
    const keys = ["d", "b", "c"].map((key) => ({ key, epoch: 1 }));
    assert.deepEqual(leases.handoffsDue(0, keys), []);
    assert.deepEqual(
      leases.handoffsDue(1_010, keys).map((g) => g.key),
      ["b", "c", "d"],
    );
  });

  it("forgets drains on re-election", () => {
    const leases = tracker();
    leases.onElected(0);
    leases.onReleased("a", 4);
    leases.onElected(100);
    assert.deepEqual(leases.handoffsDue(101, [a]), []);
    assert.equal(leases.handoffDueAt("a", 4), 1_111);
  });
});

// ---------------------------------------------------------------------------------------------
// The safety argument, simulated. True time T; each clock reads offset + rate * T. One worker holds
// key "k" at epoch 7 and renews; each renewal may be lost on the way, is answered after a quorum
// delay, and the answer may be lost or reordered on the way back. The key may be drained, and the
// leader may fail over to a second one, elected after every renewal the first one answered was
// received (the quorum argument of leases.ts). Answers list the key draining iff the answering
// leader applied the drain before it received the renewal (deciding at receipt is the worst case),
// and list nothing once a leader has decided to expire the worker.

const KEY = "k";
const EPOCH = 7;
const WORKER = "w";
/** Float slack: clocks are mapped to true time and back, which rounds. */
const TOLERANCE_MS = 1e-6;

interface Clock {
  readonly rate: number;
  readonly offset: number;
}

interface RenewalPlan {
  /** True ms since the previous renewal was sent. */
  readonly gapMs: number;
  readonly upMs: number;
  readonly upLost: boolean;
  readonly quorumMs: number;
  readonly downMs: number;
  readonly downLost: boolean;
}

interface Scenario {
  readonly leaseMs: number;
  readonly clockDriftMax: number;
  /** The margin as a fraction of `L*(1-ρ)`. */
  readonly marginShare: number;
  readonly worker: Clock;
  readonly leaders: readonly [Clock, Clock];
  readonly renewals: readonly RenewalPlan[];
  /** True time the drain is committed (and applied by the leader of the moment), or null. */
  readonly drainAt: number | null;
  /** True time the second leader is elected, or null. */
  readonly failoverAt: number | null;
}

/** What the simulation found: when the worker last served the key, and when leaders may move it. */
interface Outcome {
  /** The latest true instant the worker could still serve the key (-Infinity if never). */
  readonly servedUntil: number;
  /** True instants at which some leader may expire the worker or hand the key off. */
  readonly moves: readonly number[];
}

function localAt(clock: Clock, trueMs: number): number {
  return clock.offset + clock.rate * trueMs;
}

function trueAt(clock: Clock, localMs: number): number {
  return (localMs - clock.offset) / clock.rate;
}

interface Answer {
  readonly seq: number;
  readonly receivedAt: number;
  readonly answeredAt: number;
  readonly deliveredAt: number | null;
  keys: readonly AnsweredKey[];
}

interface Reign {
  readonly leader: 0 | 1;
  readonly electedAt: number;
  readonly endsAt: number;
  readonly drainAppliedAt: number | null;
}

function simulate(scenario: Scenario): Outcome {
  const config = { leaseMs: scenario.leaseMs, clockDriftMax: scenario.clockDriftMax };
  const marginMs = scenario.marginShare * scenario.leaseMs * (1 - scenario.clockDriftMax);
  const failover = scenario.failoverAt ?? Infinity;
  const reigns: Reign[] = [
    { leader: 0, electedAt: 0, endsAt: failover, drainAppliedAt: scenario.drainAt !== null && scenario.drainAt < failover ? scenario.drainAt : null },
  ];
  if (scenario.failoverAt !== null) {
    const applied = scenario.drainAt === null ? null : Math.max(scenario.drainAt, scenario.failoverAt);
    reigns.push({ leader: 1, electedAt: scenario.failoverAt, endsAt: Infinity, drainAppliedAt: applied });
  }

  // Plan every renewal: sent, received by the leader of the moment, answered after a quorum round.
  const sends: Array<{ seq: number; at: number }> = [];
  const answersByReign: Answer[][] = reigns.map(() => []);
  let sentAt = 0;
  scenario.renewals.forEach((plan, i) => {
    sentAt += plan.gapMs;
    const seq = i + 1;
    sends.push({ seq, at: sentAt });
    if (plan.upLost) return;
    const receivedAt = sentAt + plan.upMs;
    const reign = receivedAt < failover ? 0 : 1;
    const answeredAt = receivedAt + plan.quorumMs;
    const deliveredAt = plan.downLost ? null : answeredAt + plan.downMs;
    answersByReign[reign]!.push({ seq, receivedAt, answeredAt, deliveredAt, keys: [] });
  });

  const moves: number[] = [];
  // When an earlier reign decided to expire the worker: its keys are gone for later leaders.
  let expiredInEarlierReign = Infinity;
  reigns.forEach((reign, r) => {
    const clock = scenario.leaders[reign.leader];
    const leases = new LeaseTracker(config);
    leases.onElected(localAt(clock, reign.electedAt));
    let drained = false;
    let expiredAt = Infinity;
    const decideExpiry = (before: number): void => {
      const at = trueAt(clock, leases.expiresAt(WORKER));
      if (expiredAt < Infinity || at > before || at >= reign.endsAt) return;
      // The earliest the host could decide: polling exactly at the deadline.
      assert.deepEqual(leases.expiredWorkers(leases.expiresAt(WORKER), [WORKER]), [WORKER]);
      expiredAt = at;
      moves.push(at);
    };
    const answers = [...answersByReign[r]!].sort((x, y) => x.answeredAt - y.answeredAt);
    for (const answer of answers) {
      if (!drained && reign.drainAppliedAt !== null && reign.drainAppliedAt <= answer.answeredAt) {
        leases.onDrainApplied(KEY, EPOCH, localAt(clock, reign.drainAppliedAt));
        drained = true;
      }
      decideExpiry(answer.answeredAt);
      const mayList = leases.onRenewalAnswered(WORKER, localAt(clock, answer.receivedAt));
      // Within the reign, only the tracker stops the keys being listed once the expiry is decided.
      if (mayList && answer.answeredAt < expiredInEarlierReign) {
        const isDraining = reign.drainAppliedAt !== null && answer.receivedAt >= reign.drainAppliedAt;
        answer.keys = [{ key: KEY, epoch: EPOCH, draining: isDraining }];
      }
    }
    if (!drained && reign.drainAppliedAt !== null) {
      leases.onDrainApplied(KEY, EPOCH, localAt(clock, reign.drainAppliedAt));
    }
    decideExpiry(Infinity);
    const handoff = leases.handoffDueAt(KEY, EPOCH);
    if (Number.isFinite(handoff) && trueAt(clock, handoff) < reign.endsAt) {
      assert.deepEqual(leases.handoffsDue(handoff, [{ key: KEY, epoch: EPOCH }]), [{ key: KEY, epoch: EPOCH }]);
      moves.push(trueAt(clock, handoff));
    }
    expiredInEarlierReign = Math.min(expiredInEarlierReign, expiredAt);
  });

  // The worker, in true-time order: sends before deliveries at the same instant.
  const worker = new WorkerLease({ ...config, marginMs });
  type WorkerEvent = { at: number; order: 0 | 1; seq: number; keys: readonly AnsweredKey[] };
  const events: WorkerEvent[] = sends.map(({ seq, at }) => ({ at, order: 0, seq, keys: [] }));
  for (const answer of answersByReign.flat()) {
    if (answer.deliveredAt !== null) events.push({ at: answer.deliveredAt, order: 1, seq: answer.seq, keys: answer.keys });
  }
  events.sort((x, y) => x.at - y.at || x.order - y.order || x.seq - y.seq);
  let servedUntil = -Infinity;
  for (const event of events) {
    const now = localAt(scenario.worker, event.at);
    if (event.order === 0) {
      worker.renewalSent(event.seq, now);
    } else if (worker.answered(event.seq, event.keys) === "accepted" && worker.canServe(KEY, EPOCH, now)) {
      servedUntil = Math.max(servedUntil, trueAt(scenario.worker, worker.validUntil()!));
    }
  }
  return { servedUntil, moves };
}

/** How far (true ms) the worker served past the first move; <= 0 means no overlap. */
function overlapMs(outcome: Outcome): number {
  return outcome.servedUntil - Math.min(...outcome.moves);
}

/**
 * A number in [min, max] in steps of a millionth of the range, spread evenly. (fc.double favours
 * values near zero so heavily that most drains would happen at once; edge values that matter are
 * drawn explicitly instead.)
 */
function spanArb(min: number, max: number): fc.Arbitrary<number> {
  return fc
    .noBias(fc.integer({ min: 0, max: 1_000_000 }))
    .map((step) => min + ((max - min) * step) / 1_000_000);
}

/** A message delay as a share of L: mostly short, sometimes none, sometimes longer than a lease. */
const delayShareArb = fc.oneof(
  { weight: 1, arbitrary: fc.constant(0) },
  { weight: 4, arbitrary: spanArb(0, 0.2) },
  { weight: 1, arbitrary: spanArb(0, 2) },
);

function scenarioArb(driftDrawn: (rho: number) => number): fc.Arbitrary<Scenario> {
  return fc
    .record({
      leaseMs: fc.integer({ min: 10, max: 10_000 }),
      clockDriftMax: fc.oneof(fc.constant(0.01), spanArb(0, 0.2)),
      marginShare: fc.oneof(fc.constant(0), spanArb(0, 0.5)),
      offsets: fc.tuple(...[0, 1, 2].map(() => spanArb(-1e6, 1e6))),
      // The extremes, where the argument is tight, come up often.
      rateShares: fc.tuple(...[0, 1, 2].map(() => fc.oneof(fc.constantFrom(-1, 1), spanArb(-1, 1)))),
      renewals: fc.array(
        fc.record({
          // Mostly renewing every third of a lease or sooner; sometimes missing a beat.
          gapShare: fc.oneof({ weight: 3, arbitrary: spanArb(0, 0.35) }, { weight: 1, arbitrary: spanArb(0, 1.2) }),
          upShare: delayShareArb,
          upLost: fc.nat(4).map((n) => n === 0),
          quorumShare: spanArb(0, 0.3),
          downShare: delayShareArb,
          downLost: fc.nat(4).map((n) => n === 0),
        }),
        { minLength: 1, maxLength: 12, size: "max" },
      ),
      drainShare: fc.option(spanArb(0, 8)),
      failoverShare: fc.option(spanArb(0, 8)),
    })
    .map((d): Scenario => {
      const L = d.leaseMs;
      const spread = driftDrawn(d.clockDriftMax);
      const clock = (i: number): Clock => ({ rate: 1 + spread * d.rateShares[i]!, offset: d.offsets[i]! });
      return {
        leaseMs: L,
        clockDriftMax: d.clockDriftMax,
        marginShare: d.marginShare,
        worker: clock(0),
        leaders: [clock(1), clock(2)],
        renewals: d.renewals.map((p) => ({
          gapMs: p.gapShare * L,
          upMs: p.upShare * L,
          upLost: p.upLost,
          quorumMs: p.quorumShare * L,
          downMs: p.downShare * L,
          downLost: p.downLost,
        })),
        drainAt: d.drainShare === null ? null : d.drainShare * L,
        failoverAt: d.failoverShare === null ? null : d.failoverShare * L,
      };
    });
}

describe("the lease safety argument", () => {
  it("never lets a worker serve a key past the instant a leader may expire it or hand it off (drift <= ρ)", () => {
    let moved = 0;
    fc.assert(
      fc.property(scenarioArb((rho) => rho), (scenario) => {
        const outcome = simulate(scenario);
        if (outcome.servedUntil > -Infinity && outcome.moves.length > 0) moved += 1;
        assert.ok(overlapMs(outcome) <= TOLERANCE_MS, `the worker served ${overlapMs(outcome)} ms too long`);
      }),
      { numRuns: NUM_RUNS },
    );
    // Most runs must both serve and move the key, or the property says little.
    assert.ok(moved > NUM_RUNS / 2, `only ${moved} runs served and moved the key`);
  });

  it("can fail when clocks drift beyond ρ: fast-check finds an overlap", () => {
    const result = fc.check(
      fc.property(scenarioArb((rho) => 3 * rho + 0.05), (scenario) => overlapMs(simulate(scenario)) <= TOLERANCE_MS),
      { numRuns: NUM_RUNS, seed: 5 },
    );
    assert.equal(result.failed, true, "a drift of 3ρ + 5% should let some worker outlive its lease");
    const [scenario] = result.counterexample ?? [];
    assert.ok(scenario !== undefined && overlapMs(simulate(scenario)) > TOLERANCE_MS, "the counterexample overlaps");
  });

  it("can fail when clocks drift beyond ρ: a constructed overlap", () => {
    // ρ = 1%, L = 1000 ms. The worker's clock runs at 0.9, the leader's at 1.1. The renewal is sent,
    // received and answered at true 0: the worker serves until its clock reads 990, true 1100; the
    // leader expires it when its clock reads 1010, true ~918.
    const scenario: Scenario = {
      leaseMs: 1_000,
      clockDriftMax: 0.01,
      marginShare: 0,
      worker: { rate: 0.9, offset: 0 },
      leaders: [
        { rate: 1.1, offset: 0 },
        { rate: 1, offset: 0 },
      ],
      renewals: [{ gapMs: 0, upMs: 0, upLost: false, quorumMs: 0, downMs: 0, downLost: false }],
      drainAt: null,
      failoverAt: null,
    };
    const outcome = simulate(scenario);
    assert.ok(Math.abs(outcome.servedUntil - 1_100) < 1e-9, `served until ${outcome.servedUntil}, not 1100`);
    assert.equal(outcome.moves.length, 1);
    assert.ok(Math.abs(outcome.moves[0]! - 1_010 / 1.1) < 1e-9, `expired at ${outcome.moves[0]}, not 1010/1.1`);
    assert.ok(overlapMs(outcome) > 180, `overlap ${overlapMs(outcome)} ms`);
    // With the same scenario inside the bound the worker stops first.
    const within = simulate({ ...scenario, worker: { rate: 0.99, offset: 0 }, leaders: [{ rate: 1.01, offset: 0 }, { rate: 1, offset: 0 }] });
    assert.ok(overlapMs(within) <= TOLERANCE_MS, `overlap ${overlapMs(within)} ms within the bound`);
  });
});
