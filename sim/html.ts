/**
 * A simulator run as one self-contained HTML page: a space-time (Lamport) diagram with members as
 * vertical lanes and time flowing downward, so that a failure can be seen, not only read.
 *
 * The diagram is SVG rendered here, into the string, so the page shows everything without script;
 * a small inline script adds hover details, a filter per message type and zoom. Nothing is fetched:
 * no external stylesheet, font, script or image. Every string that comes from the trace is escaped,
 * and the output depends only on the input (no clock, no randomness), so the same run gives the
 * same bytes.
 */
import type { TraceEvent } from "./history.ts";

/** How to render a run. */
export interface SpaceTimeOptions {
  /** The page heading and `<title>`. */
  readonly title: string;
  /**
   * The cluster's members, in lane order (left to right). Any other id the trace mentions (clients,
   * or members not listed) gets a lane to the right, in order of first appearance.
   */
  readonly members: readonly string[];
  /** Seed, options and statistics of the run, shown in a table in the header, in key order. */
  readonly summary?: Readonly<Record<string, string | number | boolean>>;
  /**
   * Draw at most this many trace events. A longer trace is cut to a window of this many events
   * around the first violation (most of the window before it), or, with no violation, to its last
   * events; the page says so. Roles, crashes and partitions in effect when the window opens are
   * carried into it.
   * @defaultValue {@link SPACE_TIME_EVENTS_MAX_DEFAULT}
   */
  readonly eventsMax?: number;
}

/** The default of {@link SpaceTimeOptions.eventsMax}: enough for a long run, a few MB of HTML. */
export const SPACE_TIME_EVENTS_MAX_DEFAULT = 20_000;

/**
 * Renders `trace` as a complete HTML document (a string) showing a space-time diagram: messages as
 * arrows between lanes (dropped ones end in ×), lanes shaded by role with term labels, crashed
 * intervals hatched, partitions as bands, commits as ticks, phases and violations as lines across.
 * Times in the trace are microseconds of simulated true time; the page shows milliseconds.
 *
 * @throws RangeError when `eventsMax` is not a positive integer or `members` repeats an id.
 */
export function renderSpaceTime(trace: readonly TraceEvent[], options: SpaceTimeOptions): string {
  const eventsMax = options.eventsMax ?? SPACE_TIME_EVENTS_MAX_DEFAULT;
  if (!Number.isSafeInteger(eventsMax) || eventsMax < 1) {
    throw new RangeError(`eventsMax must be a positive integer, got ${String(eventsMax)}`);
  }
  if (new Set(options.members).size !== options.members.length) {
    throw new RangeError("members must not repeat an id");
  }
  const window = chooseWindow(trace, eventsMax);
  const model = buildModel(trace, window, options.members);
  const scale = buildScale(model.timesUs);
  const lanes = layoutLanes(model.laneIds, new Set(options.members));
  const types = orderTypes(model.arrows);
  return renderPage(options, trace, window, model, scale, lanes, types);
}

// ---------------------------------------------------------------------------------------------
// The window of events to draw.

type SendEvent = Extract<TraceEvent, { kind: "send" }>;
type RoleEvent = Extract<TraceEvent, { kind: "role" }>;
type PartitionEvent = Extract<TraceEvent, { kind: "partition" }>;
type ViolationEvent = Extract<TraceEvent, { kind: "violation" }>;

/** Which events are drawn: `trace[start..end)`, and why those. */
interface TraceWindow {
  readonly start: number;
  readonly end: number;
  readonly total: number;
  readonly focus: "all" | "violation" | "tail";
  /** Index in the trace of the first violation, or -1. */
  readonly violationIndex: number;
}

/** Share of a cut window placed before the first violation: the cause comes before the symptom. */
const WINDOW_SHARE_BEFORE_VIOLATION = 0.8;

function chooseWindow(trace: readonly TraceEvent[], eventsMax: number): TraceWindow {
  const total = trace.length;
  const violationIndex = trace.findIndex((event) => event.kind === "violation");
  if (total <= eventsMax) return { start: 0, end: total, total, focus: "all", violationIndex };
  if (violationIndex < 0) {
    return { start: total - eventsMax, end: total, total, focus: "tail", violationIndex };
  }
  const before = Math.floor(eventsMax * WINDOW_SHARE_BEFORE_VIOLATION);
  const start = Math.max(0, Math.min(violationIndex - before, total - eventsMax));
  return { start, end: start + eventsMax, total, focus: "violation", violationIndex };
}

// ---------------------------------------------------------------------------------------------
// The model: what to draw, in trace terms (lanes by id, times in µs).

/** A message copy: sent, then delivered, dropped, or still in flight when the window ends. */
interface Arrow {
  readonly send: SendEvent;
  /** True when the send happened before the window: the arrow starts at the window's top. */
  readonly fromBefore: boolean;
  readonly fate: "deliver" | "drop" | "inflight";
  /** Time of delivery or drop; null while in flight at the end of the trace. */
  readonly fateUs: number | null;
  /** True when the delivery or drop happens after the window: the arrow ends at its bottom. */
  readonly fateAfter: boolean;
  readonly reason: string | null;
}

interface RoleSpan {
  readonly member: string;
  readonly role: RoleEvent["role"];
  readonly term: number;
  readonly leader: string | null;
  readonly fromUs: number;
  readonly toUs: number;
}

/** A label where a member's role or term changes (or, `carried`, its state when the window opens). */
interface RoleMark {
  readonly member: string;
  readonly tUs: number;
  readonly role: RoleEvent["role"];
  readonly term: number;
  readonly leader: string | null;
  readonly carried: boolean;
}

interface CrashSpan {
  readonly member: string;
  readonly fromUs: number;
  readonly toUs: number;
  /** The crash and restart events lie inside the window (else the span is cut by its edge). */
  readonly crashShown: boolean;
  readonly restartShown: boolean;
}

interface PartitionSpan {
  readonly description: string;
  readonly blocked: readonly (readonly [string, string])[];
  readonly sinceUs: number;
  readonly fromUs: number;
  readonly toUs: number;
  readonly healed: boolean;
}

interface Model {
  readonly startUs: number;
  readonly endUs: number;
  /** Every distinct time something is drawn at, ascending. */
  readonly timesUs: readonly number[];
  readonly laneIds: readonly string[];
  /** Ids at either end of client traffic (`client:*` messages). */
  readonly clientIds: ReadonlySet<string>;
  readonly arrows: readonly Arrow[];
  readonly roleSpans: readonly RoleSpan[];
  readonly roleMarks: readonly RoleMark[];
  readonly crashes: readonly CrashSpan[];
  readonly partitions: readonly PartitionSpan[];
  readonly commits: readonly Extract<TraceEvent, { kind: "commit" }>[];
  readonly phases: readonly Extract<TraceEvent, { kind: "phase" }>[];
  readonly violations: readonly ViolationEvent[];
  readonly counts: ReadonlyMap<string, number>;
}

interface OpenRole {
  readonly event: RoleEvent;
  readonly fromUs: number;
}

