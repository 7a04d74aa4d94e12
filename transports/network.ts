/**
 * What the network transports (TCP, HTTP) share: their options with defaults filled in and checked
 * once, `host:port` addresses, the reconnect backoff and the counters. Internal to the transports;
 * not exported from the package.
 */
import { isIP } from "node:net";
import type { TlsOptions } from "node:tls";
import { TransportError } from "../lib/errors.ts";
import { silentLogger, type Logger } from "../lib/logger.ts";
import type { NodeId } from "../lib/raft/messages.ts";
import {
  FRAME_BYTES_MAX_DEFAULT,
  RECONNECT_MS_MAX_DEFAULT,
  RECONNECT_MS_MIN_DEFAULT,
  SEND_BUFFER_BYTES_MAX_DEFAULT,
  type TransportOptions,
  type TransportStats,
  type TransportTlsOptions,
} from "./transport.ts";

/** The longest member or cluster id a transport accepts, in UTF-16 code units (as the hello). */
export const ID_LENGTH_MAX = 256;

/** The smallest `frameBytesMax` accepted: room for a hello and a small message. */
export const FRAME_BYTES_MAX_MIN = 1024;

/** The longest reconnect wait accepted, in milliseconds (an hour): a longer one is a typo. */
export const RECONNECT_MS_LIMIT = 60 * 60 * 1000;

/** The default admission: every authenticated peer. */
function admitAll(): boolean {
  return true;
}

/** {@link TransportOptions} with every default filled in and every value checked. */
export interface ResolvedOptions {
  readonly id: NodeId;
  readonly clusterId: string;
  readonly listen: Address;
  readonly peers: ReadonlyMap<NodeId, string>;
  readonly secret: string | undefined;
  readonly tls: TransportTlsOptions | undefined;
  readonly frameBytesMax: number;
  readonly sendBufferBytesMax: number;
  readonly reconnectMsMin: number;
  readonly reconnectMsMax: number;
  readonly random: () => number;
  readonly logger: Logger;
  readonly admit: (peer: NodeId) => boolean;
}

/** A parsed `host:port`. */
export interface Address {
  readonly host: string;
  readonly port: number;
}

/**
 * Fills in the defaults of `options` and checks them.
 * @throws TransportError `config` for an empty or over-long id, a bad address or an out-of-range limit.
 */
export function resolveOptions(options: TransportOptions): ResolvedOptions {
  checkId("id", options.id);
  checkId("clusterId", options.clusterId);
  const frameBytesMax = options.frameBytesMax ?? FRAME_BYTES_MAX_DEFAULT;
  const sendBufferBytesMax = options.sendBufferBytesMax ?? SEND_BUFFER_BYTES_MAX_DEFAULT;
  const reconnectMsMin = options.reconnectMsMin ?? RECONNECT_MS_MIN_DEFAULT;
  const reconnectMsMax = options.reconnectMsMax ?? Math.max(RECONNECT_MS_MAX_DEFAULT, reconnectMsMin);
  checkInteger("frameBytesMax", frameBytesMax, FRAME_BYTES_MAX_MIN, 2 ** 32);
  // A frame that passes the frame limit must fit an empty send buffer.
  checkInteger("sendBufferBytesMax", sendBufferBytesMax, frameBytesMax, Number.MAX_SAFE_INTEGER);
  checkInteger("reconnectMsMin", reconnectMsMin, 1, RECONNECT_MS_LIMIT);
  checkInteger("reconnectMsMax", reconnectMsMax, reconnectMsMin, RECONNECT_MS_LIMIT);
  if (options.secret !== undefined && options.secret.length === 0) {
    throw new TransportError("config", "secret is empty; leave it out to run without one");
  }
  const peers = new Map<NodeId, string>();
  for (const [id, address] of Object.entries(options.peers ?? {})) {
    checkId(`peers.${id}`, id);
    parseAddress(address);
    if (id !== options.id) peers.set(id, address);
  }
  return {
    id: options.id,
    clusterId: options.clusterId,
    listen: parseAddress(options.listen),
    peers,
    secret: options.secret,
    tls: options.tls,
    frameBytesMax,
    sendBufferBytesMax,
    reconnectMsMin,
    reconnectMsMax,
    random: options.random ?? Math.random,
    logger: options.logger ?? silentLogger,
    admit: options.admit ?? admitAll,
  };
}

/**
 * Checks that `value` is an integer in [`min`, `max`].
 * @throws TransportError `config` naming `field` otherwise.
 */
export function checkInteger(field: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new TransportError("config", `${field} is ${value}, not an integer in [${min}, ${max}]`);
  }
}

function checkId(field: string, value: string): void {
  if (typeof value !== "string" || value.length === 0 || value.length > ID_LENGTH_MAX) {
    throw new TransportError("config", `${field} must be a non-empty string of at most ${ID_LENGTH_MAX} characters`);
  }
}

/**
 * Parses `host:port` (an IPv6 host in brackets: `[::1]:7000`).
 * @throws TransportError `config` when it is not one.
 */
export function parseAddress(address: string): Address {
  const colon = address.lastIndexOf(":");
  let host = colon > 0 ? address.slice(0, colon) : "";
  const portText = address.slice(colon + 1);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  const port = Number(portText);
  if (host.length === 0 || !/^\d{1,5}$/.test(portText) || port > 65535) {
    throw new TransportError("config", `"${address}" is not a host:port address`);
  }
  return { host, port };
}

/** Formats an address as `host:port`, with an IPv6 host in brackets. */
export function formatAddress(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The name to check a peer's certificate against: the configured `servername`, else the peer's
 * host unless it is an IP address (TLS SNI carries names only; the certificate's IP entries are
 * still checked without it).
 */
export function tlsServername(tls: TransportTlsOptions, host: string): string | undefined {
  if (tls.servername !== undefined) return tls.servername;
  return isIP(host) === 0 ? host : undefined;
}

/**
 * The wait before reconnect attempt `attempt` (from 1), in milliseconds: drawn uniformly from
 * [base/2, base] where base = min(`maxMs`, `minMs` * 2^(attempt-1)).
 */
export function backoffMs(attempt: number, minMs: number, maxMs: number, random: () => number): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30));
  return Math.round(base / 2 + (random() * base) / 2);
}

/** The counters of {@link TransportStats}, writable by the transport that keeps them. */
export type MutableStats = { -readonly [K in keyof TransportStats]: TransportStats[K] };

/** Counters at zero. */
export function zeroStats(): MutableStats {
  return {
    framesSent: 0,
    framesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    framesDropped: 0,
    framesOversized: 0,
    connectionsRefused: 0,
    connects: 0,
    sendBufferBytes: 0,
  };
}


/** The key material of `tls` in the form `node:tls` (and undici's connector) takes. */
export function tlsContext(tls: TransportTlsOptions): Pick<TlsOptions, "cert" | "key" | "ca"> {
  const pem = (value: string | Uint8Array): string | Buffer => (typeof value === "string" ? value : Buffer.from(value));
  const ca = tls.ca;
  const trusted = ca === undefined ? undefined : isList(ca) ? ca.map(pem) : pem(ca);
  return { cert: pem(tls.cert), key: pem(tls.key), ...(trusted === undefined ? {} : { ca: trusted }) };
}

function isList<T>(value: T | ReadonlyArray<T>): value is ReadonlyArray<T> {
  return Array.isArray(value);
}
