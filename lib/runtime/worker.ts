/**
 * `createWorker`: the host's worker agent behind a node:http server, on the Node clock. The agent
 * decides (leases, renewals, whether a request may be served); this adapter carries the bytes:
 * requests arrive with `x-orrery-key` and `x-orrery-epoch`, one the worker may not serve at that
 * epoch is answered 409 with `x-orrery-refused` before its body is read, and the handler's answer
 * goes back with the grant in the headers.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { ConfigError, TransportError } from "../errors.ts";
import { ROUTING_HEADERS, keyOfUrl, type WorkerResponse } from "../host/routing.ts";
import { startWorkerAgent, type ServeResult, type WorkerAgent, type WorkerAgentOptions } from "../host/worker.ts";
import type { ResourceKey, WorkerId } from "../placement/types.ts";
import type { Clock } from "../ports/clock.ts";
import { nodeClock } from "./clock.ts";
import { readBodyWithin } from "./http-body.ts";

/** The largest routed request body a worker reads, by default (1 MiB). */
export const WORKER_BODY_BYTES_MAX_DEFAULT = 1024 * 1024;

/** Options of {@link createWorker}: the agent's, and where its HTTP server listens. */
export interface WorkerOptions extends Omit<WorkerAgentOptions, "clock" | "address" | "incarnation"> {
  /** Where routed requests arrive (`host:port`). @defaultValue "127.0.0.1:0" */
  readonly listen?: string;
  /** The address gateways use to reach `listen` (e.g. behind NAT). @defaultValue the bound address */
  readonly advertise?: string;
  /** @defaultValue {@link WORKER_BODY_BYTES_MAX_DEFAULT} */
  readonly bodyBytesMax?: number;
  /** The worker's time. @defaultValue the Node clock */
  readonly clock?: Clock;
  /**
   * Where renewal sequence numbers start; each start must exceed every earlier one of this worker.
   * @defaultValue the wall clock in microseconds
   */
  readonly incarnation?: number;
}

/** A running worker. */
export interface OrreryWorker extends Omit<WorkerAgent, "admit" | "run" | "serve"> {
  /** Stops the worker (leaving gracefully first, by default) and its HTTP server. Idempotent. */
  close(options?: { readonly leave?: boolean }): Promise<void>;
}

/**
 * Starts a worker: listens for routed requests, starts its transport, joins and starts renewing.
 * Resolves once listening; `ready()` tells when it has joined.
 * @throws ConfigError for bad options; TransportError when it cannot listen.
 */
export async function createWorker(options: WorkerOptions): Promise<OrreryWorker> {
  const bodyBytesMax = options.bodyBytesMax ?? WORKER_BODY_BYTES_MAX_DEFAULT;
  if (!Number.isSafeInteger(bodyBytesMax) || bodyBytesMax < 0) {
    throw new ConfigError("bodyBytesMax", `must be an integer >= 0, got ${String(bodyBytesMax)}`);
  }
  let agent: WorkerAgent | null = null;
  const server = await listen(options.listen ?? "127.0.0.1:0", options.id, (req, res) => {
    if (agent === null) return answerJson(res, 503, { error: "starting" });
    serve(agent, bodyBytesMax, req, res).catch((error: unknown) => {
      options.logger?.error("serving a request failed", { worker: options.id, error });
      if (!res.headersSent) answerJson(res, 500, { error: "internal" });
      else res.destroy();
    });
  });
  const bound = server.address();
  const address = options.advertise ?? (typeof bound === "object" && bound !== null ? `${hostOf(bound.address)}:${bound.port}` : "");
  const { listen: _listen, advertise: _advertise, bodyBytesMax: _body, ...agentOptions } = options;
  try {
    agent = await startWorkerAgent({
      ...agentOptions,
      clock: options.clock ?? nodeClock(),
      address,
      incarnation: options.incarnation ?? Date.now() * 1000,
    });
  } catch (error) {
    await closeServer(server);
    throw error;
  }
  const running = agent;
  let closing: Promise<void> | null = null;
  return {
    id: running.id,
    address: () => running.address(),
    ready: (timeoutMs) => running.ready(timeoutMs),
    owned: () => running.owned(),
    leaseUntil: () => running.leaseUntil(),
    ownershipVersion: () => running.ownershipVersion(),
    stats: () => running.stats(),
    leave: (timeoutMs) => running.leave(timeoutMs),
    close(closeOptions = {}): Promise<void> {
      closing ??= (async () => {
        await running.close(closeOptions);
        await closeServer(server);
      })();
      return closing;
    },
  };
}

