/**
 * The gateway every member runs, as an HTTP server: it sends a request for path P to the worker
 * that owns resource key P ({@link keyOfUrl}), with the grant in {@link ROUTING_HEADERS}. Where
 * it goes and what happens on a refusal are decided by the host's `routeRequest` (the simulator
 * decides with the same function); this adapter carries the bytes.
 *
 * A request's body is read whole (within `bodyBytesMax`) before it is routed, so that it can be
 * sent a second time: when the owner refuses the key (409 with `x-orrery-refused`) or cannot be
 * reached, the gateway asks for a fresh route (a linearizable read) and retries once. The worker's
 * answer is streamed back with backpressure; nothing of it is buffered beyond a chunk.
 *
 * Every request gets exactly one outcome (the `outcome` label of `orrery_gateway_requests_total`):
 *
 * | outcome          | answer                                                                   |
 * |------------------|--------------------------------------------------------------------------|
 * | `routed`         | the worker's, passed through                                             |
 * | `no_owner`       | 503 + `Retry-After`: routing found no owner now, or threw a transient error |
 * | `refused`        | 503 + `Retry-After`: the worker refused, then refused (or failed) again  |
 * | `upstream_error` | 503 when unreachable twice, 502 for a malformed answer, a cut answer     |
 * | `too_large`      | 413                                                                      |
 * | `timeout`        | 504 (or a cut answer) after `requestTimeoutMs`                           |
 * | `bad_request`    | 400 or 414: the target is not a path, or the key is too long             |
 * | `reserved`       | `/health/*`, `/metrics`, `/status`, `/orrery/*`                          |
 * | `internal`       | 500: routing threw something that is not an orrery error (a bug)         |
 * | `aborted`        | none: the client went away first                                         |
 * | `closing`        | 503 + `Retry-After`: the gateway is closing                              |
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { isIP, type AddressInfo } from "node:net";
import { Pool, type Dispatcher } from "undici";
import { ConfigError } from "../errors.ts";
import { routeRequest, type AttemptResult, type GatewayRoutes, type OwnerRoute } from "../host/gateway-routing.ts";
import { MetricsRegistry, type Counter, type Gauge, type Histogram } from "../host/metrics.ts";
import { ROUTING_HEADERS, keyOfUrl } from "../host/routing.ts";
import { silentLogger, type Logger } from "../logger.ts";

export type { GatewayRoutes } from "../host/gateway-routing.ts";

/** The longest resource key routed, in UTF-8 bytes; longer ones are answered 414. */
export const KEY_BYTES_MAX = 1024;

/** The default largest request body: 1 MiB. */
export const GATEWAY_BODY_BYTES_MAX_DEFAULT = 1024 * 1024;

/** The default time a routed request may take, routing and the worker's answer included: 10 s. */
export const GATEWAY_REQUEST_TIMEOUT_MS_DEFAULT = 10_000;

/** The default largest request head (request line and headers): 16 KiB. */
export const GATEWAY_HEADERS_BYTES_MAX_DEFAULT = 16 * 1024;

/** The default `Retry-After` of a 503, in seconds. */
export const GATEWAY_RETRY_AFTER_SECONDS_DEFAULT = 1;

/** The default number of keep-alive connections to one worker. */
export const GATEWAY_WORKER_CONNECTIONS_MAX_DEFAULT = 64;

/** The default number of worker connection pools kept. */
export const GATEWAY_WORKER_POOLS_MAX_DEFAULT = 1024;

/** The default number of inbound connections open at once. */
export const GATEWAY_CONNECTIONS_MAX_DEFAULT = 10_000;

/** Bounds of the options, checked once in {@link createGateway}. */
const BODY_BYTES_LIMIT = 1024 * 1024 * 1024;
const HEADERS_BYTES_MIN = 1024;
const HEADERS_BYTES_LIMIT = 1024 * 1024;
/** setTimeout's largest delay. */
const TIMEOUT_MS_LIMIT = 2 ** 31 - 1;
const RETRY_AFTER_SECONDS_LIMIT = 86_400;
const WORKER_CONNECTIONS_LIMIT = 65_536;
const WORKER_POOLS_LIMIT = 1_000_000;
const CONNECTIONS_LIMIT = 1_000_000;

/**
 * Body bytes read and thrown away after an early answer (413, 504, 4xx) so that the connection
 * can be kept alive; a client that sends more loses its connection.
 */
const DISCARD_BYTES_MAX = 1024 * 1024;

/** How long idle inbound connections are kept open, in milliseconds. */
const KEEP_ALIVE_TIMEOUT_MS = 60_000;

/** The prefix of the gateway's own headers, which a client may not send. */
const ROUTING_HEADER_PREFIX = "x-orrery-";

/** The prefix of paths kept for the cluster's own endpoints, never routed. */
const RESERVED_PATH_PREFIX = "/orrery/";

