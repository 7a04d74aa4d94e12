/**
 * How the host frames what it puts in the log and what it sends to peers beside Raft messages.
 *
 * Log entries: the first byte says whose the entry is — {@link ENTRY_TAG.user} (the rest is the
 * user's command, handed to the state machine) or {@link ENTRY_TAG.host} (a host record: a
 * member's address, so that every member learns how to reach a member added later). Empty entries
 * are the no-ops a new leader appends.
 *
 * Payloads: `encodePlain([version, kind, ...fields])`, decoded strictly; a peer's bad payload is
 * logged and dropped.
 */
import { decodePlain, encodePlain } from "../codec/codec.ts";
import { CodecError } from "../errors.ts";
import type { NodeId } from "../raft/messages.ts";

/** The first byte of a log entry written by the host. */
export const ENTRY_TAG = { user: 0, host: 1 } as const;

/** The version of host records, snapshots and payloads. */
export const ENVELOPE_VERSION = 1;

/** A host record in the log. */
export type HostRecord =
  | { readonly kind: "peer"; readonly id: NodeId; readonly address: string }
  | { readonly kind: "unpeer"; readonly id: NodeId };

/** Prefixes a user command with its tag. */
export function userEntry(command: Uint8Array): Uint8Array {
  // Buffer.allocUnsafe carves small buffers out of a shared pool: a fresh backing store per
  // proposal was the host's largest cost. Every byte is written below. The plain Uint8Array view
  // keeps the codec from copying a Buffer subclass when it checks the entry.
  const pooled = Buffer.allocUnsafe(command.length + 1);
  const data = new Uint8Array(pooled.buffer, pooled.byteOffset, pooled.length);
  data[0] = ENTRY_TAG.user;
  data.set(command, 1);
  return data;
}

/** Encodes a host record as entry data. */
export function hostEntry(record: HostRecord): Uint8Array {
  const body =
    record.kind === "peer"
      ? encodePlain([ENVELOPE_VERSION, "peer", record.id, record.address])
      : encodePlain([ENVELOPE_VERSION, "unpeer", record.id]);
  const data = new Uint8Array(body.length + 1);
  data[0] = ENTRY_TAG.host;
  data.set(body, 1);
  return data;
}

/** Decodes a host record's body (the entry without its tag). @throws CodecError */
export function decodeHostRecord(body: Uint8Array): HostRecord {
  const wire = decodePlain(body, "hostRecord");
  if (!Array.isArray(wire) || wire[0] !== ENVELOPE_VERSION) throw new CodecError("hostRecord", "unknown version");
  const [, kind, id, address] = wire as unknown[];
  if (typeof id !== "string" || id.length === 0) throw new CodecError("hostRecord.id", "not a member id");
  if (kind === "unpeer" && wire.length === 3) return { kind, id };
  if (kind === "peer" && wire.length === 4 && typeof address === "string") return { kind, id, address };
  throw new CodecError("hostRecord", "not a peer or unpeer record");
}

/** The host's snapshot: the address book and the state machine's own bytes. */
export function encodeHostSnapshot(peers: ReadonlyMap<NodeId, string>, user: Uint8Array): Uint8Array {
  const book = [...peers.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return encodePlain([ENVELOPE_VERSION, book, user]);
}

/** Decodes {@link encodeHostSnapshot}'s bytes. @throws CodecError */
export function decodeHostSnapshot(data: Uint8Array): { peers: [NodeId, string][]; user: Uint8Array } {
  const wire = decodePlain(data, "hostSnapshot");
  if (!Array.isArray(wire) || wire.length !== 3 || wire[0] !== ENVELOPE_VERSION) {
    throw new CodecError("hostSnapshot", "not a version 1 host snapshot");
  }
  const [, book, user] = wire as unknown[];
  if (!Array.isArray(book) || !(user instanceof Uint8Array)) throw new CodecError("hostSnapshot", "malformed");
  const peers: [NodeId, string][] = [];
  for (const pair of book) {
    if (!Array.isArray(pair) || typeof pair[0] !== "string" || typeof pair[1] !== "string") {
      throw new CodecError("hostSnapshot.peers", "not [id, address] pairs");
    }
    peers.push([pair[0], pair[1]]);
  }
  return { peers, user };
}

/** What members send each other beside Raft messages. */
export type HostPayload =
  /** Follower -> leader: propose `command` on my behalf. */
  | { readonly kind: "forward"; readonly requestId: number; readonly command: Uint8Array }
  /** Leader -> follower: it was appended at (`index`, `term`). */
  | { readonly kind: "forwarded"; readonly requestId: number; readonly index: number; readonly term: number }
  /** Leader -> follower: it was refused. */
  | {
      readonly kind: "refused";
      readonly requestId: number;
      readonly code: string;
      readonly reason: string;
      readonly leaderHint: NodeId | null;
    };

/** Encodes a host payload. */
export function encodeHostPayload(payload: HostPayload): Uint8Array {
  switch (payload.kind) {
    case "forward":
      return encodePlain([ENVELOPE_VERSION, "forward", payload.requestId, payload.command]);
    case "forwarded":
      return encodePlain([ENVELOPE_VERSION, "forwarded", payload.requestId, payload.index, payload.term]);
    case "refused":
      return encodePlain([
        ENVELOPE_VERSION,
        "refused",
        payload.requestId,
        payload.code,
        payload.reason,
        payload.leaderHint,
      ]);
  }
}

/** Decodes a host payload. @throws CodecError */
export function decodeHostPayload(bytes: Uint8Array): HostPayload {
  const wire = decodePlain(bytes, "payload");
  if (!Array.isArray(wire) || wire[0] !== ENVELOPE_VERSION) throw new CodecError("payload", "unknown version");
  const [, kind, requestId, a, b, c] = wire as unknown[];
  if (!Number.isSafeInteger(requestId) || (requestId as number) < 0) {
    throw new CodecError("payload.requestId", "not a non-negative integer");
  }
  const id = requestId as number;
  if (kind === "forward" && wire.length === 4 && a instanceof Uint8Array) {
    return { kind, requestId: id, command: a };
  }
  if (kind === "forwarded" && wire.length === 5 && isIndex(a) && isIndex(b)) {
    return { kind, requestId: id, index: a, term: b };
  }
  if (kind === "refused" && wire.length === 6 && typeof a === "string" && typeof b === "string") {
    if (c === null || typeof c === "string") return { kind, requestId: id, code: a, reason: b, leaderHint: c };
  }
  throw new CodecError("payload", `malformed ${String(kind)} payload`);
}

function isIndex(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}