/** Mutable state while walking the trace up to the window's end. */
interface Walk {
  readonly window: TraceWindow;
  startUs: number;
  readonly roles: Map<string, OpenRole>;
  readonly crashed: Map<string, { fromUs: number; shown: boolean }>;
  partition: { event: PartitionEvent; fromUs: number } | null;
  readonly roleSpans: RoleSpan[];
  readonly roleMarks: RoleMark[];
  readonly crashes: CrashSpan[];
  readonly partitions: PartitionSpan[];
}

function buildModel(
  trace: readonly TraceEvent[],
  window: TraceWindow,
  members: readonly string[],
): Model {
  const shown = trace.slice(window.start, window.end);
  const times = timesOf(shown);
  const startUs = times.reduce((a, b) => Math.min(a, b), times[0] ?? 0);
  const endUs = times.reduce((a, b) => Math.max(a, b), times[0] ?? 0);
  const walk: Walk = {
    window, startUs, roles: new Map(), crashed: new Map(), partition: null,
    roleSpans: [], roleMarks: [], crashes: [], partitions: [],
  };
  for (let i = 0; i < window.end; i += 1) {
    if (i === window.start) carryIntoWindow(walk);
    walkEvent(walk, trace[i] as TraceEvent, i >= window.start);
  }
  if (window.start === window.end) carryIntoWindow(walk);
  closeAll(walk, endUs);
  const arrows = collectArrows(trace, window);
  return {
    startUs, endUs,
    timesUs: [...new Set(times)].sort((a, b) => a - b),
    laneIds: collectLanes(members, shown, arrows, walk),
    clientIds: collectClients(arrows),
    arrows,
    roleSpans: walk.roleSpans, roleMarks: walk.roleMarks, crashes: walk.crashes,
    partitions: walk.partitions,
    commits: shown.filter((e): e is Extract<TraceEvent, { kind: "commit" }> => e.kind === "commit"),
    phases: shown.filter((e): e is Extract<TraceEvent, { kind: "phase" }> => e.kind === "phase"),
    violations: shown.filter((e): e is ViolationEvent => e.kind === "violation"),
    counts: countKinds(shown),
  };
}

function timesOf(events: readonly TraceEvent[]): number[] {
  return events.map((event) => event.t);
}