/** Options of {@link createGateway}. */
export interface GatewayOptions {
  /** Where each key's requests go. */
  readonly routes: GatewayRoutes;
  /** `host:port` to listen on (port 0: any free port; IPv6 in brackets). */
  readonly listen: string;
  /**
   * The largest request body, in bytes; larger ones are answered 413, by their `content-length`
   * before any is read, or as soon as the bytes streamed in pass it.
   * @defaultValue {@link GATEWAY_BODY_BYTES_MAX_DEFAULT}
   */
  readonly bodyBytesMax?: number;
  /**
   * The largest request head in bytes (node:http's `maxHeaderSize`); larger ones are answered 431.
   * @defaultValue {@link GATEWAY_HEADERS_BYTES_MAX_DEFAULT}
   */
  readonly headersBytesMax?: number;
  /**
   * How long a routed request may take in milliseconds, from its arrival to the last byte of the
   * worker's answer: reading the body, routing, and the worker. Beyond it the gateway answers 504
   * (or cuts an answer already started) and aborts the request to the worker.
   * @defaultValue {@link GATEWAY_REQUEST_TIMEOUT_MS_DEFAULT}
   */
  readonly requestTimeoutMs?: number;
  /**
   * The `Retry-After` of every 503, in seconds.
   * @defaultValue {@link GATEWAY_RETRY_AFTER_SECONDS_DEFAULT}
   */
  readonly retryAfterSeconds?: number;
  /**
   * Keep-alive connections to one worker (undici `Pool` connections).
   * @defaultValue {@link GATEWAY_WORKER_CONNECTIONS_MAX_DEFAULT}
   */
  readonly workerConnectionsMax?: number;
  /**
   * Worker connection pools kept; beyond it the least recently used is closed.
   * @defaultValue {@link GATEWAY_WORKER_POOLS_MAX_DEFAULT}
   */
  readonly workerPoolsMax?: number;
  /**
   * Inbound connections open at once (`server.maxConnections`); more are refused.
   * @defaultValue {@link GATEWAY_CONNECTIONS_MAX_DEFAULT}
   */
  readonly connectionsMax?: number;
  /** Whether the member is ready (`GET /health/ready`: 200, or 503 with the reason). */
  readonly ready: () => { readonly ready: boolean; readonly reason?: string };
  /** The member's Prometheus text; `GET /metrics` answers it followed by the gateway's own. */
  readonly metrics: () => string;
  /** The JSON value `GET /status` answers; without it, `/status` is 404. */
  readonly status?: () => unknown;
  /** Where failed requests are logged. @defaultValue {@link silentLogger} */
  readonly logger?: Logger;
}

/**
 * The gateway's counters since it started. Outcome counters (one per request) and attempt
 * counters (`retries`, `refusals`, `unreachable`: one per attempt at a worker) are kept apart.
 */
export interface GatewayStats {
  /** Requests received, reserved paths included. */
  readonly requests: number;
  /** Outcome: answered by a worker, whatever its status. */
  readonly routed: number;
  /** Outcome: 503 because routing answered `retry` or threw a transient (orrery) error. */
  readonly noOwner: number;
  /** Outcome: 503 because the worker refused the key, then the retry failed too. */
  readonly refused: number;
  /** Outcome: the worker could not be reached twice (503), answered badly (502), or cut its answer. */
  readonly upstreamErrors: number;
  /** Outcome: 413, the body was over `bodyBytesMax`. */
  readonly tooLarge: number;
  /** Outcome: 504 (or a cut answer) after `requestTimeoutMs`. */
  readonly timeouts: number;
  /** Outcome: 400 or 414 for a target that is not a routable path. */
  readonly badRequests: number;
  /** Outcome: a reserved path (`/health/*`, `/metrics`, `/status`, `/orrery/*`). */
  readonly reserved: number;
  /** Outcome: 500, routing threw something that is not an orrery error. */
  readonly internalErrors: number;
  /** Outcome: the client went away before the answer was complete. */
  readonly aborted: number;
  /** Outcome: 503, the gateway was closing. */
  readonly closing: number;
  /** Attempts: requests sent to a worker a second time. */
  readonly retries: number;
  /** Attempts: refusals by a worker (409 with `x-orrery-refused`), retried or not. */
  readonly refusals: number;
  /** Attempts: a worker could not be reached (refused or reset connection, bad address). */
  readonly unreachable: number;
  /** Routed requests in progress now. */
  readonly inFlight: number;
  /** Worker connection pools open now. */
  readonly workerPools: number;
}

/** A running gateway. */
export interface Gateway {
  /** The `host:port` it listens on (the actual port when `listen` asked for port 0). */
  address(): string;
  /** Its counters. */
  stats(): GatewayStats;
  /** The gateway's own metrics in Prometheus text format (what `/metrics` adds to the member's). */
  metricsText(): string;
  /**
   * Stops listening, lets requests in progress finish (each is bounded by `requestTimeoutMs`),
   * then closes every inbound connection and every worker pool. Idempotent.
   */
  close(): Promise<void>;
}

/**
 * Validates `options`, starts the gateway and resolves once it listens.
 * @throws ConfigError naming the field for invalid options; the listen error if it cannot listen.
 */