async function serve(agent: WorkerAgent, bodyBytesMax: number, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? "/";
  const path = keyOfUrl(url);
  const key = header(req, ROUTING_HEADERS.key);
  const epoch = Number(header(req, ROUTING_HEADERS.epoch));
  if (key === undefined || key !== path || !Number.isSafeInteger(epoch) || epoch < 1) {
    answerJson(res, 400, { error: "not-routed", message: "a routed request carries x-orrery-key (its path) and x-orrery-epoch" });
    return;
  }
  // Refused before the body is read: a stale route costs the worker no more than its headers.
  const refusal = await agent.admit(key, epoch);
  if (refusal !== null) {
    writeResult(res, { kind: "refused", reason: refusal, message: refusal }, key, epoch, agent.id);
    req.resume();
    return;
  }
  const body = await readBodyWithin(req, bodyBytesMax, () =>
    answerJson(res, 413, { error: "too-large", message: `bodies are limited to ${bodyBytesMax} bytes` }),
  );
  if (body === null) return;
  const clientGone = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) clientGone.abort();
  });
  const q = url.indexOf("?");
  const result = await agent.run(
    { method: req.method ?? "GET", url, path, query: q === -1 ? "" : url.slice(q + 1), headers: req.headers, body },
    key,
    epoch,
    clientGone.signal,
  );
  writeResult(res, result, key, epoch, agent.id);
}

function writeResult(res: ServerResponse, result: ServeResult, key: ResourceKey, epoch: number, owner: WorkerId): void {
  switch (result.kind) {
    case "response":
      return writeResponse(res, result.response, key, epoch, owner);
    case "refused":
      if (!res.headersSent) res.setHeader(ROUTING_HEADERS.refused, result.reason);
      return answerJson(res, 409, { error: "refused", reason: result.reason, key, epoch, message: result.message });
    case "timeout":
      return answerJson(res, 504, { error: "timeout", message: result.message });
    case "failed":
      return answerJson(res, 500, { error: "internal", message: result.message });
  }
}

function listen(address: string, worker: WorkerId, onRequest: (req: IncomingMessage, res: ServerResponse) => void): Promise<Server> {
  const colon = address.lastIndexOf(":");
  const host = address.slice(0, colon).replace(/^\[|\]$/g, "");
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError("listen", `not host:port: ${address}`);
  const server = createServer({ keepAlive: true }, onRequest);
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve, reject) => {
    server.once("error", (error) => reject(new TransportError("config", `worker ${worker} cannot listen on ${address}: ${error.message}`)));
    server.listen({ host, port }, () => resolve(server));
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}

function writeResponse(res: ServerResponse, response: WorkerResponse, key: ResourceKey, epoch: number, owner: WorkerId): void {
  if (res.headersSent || res.destroyed) return;
  const body = response.body ?? "";
  for (const [name, value] of Object.entries(response.headers ?? {})) res.setHeader(name, value as string | number | string[]);
  res.setHeader(ROUTING_HEADERS.epoch, String(epoch));
  res.setHeader(ROUTING_HEADERS.owner, owner);
  res.setHeader(ROUTING_HEADERS.key, key);
  res.statusCode = response.status ?? 200;
  res.end(body);
}

function answerJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function hostOf(address: string): string {
  return address.includes(":") ? `[${address}]` : address;
}
