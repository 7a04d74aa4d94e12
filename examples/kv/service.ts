/**
 * The example's HTTP API over a member's {@link KvStore}:
 *
 * | request                          | answer                                                    |
 * |----------------------------------|-----------------------------------------------------------|
 * | `GET /kv/<key>`                  | 200 and the value, or 404 — linearizable (ReadIndex)      |
 * | `PUT /kv/<key>` (body: value)    | 204 once applied                                          |
 * | `DELETE /kv/<key>`               | 200 `{"deleted": bool}`                                   |
 * | `POST /kv/<key>?cas` (JSON)      | 200 `{"ok": bool, "value": current}`; body `{"expected": string \| null, "value": string \| null}` |
 * | `GET /status`                    | 200 JSON: id, leader, role, term, commit, applied, …      |
 * | `GET /metrics`                   | Prometheus text                                           |
 * | `GET /health/live`, `/health/ready` | 200, or 503 while no leader is known or this member lags |
 *
 * Writes sent to a follower are forwarded to the leader by the node (the default), or, with
 * `redirect`, answered with 307 and the leader's client URL. Errors are JSON
 * `{"error": code, "message"}`: 503 with `Retry-After` when no leader is known or a limit refused
 * the write, 504 when the outcome is unknown (timeout), 413 for a body over the limit.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { NotLeaderError, OrreryError, ProposalDroppedError } from "../../lib/errors.ts";
import type { OrreryNode } from "../../lib/host/node.ts";
import type { Logger } from "../../lib/logger.ts";
import { silentLogger } from "../../lib/logger.ts";
import { readBodyWithin } from "../../lib/runtime/http-body.ts";
import { encodeKvCommand, isKey, type KvCommand, type KvResult, type KvStore } from "./store.ts";

/** The largest request body accepted, in bytes (a value plus JSON framing). */
export const BODY_BYTES_MAX = 1024 * 1024 + 1024;

/** How long a request may take from its first byte, in milliseconds. */
export const REQUEST_TIMEOUT_MS = 30_000;

/** Options of {@link startKvService}. */
export interface KvServiceOptions {
  readonly node: OrreryNode<KvResult>;
  readonly store: KvStore;
  /** `host:port` to listen on (port 0: any). */
  readonly listen: string;
  /**
   * Answer writes on a follower with 307 to the leader's client URL instead of forwarding them.
   * @defaultValue false
   */
  readonly redirect?: boolean;
  /** Each member's client URL base (`http://host:port`) by id, for redirects. */
  readonly clientUrls?: Readonly<Record<string, string>>;
  readonly logger?: Logger;
}

/** A running service. */
export interface KvService {
  /** The base URL it listens on, e.g. `http://127.0.0.1:8001`. */
  readonly url: string;
  /** Stops accepting requests and closes idle connections. The node is not closed. */
  close(): Promise<void>;
}

/** Starts the HTTP API. */
export async function startKvService(options: KvServiceOptions): Promise<KvService> {
  const logger = options.logger ?? silentLogger;
  const server = createServer({ requestTimeout: REQUEST_TIMEOUT_MS, keepAliveTimeout: 60_000 }, (req, res) => {
    handle(options, req, res).catch((error: unknown) => {
      logger.error("request failed", { method: req.method, url: req.url, error });
      if (!res.headersSent) sendJson(res, 500, { error: "internal", message: "internal error" });
      else res.destroy();
    });
  });
  const [host, port] = splitHostPort(options.listen);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return { url: `http://${host}:${address.port}`, close: () => closeServer(server) };
}

async function handle(options: KvServiceOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://localhost");
  const path = url.pathname;
  if (path === "/status" && req.method === "GET") return sendJson(res, 200, statusOf(options.node));
  if (path === "/metrics" && req.method === "GET") return sendText(res, 200, options.node.metrics(), "text/plain; version=0.0.4");
  if (path === "/health/live") return sendJson(res, 200, { live: true });
  if (path === "/health/ready") return ready(options.node, res);
  if (!path.startsWith("/kv/")) return sendJson(res, 404, { error: "not-found", message: `no route ${path}` });
  let key: string;
  try {
    key = decodeURIComponent(path.slice("/kv/".length));
  } catch {
    return sendJson(res, 400, { error: "bad-key", message: "the key is not valid percent-encoding" });
  }
  if (!isKey(key)) return sendJson(res, 400, { error: "bad-key", message: "a key has 1 to 1024 characters" });
  switch (req.method) {
    case "GET":
      return read(options, key, res);
    case "PUT": {
      const body = await readBody(req, res);
      if (body !== null) await write(options, { kind: "put", key, value: body }, res);
      return;
    }
    case "DELETE":
      return write(options, { kind: "delete", key }, res);
    case "POST": {
      if (!url.searchParams.has("cas")) return sendJson(res, 404, { error: "not-found", message: "POST /kv/<key>?cas" });
      const body = await readBody(req, res);
      if (body === null) return;
      const cas = parseCas(body);
      if (cas === null) return sendJson(res, 400, { error: "bad-body", message: '{"expected": string|null, "value": string|null}' });
      return write(options, { kind: "cas", key, ...cas }, res);
    }
    default:
      res.setHeader("allow", "GET, PUT, DELETE, POST");
      return sendJson(res, 405, { error: "method", message: `${req.method ?? "?"} is not allowed` });
  }
}

