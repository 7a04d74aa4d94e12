/**
 * What a leader knows about each follower's log: how far it matches (`match`), what to send next
 * (`next`), and whether it is probing for the match point or streaming entries (`replicate`),
 * with a bounded window of appends in flight.
 */
import { assert } from "../assert.ts";

/**
 * `probe`: the leader does not know where the follower's log matches; it sends one append at a
 * time and waits for the answer (or a heartbeat response) before sending another.
 * `replicate`: the follower is known to match up to `match`; the leader streams appends
 * optimistically, up to the inflight window.
 */
export type ProgressState = "probe" | "replicate";

/** A bounded window of appends sent but not yet acknowledged, by last index and bytes. */
export class Inflights {
  private readonly lastIndexes: number[] = [];
  private readonly sizes: number[] = [];
  private bytes = 0;

  constructor(
    /** Appends the window may hold. */
    readonly messagesMax: number,
    /** Entry bytes the window may hold. */
    readonly bytesMax: number,
  ) {
    assert(messagesMax >= 1, "inflight window holds at least one message");
  }

  /** Records an append whose last entry is `lastIndex`. Indexes must increase. */
  add(lastIndex: number, bytes: number): void {
    assert(!this.full(), "inflight window is not full when adding");
    const previous = this.lastIndexes[this.lastIndexes.length - 1];
    if (previous !== undefined) assert(lastIndex > previous, "inflight indexes increase");
    this.lastIndexes.push(lastIndex);
    this.sizes.push(bytes);
    this.bytes += bytes;
  }

  /** Frees every append whose last index is at most `index` (they are acknowledged). */
  freeLE(index: number): void {
    let count = 0;
    while (count < this.lastIndexes.length && (this.lastIndexes[count] ?? Infinity) <= index) {
      this.bytes -= this.sizes[count] ?? 0;
      count += 1;
    }
    if (count > 0) {
      this.lastIndexes.splice(0, count);
      this.sizes.splice(0, count);
    }
  }

  /** True when no further append may be sent. */
  full(): boolean {
    return this.lastIndexes.length >= this.messagesMax || this.bytes >= this.bytesMax;
  }

  /** Appends in flight. */
  count(): number {
    return this.lastIndexes.length;
  }

  /** Empties the window. */
  reset(): void {
    this.lastIndexes.length = 0;
    this.sizes.length = 0;
    this.bytes = 0;
  }
}

/** The leader's view of one member's log. */
export class Progress {
  // invariant: match < next
  /** The highest index known to match the leader's log. */
  match = 0;
  /** The next index to send. */
  next: number;
  state: ProgressState = "probe";
  /**
   * Whether appends to this member are held back: in `probe`, set once a probe is sent; in
   * `replicate`, set when the inflight window fills. Any answer, and any heartbeat response,
   * clears it, so that a member whose appends were all lost is probed again rather than stalled.
   */
  paused = false;
  /** Whether the member was heard from since the last CheckQuorum round. */
  recentActive = false;
  readonly inflights: Inflights;

  constructor(next: number, inflightMessagesMax: number, inflightBytesMax: number) {
    assert(next >= 1, "next index starts at 1 or later");
    this.next = next;
    this.inflights = new Inflights(inflightMessagesMax, inflightBytesMax);
  }

  /** Switches to probing from `match + 1`. */
  becomeProbe(): void {
    this.state = "probe";
    this.next = this.match + 1;
    this.paused = false;
    this.inflights.reset();
  }

  /** Switches to streaming from `match + 1`. */
  becomeReplicate(): void {
    this.state = "replicate";
    this.next = this.match + 1;
    this.paused = false;
    this.inflights.reset();
  }

  /** Records that the member matches up to `index`; returns whether that was news. */
  maybeUpdate(index: number): boolean {
    const updated = index > this.match;
    if (updated) {
      this.match = index;
      this.paused = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /** Records that appends up to `lastIndex` were sent (in `replicate`, optimistically). */
  sentEntries(lastIndex: number, bytes: number): void {
    if (this.state === "replicate") {
      if (lastIndex >= this.next) {
        this.inflights.add(lastIndex, bytes);
        this.next = lastIndex + 1;
      }
      this.paused = this.inflights.full();
    } else {
      this.paused = true;
    }
  }

  /**
   * Handles a rejected append of `rejected` (its prevIndex), with the follower's hint that its log
   * may match at `matchHint`. Returns false when the rejection is stale (already superseded).
   */
  maybeDecreaseTo(rejected: number, matchHint: number): boolean {
    if (this.state === "replicate") {
      // A rejection at or below match is an old message: match is proven, so nothing changes.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // In probe only the answer to the latest probe (prevIndex = next - 1) is meaningful.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.paused = false;
    return true;
  }

  /** Whether the leader must hold back appends to this member for now. */
  isPaused(): boolean {
    return this.paused;
  }

  /** Whether only an empty append may be sent: the window is full, but a heartbeat answer came. */
  isThrottled(): boolean {
    return this.state === "replicate" && this.inflights.full();
  }
}
