/**
 * An in-process transport: members of one {@link MemoryNetwork} exchange the same frames the
 * network transports write, delivered on a later turn of the event loop, so that the host, tests
 * and the in-process benchmark run the real encode/decode path without sockets. The network can cut
 * links (partitions) and inject raw bytes (malformed input), for tests.
 */
import { TransportError } from "../../lib/errors.ts";
import { silentLogger, type Logger } from "../../lib/logger.ts";
import { entryBytes, type Message, type NodeId } from "../../lib/raft/messages.ts";
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
import { zeroStats, type MutableStats } from "../network.ts";
import {
  FRAME_BYTES_MAX_DEFAULT,
  SEND_BUFFER_BYTES_MAX_DEFAULT,
  type Transport,
  type TransportHandler,
  type TransportStats,
} from "../transport.ts";

/** Options for one member's memory transport. */
export interface MemoryTransportOptions {
  readonly id: NodeId;
  /** @defaultValue "memory" */
  readonly clusterId?: string;
  readonly secret?: string;
  /** @defaultValue {@link FRAME_BYTES_MAX_DEFAULT} */
  readonly frameBytesMax?: number;
  /** @defaultValue {@link SEND_BUFFER_BYTES_MAX_DEFAULT} */
  readonly sendBufferBytesMax?: number;
  readonly logger?: Logger;
  /**
   * Encode every message into frame bytes and decode it at the receiver, as the network transports
   * do. With `false`, messages pass by reference (they are immutable), which is what an in-process
   * deployment wants; sizes are then estimated from entry bytes, and hellos and injected bytes
   * still go through the decoder.
   * @defaultValue true
   */
  readonly encode?: boolean;
  /** As `TransportOptions.admit`: which authenticated peers to talk to. @defaultValue every one */
  readonly admit?: (peer: NodeId) => boolean;
}

/** The size charged to an unencoded message: a fixed overhead plus its entries and chunk bytes. */
export function messageBytesEstimate(message: Message): number {
  let bytes = MESSAGE_OVERHEAD_BYTES;
  if (message.type === "append") for (const e of message.entries) bytes += entryBytes(e);
  if (message.type === "snapshot") bytes += message.data.byteLength;
  return bytes;
}

/** The fixed part of {@link messageBytesEstimate}. */
export const MESSAGE_OVERHEAD_BYTES = 64;

/** One direction between two members: frames queued by the sender, decoded by the receiver. */
interface Link {
  /** Frame bytes, or messages passed by reference (`encode: false`). */
  queue: (Uint8Array | Message)[];
  queuedBytes: number;
  decoder: FrameDecoder;
  /** Whether the receiver accepted this link's hello. */
  accepted: boolean;
  /** Whether a hello opens the next frames (a new link, or one reset after bad input). */
  needsHello: boolean;
}

/** A set of in-process members. Create one per test or benchmark. */
export class MemoryNetwork {
  private readonly members = new Map<NodeId, MemoryTransport>();
  private readonly cuts = new Set<string>();
  private readonly links = new Map<string, Link>();
  private flushScheduled = false;
  private readonly dirty = new Set<string>();

  /** Creates the transport of member `options.id` on this network. */
  transport(options: MemoryTransportOptions): MemoryTransport {
    return new MemoryTransport(this, options);
  }

  /** Drops every frame between `a` and `b`, both ways, until {@link heal}. */
  cut(a: NodeId, b: NodeId): void {
    this.cuts.add(`${a}\u0000${b}`);
    this.cuts.add(`${b}\u0000${a}`);
  }

  /** Restores every cut link. */
  heal(): void {
    this.cuts.clear();
  }

  /** Delivers raw `bytes` to `to` as if `from`'s connection had carried them (tests). */
  inject(from: NodeId, to: NodeId, bytes: Uint8Array): void {
    this.enqueue(from, to, bytes, Number.POSITIVE_INFINITY, bytes.length);
  }

  /** @internal */
  attach(transport: MemoryTransport): void {
    const existing = this.members.get(transport.id);
    if (existing !== undefined && existing !== transport && !existing.closed) {
      throw new TransportError("config", `a member "${transport.id}" is already on this network`);
    }
    this.members.set(transport.id, transport);
    // A restarted member gets fresh links, as a reconnect would.
    for (const key of [...this.links.keys()]) {
      const [from, to] = key.split("\u0000");
      if (from === transport.id || to === transport.id) this.links.delete(key);
    }
  }

