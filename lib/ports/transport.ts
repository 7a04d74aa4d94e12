/**
 * The `Transport` port: the one interface every transport implements (memory, TCP, HTTP, and the
 * simulator's network). A transport carries Raft messages and opaque payloads (the host's forwarded
 * proposals, workers' requests) between members; it never blocks its caller and never throws at it
 * because of a peer: Raft tolerates lost messages, so a full send buffer or a dead peer drops, and
 * the loss is counted in {@link TransportStats}.
 */
import type { Message, NodeId } from "../raft/messages.ts";

/** What a transport hands to its owner. */
export interface TransportHandler {
  /**
   * A Raft message from an authenticated peer. The transport has checked that `message.from` is
   * the peer the connection was authenticated as and `message.to` is this member.
   */
  onMessage(message: Message): void;
  /** An opaque payload from the authenticated peer `from`. */
  onPayload(from: NodeId, payload: Uint8Array): void;
}

/** Counters a transport keeps; every field only grows, except `sendBufferBytes`. */
export interface TransportStats {
  /** Messages and payloads handed to a connection (not necessarily delivered). */
  readonly framesSent: number;
  /** Messages and payloads received and handed to the handler. */
  readonly framesReceived: number;
  /** Bytes written to and read from connections, framing included. */
  readonly bytesSent: number;
  readonly bytesReceived: number;
  /** Frames dropped because a peer's send buffer was full or it had no connection or address. */
  readonly framesDropped: number;
  /** Frames refused because they were larger than `frameBytesMax`. */
  readonly framesOversized: number;
  /** Connections closed because of malformed input, an oversized frame or a failed handshake. */
  readonly connectionsRefused: number;
  /** Outbound connections (re)established. */
  readonly connects: number;
  /** Bytes queued for peers and not yet written, over all peers. */
  readonly sendBufferBytes: number;
}

/** A transport for one member (or worker). */
export interface Transport {
  /** The id this transport speaks for. */
  readonly id: NodeId;
  /**
   * Starts accepting connections (for network transports: listens on `listen`) and delivering to
   * `handler`. Resolves once ready.
   * @throws TransportError (`config`) when called twice or after `close()`.
   */
  start(handler: TransportHandler): Promise<void>;
  /**
   * Queues Raft messages for their addressees (`message.to`), in order per peer. Returns at once;
   * messages to unknown peers or beyond a full send buffer are dropped and counted.
   */
  send(messages: readonly Message[]): void;
  /**
   * Queues an opaque payload for `to`, ordered with that peer's messages.
   * @returns false when it was dropped (unknown peer, full buffer, oversized, closed).
   */
  sendPayload(to: NodeId, payload: Uint8Array): boolean;
  /** Adds a peer or changes its address (`host:port`); an open connection to an old address is closed. */
  setPeer(id: NodeId, address: string): void;
  /** Forgets a peer and closes its connections. */
  removePeer(id: NodeId): void;
  /** The address the transport listens on, once started (`host:port`; the real port if 0 was asked). */
  address(): string | null;
  /**
   * What a peer must be told so that it can answer this transport: the listening address for a
   * transport that delivers by address (HTTP: every message is a request to the peer's address),
   * or `null` when answers return over the connection this side opened (TCP, memory, simulated).
   * A worker sends it with its requests, and a member answering it sets it as the worker's peer.
   */
  replyAddress(): string | null;
  /** Current counters. */
  stats(): TransportStats;
  /** Closes every connection and stops listening; queued frames are dropped. Idempotent. */
  close(): Promise<void>;
}
