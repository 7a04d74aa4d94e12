import assert from "node:assert/strict";
import { createServer, type ServerResponse } from "node:http";
import { describe, it } from "node:test";
import { Client } from "undici";
import { TransportError } from "../../lib/errors.ts";
import { encodeFrame, makeHello } from "../frame.ts";
import { SUITE_MS_MAX, WAIT_MS_MAX, describeTransportConformance, type RawInput, type StalledPeer } from "../conformance.ts";
import { formatAddress } from "../network.ts";
import type { Transport } from "../transport.ts";
import { HTTP_PATH, createHttpTransport, helloFromHeaders, helloHeaders } from "./http.ts";

describeTransportConformance("http", () => ({
  tls: true,
  create: (options) =>
    createHttpTransport({ ...options, listen: options.listen ?? "127.0.0.1:0", reconnectMsMin: 5, reconnectMsMax: 100 }),
  sendRaw,
  stalledPeer,
}));

/**
 * A client for one test request. Its timeouts are bounded (undici's default is five minutes), so
 * that a transport that never answers fails the test instead of holding it; generous, because the
 * machine may be busy.
 */
function testClient(target: Transport): Client {
  return new Client(`http://${target.address() ?? ""}`, { headersTimeout: WAIT_MS_MAX, bodyTimeout: WAIT_MS_MAX, connectTimeout: WAIT_MS_MAX });
}

/** POSTs the bytes to `target` with the hello's headers (none without one) and reads the answer. */
async function sendRaw(target: Transport, input: RawInput): Promise<void> {
  const client = testClient(target);
  try {
    const response = await client.request({
      method: "POST",
      path: HTTP_PATH,
      headers: input.hello === null ? {} : helloHeaders(input.hello),
      body: Buffer.from(input.bytes),
    });
    await response.body.dump();
  } finally {
    await client.close();
  }
}

/** A server that takes requests and never reads their bodies or answers them. */
async function stalledPeer(): Promise<StalledPeer> {
  const held = new Set<ServerResponse>();
  const server = createServer((request, response) => {
    request.pause();
    held.add(response);
  });
  await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve));
  const bound = server.address();
  if (bound === null || typeof bound === "string") throw new Error("no address");
  return {
    address: formatAddress(bound.address, bound.port),
    close: async () => {
      const closing = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closing;
    },
  };
}

describe("HTTP transport", { timeout: SUITE_MS_MAX }, () => {
  const options = { clusterId: "http", listen: "127.0.0.1:0", reconnectMsMin: 5, reconnectMsMax: 50 } as const;
  const handler = { onMessage: () => {}, onPayload: () => {} };

  async function post(target: Transport, path: string, headers: Record<string, string>, body: Uint8Array): Promise<number> {
    const client = testClient(target);
    try {
      const response = await client.request({ method: "POST", path, headers, body: Buffer.from(body) });
      await response.body.dump();
      return response.statusCode;
    } finally {
      await client.close();
    }
  }

  it("answers 404, 403, 413 and 400 as the request deserves, counting refusals", async () => {
    const b = createHttpTransport({ ...options, id: "b", secret: "s", frameBytesMax: 4096, bodyBytesMax: 8192 });
    try {
      await b.start(handler);
      const hello = helloHeaders(makeHello("http", "s", "a", "b"));
      const frame = encodeFrame({ kind: "message", message: { type: "heartbeat", from: "a", to: "b", term: 1, commit: 0, round: 0 } });
      assert.equal(await post(b, "/elsewhere", hello, frame), 404);
      assert.equal(await post(b, HTTP_PATH, { ...hello, "x-orrery-proof": "zz" }, frame), 403);
      assert.equal(await post(b, HTTP_PATH, helloHeaders(makeHello("http", "t", "a", "b")), frame), 403);
      assert.equal(await post(b, HTTP_PATH, hello, new Uint8Array(9000)), 413);
      assert.equal(await post(b, HTTP_PATH, hello, frame.subarray(0, frame.length - 1)), 400);
      assert.equal(await post(b, HTTP_PATH, hello, frame), 204);
      assert.equal(b.stats().connectionsRefused, 4);
      assert.equal(b.stats().framesReceived, 1);
    } finally {
      await b.close();
    }
  });

  it("round-trips any id through the hello headers", () => {
    const hello = makeHello("cluster ü\n", "s", "node/1 é", "node:2");
    assert.deepEqual(helloFromHeaders(helloHeaders(hello)), hello);
    assert.equal(typeof helloFromHeaders({}), "string");
  });

  it("rejects invalid options", () => {
    assert.throws(() => createHttpTransport({ ...options, id: "a", frameBytesMax: 8192, bodyBytesMax: 4096 }), (e) => TransportError.is(e) && e.reason === "config");
    assert.throws(() => createHttpTransport({ ...options, id: "a", secret: "" }), (e) => TransportError.is(e));
  });
});