  /** @internal */
  detach(transport: MemoryTransport): void {
    if (this.members.get(transport.id) === transport) this.members.delete(transport.id);
  }

  /** @internal Queues bytes from `from` to `to`; false when dropped. */
  enqueue(from: NodeId, to: NodeId, frame: Uint8Array | Message, bufferBytesMax: number, bytes: number): boolean {
    const key = `${from}\u0000${to}`;
    if (this.cuts.has(key) || !this.members.has(to)) return false;
    let link = this.links.get(key);
    if (link === undefined) {
      const receiver = this.members.get(to) as MemoryTransport;
      link = { queue: [], queuedBytes: 0, decoder: new FrameDecoder(receiver.frameBytesMax), accepted: false, needsHello: true };
      this.links.set(key, link);
    }
    if (link.queuedBytes + bytes > bufferBytesMax) return false;
    link.queue.push(frame);
    link.queuedBytes += bytes;
    this.dirty.add(key);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return true;
  }

  /** @internal Bytes queued from `from` over all its links. */
  queuedBytesFrom(from: NodeId): number {
    let total = 0;
    for (const [key, link] of this.links) if (key.startsWith(`${from}\u0000`)) total += link.queuedBytes;
    return total;
  }

  /** @internal Whether `from`'s link to `to` still needs its hello. */
  needsHello(from: NodeId, to: NodeId): boolean {
    return this.links.get(`${from}\u0000${to}`)?.needsHello ?? true;
  }

  /** @internal */
  helloSent(from: NodeId, to: NodeId): void {
    const link = this.links.get(`${from}\u0000${to}`);
    if (link !== undefined) link.needsHello = false;
  }

  private flush(): void {
    this.flushScheduled = false;
    const keys = [...this.dirty].sort();
    this.dirty.clear();
    for (const key of keys) {
      const link = this.links.get(key);
      if (link === undefined) continue;
      const [from, to] = key.split("\u0000") as [NodeId, NodeId];
      const frames = link.queue;
      link.queue = [];
      link.queuedBytes = 0;
      const receiver = this.members.get(to);
      if (receiver === undefined || this.cuts.has(key)) continue;
      for (const item of frames) {
        const ok = item instanceof Uint8Array ? receiver.receive(from, link, item) : receiver.receiveMessage(from, link, item);
        if (!ok) {
          // The "connection" is closed: drop the rest, and start over with a new hello.
          this.links.delete(key);
          break;
        }
      }
    }
  }
}

/** One member's transport on a {@link MemoryNetwork}. Its address is its id. */
export class MemoryTransport implements Transport {
  readonly id: NodeId;
  /** @internal */
  readonly frameBytesMax: number;
  /** @internal */
  closed = false;
  private readonly clusterId: string;
  private readonly secret: string | undefined;
  private readonly admit: (peer: NodeId) => boolean;
  private readonly sendBufferBytesMax: number;
  private readonly logger: Logger;
  private readonly encode: boolean;
  private handler: TransportHandler | null = null;
  private readonly peers = new Set<NodeId>();
  private readonly counters: MutableStats = zeroStats();

  constructor(
    private readonly network: MemoryNetwork,
    options: MemoryTransportOptions,
  ) {
    this.id = options.id;
    this.clusterId = options.clusterId ?? "memory";
    this.secret = options.secret;
    this.admit = options.admit ?? (() => true);
    this.frameBytesMax = options.frameBytesMax ?? FRAME_BYTES_MAX_DEFAULT;
    this.sendBufferBytesMax = options.sendBufferBytesMax ?? SEND_BUFFER_BYTES_MAX_DEFAULT;
    this.logger = options.logger ?? silentLogger;
    this.encode = options.encode ?? true;
  }

  async start(handler: TransportHandler): Promise<void> {
    if (this.handler !== null || this.closed) throw new TransportError("config", "start() called twice or after close()");
    this.handler = handler;
    this.network.attach(this);
  }

