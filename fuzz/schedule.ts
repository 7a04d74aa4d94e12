/**
 * Fault schedules as fast-check arbitraries. The simulator draws its own faults from the seed, but
 * a drawn fault cannot shrink; here the schedule is an explicit value, so a failing run shrinks to
 * a short list of cuts, heals, crashes and restarts, and is saved as a replay file that
 * `orrery sim --replay FILE` runs again.
 */
import { writeFileSync } from "node:fs";
import fc from "fast-check";
import type { ReplayFile } from "../sim/replay.ts";
import { MEMBER_COUNTS, drawOptions, type SimOptions } from "../sim/options.ts";
import { runSimulation, type FaultEvent, type SimResult } from "../sim/simulator.ts";

/** Most events in one schedule; a crash and its restart count as two. */
export const SCHEDULE_EVENTS_MAX = 30;

/** Shortest safety phase a fuzzed run has, in ticks; schedules are drawn within it. */
export const RUN_SAFETY_TICKS_MIN = 600;

/** Longest safety phase a fuzzed run has, in ticks; short, so that a run takes a fraction of a second. */
export const RUN_SAFETY_TICKS_MAX = 1500;

/** Longest time a scheduled crash keeps a member down before its restart. */
export const CRASH_DOWN_MS_MAX = 3000;

/** One fuzzed run: a seed (network, clocks, workload), a cluster size, a safety length and its faults. */
export interface ScheduledRun {
  readonly seed: number;
  readonly members: number;
  readonly safetyTicks: number;
  /** Sorted by `atMs`; every time lies within the safety phase. */
  readonly schedule: readonly FaultEvent[];
}

/** The name of member `index` (0-based), as the simulator names them. */
function memberId(index: number): string {
  return `n${index + 1}`;
}

/** Every directed link between a member of `left` and a member of `right`, both ways. */
function linksBetween(left: readonly number[], right: readonly number[]): [string, string][] {
  const links: [string, string][] = [];
  for (const a of left) {
    for (const b of right) links.push([memberId(a), memberId(b)], [memberId(b), memberId(a)]);
  }
  return links;
}

/** Splits `0..members-1` by a bit mask: members whose bit is set, and the rest. */
function split(members: number, mask: number, skip: number = -1): [number[], number[]] {
  const inside: number[] = [];
  const outside: number[] = [];
  for (let i = 0; i < members; i += 1) {
    if (i === skip) continue;
    if ((mask >> i) & 1) inside.push(i);
    else outside.push(i);
  }
  return [inside, outside];
}

/**
 * The links a cut removes, in the shapes the simulator's own partitions take: two halves that
 * cannot talk, one member isolated from all others, one link cut in one direction only, or two
 * sides joined only through a bridge member that talks to both.
 */
function arbitraryCutLinks(members: number): fc.Arbitrary<[string, string][]> {
  const member = fc.nat({ max: members - 1 });
  // A mask in [1, 2^members - 2] is a proper, non-empty subset: one side of the halves.
  const halves = fc.integer({ min: 1, max: 2 ** members - 2 }).map((mask) => {
    const [left, right] = split(members, mask);
    return linksBetween(left, right);
  });
  const isolate = member.map((victim) => {
    const others = Array.from({ length: members }, (_, i) => i).filter((i) => i !== victim);
    return linksBetween([victim], others);
  });
  const oneWay = fc
    .tuple(member, fc.nat({ max: members - 2 }))
    .map(([from, offset]): [string, string][] => {
      const to = (from + 1 + offset) % members;
      return [[memberId(from), memberId(to)]];
    });
  const bridge = fc.tuple(member, fc.nat({ max: 2 ** members - 1 })).map(([bridgeMember, mask]) => {
    const [left, right] = split(members, mask, bridgeMember);
    // With one side empty this degenerates to no cut at all; move one member across instead.
    if (left.length === 0) left.push(right.shift() as number);
    else if (right.length === 0) right.push(left.pop() as number);
    return linksBetween(left, right);
  });
  return fc.oneof(halves, isolate, oneWay, bridge);
}

