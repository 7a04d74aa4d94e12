/**
 * The cluster benchmark's parts still work and print the fields the README quotes: the load
 * generator against a tiny in-test HTTP server, the member command line, and (only where an etcd
 * binary is installed) a short etcd run of the whole CLI. No orrery members are started here (the
 * integration tests do that), and no timing is ever asserted.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { runBench } from "./run-bench.ts";
import { VALUE_BYTES, freePorts, runLoad, type LoadResult } from "./cluster-load.ts";
import { orreryMemberCommand, orreryPutTarget, parseSettings } from "./cluster.ts";
import { etcdGatewayPrefix, findEtcd } from "./etcd.ts";

/** Suites with sockets or processes run under a timeout, so that a hang fails naming the suite. */
const SUITE_MS_MAX = 120_000;

/** How long the short etcd run may take before it is stopped; below the suite's bound, so that the cleanup runs. */
const ETCD_RUN_MS_MAX = 180_000;


/** Writes the in-test server saw: path -> body length. */
const received = new Map<string, number>();

/** Answers `PUT /kv/...` with 204, and 503 for anything under `/unavailable`. */
function startServer(): Promise<Server> {
  const server = createServer((request, response) => {
    let bytes = 0;
    request.on("data", (chunk: Buffer) => (bytes += chunk.byteLength));
    request.on("end", () => {
      const ok = request.method === "PUT" && request.url?.startsWith("/kv/") === true;
      if (ok) received.set(request.url as string, bytes);
      response.statusCode = ok ? 204 : 503;
      response.end();
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

function assertLatencies(result: LoadResult): void {
  for (const field of ["p50Ms", "p99Ms", "p999Ms", "maxMs", "meanMs", "writesPerSec"] as const) {
    assert.equal(typeof result[field], "number", field);
    assert.ok(Number.isFinite(result[field]), field);
  }
  assert.ok(result.p50Ms <= result.p99Ms, "p50 <= p99");
  assert.ok(result.p99Ms <= result.p999Ms, "p99 <= p99.9");
  assert.ok(result.p999Ms <= result.maxMs, "p99.9 <= max");
}

describe("bench/cluster-load.ts", { timeout: SUITE_MS_MAX }, () => {
  let server: Server | undefined;
  let origin: string;
  before(async () => {
    server = await startServer();
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    const open = server;
    if (open === undefined) return;
    // Kept-alive connections would hold close() open; nothing is in flight once the tests are done.
    const closed = new Promise<void>((resolve) => open.close(() => resolve()));
    open.closeAllConnections();
    await closed;
  });

  it("measures writes per second and latency quantiles against a server that answers 204", async () => {
    const result = await runLoad({ target: orreryPutTarget(origin), clients: 2, seconds: 0.8, warmupSeconds: 0.2 });
    assert.equal(result.clients, 2);
    assert.ok(result.writes > 0, "some writes were measured");
    assert.ok(result.writesPerSec > 0, "writesPerSec > 0");
    assert.equal(result.errors, 0);
    assert.deepEqual(result.errorsByKind, {});
    assert.deepEqual(result.errorExamples, {});
    assertLatencies(result);
    assert.ok(received.size > 0);
    for (const [path, bytes] of received) {
      assert.match(path, /^\/kv\/b[01]-\d+$/, "each client writes its own keys");
      assert.equal(bytes, VALUE_BYTES);
    }
  });

  it("counts failed writes by status instead of measuring them", async () => {
    const target = { ...orreryPutTarget(origin), write: () => ({ method: "PUT" as const, path: "/unavailable", headers: {}, body: "x" }) };
    const result = await runLoad({ target, clients: 2, seconds: 0.3, warmupSeconds: 0 });
    assert.equal(result.writes, 0);
    assert.ok(result.errors > 0);
    assert.equal(result.errorsByKind["status 503"], result.errors);
    assert.equal(typeof result.errorExamples["status 503"], "string");
  });

  it("finds distinct free ports", async () => {
    const ports = await freePorts(6);
    assert.equal(new Set(ports).size, 6);
  });
});

describe("bench/cluster.ts", () => {
  it("starts a member with the documented command line", () => {
    const specs = [
      { id: "n1", peerPort: 7001, clientPort: 8001 },
      { id: "n2", peerPort: 7002, clientPort: 8002 },
      { id: "n3", peerPort: 7003, clientPort: 8003 },
    ];
    const { command, args } = orreryMemberCommand(specs[0] as (typeof specs)[0], specs, {
      dataDir: "/tmp/d",
      transport: "tcp",
      entry: "source",
      bin: "cli/bin.mjs",
    });
    assert.equal(command, process.execPath);
    assert.deepEqual(args, [
      "cli/bin.mjs", "node",
      "--id", "n1",
      "--members", "n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003",
      "--client", "127.0.0.1:8001",
      "--data", "/tmp/d",
      "--transport", "tcp",
      "--cluster", "bench",
      "--log-level", "warn",
    ]);
  });

  it("defaults to 10 s after a 2 s warm-up, 1 and 256 clients, both transports, every section", () => {
    const settings = parseSettings([]);
    assert.equal(settings.seconds, 10);
    assert.equal(settings.warmupSeconds, 2);
    assert.deepEqual(settings.clients, [1, 256]);
    assert.deepEqual(settings.transports, ["tcp", "http"]);
    assert.deepEqual([...settings.sections], ["orrery", "etcd", "ceiling"]);
    assert.throws(() => parseSettings(["--transports", "udp"]), /--transports/);
  });

  it("knows etcd's JSON gateway prefix by version", () => {
    assert.equal(etcdGatewayPrefix("3.4.23"), "/v3/");
    assert.equal(etcdGatewayPrefix("3.5.0"), "/v3/");
    assert.equal(etcdGatewayPrefix("3.3.25"), "/v3beta/");
  });

  it("gives a reason instead of an etcd binary when there is none", async () => {
    const found = await findEtcd("/nonexistent/etcd");
    assert.ok("reason" in found);
    assert.match(found.reason, /\/nonexistent\/etcd/);
  });
});

const etcd = await findEtcd();

describe("bench/cluster.ts against etcd", { timeout: ETCD_RUN_MS_MAX + 60_000 }, () => {
  const skip = "reason" in etcd ? `no etcd: ${etcd.reason}` : false;

  it("runs a short load through a 3-member etcd cluster and prints one JSON document", { skip }, async () => {
    const stdout = await runBench(["--import", "tsx", "bench/cluster.ts", "--only", "etcd", "--seconds", "0.8", "--warmup", "0.2", "--clients", "1,4", "--json"], ETCD_RUN_MS_MAX, "bench-cluster-test");
    assert.equal(stdout.trim().split("\n").length, 1, "one line of output");
    const result = JSON.parse(stdout) as Record<string, unknown>;
    assert.equal((result.machine as Record<string, unknown>).node, process.version);
    assert.equal(result.orrery, null);
    const section = result.etcd as Record<string, unknown>;
    assert.equal(section.error, undefined, String(section.error));
    assert.equal(typeof section.version, "string");
    assert.equal(section.gatewayIsV3, etcdGatewayPrefix(section.version as string) === "/v3/");
    const loads = section.loads as Record<string, LoadResult & { members: { id: string; rssPeakMb: number }[] }>;
    assert.deepEqual(Object.keys(loads), ["1", "4"]);
    for (const load of Object.values(loads)) {
      assert.ok(load.writesPerSec > 0, "writesPerSec > 0");
      assertLatencies(load);
      assert.deepEqual(
        load.members.map((member) => member.id),
        ["e1", "e2", "e3"],
      );
      for (const member of load.members) assert.equal(typeof member.rssPeakMb, "number");
    }
    assert.deepEqual(result.targets, { writesPerSecRatioAt256: ">= 2", p50MsAt1: "<= 0.6", memberRssMbMax: "<= 150" });
  });
});
