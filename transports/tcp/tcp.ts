/**
 * The TCP transport (DESIGN.md §5): length-prefixed frames ({@link encodeFrame}) on exactly one
 * connection per pair of members, optionally over TLS.
 *
 * The member with the smaller id (string `<`) dials the other and sends a `hello`; the acceptor
 * checks it ({@link checkHello}) and answers with its own, which the dialer checks in turn, so each
 * side authenticates the other before any message flows. Both directions then share that socket.
 * The dialer reconnects with jittered exponential backoff after a failure or a peer restart; the
 * higher id keeps its frames (bounded) until the lower one dials in again.
 *
 * Writes are coalesced: frames queue per peer and are written corked once per turn of the event
 * loop. When a socket pushes back, frames keep queueing until `drain`, and once a peer's queued
 * and socket-buffered bytes would pass `sendBufferBytesMax` new frames to it are dropped (Raft
 * resends what matters), so a peer that stops reading cannot grow this process's memory.
 *
 * Malformed input, an oversized frame, a failed handshake or a message that names the wrong sender
 * or addressee closes that one connection with an error in the log; nothing is thrown at the member.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { connect as tlsConnect, createServer as createTlsServer } from "node:tls";
import { TransportError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/logger.ts";
import type { Message, NodeId } from "../../lib/raft/messages.ts";
import {
  FRAME_KIND,
  FrameDecoder,
  checkHello,
  checkMessage,
  encodeFrame,
  makeHello,
  withHeader,
  type Frame,
} from "../frame.ts";
import {
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

/** Options of {@link createTcpTransport}. */
export interface TcpTransportOptions extends TransportOptions {
  /**
   * How long a connection may take to connect and complete the handshake, in milliseconds, before
   * it is closed.
   * @defaultValue {@link HANDSHAKE_MS_MAX_DEFAULT}
   */
  readonly handshakeMsMax?: number;
  /**
   * Connections open at once (inbound and outbound, handshaking included); inbound ones beyond
   * it are closed at once and counted as refused.
   * @defaultValue {@link CONNECTIONS_MAX_DEFAULT}
   */
  readonly connectionsMax?: number;
  /**
   * Dial every peer whatever the ids, and never wait to be dialed: for a worker, whose members
   * have no address for it and so never dial it. Members leave it off.
   * @defaultValue false (the member with the smaller id dials)
   */
  readonly dialAlways?: boolean;
}

/** The default time to connect and complete a handshake: 5 s. */
export const HANDSHAKE_MS_MAX_DEFAULT = 5_000;

/** The default cap on open connections: 1024. */
export const CONNECTIONS_MAX_DEFAULT = 1_024;

/**
 * Bytes handed to one socket ahead of the kernel (1 MiB; less when `sendBufferBytesMax` is
 * smaller): the rest of a peer's frames wait in its queue, where the send buffer bound sees them.
 */
export const SOCKET_WRITE_BYTES_MAX = 1024 * 1024;

/** The idle time before TCP keep-alive probes start, in milliseconds. */
export const KEEPALIVE_MS = 10_000;

/**
 * Creates a TCP transport for member `options.id`. Call `start()` to listen and dial.
 * @throws TransportError `config` for invalid options.
 */
export function createTcpTransport(options: TcpTransportOptions): Transport {
  return new TcpTransport(options);
}

/** One socket, from connect or accept until close. */
interface Connection {
  readonly socket: Socket;
  /** Whether this member dialed it or accepted it. */
  readonly role: "dial" | "accept";
  /** The other end, `host:port`, for the log. */
  readonly remote: string;
  readonly decoder: FrameDecoder;
  /** dial: the peer meant to be reached; accept: the authenticated peer, `null` until the hello. */
  peer: NodeId | null;
  /** Whether the handshake completed both ways. */
  open: boolean;
  closed: boolean;
  /** Whether a write returned false and the queue waits for `drain`. */
  waitingDrain: boolean;
  /** The handshake deadline, until the handshake completes. */
  timer: NodeJS.Timeout | null;
}

