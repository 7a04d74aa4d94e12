/**
 * The HTTP transport (DESIGN.md §5): each member serves `POST /orrery/raft` with `node:http` (or
 * `node:https`) and sends to each peer through an undici `Pool` with one keep-alive connection.
 * A request body is a batch of frames ({@link concatFrames}); the handshake rides in headers on
 * every request ({@link HELLO_HEADERS}) and the answer carries the server's own, so each side
 * authenticates the other.
 *
 * At most one POST is in flight per peer, so that its frames arrive in order; what is sent while it
 * is in flight goes in the next one (natural batching). A peer's queued and in-flight bytes are
 * bounded by `sendBufferBytesMax`; beyond it new frames are dropped and counted. A failed POST drops
 * its batch (Raft resends what matters) and waits a jittered exponential backoff before the next.
 *
 * The server answers 403 to a failed handshake, 413 to a body over `bodyBytesMax`, 400 to
 * malformed frames or a message naming the wrong sender or addressee, each with an error in the
 * log; nothing is thrown at the member.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Duplex } from "node:stream";
import { Pool } from "undici";
import { TransportError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/logger.ts";
import type { Message, NodeId } from "../../lib/raft/messages.ts";
import {
  FRAME_KIND,
  HELLO_VERSION,
  checkHello,
  checkMessage,
  concatFrames,
  decodeFrames,
  encodeFrame,
  makeHello,
  withHeader,
  type Frame,
  type Hello,
} from "../frame.ts";
import {
  ID_LENGTH_MAX,
  backoffMs,
  checkInteger,
  formatAddress,
  parseAddress,
  resolveOptions,
  tlsContext,
  tlsServername,
  zeroStats,
  type ResolvedOptions,
} from "../network.ts";
import type { Transport, TransportHandler, TransportOptions, TransportStats } from "../transport.ts";

/** Options of {@link createHttpTransport}. */
export interface HttpTransportOptions extends TransportOptions {
  /**
   * The largest request body (a batch of frames) sent or accepted, in bytes; at least
   * `frameBytesMax`. Larger bodies are answered 413.
   * @defaultValue {@link BODY_BYTES_MAX_DEFAULT}
   */
  readonly bodyBytesMax?: number;
  /**
   * How long a POST may take, in milliseconds: the client's wait for the answer's headers and
   * body, and the server's for a whole request.
   * @defaultValue {@link REQUEST_MS_MAX_DEFAULT}
   */
  readonly requestMsMax?: number;
  /**
   * Inbound connections open at once; the server refuses more.
   * @defaultValue {@link HTTP_CONNECTIONS_MAX_DEFAULT}
   */
  readonly connectionsMax?: number;
}

/** The path members POST frames to. */
export const HTTP_PATH = "/orrery/raft";

/** The default largest request body: 64 MiB, four default-sized frames. */
export const BODY_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;

/** The default time a POST may take: 10 s. */
export const REQUEST_MS_MAX_DEFAULT = 10_000;

/** The default cap on inbound connections: 1024. */
export const HTTP_CONNECTIONS_MAX_DEFAULT = 1_024;

/** Bytes of an error answer's body kept for the log. */
export const REASON_BYTES_MAX = 1024;

/**
 * The headers that carry a {@link Hello}: ids URI-encoded (so that any id is a valid header
 * value), the proof in hex and absent without a secret.
 */
export const HELLO_HEADERS = {
  clusterId: "x-orrery-cluster",
  from: "x-orrery-from",
  to: "x-orrery-to",
  proof: "x-orrery-proof",
} as const;

/** Headers as node:http and undici present them. */
export type HeaderMap = Readonly<Record<string, string | string[] | undefined>>;

/**
 * Creates an HTTP transport for member `options.id`. Call `start()` to listen.
 * @throws TransportError `config` for invalid options.
 */
export function createHttpTransport(options: HttpTransportOptions): Transport {
  return new HttpTransport(options);
}

/** The headers that carry `hello`. */
export function helloHeaders(hello: Hello): Record<string, string> {
  const headers: Record<string, string> = {
    [HELLO_HEADERS.clusterId]: encodeURIComponent(hello.clusterId),
    [HELLO_HEADERS.from]: encodeURIComponent(hello.from),
    [HELLO_HEADERS.to]: encodeURIComponent(hello.to),
  };
  if (hello.proof !== null) headers[HELLO_HEADERS.proof] = Buffer.from(hello.proof).toString("hex");
  return headers;
}