export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  const gateway = new GatewayServer(resolveOptions(options));
  await gateway.listen();
  return gateway;
}

// --- Options ------------------------------------------------------------------------------------

interface ResolvedOptions {
  readonly routes: GatewayRoutes;
  readonly host: string;
  readonly port: number;
  readonly bodyBytesMax: number;
  readonly headersBytesMax: number;
  readonly requestTimeoutMs: number;
  readonly retryAfterSeconds: number;
  readonly workerConnectionsMax: number;
  readonly workerPoolsMax: number;
  readonly connectionsMax: number;
  readonly ready: GatewayOptions["ready"];
  readonly metrics: GatewayOptions["metrics"];
  readonly status: (() => unknown) | null;
  readonly logger: Logger;
}

function resolveOptions(options: GatewayOptions): ResolvedOptions {
  if (typeof options !== "object" || options === null) throw new ConfigError("options", "must be an object");
  const routes = options.routes as unknown;
  if (typeof routes !== "object" || routes === null || typeof (routes as GatewayRoutes).route !== "function") {
    throw new ConfigError("routes", "must have a route(key, fresh) method");
  }
  checkFunction(options.ready, "ready");
  checkFunction(options.metrics, "metrics");
  if (options.status !== undefined) checkFunction(options.status, "status");
  const logger = options.logger ?? silentLogger;
  if (typeof logger !== "object" || logger === null || typeof logger.warn !== "function") {
    throw new ConfigError("logger", "must be a Logger");
  }
  const { host, port } = parseListen(options.listen);
  return {
    routes: options.routes,
    host,
    port,
    bodyBytesMax: integerIn(options.bodyBytesMax, GATEWAY_BODY_BYTES_MAX_DEFAULT, "bodyBytesMax", 0, BODY_BYTES_LIMIT),
    headersBytesMax: integerIn(options.headersBytesMax, GATEWAY_HEADERS_BYTES_MAX_DEFAULT, "headersBytesMax", HEADERS_BYTES_MIN, HEADERS_BYTES_LIMIT),
    requestTimeoutMs: integerIn(options.requestTimeoutMs, GATEWAY_REQUEST_TIMEOUT_MS_DEFAULT, "requestTimeoutMs", 1, TIMEOUT_MS_LIMIT),
    retryAfterSeconds: integerIn(options.retryAfterSeconds, GATEWAY_RETRY_AFTER_SECONDS_DEFAULT, "retryAfterSeconds", 0, RETRY_AFTER_SECONDS_LIMIT),
    workerConnectionsMax: integerIn(options.workerConnectionsMax, GATEWAY_WORKER_CONNECTIONS_MAX_DEFAULT, "workerConnectionsMax", 1, WORKER_CONNECTIONS_LIMIT),
    workerPoolsMax: integerIn(options.workerPoolsMax, GATEWAY_WORKER_POOLS_MAX_DEFAULT, "workerPoolsMax", 1, WORKER_POOLS_LIMIT),
    connectionsMax: integerIn(options.connectionsMax, GATEWAY_CONNECTIONS_MAX_DEFAULT, "connectionsMax", 1, CONNECTIONS_LIMIT),
    ready: options.ready,
    metrics: options.metrics,
    status: options.status ?? null,
    logger,
  };
}

function checkFunction(value: unknown, field: string): void {
  if (typeof value !== "function") throw new ConfigError(field, "must be a function");
}