/** A peer: its address, its queue, its connection. */
interface Peer {
  readonly id: NodeId;
  /** `null` for a peer known only by its inbound connection (e.g. a worker): forgotten when it closes. */
  address: string | null;
  /** Frames not yet handed to a socket, in order. */
  queue: Uint8Array[];
  queuedBytes: number;
  /** The connection frames to this peer go on, once its handshake completed. */
  connection: Connection | null;
  /** This member's outbound connection to the peer, while it connects, handshakes or is open. */
  dial: Connection | null;
  /** Failed dial attempts since the last handshake completed; drives the backoff. */
  attempts: number;
  /** The pending reconnect. */
  timer: NodeJS.Timeout | null;
}

/** The TCP transport; see the module comment. Use {@link createTcpTransport}. */
export class TcpTransport implements Transport {
  readonly id: NodeId;
  private readonly options: ResolvedOptions;
  private readonly handshakeMsMax: number;
  private readonly connectionsMax: number;
  private readonly dialAlways: boolean;
  private readonly logger: Logger;
  private readonly counters = zeroStats();
  private readonly peers = new Map<NodeId, Peer>();
  private readonly connections = new Set<Connection>();
  private readonly dirty = new Set<Peer>();
  private flushScheduled = false;
  private handler: TransportHandler | null = null;
  private server: Server | null = null;
  private closed = false;

  /** @throws TransportError `config` for invalid options. */
  constructor(options: TcpTransportOptions) {
    this.options = resolveOptions(options);
    this.id = this.options.id;
    this.logger = this.options.logger;
    this.handshakeMsMax = options.handshakeMsMax ?? HANDSHAKE_MS_MAX_DEFAULT;
    this.connectionsMax = options.connectionsMax ?? CONNECTIONS_MAX_DEFAULT;
    this.dialAlways = options.dialAlways ?? false;
    checkInteger("handshakeMsMax", this.handshakeMsMax, 1, 10 * 60 * 1000);
    checkInteger("connectionsMax", this.connectionsMax, 1, 1_000_000);
    for (const [id, address] of this.options.peers) this.addPeer(id, address);
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
    for (const peer of this.peers.values()) this.maybeDial(peer);
  }

  send(messages: readonly Message[]): void {
    for (const message of messages) this.enqueue(message.to, () => encodeFrame({ kind: "message", message }));
  }

  sendPayload(to: NodeId, payload: Uint8Array): boolean {
    return this.enqueue(to, () => withHeader(FRAME_KIND.payload, payload));
  }

  setPeer(id: NodeId, address: string): void {
    parseAddress(address);
    if (id === this.id || this.closed) return;
    const peer = this.peers.get(id);
    if (peer === undefined) {
      this.maybeDial(this.addPeer(id, address));
      return;
    }
    const old = peer.address;
    peer.address = address;
    if (old === address) return;
    peer.attempts = 0;
    if (old !== null) {
      this.clearTimer(peer);
      for (const conn of [peer.connection, peer.dial]) if (conn !== null) this.destroy(conn);
    }
    this.maybeDial(peer);
  }

  removePeer(id: NodeId): void {
    const peer = this.peers.get(id);
    if (peer === undefined) return;
    this.forget(peer);
    for (const conn of [peer.connection, peer.dial]) if (conn !== null) this.destroy(conn);
  }

  address(): string | null {
    const bound = this.server?.address();
    if (bound === undefined || bound === null || typeof bound === "string") return bound ?? null;
    return formatAddress(bound.address, bound.port);
  }

  replyAddress(): null {
    // Answers go back over the connection the peer opened.
    return null;
  }

  stats(): TransportStats {
    let sendBufferBytes = 0;
    for (const peer of this.peers.values()) sendBufferBytes += this.bufferedBytes(peer);
    return { ...this.counters, sendBufferBytes };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const peer of [...this.peers.values()]) this.forget(peer);
    for (const conn of [...this.connections]) this.destroy(conn);
    const server = this.server;
    this.server = null;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // --- Listening and dialing ------------------------------------------------------------------

