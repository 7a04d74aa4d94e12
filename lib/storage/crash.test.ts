/**
 * The crash test of the file WAL (issue #6): a child process (crash-child.ts) appends to a
 * {@link FileStorage} and is killed with SIGKILL at a random moment, over and over on the same
 * directories. After every kill this process opens the directory (taking over the dead child's
 * lock), and checks that every write the child reported acknowledged is there, that the log is a
 * consistent prefix of what the child wrote, and that it is the very state the next child loads.
 *
 * Options (environment): `ORRERY_CRASH_KILLS` (default 200) kills in all, `ORRERY_CRASH_LANES`
 * (default 4) directories worked on in parallel, `ORRERY_CRASH_SEED` to replay the choices of a
 * failed run (the kill timing itself cannot be replayed). Every failure names seed, lane, iteration
 * and directory; the directories of a failed run are kept for inspection.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import seedrandom from "seedrandom";
import type { RestoredState } from "../raft/raft.ts";
import {
  CRASH_BATCH_ENTRIES_MAX,
  CRASH_MEMBER,
  CRASH_SEGMENT_BYTES_MAX,
  crashEntryData,
  crashLastIndex,
  crashSnapshotData,
} from "./crash-child.ts";
import { FileStorage } from "./file.ts";

const KILLS = Number(process.env.ORRERY_CRASH_KILLS ?? 200);
const LANES = Number(process.env.ORRERY_CRASH_LANES ?? 4);
const SEED = process.env.ORRERY_CRASH_SEED ?? String(Math.floor(Math.random() * 2 ** 31));
const CHILD_PATH = join(import.meta.dirname, "crash-child.ts");
/** A child that has not been killed by then is killed and the test fails; generous for slow CI. */
const CHILD_TIMEOUT_MS = 60_000;
/** The kill comes after this many acknowledged appends at most (or after a delay, see planKill). */
const KILL_ACKS_MAX = 30;
const KILL_DELAY_MS_MAX = 20;

const dirs: string[] = [];
let keepDirs = false;
/** Children not yet seen to exit; a test that fails or times out must not leave them running. */
const running = new Set<ChildProcess>();
after(async () => {
  await Promise.all([...running].map(killAndWait));
  if (keepDirs) return;
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** SIGKILLs `child` and waits (boundedly: a SIGKILL cannot be ignored) for it to be gone. */
async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGKILL");
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([gone, new Promise<void>((resolve) => (timer = setTimeout(resolve, 10_000)))]);
  clearTimeout(timer);
}

/** When to kill the child: on its n-th acknowledgement, or a delay after it is ready. */
type KillPlan = { readonly kind: "acks"; readonly acks: number } | { readonly kind: "delay"; readonly delayMs: number };

interface ChildRun {
  readonly pid: number;
  readonly lines: readonly string[];
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/** What the child reported, parsed. */
interface Reported {
  readonly readyLastIndex: number;
  readonly readyTerm: number;
  readonly acks: readonly { readonly lastIndex: number; readonly term: number }[];
  readonly snapshots: readonly { readonly index: number; readonly term: number }[];
}

/** One directory, crashed into again and again, and what this process knows of its log. */
interface Lane {
  readonly id: number;
  readonly dir: string;
  readonly random: () => number;
  /** The term of every index learned from the child's reports or a recovery (pruned below the snapshot). */
  readonly termOf: Map<number, number>;
  ackedLastIndex: number;
  ackedTerm: number;
  ackedSnapshotIndex: number;
  /** What the last recovery in this process found; the next child must load exactly that. */
  recoveredLastIndex: number;
  recoveredTerm: number;
}

const stats = {
  kills: 0,
  killsOnAck: 0,
  killsOnDelay: 0,
  acks: 0,
  snapshotsAcked: 0,
  /** Kills that left a torn record, cut by recovery (recovery.tailCut). */
  tornTails: 0,
  /** Kills after an append's write, before its acknowledgement was printed: more recovered than acked. */
  unackedWritesRecovered: 0,
  /** Kills during a saveSnapshot, between writing snapshot.tmp and renaming it. */
  snapshotTmpLeft: 0,
  /** Kills between creating a segment and writing its first record. */
  emptySegmentLeft: 0,
  segmentsMax: 0,
};

function randomInt(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

function planKill(random: () => number): KillPlan {
  if (random() < 0.7) return { kind: "acks", acks: randomInt(random, 1, KILL_ACKS_MAX) };
  return { kind: "delay", delayMs: randomInt(random, 0, KILL_DELAY_MS_MAX) };
}

/** Runs the child until the plan says to kill it (SIGKILL), and collects its complete stdout lines. */
function runChild(dir: string, seed: string, plan: KillPlan): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", CHILD_PATH, dir, seed], { stdio: ["ignore", "pipe", "pipe"] });
    running.add(child);
    child.once("exit", () => running.delete(child));
    const lines: string[] = [];
    let partial = "";
    let stderr = "";
    let acks = 0;
    let killed = false;
    let timedOut = false;
    let delay: NodeJS.Timeout | undefined;
    const kill = () => {
      if (killed) return;
      killed = true;
      child.kill("SIGKILL");
    };
    const timeout = setTimeout(() => {
      timedOut = true;
      kill();
    }, CHILD_TIMEOUT_MS);
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop() as string;
      for (const line of parts) {
        lines.push(line);
        if (line.startsWith("ready ") && plan.kind === "delay") delay = setTimeout(kill, plan.delayMs);
        if (line.startsWith("acked ")) acks += 1;
        if (plan.kind === "acks" && acks >= plan.acks) kill();
      }
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    // `close` comes after the exit and after the last of stdout is read.
    child.on("close", (code, signal) => {
      clearTimeout(timeout);
      clearTimeout(delay);
      resolve({ pid: child.pid as number, lines, code, signal, stderr, timedOut });
    });
  });
}

