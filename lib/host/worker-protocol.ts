/**
 * What workers and members say to each other, as transport payloads (DESIGN.md §3). A worker
 * speaks on its transport as peer `worker:<id>` ({@link workerPeerId}); the transport has
 * authenticated that id with the cluster's handshake and secret, so requests carry no worker id of
 * their own and a worker can speak only for itself.
 *
 * Worker -> member: `join`, `renew`, `release`, `leave`, each with a request id the answer echoes.
 * Member -> worker: `joined`, `renewed` (the keys the worker owns), `released`, `left`, or `refused`
 * (not the leader, with a hint; busy; a refused command). Encoded as `[version, kind, ...fields]`
 * and decoded strictly: a malformed payload is logged and dropped, never thrown at the process.
 */
import { decodePlain, encodePlain } from "../codec/codec.ts";
import { CodecError } from "../errors.ts";
import type { NodeId } from "../raft/messages.ts";
import type { ResourceKey, WorkerId } from "../placement/types.ts";
import type { AnsweredKey } from "../placement/worker.ts";

/** The version of the worker protocol. */
export const WORKER_PROTOCOL_VERSION = 1;

/** The prefix of a worker's transport id: worker `w1` speaks as peer `worker:w1`. */
export const WORKER_PEER_PREFIX = "worker:";

/** The longest worker id (the part after the prefix). */
export const WORKER_ID_LENGTH_MAX = 128;

/** The transport id a worker speaks as. */
export function workerPeerId(worker: WorkerId): NodeId {
  return `${WORKER_PEER_PREFIX}${worker}`;
}

/** Whether a transport peer is a worker (rather than a member). */
export function isWorkerPeer(peer: NodeId): boolean {
  return peer.startsWith(WORKER_PEER_PREFIX);
}

/** The worker id of a worker peer, or `null` for a member or a malformed id. */
export function workerOfPeer(peer: NodeId): WorkerId | null {
  if (!isWorkerPeer(peer)) return null;
  const id = peer.slice(WORKER_PEER_PREFIX.length);
  return validWorkerId(id) ? id : null;
}

/** Whether `id` may name a worker: 1 to {@link WORKER_ID_LENGTH_MAX} of `[A-Za-z0-9._-]`. */
export function validWorkerId(id: string): boolean {
  return id.length >= 1 && id.length <= WORKER_ID_LENGTH_MAX && /^[A-Za-z0-9._-]+$/.test(id);
}

/**
 * Builds a transport's `admit` for a member: members are always admitted; a worker only if its id
 * is in `workers` (when given), so an unknown worker is refused at the handshake even if it knows
 * the secret. Without `workers`, any worker that proves the secret is admitted.
 */
export function workerAdmission(options: { readonly workers?: readonly WorkerId[] } = {}): (peer: NodeId) => boolean {
  const allowed = options.workers === undefined ? null : new Set(options.workers);
  return (peer) => {
    if (!isWorkerPeer(peer)) return true;
    const worker = workerOfPeer(peer);
    return worker !== null && (allowed === null || allowed.has(worker));
  };
}

/** A worker's request. `replyTo` is where a member must send the answer when its transport needs an address (HTTP); `null` over a connection (TCP, memory). */
export type WorkerRequestPayload =
  | {
      readonly kind: "join";
      readonly requestId: number;
      readonly replyTo: string | null;
      /** Where the worker serves routed requests (`host:port`). */
      readonly address: string;
      readonly capacity: number;
      readonly zone: string;
    }
  | { readonly kind: "renew"; readonly requestId: number; readonly replyTo: string | null; readonly seq: number }
  | {
      readonly kind: "release";
      readonly requestId: number;
      readonly replyTo: string | null;
      readonly key: ResourceKey;
      readonly epoch: number;
    }
  | { readonly kind: "leave"; readonly requestId: number; readonly replyTo: string | null };

/** A member's answer to a worker. */
export type WorkerAnswerPayload =
  | { readonly kind: "joined"; readonly requestId: number }
  | {
      readonly kind: "renewed";
      readonly requestId: number;
      readonly seq: number;
      readonly keys: readonly AnsweredKey[];
      /** False when the worker is not in the table (expired or never joined): it must join again. */
      readonly member: boolean;
    }
  | { readonly kind: "released"; readonly requestId: number }
  | { readonly kind: "left"; readonly requestId: number }
  | {
      readonly kind: "refused";
      readonly requestId: number;
      /** An orrery error code (`ORRERY_NOT_LEADER`, `ORRERY_TIMEOUT`, ...) or `ORRERY_INVALID_REQUEST`. */
      readonly code: string;
      readonly reason: string;
      readonly leaderHint: NodeId | null;
    };