/** Reads a {@link Hello} from headers. @returns the hello, or why there is none (for the log). */
export function helloFromHeaders(headers: HeaderMap): Hello | string {
  const fields: Partial<Record<"clusterId" | "from" | "to", string>> = {};
  for (const name of ["clusterId", "from", "to"] as const) {
    const raw = headers[HELLO_HEADERS[name]];
    if (typeof raw !== "string") return `no single ${HELLO_HEADERS[name]} header`;
    let value: string;
    try {
      value = decodeURIComponent(raw);
    } catch {
      return `a malformed ${HELLO_HEADERS[name]} header`;
    }
    if (value.length === 0 || value.length > ID_LENGTH_MAX) return `an empty or over-long ${HELLO_HEADERS[name]} header`;
    fields[name] = value;
  }
  const proofText = headers[HELLO_HEADERS.proof];
  if (proofText !== undefined && (typeof proofText !== "string" || !/^[0-9a-f]{64}$/i.test(proofText))) {
    return `a malformed ${HELLO_HEADERS.proof} header`;
  }
  const proof = proofText === undefined ? null : new Uint8Array(Buffer.from(proofText, "hex"));
  return { version: HELLO_VERSION, clusterId: fields.clusterId as string, from: fields.from as string, to: fields.to as string, proof };
}

/** A peer this member sends to. */
interface Peer {
  readonly id: NodeId;
  readonly address: string;
  readonly pool: Pool;
  /** The hello headers of every request to this peer. */
  readonly headers: Record<string, string>;
  /** Frames not yet in a POST, in order. */
  queue: Uint8Array[];
  queuedBytes: number;
  /** Bytes of the POST in flight; 0 when none is. */
  inFlightBytes: number;
  inFlight: boolean;
  /** Failed POSTs in a row; drives the backoff. */
  attempts: number;
  /** The end of the backoff after a failed POST. */
  timer: NodeJS.Timeout | null;
}

/** What a POST's answer said: `null` for success, else the error for the log. */
type Outcome = { readonly error: null } | { readonly error: unknown; readonly refused: boolean };

/** The HTTP transport; see the module comment. Use {@link createHttpTransport}. */
export class HttpTransport implements Transport {
  readonly id: NodeId;
  private readonly options: ResolvedOptions;
  private readonly bodyBytesMax: number;
  private readonly requestMsMax: number;
  private readonly connectionsMax: number;
  private readonly logger: Logger;
  private readonly counters = zeroStats();
  private readonly peers = new Map<NodeId, Peer>();
  private readonly dirty = new Set<Peer>();
  private flushScheduled = false;
  private handler: TransportHandler | null = null;
  private server: Server | null = null;
  private closed = false;

  /** @throws TransportError `config` for invalid options. */
  constructor(options: HttpTransportOptions) {
    this.options = resolveOptions(options);
    this.id = this.options.id;
    this.logger = this.options.logger;
    this.bodyBytesMax = options.bodyBytesMax ?? Math.max(BODY_BYTES_MAX_DEFAULT, this.options.frameBytesMax);
    this.requestMsMax = options.requestMsMax ?? REQUEST_MS_MAX_DEFAULT;
    this.connectionsMax = options.connectionsMax ?? HTTP_CONNECTIONS_MAX_DEFAULT;
    checkInteger("bodyBytesMax", this.bodyBytesMax, this.options.frameBytesMax, 2 ** 32);
    checkInteger("requestMsMax", this.requestMsMax, 1, 10 * 60 * 1000);
    checkInteger("connectionsMax", this.connectionsMax, 1, 1_000_000);
    for (const [id, address] of this.options.peers) this.setPeer(id, address);
  }

  async start(handler: TransportHandler): Promise<void> {
    if (this.handler !== null || this.closed) throw new TransportError("config", "start() called twice or after close()");
    this.handler = handler;
    const server = await this.listen();
    if (this.closed) {
      server.close();
      return;
    }
    this.server = server;
    for (const peer of this.peers.values()) this.scheduleFlush(peer);
  }

  send(messages: readonly Message[]): void {
    for (const message of messages) this.enqueue(message.to, () => encodeFrame({ kind: "message", message }));
  }

  sendPayload(to: NodeId, payload: Uint8Array): boolean {
    return this.enqueue(to, () => withHeader(FRAME_KIND.payload, payload));
  }

