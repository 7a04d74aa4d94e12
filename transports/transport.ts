/**
 * The one interface every transport implements (memory, TCP, HTTP), and the options they share.
 * See DESIGN.md §5. A transport carries Raft messages and opaque payloads (the host's forwarded
 * proposals, workers' requests) between members; it never blocks its caller and never throws at it
 * because of a peer: Raft tolerates lost messages, so a full send buffer or a dead peer drops, and
 * the loss is counted in {@link TransportStats}.
 */
import type { Logger } from "../lib/logger.ts";
import type { Message, NodeId } from "../lib/raft/messages.ts";

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
  /** Current counters. */
  stats(): TransportStats;
  /** Closes every connection and stops listening; queued frames are dropped. Idempotent. */
  close(): Promise<void>;
}

/** TLS settings: PEM strings or buffers, as `node:tls` takes them. */
export interface TransportTlsOptions {
  /** This member's certificate chain. */
  readonly cert: string | Uint8Array;
  /** This member's private key. */
  readonly key: string | Uint8Array;
  /** Certificates trusted for peers; when absent, the system's roots. */
  readonly ca?: string | Uint8Array | ReadonlyArray<string | Uint8Array>;
  /**
   * Check the peer's certificate (chain and name). Turn off only for tests with self-signed
   * certificates and no `ca`.
   * @defaultValue true
   */
  readonly rejectUnauthorized?: boolean;
  /** The name to check a peer's certificate against; defaults to the host in its address. */
  readonly servername?: string;
}

/** Options every network transport takes. */
export interface TransportOptions {
  /** This member's id, sent in the handshake. */
  readonly id: NodeId;
  /** The cluster's id; a peer that names another cluster is refused. */
  readonly clusterId: string;
  /** Where to listen, `host:port` (port 0: any free port; see `address()`). */
  readonly listen: string;
  /** Peers by id, each `host:port`. May include this member (ignored). */
  readonly peers?: Readonly<Record<NodeId, string>>;
  /**
   * A secret every member shares; a peer that cannot prove it knows it is refused. Without TLS it
   * authenticates peers but does not hide traffic.
   */
  readonly secret?: string;
  /** Serve and connect over TLS. */
  readonly tls?: TransportTlsOptions;
  /**
   * The largest frame (one message or payload, framing included) sent or accepted. Larger input
   * closes the connection; larger sends are dropped and counted.
   * @defaultValue {@link FRAME_BYTES_MAX_DEFAULT}
   */
  readonly frameBytesMax?: number;
  /**
   * Bytes queued for one peer before new frames to it are dropped.
   * @defaultValue {@link SEND_BUFFER_BYTES_MAX_DEFAULT}
   */
  readonly sendBufferBytesMax?: number;
  /**
   * Reconnect backoff: the first wait and the cap, in milliseconds; each wait is drawn uniformly
   * from [base/2, base] where base doubles per failed attempt (jitter spreads reconnect storms).
   * @defaultValue 25 and 1000
   */
  readonly reconnectMsMin?: number;
  readonly reconnectMsMax?: number;
  /** Randomness for the backoff jitter, in [0, 1). @defaultValue Math.random */
  readonly random?: () => number;
  /** Where errors (malformed input, refused handshakes) and connection changes are logged. */
  readonly logger?: Logger;
  /**
   * Decides, after a peer proved the cluster id and the secret, whether to talk to it at all: a
   * member passes e.g. `workerAdmission({ workers })` to refuse workers it was not told about.
   * A refused peer's connection (or request) is closed like a failed handshake and counted.
   * @defaultValue every authenticated peer is admitted
   */
  readonly admit?: (peer: NodeId) => boolean;
}

/** The default frame size limit: 16 MiB, room for a 1 MiB append or snapshot chunk many times over. */
export const FRAME_BYTES_MAX_DEFAULT = 16 * 1024 * 1024;

/** The default send buffer per peer: 32 MiB. */
export const SEND_BUFFER_BYTES_MAX_DEFAULT = 32 * 1024 * 1024;

/** The default first reconnect wait, in milliseconds. */
export const RECONNECT_MS_MIN_DEFAULT = 25;

/** The default longest reconnect wait, in milliseconds. */
export const RECONNECT_MS_MAX_DEFAULT = 1000;
