/**
 * Semantic checks on a message before the core acts on it. The codec already guarantees the wire
 * shape (types, ranges); these are the protocol's own rules that a correct peer never breaks, so a
 * message that breaks one is bad input: ignored and counted, never allowed to trip an assertion.
 */
import { isValidConf } from "./conf.ts";
import { REQUEST_ID_LENGTH_MAX, type Message, type NodeId } from "./messages.ts";

/** Returns why `message` must be refused by member `self`, or `null` when it may be stepped. */
export function validateMessage(message: Message, self: NodeId): string | null {
  if (message.to !== self) return `addressed to ${message.to}, not ${self}`;
  if (message.from === self) return "sent by this member to itself";
  if (!isCount(message.term)) return "term is not a non-negative integer";
  switch (message.type) {
    case "append":
      return validateAppend(message);
    case "appendResponse":
      if (!isCount(message.index) || !isCount(message.rejectHint)) return "bad index";
      if (!isCount(message.rejectHintTerm)) return "bad reject hint term";
      return null;
    case "heartbeat":
      return isCount(message.commit) && isCount(message.round) ? null : "bad commit index or round";
    case "heartbeatResponse":
      return isCount(message.round) ? null : "bad round";
    case "readIndex":
      return isRequestId(message.requestId) ? null : "bad request id";
    case "readIndexResponse":
      return isRequestId(message.requestId) && isCount(message.index) ? null : "bad read response";
    case "requestVote":
    case "requestPreVote":
      if (!isCount(message.lastIndex) || !isCount(message.lastTerm)) return "bad last entry";
      // A candidate's log cannot hold entries from a term later than the one it campaigns in.
      return message.lastTerm <= message.term ? null : "last log term is beyond the campaign term";
    case "voteResponse":
    case "preVoteResponse":
    case "timeoutNow":
      return null;
    case "snapshot":
      return validateSnapshot(message);
    case "snapshotResponse":
      return isCount(message.index) && isCount(message.offset) ? null : "bad snapshot index or offset";
    default:
      return unknownType(message);
  }
}

/** Exhaustive: the compiler proves every type is handled; at run time, input of another type is refused. */
function unknownType(message: never): string {
  return `unknown message type ${JSON.stringify((message as { type?: unknown }).type)}`;
}

function validateAppend(message: Extract<Message, { type: "append" }>): string | null {
  if (!isCount(message.prevIndex) || !isCount(message.prevTerm) || !isCount(message.commit)) {
    return "bad prevIndex, prevTerm or commit";
  }
  if (message.prevTerm > message.term) return "prevTerm is beyond the leader's term";
  let index = message.prevIndex;
  let term = message.prevTerm;
  for (const entry of message.entries) {
    index += 1;
    if (entry.index !== index) return `entries are not consecutive at ${index}`;
    if (!isCount(entry.term) || entry.term < term) return `entry ${index} has a decreasing term`;
    if (entry.term > message.term) return `entry ${index} is from a term beyond the leader's`;
    term = entry.term;
  }
  return null;
}

function validateSnapshot(message: Extract<Message, { type: "snapshot" }>): string | null {
  if (!isCount(message.index) || message.index === 0 || !isCount(message.snapshotTerm) || !isCount(message.offset)) {
    return "bad snapshot index, term or offset";
  }
  if (message.snapshotTerm === 0 || message.snapshotTerm > message.term) return "snapshot term is out of range";
  if (typeof message.origin !== "string" || message.origin.length === 0) return "bad snapshot origin";
  if (!(message.data instanceof Uint8Array)) return "snapshot data is not bytes";
  return isValidConf(message.config) ? null : "snapshot configuration is malformed";
}

function isRequestId(value: string): boolean {
  return typeof value === "string" && value.length > 0 && value.length <= REQUEST_ID_LENGTH_MAX;
}

function isCount(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}
