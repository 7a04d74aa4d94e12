/**
 * What a leader knows about each follower's log: how far it matches (`match`), what to send next
 * (`next`), and whether it is probing for the match point or streaming entries (`replicate`),
 * with a bounded window of appends in flight.
 */
import { assert } from "../assert.ts";
import type { Snapshot } from "./messages.ts";

/**
 * `probe`: the leader does not know where the follower's log matches; it sends one append at a
 * time and waits for the answer (or a heartbeat response) before sending another.
 * `replicate`: the follower is known to match up to `match`; the leader streams appends
 * optimistically, up to the inflight window.
 * `snapshot`: the follower needs entries the leader has compacted away; the leader streams its
 * snapshot in chunks (see {@link SnapshotTransfer}) and resumes appends once it is installed.
 */
export type ProgressState = "probe" | "replicate" | "snapshot";

/**
 * A snapshot being streamed to one follower. `sent` and `acked` are byte offsets into its data;
 * the leader keeps at most `snapshotChunksInflightMax` chunks between them.
 */
export interface SnapshotTransfer {
  readonly snapshot: Snapshot;
  /** Bytes sent so far (the next chunk starts here). */
  sent: number;
  /** Bytes the follower confirmed holding. */
  acked: number;
  /** Whether the last chunk (`done`) has been sent since the last rewind. */
  doneSent: boolean;
  /** The offset of the last rewind asked for by a rejection, so that one gap rewinds once. */
  rewoundTo: number;
  /**
   * The leader's tick when the transfer last moved (a chunk sent or acknowledged). A transfer that
   * has not moved for `snapshotStallTicks` lost its chunks in flight: the leader resends.
   */
  movedAt: number;
}

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
  /** In `snapshot`: the transfer under way. */
  transfer: SnapshotTransfer | null = null;
  readonly inflights: Inflights;

  constructor(next: number, inflightMessagesMax: number, inflightBytesMax: number) {
    assert(next >= 1, "next index starts at 1 or later");
    this.next = next;
    this.inflights = new Inflights(inflightMessagesMax, inflightBytesMax);
  }

  /** Switches to probing from `match + 1` (after a snapshot: from the snapshot's index + 1). */
  becomeProbe(): void {
    const snapshotIndex = this.transfer?.snapshot.index ?? 0;
    this.state = "probe";
    this.next = Math.max(this.match, snapshotIndex) + 1;
    this.paused = false;
    this.transfer = null;
    this.inflights.reset();
  }

  /** Switches to streaming from `match + 1`. */
  becomeReplicate(): void {
    this.state = "replicate";
    this.next = this.match + 1;
    this.paused = false;
    this.transfer = null;
    this.inflights.reset();
  }

  /** Switches to streaming `snapshot`, from its first byte; `now` is the leader's tick. */
  becomeSnapshot(snapshot: Snapshot, now: number): void {
    this.state = "snapshot";
    this.paused = false;
    this.inflights.reset();
    this.transfer = { snapshot, sent: 0, acked: 0, doneSent: false, rewoundTo: -1, movedAt: now };
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
    // While a snapshot streams, rejections of earlier appends say nothing new.
    if (this.state === "snapshot") return false;
    if (this.state === "replicate") {
      // A rejection at or below match is an old message: match is proven, so nothing changes.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // In probe only the answer to the latest probe (prevIndex = next - 1) is meaningful.
    if (this.next - 1 !== rejected) return false;
    const next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    // A member that rejects at its own match point contradicts an earlier acknowledgement (it lost
    // data, or misbehaves): probing the same point again at once would loop at network speed, so
    // it waits for the next heartbeat answer instead.
    if (next === this.next) return false;
    this.next = next;
    this.paused = false;
    return true;
  }

  /** Whether the leader must hold back appends to this member for now. */
  isPaused(): boolean {
    return this.paused || this.state === "snapshot";
  }

  /** Whether only an empty append may be sent: the window is full, but a heartbeat answer came. */
  isThrottled(): boolean {
    return this.state === "replicate" && this.inflights.full();
  }
}