function countKinds(events: readonly TraceEvent[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const event of events) {
    const key = event.kind === "drop" ? `drop:${event.reason}` : event.kind;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/** State in effect when the window opens starts at its top, marked as carried over. */
function carryIntoWindow(walk: Walk): void {
  for (const [member, open] of walk.roles) {
    walk.roles.set(member, { event: open.event, fromUs: walk.startUs });
    const { role, term, leader } = open.event;
    walk.roleMarks.push({ member, tUs: walk.startUs, role, term, leader, carried: true });
  }
  for (const [member, crash] of walk.crashed) {
    walk.crashed.set(member, { fromUs: walk.startUs, shown: false });
  }
  if (walk.partition !== null) walk.partition = { ...walk.partition, fromUs: walk.startUs };
}

function walkEvent(walk: Walk, event: TraceEvent, inWindow: boolean): void {
  switch (event.kind) {
    case "role": {
      const previous = walk.roles.get(event.member);
      closeRole(walk, event.member, event.t, inWindow);
      walk.roles.set(event.member, { event, fromUs: event.t });
      const changed = previous === undefined || previous.event.role !== event.role ||
        previous.event.term !== event.term;
      if (inWindow && changed) {
        const { member, role, term, leader, t } = event;
        walk.roleMarks.push({ member, tUs: t, role, term, leader, carried: false });
      }
      return;
    }
    case "crash":
      closeRole(walk, event.member, event.t, inWindow);
      walk.roles.delete(event.member);
      if (!walk.crashed.has(event.member)) {
        walk.crashed.set(event.member, { fromUs: event.t, shown: inWindow });
      }
      return;
    case "restart": {
      const crash = walk.crashed.get(event.member);
      walk.crashed.delete(event.member);
      if (inWindow && crash !== undefined) {
        walk.crashes.push({
          member: event.member, fromUs: crash.fromUs, toUs: event.t,
          crashShown: crash.shown, restartShown: true,
        });
      }
      return;
    }
    case "partition":
    case "heal":
      closePartition(walk, event.t, inWindow, event.kind === "heal");
      if (event.kind === "partition") walk.partition = { event, fromUs: event.t };
      return;
    default:
      return;
  }
}

function closeRole(walk: Walk, member: string, toUs: number, inWindow: boolean): void {
  const open = walk.roles.get(member);
  if (open === undefined || !inWindow) return;
  const { role, term, leader } = open.event;
  walk.roleSpans.push({ member, role, term, leader, fromUs: open.fromUs, toUs });
}

function closePartition(walk: Walk, toUs: number, inWindow: boolean, healed: boolean): void {
  const open = walk.partition;
  walk.partition = null;
  if (open === null || !inWindow) return;
  walk.partitions.push({
    description: open.event.description, blocked: open.event.blocked,
    sinceUs: open.event.t, fromUs: open.fromUs, toUs, healed,
  });
}

function closeAll(walk: Walk, endUs: number): void {
  for (const member of [...walk.roles.keys()]) closeRole(walk, member, endUs, true);
  for (const [member, crash] of walk.crashed) {
    walk.crashes.push({
      member, fromUs: crash.fromUs, toUs: endUs, crashShown: crash.shown, restartShown: false,
    });
  }
  closePartition(walk, endUs, true, false);
}

/** One arrow per message copy sent in the window, or sent before it and resolved inside it. */
function collectArrows(trace: readonly TraceEvent[], window: TraceWindow): Arrow[] {
  const sends = new Map<number, { event: SendEvent; index: number }>();
  const fates = new Map<number, { event: TraceEvent & { kind: "deliver" | "drop" }; index: number }>();
  trace.forEach((event, index) => {
    if (event.kind === "send" && index < window.end && !sends.has(event.id)) {
      sends.set(event.id, { event, index });
    } else if ((event.kind === "deliver" || event.kind === "drop") && !fates.has(event.id)) {
      fates.set(event.id, { event, index });
    }
  });
  const arrows: Arrow[] = [];
  for (const [id, send] of sends) {
    const fate = fates.get(id);
    const fromBefore = send.index < window.start;
    if (fromBefore && (fate === undefined || fate.index < window.start || fate.index >= window.end)) {
      continue;
    }
    const fateAfter = fate !== undefined && fate.index >= window.end;
    arrows.push({
      send: send.event,
      fromBefore,
      fate: fate === undefined || fateAfter ? "inflight" : fate.event.kind,
      fateUs: fate === undefined ? null : fate.event.t,
      fateAfter,
      reason: fate?.event.kind === "drop" ? fate.event.reason : null,
    });
  }
  return arrows;
}

/** Members in the given order, then every other id in order of first appearance. */
function collectLanes(
  members: readonly string[],
  shown: readonly TraceEvent[],
  arrows: readonly Arrow[],
  walk: Walk,
): string[] {
  const lanes = new Set<string>(members);
  for (const mark of walk.roleMarks) if (mark.carried) lanes.add(mark.member);
  for (const crash of walk.crashes) lanes.add(crash.member);
  for (const arrow of arrows) {
    if (arrow.fromBefore) lanes.add(arrow.send.from).add(arrow.send.to);
  }
  for (const event of shown) {
    if (event.kind === "send") lanes.add(event.from).add(event.to);
    else if ("member" in event) lanes.add(event.member);
  }
  return [...lanes];
}

function collectClients(arrows: readonly Arrow[]): Set<string> {
  const clients = new Set<string>();
  for (const { send } of arrows) {
    if (send.type.startsWith(CLIENT_TYPE_PREFIX)) clients.add(send.from).add(send.to);
  }
  return clients;
}

// ---------------------------------------------------------------------------------------------
// Time to pixels: linear, except that long quiet gaps are compressed (logarithmically) and marked.

const SCALE = {
  pxPerMsDefault: 4,
  pxPerMsMax: 200,
  pxPerMsMin: 1e-6,
  heightMinPx: 480,
  heightMaxPx: 40_000,
  /** A quiet gap that would be drawn longer than this is compressed. */
  gapPxMax: 90,
  /** Each doubling of a compressed gap beyond `gapPxMax` adds this much. */
  gapPxPerDoubling: 16,
  topPx: 34,
  bottomPx: 48,
  tickSpacingMinPx: 60,
  tickLabelSpacingMinPx: 16,
} as const;

interface TimeScale {
  readonly pxPerMs: number;
  readonly heightPx: number;
  readonly knotsUs: readonly number[];
  readonly knotsPx: readonly number[];
  /** Indexes i whose segment (knot i to i + 1) is compressed. */
  readonly compressed: ReadonlySet<number>;
}

function segmentPx(durationUs: number, pxPerMs: number): number {
  const linearPx = (durationUs / 1000) * pxPerMs;
  if (linearPx <= SCALE.gapPxMax) return linearPx;
  return SCALE.gapPxMax + SCALE.gapPxPerDoubling * Math.log2(linearPx / SCALE.gapPxMax);
}

function spanPx(knotsUs: readonly number[], pxPerMs: number): number {
  let total = 0;
  for (let i = 1; i < knotsUs.length; i += 1) {
    total += segmentPx((knotsUs[i] as number) - (knotsUs[i - 1] as number), pxPerMs);
  }
  return total;
}

/** Starts at a few px per ms and shrinks or grows it until the diagram's height is sensible. */
function choosePxPerMs(knotsUs: readonly number[]): number {
  let pxPerMs: number = SCALE.pxPerMsDefault;
  for (let round = 0; round < 80; round += 1) {
    const heightPx = spanPx(knotsUs, pxPerMs);
    if (heightPx > SCALE.heightMaxPx && pxPerMs > SCALE.pxPerMsMin) {
      pxPerMs = Math.max(SCALE.pxPerMsMin, pxPerMs * Math.min(0.9, SCALE.heightMaxPx / heightPx));
    } else if (heightPx > 0 && heightPx < SCALE.heightMinPx && pxPerMs < SCALE.pxPerMsMax) {
      pxPerMs = Math.min(SCALE.pxPerMsMax, pxPerMs * Math.max(1.1, SCALE.heightMinPx / heightPx));
    } else {
      break;
    }
  }
  return pxPerMs;
}

function buildScale(timesUs: readonly number[]): TimeScale {
  const pxPerMs = choosePxPerMs(timesUs);
  const knotsPx: number[] = [];
  const compressed = new Set<number>();
  let y: number = SCALE.topPx;
  timesUs.forEach((t, i) => {
    if (i > 0) {
      const durationUs = t - (timesUs[i - 1] as number);
      const px = segmentPx(durationUs, pxPerMs);
      if ((durationUs / 1000) * pxPerMs > SCALE.gapPxMax * 1.5) compressed.add(i - 1);
      y += px;
    }
    knotsPx.push(y);
  });
  return { pxPerMs, heightPx: y + SCALE.bottomPx, knotsUs: timesUs, knotsPx, compressed };
}

/** The y of time `tUs`: exact at a knot, interpolated between knots, clamped outside them. */
function yOf(scale: TimeScale, tUs: number): number {
  const { knotsUs, knotsPx } = scale;
  if (knotsUs.length === 0) return SCALE.topPx;
  let low = 0;
  let high = knotsUs.length - 1;
  if (tUs <= (knotsUs[0] as number)) return knotsPx[0] as number;
  if (tUs >= (knotsUs[high] as number)) return knotsPx[high] as number;
  while (high - low > 1) {
    const middle = (low + high) >> 1;
    if ((knotsUs[middle] as number) <= tUs) low = middle;
    else high = middle;
  }
  const t0 = knotsUs[low] as number;
  const t1 = knotsUs[high] as number;
  const y0 = knotsPx[low] as number;
  const y1 = knotsPx[high] as number;
  return y0 + ((tUs - t0) / (t1 - t0)) * (y1 - y0);
}

// ---------------------------------------------------------------------------------------------
// Lanes and message types.

const LAYOUT = {
  axisPx: 86,
  memberLanePx: 150,
  otherLanePx: 110,
  rightPx: 24,
  headerPx: 40,
  laneLabelCharsMax: 18,
  textCharsMax: 180,
} as const;

interface Lane {
  readonly id: string;
  readonly member: boolean;
  readonly leftPx: number;
  readonly widthPx: number;
  readonly centerPx: number;
}

interface Lanes {
  readonly list: readonly Lane[];
  readonly byId: ReadonlyMap<string, Lane>;
  readonly widthPx: number;
}

function layoutLanes(ids: readonly string[], members: ReadonlySet<string>): Lanes {
  const list: Lane[] = [];
  let left: number = LAYOUT.axisPx;
  for (const id of ids) {
    const member = members.has(id);
    const widthPx = member ? LAYOUT.memberLanePx : LAYOUT.otherLanePx;
    list.push({ id, member, leftPx: left, widthPx, centerPx: left + widthPx / 2 });
    left += widthPx;
  }
  return { list, byId: new Map(list.map((lane) => [lane.id, lane])), widthPx: left + LAYOUT.rightPx };
}

/** Raft's message types in a reading order, with colors that pair a request with its response. */
const KNOWN_TYPE_COLORS: readonly (readonly [string, string])[] = [
  ["append", "#1a66cc"],
  ["appendResponse", "#74a9e8"],
  ["heartbeat", "#8c8c8c"],
  ["heartbeatResponse", "#bdbdbd"],
  ["requestPreVote", "#8e44ad"],
  ["preVoteResponse", "#c39bd3"],
  ["requestVote", "#e8710a"],
  ["voteResponse", "#f2b36b"],
  ["timeoutNow", "#a0522d"],
];
const CLIENT_COLORS = ["#188038", "#5bb974", "#0d652d", "#81c995", "#34a853", "#1e4620"];
const OTHER_COLORS = ["#c2185b", "#00838f", "#6d4c41", "#546e7a", "#b08800", "#3949ab"];
const CLIENT_TYPE_PREFIX = "client:";

interface MessageType {
  readonly name: string;
  readonly color: string;
  readonly count: number;
}

interface Types {
  readonly list: readonly MessageType[];
  readonly index: ReadonlyMap<string, number>;
}

function orderTypes(arrows: readonly Arrow[]): Types {
  const counts = new Map<string, number>();
  for (const arrow of arrows) counts.set(arrow.send.type, (counts.get(arrow.send.type) ?? 0) + 1);
  const known = new Map(KNOWN_TYPE_COLORS);
  const list: MessageType[] = [];
  for (const [name, color] of KNOWN_TYPE_COLORS) {
    const count = counts.get(name);
    if (count !== undefined) list.push({ name, color, count });
  }
  const rest = [...counts.keys()].filter((name) => !known.has(name)).sort();
  const clients = rest.filter((name) => name.startsWith(CLIENT_TYPE_PREFIX));
  const others = rest.filter((name) => !name.startsWith(CLIENT_TYPE_PREFIX));
  others.forEach((name, i) => {
    list.push({ name, color: OTHER_COLORS[i % OTHER_COLORS.length] as string, count: counts.get(name) ?? 0 });
  });
  clients.forEach((name, i) => {
    list.push({ name, color: CLIENT_COLORS[i % CLIENT_COLORS.length] as string, count: counts.get(name) ?? 0 });
  });
  return { list, index: new Map(list.map((type, i) => [type.name, i])) };
}

// ---------------------------------------------------------------------------------------------
// Text helpers. Everything from the trace goes through `esc`.

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
};

/** Control characters and lone surrogates, which have no place in an HTML document. */
const UNPRINTABLE =
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Escapes `text` for HTML text and quoted attribute values. */
function esc(text: string): string {
  return String(text).replace(UNPRINTABLE, "\uFFFD").replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);
}