function integerIn(value: number | undefined, fallback: number, field: string, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(field, `must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

function parseListen(listen: unknown): { host: string; port: number } {
  const match = typeof listen === "string" ? /^(\[[^\]]+\]|[^:[\]\s]+):(\d{1,5})$/.exec(listen) : null;
  const port = Number(match?.[2]);
  if (match === null || port > 65_535) throw new ConfigError("listen", `must be host:port, got ${JSON.stringify(listen)}`);
  return { host: (match[1] as string).replace(/^\[|\]$/g, ""), port };
}

/** Whether `key` is over {@link KEY_BYTES_MAX} UTF-8 bytes; counted only when it could be. */
function keyTooLong(key: string): boolean {
  if (key.length > KEY_BYTES_MAX) return true;
  // A UTF-16 unit is at most 3 UTF-8 bytes.
  return key.length * 3 > KEY_BYTES_MAX && Buffer.byteLength(key) > KEY_BYTES_MAX;
}

/** Whether `address` can name a worker: `host:port` with a non-zero port. */
function isWorkerAddress(address: string): boolean {
  const match = /^(?:\[[0-9a-fA-F:.]+\]|[^:[\]\s/?#@]+):(\d{1,5})$/.exec(address);
  if (match === null) return false;
  const port = Number(match[1]);
  return port > 0 && port <= 65_535;
}

// --- Outcomes and metrics -----------------------------------------------------------------------

/** What became of a request; see the table at the top of this file. */
type Outcome =
  | "routed"
  | "no_owner"
  | "refused"
  | "upstream_error"
  | "too_large"
  | "timeout"
  | "bad_request"
  | "reserved"
  | "internal"
  | "aborted"
  | "closing";

type MutableStats = { -readonly [K in keyof GatewayStats]: GatewayStats[K] };

/** The stats field each outcome counts in. */
const OUTCOME_FIELDS: Readonly<Record<Outcome, keyof GatewayStats>> = {
  routed: "routed",
  no_owner: "noOwner",
  refused: "refused",
  upstream_error: "upstreamErrors",
  too_large: "tooLarge",
  timeout: "timeouts",
  bad_request: "badRequests",
  reserved: "reserved",
  internal: "internalErrors",
  aborted: "aborted",
  closing: "closing",
};

const OUTCOMES = Object.keys(OUTCOME_FIELDS) as Outcome[];

function zeroStats(): MutableStats {
  return {
    requests: 0,
    routed: 0,
    noOwner: 0,
    refused: 0,
    upstreamErrors: 0,
    tooLarge: 0,
    timeouts: 0,
    badRequests: 0,
    reserved: 0,
    internalErrors: 0,
    aborted: 0,
    closing: 0,
    retries: 0,
    refusals: 0,
    unreachable: 0,
    inFlight: 0,
    workerPools: 0,
  };
}

/** The gateway's Prometheus metrics; counters mirror {@link GatewayStats} when rendered. */
class GatewayMetrics {
  private readonly registry = new MetricsRegistry();
  private readonly requests: Counter;
  private readonly retries: Counter;
  private readonly refusals: Counter;
  private readonly unreachable: Counter;
  private readonly inFlight: Gauge;
  private readonly pools: Gauge;
  /** Seconds from arrival to the last byte of the worker's answer, of routed requests. */
  readonly requestSeconds: Histogram;

  constructor() {
    const r = this.registry;
    this.requests = r.counter("orrery_gateway_requests_total", "Requests the gateway answered, by outcome.");
    this.retries = r.counter("orrery_gateway_retries_total", "Requests sent to a worker a second time after a refusal or an unreachable worker.");
    this.refusals = r.counter("orrery_gateway_refusals_total", "Refusals by workers (409 with x-orrery-refused).");
    this.unreachable = r.counter("orrery_gateway_unreachable_total", "Attempts at a worker that could not be reached.");
    this.inFlight = r.gauge("orrery_gateway_requests_in_flight", "Routed requests in progress.");
    this.pools = r.gauge("orrery_gateway_worker_pools", "Worker connection pools open.");
    this.requestSeconds = r.histogram("orrery_gateway_request_seconds", "Time to answer a routed request, in seconds.");
  }

  render(stats: GatewayStats): string {
    for (const outcome of OUTCOMES) this.requests.set(stats[OUTCOME_FIELDS[outcome]], { outcome });
    this.retries.set(stats.retries);
    this.refusals.set(stats.refusals);
    this.unreachable.set(stats.unreachable);
    this.inFlight.set(stats.inFlight);
    this.pools.set(stats.workerPools);
    return this.registry.render();
  }
}

// --- Headers ------------------------------------------------------------------------------------

/** Hop-by-hop response headers (RFC 9110 §7.6.1), never passed on. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

const NO_TOKENS: readonly string[] = [];

/** The header names listed in a `Connection` header, except `close` and `keep-alive`. */
function connectionTokens(value: string | readonly string[]): readonly string[] {
  // Nearly every worker answer says only this: skip the split.
  if (value === "keep-alive" || value === "close") return NO_TOKENS;
  const text = typeof value === "string" ? value : value.join(",");
  const tokens: string[] = [];
  for (const part of text.split(",")) {
    const token = part.trim().toLowerCase();
    if (token !== "" && token !== "close" && token !== "keep-alive") tokens.push(token);
  }
  return tokens;
}

/** A worker's response headers as the client gets them: hop-by-hop ones out, the grant in. */
function clientHeaders(headers: IncomingHttpHeaders, owner: string, epoch: string): (string | string[])[] {
  const listed = headers.connection === undefined ? null : connectionTokens(headers.connection);
  const out: (string | string[])[] = [];
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    if (name === ROUTING_HEADERS.owner || name === ROUTING_HEADERS.epoch) continue;
    if (listed !== null && listed.includes(name)) continue;
    out.push(name, value);
  }
  out.push(ROUTING_HEADERS.owner, owner, ROUTING_HEADERS.epoch, epoch);
  return out;
}

/** Removes the headers named by `tokens` from a flat `[name, value, ...]` list of lower-case names. */
function removeListed(headers: string[], tokens: readonly string[]): string[] {
  if (tokens.length === 0) return headers;
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    if (!tokens.includes(name)) out.push(name, headers[i + 1] as string);
  }
  return out;
}

// --- Answers ------------------------------------------------------------------------------------

const JSON_TYPE = "application/json";
const METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8";

function sendText(res: ServerResponse, status: number, type: string, text: string, extra: readonly string[] | null): void {
  const headers = ["content-type", type, "content-length", String(Buffer.byteLength(text))];
  if (extra !== null) for (const item of extra) headers.push(item);
  res.writeHead(status, headers);
  res.end(text);
}

function sendJson(res: ServerResponse, status: number, body: unknown, extra: readonly string[] | null = null): void {
  sendText(res, status, JSON_TYPE, JSON.stringify(body), extra);
}

/**
 * Reads and drops what is left of a request's body after an early answer, so that the connection
 * can serve the next request; past {@link DISCARD_BYTES_MAX} the connection is closed instead.
 */
function discardBody(req: IncomingMessage): void {
  if (req.complete || req.destroyed) return;
  let seen = 0;
  req.on("data", (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > DISCARD_BYTES_MAX) req.destroy();
  });
  req.on("error", () => {});
  req.resume();
}

/** Error codes of a worker that could not be reached: nothing was answered, another owner may be. */
const UNREACHABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_CLOSED",
  "UND_ERR_DESTROYED",
]);

/** Error codes of a worker that took too long. */
const TIMEOUT_CODES = new Set(["UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);

function errorCode(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") return code;
  // net.connect with autoSelectFamily reports every address's failure in an AggregateError.
  const first = (error as { errors?: unknown }).errors;
  return Array.isArray(first) ? errorCode(first[0]) : undefined;
}

function describeError(error: unknown): string {
  const code = errorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  return code === undefined || message.includes(code) ? message : `${code}: ${message}`;
}

/** How an attempt at a worker failed, with the error the adapter saw. */
type Failure =
  | { readonly kind: "refused"; readonly route: OwnerRoute; readonly reason: string }
  | { readonly kind: "unreachable"; readonly route: OwnerRoute; readonly error: unknown }
  | { readonly kind: "timeout"; readonly route: OwnerRoute; readonly error: unknown }
  /** Anything else: a malformed answer, or the answer broke off after it had started. */
  | { readonly kind: "error"; readonly route: OwnerRoute; readonly error: unknown };

/** An attempt's failure as the routing rules see it. */
function attemptResult(failure: Failure): AttemptResult {
  if (failure.kind === "refused") return { kind: "refused", reason: failure.reason };
  return { kind: failure.kind, message: describeError(failure.error) };
}

class UnreachableAddressError extends Error {
  readonly code = "ECONNREFUSED";
  constructor(address: string) {
    super(`the owner's address ${JSON.stringify(address)} is not host:port`);
    this.name = "UnreachableAddressError";
  }
}

