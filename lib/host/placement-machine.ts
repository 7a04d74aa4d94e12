/**
 * The placement table as a state machine a node replicates (issue #8 builds members, workers and
 * the gateway on it): commands are `encodePlacementCommand` bytes, results are what the table did,
 * snapshots are the table's own. A malformed command is refused as a result value (never a throw:
 * a throw would stop the member), so every member refuses it alike.
 */
import { CodecError } from "../errors.ts";
import { decodePlacementCommand } from "../placement/commands.ts";
import { PlacementTable, type PlacementOptions, type PlacementResult } from "../placement/table.ts";
import type { PlacementCommand } from "../placement/types.ts";

import type { StateMachine } from "./options.ts";

/** Told of every command applied, on every member, in log order. Must not throw. */
export type PlacementApplied = (command: PlacementCommand, result: PlacementResult, index: number) => void;

/** A {@link PlacementTable} behind the {@link StateMachine} interface. */
export class PlacementMachine implements StateMachine<PlacementResult> {
  private current: PlacementTable;
  private listeners: PlacementApplied[] = [];

  constructor(private readonly options: Partial<PlacementOptions> = {}) {
    this.current = new PlacementTable(options);
  }

  /** The table as of the last applied entry. Read it after `node.read()` for a linearizable view. */
  get table(): PlacementTable {
    return this.current;
  }

  /**
   * Calls `listener` after each command is applied (the placement leader keeps its lease tracker
   * in step; an audit log or the simulator's checkers follow grants). Returns an unsubscribe.
   */
  subscribe(listener: PlacementApplied): () => void {
    this.listeners = [...this.listeners, listener];
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  apply(command: Uint8Array, position: { readonly index: number; readonly term: number }): PlacementResult {
    let decoded: PlacementCommand;
    try {
      decoded = decodePlacementCommand(command);
    } catch (error) {
      if (!CodecError.is(error)) throw error;
      return { changed: [], removed: [], workersRemoved: [], refused: `malformed command: ${error.message}` };
    }
    const result = this.current.apply(decoded, position.index);
    for (const listener of this.listeners) listener(decoded, result, position.index);
    return result;
  }

  snapshot(): Uint8Array {
    return this.current.snapshot();
  }

  restore(data: Uint8Array): void {
    this.current = PlacementTable.restore(data);
  }
}
