/**
 * Randomized in-memory clusters: 3 and 5 members under message loss, delay, reordering,
 * duplication, partitions that isolate the leader, and crashes, over many seeds. Asserts Raft's
 * safety properties throughout and that commits resume once the network heals.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import seedrandom from "seedrandom";
import type { Entry, NodeId } from "./messages.ts";
import { TestCluster, bytes } from "./testing.ts";

const SEEDS = Number(process.env.ORRERY_CLUSTER_SEEDS ?? 50);
const TICKS = Number(process.env.ORRERY_CLUSTER_TICKS ?? 20_000);
const HEAL_TICKS_MAX = 2_000;

/** Every index ever applied anywhere, with what was applied there: must be one entry per index. */
class AppliedRecord {
  private readonly byIndex = new Map<number, string>();
  private readonly seen = new Map<NodeId, number>();

  check(cluster: TestCluster): void {
    for (const id of cluster.ids) {
      const applied = cluster.applied.get(id) as Entry[];
      // A restarted member re-applies from the beginning; check only what is new.
      const from = applied.length < (this.seen.get(id) ?? 0) ? 0 : (this.seen.get(id) ?? 0);
      for (let i = from; i < applied.length; i += 1) {
        const entry = applied[i] as Entry;
        assert.equal(entry.index, i + 1, `${id} applies consecutive indexes`);
        const key = `${entry.term}:${Buffer.from(entry.data).toString("hex")}`;
        const known = this.byIndex.get(entry.index);
        if (known === undefined) this.byIndex.set(entry.index, key);
        else assert.equal(key, known, `state machine safety: ${id} applied another entry at ${entry.index}`);
      }
      this.seen.set(id, applied.length);
    }
  }

  get highest(): number {
    return this.byIndex.size;
  }
}

/** Log matching: if two logs hold an entry with the same index and term, all before it are equal. */
function checkLogMatching(cluster: TestCluster): void {
  const logs = cluster.ids.map((id) => cluster.disks.get(id)?.entries ?? []);
  for (let a = 0; a < logs.length; a += 1) {
    for (let b = a + 1; b < logs.length; b += 1) {
      const left = logs[a] as Entry[];
      const right = logs[b] as Entry[];
      const common = Math.min(left.length, right.length);
      let lastMatch = -1;
      for (let i = common - 1; i >= 0; i -= 1) {
        if ((left[i] as Entry).term === (right[i] as Entry).term) {
          lastMatch = i;
          break;
        }
      }
      for (let i = 0; i <= lastMatch; i += 1) {
        const l = left[i] as Entry;
        const r = right[i] as Entry;
        assert.equal(l.term, r.term, `log matching at index ${i + 1}`);
        assert.deepEqual(l.data, r.data, `log matching at index ${i + 1}`);
      }
    }
  }
}

/** Term monotonicity: no member's persisted term ever decreases. */
function checkTerms(cluster: TestCluster, lastTerms: Map<NodeId, number>): void {
  for (const id of cluster.ids) {
    const term = cluster.disks.get(id)?.hardState.term ?? 0;
    assert.ok(term >= (lastTerms.get(id) ?? 0), `${id}'s term never decreases`);
    lastTerms.set(id, term);
  }
}

interface RunResult {
  readonly committedBeforeHeal: number;
  readonly committedAfterHeal: number;
  readonly elections: number;
}

function runSeed(seed: number, size: 3 | 5): RunResult {
  const random = seedrandom(`cluster-${seed}`);
  const ids = Array.from({ length: size }, (_, i) => `n${i + 1}`);
  const cluster = new TestCluster(ids, {
    random,
    config: { electionTicks: 10, heartbeatTicks: 2, inflightMessagesMax: 8, messageBytesMax: 256 },
  });
  const record = new AppliedRecord();
  const terms = new Map<NodeId, number>();
  let proposals = 0;

  for (let tick = 0; tick < TICKS; tick += 1) {
    if (tick % 250 === 0) changeFaults(cluster, random);
    if (random() < 0.3) {
      const leader = cluster.leader();
      if (leader !== null) tryPropose(cluster, leader, `s${seed}-p${proposals++}`);
    }
    cluster.run(1);
    if (tick % 100 === 0) {
      record.check(cluster);
      checkTerms(cluster, terms);
    }
    if (tick % 1000 === 0) checkLogMatching(cluster);
  }
  record.check(cluster);
  checkLogMatching(cluster);
  const committedBeforeHeal = record.highest;

  // Liveness: heal everything and require a new commit that reaches every member.
  cluster.heal();
  cluster.faults = { lossRate: 0, delayTicksMax: 0, duplicateRate: 0 };
  for (const id of ids) if (!cluster.isUp(id)) cluster.restart(id);
  const leader = cluster.electLeader(HEAL_TICKS_MAX);
  const marker = `s${seed}-after-heal`;
  const { index } = cluster.node(leader).propose(bytes(marker));
  let converged = false;
  for (let tick = 0; tick < HEAL_TICKS_MAX && !converged; tick += 1) {
    cluster.run(1);
    converged = ids.every((id) => (cluster.applied.get(id)?.length ?? 0) >= index);
  }
  if (!converged) for (const id of ids) console.log(id, JSON.stringify(cluster.node(id).status()), cluster.applied.get(id)?.length, cluster.disks.get(id)?.entries.length);
  assert.ok(converged, `seed ${seed}: every member applies index ${index} after healing`);
  record.check(cluster);
  checkLogMatching(cluster);
  return {
    committedBeforeHeal,
    committedAfterHeal: record.highest,
    elections: cluster.leaderOfTerm.size,
  };
}

function tryPropose(cluster: TestCluster, leader: NodeId, value: string): void {
  try {
    cluster.node(leader).propose(bytes(value));
  } catch (error) {
    // A leader may refuse while transferring or over its byte limit; that is a typed outcome.
    assert.ok(error instanceof Error && "code" in error, "refusals are typed errors");
  }
}

function changeFaults(cluster: TestCluster, random: () => number): void {
  cluster.heal();
  for (const id of cluster.ids) if (!cluster.isUp(id)) cluster.restart(id);
  cluster.faults = {
    lossRate: random() < 0.5 ? random() * 0.2 : 0,
    delayTicksMax: Math.floor(random() * 6),
    duplicateRate: random() < 0.3 ? random() * 0.05 : 0,
  };
  const roll = random();
  const leader = cluster.leader();
  if (roll < 0.25 && leader !== null) {
    cluster.isolate(leader);
  } else if (roll < 0.45) {
    const shuffled = [...cluster.ids].sort(() => random() - 0.5);
    const half = 1 + Math.floor(random() * (shuffled.length - 1));
    for (const a of shuffled.slice(0, half)) for (const b of shuffled.slice(half)) cluster.cut(a, b);
  } else if (roll < 0.55) {
    const [from, to] = [...cluster.ids].sort(() => random() - 0.5);
    cluster.cutOneWay(from as NodeId, to as NodeId);
  } else if (roll < 0.65) {
    const victim = cluster.ids[Math.floor(random() * cluster.ids.length)] as NodeId;
    cluster.crash(victim);
  }
}

describe("randomized clusters", () => {
  for (let seed = 1; seed <= SEEDS; seed += 1) {
    const size = seed % 2 === 0 ? 5 : 3;
    it(`seed ${seed}, ${size} members: safe under faults, live after healing`, () => {
      const result = runSeed(seed, size);
      assert.ok(result.committedBeforeHeal > 0, "entries commit despite the faults");
      assert.ok(result.committedAfterHeal > result.committedBeforeHeal, "commits resume");
      assert.ok(result.elections >= 1);
    });
  }
});