// --- The server ---------------------------------------------------------------------------------

interface PoolEntry {
  readonly pool: Pool;
  /** The gateway's use counter at the last use, for least-recently-used eviction. */
  usedAt: number;
}

class GatewayServer implements Gateway {
  readonly options: ResolvedOptions;
  readonly logger: Logger;
  readonly counts = zeroStats();
  readonly metrics = new GatewayMetrics();
  /** `["retry-after", seconds]`, the extra headers of every 503. */
  readonly retryAfter: readonly string[];
  private readonly server: Server;
  private readonly pools = new Map<string, PoolEntry>();
  private useClock = 0;
  private closing: Promise<void> | null = null;
  /** Resolves `close()`'s wait once no routed request is in progress. */
  private onIdle: (() => void) | null = null;

  constructor(options: ResolvedOptions) {
    this.options = options;
    this.logger = options.logger;
    this.retryAfter = ["retry-after", String(options.retryAfterSeconds)];
    this.server = createServer(
      {
        maxHeaderSize: options.headersBytesMax,
        keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
        // node:http's own bound on receiving a request; ours (which also covers the worker) is tighter.
        requestTimeout: options.requestTimeoutMs + 1_000,
      },
      (req, res) => this.onRequest(req, res),
    );
    this.server.maxConnections = options.connectionsMax;
  }