  private listen(): Promise<Server> {
    const tls = this.options.tls;
    const onSocket = (socket: Socket) => this.accept(socket);
    const server =
      tls === undefined
        ? createServer(onSocket)
        : createTlsServer(
            { ...tlsContext(tls), requestCert: true, rejectUnauthorized: tls.rejectUnauthorized ?? true, handshakeTimeout: this.handshakeMsMax },
            onSocket,
          );
    if (tls !== undefined) {
      server.on("tlsClientError", (error: Error, socket: Socket) => {
        this.counters.connectionsRefused += 1;
        this.logger.error("closing a connection after a failed TLS handshake", { peer: null, remote: remoteOf(socket), error });
      });
    }
    // The server drops connections past the cap before they reach accept(); count and log them.
    server.maxConnections = this.connectionsMax;
    server.on("drop", (data?: { remoteAddress?: string; remotePort?: number }) => {
      this.counters.connectionsRefused += 1;
      const remote = formatAddress(data?.remoteAddress ?? "unknown", data?.remotePort ?? 0);
      this.logger.error("refusing a connection: too many open", { peer: null, remote, connectionsMax: this.connectionsMax });
    });
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

  private accept(socket: Socket): void {
    if (this.closed || this.connections.size >= this.connectionsMax) {
      if (!this.closed) {
        this.counters.connectionsRefused += 1;
        this.logger.error("refusing a connection: too many open", { peer: null, remote: remoteOf(socket), connectionsMax: this.connectionsMax });
      }
      socket.destroy();
      return;
    }
    const conn = this.track(socket, "accept", null, remoteOf(socket));
    conn.timer = setTimeout(() => this.onHandshakeTimeout(conn), this.handshakeMsMax);
  }

  /** Dials `peer` now, or after the backoff when its last attempt failed, if this member should. */
  private maybeDial(peer: Peer): void {
    if (this.closed || this.handler === null || peer.address === null || !(this.dialAlways || this.id < peer.id)) return;
    if (peer.dial !== null || peer.connection !== null || peer.timer !== null) return;
    if (peer.attempts === 0) {
      this.dial(peer, peer.address);
      return;
    }
    const waitMs = backoffMs(peer.attempts, this.options.reconnectMsMin, this.options.reconnectMsMax, this.options.random);
    peer.timer = setTimeout(() => {
      peer.timer = null;
      if (this.peers.get(peer.id) === peer) this.maybeDialNow(peer);
    }, waitMs);
  }

  private maybeDialNow(peer: Peer): void {
    if (this.closed || peer.address === null || peer.dial !== null || peer.connection !== null) return;
    this.dial(peer, peer.address);
  }

  private dial(peer: Peer, address: string): void {
    peer.attempts += 1;
    const { host, port } = parseAddress(address);
    const tls = this.options.tls;
    let socket: Socket;
    if (tls === undefined) {
      socket = createConnection({ host, port });
    } else {
      const servername = tlsServername(tls, host);
      socket = tlsConnect({
        host,
        port,
        ...tlsContext(tls),
        rejectUnauthorized: tls.rejectUnauthorized ?? true,
        ...(servername === undefined ? {} : { servername }),
      });
    }
    const conn = this.track(socket, "dial", peer.id, address);
    peer.dial = conn;
    socket.once(tls === undefined ? "connect" : "secureConnect", () => this.writeHello(conn, peer.id));
    conn.timer = setTimeout(() => this.onHandshakeTimeout(conn), this.handshakeMsMax);
  }

  private track(socket: Socket, role: "dial" | "accept", peer: NodeId | null, remote: string): Connection {
    const conn: Connection = {
      socket,
      role,
      remote,
      decoder: new FrameDecoder(this.options.frameBytesMax),
      peer,
      open: false,
      closed: false,
      waitingDrain: false,
      timer: null,
    };
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_MS);
    socket.on("data", (chunk: Buffer) => this.onData(conn, chunk));
    socket.on("drain", () => this.onDrain(conn));
    socket.on("error", (error) => this.onSocketError(conn, error));
    socket.on("close", () => this.onClose(conn));
    this.connections.add(conn);
    return conn;
  }

  // --- Receiving ------------------------------------------------------------------------------

  private onData(conn: Connection, chunk: Uint8Array): void {
    if (conn.closed) return;
    this.counters.bytesReceived += chunk.length;
    let frames: Frame[];
    try {
      frames = conn.decoder.push(chunk);
    } catch (error) {
      this.refuse(conn, error);
      return;
    }
    for (const frame of frames) {
      if (conn.closed) return;
      if (conn.open) this.onFrame(conn, frame);
      else this.onHello(conn, frame);
    }
  }

  private onHello(conn: Connection, frame: Frame): void {
    const why = this.checkHandshake(conn, frame);
    if (why !== null || frame.kind !== "hello") {
      this.refuse(conn, new TransportError("handshake", why ?? "not a hello"));
      return;
    }
    const from = frame.hello.from;
    if (conn.timer !== null) clearTimeout(conn.timer);
    conn.timer = null;
    if (conn.role === "accept") this.writeHello(conn, from);
    conn.peer = from;
    conn.open = true;
    this.attach(conn, from);
  }

