/**
 * The frames every transport exchanges: `[length u32 BE][kind u8][body]`, where `length` counts the
 * kind byte and the body. TCP writes them back to back on a connection; HTTP sends a batch of them
 * as one request body; the memory transport passes the same bytes, so that all three decode the
 * same way and refuse the same garbage.
 *
 * Kinds: `hello` (the handshake: cluster id, sender, addressee, proof of the shared secret),
 * `message` (one Raft message, {@link encodeMessage}) and `payload` (opaque bytes for the host).
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { decodeMessage, decodePlain, encodeMessageWithPrefix, encodePlain } from "../lib/codec/codec.ts";
import { CodecError, TransportError } from "../lib/errors.ts";
import type { Message, NodeId } from "../lib/raft/messages.ts";

/** Bytes before a frame's body: the length (4) and the kind (1). */
export const FRAME_HEADER_BYTES = 5;

/** The handshake's version; a peer speaking another is refused. */
export const HELLO_VERSION = 1;

/** Wire codes of the frame kinds. */
export const FRAME_KIND = { hello: 0, message: 1, payload: 2 } as const;

/** The handshake a connecting side sends first (and, for HTTP, every request carries). */
export interface Hello {
  readonly version: number;
  readonly clusterId: string;
  readonly from: NodeId;
  readonly to: NodeId;
  /** HMAC-SHA256 of (cluster, from, to) under the shared secret, or `null` without a secret. */
  readonly proof: Uint8Array | null;
}

/** A decoded frame. */
export type Frame =
  | { readonly kind: "hello"; readonly hello: Hello }
  | { readonly kind: "message"; readonly message: Message }
  | { readonly kind: "payload"; readonly payload: Uint8Array };

/** Encodes one frame with its header. */
export function encodeFrame(frame: Frame): Uint8Array {
  switch (frame.kind) {
    case "hello":
      return withHeader(FRAME_KIND.hello, encodeHello(frame.hello));
    case "message": {
      const bytes = encodeMessageWithPrefix(frame.message, FRAME_HEADER_BYTES);
      new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(0, bytes.length - 4);
      bytes[4] = FRAME_KIND.message;
      return bytes;
    }
    case "payload":
      return withHeader(FRAME_KIND.payload, frame.payload);
  }
}

/** Prefixes `body` with a frame header of `kind`. */
export function withHeader(kind: number, body: Uint8Array): Uint8Array {
  const frame = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  view.setUint32(0, body.length + 1);
  frame[4] = kind;
  frame.set(body, FRAME_HEADER_BYTES);
  return frame;
}

/** Joins frames into one buffer (an HTTP body, one coalesced socket write). */
export function concatFrames(frames: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const f of frames) total += f.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const f of frames) {
    out.set(f, offset);
    offset += f.length;
  }
  return out;
}

/**
 * Splits a byte stream into frames. Feed it chunks as they arrive; it returns the complete frames
 * and keeps the rest. It never holds more than one frame of at most `frameBytesMax` bytes.
 */
export class FrameDecoder {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;

  constructor(private readonly frameBytesMax: number) {}

  /**
   * Adds `chunk` and decodes every complete frame.
   * @throws TransportError `frame-too-large` when a header announces more than `frameBytesMax`;
   * `malformed` for an unknown kind or a body that does not decode. The stream is then unusable:
   * close the connection.
   */
  push(chunk: Uint8Array): Frame[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const frames: Frame[] = [];
    while (this.pendingBytes >= FRAME_HEADER_BYTES) {
      const head = this.peek(FRAME_HEADER_BYTES);
      const length = new DataView(head.buffer, head.byteOffset, 4).getUint32(0);
      if (length < 1) throw new TransportError("malformed", "a frame of length 0");
      if (length + 4 > this.frameBytesMax) {
        throw new TransportError(
          "frame-too-large",
          `a frame of ${length + 4} bytes is over the limit of ${this.frameBytesMax}`,
        );
      }
      if (this.pendingBytes < length + 4) break;
      const frame = this.take(length + 4);
      frames.push(decodeFrameBody(frame[4] ?? -1, frame.subarray(FRAME_HEADER_BYTES)));
    }
    return frames;
  }

  /** Bytes held that do not yet make a whole frame. */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }

  private peek(n: number): Uint8Array {
    const first = this.pending[0];
    if (first !== undefined && first.length >= n) return first;
    this.pending = [concatFrames(this.pending)];
    return this.pending[0] as Uint8Array;
  }

  private take(n: number): Uint8Array {
    const joined = this.peek(n);
    const frame = joined.subarray(0, n);
    const rest = joined.subarray(n);
    this.pending = rest.length > 0 ? [rest, ...this.pending.slice(1)] : this.pending.slice(1);
    this.pendingBytes -= n;
    return frame;
  }
}