  listen(): Promise<void> {
    const { host, port } = this.options;
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        this.server.on("error", (error) => this.logger.warn("gateway server error", { error }));
        resolve();
      });
    });
  }

  address(): string {
    const bound = this.server.address() as AddressInfo | null;
    if (bound === null) return `${this.options.host}:${this.options.port}`;
    return isIP(bound.address) === 6 ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
  }

  stats(): GatewayStats {
    return { ...this.counts, workerPools: this.pools.size };
  }

  metricsText(): string {
    return this.metrics.render(this.stats());
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    if (this.counts.inFlight > 0) {
      // Every routed request ends within requestTimeoutMs (its timer answers 504); wait no longer.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.options.requestTimeoutMs + 100);
        this.onIdle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.onIdle = null;
    }
    this.server.closeAllConnections();
    await closed;
    const pools = [...this.pools.values()].map((entry) => entry.pool.destroy().catch(() => {}));
    this.pools.clear();
    await Promise.all(pools);
  }

  /** The pool of connections to the worker at `address`. @throws UnreachableAddressError */
  pool(address: string): Pool {
    let entry = this.pools.get(address);
    if (entry === undefined) {
      if (this.closing !== null) throw new UnreachableAddressError(address);
      if (!isWorkerAddress(address)) throw new UnreachableAddressError(address);
      if (this.pools.size >= this.options.workerPoolsMax) this.evictPool();
      const timeoutMs = this.options.requestTimeoutMs;
      const pool = new Pool(`http://${address}`, {
        connections: this.options.workerConnectionsMax,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        connectTimeout: timeoutMs,
      });
      entry = { pool, usedAt: 0 };
      this.pools.set(address, entry);
    }
    this.useClock += 1;
    entry.usedAt = this.useClock;
    return entry.pool;
  }

  /** Closes the least recently used pool; requests in flight on it finish first. */
  private evictPool(): void {
    let oldest: string | null = null;
    let oldestAt = Number.POSITIVE_INFINITY;
    for (const [address, entry] of this.pools) {
      if (entry.usedAt < oldestAt) {
        oldest = address;
        oldestAt = entry.usedAt;
      }
    }
    if (oldest === null) return;
    const entry = this.pools.get(oldest) as PoolEntry;
    this.pools.delete(oldest);
    entry.pool.close().catch((error: unknown) => this.logger.debug("closing a worker pool failed", { address: oldest, error }));
  }

  count(outcome: Outcome): void {
    this.counts[OUTCOME_FIELDS[outcome]] += 1;
  }

  exchangeStarted(): void {
    this.counts.inFlight += 1;
  }

  exchangeEnded(): void {
    this.counts.inFlight -= 1;
    if (this.counts.inFlight === 0) this.onIdle?.();
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    this.counts.requests += 1;
    try {
      const url = req.url ?? "";
      const key = keyOfUrl(url);
      if (this.serveReserved(req, res, key)) return;
      if (this.closing !== null) {
        this.count("closing");
        discardBody(req);
        return sendJson(res, 503, { error: "closing", message: "the gateway is closing" }, [...this.retryAfter, "connection", "close"]);
      }
      if (key.charCodeAt(0) !== 0x2f) {
        this.count("bad_request");
        discardBody(req);
        return sendJson(res, 400, { error: "bad-key", message: "the request target must be a path" });
      }
      if (keyTooLong(key)) {
        this.count("bad_request");
        discardBody(req);
        return sendJson(res, 414, { error: "key-too-long", message: `keys are limited to ${KEY_BYTES_MAX} bytes` });
      }
      new Exchange(this, req, res, url, key).start();
    } catch (error) {
      this.logger.warn("gateway request failed", { method: req.method, url: req.url, error });
      if (!res.headersSent) sendJson(res, 500, { error: "internal", message: "internal error" });
      else res.destroy();
    }
  }

  /** Answers a reserved path. @returns false when `key` is not reserved. */
  private serveReserved(req: IncomingMessage, res: ServerResponse, key: string): boolean {
    switch (key) {
      case "/health/live":
      case "/health/ready":
      case "/metrics":
      case "/status":
        break;
      default:
        if (!key.startsWith(RESERVED_PATH_PREFIX)) return false;
        this.count("reserved");
        discardBody(req);
        sendJson(res, 404, { error: "not-found", message: `${key} is reserved` });
        return true;
    }
    this.count("reserved");
    discardBody(req);
    if (req.method !== "GET" && req.method !== "HEAD") {
      sendJson(res, 405, { error: "method", message: `${req.method ?? "?"} is not allowed` }, ["allow", "GET, HEAD"]);
      return true;
    }
    try {
      this.answerReserved(res, key);
    } catch (error) {
      this.logger.warn("a reserved endpoint failed", { path: key, error });
      sendJson(res, 500, { error: "internal", message: "internal error" });
    }
    return true;
  }

  private answerReserved(res: ServerResponse, key: string): void {
    switch (key) {
      case "/health/live":
        return sendJson(res, 200, { live: true });
      case "/health/ready": {
        const { ready, reason } = this.options.ready();
        if (ready) return sendJson(res, 200, { ready: true });
        return sendJson(res, 503, { ready: false, reason: reason ?? "not ready" }, this.retryAfter);
      }
      case "/metrics": {
        const member = this.options.metrics();
        const separator = member === "" || member.endsWith("\n") ? "" : "\n";
        return sendText(res, 200, METRICS_TYPE, `${member}${separator}${this.metricsText()}`, null);
      }
      default: {
        if (this.options.status === null) return sendJson(res, 404, { error: "not-found", message: "no status" });
        return sendJson(res, 200, this.options.status() ?? null);
      }
    }
  }
}

// --- One routed request -------------------------------------------------------------------------

function onExchangeTimeout(exchange: Exchange): void {
  exchange.onTimeout();
}

/**
 * One routed request: read the body, route, send, retry once. It is also the undici dispatch
 * handler of its attempts, so that an answer goes from the worker's socket to the client's chunk
 * by chunk, with no intermediate stream.
 */
