/**
 * The Raft log as one member holds it in memory: entries after a compaction point, the commit and
 * apply positions, and which suffix has not yet been made durable by the host.
 */
import { assert } from "../assert.ts";
import { entryBytes, type Entry, type SnapshotMeta } from "./messages.ts";

/** The log of one member. */
export class RaftLog {
  /** The index of the last entry folded into a snapshot (0: none); entries begin after it. */
  private offsetIndex = 0;
  /** The term of the entry at `offsetIndex` (0 when it is 0). */
  private offsetTerm = 0;
  /** `entries[i].index === offsetIndex + 1 + i`. */
  private readonly entries: Entry[] = [];
  // invariant: applied <= committed <= lastIndex()
  /** The highest index known committed. */
  committed = 0;
  /** The highest index the host has applied (acknowledged by `advance`). */
  applied = 0;
  // invariant: offsetIndex + 1 <= unstableFrom <= lastIndex() + 1
  /** The first index the host has not yet persisted. */
  private unstableFrom = 1;
  /**
   * Snapshots installed so far. Persisting a snapshot replaces the stored log, so entries of a
   * `Ready` handed out before an install are no longer durable once it is: an acknowledgement
   * for them must not count (see `RaftNode.advance`).
   */
  restores = 0;

  /**
   * Builds a log from what the host restored from storage (all of it counts as durable): an
   * optional snapshot, then the entries after it (entries at or below the snapshot are skipped,
   * since storage may compact lazily).
   */
  static restore(snapshot: SnapshotMeta | undefined, entries: readonly Entry[], committed: number): RaftLog {
    const log = new RaftLog();
    if (snapshot !== undefined) {
      log.offsetIndex = snapshot.index;
      log.offsetTerm = snapshot.term;
    }
    for (const entry of entries) {
      if (entry.index <= log.offsetIndex) continue;
      assert(entry.index === log.lastIndex() + 1, () => `restored entries are consecutive (at ${entry.index})`);
      assert(entry.term >= log.lastTerm(), "restored terms never decrease");
      log.entries.push(entry);
    }
    log.unstableFrom = log.lastIndex() + 1;
    const commit = Math.max(committed, log.offsetIndex);
    assert(commit <= log.lastIndex(), "restored commit index is within the restored log");
    log.committed = commit;
    log.applied = log.offsetIndex;
    return log;
  }

  /**
   * Drops entries up to `index` (which must be applied), after the host's state machine produced a
   * snapshot there. The term at `index` is kept, so that appends following it still match.
   */
  compact(index: number): void {
    assert(index <= this.applied, () => `compaction at ${index} is within the applied prefix (${this.applied})`);
    if (index <= this.offsetIndex) return;
    const term = this.term(index) as number;
    this.entries.splice(0, index - this.offsetIndex);
    this.offsetIndex = index;
    this.offsetTerm = term;
    this.unstableFrom = Math.max(this.unstableFrom, index + 1);
  }

  /**
   * Replaces the whole log with a snapshot received from the leader: nothing is held beyond it,
   * and everything up to it is committed. The host applies the snapshot (`applied` follows once it
   * has) and persists it (`stableTo` the snapshot's index follows).
   */
  restoreSnapshot(snapshot: SnapshotMeta): void {
    assert(snapshot.index > this.committed, "an installed snapshot is beyond the commit index");
    this.restores += 1;
    this.entries.length = 0;
    this.offsetIndex = snapshot.index;
    this.offsetTerm = snapshot.term;
    this.committed = snapshot.index;
    this.unstableFrom = snapshot.index + 1;
  }

  /** The index of the first entry held (after the compaction point). */
  firstIndex(): number {
    return this.offsetIndex + 1;
  }

  /** The index of the last entry (the compaction point if there are none). */
  lastIndex(): number {
    return this.offsetIndex + this.entries.length;
  }

  /** The term of the last entry. */
  lastTerm(): number {
    return this.term(this.lastIndex()) ?? 0;
  }

  /** The term of the entry at `index`, or `undefined` when it is compacted away or beyond the end. */
  term(index: number): number | undefined {
    if (index === this.offsetIndex) return this.offsetTerm;
    if (index < this.offsetIndex || index > this.lastIndex()) return undefined;
    return (this.entries[index - this.offsetIndex - 1] as Entry).term;
  }

  /** The entry at `index`; it must be held. */
  entry(index: number): Entry {
    const entry = this.entries[index - this.offsetIndex - 1];
    assert(entry !== undefined, () => `entry ${index} is held`);
    return entry;
  }