/** Decodes every frame in `bytes` (an HTTP body): all of them, or a TransportError. */
export function decodeFrames(bytes: Uint8Array, frameBytesMax: number): Frame[] {
  const decoder = new FrameDecoder(frameBytesMax);
  const frames = decoder.push(bytes);
  if (decoder.bufferedBytes !== 0) {
    throw new TransportError("malformed", `${decoder.bufferedBytes} bytes after the last whole frame`);
  }
  return frames;
}

function decodeFrameBody(kind: number, body: Uint8Array): Frame {
  try {
    switch (kind) {
      case FRAME_KIND.hello:
        return { kind: "hello", hello: decodeHello(body) };
      case FRAME_KIND.message:
        return { kind: "message", message: decodeMessage(body, { bytesMax: body.length + 1 }) };
      case FRAME_KIND.payload:
        // A copy, and a plain Uint8Array: the body is a view into a buffer the decoder reuses, and
        // when that is a Node Buffer its slice() would be a view too.
        return { kind: "payload", payload: new Uint8Array(body) };
      default:
        throw new TransportError("malformed", `unknown frame kind ${kind}`);
    }
  } catch (error) {
    if (CodecError.is(error)) throw new TransportError("malformed", error.message);
    throw error;
  }
}

function encodeHello(hello: Hello): Uint8Array {
  return encodePlain([hello.version, hello.clusterId, hello.from, hello.to, hello.proof]);
}

const ID_LENGTH_MAX = 256;

function decodeHello(body: Uint8Array): Hello {
  const wire = decodePlain(body, "hello");
  if (!Array.isArray(wire) || wire.length !== 5) throw new CodecError("hello", "not a 5-tuple");
  const [version, clusterId, from, to, proof] = wire as unknown[];
  if (version !== HELLO_VERSION) throw new CodecError("hello.version", `unsupported version ${String(version)}`);
  for (const [name, value] of [["clusterId", clusterId], ["from", from], ["to", to]] as const) {
    if (typeof value !== "string" || value.length === 0 || value.length > ID_LENGTH_MAX) {
      throw new CodecError(`hello.${name}`, "not a non-empty string of at most 256 characters");
    }
  }
  if (proof !== null && !(proof instanceof Uint8Array && proof.length === 32)) {
    throw new CodecError("hello.proof", "neither null nor 32 bytes");
  }
  return { version, clusterId: clusterId as string, from: from as string, to: to as string, proof };
}

/** The proof of the shared secret for a connection from `from` to `to` in `clusterId`. */
export function helloProof(secret: string | undefined, clusterId: string, from: NodeId, to: NodeId): Uint8Array | null {
  if (secret === undefined) return null;
  return new Uint8Array(createHmac("sha256", secret).update(`orrery\n${clusterId}\n${from}\n${to}`).digest());
}

/** Builds the hello `from` sends to `to`. */
export function makeHello(clusterId: string, secret: string | undefined, from: NodeId, to: NodeId): Hello {
  return { version: HELLO_VERSION, clusterId, from, to, proof: helloProof(secret, clusterId, from, to) };
}

/**
 * Checks a peer's hello against this member's cluster, id and secret.
 * @returns `null` when it is acceptable, else why not (for the log).
 */
export function checkHello(hello: Hello, clusterId: string, secret: string | undefined, self: NodeId): string | null {
  if (hello.clusterId !== clusterId) return `cluster "${hello.clusterId}" is not "${clusterId}"`;
  if (hello.to !== self) return `addressed to "${hello.to}", not "${self}"`;
  if (hello.from === self) return "a peer claims this member's own id";
  if (secret === undefined) return null;
  const expected = helloProof(secret, clusterId, hello.from, hello.to) as Uint8Array;
  // The length check first: timingSafeEqual throws on inputs of different lengths.
  if (hello.proof === null || hello.proof.length !== expected.length || !timingSafeEqual(hello.proof, expected)) {
    return "the shared secret does not match";
  }
  return null;
}

/**
 * Checks a decoded Raft message against the authenticated peer: a peer may speak only for itself,
 * and only to this member.
 */
export function checkMessage(message: Message, peer: NodeId, self: NodeId): string | null {
  if (message.from !== peer) return `a message from "${message.from}" on the connection of "${peer}"`;
  if (message.to !== self) return `a message for "${message.to}" delivered to "${self}"`;
  return null;
}
