/**
 * The members' gateways in the simulator: a placement client's routed write arrives at a member,
 * which decides with the host's own routing rules (`routeRequest` over `member.routes`: route,
 * acquire on first use, a fresh route and one retry after a refusal or an unreachable owner) and
 * sends each attempt to the owning worker across the simulated network, where the real worker
 * agent admits and serves it. Only the bytes are not simulated: the HTTP server and the undici
 * pools are the production adapter's.
 */
import { routeRequest, type AttemptResult, type OwnerRoute } from "../lib/host/gateway-routing.ts";
import { silentLogger } from "../lib/logger.ts";
import type { ServeResult } from "../lib/host/worker.ts";
import type { SimulationContext } from "./simulator.ts";

/** A routed write, as a placement client sends it to a member. */
export interface RoutedRequest {
  readonly requestId: number;
  readonly client: number;
  readonly key: string;
  /** Names the write, so that an acknowledged one can be looked for in the resource. */
  readonly writeId: string;
}

/** A member's answer: the worker's status, or the gateway's own (503, 502, 504, 500). */
export interface RoutedReply {
  readonly requestId: number;
  readonly status: number;
}

/** What a placement client gives the gateways. */
export interface RoutedClient {
  readonly id: number;
  onReply(reply: RoutedReply): void;
}

/**
 * The gateways of every member. An attempt at a worker that gets no answer within
 * `attemptTimeoutUs` (the worker is cut off or paused) counts as a timeout, as undici's headers
 * timeout does; a worker that is down answers at once with a refused connection.
 */
export class Gateways {
  private readonly attemptTimeoutMs: number;

  constructor(private readonly sim: SimulationContext) {
    this.attemptTimeoutMs = 2 * sim.options.workload.requestTimeoutMs;
  }

  /** A client sends `request` to `member`'s gateway. */
  send(client: RoutedClient, member: string, request: RoutedRequest): void {
    const from = `p${client.id}`;
    this.sim.wire.call(from, member, "routed", () => this.serve(member, from, client, request));
  }

  private serve(id: string, from: string, client: RoutedClient, request: RoutedRequest): void {
    const sim = this.sim;
    const member = sim.members.get(id);
    const placement = member?.placement;
    if (member === undefined || placement === null || placement === undefined) return;
    const generation = member.process.generation;
    const alive = () => member.process.up && member.process.generation === generation;
    let answered = 0;
    const attempt = (route: OwnerRoute): Promise<AttemptResult> =>
      this.attempt(id, member.process.clockPort(), route, request).then((result) => {
        if (result.kind === "answered") answered = result.status;
        return result.kind === "answered" ? { kind: "answered" } : result;
      });
    void routeRequest({ key: request.key, routes: placement.routes, attempt, active: alive, logger: silentLogger }).then(
      (answer) => {
        if (!alive()) return;
        const status = answer === null ? answered : answer.status;
        if (status === 200) sim.onRoutedWrite();
        sim.wire.call(id, from, `routed:${status}`, () => client.onReply({ requestId: request.requestId, status }));
      },
      (error: unknown) => sim.violate({ checker: "api-error", message: `routing on ${id} threw: ${String(error)}`, t: sim.now }),
    );
  }

  /** One attempt at the owner: the worker agent's verdict, or why there was none. */
  private attempt(
    member: string,
    clock: { after(ms: number, fn: () => void): () => void },
    route: OwnerRoute,
    request: RoutedRequest,
  ): Promise<(AttemptResult & { kind: Exclude<AttemptResult["kind"], "answered"> }) | { kind: "answered"; status: number }> {
    const sim = this.sim;
    return new Promise((resolve) => {
      let done = false;
      const finish = (result: Parameters<typeof resolve>[0]) => {
        if (done) return;
        done = true;
        cancel();
        resolve(result);
      };
      const cancel = clock.after(this.attemptTimeoutMs, () => finish({ kind: "timeout", message: `no answer within ${this.attemptTimeoutMs} ms` }));
      sim.wire.call(
        member,
        route.address,
        "attempt",
        () => {
          const worker = sim.workers.get(route.owner);
          const serving = worker?.serve(request.key, route.epoch, request.writeId);
          if (serving === null || serving === undefined) return;
          void serving.then((result) => {
            sim.wire.call(route.address, member, `answer:${result.kind}`, () => finish(answerOf(result)));
          });
        },
        () => finish({ kind: "unreachable", message: "connection refused" }),
      );
    });
  }
}

/** What the gateway sees of a worker's verdict: its own refusal, or an answer passed through. */
function answerOf(result: ServeResult): { kind: "refused"; reason: string } | { kind: "answered"; status: number } {
  switch (result.kind) {
    case "refused":
      return { kind: "refused", reason: result.reason };
    case "response":
      return { kind: "answered", status: result.response.status ?? 200 };
    case "timeout":
      return { kind: "answered", status: 504 };
    case "failed":
      return { kind: "answered", status: 500 };
  }
}