  /** Whether the entry at `index` has `term`. */
  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Whether a log ending at (`lastIndex`, `lastTerm`) is at least as up to date as this one (§5.4.1). */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myLastTerm = this.lastTerm();
    return lastTerm > myLastTerm || (lastTerm === myLastTerm && lastIndex >= this.lastIndex());
  }

  /**
   * The last index at or below `index` whose term is at most `term`, with that term: the point a
   * leader with an entry of `term` at `index` can probe next, skipping whole conflicting terms.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    let at = Math.min(index, this.lastIndex());
    for (; at > this.offsetIndex; at -= 1) {
      const atTerm = this.term(at) as number;
      if (atTerm <= term) return { index: at, term: atTerm };
    }
    return { index: this.offsetIndex, term: this.offsetTerm };
  }

  /**
   * Appends `entries` that follow (`prevIndex`, `prevTerm`) from a leader, if this log holds that
   * entry; truncates a conflicting suffix; advances the commit index to at most the new entries' end.
   * Returns the index of the last new entry, or `undefined` when the log does not match.
   */
  maybeAppend(
    prevIndex: number,
    prevTerm: number,
    commit: number,
    entries: readonly Entry[],
  ): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNewIndex = prevIndex + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      assert(conflict > this.committed, () => `entry ${conflict} conflicts with a committed entry`);
      this.append(entries.slice(conflict - prevIndex - 1));
    }
    this.commitTo(Math.min(commit, lastNewIndex));
    return lastNewIndex;
  }

  /** The first index among `entries` that this log lacks or holds with another term; 0 if none. */
  private findConflict(entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /** Appends `entries`, replacing any suffix from `entries[0].index` on. */
  append(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    assert(first.index > this.committed, "appends never replace committed entries");
    assert(first.index <= this.lastIndex() + 1, "appends leave no gap");
    assert(first.index > this.offsetIndex, "appends do not reach into the compacted prefix");
    if (first.index <= this.lastIndex()) {
      this.entries.length = first.index - this.offsetIndex - 1;
      this.unstableFrom = Math.min(this.unstableFrom, first.index);
    }
    for (const entry of entries) {
      assert(entry.index === this.lastIndex() + 1, "appended entries are consecutive");
      this.entries.push(entry);
    }
  }

  /** Raises the commit index to `index` (never lowers it). */
  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), () => `commit ${index} is within the log (last ${this.lastIndex()})`);
    this.committed = index;
  }

  /** Entries in `[low, high]`, stopping once `bytesMax` is reached (at least one is returned). */
  slice(low: number, high: number, bytesMax: number): Entry[] {
    assert(low > this.offsetIndex, "slice starts after the compaction point");
    assert(high <= this.lastIndex(), "slice ends within the log");
    const out: Entry[] = [];
    let bytes = 0;
    for (let index = low; index <= high; index += 1) {
      const entry = this.entry(index);
      bytes += entryBytes(entry);
      if (out.length > 0 && bytes > bytesMax) break;
      out.push(entry);
    }
    return out;
  }

  /** Whether any entry awaits persisting (without copying them). */
  hasUnstable(): boolean {
    return this.unstableFrom <= this.lastIndex();
  }

  /** Entries the host has not yet persisted. */
  unstableEntries(): Entry[] {
    return this.entries.slice(this.unstableFrom - this.offsetIndex - 1);
  }

  /** The highest index the host has persisted. */
  stableIndex(): number {
    return this.unstableFrom - 1;
  }

  /**
   * Marks entries up to (`index`, `term`) persisted. Ignored when that entry has since been
   * replaced by a truncation (its term no longer matches): the replacement is still unstable.
   */
  stableTo(index: number, term: number): void {
    if (index < this.unstableFrom) return;
    if (!this.matchTerm(index, term)) return;
    this.unstableFrom = index + 1;
  }

  /** Committed entries after `after`, up to `bytesMax` (at least one if any). */
  committedAfter(after: number, bytesMax: number): Entry[] {
    if (after >= this.committed) return [];
    return this.slice(after + 1, this.committed, bytesMax);
  }

  /** Records that the host applied entries up to `index` (or a snapshot ending there). */
  appliedTo(index: number): void {
    assert(index <= this.committed, "applied entries are committed");
    if (index > this.applied) this.applied = index;
  }

  /** The compaction point: the last index folded into a snapshot (0: none). */
  snapshotIndex(): number {
    return this.offsetIndex;
  }
}