  setPeer(id: NodeId, address: string): void {
    const { host } = parseAddress(address);
    if (id === this.id || this.closed || this.peers.get(id)?.address === address) return;
    this.removePeer(id);
    const tls = this.options.tls;
    const servername = tls === undefined ? undefined : tlsServername(tls, host);
    const pool = new Pool(`${tls === undefined ? "http" : "https"}://${address}`, {
      connections: 1,
      pipelining: 1,
      headersTimeout: this.requestMsMax,
      bodyTimeout: this.requestMsMax,
      connectTimeout: this.requestMsMax,
      ...(tls === undefined
        ? {}
        : { connect: { ...tlsContext(tls), rejectUnauthorized: tls.rejectUnauthorized ?? true, ...(servername === undefined ? {} : { servername }) } }),
    });
    pool.on("connect", () => {
      this.counters.connects += 1;
      this.logger.info("connected", { peer: id, address });
    });
    pool.on("disconnect", (_origin, _targets, error) => this.logger.debug("disconnected", { peer: id, address, error }));
    const hello = makeHello(this.options.clusterId, this.options.secret, this.id, id);
    const peer: Peer = { id, address, pool, headers: helloHeaders(hello), queue: [], queuedBytes: 0, inFlightBytes: 0, inFlight: false, attempts: 0, timer: null };
    this.peers.set(id, peer);
  }

  removePeer(id: NodeId): void {
    const peer = this.peers.get(id);
    if (peer === undefined) return;
    this.peers.delete(id);
    void this.forget(peer);
  }

  address(): string | null {
    const bound = this.server?.address();
    if (bound === undefined || bound === null || typeof bound === "string") return bound ?? null;
    return formatAddress(bound.address, bound.port);
  }

  replyAddress(): string | null {
    // Every message is a request to the peer's address: a peer can answer only by knowing ours.
    return this.address();
  }

  stats(): TransportStats {
    let sendBufferBytes = 0;
    for (const peer of this.peers.values()) sendBufferBytes += peer.queuedBytes + peer.inFlightBytes;
    return { ...this.counters, sendBufferBytes };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const pools = [...this.peers.values()].map((peer) => this.forget(peer));
    this.peers.clear();
    const server = this.server;
    this.server = null;
    if (server !== null) {
      const closing = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closing;
    }
    await Promise.all(pools);
  }

  // --- Serving --------------------------------------------------------------------------------

  private listen(): Promise<Server> {
    const tls = this.options.tls;
    const onRequest = (request: IncomingMessage, response: ServerResponse) => this.onRequest(request, response);
    const server: Server =
      tls === undefined
        ? createHttpServer(onRequest)
        : createHttpsServer({ ...tlsContext(tls), requestCert: true, rejectUnauthorized: tls.rejectUnauthorized ?? true }, onRequest);
    server.requestTimeout = this.requestMsMax;
    server.headersTimeout = Math.min(this.requestMsMax, 60_000);
    server.maxConnections = this.connectionsMax;
    server.on("drop", () => this.countRefused("too many connections", null, new TransportError("config", `over ${this.connectionsMax} connections`)));
    server.on("clientError", (error: Error & { code?: string }, socket: Duplex) => this.onClientError(error, socket));
    server.on("tlsClientError", (error: Error) => this.countRefused("a failed TLS handshake", null, error));
    const { host, port } = this.options.listen;
    return new Promise((resolve, reject) => {
      server.once("error", (error) => reject(new TransportError("config", `cannot listen on ${host}:${port}: ${error.message}`)));
      server.listen({ host, port }, () => {
        server.removeAllListeners("error");
        server.on("error", (error) => this.logger.error("the listening socket failed", { error }));
        resolve(server);
      });
    });
  }

  /** Bytes that are not HTTP: answered 400 and closed, unless the client merely went away. */
  private onClientError(error: Error & { code?: string }, socket: Duplex): void {
    if (error.code === "ECONNRESET" || !socket.writable) {
      this.logger.debug("a client connection failed", { error });
    } else {
      this.countRefused("malformed HTTP", null, error);
      socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    }
    socket.destroy();
  }

  private onRequest(request: IncomingMessage, response: ServerResponse): void {
    if (this.closed || this.handler === null) {
      this.answer(request, response, 503, "closed");
      return;
    }
    if (request.method !== "POST" || request.url !== HTTP_PATH) {
      this.answer(request, response, 404, "not found");
      return;
    }
    const hello = helloFromHeaders(request.headers);
    const why =
      typeof hello === "string"
        ? hello
        : (checkHello(hello, this.options.clusterId, this.options.secret, this.id) ??
          (this.options.admit(hello.from) ? null : `"${hello.from}" is not admitted`));
    if (why !== null || typeof hello === "string") {
      this.refuse(request, response, 403, null, new TransportError("handshake", why ?? "no hello"));
      return;
    }
    const declared = Number(request.headers["content-length"] ?? 0);
    if (declared > this.bodyBytesMax) {
      this.refuse(request, response, 413, hello.from, tooLarge(declared, this.bodyBytesMax));
      return;
    }
    this.readBody(request, response, hello.from);
  }