  send(messages: readonly Message[]): void {
    for (const message of messages) {
      if (this.encode) this.sendFrame(message.to, encodeFrame({ kind: "message", message }));
      else this.sendFrame(message.to, message, messageBytesEstimate(message));
    }
  }

  sendPayload(to: NodeId, payload: Uint8Array): boolean {
    return this.sendFrame(to, withHeader(FRAME_KIND.payload, payload));
  }

  /** Memory peers need no address: every member of the network is reachable by id. */
  setPeer(id: NodeId, _address: string): void {
    this.peers.add(id);
  }

  removePeer(id: NodeId): void {
    this.peers.delete(id);
  }

  address(): string | null {
    return this.handler === null ? null : this.id;
  }

  replyAddress(): null {
    return null;
  }

  stats(): TransportStats {
    return { ...this.counters, sendBufferBytes: this.network.queuedBytesFrom(this.id) };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.network.detach(this);
  }

  /** @internal Handles a message passed by reference; false closes the link. */
  receiveMessage(from: NodeId, link: Link, message: Message): boolean {
    if (this.closed || this.handler === null) return false;
    if (!link.accepted) return this.refuse(from, new TransportError("handshake", "a message before the hello"));
    const why = checkMessage(message, from, this.id);
    if (why !== null) return this.refuse(from, new TransportError("malformed", why));
    this.counters.framesReceived += 1;
    this.handler.onMessage(message);
    return true;
  }

  /** @internal Handles one frame's bytes on the link from `from`; false closes the link. */
  receive(from: NodeId, link: Link, bytes: Uint8Array): boolean {
    if (this.closed || this.handler === null) return false;
    this.counters.bytesReceived += bytes.length;
    let frames: Frame[];
    try {
      frames = link.decoder.push(bytes);
    } catch (error) {
      return this.refuse(from, error);
    }
    for (const frame of frames) {
      if (!link.accepted) {
        const why =
          frame.kind !== "hello"
            ? "the first frame is not a hello"
            : (checkHello(frame.hello, this.clusterId, this.secret, this.id) ??
              (this.admit(frame.hello.from) ? null : `"${frame.hello.from}" is not admitted`));
        if (why !== null || (frame.kind === "hello" && frame.hello.from !== from)) {
          return this.refuse(from, new TransportError("handshake", why ?? "the hello names another sender"));
        }
        link.accepted = true;
        continue;
      }
      if (frame.kind === "hello") return this.refuse(from, new TransportError("malformed", "a second hello"));
      if (frame.kind === "payload") {
        this.counters.framesReceived += 1;
        this.handler.onPayload(from, frame.payload);
        continue;
      }
      const why = checkMessage(frame.message, from, this.id);
      if (why !== null) return this.refuse(from, new TransportError("malformed", why));
      this.counters.framesReceived += 1;
      this.handler.onMessage(frame.message);
    }
    return true;
  }

  private refuse(from: NodeId, error: unknown): boolean {
    this.counters.connectionsRefused += 1;
    this.logger.error("closing a connection after bad input", { peer: from, error });
    return false;
  }

  private sendFrame(to: NodeId, frame: Uint8Array | Message, bytes: number = (frame as Uint8Array).length): boolean {
    if (this.closed || this.handler === null) return this.drop();
    if (bytes > this.frameBytesMax) {
      this.counters.framesOversized += 1;
      this.logger.warn("dropping an oversized frame", { peer: to, bytes });
      return this.drop();
    }
    if (this.network.needsHello(this.id, to)) {
      const hello = encodeFrame({ kind: "hello", hello: makeHello(this.clusterId, this.secret, this.id, to) });
      if (!this.network.enqueue(this.id, to, hello, Number.POSITIVE_INFINITY, hello.length)) return this.drop();
      this.network.helloSent(this.id, to);
      this.counters.connects += 1;
    }
    if (!this.network.enqueue(this.id, to, frame, this.sendBufferBytesMax, bytes)) return this.drop();
    this.counters.framesSent += 1;
    this.counters.bytesSent += bytes;
    return true;
  }

  private drop(): boolean {
    this.counters.framesDropped += 1;
    return false;
  }
}

/** The transport interface and options, for users of this subpath. */
export type { Transport, TransportHandler, TransportOptions, TransportStats, TransportTlsOptions } from "../transport.ts";