class Exchange implements Dispatcher.DispatchHandler {
  private readonly gateway: GatewayServer;
  private readonly req: IncomingMessage;
  private readonly res: ServerResponse;
  private readonly url: string;
  private readonly key: string;
  private readonly startedMs = performance.now();
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** Set once the request has its outcome; after it nothing more is answered. */
  private settled = false;
  private body: Buffer | null = null;
  /** The forwarded headers; the routing headers of the current attempt follow `headersBase`. */
  private headers: string[] = [];
  private headersBase = 0;
  private declaredBytes = -1;
  private chunked = false;
  // The current attempt, as the dispatch handler sees it.
  private route: OwnerRoute | null = null;
  private controller: Dispatcher.DispatchController | null = null;
  private abortReason: Error | null = null;
  private refusal: string | null = null;
  /** Whether the worker's answer is being passed to the client (its head is sent). */
  private responding = false;
  private finishAttempt: ((failure: Failure | null) => void) | null = null;

  constructor(gateway: GatewayServer, req: IncomingMessage, res: ServerResponse, url: string, key: string) {
    this.gateway = gateway;
    this.req = req;
    this.res = res;
    this.url = url;
    this.key = key;
  }

  start(): void {
    this.gateway.exchangeStarted();
    this.timer = setTimeout(onExchangeTimeout, this.gateway.options.requestTimeoutMs, this);
    this.res.once("close", () => this.onClose());
    this.collectHeaders();
    this.run().catch((error: unknown) => this.fail(error));
  }

  private async run(): Promise<void> {
    if (this.declaredBytes > 0 || this.chunked) {
      const body = await this.readBody();
      if (body === null || this.settled) return;
      this.body = body;
    }
    const answer = await routeRequest({
      key: this.key,
      routes: this.gateway.options.routes,
      attempt: async (route) => {
        const failure = await this.send(route);
        return failure === null ? { kind: "answered" } : attemptResult(failure);
      },
      active: () => !this.settled,
      onRetry: () => (this.gateway.counts.retries += 1),
      logger: this.gateway.logger,
    });
    if (answer === null || this.settled) return;
    if (answer.outcome === "upstream_error" && answer.status === 502) {
      this.gateway.logger.warn("a worker's answer failed", { key: this.key, message: answer.body.message });
    }
    this.answer(answer.outcome, answer.status, answer.body, answer.retryAfter ? this.gateway.retryAfter : null);
  }

  /** Records the request's outcome once. @returns false when it already had one. */
  private settle(outcome: Outcome): boolean {
    if (this.settled) return false;
    this.settled = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.gateway.count(outcome);
    if (outcome === "routed") this.gateway.metrics.requestSeconds.observe((performance.now() - this.startedMs) / 1000);
    return true;
  }

  /** Settles with `outcome` and answers JSON, unless settled already. */
  private answer(outcome: Outcome, status: number, body: unknown, extra: readonly string[] | null = null): void {
    if (!this.settle(outcome)) return;
    if (this.res.headersSent) {
      this.res.destroy();
      return;
    }
    discardBody(this.req);
    sendJson(this.res, status, body, extra);
  }

  onTimeout(): void {
    this.timer = null;
    if (!this.settle("timeout")) return;
    this.abortUpstream(new Error("the gateway's request timeout passed"));
    this.gateway.logger.debug("gateway request timed out", { key: this.key, timeoutMs: this.gateway.options.requestTimeoutMs });
    if (this.res.headersSent) {
      this.res.destroy();
      return;
    }
    discardBody(this.req);
    sendJson(this.res, 504, { error: "timeout", message: `no answer within ${this.gateway.options.requestTimeoutMs} ms` });
  }

  private onClose(): void {
    if (!this.settled && !this.res.writableFinished) {
      this.settle("aborted");
      this.abortUpstream(new Error("the client went away"));
    }
    this.gateway.exchangeEnded();
  }

  private abortUpstream(reason: Error): void {
    this.abortReason = reason;
    if (this.controller !== null && !this.controller.aborted) this.controller.abort(reason);
  }

  /** A bug or an unexpected throw: log it and answer 500 if nothing was answered yet. */
  private fail(error: unknown): void {
    this.gateway.logger.warn("gateway request failed", { key: this.key, method: this.req.method, error });
    this.abortUpstream(new Error("the gateway failed"));
    this.answer("internal", 500, { error: "internal", message: "internal error" });
  }

  /** The request's headers as the worker gets them, less the routing headers of an attempt. */
  private collectHeaders(): void {
    const raw = this.req.rawHeaders;
    const out: string[] = [];
    let forwardedFor: string | null = null;
    let listed: string | null = null;
    for (let i = 0; i < raw.length; i += 2) {
      const name = (raw[i] as string).toLowerCase();
      const value = raw[i + 1] as string;
      switch (name) {
        case "content-length":
          this.declaredBytes = Number(value);
          continue;
        case "transfer-encoding":
          this.chunked = true;
          continue;
        case "connection":
          listed = listed === null ? value : `${listed},${value}`;
          continue;
        case "x-forwarded-for":
          forwardedFor = forwardedFor === null ? value : `${forwardedFor}, ${value}`;
          continue;
        // undici sets host (the worker's address) and content-length itself, and refuses expect.
        case "host":
        case "expect":
        case "keep-alive":
        case "proxy-authenticate":
        case "proxy-authorization":
        case "proxy-connection":
        case "te":
        case "trailer":
        case "upgrade":
          continue;
      }
      // Only the gateway may state a grant: a client's x-orrery-* headers never reach a worker.
      if (name.startsWith(ROUTING_HEADER_PREFIX)) continue;
      out.push(name, value);
    }
    const headers = listed === null ? out : removeListed(out, connectionTokens(listed));
    const client = this.req.socket.remoteAddress;
    if (client !== undefined) headers.push("x-forwarded-for", forwardedFor === null ? client : `${forwardedFor}, ${client}`);
    else if (forwardedFor !== null) headers.push("x-forwarded-for", forwardedFor);
    this.headers = headers;
    this.headersBase = headers.length;
  }