  private checkHandshake(conn: Connection, frame: Frame): string | null {
    if (frame.kind !== "hello") return "the first frame is not a hello";
    const why = checkHello(frame.hello, this.options.clusterId, this.options.secret, this.id);
    if (why !== null) return why;
    if (conn.role === "dial" && frame.hello.from !== conn.peer) {
      return `dialed "${String(conn.peer)}" but reached "${frame.hello.from}"`;
    }
    if (!this.options.admit(frame.hello.from)) return `"${frame.hello.from}" is not admitted`;
    return null;
  }

  /** Makes `conn` the connection to peer `id`, replacing (and closing) an older one. */
  private attach(conn: Connection, id: NodeId): void {
    const peer = this.peers.get(id) ?? this.addPeer(id, null);
    const old = peer.connection;
    peer.connection = conn;
    if (conn.role === "dial") {
      peer.attempts = 0;
      this.counters.connects += 1;
    }
    this.logger.info("connected", { peer: id, role: conn.role, remote: conn.remote });
    if (old !== null && old !== conn) this.destroy(old);
    this.scheduleFlush(peer);
  }

  private onFrame(conn: Connection, frame: Frame): void {
    const peer = conn.peer as NodeId;
    const handler = this.handler as TransportHandler;
    switch (frame.kind) {
      case "hello":
        this.refuse(conn, new TransportError("malformed", "a second hello"));
        return;
      case "payload":
        this.counters.framesReceived += 1;
        handler.onPayload(peer, frame.payload);
        return;
      case "message": {
        const why = checkMessage(frame.message, peer, this.id);
        if (why !== null) {
          this.refuse(conn, new TransportError("malformed", why));
          return;
        }
        this.counters.framesReceived += 1;
        handler.onMessage(frame.message);
        return;
      }
    }
  }

  private onHandshakeTimeout(conn: Connection): void {
    conn.timer = null;
    const error = new TransportError("handshake", `no handshake within ${this.handshakeMsMax} ms`);
    if (conn.role === "accept") {
      this.refuse(conn, error);
      return;
    }
    this.logger.warn("closing a connection that did not complete its handshake", { peer: conn.peer, remote: conn.remote, error });
    this.destroy(conn);
  }

  private onSocketError(conn: Connection, error: Error): void {
    if (conn.closed) return;
    const peer = conn.peer === null ? undefined : this.peers.get(conn.peer);
    // A dead peer fails every reconnect; only the first failure in a row is worth a warning.
    const quiet = conn.role === "dial" && peer !== undefined && peer.attempts > 1;
    this.logger[quiet ? "debug" : "warn"]("connection error", { peer: conn.peer, remote: conn.remote, error });
    this.destroy(conn);
  }

  private onClose(conn: Connection): void {
    if (!conn.closed && conn.role === "dial" && !conn.open) {
      // The acceptor closes without a word when it refuses our hello: its log says why.
      const peer = conn.peer === null ? undefined : this.peers.get(conn.peer);
      const quiet = peer !== undefined && peer.attempts > 1;
      this.logger[quiet ? "debug" : "warn"]("the peer closed the connection before the handshake completed", { peer: conn.peer, remote: conn.remote });
    }
    this.destroy(conn);
  }

  /** Closes `conn` after bad input, counting and logging it. */
  private refuse(conn: Connection, error: unknown): void {
    if (conn.closed) return;
    this.counters.connectionsRefused += 1;
    this.logger.error("closing a connection after bad input", { peer: conn.peer, remote: conn.remote, error });
    this.destroy(conn);
  }

  /** Closes `conn` (idempotent) and detaches it from its peer, which may then redial. */
  private destroy(conn: Connection): void {
    if (conn.closed) return;
    conn.closed = true;
    if (conn.timer !== null) clearTimeout(conn.timer);
    conn.timer = null;
    conn.socket.destroy();
    this.connections.delete(conn);
    const peer = conn.peer === null ? undefined : this.peers.get(conn.peer);
    if (peer === undefined) return;
    if (peer.dial === conn) peer.dial = null;
    if (peer.connection === conn) {
      peer.connection = null;
      this.logger.info("disconnected", { peer: peer.id, role: conn.role, remote: conn.remote });
      if (peer.address === null) {
        this.forget(peer);
        return;
      }
    }
    this.maybeDial(peer);
  }

