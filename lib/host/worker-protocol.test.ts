import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodePlain } from "../codec/codec.ts";
import { CodecError } from "../errors.ts";
import {
  decodeWorkerAnswer,
  decodeWorkerRequest,
  encodeWorkerAnswer,
  encodeWorkerRequest,
  workerAdmission,
  workerOfPeer,
  workerPeerId,
  type WorkerAnswerPayload,
  type WorkerRequestPayload,
} from "./worker-protocol.ts";

describe("worker protocol", () => {
  it("round-trips every request and answer", () => {
    const requests: WorkerRequestPayload[] = [
      { kind: "join", requestId: 1, replyTo: null, address: "127.0.0.1:9000", capacity: 2, zone: "a" },
      { kind: "renew", requestId: 2, replyTo: "127.0.0.1:7000", seq: 1_700_000_000_000_000 },
      { kind: "release", requestId: 3, replyTo: null, key: "/db/users", epoch: 42 },
      { kind: "leave", requestId: 4, replyTo: null },
    ];
    for (const request of requests) assert.deepEqual(decodeWorkerRequest(encodeWorkerRequest(request)), request);
    const answers: WorkerAnswerPayload[] = [
      { kind: "joined", requestId: 1 },
      { kind: "renewed", requestId: 2, seq: 9, keys: [{ key: "/a", epoch: 3, draining: false }, { key: "/b", epoch: 7, draining: true }], member: true },
      { kind: "released", requestId: 3 },
      { kind: "left", requestId: 4 },
      { kind: "refused", requestId: 5, code: "ORRERY_NOT_LEADER", reason: "not the leader", leaderHint: "m2" },
    ];
    for (const answer of answers) assert.deepEqual(decodeWorkerAnswer(encodeWorkerAnswer(answer)), answer);
  });

  it("refuses malformed payloads with a CodecError", () => {
    const bad = [
      new Uint8Array([0xc1]),
      encodePlain(["w", 2, "leave", 1, null]),
      encodePlain(["x", 1, "leave", 1, null]),
      encodePlain(["w", 1, "renew", -1, null, 5]),
      encodePlain(["w", 1, "renew", 1, null]),
      encodePlain(["w", 1, "release", 1, null, "/k", 1.5]),
      encodePlain(["w", 1, "join", 1, 7, "a", 1, "z"]),
      encodePlain(["w", 1, "explode", 1, null]),
    ];
    for (const bytes of bad) assert.throws(() => decodeWorkerRequest(bytes), CodecError.is);
    assert.throws(() => decodeWorkerAnswer(encodePlain(["w", 1, "renewed", 1, 2, [["/a", 1]], true])), CodecError.is);
    assert.throws(() => decodeWorkerAnswer(encodePlain(["w", 1, "refused", 1, 5, "r", null])), CodecError.is);
  });

  it("names workers as transport peers and admits members, listed workers, and no malformed ids", () => {
    assert.equal(workerPeerId("w1"), "worker:w1");
    assert.equal(workerOfPeer("worker:w1"), "w1");
    assert.equal(workerOfPeer("m1"), null);
    assert.equal(workerOfPeer("worker:bad id"), null);
    const listed = workerAdmission({ workers: ["w1"] });
    assert.equal(listed("m1"), true);
    assert.equal(listed("worker:w1"), true);
    assert.equal(listed("worker:w2"), false);
    assert.equal(listed("worker:"), false);
    const any = workerAdmission();
    assert.equal(any("worker:w2"), true);
    assert.equal(any("worker:a/b"), false);
  });
});