  /** Reads the whole body within the limit. @returns null when answered (413) or the client left. */
  private readBody(): Promise<Buffer | null> {
    const bytesMax = this.gateway.options.bodyBytesMax;
    if (this.declaredBytes > bytesMax) {
      this.answerTooLarge(bytesMax);
      return Promise.resolve(null);
    }
    const req = this.req;
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let total = 0;
      const done = (body: Buffer | null) => {
        req.off("data", onData);
        req.off("end", onEnd);
        req.off("close", onEnd);
        req.off("error", onError);
        resolve(body);
      };
      const onData = (chunk: Buffer) => {
        total += chunk.length;
        if (total <= bytesMax) {
          chunks.push(chunk);
          return;
        }
        done(null);
        this.answerTooLarge(bytesMax);
      };
      const onEnd = () => {
        if (!req.complete) return done(null);
        done(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total));
      };
      const onError = () => done(null);
      req.on("data", onData);
      req.on("end", onEnd);
      req.on("close", onEnd);
      req.on("error", onError);
    });
  }

  private answerTooLarge(bytesMax: number): void {
    // A body too large even to read and drop is not waited for: the connection closes after the 413.
    const close = this.declaredBytes > DISCARD_BYTES_MAX ? ["connection", "close"] : null;
    this.answer("too_large", 413, { error: "too-large", message: `bodies are limited to ${bytesMax} bytes` }, close);
  }

  /** One attempt at the owner. @returns null when its answer went to the client. */
  private send(route: OwnerRoute): Promise<Failure | null> {
    return new Promise((resolve) => {
      this.route = route;
      this.controller = null;
      this.refusal = null;
      this.responding = false;
      this.finishAttempt = resolve;
      let pool: Pool;
      try {
        pool = this.gateway.pool(route.address);
      } catch (error) {
        return this.endAttempt(this.failure(error));
      }
      const headers = this.headers;
      headers.length = this.headersBase;
      headers.push(ROUTING_HEADERS.key, this.key, ROUTING_HEADERS.epoch, String(route.epoch), ROUTING_HEADERS.owner, route.owner);
      pool.dispatch({ path: this.url, method: this.req.method as Dispatcher.HttpMethod, headers, body: this.body }, this);
    });
  }

  private endAttempt(failure: Failure | null): void {
    const finish = this.finishAttempt;
    this.finishAttempt = null;
    finish?.(failure);
  }

  private failure(error: unknown): Failure {
    const route = this.route as OwnerRoute;
    const code = errorCode(error);
    if (!this.responding && code !== undefined && UNREACHABLE_CODES.has(code)) {
      this.gateway.counts.unreachable += 1;
      this.gateway.logger.debug("a worker could not be reached", { key: this.key, owner: route.owner, address: route.address, error });
      return { kind: "unreachable", route, error };
    }
    if (code !== undefined && TIMEOUT_CODES.has(code)) return { kind: "timeout", route, error };
    return { kind: "error", route, error };
  }

  // --- undici's dispatch handler ----------------------------------------------------------------

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.settled && this.abortReason !== null) controller.abort(this.abortReason);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200 || this.settled) return;
    const refused = headers[ROUTING_HEADERS.refused];
    if (statusCode === 409 && refused !== undefined) {
      // The worker's own refusal: its body is dropped and the request retried elsewhere.
      this.refusal = typeof refused === "string" ? refused : refused.join(", ");
      this.gateway.counts.refusals += 1;
      this.gateway.logger.debug("a worker refused a key", { key: this.key, owner: this.route?.owner, reason: this.refusal });
      return;
    }
    const route = this.route as OwnerRoute;
    try {
      this.res.writeHead(statusCode, clientHeaders(headers, route.owner, String(route.epoch)));
    } catch (error) {
      controller.abort(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    this.responding = true;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.responding || this.res.destroyed) return;
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once("drain", () => controller.resume());
    }
  }

  onResponseEnd(): void {
    if (this.refusal !== null) {
      return this.endAttempt({ kind: "refused", route: this.route as OwnerRoute, reason: this.refusal });
    }
    if (this.responding) {
      this.res.end();
      this.settle("routed");
    }
    this.endAttempt(null);
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    const failure = this.failure(error);
    if (this.responding) {
      // The head went out: the client's answer can only be cut.
      if (this.settle("upstream_error")) {
        this.gateway.logger.warn("a worker's answer broke off", { key: this.key, error });
        this.res.destroy();
      }
    }
    this.endAttempt(failure);
  }
}

