import assert from "node:assert/strict";
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { describe, it, type TestContext } from "node:test";
import { Agent, request } from "undici";
import { ConfigError, NotLeaderError } from "../errors.ts";
import {
  KEY_BYTES_MAX,
  createGateway,
  type Gateway,
  type GatewayOptions,
  type GatewayRoutes,
} from "./gateway.ts";
import type { RouteAnswer } from "../host/placement-leader.ts";

/** A request as a worker saw it. */
interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

type WorkerHandler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

/**
 * The longest a test waits for anything, in milliseconds: generous, because the suite must pass on
 * a machine whose cores are busy with other work, but bounded, so that a hang fails with a message.
 */
const WAIT_MS_MAX = 30_000;

/** How long a worker that "never" answers waits before it does: far beyond any test's wait. */
const WORKER_LATE_MS = 10 * WAIT_MS_MAX;

/** Polls `done` until it holds; fails naming `what` after {@link WAIT_MS_MAX}. */
async function waitUntil(what: string, done: () => boolean): Promise<void> {
  const deadline = Date.now() + WAIT_MS_MAX;
  while (!done()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${WAIT_MS_MAX} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** `promise`, or a failure naming `what` after {@link WAIT_MS_MAX}. */
async function within<T>(what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${WAIT_MS_MAX} ms waiting for ${what}`)), WAIT_MS_MAX);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** A worker: a loopback HTTP server that records what it is sent. */
interface Worker {
  readonly name: string;
  readonly address: string;
  readonly seen: Seen[];
}

/** By default a worker answers 200 with JSON naming itself and echoing the request. */
function echo(name: string): WorkerHandler {
  return (req, res, body) => {
    const text = JSON.stringify({ worker: name, method: req.method, url: req.url, body });
    res.writeHead(200, { "content-type": "application/json", "x-worker": name });
    res.end(text);
  };
}

async function startWorker(t: TestContext, name: string, handler: WorkerHandler = echo(name)): Promise<Worker> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return { name, address: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

/** An address nothing listens on. */
async function deadAddress(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `127.0.0.1:${port}`;
}

function owner(worker: Worker | string, epoch: number, name = typeof worker === "string" ? "gone" : worker.name): RouteAnswer {
  return { status: "ok", owner: name, address: typeof worker === "string" ? worker : worker.address, epoch };
}

type Answer = (key: string, fresh: boolean) => RouteAnswer | Promise<RouteAnswer>;

/** Routes that answer by a function and record every call. */
class FakeRoutes implements GatewayRoutes {
  readonly calls: [string, boolean][] = [];
  constructor(private readonly answer: Answer) {}

  async route(key: string, fresh: boolean): Promise<RouteAnswer> {
    this.calls.push([key, fresh]);
    return this.answer(key, fresh);
  }
}

interface Harness {
  readonly routes: FakeRoutes;
  readonly gateway: Gateway;
  readonly url: string;
  /** The client's connections, closed after the test. */
  readonly agent: Agent;
  call(path: string, options?: Parameters<typeof request>[1]): Promise<{ status: number; headers: IncomingHttpHeaders; text: string }>;
}

async function startGateway(t: TestContext, answer: Answer, options: Partial<GatewayOptions> = {}): Promise<Harness> {
  const routes = new FakeRoutes(answer);
  const gateway = await createGateway({
    routes,
    listen: "127.0.0.1:0",
    ready: () => ({ ready: true }),
    metrics: () => "member_up 1\n",
    ...options,
  });
  // Bounded (undici's default is five minutes), so that a gateway that never answers fails the test.
  const agent = new Agent({ headersTimeout: WAIT_MS_MAX, bodyTimeout: WAIT_MS_MAX, connectTimeout: WAIT_MS_MAX });
  t.after(async () => {
    // destroy, not close: close would wait for a request a failing test left hanging.
    await agent.destroy();
    await gateway.close();
  });
  const url = `http://${gateway.address()}`;
  const call: Harness["call"] = async (path, callOptions = {}) => {
    const answer = await request(`${url}${path}`, { dispatcher: agent, ...callOptions });
    return { status: answer.statusCode, headers: answer.headers as IncomingHttpHeaders, text: await answer.body.text() };
  };
  return { routes, gateway, url, agent, call };
}

/** A request through node:http, which sends any header as given. */
function rawRequest(url: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: "GET", headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

function refuse(reason: string): WorkerHandler {
  return (_req, res) => {
    res.writeHead(409, { "x-orrery-refused": reason, "content-type": "application/json" });
    res.end(JSON.stringify({ error: "refused", reason }));
  };
}

describe("gateway", { timeout: 180_000 }, () => {
  it("routes a request by its path to the owner, without the query string in the key", async (t) => {
    const a = await startWorker(t, "a");
    const b = await startWorker(t, "b");
    const { routes, call } = await startGateway(t, (key) => (key === "/users/1" ? owner(a, 3) : owner(b, 5)));

    const first = await call("/users/1?fields=name&x=%20");
    assert.equal(first.status, 200);
    assert.equal(JSON.parse(first.text).worker, "a");
    assert.equal(a.seen[0]?.url, "/users/1?fields=name&x=%20", "the worker gets the whole target");
    const second = await call("/orders/7");
    assert.equal(JSON.parse(second.text).worker, "b");
    assert.deepEqual(routes.calls, [
      ["/users/1", false],
      ["/orders/7", false],
    ]);
    assert.equal(b.seen.length, 1);
    assert.equal(a.seen.length, 1);
  });

  it("passes the method, headers and body through both ways", async (t) => {
    const a = await startWorker(t, "a", (_req, res) => {
      res.writeHead(201, [
        "x-reply", "yes",
        "set-cookie", "one=1",
        "set-cookie", "two=2",
        "x-orrery-owner", "spoofed-by-worker",
        "content-type", "text/plain",
      ]);
      res.end("made it");
    });
    const { gateway, call } = await startGateway(t, () => owner(a, 9));

    const answer = await call("/docs/readme", { method: "PUT", headers: { "x-custom": "abc", "content-type": "text/plain" }, body: "hello world" });
    const seen = a.seen[0] as Seen;
    assert.equal(seen.method, "PUT");
    assert.equal(seen.body, "hello world");
    assert.equal(seen.headers["x-custom"], "abc");
    assert.equal(seen.headers["content-type"], "text/plain");
    assert.equal(seen.headers["content-length"], "11");
    assert.equal(answer.status, 201);
    assert.equal(answer.text, "made it");
    assert.equal(answer.headers["x-reply"], "yes");
    assert.deepEqual(answer.headers["set-cookie"], ["one=1", "two=2"]);
    assert.equal(answer.headers["x-orrery-owner"], "a", "the gateway states the owner it routed to");
    assert.equal(answer.headers["x-orrery-epoch"], "9");
    assert.equal(gateway.stats().routed, 1);
  });

  it("drops hop-by-hop headers and those the Connection header names", async (t) => {
    const a = await startWorker(t, "a");
    const { url } = await startGateway(t, () => owner(a, 1));

    const answer = await rawRequest(`${url}/hop`, {
      connection: "keep-alive, x-drop-me",
      "x-drop-me": "1",
      "keep-alive": "timeout=5",
      te: "trailers",
      "proxy-authorization": "Basic c2VjcmV0",
      "x-keep-me": "2",
    });
    assert.equal(answer.status, 200);
    const headers = (a.seen[0] as Seen).headers;
    assert.equal(headers["x-keep-me"], "2");
    for (const name of ["x-drop-me", "keep-alive", "te", "proxy-authorization"]) {
      assert.equal(headers[name], undefined, `${name} is not forwarded`);
    }
  });

  it("gives the worker the grant and strips the routing headers a client sent", async (t) => {
    const a = await startWorker(t, "a");
    const { call } = await startGateway(t, () => owner(a, 42));

    await call("/db/users?x=1", {
      headers: { "x-orrery-epoch": "999", "x-orrery-owner": "mallory", "x-orrery-key": "/other", "x-orrery-anything": "1", "x-forwarded-for": "10.0.0.1" },
    });
    const headers = (a.seen[0] as Seen).headers;
    assert.equal(headers["x-orrery-key"], "/db/users");
    assert.equal(headers["x-orrery-epoch"], "42");
    assert.equal(headers["x-orrery-owner"], "a");
    assert.equal(headers["x-orrery-anything"], undefined);
    assert.equal(headers.host, a.address, "host names the worker");
    assert.equal(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
  });

  it("refreshes the route after a refusal and retries at the new owner", async (t) => {
    const a = await startWorker(t, "a", refuse("not-owner"));
    const b = await startWorker(t, "b");
    const { routes, gateway, call } = await startGateway(t, (_key, fresh) => (fresh ? owner(b, 8) : owner(a, 7)));

    const answer = await call("/k", { method: "POST", body: "payload" });
    assert.equal(answer.status, 200);
    assert.equal(JSON.parse(answer.text).worker, "b");
    assert.equal(answer.headers["x-orrery-owner"], "b");
    assert.equal(answer.headers["x-orrery-epoch"], "8");
    assert.deepEqual(routes.calls, [
      ["/k", false],
      ["/k", true],
    ]);
    assert.equal((b.seen[0] as Seen).body, "payload", "the body is sent again");
    assert.equal((b.seen[0] as Seen).headers["x-orrery-epoch"], "8");
    const stats = gateway.stats();
    assert.equal(stats.retries, 1);
    assert.equal(stats.refusals, 1);
    assert.equal(stats.routed, 1);
  });

  it("passes a 409 without x-orrery-refused through unchanged, without a retry", async (t) => {
    const a = await startWorker(t, "a", (_req, res) => {
      res.writeHead(409, { "content-type": "application/json", "x-app": "conflict" });
      res.end('{"error":"version mismatch"}');
    });
    const { routes, gateway, call } = await startGateway(t, () => owner(a, 1));

    const answer = await call("/k", { method: "PUT", body: "v2" });
    assert.equal(answer.status, 409);
    assert.equal(answer.text, '{"error":"version mismatch"}');
    assert.equal(answer.headers["x-app"], "conflict");
    assert.equal(routes.calls.length, 1);
    assert.equal(a.seen.length, 1);
    assert.equal(gateway.stats().retries, 0);
  });

  it("answers 503 with Retry-After when the retry is refused too, giving the worker's reason", async (t) => {
    const a = await startWorker(t, "a", refuse("lease-expired"));
    const { routes, gateway, call } = await startGateway(t, () => owner(a, 4), { retryAfterSeconds: 2 });

    const answer = await call("/k");
    assert.equal(answer.status, 503);
    assert.equal(answer.headers["retry-after"], "2");
    const body = JSON.parse(answer.text) as { error: string; reason: string };
    assert.equal(body.error, "no-owner");
    assert.match(body.reason, /lease-expired/);
    assert.equal(routes.calls.length, 2, "one fresh route, no more");
    assert.equal(a.seen.length, 2, "one retry, no more");
    assert.equal(gateway.stats().refused, 1);
    assert.equal(gateway.stats().refusals, 2);
  });

  it("answers 503 with Retry-After when routing says retry", async (t) => {
    const { gateway, call } = await startGateway(t, () => ({ status: "retry", reason: "the key is moving" }));

    const answer = await call("/k");
    assert.equal(answer.status, 503);
    assert.equal(answer.headers["retry-after"], "1");
    assert.deepEqual(JSON.parse(answer.text), { error: "no-owner", reason: "the key is moving" });
    assert.equal(gateway.stats().noOwner, 1);
  });

  it("answers 503 to a transient orrery error from routing, and 500 to anything else", async (t) => {
    let fail: Error = new NotLeaderError("n2");
    const { gateway, call } = await startGateway(t, () => {
      throw fail;
    });

    const transient = await call("/k");
    assert.equal(transient.status, 503);
    assert.equal(transient.headers["retry-after"], "1");
    assert.equal(JSON.parse(transient.text).error, "ORRERY_NOT_LEADER");

    fail = new TypeError("a bug");
    const bug = await call("/k");
    assert.equal(bug.status, 500);
    assert.equal(JSON.parse(bug.text).error, "internal");
    assert.ok(!bug.text.includes("a bug"), "internal errors are not shown to clients");
    assert.equal(gateway.stats().internalErrors, 1);
  });

  it("refreshes the route when the owner cannot be reached and retries at the new owner", async (t) => {
    const dead = await deadAddress();
    const b = await startWorker(t, "b");
    const { routes, gateway, call } = await startGateway(t, (_key, fresh) => (fresh ? owner(b, 2) : owner(dead, 1)));

    const answer = await call("/k", { method: "POST", body: "x" });
    assert.equal(answer.status, 200);
    assert.equal(JSON.parse(answer.text).worker, "b");
    assert.deepEqual(routes.calls, [
      ["/k", false],
      ["/k", true],
    ]);
    assert.equal(gateway.stats().unreachable, 1);
    assert.equal(gateway.stats().retries, 1);
  });

  it("answers 503 when the owner cannot be reached twice", async (t) => {
    const dead = await deadAddress();
    const { gateway, call } = await startGateway(t, () => owner(dead, 1));

    const answer = await call("/k");
    assert.equal(answer.status, 503);
    assert.equal(answer.headers["retry-after"], "1");
    const body = JSON.parse(answer.text) as { error: string; reason: string };
    assert.equal(body.error, "no-owner");
    assert.match(body.reason, /could not be reached/);
    assert.equal(gateway.stats().upstreamErrors, 1);
  });

  it("answers 413 to a body over the limit, declared or streamed, without routing it", async (t) => {
    const a = await startWorker(t, "a");
    const { routes, gateway, url, call } = await startGateway(t, () => owner(a, 1), { bodyBytesMax: 1024 });

    const declared = await call("/k", { method: "PUT", body: Buffer.alloc(4096, 1) });
    assert.equal(declared.status, 413);
    assert.equal(JSON.parse(declared.text).error, "too-large");

    const chunks = Array.from({ length: 8 }, () => Buffer.alloc(512, 2));
    const streamed = await call("/k", { method: "PUT", body: Readable.from(chunks) });
    assert.equal(streamed.status, 413);

    // The declared length alone is enough: the 413 comes before any body byte is sent.
    const early = await within("the early 413", new Promise<string>((resolve, reject) => {
      const socket = connect(Number(new URL(url).port), "127.0.0.1");
      t.after(() => socket.destroy());
      socket.setEncoding("latin1");
      let text = "";
      socket.on("data", (data: string) => {
        text += data;
        if (text.includes("\r\n\r\n")) {
          socket.destroy();
          resolve(text);
        }
      });
      socket.on("error", reject);
      socket.write("PUT /k HTTP/1.1\r\nhost: x\r\ncontent-length: 100000000\r\n\r\n");
    }));
    assert.match(early, /^HTTP\/1\.1 413 /);
    assert.match(early, /\r\nconnection: close\r\n/i, "too large to drop: the connection closes");

    const fits = await call("/k", { method: "PUT", body: Buffer.alloc(1024, 3) });
    assert.equal(fits.status, 200, "a body of exactly the limit is routed");
    assert.equal(routes.calls.length, 1);
    assert.equal(a.seen.length, 1);
    assert.equal(gateway.stats().tooLarge, 3);
  });

  it("answers 504 when the worker is slower than requestTimeoutMs, and aborts the worker's request", async (t) => {
    let workerSawClose: () => void = () => {};
    const closed = new Promise<void>((resolve) => {
      workerSawClose = resolve;
    });
    const a = await startWorker(t, "a", (_req, res) => {
      const timer = setTimeout(() => res.end("late"), WORKER_LATE_MS);
      res.on("close", () => {
        clearTimeout(timer);
        workerSawClose();
      });
    });
    const { gateway, call } = await startGateway(t, () => owner(a, 1), { requestTimeoutMs: 200 });

    const started = performance.now();
    const answer = await call("/slow");
    const tookMs = performance.now() - started;
    // No upper bound on a busy machine's timer: the 504 itself shows the gateway did not wait for
    // the worker, which answers only long after this test's waits would have failed it.
    assert.equal(answer.status, 504);
    assert.equal(JSON.parse(answer.text).error, "timeout");
    assert.ok(tookMs >= 190, `answered after the timeout (${tookMs} ms)`);
    await within("the worker to see its request aborted", closed);
    assert.equal(gateway.stats().timeouts, 1);
  });

  it("aborts the worker's request when the client goes away", async (t) => {
    let workerSawClose: () => void = () => {};
    const closed = new Promise<void>((resolve) => {
      workerSawClose = resolve;
    });
    let arrived: () => void = () => {};
    const reached = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const a = await startWorker(t, "a", (_req, res) => {
      arrived();
      const timer = setTimeout(() => res.end("late"), WORKER_LATE_MS);
      res.on("close", () => {
        clearTimeout(timer);
        workerSawClose();
      });
    });
    const { gateway, call } = await startGateway(t, () => owner(a, 1));

    const controller = new AbortController();
    const pending = call("/slow", { signal: controller.signal });
    await within("the request to reach the worker", reached);
    controller.abort();
    await assert.rejects(pending);
    await within("the worker to see its request aborted", closed);
    assert.equal(gateway.stats().aborted, 1);
  });

  it("survives a client that leaves halfway through its body", async (t) => {
    const a = await startWorker(t, "a");
    const { routes, gateway, url, call } = await startGateway(t, () => owner(a, 1));

    await within("the client to leave", new Promise<void>((resolve, reject) => {
      const socket = connect(Number(new URL(url).port), "127.0.0.1", () => {
        socket.write("POST /k HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nonly ten b", () => {
          // A deliberate gap, so that the gateway has likely begun reading the body when the client
          // leaves; the test holds either way.
          setTimeout(() => socket.destroy(), 20);
        });
      });
      t.after(() => socket.destroy());
      socket.on("close", () => resolve());
      socket.on("error", reject);
    }));
    await waitUntil("the gateway to count the abort", () => gateway.stats().aborted > 0);
    assert.equal(routes.calls.length, 0, "a body never completed is never routed");
    assert.equal((await call("/k")).status, 200, "the gateway still serves");
    assert.equal(gateway.stats().inFlight, 0);
  });

  it("streams a large answer through intact", async (t) => {
    const big = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 1) big[i] = i % 251;
    const a = await startWorker(t, "a", (_req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": big.length });
      res.end(big);
    });
    const { gateway, agent } = await startGateway(t, () => owner(a, 1));

    const answer = await request(`http://${gateway.address()}/blob`, { dispatcher: agent });
    const bytes = Buffer.from(await answer.body.arrayBuffer());
    assert.equal(answer.statusCode, 200);
    assert.equal(bytes.length, big.length);
    assert.ok(bytes.equals(big));
  });

  it("keeps at most workerPoolsMax worker pools, closing the least recently used", async (t) => {
    const a = await startWorker(t, "a");
    const b = await startWorker(t, "b");
    const { gateway, call } = await startGateway(t, (key) => (key === "/a" ? owner(a, 1) : owner(b, 1)), { workerPoolsMax: 1 });

    for (const path of ["/a", "/b", "/a"]) {
      const answer = await call(path);
      assert.equal(JSON.parse(answer.text).worker, path.slice(1));
      assert.equal(gateway.stats().workerPools, 1);
    }
    assert.equal(a.seen.length, 2);
    assert.equal(b.seen.length, 1);
  });

  it("answers 400 to a target that is not a path and 414 to a key over KEY_BYTES_MAX", async (t) => {
    const a = await startWorker(t, "a");
    const { routes, gateway, call } = await startGateway(t, () => owner(a, 1));

    const long = await call(`/${"k".repeat(KEY_BYTES_MAX)}`);
    assert.equal(long.status, 414);
    const longest = await call(`/${"k".repeat(KEY_BYTES_MAX - 1)}?${"q".repeat(2000)}`);
    assert.equal(longest.status, 200, "the query string does not count");
    const star = await within("the answer to OPTIONS *", new Promise<number>((resolve, reject) => {
      const req = httpRequest(`http://${gateway.address()}`, { method: "OPTIONS", path: "*", agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end();
    }));
    assert.equal(star, 400);
    assert.equal(routes.calls.length, 1);
    assert.equal(gateway.stats().badRequests, 2);
  });

  it("serves /health/live, /health/ready, /metrics and /status itself", async (t) => {
    const a = await startWorker(t, "a");
    let ready: { ready: boolean; reason?: string } = { ready: true };
    const { routes, call } = await startGateway(t, () => owner(a, 1), {
      ready: () => ready,
      metrics: () => "# TYPE member_up gauge\nmember_up 1",
      status: () => ({ id: "n1", leader: "n2" }),
    });

    const live = await call("/health/live");
    assert.equal(live.status, 200);
    assert.equal(live.text, '{"live":true}');
    assert.equal((await call("/health/ready")).text, '{"ready":true}');
    ready = { ready: false, reason: "no leader" };
    const notReady = await call("/health/ready");
    assert.equal(notReady.status, 503);
    assert.equal(notReady.headers["retry-after"], "1");
    assert.deepEqual(JSON.parse(notReady.text), { ready: false, reason: "no leader" });

    await call("/routed");
    const metrics = await call("/metrics?x=1");
    assert.equal(metrics.status, 200);
    assert.match(String(metrics.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
    assert.match(metrics.text, /^# TYPE member_up gauge\nmember_up 1\n/);
    assert.match(metrics.text, /^orrery_gateway_requests_total\{outcome="routed"\} 1$/m);
    assert.match(metrics.text, /^orrery_gateway_requests_total\{outcome="reserved"\} 4$/m);
    assert.match(metrics.text, /^orrery_gateway_retries_total 0$/m);
    assert.match(metrics.text, /^orrery_gateway_request_seconds_count 1$/m);

    assert.deepEqual(JSON.parse((await call("/status")).text), { id: "n1", leader: "n2" });
    assert.equal((await call("/orrery/raft")).status, 404);
    const post = await call("/metrics", { method: "POST", body: "x" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, "GET, HEAD");
    assert.deepEqual(routes.calls, [["/routed", false]], "reserved paths are never routed");
  });

  it("answers 404 to /status without a status function", async (t) => {
    const { call } = await startGateway(t, () => ({ status: "retry", reason: "unused" }));
    assert.equal((await call("/status")).status, 404);
  });

  it("lets a request in progress finish when it closes", async (t) => {
    // A deliberate gap: the answer comes after the close below has begun. The poll that sees the
    // request runs on an earlier timer of this same process, so a busy machine cannot reorder them.
    const a = await startWorker(t, "a", (_req, res) => {
      setTimeout(() => res.end("done"), 150);
    });
    const { gateway, call } = await startGateway(t, () => owner(a, 1));

    const pending = call("/k");
    await waitUntil("the request to reach the worker", () => a.seen.length > 0);
    const closing = gateway.close();
    const answer = await pending;
    await closing;
    assert.equal(answer.status, 200);
    assert.equal(answer.text, "done");
    await assert.rejects(call("/k"), "it no longer listens");
  });

  it("rejects invalid options with a ConfigError naming the field", async () => {
    const base: GatewayOptions = {
      routes: new FakeRoutes(() => ({ status: "retry", reason: "" })),
      listen: "127.0.0.1:0",
      ready: () => ({ ready: true }),
      metrics: () => "",
    };
    const cases: [Partial<Record<keyof GatewayOptions, unknown>>, string][] = [
      [{ listen: "no-port" }, "listen"],
      [{ listen: "127.0.0.1:70000" }, "listen"],
      [{ routes: {} }, "routes"],
      [{ ready: "yes" }, "ready"],
      [{ metrics: undefined }, "metrics"],
      [{ status: 1 }, "status"],
      [{ bodyBytesMax: -1 }, "bodyBytesMax"],
      [{ bodyBytesMax: 1.5 }, "bodyBytesMax"],
      [{ headersBytesMax: 10 }, "headersBytesMax"],
      [{ requestTimeoutMs: 0 }, "requestTimeoutMs"],
      [{ retryAfterSeconds: -1 }, "retryAfterSeconds"],
      [{ workerConnectionsMax: 0 }, "workerConnectionsMax"],
      [{ workerPoolsMax: Number.NaN }, "workerPoolsMax"],
      [{ connectionsMax: 0 }, "connectionsMax"],
    ];
    for (const [change, field] of cases) {
      await assert.rejects(
        createGateway({ ...base, ...change } as GatewayOptions),
        (error: unknown) => ConfigError.is(error) && error.field === field,
        `${JSON.stringify(change)} is refused naming ${field}`,
      );
    }
  });
});
