/**
 * What the gateway (on every member) and a worker agree on: how a routed request is described to
 * the worker's handler, the headers that carry the grant, and how a worker says "not mine".
 *
 * The resource key of a request is its path without the query string, exactly as received
 * (percent-encoding included): `/db/users?limit=5` is key `/db/users`.
 */
import type { ResourceKey } from "../placement/types.ts";

/** Headers the gateway adds to a routed request, and a worker's refusal carries. */
export const ROUTING_HEADERS = {
  /** The resource key the gateway routed by. */
  key: "x-orrery-key",
  /** The grant's epoch (the fencing token) the gateway believes the owner holds. */
  epoch: "x-orrery-epoch",
  /** The owner the gateway routed to (on the response, too). */
  owner: "x-orrery-owner",
  /**
   * Set by a worker on a 409 it answers *itself* because it may not serve the key at that epoch
   * (value: why, one of {@link RefusalReason}). Only such a 409 makes the gateway refresh its route
   * and retry; a 409 from the handler passes through untouched.
   */
  refused: "x-orrery-refused",
} as const;

/**
 * Why a worker refused a routed request:
 * - `not-owner`: it holds no grant for the key at that epoch (moved, or never held).
 * - `lease-expired`: its lease lapsed (no renewal answer in time); it serves nothing until renewed.
 * - `draining`: the key is moving away.
 * - `stale-epoch`: its write was refused by the resource's own fence (a newer owner wrote since).
 */
export type RefusalReason = "not-owner" | "lease-expired" | "draining" | "stale-epoch";

/** The request a worker's `handle` receives (the body fully read, within the body limit). */
export interface WorkerRequest {
  readonly method: string;
  /** The path with the query string, as received. */
  readonly url: string;
  /** The path without the query string: the resource key. */
  readonly path: string;
  /** The query string without `?`, or `""`. */
  readonly query: string;
  /** Lower-case header names, as node:http gives them. */
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  readonly body: Uint8Array;
}

/** What a worker's `handle` returns. */
export interface WorkerResponse {
  /** @defaultValue 200 */
  readonly status?: number;
  readonly headers?: Readonly<Record<string, string | number | readonly string[]>>;
  readonly body?: string | Uint8Array;
}

/** What a handler knows about the grant it serves under. */
export interface ServeContext {
  readonly key: ResourceKey;
  /** The grant's epoch: the fencing token to check against the resource before every write. */
  readonly epoch: number;
  /** Aborted when the request times out or the client goes away. */
  readonly signal: AbortSignal;
  /**
   * Whether the worker may still serve `key` at `epoch` right now (lease valid, grant unchanged).
   * Check it again after any slow step; it is no substitute for the fence, only a cheap early exit.
   */
  stillOwned(): boolean;
}

/** The resource key of a request target (`/a/b?x=1` -> `/a/b`). */
export function keyOfUrl(url: string): ResourceKey {
  const q = url.indexOf("?");
  return q === -1 ? url : url.slice(0, q);
}