/** Shortens `text` to at most `max` characters, with an ellipsis. */
function clip(text: string, max: number): string {
  const s = String(text);
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/** Microseconds as milliseconds, at most three decimals, no trailing zeros. */
function ms(tUs: number): string {
  return String(Number((tUs / 1000).toFixed(3)));
}

/** A pixel coordinate with one decimal, so the output is compact and stable. */
function px(value: number): string {
  return String(Math.round(value * 10) / 10);
}

// ---------------------------------------------------------------------------------------------
// The SVG layers, back to front.

interface Ctx {
  readonly model: Model;
  readonly scale: TimeScale;
  readonly lanes: Lanes;
  readonly types: Types;
}

function y(ctx: Ctx, tUs: number): number {
  return yOf(ctx.scale, tUs);
}

function laneX(ctx: Ctx, id: string): Lane {
  const lane = ctx.lanes.byId.get(id);
  if (lane === undefined) throw new Error(`no lane for ${id}`);
  return lane;
}

function renderGapsAndGrid(ctx: Ctx): string[] {
  const out: string[] = [];
  const { knotsUs, knotsPx } = ctx.scale;
  const left = LAYOUT.axisPx;
  const width = ctx.lanes.widthPx - LAYOUT.rightPx - left;
  for (const i of [...ctx.scale.compressed].sort((a, b) => a - b)) {
    const y0 = knotsPx[i] as number;
    const y1 = knotsPx[i + 1] as number;
    const quietUs = (knotsUs[i + 1] as number) - (knotsUs[i] as number);
    out.push(
      `<rect class="gap" x="${left}" y="${px(y0 + 3)}" width="${px(width)}" height="${px(y1 - y0 - 6)}"/>`,
      `<text class="gapt" x="${left - 6}" y="${px((y0 + y1) / 2 + 4)}">≈ ${ms(quietUs)} ms</text>`,
    );
  }
  const ticks = axisTicks(ctx.scale);
  let lastLabelPx = -Infinity;
  for (const tick of ticks) {
    const yPx = yOf(ctx.scale, tick);
    out.push(`<line class="grid" x1="${left}" y1="${px(yPx)}" x2="${px(left + width)}" y2="${px(yPx)}"/>`);
    if (yPx - lastLabelPx >= SCALE.tickLabelSpacingMinPx) {
      out.push(`<text class="tick" x="${left - 6}" y="${px(yPx + 4)}">${ms(tick)}</text>`);
      lastLabelPx = yPx;
    }
  }
  return out;
}

/** Round times (µs) for the axis, only where time is drawn linearly. */
function axisTicks(scale: TimeScale): number[] {
  const { knotsUs } = scale;
  if (knotsUs.length === 0) return [];
  const stepUs = tickStepUs(scale.pxPerMs);
  const ticks: number[] = [];
  const first = knotsUs[0] as number;
  const push = (t: number): void => {
    if (ticks[ticks.length - 1] !== t) ticks.push(t);
  };
  if (first % stepUs === 0) push(first);
  for (let i = 0; i + 1 < knotsUs.length; i += 1) {
    if (scale.compressed.has(i)) continue;
    const from = knotsUs[i] as number;
    const to = knotsUs[i + 1] as number;
    for (let t = Math.floor(from / stepUs) * stepUs + stepUs; t <= to; t += stepUs) push(t);
  }
  return ticks;
}

function tickStepUs(pxPerMs: number): number {
  const wantedUs = (SCALE.tickSpacingMinPx / pxPerMs) * 1000;
  for (let decade = 10; ; decade *= 10) {
    for (const mantissa of [1, 2, 5]) {
      if (mantissa * decade >= wantedUs) return mantissa * decade;
    }
  }
}

function renderPartitions(ctx: Ctx): string[] {
  const out: string[] = [];
  const left = LAYOUT.axisPx;
  const width = ctx.lanes.widthPx - LAYOUT.rightPx - left;
  for (const p of ctx.model.partitions) {
    const y0 = y(ctx, p.fromUs);
    const y1 = y(ctx, p.toUs);
    const blocked = p.blocked.map(([from, to]) => `${from}→${to}`).join(" ");
    const title = `partition ${p.description} from ${ms(p.sinceUs)} ms to ${ms(p.toUs)} ms` +
      `${p.healed ? " (healed)" : " (not healed)"}\nblocked: ${blocked}`;
    out.push(
      `<rect class="part" x="${left}" y="${px(y0)}" width="${px(width)}" height="${px(Math.max(1, y1 - y0))}"><title>${esc(title)}</title></rect>`,
      `<line class="partl" x1="${left}" y1="${px(y0)}" x2="${px(left + width)}" y2="${px(y0)}"/>`,
    );
    if (p.healed) {
      out.push(`<line class="heall" x1="${left}" y1="${px(y1)}" x2="${px(left + width)}" y2="${px(y1)}"/>`);
    }
  }
  return out;
}

const ROLE_CLASSES: Readonly<Record<string, string>> = {
  leader: "r-leader",
  candidate: "r-candidate",
  preCandidate: "r-pre",
};

function renderRoleSpans(ctx: Ctx): string[] {
  const out: string[] = [];
  for (const span of ctx.model.roleSpans) {
    const cls = ROLE_CLASSES[span.role];
    if (cls === undefined) continue;
    const lane = laneX(ctx, span.member);
    const y0 = y(ctx, span.fromUs);
    const y1 = y(ctx, span.toUs);
    const title = `${span.member}: ${span.role}, term ${span.term}, ${ms(span.fromUs)}–${ms(span.toUs)} ms`;
    out.push(
      `<rect class="${cls}" x="${px(lane.leftPx + 6)}" y="${px(y0)}" width="${px(lane.widthPx - 12)}" height="${px(Math.max(1, y1 - y0))}"><title>${esc(title)}</title></rect>`,
    );
  }
  for (const crash of ctx.model.crashes) {
    const lane = laneX(ctx, crash.member);
    const y0 = y(ctx, crash.fromUs);
    const y1 = y(ctx, crash.toUs);
    const title = `${crash.member} crashed ${ms(crash.fromUs)}–${ms(crash.toUs)} ms`;
    out.push(
      `<rect class="crashed" x="${px(lane.leftPx + 6)}" y="${px(y0)}" width="${px(lane.widthPx - 12)}" height="${px(Math.max(1, y1 - y0))}"><title>${esc(title)}</title></rect>`,
    );
  }
  return out;
}

function renderLaneLines(ctx: Ctx): string[] {
  const out: string[] = [];
  const top = SCALE.topPx;
  const bottom = ctx.scale.heightPx - SCALE.bottomPx;
  const firstOther = ctx.lanes.list.find((lane) => !lane.member);
  if (firstOther !== undefined && firstOther !== ctx.lanes.list[0]) {
    out.push(`<line class="sep" x1="${firstOther.leftPx}" y1="0" x2="${firstOther.leftPx}" y2="${px(ctx.scale.heightPx)}"/>`);
  }
  for (const lane of ctx.lanes.list) {
    const cls = lane.member ? "lane" : "lane other";
    out.push(`<line class="${cls}" x1="${px(lane.centerPx)}" y1="${top}" x2="${px(lane.centerPx)}" y2="${px(bottom)}"/>`);
  }
  return out;
}

function renderPhases(ctx: Ctx): string[] {
  const out: string[] = [];
  const left = LAYOUT.axisPx;
  const right = ctx.lanes.widthPx - LAYOUT.rightPx;
  for (const phase of ctx.model.phases) {
    const yPx = y(ctx, phase.t);
    out.push(
      `<line class="ph" x1="${left}" y1="${px(yPx)}" x2="${px(right)}" y2="${px(yPx)}"/>`,
      `<text class="pht halo" x="${px(right - 4)}" y="${px(yPx - 4)}">phase: ${esc(clip(phase.phase, 40))} (${ms(phase.t)} ms)</text>`,
    );
  }
  return out;
}

function renderCommits(ctx: Ctx): string[] {
  const out: string[] = [];
  const lastLabelPx = new Map<string, number>();
  for (const commit of ctx.model.commits) {
    const lane = laneX(ctx, commit.member);
    const yPx = y(ctx, commit.t);
    const x = lane.centerPx;
    out.push(`<line class="cm" x1="${px(x - 4)}" y1="${px(yPx)}" x2="${px(x + 6)}" y2="${px(yPx)}"><title>${esc(`${commit.member} commit ${commit.index} at ${ms(commit.t)} ms`)}</title></line>`);
    if (yPx - (lastLabelPx.get(commit.member) ?? -Infinity) >= 10) {
      out.push(`<text class="cmt halo" x="${px(x + 8)}" y="${px(yPx + 3)}">c${esc(String(commit.index))}</text>`);
      lastLabelPx.set(commit.member, yPx);
    }
  }
  return out;
}

function arrowTitle(arrow: Arrow): string {
  const { send } = arrow;
  const head = `#${send.id} ${send.type} (term ${send.term}) ${send.from} → ${send.to}`;
  const sent = `sent ${ms(send.t)} ms`;
  let fate: string;
  if (arrow.fate === "deliver") {
    fate = `delivered ${ms(arrow.fateUs ?? send.t)} ms (+${ms((arrow.fateUs ?? send.t) - send.t)} ms)`;
  } else if (arrow.fate === "drop") {
    fate = `DROPPED (${arrow.reason ?? "?"}) at ${ms(arrow.fateUs ?? send.t)} ms`;
  } else if (arrow.fateAfter && arrow.fateUs !== null) {
    fate = `resolved after the window, at ${ms(arrow.fateUs)} ms`;
  } else {
    fate = "still in flight at the end of the trace";
  }
  return `${head}\n${send.detail}\n${sent}, ${fate}`;
}

function renderArrows(ctx: Ctx): string[] {
  const out: string[] = [];
  for (const arrow of ctx.model.arrows) {
    const { send } = arrow;
    const k = ctx.types.index.get(send.type) ?? 0;
    const from = laneX(ctx, send.from).centerPx;
    const toLane = laneX(ctx, send.to).centerPx;
    const to = send.from === send.to ? from + 18 : toLane;
    const y1 = y(ctx, Math.max(send.t, ctx.model.startUs));
    let x2 = to;
    let y2: number;
    let shape: string;
    if (arrow.fate === "deliver") {
      y2 = y(ctx, arrow.fateUs ?? send.t);
      shape = "d";
    } else {
      x2 = from + (to - from) * 0.4;
      y2 = arrow.fate === "drop" ? y(ctx, arrow.fateUs ?? send.t) : y(ctx, ctx.model.endUs);
      shape = arrow.fate === "drop" ? "p" : "f";
    }
    const cut = arrow.fromBefore ? " c" : "";
    out.push(`<line class="m k${k} ${shape}${cut}" x1="${px(from)}" y1="${px(y1)}" x2="${px(x2)}" y2="${px(y2)}"><title>${esc(arrowTitle(arrow))}</title></line>`);
    if (arrow.fate === "drop") {
      out.push(`<text class="x k${k}" x="${px(x2)}" y="${px(y2 + 4.5)}">×</text>`);
    }
  }
  return out;
}

function roleLabel(mark: RoleMark): string {
  const role = mark.role === "preCandidate" ? "pre-candidate" : mark.role;
  return `T${mark.term} ${role}`;
}

function renderMarks(ctx: Ctx): string[] {
  const out: string[] = [];
  for (const mark of ctx.model.roleMarks) {
    const lane = laneX(ctx, mark.member);
    const yPx = y(ctx, mark.tUs);
    const cls = mark.carried ? "rl carried halo" : `rl halo${mark.role === "leader" ? " lead" : ""}`;
    const title = `${mark.member}: ${mark.role}, term ${mark.term}, leader ${mark.leader ?? "unknown"}` +
      (mark.carried ? " (in effect when the window opens)" : ` at ${ms(mark.tUs)} ms`);
    out.push(`<text class="${cls}" x="${px(lane.leftPx + 8)}" y="${px(yPx + 11)}">${esc(clip(roleLabel(mark), 24))}<title>${esc(title)}</title></text>`);
  }
  for (const crash of ctx.model.crashes) {
    const lane = laneX(ctx, crash.member);
    const x0 = lane.leftPx + 6;
    const x1 = lane.leftPx + lane.widthPx - 6;
    if (crash.crashShown) {
      const yPx = y(ctx, crash.fromUs);
      out.push(
        `<line class="crl" x1="${px(x0)}" y1="${px(yPx)}" x2="${px(x1)}" y2="${px(yPx)}"/>`,
        `<text class="crt halo" x="${px(x1 - 2)}" y="${px(yPx + 12)}">✖ crash ${ms(crash.fromUs)}</text>`,
      );
    }
    if (crash.restartShown) {
      const yPx = y(ctx, crash.toUs);
      out.push(
        `<line class="rsl" x1="${px(x0)}" y1="${px(yPx)}" x2="${px(x1)}" y2="${px(yPx)}"/>`,
        `<text class="rst halo" x="${px(x1 - 2)}" y="${px(yPx + 12)}">↻ restart ${ms(crash.toUs)}</text>`,
      );
    }
  }
  for (const p of ctx.model.partitions) {
    const label = p.fromUs === p.sinceUs ? "partition" : `partition (since ${ms(p.sinceUs)} ms)`;
    out.push(`<text class="pt halo" x="${LAYOUT.axisPx + 4}" y="${px(y(ctx, p.fromUs) + 12)}">${esc(`${label}: ${clip(p.description, LAYOUT.textCharsMax)}`)}</text>`);
    if (p.healed) {
      out.push(`<text class="ht halo" x="${LAYOUT.axisPx + 4}" y="${px(y(ctx, p.toUs) - 3)}">heal ${ms(p.toUs)} ms</text>`);
    }
  }
  return out;
}

function renderViolations(ctx: Ctx): string[] {
  const out: string[] = [];
  const left = 4;
  const right = ctx.lanes.widthPx - 4;
  ctx.model.violations.forEach((violation, i) => {
    const yPx = y(ctx, violation.t);
    const text = `VIOLATION [${violation.checker}] ${violation.message}`;
    out.push(
      `<line class="vl" id="v${i}" x1="${left}" y1="${px(yPx)}" x2="${px(right)}" y2="${px(yPx)}"/>`,
      `<text class="vt halo" x="${LAYOUT.axisPx + 4}" y="${px(yPx - 5)}">⚠ ${esc(clip(text, LAYOUT.textCharsMax))}<title>${esc(`${text}\nat ${ms(violation.t)} ms`)}</title></text>`,
    );
  });
  return out;
}

function renderDefs(ctx: Ctx): string {
  const markers = ctx.types.list.map((type, k) =>
    `<marker id="a${k}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,1L10,5L0,9z" fill="${type.color}"/></marker>`);
  const hatch = `<pattern id="hatch" width="7" height="7" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="7" height="7" fill="#e4e4e4"/><line x1="0" y1="0" x2="0" y2="7" stroke="#9e9e9e" stroke-width="2.5"/></pattern>`;
  return `<defs>${hatch}${markers.join("")}</defs>`;
}

function renderDiagram(ctx: Ctx): string {
  const layers = [
    renderGapsAndGrid(ctx),
    renderPartitions(ctx),
    renderRoleSpans(ctx),
    renderLaneLines(ctx),
    renderPhases(ctx),
    renderCommits(ctx),
    renderArrows(ctx),
    renderMarks(ctx),
    renderViolations(ctx),
  ];
  const axisLabel = `<text class="tick" x="${LAYOUT.axisPx - 6}" y="14">ms</text>`;
  return `<svg id="st" width="${px(ctx.lanes.widthPx)}" height="${px(ctx.scale.heightPx)}" data-top="${SCALE.topPx}" role="img" aria-label="space-time diagram">` +
    `${renderDefs(ctx)}${axisLabel}<g id="z">\n${layers.map((layer) => layer.join("\n")).join("\n")}\n</g></svg>`;
}

function renderLaneHeader(ctx: Ctx): string {
  const labels = ctx.lanes.list.map((lane) => {
    const kind = lane.member ? "member" : ctx.model.clientIds.has(lane.id) ? "client" : "not a member";
    return `<text class="ln${lane.member ? "" : " other"}" x="${px(lane.centerPx)}" y="18">${esc(clip(lane.id, LAYOUT.laneLabelCharsMax))}<title>${esc(lane.id)}</title></text>` +
      `<text class="lk" x="${px(lane.centerPx)}" y="32">${kind}</text>`;
  });
  return `<div class="lh"><svg id="lanes" width="${px(ctx.lanes.widthPx)}" height="${LAYOUT.headerPx}"><text class="lk" x="${LAYOUT.axisPx - 6}" y="32" text-anchor="end">time ↓</text>${labels.join("")}</svg></div>`;
}

// ---------------------------------------------------------------------------------------------
// The page around the diagram.

function renderPage(
  options: SpaceTimeOptions,
  trace: readonly TraceEvent[],
  window: TraceWindow,
  model: Model,
  scale: TimeScale,
  lanes: Lanes,
  types: Types,
): string {
  const ctx: Ctx = { model, scale, lanes, types };
  return [
    "<!DOCTYPE html>",
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(options.title)}</title>`,
    `<style>${PAGE_CSS}${typeCss(types)}</style>`,
    "</head><body>",
    `<header><h1>${esc(options.title)}</h1>`,
    `<div class="tables">${renderSummary(options)}${renderStats(window, model)}</div>`,
    renderWindowNote(trace, window),
    renderViolationList(trace, window),
    renderLegend(types),
    "</header>",
    renderLaneHeader(ctx),
    renderDiagram(ctx),
    '<div id="tip" hidden></div>',
    `<script>${PAGE_JS}</script>`,
    "</body></html>",
    "",
  ].join("\n");
}

function renderSummary(options: SpaceTimeOptions): string {
  const entries = Object.entries(options.summary ?? {});
  if (entries.length === 0) return "";
  const rows = entries.map(([key, value]) => `<tr><th>${esc(key)}</th><td>${esc(String(value))}</td></tr>`);
  return `<table class="summary"><caption>run</caption>${rows.join("")}</table>`;
}

function renderStats(window: TraceWindow, model: Model): string {
  const count = (key: string): number => model.counts.get(key) ?? 0;
  const drops = count("drop:loss") + count("drop:partition") + count("drop:crashed");
  const rows: [string, string][] = [
    ["events", window.end - window.start === window.total ? String(window.total) : `${window.end - window.start} of ${window.total}`],
    ["time", `${ms(model.startUs)} – ${ms(model.endUs)} ms`],
    ["lanes", String(model.laneIds.length)],
    ["messages sent", String(count("send"))],
    ["delivered", String(count("deliver"))],
    ["dropped", `${drops} (loss ${count("drop:loss")}, partition ${count("drop:partition")}, crashed ${count("drop:crashed")})`],
    ["role changes", String(count("role"))],
    ["commits", String(count("commit"))],
    ["crashes / restarts", `${count("crash")} / ${count("restart")}`],
    ["partitions / heals", `${count("partition")} / ${count("heal")}`],
    ["violations", String(count("violation"))],
  ];
  const body = rows.map(([key, value]) => `<tr><th>${key}</th><td>${esc(value)}</td></tr>`);
  return `<table class="stats"><caption>trace (shown)</caption>${body.join("")}</table>`;
}

function renderWindowNote(trace: readonly TraceEvent[], window: TraceWindow): string {
  if (window.focus === "all") return "";
  const range = `Showing events ${window.start + 1}–${window.end} of ${window.total}`;
  let why: string;
  if (window.focus === "violation") {
    const violation = trace[window.violationIndex] as ViolationEvent;
    why = `the window around the first violation (event ${window.violationIndex + 1}, at ${ms(violation.t)} ms)`;
  } else {
    why = "the last part of the trace (it has no violation)";
  }
  return `<p class="note">${range} (eventsMax ${window.end - window.start}): ${why}. ` +
    "Roles, crashes and partitions in effect when the window opens are carried in; dashed arrows cross its edges.</p>";
}

const VIOLATIONS_LISTED_MAX = 20;

function renderViolationList(trace: readonly TraceEvent[], window: TraceWindow): string {
  const all: { event: ViolationEvent; index: number }[] = [];
  trace.forEach((event, index) => {
    if (event.kind === "violation") all.push({ event, index });
  });
  if (all.length === 0) return '<p class="ok">No violation.</p>';
  let shownOrdinal = 0;
  const items = all.slice(0, VIOLATIONS_LISTED_MAX).map(({ event, index }) => {
    const text = `${ms(event.t)} ms [${event.checker}] ${clip(event.message, 400)}`;
    if (index < window.start || index >= window.end) return `<li>${esc(text)} (outside the window)</li>`;
    const anchor = `<a href="#v${shownOrdinal}">${esc(text)}</a>`;
    shownOrdinal += 1;
    return `<li>${anchor}</li>`;
  });
  const more = all.length > VIOLATIONS_LISTED_MAX ? `<li>… ${all.length - VIOLATIONS_LISTED_MAX} more</li>` : "";
  return `<div class="viol"><strong>${all.length} violation${all.length === 1 ? "" : "s"}</strong><ul>${items.join("")}${more}</ul></div>`;
}

function renderLegend(types: Types): string {
  const messageItems = types.list.map((type, k) =>
    `<label><input type="checkbox" class="flt" data-k="${k}" checked><span class="sw" style="background:${type.color}"></span>${esc(type.name)} <span class="n">${type.count}</span></label>`);
  const fixed = [
    '<span class="lg"><span class="box" style="background:rgba(245,180,0,.55)"></span>leader</span>',
    '<span class="lg"><span class="box" style="background:rgba(255,140,0,.22)"></span>candidate</span>',
    '<span class="lg"><span class="box" style="background:rgba(142,68,173,.16)"></span>pre-candidate</span>',
    '<span class="lg"><span class="box hatch"></span>crashed</span>',
    '<span class="lg"><span class="box" style="background:rgba(217,48,37,.09);border-top:1px dashed #d93025"></span>partition</span>',
    '<span class="lg"><span class="x">×</span> dropped</span>',
    '<span class="lg"><span class="sw dash"></span>crosses the window / in flight</span>',
    '<span class="lg"><span class="cmk">c5</span> commit index</span>',
    '<span class="lg"><span class="sw" style="background:#d50000;height:3px"></span>violation</span>',
    '<span class="lg"><span class="sw dashb"></span>phase</span>',
    '<span class="lg"><span class="box" style="background:#f1f1f1"></span>quiet gap, compressed</span>',
  ];
  const zoom = '<span class="zoom">zoom <button type="button" data-z="0.5">−</button><button type="button" data-z="2">+</button><button type="button" data-z="0">reset</button> <span id="zk">×1</span></span>';
  const messages = messageItems.length > 0 ? `<div class="legend">messages: ${messageItems.join("")}</div>` : "";
  return `${messages}<div class="legend">${fixed.join("")} ${zoom}</div>`;
}

function typeCss(types: Types): string {
  return types.list.map((type, k) =>
    `#st .k${k}{stroke:${type.color};marker-end:url(#a${k})}#st.h${k} .k${k}{display:none}`).join("");
}

const PAGE_CSS = `
body{margin:0;font:13px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;color:#202124;background:#fff}
header{padding:10px 16px 6px}
h1{font-size:18px;margin:0 0 8px;word-break:break-all}
.tables{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
table{border-collapse:collapse;font-size:12px}
caption{text-align:left;font-weight:600;color:#5f6368;padding-bottom:2px}
th,td{border:1px solid #dadce0;padding:1px 8px;text-align:left;vertical-align:top}
th{background:#f8f9fa;font-weight:600}
td{max-width:520px;word-break:break-all}
.note{background:#fef7e0;border:1px solid #f9ab00;padding:4px 8px;margin:8px 0}
.ok{color:#188038;margin:6px 0}
.viol{color:#b3261e;margin:6px 0}.viol ul{margin:2px 0;padding-left:20px}.viol a{color:#b3261e}
.legend{margin:4px 0;display:flex;flex-wrap:wrap;gap:4px 14px;align-items:center}
.legend label{white-space:nowrap;cursor:pointer}
.legend .n{color:#80868b;font-size:11px}
.sw{display:inline-block;width:20px;height:2px;vertical-align:middle;margin:0 4px}
.sw.dash{border-top:2px dashed #777;height:0;background:none}
.sw.dashb{border-top:2px dashed #1a73e8;height:0;background:none}
.box{display:inline-block;width:14px;height:12px;vertical-align:middle;margin-right:4px;border:1px solid #ccc}
.box.hatch{background:repeating-linear-gradient(45deg,#e4e4e4 0 3px,#9e9e9e 3px 5px)}
.lg{white-space:nowrap}.lg .x{color:#d93025;font-weight:700}.cmk{color:#188038;font-size:10px}
.zoom button{margin-left:2px;min-width:26px}
.lh{position:sticky;top:0;background:#fff;z-index:2;border-bottom:1px solid #dadce0}
svg text{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;font-size:11px}
#lanes .ln{font-weight:700;font-size:13px;text-anchor:middle}
#lanes .ln.other{font-weight:400;font-style:italic}
#lanes .lk{fill:#80868b;font-size:10px;text-anchor:middle}
#st{display:block;overflow:visible}
#st .gap{fill:#f1f1f1}
#st .gapt{fill:#9aa0a6;font-size:10px;text-anchor:end;font-style:italic}
#st .grid{stroke:#f1f3f4}
#st .tick{fill:#5f6368;font-size:10px;text-anchor:end}
#st .lane{stroke:#9aa0a6;stroke-width:1}
#st .lane.other{stroke:#c8c8c8;stroke-dasharray:2 3}
#st .sep{stroke:#dadce0;stroke-width:1}
#st .r-leader{fill:#f5b400;fill-opacity:.5}
#st .r-candidate{fill:#ff8c00;fill-opacity:.22}
#st .r-pre{fill:#8e44ad;fill-opacity:.16}
#st .crashed{fill:url(#hatch);opacity:.8}
#st .part{fill:#d93025;fill-opacity:.07}
#st .partl{stroke:#d93025;stroke-dasharray:6 4}
#st .heall{stroke:#188038;stroke-dasharray:6 4}
#st .pt{fill:#b3261e;font-weight:600}
#st .ht{fill:#188038}
#st .ph{stroke:#1a73e8;stroke-width:1.5;stroke-dasharray:8 4}
#st .pht{fill:#1a73e8;font-weight:600;text-anchor:end}
#st .cm{stroke:#188038;stroke-width:2}
#st .cmt{fill:#188038;font-size:9px}
#st .m{stroke-width:1.3;stroke-opacity:.9;fill:none}
#st .m.f,#st .m.c{stroke-dasharray:4 3}
#st .m.p{marker-end:none}
#st .m.hl{stroke-width:3.5;stroke-opacity:1}
#st text.x{stroke:none;fill:#d93025;font-size:14px;font-weight:700;text-anchor:middle}
#st .rl{fill:#3c4043;font-size:10px}
#st .rl.lead{font-weight:700;fill:#7a5a00}
#st .rl.carried{font-style:italic;fill:#80868b}
#st .crl{stroke:#d93025;stroke-width:2.5}
#st .rsl{stroke:#188038;stroke-width:2.5}
#st .crt{fill:#d93025;font-weight:700;text-anchor:end;font-size:10px}
#st .rst{fill:#188038;font-weight:700;text-anchor:end;font-size:10px}
#st .vl{stroke:#d50000;stroke-width:2.5}
#st .vt{fill:#d50000;font-weight:700;font-size:12px}
#st .halo{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
#tip{position:fixed;z-index:5;pointer-events:none;white-space:pre-wrap;max-width:560px;background:#202124;color:#fff;font:12px/1.4 ui-monospace,Menlo,Consolas,monospace;padding:6px 8px;border-radius:4px;box-shadow:0 2px 6px rgba(0,0,0,.3)}
`;

/**
 * Hover shows the nearest arrow's details (titles become the tooltip's text, set with textContent),
 * the checkboxes hide message types, and zoom rescales every y coordinate about the diagram's top
 * while keeping the middle of the screen on the same instant. Plain ES5, no dependencies.
 */
const PAGE_JS = `
(function () {
  var svg = document.getElementById("st");
  if (!svg) return;
  var top = +svg.getAttribute("data-top"), h0 = +svg.getAttribute("height"), k = 1, i, e;
  var els = svg.querySelectorAll("#z line,#z rect,#z text"), base = [];
  for (i = 0; i < els.length; i++) {
    e = els[i];
    base.push(e.tagName === "line" ? [+e.getAttribute("y1"), +e.getAttribute("y2")] :
      e.tagName === "rect" ? [+e.getAttribute("y"), +e.getAttribute("height")] : [+e.getAttribute("y")]);
  }
  var arrows = [], lines = svg.querySelectorAll("line.m"), hidden = {};
  for (i = 0; i < lines.length; i++) {
    e = lines[i];
    var t = e.querySelector("title"), m = /\\bk(\\d+)/.exec(e.getAttribute("class"));
    arrows.push({ e: e, k: m ? m[1] : "", x1: +e.getAttribute("x1"), y1: +e.getAttribute("y1"),
      x2: +e.getAttribute("x2"), y2: +e.getAttribute("y2"), tip: t ? t.textContent : "" });
    if (t) e.removeChild(t);
  }
  function Y(v) { return Math.round((top + (v - top) * k) * 10) / 10; }
  function zoom(f) {
    var r = svg.getBoundingClientRect(), mid = window.innerHeight / 2 - r.top;
    var at = top + (mid - top) / k;
    k = f ? Math.min(32, Math.max(1 / 32, k * f)) : 1;
    for (i = 0; i < els.length; i++) {
      e = els[i]; var b = base[i];
      if (e.tagName === "line") { e.setAttribute("y1", Y(b[0])); e.setAttribute("y2", Y(b[1])); }
      else if (e.tagName === "rect") { e.setAttribute("y", Y(b[0])); e.setAttribute("height", Math.max(1, b[1] * k)); }
      else e.setAttribute("y", Y(b[0]));
    }
    svg.setAttribute("height", Y(h0));
    window.scrollBy(0, Y(at) - mid);
    document.getElementById("zk").textContent = "\\u00d7" + (k < 1 ? "1/" + Math.round(1 / k) : k);
  }
  var buttons = document.querySelectorAll("button[data-z]");
  for (i = 0; i < buttons.length; i++) {
    buttons[i].addEventListener("click", function () { zoom(+this.getAttribute("data-z")); });
  }
  var boxes = document.querySelectorAll("input.flt");
  for (i = 0; i < boxes.length; i++) {
    boxes[i].addEventListener("change", function () {
      var key = this.getAttribute("data-k");
      hidden[key] = !this.checked;
      svg.classList.toggle("h" + key, !this.checked);
    });
  }
  var tip = document.getElementById("tip"), lit = null;
  function d2(px, py, a) {
    var x1 = a.x1, y1 = Y(a.y1), dx = a.x2 - x1, dy = Y(a.y2) - y1, l = dx * dx + dy * dy;
    var s = l ? Math.max(0, Math.min(1, ((px - x1) * dx + (py - y1) * dy) / l)) : 0;
    var ex = x1 + s * dx - px, ey = y1 + s * dy - py;
    return ex * ex + ey * ey;
  }
  function light(a) {
    if (lit === a) return;
    if (lit) lit.e.classList.remove("hl");
    lit = a;
    if (lit) lit.e.classList.add("hl");
  }
  svg.addEventListener("mousemove", function (ev) {
    var r = svg.getBoundingClientRect(), x = ev.clientX - r.left, yy = ev.clientY - r.top;
    var best = null, bd = 36;
    for (var j = 0; j < arrows.length; j++) {
      var a = arrows[j];
      if (hidden[a.k] || x < Math.min(a.x1, a.x2) - 6 || x > Math.max(a.x1, a.x2) + 6) continue;
      var d = d2(x, yy, a);
      if (d < bd) { bd = d; best = a; }
    }
    light(best);
    if (!best) { tip.hidden = true; return; }
    tip.textContent = best.tip;
    tip.hidden = false;
    var left = ev.clientX + 14;
    if (left + tip.offsetWidth > window.innerWidth - 8) left = Math.max(8, ev.clientX - 14 - tip.offsetWidth);
    tip.style.left = left + "px";
    tip.style.top = Math.min(ev.clientY + 14, window.innerHeight - tip.offsetHeight - 8) + "px";
  });
  svg.addEventListener("mouseleave", function () { light(null); tip.hidden = true; });
})();
`;
