/**
 * The trace of a run: every event is folded into a 64-bit hash (two FNV-1a lanes over integers,
 * cheap enough for millions of events), and, when asked, kept as a list for the space-time
 * diagram. Same seed, same trace, same hash: on every run, on every machine.
 */
import type { TraceEvent } from "./history.ts";

const FNV_PRIME = 0x01000193;

/** Records a run's events and their hash. */
export class TraceRecorder {
  private laneA = 0x811c9dc5;
  private laneB = 0x050c5d1f;
  private readonly kept: TraceEvent[] | null;
  /** Events recorded (kept or not). */
  count = 0;

  /** @param keepEventsMax keep at most this many events in memory (0: keep none, hash only). */
  constructor(private readonly keepEventsMax: number) {
    this.kept = keepEventsMax > 0 ? [] : null;
  }

  /** Folds one event's defining integers into the hash (unused trailing fields are 0). */
  mix(a: number, b: number, c = 0, d = 0, e = 0, f = 0): void {
    this.mixValue(a);
    this.mixValue(b);
    this.mixValue(c);
    this.mixValue(d);
    this.mixValue(e);
    this.mixValue(f);
    this.count += 1;
  }

  private mixValue(value: number): void {
    // Split each number into two 32-bit halves so large times and ids hash fully.
    const low = value >>> 0;
    const high = Math.floor(value / 4294967296) >>> 0;
    let a = Math.imul(this.laneA ^ low, FNV_PRIME);
    a = Math.imul(a ^ high, FNV_PRIME);
    let b = Math.imul(this.laneB ^ (low + 0x9e3779b9), FNV_PRIME);
    b = Math.imul(b ^ high, FNV_PRIME) ^ (b >>> 15);
    this.laneA = a;
    this.laneB = b;
  }

  /** Whether full events are being kept (so callers can skip building them). */
  get keeping(): boolean {
    return this.kept !== null && this.kept.length < this.keepEventsMax;
  }

  /** Keeps a full event for the diagram (does not change the hash). */
  keep(event: TraceEvent): void {
    if (this.kept !== null && this.kept.length < this.keepEventsMax) this.kept.push(event);
  }

  /** The events kept. */
  events(): readonly TraceEvent[] {
    return this.kept ?? [];
  }

  /** The trace hash as 16 hex digits. */
  hash(): string {
    return (this.laneA >>> 0).toString(16).padStart(8, "0") + (this.laneB >>> 0).toString(16).padStart(8, "0");
  }
}

/** Maps strings (member ids, message types) to small stable integers for hashing. */
export class Interner {
  private readonly codes = new Map<string, number>();

  /** The code of `name`, assigned in first-seen order (deterministic for a deterministic run). */
  code(name: string): number {
    let code = this.codes.get(name);
    if (code === undefined) {
      code = this.codes.size + 1;
      this.codes.set(name, code);
    }
    return code;
  }
}
