/**
 * The gateway's routing decisions, apart from the bytes: where a request for a key goes, and what
 * happens when its owner refuses it or cannot be reached. The HTTP gateway (`createGateway`)
 * carries requests and answers over node:http and undici; the simulator carries them over its
 * network; both decide with {@link routeRequest}.
 *
 * The rule: route from the member's table (acquiring the key on first use) and send. A worker's
 * own refusal (409 with `x-orrery-refused`) or an unreachable worker gets one fresh route (after a
 * linearizable read) and one more try. Routing that finds no owner, or fails with an orrery error,
 * is a 503 with `Retry-After`; anything else that routing throws is a 500.
 */
import { OrreryError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import type { ResourceKey } from "../placement/types.ts";
import type { RouteAnswer } from "./placement-leader.ts";

/** Where a key's requests go, as the gateway asks for it. */
export interface GatewayRoutes {
  /**
   * Where `key`'s requests go.
   *
   * `fresh = false`: from the member's placement table as applied (acquiring the key on first use).
   * `fresh = true`: after a linearizable read; asked after a worker refused or could not be reached.
   *
   * May throw `NotLeaderError`, `TimeoutError`, `ClosedError`, `ProposalDroppedError` or
   * `NoOwnerError`: all transient, answered 503 with `Retry-After`.
   */
  route(key: ResourceKey, fresh: boolean): Promise<RouteAnswer>;
}

/** A route the gateway can send to. */
export type OwnerRoute = Extract<RouteAnswer, { status: "ok" }>;

/** How one attempt at a worker ended. */
export type AttemptResult =
  /** The worker's answer went to the client, whatever its status. */
  | { readonly kind: "answered" }
  /** The worker refused the key itself (409 with `x-orrery-refused`): why. */
  | { readonly kind: "refused"; readonly reason: string }
  /** Nothing was answered: refused or reset connection, a bad address. Another owner may be reachable. */
  | { readonly kind: "unreachable"; readonly message: string }
  /** The worker took too long. */
  | { readonly kind: "timeout"; readonly message: string }
  /** Anything else: a malformed answer, or an answer that broke off after it had started. */
  | { readonly kind: "error"; readonly message: string };

/**
 * What became of a routed request (the `outcome` label of `orrery_gateway_requests_total`), for
 * those decided by routing: `routed` (a worker answered), `no_owner`, `refused`,
 * `upstream_error`, `timeout`, `internal`.
 */
export type RoutingOutcome = "routed" | "no_owner" | "refused" | "upstream_error" | "timeout" | "internal";

/** The gateway's own answer when no worker's answer went to the client. */
export interface GatewayAnswer {
  readonly outcome: Exclude<RoutingOutcome, "routed">;
  readonly status: number;
  readonly body: { readonly error: string; readonly message?: string; readonly reason?: string };
  /** Whether the answer carries `Retry-After` (every 503 does). */
  readonly retryAfter: boolean;
}

/** One routed request, as {@link routeRequest} needs it. */
export interface RoutingContext {
  readonly key: ResourceKey;
  readonly routes: GatewayRoutes;
  /** Sends the request to the owner `route` names. */
  attempt(route: OwnerRoute): Promise<AttemptResult>;
  /** False once the request has an outcome of its own (timed out, client gone): stop quietly. */
  active(): boolean;
  /** Called before the second attempt. */
  onRetry?(): void;
  readonly logger?: Logger;
}

/**
 * Routes one request: route, attempt, and on a refusal or an unreachable owner one fresh route and
 * one more attempt. Resolves with `null` when a worker's answer went to the client (or the request
 * stopped being active), otherwise with the gateway's own answer.
 */
export async function routeRequest(context: RoutingContext): Promise<GatewayAnswer | null> {
  const first = await resolveRoute(context, false);
  if (first === null || "outcome" in first) return first;
  const failure = await context.attempt(first);
  if (failure.kind === "answered" || !context.active()) return null;
  if (failure.kind !== "refused" && failure.kind !== "unreachable") return failureAnswer(failure, first);
  const second = await resolveRoute(context, true);
  if (second === null || "outcome" in second) return second;
  context.onRetry?.();
  const again = await context.attempt(second);
  if (again.kind === "answered" || !context.active()) return null;
  if (again.kind !== "refused" && again.kind !== "unreachable") return failureAnswer(again, second);
  const reason = `${explain(again, second)} (retried after: ${explain(failure, first)})`;
  return { outcome: again.kind === "refused" ? "refused" : "upstream_error", status: 503, body: { error: "no-owner", reason }, retryAfter: true };
}

/** The route, the gateway's answer when there is none, or `null` when the request stopped. */
async function resolveRoute(context: RoutingContext, fresh: boolean): Promise<OwnerRoute | GatewayAnswer | null> {
  let answer: RouteAnswer;
  try {
    answer = await context.routes.route(context.key, fresh);
  } catch (error) {
    if (!context.active()) return null;
    if (OrreryError.isOrreryError(error)) {
      context.logger?.debug("no route now", { key: context.key, fresh, error });
      return { outcome: "no_owner", status: 503, body: { error: error.code, message: error.message }, retryAfter: true };
    }
    context.logger?.warn("routing failed", { key: context.key, fresh, error });
    return { outcome: "internal", status: 500, body: { error: "internal", message: "routing failed" }, retryAfter: false };
  }
  if (!context.active()) return null;
  if (answer.status === "retry") return { outcome: "no_owner", status: 503, body: { error: "no-owner", reason: answer.reason }, retryAfter: true };
  return answer;
}

/** The answer to an attempt's failure that is not worth a retry: 504 for a timeout, else 502. */
function failureAnswer(failure: Exclude<AttemptResult, { kind: "answered" }>, route: OwnerRoute): GatewayAnswer {
  if (failure.kind === "timeout") return { outcome: "timeout", status: 504, body: { error: "timeout", message: failure.message }, retryAfter: false };
  return { outcome: "upstream_error", status: 502, body: { error: "upstream-error", message: explain(failure, route) }, retryAfter: false };
}

/** A failed attempt in words, for the answer's `reason`. */
function explain(failure: Exclude<AttemptResult, { kind: "answered" }>, route: OwnerRoute): string {
  const { owner, address, epoch } = route;
  switch (failure.kind) {
    case "refused":
      return `${owner} at ${address} refused the key at epoch ${epoch}: ${failure.reason}`;
    case "unreachable":
      return `${owner} at ${address} could not be reached: ${failure.message}`;
    case "timeout":
    case "error":
      return `${owner} at ${address} failed: ${failure.message}`;
  }
}