function parseLines(lines: readonly string[], where: string): Reported {
  const first = /^ready (\d+) (\d+)$/.exec(lines[0] ?? "");
  assert.ok(first !== null, `${where}: the child's first line is not "ready": ${JSON.stringify(lines[0])}`);
  const acks: { lastIndex: number; term: number }[] = [];
  const snapshots: { index: number; term: number }[] = [];
  for (const line of lines.slice(1)) {
    const match = /^(acked|snapshot) (\d+) (\d+)$/.exec(line);
    assert.ok(match !== null, `${where}: an unexpected line from the child: ${JSON.stringify(line)}`);
    const [, kind, a, b] = match;
    if (kind === "acked") acks.push({ lastIndex: Number(a), term: Number(b) });
    else snapshots.push({ index: Number(a), term: Number(b) });
  }
  return { readyLastIndex: Number(first[1]), readyTerm: Number(first[2]), acks, snapshots };
}

/** Records that `index` has `term`, failing if it was known with another. */
function learnTerm(lane: Lane, index: number, term: number, where: string): void {
  const known = lane.termOf.get(index);
  assert.ok(known === undefined || known === term, `${where}: index ${index} has term ${term}, earlier ${known}`);
  lane.termOf.set(index, term);
}

/** Takes in what the child acknowledged; the child must have started from the last recovered state. */
function absorb(lane: Lane, reported: Reported, where: string): void {
  assert.equal(reported.readyLastIndex, lane.recoveredLastIndex, `${where}: the child loaded another last index than this process recovered`);
  assert.equal(reported.readyTerm, lane.recoveredTerm, `${where}: the child loaded another term than this process recovered`);
  let previous = reported.readyLastIndex;
  for (const ack of reported.acks) {
    assert.ok(ack.lastIndex >= previous && ack.lastIndex - previous <= CRASH_BATCH_ENTRIES_MAX, `${where}: ack of ${ack.lastIndex} after ${previous}`);
    assert.ok(ack.term >= lane.ackedTerm, `${where}: acked term ${ack.term} after ${lane.ackedTerm}`);
    for (let index = previous + 1; index <= ack.lastIndex; index += 1) learnTerm(lane, index, ack.term, where);
    previous = ack.lastIndex;
    lane.ackedLastIndex = ack.lastIndex;
    lane.ackedTerm = ack.term;
  }
  for (const snapshot of reported.snapshots) {
    assert.ok(snapshot.index <= lane.ackedLastIndex, `${where}: a snapshot at ${snapshot.index}, beyond the acked ${lane.ackedLastIndex}`);
    assert.equal(lane.termOf.get(snapshot.index), snapshot.term, `${where}: the snapshot at ${snapshot.index} has another term`);
    lane.ackedSnapshotIndex = Math.max(lane.ackedSnapshotIndex, snapshot.index);
  }
  stats.acks += reported.acks.length;
  stats.snapshotsAcked += reported.snapshots.length;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

/** The snapshot is at least the acked one, with the right term and data. Returns its index and term. */
function checkSnapshot(lane: Lane, state: RestoredState, where: string): { index: number; term: number } {
  const snapshot = state.snapshot;
  if (snapshot === undefined) {
    assert.equal(lane.ackedSnapshotIndex, 0, `${where}: the acked snapshot at ${lane.ackedSnapshotIndex} is gone`);
    return { index: 0, term: 0 };
  }
  assert.ok(snapshot.index >= lane.ackedSnapshotIndex, `${where}: snapshot at ${snapshot.index}, but one at ${lane.ackedSnapshotIndex} was acked`);
  assert.equal(snapshot.term, lane.termOf.get(snapshot.index), `${where}: the snapshot's term is not its index's`);
  assert.ok(sameBytes(snapshot.data, crashSnapshotData(snapshot.index)), `${where}: the snapshot's data`);
  assert.deepEqual(snapshot.config, { voters: [CRASH_MEMBER], outgoing: [], learners: [] }, `${where}: the snapshot's config`);
  assert.equal(snapshot.origin, CRASH_MEMBER, `${where}: the snapshot's origin`);
  return { index: snapshot.index, term: snapshot.term };
}

/** The entries follow the snapshot one by one, terms never decrease, data is what the child wrote. */
function checkEntries(lane: Lane, state: RestoredState, base: { index: number; term: number }, where: string): void {
  let termBefore = base.term;
  state.entries.forEach((entry, i) => {
    const at = `${where}: entry ${i} (index ${entry.index})`;
    assert.equal(entry.index, base.index + 1 + i, `${at}: not consecutive after the snapshot at ${base.index}`);
    assert.ok(entry.term >= termBefore, `${at}: term ${entry.term} after ${termBefore}`);
    assert.equal(entry.type, "normal", `${at}: type`);
    assert.ok(sameBytes(entry.data, crashEntryData(entry.index)), `${at}: data ${Buffer.from(entry.data).toString()}`);
    learnTerm(lane, entry.index, entry.term, at);
    termBefore = entry.term;
  });
}

/** Everything acked survived and the recovered state is consistent; then it becomes the lane's. */
function checkRecovered(lane: Lane, state: RestoredState, where: string): void {
  const snapshot = checkSnapshot(lane, state, where);
  checkEntries(lane, state, snapshot, where);
  const lastIndex = crashLastIndex(state);
  const lastTerm = state.entries[state.entries.length - 1]?.term ?? snapshot.term;
  assert.ok(lastIndex >= lane.ackedLastIndex, `${where}: acked entries lost: acked up to ${lane.ackedLastIndex}, recovered up to ${lastIndex}`);
  assert.ok(lastIndex >= lane.recoveredLastIndex, `${where}: the log shrank from ${lane.recoveredLastIndex} to ${lastIndex}`);
  const { hardState } = state;
  assert.ok(hardState.term >= lane.ackedTerm, `${where}: hard state term ${hardState.term}, but ${lane.ackedTerm} was acked`);
  assert.ok(hardState.term >= lane.recoveredTerm, `${where}: the term went back from ${lane.recoveredTerm} to ${hardState.term}`);
  assert.ok(hardState.term >= lastTerm, `${where}: hard state term ${hardState.term} below the log's ${lastTerm}`);
  if (hardState.term > 0) assert.equal(hardState.vote, CRASH_MEMBER, `${where}: the vote`);
  assert.ok(hardState.commit <= lastIndex, `${where}: commit ${hardState.commit} beyond the log's end ${lastIndex}`);
  if (lastIndex > lane.ackedLastIndex) stats.unackedWritesRecovered += 1;
  for (const index of lane.termOf.keys()) if (index < snapshot.index) lane.termOf.delete(index);
  lane.recoveredLastIndex = lastIndex;
  lane.recoveredTerm = hardState.term;
}

/** Notes what the kill left behind, before recovery tidies it. */
async function observeLeftovers(dir: string): Promise<void> {
  const names = await readdir(dir);
  const segments = names.filter((name) => name.startsWith("wal-")).sort();
  stats.segmentsMax = Math.max(stats.segmentsMax, segments.length);
  if (names.includes("snapshot.tmp")) stats.snapshotTmpLeft += 1;
  const last = segments[segments.length - 1];
  if (last !== undefined && (await stat(join(dir, last))).size === 0) stats.emptySegmentLeft += 1;
}

async function crashOnce(lane: Lane, iteration: number): Promise<void> {
  const childSeed = `${SEED}-${lane.id}-${iteration}`;
  const where = `seed ${SEED} lane ${lane.id} iteration ${iteration} (child seed ${childSeed}, dir ${lane.dir})`;
  const plan = planKill(lane.random);
  const run = await runChild(lane.dir, childSeed, plan);
  assert.ok(!run.timedOut, `${where}: the child was not killed within ${CHILD_TIMEOUT_MS} ms; stderr: ${run.stderr}`);
  assert.equal(run.signal, "SIGKILL", `${where}: the child ended by itself with code ${run.code}; stderr: ${run.stderr}`);
  stats.kills += 1;
  if (plan.kind === "acks") stats.killsOnAck += 1;
  else stats.killsOnDelay += 1;
  absorb(lane, parseLines(run.lines, where), where);
  // The dead child still holds the lock; the open below must take it over.
  assert.equal((await readFile(join(lane.dir, "LOCK"), "utf8")).trim(), String(run.pid), `${where}: the lock is not the child's`);
  await observeLeftovers(lane.dir);
  const storage = await FileStorage.open(lane.dir, { segmentBytesMax: CRASH_SEGMENT_BYTES_MAX });
  try {
    assert.equal((await readFile(join(lane.dir, "LOCK"), "utf8")).trim(), String(process.pid), `${where}: the lock was not taken over`);
    if (storage.recovery.tailCut !== null) stats.tornTails += 1;
    checkRecovered(lane, await storage.load(), where);
  } finally {
    await storage.close();
  }
}

async function runLane(id: number, iterations: number, failed: { value: boolean }): Promise<Lane> {
  const dir = await mkdtemp(join(tmpdir(), "orrery-crash-"));
  dirs.push(dir);
  const lane: Lane = {
    id,
    dir,
    random: seedrandom(`crash-${SEED}-lane-${id}`),
    termOf: new Map(),
    ackedLastIndex: 0,
    ackedTerm: 0,
    ackedSnapshotIndex: 0,
    recoveredLastIndex: 0,
    recoveredTerm: 0,
  };
  for (let iteration = 0; iteration < iterations && !failed.value; iteration += 1) {
    try {
      await crashOnce(lane, iteration);
    } catch (error) {
      failed.value = true;
      throw error;
    }
  }
  return lane;
}

// It spawns hundreds of processes: a hang fails here, naming the suite, well before the run's timeout.
describe("FileStorage crash test", { timeout: 720_000 }, () => {
  it(`keeps every acknowledged write across ${KILLS} SIGKILLs of a writing process`, { timeout: 600_000 }, async (t) => {
    assert.ok(Number.isSafeInteger(KILLS) && KILLS >= 1, "ORRERY_CRASH_KILLS is a positive integer");
    assert.ok(Number.isSafeInteger(LANES) && LANES >= 1, "ORRERY_CRASH_LANES is a positive integer");
    const startedMs = Date.now();
    const failed = { value: false };
    const lanes = Array.from({ length: LANES }, (_, id) => runLane(id, Math.floor(KILLS / LANES) + (id < KILLS % LANES ? 1 : 0), failed));
    const results = await Promise.allSettled(lanes);
    const rejected = results.find((result) => result.status === "rejected");
    if (rejected !== undefined) {
      keepDirs = true;
      throw (rejected as PromiseRejectedResult).reason;
    }
    const finished = results.map((result) => (result as PromiseFulfilledResult<Lane>).value);
    t.diagnostic(`seed ${SEED}, ${LANES} lanes, ${((Date.now() - startedMs) / 1000).toFixed(1)} s`);
    t.diagnostic(JSON.stringify(stats));
    t.diagnostic(`last index per lane: ${finished.map((lane) => lane.recoveredLastIndex).join(", ")}`);
    assert.equal(stats.kills, KILLS);
  });
});