/**
 * A fault schedule for a cluster of `members` (named `n1..nN`) whose safety phase lasts
 * `safetyMs`: a sorted array of at most `eventsMax` {@link FaultEvent}s, every `atMs` in
 * `[0, safetyMs)`. Cuts replace one another (the simulator keeps one partition at a time) until a
 * heal; every crash is followed by the restart of the same member up to
 * {@link CRASH_DOWN_MS_MAX} later (a restart past the safety phase is left to the liveness phase,
 * which restarts everyone). Shrinking drops events, moves them earlier and simplifies cuts.
 *
 * @param eventsMax - @defaultValue {@link SCHEDULE_EVENTS_MAX}
 */
export function arbitraryFaultSchedule(
  members: number,
  safetyMs: number,
  eventsMax: number = SCHEDULE_EVENTS_MAX,
): fc.Arbitrary<FaultEvent[]> {
  if (!Number.isInteger(members) || members < 2) throw new RangeError(`members must be an integer >= 2, got ${members}`);
  if (!(safetyMs >= 1)) throw new RangeError(`safetyMs must be at least 1, got ${safetyMs}`);
  const atMs = fc.integer({ min: 0, max: Math.floor(safetyMs) - 1 });
  const cut = fc
    .record({ atMs, links: arbitraryCutLinks(members) })
    .map(({ atMs, links }): FaultEvent[] => [{ atMs, kind: "cut", links }]);
  const heal = atMs.map((at): FaultEvent[] => [{ atMs: at, kind: "heal" }]);
  const crash = fc
    .record({ atMs, member: fc.nat({ max: members - 1 }), downMs: fc.integer({ min: 1, max: CRASH_DOWN_MS_MAX }) })
    .map(({ atMs, member, downMs }): FaultEvent[] => {
      const restartAtMs = Math.min(atMs + downMs, Math.floor(safetyMs) - 1);
      return [
        { atMs, kind: "crash", member: memberId(member) },
        { atMs: restartAtMs, kind: "restart", member: memberId(member) },
      ];
    });
  // Each group is one or two events, so half as many groups keeps within eventsMax.
  const groups = fc.array(fc.oneof(cut, heal, crash), { maxLength: Math.floor(eventsMax / 2) });
  return groups.map((list) => {
    const events = list.flat();
    // Stable: a crash and a restart at the same instant keep their order.
    return events.sort((a, b) => a.atMs - b.atMs);
  });
}

/**
 * A fuzzed run: a seed, 3, 5 or 7 members, a short safety phase of
 * [{@link RUN_SAFETY_TICKS_MIN}, {@link RUN_SAFETY_TICKS_MAX}] ticks, and a fault schedule drawn
 * within the shortest safety phase so that every scheduled fault happens.
 */
export function arbitraryRun(): fc.Arbitrary<ScheduledRun> {
  // Every seed draws the same tick length; any seed's options tell it.
  const tickMs = drawOptions(0).tickMs;
  const scheduleMs = RUN_SAFETY_TICKS_MIN * tickMs;
  return fc.oneof(
    ...MEMBER_COUNTS.map((members) =>
      fc.record({
        seed: fc.nat({ max: 2 ** 31 - 1 }),
        members: fc.constant<number>(members),
        safetyTicks: fc.integer({ min: RUN_SAFETY_TICKS_MIN, max: RUN_SAFETY_TICKS_MAX }),
        schedule: arbitraryFaultSchedule(members, scheduleMs),
      }),
    ),
  );
}

/** The options a {@link ScheduledRun} runs with: drawn from its seed, with its members and length. */
export function runOptions(run: ScheduledRun): SimOptions {
  return drawOptions(run.seed, { members: run.members, safetyTicks: run.safetyTicks });
}

/**
 * Runs `run` in the simulator: the options drawn from its seed (see {@link runOptions}), and
 * exactly its schedule of faults instead of drawn partitions and crashes.
 */
export function runScheduled(run: ScheduledRun): Promise<SimResult> {
  return runSimulation(run.seed, { options: runOptions(run), schedule: run.schedule });
}

/**
 * Writes a replay file for `orrery sim --replay FILE`: the seed, every option and, when given, the
 * fault schedule. Returns `path`.
 */
export function saveReplay(
  path: string,
  seed: number,
  options: SimOptions,
  schedule?: readonly FaultEvent[],
): string {
  const file: ReplayFile = { seed, options, ...(schedule !== undefined ? { schedule } : {}) };
  writeFileSync(path, `${JSON.stringify(file, null, 2)}\n`);
  return path;
}