  private readBody(request: IncomingMessage, response: ServerResponse, from: NodeId): void {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      this.counters.bytesReceived += chunk.length;
      if (bytes <= this.bodyBytesMax) {
        chunks.push(chunk);
        return;
      }
      request.off("data", onData);
      request.off("end", onEnd);
      chunks.length = 0;
      this.refuse(request, response, 413, from, tooLarge(bytes, this.bodyBytesMax));
    };
    const onEnd = () => this.deliver(response, from, concatFrames(chunks));
    request.on("data", onData);
    request.on("end", onEnd);
    request.on("error", (error) => this.logger.debug("a request failed", { peer: from, error }));
  }

  /** Checks a whole body, then hands its frames to the handler, then answers 204 with our hello. */
  private deliver(response: ServerResponse, from: NodeId, body: Uint8Array): void {
    if (this.closed) {
      this.answer(null, response, 503, "closed");
      return;
    }
    let frames: Frame[];
    try {
      frames = decodeFrames(body, this.options.frameBytesMax);
    } catch (error) {
      this.refuse(null, response, TransportError.is(error) && error.reason === "frame-too-large" ? 413 : 400, from, error);
      return;
    }
    const why = this.checkBatch(frames, from);
    if (why !== null) {
      this.refuse(null, response, 400, from, new TransportError("malformed", why));
      return;
    }
    const handler = this.handler as TransportHandler;
    for (const frame of frames) {
      this.counters.framesReceived += 1;
      if (frame.kind === "message") handler.onMessage(frame.message);
      else if (frame.kind === "payload") handler.onPayload(from, frame.payload);
    }
    response.writeHead(204, helloHeaders(makeHello(this.options.clusterId, this.options.secret, this.id, from)));
    response.end();
  }

  private checkBatch(frames: readonly Frame[], from: NodeId): string | null {
    for (const frame of frames) {
      if (frame.kind === "hello") return "a hello frame in a body";
      if (frame.kind === "message") {
        const why = checkMessage(frame.message, from, this.id);
        if (why !== null) return why;
      }
    }
    return null;
  }

  /** Answers a refused request with `status` and a short reason, counting and logging it. */
  private refuse(request: IncomingMessage | null, response: ServerResponse, status: number, peer: NodeId | null, error: unknown): void {
    this.countRefused(`refusing a request with ${status}`, peer, error);
    const reason = error instanceof Error ? error.message : String(error);
    this.answer(request, response, status, reason.slice(0, REASON_BYTES_MAX));
  }

  private countRefused(what: string, peer: NodeId | null, error: unknown): void {
    this.counters.connectionsRefused += 1;
    this.logger.error(`closing a connection after ${what}`, { peer, error });
  }

  /** Answers with `status` and closes the connection; the rest of the body is read and discarded. */
  private answer(request: IncomingMessage | null, response: ServerResponse, status: number, reason: string): void {
    if (response.headersSent) return;
    response.writeHead(status, { "content-type": "text/plain; charset=utf-8", connection: "close" });
    response.end(reason);
    request?.resume();
  }

  // --- Sending --------------------------------------------------------------------------------

  private enqueue(to: NodeId, encode: () => Uint8Array): boolean {
    const peer = this.peers.get(to);
    if (this.closed || this.handler === null || peer === undefined) return this.dropped(1);
    const frame = encode();
    if (frame.length > this.options.frameBytesMax) {
      this.counters.framesOversized += 1;
      this.logger.warn("dropping an oversized frame", { peer: to, bytes: frame.length, frameBytesMax: this.options.frameBytesMax });
      return this.dropped(1);
    }
    if (peer.queuedBytes + peer.inFlightBytes + frame.length > this.options.sendBufferBytesMax) return this.dropped(1);
    peer.queue.push(frame);
    peer.queuedBytes += frame.length;
    this.scheduleFlush(peer);
    return true;
  }

  private scheduleFlush(peer: Peer): void {
    this.dirty.add(peer);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    const peers = [...this.dirty];
    this.dirty.clear();
    for (const peer of peers) {
      if (this.closed || this.handler === null || this.peers.get(peer.id) !== peer) continue;
      if (peer.inFlight || peer.timer !== null || peer.queue.length === 0) continue;
      void this.post(peer);
    }
  }

  /** POSTs the head of `peer`'s queue (at most `bodyBytesMax`), then the next batch or a backoff. */
  private async post(peer: Peer): Promise<void> {
    let count = 0;
    let bytes = 0;
    while (count < peer.queue.length && bytes + (peer.queue[count] as Uint8Array).length <= this.bodyBytesMax) {
      bytes += (peer.queue[count] as Uint8Array).length;
      count += 1;
    }
    const body = concatFrames(peer.queue.splice(0, count));
    peer.queuedBytes -= bytes;
    peer.inFlight = true;
    peer.inFlightBytes = bytes;
    this.counters.framesSent += count;
    this.counters.bytesSent += bytes;
    const outcome = await this.exchange(peer, body);
    peer.inFlight = false;
    peer.inFlightBytes = 0;
    if (this.closed || this.peers.get(peer.id) !== peer) return;
    if (outcome.error === null) {
      peer.attempts = 0;
      this.scheduleFlush(peer);
      return;
    }
    this.dropped(count);
    peer.attempts += 1;
    if (outcome.refused) this.countRefused("a refused handshake", peer.id, outcome.error);
    else this.logger[peer.attempts > 1 ? "debug" : "warn"]("a POST failed; its frames are dropped", { peer: peer.id, error: outcome.error });
    const waitMs = backoffMs(peer.attempts, this.options.reconnectMsMin, this.options.reconnectMsMax, this.options.random);
    peer.timer = setTimeout(() => {
      peer.timer = null;
      this.scheduleFlush(peer);
    }, waitMs);
  }

  /** Sends one POST and reads its answer; never throws. */
  private async exchange(peer: Peer, body: Uint8Array): Promise<Outcome> {
    try {
      const response = await peer.pool.request({
        method: "POST",
        path: HTTP_PATH,
        headers: { ...peer.headers, "content-type": "application/octet-stream" },
        body: Buffer.from(body.buffer, body.byteOffset, body.byteLength),
      });
      if (response.statusCode !== 204 && response.statusCode !== 200) {
        const reason = await readReason(response.body);
        const error = new TransportError(response.statusCode === 403 ? "handshake" : "malformed", `answered ${response.statusCode}: ${reason}`);
        return { error, refused: false };
      }
      await response.body.dump();
      const why = this.checkAnswer(peer, response.headers);
      return why === null ? { error: null } : { error: new TransportError("handshake", why), refused: true };
    } catch (error) {
      return { error, refused: false };
    }
  }

  /** Checks the server's hello in a successful answer: the peer meant, of this cluster, with the secret. */
  private checkAnswer(peer: Peer, headers: HeaderMap): string | null {
    const hello = helloFromHeaders(headers);
    if (typeof hello === "string") return hello;
    const why = checkHello(hello, this.options.clusterId, this.options.secret, this.id);
    if (why !== null) return why;
    return hello.from === peer.id ? null : `posted to "${peer.id}" but "${hello.from}" answered`;
  }

  private dropped(count: number): boolean {
    this.counters.framesDropped += count;
    return false;
  }

  /** Drops `peer`'s queue and closes its pool. */
  private forget(peer: Peer): Promise<void> {
    if (peer.timer !== null) clearTimeout(peer.timer);
    peer.timer = null;
    this.dropped(peer.queue.length);
    peer.queue = [];
    peer.queuedBytes = 0;
    this.dirty.delete(peer);
    return peer.pool.destroy().catch((error: unknown) => this.logger.debug("closing a pool failed", { peer: peer.id, error }));
  }
}

function tooLarge(bytes: number, bodyBytesMax: number): TransportError {
  return new TransportError("frame-too-large", `a body of ${bytes} bytes is over the limit of ${bodyBytesMax}`);
}

/** The first {@link REASON_BYTES_MAX} bytes of an error answer, as text. */
async function readReason(body: AsyncIterable<Uint8Array> & { destroy(): unknown }): Promise<string> {
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    bytes += chunk.length;
    if (bytes >= REASON_BYTES_MAX) break;
  }
  body.destroy();
  return Buffer.from(concatFrames(chunks)).toString("utf8", 0, Math.min(bytes, REASON_BYTES_MAX));
}

/** The transport interface and options, for users of this subpath. */
export type { Transport, TransportHandler, TransportOptions, TransportStats, TransportTlsOptions } from "../transport.ts";