const TAG = "w";

/** Encodes a worker's request. */
export function encodeWorkerRequest(request: WorkerRequestPayload): Uint8Array {
  const head = [TAG, WORKER_PROTOCOL_VERSION, request.kind, request.requestId, request.replyTo];
  switch (request.kind) {
    case "join":
      return encodePlain([...head, request.address, request.capacity, request.zone]);
    case "renew":
      return encodePlain([...head, request.seq]);
    case "release":
      return encodePlain([...head, request.key, request.epoch]);
    case "leave":
      return encodePlain(head);
  }
}

/** Decodes a worker's request. @throws CodecError */
export function decodeWorkerRequest(bytes: Uint8Array): WorkerRequestPayload {
  const wire = decodeHead(bytes, "workerRequest");
  const [, , kind, requestId, replyTo, a, b, c] = wire;
  if (!isCount(requestId)) throw new CodecError("workerRequest.requestId", "not a non-negative integer");
  if (replyTo !== null && typeof replyTo !== "string") throw new CodecError("workerRequest.replyTo", "not an address or null");
  if (kind === "join" && wire.length === 8 && typeof a === "string" && typeof b === "number" && typeof c === "string") {
    return { kind, requestId, replyTo, address: a, capacity: b, zone: c };
  }
  if (kind === "renew" && wire.length === 6 && isCount(a)) return { kind, requestId, replyTo, seq: a };
  if (kind === "release" && wire.length === 7 && typeof a === "string" && isCount(b)) {
    return { kind, requestId, replyTo, key: a, epoch: b };
  }
  if (kind === "leave" && wire.length === 5) return { kind, requestId, replyTo };
  throw new CodecError("workerRequest", `malformed ${String(kind)} request`);
}

/** Encodes a member's answer. Keys travel as `[key, epoch, draining]` triples. */
export function encodeWorkerAnswer(answer: WorkerAnswerPayload): Uint8Array {
  const head = [TAG, WORKER_PROTOCOL_VERSION, answer.kind, answer.requestId];
  switch (answer.kind) {
    case "joined":
    case "released":
    case "left":
      return encodePlain(head);
    case "renewed":
      return encodePlain([...head, answer.seq, answer.keys.map((k) => [k.key, k.epoch, k.draining]), answer.member]);
    case "refused":
      return encodePlain([...head, answer.code, answer.reason, answer.leaderHint]);
  }
}

/** Decodes a member's answer. @throws CodecError */
export function decodeWorkerAnswer(bytes: Uint8Array): WorkerAnswerPayload {
  const wire = decodeHead(bytes, "workerAnswer");
  const [, , kind, requestId, a, b, c] = wire;
  if (!isCount(requestId)) throw new CodecError("workerAnswer.requestId", "not a non-negative integer");
  if ((kind === "joined" || kind === "released" || kind === "left") && wire.length === 4) return { kind, requestId };
  if (kind === "renewed" && wire.length === 7 && isCount(a) && Array.isArray(b) && typeof c === "boolean") {
    const keys: AnsweredKey[] = [];
    for (const triple of b as unknown[]) {
      if (!Array.isArray(triple) || triple.length !== 3) throw new CodecError("workerAnswer.keys", "not [key, epoch, draining] triples");
      const [key, epoch, draining] = triple as unknown[];
      if (typeof key !== "string" || !isCount(epoch) || typeof draining !== "boolean") {
        throw new CodecError("workerAnswer.keys", "not [key, epoch, draining] triples");
      }
      keys.push({ key, epoch, draining });
    }
    return { kind, requestId, seq: a, keys, member: c };
  }
  if (kind === "refused" && wire.length === 7 && typeof a === "string" && typeof b === "string" && (c === null || typeof c === "string")) {
    return { kind, requestId, code: a, reason: b, leaderHint: c };
  }
  throw new CodecError("workerAnswer", `malformed ${String(kind)} answer`);
}

function decodeHead(bytes: Uint8Array, what: string): unknown[] {
  const wire = decodePlain(bytes, what);
  if (!Array.isArray(wire) || wire[0] !== TAG) throw new CodecError(what, "not a worker protocol payload");
  if (wire[1] !== WORKER_PROTOCOL_VERSION) throw new CodecError(what, `unknown version ${String(wire[1])}`);
  return wire as unknown[];
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}
