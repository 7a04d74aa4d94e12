/**
 * The options network transports (TCP, HTTP) share, and their defaults. The interface they
 * implement is the `Transport` port (lib/ports/transport.ts), re-exported here for convenience.
 */
import type { Logger } from "../lib/logger.ts";
import type { NodeId } from "../lib/raft/messages.ts";

export type { Transport, TransportHandler, TransportStats } from "../lib/ports/transport.ts";

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