  // --- Sending --------------------------------------------------------------------------------

  private enqueue(to: NodeId, encode: () => Uint8Array): boolean {
    const peer = this.peers.get(to);
    if (this.closed || this.handler === null || peer === undefined) return this.dropped();
    const frame = encode();
    if (frame.length > this.options.frameBytesMax) {
      this.counters.framesOversized += 1;
      this.logger.warn("dropping an oversized frame", { peer: to, bytes: frame.length, frameBytesMax: this.options.frameBytesMax });
      return this.dropped();
    }
    if (this.bufferedBytes(peer) + frame.length > this.options.sendBufferBytesMax) return this.dropped();
    peer.queue.push(frame);
    peer.queuedBytes += frame.length;
    this.scheduleFlush(peer);
    return true;
  }

  private writeHello(conn: Connection, to: NodeId): void {
    if (conn.closed) return;
    const frame = encodeFrame({ kind: "hello", hello: makeHello(this.options.clusterId, this.options.secret, this.id, to) });
    this.counters.bytesSent += frame.length;
    conn.socket.write(frame);
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
    for (const peer of peers) this.writeQueue(peer);
  }

  /** Writes `peer`'s queued frames, corked into one write, up to the socket's share of the buffer. */
  private writeQueue(peer: Peer): void {
    const conn = peer.connection;
    if (conn === null || !conn.open || conn.closed || conn.waitingDrain || peer.queue.length === 0) return;
    const socket = conn.socket;
    const limit = Math.max(Math.min(SOCKET_WRITE_BYTES_MAX, this.options.sendBufferBytesMax), socket.writableHighWaterMark);
    let count = 0;
    let bytes = 0;
    socket.cork();
    while (count < peer.queue.length && socket.writableLength < limit) {
      const frame = peer.queue[count] as Uint8Array;
      socket.write(frame);
      count += 1;
      bytes += frame.length;
    }
    socket.uncork();
    peer.queue.splice(0, count);
    peer.queuedBytes -= bytes;
    this.counters.framesSent += count;
    this.counters.bytesSent += bytes;
    if (peer.queue.length === 0) return;
    // Past the limit a write has returned false, so `drain` will come; otherwise try next turn.
    if (socket.writableNeedDrain) conn.waitingDrain = true;
    else this.scheduleFlush(peer);
  }

  private onDrain(conn: Connection): void {
    conn.waitingDrain = false;
    const peer = conn.peer === null ? undefined : this.peers.get(conn.peer);
    if (peer !== undefined && peer.connection === conn) this.scheduleFlush(peer);
  }

  /** Bytes queued for `peer` and not yet taken by the kernel. */
  private bufferedBytes(peer: Peer): number {
    const socket = peer.connection?.socket;
    return peer.queuedBytes + (socket === undefined || peer.connection?.closed === true ? 0 : socket.writableLength);
  }

  private dropped(): boolean {
    this.counters.framesDropped += 1;
    return false;
  }

  // --- Peers ----------------------------------------------------------------------------------

  private addPeer(id: NodeId, address: string | null): Peer {
    const peer: Peer = { id, address, queue: [], queuedBytes: 0, connection: null, dial: null, attempts: 0, timer: null };
    this.peers.set(id, peer);
    return peer;
  }

  /** Removes `peer`, dropping its queue; its connections, if any, are left to the caller. */
  private forget(peer: Peer): void {
    this.clearTimer(peer);
    this.counters.framesDropped += peer.queue.length;
    peer.queue = [];
    peer.queuedBytes = 0;
    this.dirty.delete(peer);
    if (this.peers.get(peer.id) === peer) this.peers.delete(peer.id);
  }

  private clearTimer(peer: Peer): void {
    if (peer.timer !== null) clearTimeout(peer.timer);
    peer.timer = null;
  }
}

function remoteOf(socket: Socket): string {
  return formatAddress(socket.remoteAddress ?? "unknown", socket.remotePort ?? 0);
}

/** The transport interface and options, for users of this subpath. */
export type { Transport, TransportHandler, TransportOptions, TransportStats, TransportTlsOptions } from "../transport.ts";
