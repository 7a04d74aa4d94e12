import assert from "node:assert/strict";
import { createConnection, createServer, type Socket } from "node:net";
import { describe, it } from "node:test";
import { TransportError } from "../../lib/errors.ts";
import type { LogFields, Logger } from "../../lib/logger.ts";
import { FrameDecoder, concatFrames, encodeFrame, makeHello } from "../frame.ts";
import { SUITE_MS_MAX, WAIT_MS_MAX, describeTransportConformance, type RawInput, type StalledPeer } from "../conformance.ts";
import { formatAddress, parseAddress } from "../network.ts";
import type { Transport } from "../transport.ts";
import { createTcpTransport } from "./tcp.ts";

/** How long a raw connection waits for the transport to close it, in milliseconds; generous for a busy machine. */
const RAW_CLOSE_MS_MAX = WAIT_MS_MAX;

describeTransportConformance("tcp", () => ({
  tls: true,
  create: (options) =>
    createTcpTransport({ ...options, listen: options.listen ?? "127.0.0.1:0", reconnectMsMin: 5, reconnectMsMax: 100 }),
  sendRaw,
  stalledPeer,
}));

/** Opens a raw connection to `target`, writes the hello (if any) and the bytes, and waits for the close. */
function sendRaw(target: Transport, input: RawInput): Promise<void> {
  const { host, port } = parseAddress(target.address() ?? "");
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the transport did not close a raw connection within ${RAW_CLOSE_MS_MAX} ms`));
    }, RAW_CLOSE_MS_MAX);
    socket.on("connect", () => {
      const opening = input.hello === null ? [] : [encodeFrame({ kind: "hello", hello: input.hello })];
      socket.write(concatFrames([...opening, input.bytes]));
    });
    socket.on("data", () => {});
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** A server that answers the first hello with a valid one, then never reads again. */
async function stalledPeer(options: { readonly id: string; readonly clusterId: string; readonly secret?: string }): Promise<StalledPeer> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    const decoder = new FrameDecoder(1024 * 1024);
    socket.on("error", () => {});
    socket.on("data", (chunk) => {
      const first = decoder.push(chunk)[0];
      if (first?.kind !== "hello") return;
      socket.write(encodeFrame({ kind: "hello", hello: makeHello(options.clusterId, options.secret, options.id, first.hello.from) }));
      socket.removeAllListeners("data");
      socket.pause();
    });
  });
  await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve));
  const bound = server.address();
  if (bound === null || typeof bound === "string") throw new Error("no address");
  return {
    address: formatAddress(bound.address, bound.port),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe("TCP transport", { timeout: SUITE_MS_MAX }, () => {
  const quiet = { clusterId: "tcp", listen: "127.0.0.1:0", reconnectMsMin: 5, reconnectMsMax: 50 } as const;

  it("opens exactly one connection per pair, dialed by the smaller id", async () => {
    const members = ["a", "b", "c"].map((id) => createTcpTransport({ ...quiet, id }));
    const inboxes = members.map(() => [] as string[]);
    try {
      for (const [i, member] of members.entries()) {
        await member.start({ onMessage: (m) => inboxes[i]?.push(m.from), onPayload: () => {} });
      }
      for (const member of members) {
        for (const other of members) member.setPeer(other.id, other.address() ?? "");
      }
      for (const member of members) {
        member.send(members.filter((o) => o !== member).map((o) => ({ type: "heartbeat", from: member.id, to: o.id, term: 1, commit: 0, round: 0 })));
      }
      await waitUntil(() => inboxes.every((inbox) => inbox.length === 2));
      // a dials b and c, b dials c; c dials no one.
      assert.deepEqual(members.map((m) => m.stats().connects), [2, 1, 0]);
    } finally {
      for (const member of members) await member.close();
    }
  });

  it("refuses an acceptor that is not the member it meant to reach", async () => {
    const logger = capture();
    const a = createTcpTransport({ ...quiet, id: "a", logger: logger.logger });
    const c = createTcpTransport({ ...quiet, id: "c" });
    try {
      await a.start({ onMessage: () => {}, onPayload: () => {} });
      await c.start({ onMessage: () => assert.fail("c must not get b's messages"), onPayload: () => {} });
      a.setPeer("b", c.address() ?? "");
      a.send([{ type: "heartbeat", from: "a", to: "b", term: 1, commit: 0, round: 0 }]);
      // c refuses a hello addressed to b, or a refuses c's answer: either way nothing flows.
      await waitUntil(() => a.stats().connectionsRefused + c.stats().connectionsRefused >= 2);
      assert.equal(c.stats().framesReceived, 0);
    } finally {
      await a.close();
      await c.close();
    }
  });

  it("closes a connection that sends no hello within handshakeMsMax", async () => {
    const logger = capture();
    const b = createTcpTransport({ ...quiet, id: "b", handshakeMsMax: 100, logger: logger.logger });
    let socket: Socket | undefined;
    try {
      await b.start({ onMessage: () => {}, onPayload: () => {} });
      const { host, port } = parseAddress(b.address() ?? "");
      const opened = createConnection({ host, port });
      socket = opened;
      opened.on("error", () => {});
      let closed = false;
      opened.on("close", () => (closed = true));
      // No bound on how soon: a busy machine may fire the handshake timer late. That it was the
      // handshake timer that closed it, and not anything else, is what the logged reason shows.
      await waitUntil(() => closed);
      assert.equal(b.stats().connectionsRefused, 1);
      assert.ok(logger.errors.some((fields) => TransportError.is(fields.error) && fields.error.reason === "handshake"));
    } finally {
      socket?.destroy();
      await b.close();
    }
  });

  it("refuses connections beyond connectionsMax", async () => {
    const b = createTcpTransport({ ...quiet, id: "b", connectionsMax: 1 });
    const sockets: Socket[] = [];
    try {
      await b.start({ onMessage: () => {}, onPayload: () => {} });
      const { host, port } = parseAddress(b.address() ?? "");
      for (let i = 0; i < 3; i += 1) {
        const socket = createConnection({ host, port });
        socket.on("error", () => {});
        sockets.push(socket);
      }
      await waitUntil(() => b.stats().connectionsRefused >= 2);
    } finally {
      for (const socket of sockets) socket.destroy();
      await b.close();
    }
  });

  it("rejects invalid options", () => {
    assert.throws(() => createTcpTransport({ ...quiet, id: "" }), (e) => TransportError.is(e) && e.reason === "config");
    assert.throws(() => createTcpTransport({ ...quiet, id: "a", listen: "nowhere" }), (e) => TransportError.is(e));
    assert.throws(() => createTcpTransport({ ...quiet, id: "a", frameBytesMax: 4096, sendBufferBytesMax: 1024 }), (e) => TransportError.is(e));
    assert.throws(() => createTcpTransport({ ...quiet, id: "a", reconnectMsMin: 100, reconnectMsMax: 10 }), (e) => TransportError.is(e));
  });
});

/** Polls `done` until it holds, failing after `timeoutMs` (generous: the machine may be busy). */
async function waitUntil(done: () => boolean, timeoutMs = WAIT_MS_MAX): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function capture(): { logger: Logger; errors: LogFields[] } {
  const errors: LogFields[] = [];
  const ignore = () => {};
  return { logger: { debug: ignore, info: ignore, warn: ignore, error: (_message, fields) => errors.push(fields ?? {}) }, errors };
}

describe("tcp transport: dialAlways (a worker's client mode)", { timeout: SUITE_MS_MAX }, () => {
  it("dials a peer with a smaller id, and the peer answers on that connection without an address for it", async () => {
    const member = createTcpTransport({ id: "1", clusterId: "c", listen: "127.0.0.1:0", secret: "s" });
    const worker = createTcpTransport({ id: "worker:w1", clusterId: "c", listen: "127.0.0.1:0", secret: "s", dialAlways: true });
    const atMember: Array<[string, string]> = [];
    const atWorker: Array<[string, string]> = [];
    const text = new TextDecoder();
    try {
      await member.start({
        onMessage: () => {},
        onPayload: (from, payload) => {
          atMember.push([from, text.decode(payload)]);
          member.sendPayload(from, new TextEncoder().encode("pong"));
        },
      });
      await worker.start({ onMessage: () => {}, onPayload: (from, payload) => atWorker.push([from, text.decode(payload)]) });
      worker.setPeer("1", member.address() as string);
      const deadline = Date.now() + WAIT_MS_MAX;
      while (atWorker.length === 0 && Date.now() < deadline) {
        worker.sendPayload("1", new TextEncoder().encode("ping"));
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.deepEqual(atWorker[0], ["1", "pong"]);
      assert.deepEqual(atMember[0], ["worker:w1", "ping"]);
    } finally {
      await worker.close();
      await member.close();
    }
  });
});