async function read(options: KvServiceOptions, key: string, res: ServerResponse): Promise<void> {
  try {
    const value = await options.node.read(() => options.store.get(key));
    if (value === null) return sendJson(res, 404, { error: "absent", message: `no key ${key}` });
    return sendText(res, 200, value, "text/plain; charset=utf-8");
  } catch (error) {
    return sendError(options, res, error);
  }
}

async function write(options: KvServiceOptions, command: KvCommand, res: ServerResponse): Promise<void> {
  const status = options.redirect ? options.node.status() : null;
  if (status !== null && status.role !== "leader") {
    const target = status.leader === null ? undefined : options.clientUrls?.[status.leader];
    if (target !== undefined) {
      res.setHeader("location", `${target}/kv/${encodeURIComponent(command.key)}${command.kind === "cas" ? "?cas" : ""}`);
      return sendJson(res, 307, { error: "redirect", leader: status.leader });
    }
  }
  let result: KvResult;
  try {
    result = await options.node.propose(encodeKvCommand(command));
  } catch (error) {
    return sendError(options, res, error);
  }
  switch (result.kind) {
    case "put":
      res.writeHead(204).end();
      return;
    case "delete":
      return sendJson(res, 200, { deleted: result.deleted });
    case "cas":
      return sendJson(res, 200, { ok: result.ok, value: result.value });
    case "error":
      return sendJson(res, 400, { error: "bad-command", message: result.message });
  }
}

function ready(node: OrreryNode<KvResult>, res: ServerResponse): void {
  const s = node.status();
  const caughtUp = s.applied >= s.commit;
  const ok = s.leader !== null && caughtUp && !s.closed && s.failure === null;
  sendJson(res, ok ? 200 : 503, { ready: ok, leader: s.leader, applied: s.applied, commit: s.commit });
}

function statusOf(node: OrreryNode<KvResult>): Record<string, unknown> {
  const s = node.status();
  return {
    id: s.id,
    leader: s.leader,
    leaderAddress: s.leaderAddress,
    role: s.role,
    term: s.term,
    commit: s.commit,
    applied: s.applied,
    lastIndex: s.lastIndex,
    snapshotIndex: s.snapshotIndex,
    config: s.config,
    pendingProposals: s.pendingProposals,
    pendingReads: s.pendingReads,
    failure: s.failure,
  };
}

function sendError(options: KvServiceOptions, res: ServerResponse, error: unknown): void {
  if (!OrreryError.isOrreryError(error)) throw error;
  const body = { error: error.code, message: error.message };
  if (NotLeaderError.is(error)) {
    const target = error.leaderHint === null ? undefined : options.clientUrls?.[error.leaderHint];
    res.setHeader("retry-after", "1");
    return sendJson(res, 503, { ...body, leader: error.leaderHint, ...(target ? { leaderUrl: target } : {}) });
  }
  if (ProposalDroppedError.is(error) || error.code === "ORRERY_CLOSED") {
    res.setHeader("retry-after", "1");
    return sendJson(res, 503, body);
  }
  if (error.code === "ORRERY_TIMEOUT") return sendJson(res, 504, body);
  return sendJson(res, 500, body);
}

/** Reads the body as UTF-8, or answers 413 and returns null when it is over the limit. */
async function readBody(req: IncomingMessage, res: ServerResponse): Promise<string | null> {
  const body = await readBodyWithin(req, BODY_BYTES_MAX, () =>
    sendJson(res, 413, { error: "too-large", message: `bodies are limited to ${BODY_BYTES_MAX} bytes` }),
  );
  return body === null ? null : body.toString("utf8");
}

function parseCas(body: string): { expected: string | null; value: string | null } | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return null;
  }
  if (typeof parsed !== "object" || parsed === null) return null;
  const { expected, value } = parsed as { expected?: unknown; value?: unknown };
  const ok = (v: unknown) => v === null || typeof v === "string";
  if (!ok(expected) || !ok(value)) return null;
  return { expected: expected as string | null, value: value as string | null };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  sendText(res, status, JSON.stringify(body), "application/json");
}

function sendText(res: ServerResponse, status: number, body: string, type: string): void {
  res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** Splits `host:port` (IPv6 in brackets). @throws Error for anything else */
export function splitHostPort(address: string): [string, number] {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(address);
  const port = Number(match?.[2]);
  if (match === null || port > 65535) throw new Error(`"${address}" is not host:port`);
  return [(match[1] as string).replace(/^\[|\]$/g, ""), port];
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
