import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { freePorts } from "../free-ports.ts";
import { MemoryStorage } from "../storage/memory.ts";
import { createHttpTransport } from "../../transports/http/http.ts";
import { createTcpTransport } from "../../transports/tcp/tcp.ts";
import { TimeoutError } from "../errors.ts";
import { ROUTING_HEADERS } from "../host/routing.ts";
import { workerAdmission, workerPeerId } from "../host/worker-protocol.ts";
import { createPlacementMember, type PlacementMember } from "./node.ts";
import { createWorker, type OrreryWorker, type WorkerOptions } from "./worker.ts";

const LEASE_MS = 600;
const DRIFT = 0.01;

interface Cluster {
  readonly members: PlacementMember[];
  readonly addresses: Record<string, string>;
  readonly clusterId: string;
  readonly secret: string;
  readonly kind: "tcp" | "http";
  gateway(i: number): string;
  close(): Promise<void>;
}

async function startCluster(kind: "tcp" | "http" = "tcp", workers?: readonly string[]): Promise<Cluster> {
  const ids = ["m1", "m2", "m3"];
  const ports = await freePorts(ids.length);
  const addresses = Object.fromEntries(ids.map((id, i) => [id, `127.0.0.1:${ports[i]}`]));
  const clusterId = "test-cluster";
  const secret = "s3cret";
  const members: PlacementMember[] = [];
  for (const id of ids) {
    const transportOptions = {
      id,
      clusterId,
      secret,
      listen: addresses[id] as string,
      peers: addresses,
      admit: workerAdmission(workers === undefined ? {} : { workers }),
      reconnectMsMin: 5,
      reconnectMsMax: 100,
    };
    const transport = kind === "tcp" ? createTcpTransport(transportOptions) : createHttpTransport(transportOptions);
    members.push(
      await createPlacementMember({
        id,
        members: addresses,
        transport,
        storage: new MemoryStorage(),
        // The defaults' pace (elections after 0.5–1 s): a busy machine does not depose leaders.
        tickMs: 10,
        raft: { electionTicks: 50, heartbeatTicks: 5 },
        lease: { leaseMs: LEASE_MS, clockDriftMax: DRIFT },
        placementTickMs: 10,
        gateway: { listen: "127.0.0.1:0", requestTimeoutMs: 5000 },
      }),
    );
  }
  await members[0]?.node.waitForLeader(30_000);
  return {
    members,
    addresses,
    clusterId,
    secret,
    kind,
    gateway: (i) => members[i]?.gateway?.address() as string,
    close: async () => {
      await Promise.all(members.map((m) => m.close()));
    },
  };
}

function workerTransport(cluster: Cluster, id: string, secret = cluster.secret) {
  const common = { id: workerPeerId(id), clusterId: cluster.clusterId, peers: cluster.addresses, secret, listen: "127.0.0.1:0" };
  return cluster.kind === "http" ? createHttpTransport(common) : createTcpTransport({ ...common, dialAlways: true });
}

function echoWorker(cluster: Cluster, id: string, extra: Partial<WorkerOptions> = {}): Promise<OrreryWorker> {
  return createWorker({
    id,
    members: cluster.addresses,
    transport: workerTransport(cluster, id),
    lease: { leaseMs: LEASE_MS, clockDriftMax: DRIFT },
    handle: (request, context) => ({
      status: 200,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ worker: id, key: context.key, epoch: context.epoch, method: request.method, body: Buffer.from(request.body).toString() }),
    }),
    ...extra,
  });
}

async function get(gateway: string, path: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; json: any }> {
  const response = await fetch(`http://${gateway}${path}`, init);
  const text = await response.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: response.status, headers: response.headers, json };
}

/**
 * The Node runtime's workers and gateway over real sockets: HTTP through the gateways to the
 * worker's HTTP server, the TCP and HTTP transports with the secret and admission. The protocol's
 * timing (failover, graceful leave, lease lapses) is tested in simulated time in
 * lib/host/placement.test.ts.
 */
describe("workers and the gateway (in-process members over TCP)", () => {
  const closers: Array<() => Promise<void>> = [];
  after(async () => {
    for (const close of closers.reverse()) await close().catch(() => undefined);
  });

  it("routes a path to its owner from any member, stickily, with the epoch, and passes the body through", async () => {
    const cluster = await startCluster();
    closers.push(() => cluster.close());
    const w1 = await echoWorker(cluster, "w1");
    const w2 = await echoWorker(cluster, "w2");
    closers.push(() => w1.close({ leave: false }), () => w2.close({ leave: false }));
    await Promise.all([w1.ready(), w2.ready()]);

    const first = await get(cluster.gateway(0), "/db/users?x=1", { method: "POST", body: "hello" });
    assert.equal(first.status, 200, JSON.stringify(first.json));
    assert.equal(first.json.key, "/db/users");
    assert.equal(first.json.body, "hello");
    assert.equal(first.json.method, "POST");
    assert.equal(first.headers.get(ROUTING_HEADERS.epoch), String(first.json.epoch));
    for (let i = 0; i < 3; i += 1) {
      const again = await get(cluster.gateway(i), "/db/users");
      assert.equal(again.status, 200);
      assert.equal(again.json.worker, first.json.worker, "the same worker from every member");
      assert.equal(again.json.epoch, first.json.epoch, "the same grant");
    }
    // Many paths spread over both workers.
    const owners = new Set<string>();
    for (let i = 0; i < 16; i += 1) owners.add((await get(cluster.gateway(i % 3), `/db/k${i}`)).json.worker);
    assert.deepEqual([...owners].sort(), ["w1", "w2"]);
    assert.ok(w1.owned().length + w2.owned().length >= 17);

    // Every member reports the same worker and key counts, and is ready.
    for (let i = 0; i < 3; i += 1) {
      await cluster.members[i]?.node.read(() => undefined); // applied everything committed so far
      const metrics = await (await fetch(`http://${cluster.gateway(i)}/metrics`)).text();
      assert.match(metrics, /orrery_placement_workers\{node="m\d",status="active"\} 2\n/);
      assert.match(metrics, /orrery_placement_keys\{node="m\d"\} 17\n/);
      const perWorker = [...metrics.matchAll(/orrery_placement_worker_keys\{node="m\d",worker="w\d"\} (\d+)/g)].map((m) => Number(m[1]));
      assert.equal(perWorker.reduce((a, b) => a + b, 0), 17);
      assert.match(metrics, /orrery_gateway_requests_total/);
      assert.equal((await get(cluster.gateway(i), "/health/ready")).status, 200);
      assert.equal((await get(cluster.gateway(i), "/health/live")).status, 200);
    }
  });

  it("answers 409 with x-orrery-refused to a request at a grant the worker does not hold", async () => {
    const cluster = await startCluster();
    closers.push(() => cluster.close());
    const w1 = await echoWorker(cluster, "w1");
    closers.push(() => w1.close({ leave: false }));
    await w1.ready();
    const routed = await get(cluster.gateway(1), "/db/a");
    assert.equal(routed.status, 200);
    const stale = await fetch(`http://${w1.address()}/db/a`, {
      headers: { [ROUTING_HEADERS.key]: "/db/a", [ROUTING_HEADERS.epoch]: String(routed.json.epoch - 1) },
    });
    assert.equal(stale.status, 409);
    assert.equal(stale.headers.get(ROUTING_HEADERS.refused), "not-owner");
    const unrouted = await fetch(`http://${w1.address()}/db/a`);
    assert.equal(unrouted.status, 400);
  });

  it("refuses a worker it was not told about, and one with the wrong secret", async () => {
    const cluster = await startCluster("tcp", ["w1"]);
    closers.push(() => cluster.close());
    const stranger = await echoWorker(cluster, "w9");
    closers.push(() => stranger.close({ leave: false }));
    await assert.rejects(stranger.ready(1500), TimeoutError.is);
    const impostor = await createWorker({
      id: "w1",
      members: cluster.addresses,
      transport: workerTransport(cluster, "w1", "wrong"),
      lease: { leaseMs: LEASE_MS, clockDriftMax: DRIFT },
      handle: () => ({ body: "no" }),
    });
    closers.push(() => impostor.close({ leave: false }));
    await assert.rejects(impostor.ready(1500), TimeoutError.is);
    const refused = cluster.members.reduce(
      (sum, m) => sum + Number(/orrery_transport_connections_refused_total\{[^}]*\} (\d+)/.exec(m.node.metrics())?.[1] ?? 0),
      0,
    );
    assert.ok(refused >= 2, `members refused the stranger's and the impostor's connections (${refused})`);
    assert.equal(cluster.members[0]?.table().workers().length, 0, "neither joined");
    const known = await echoWorker(cluster, "w1");
    closers.push(() => known.close({ leave: false }));
    await known.ready(30_000);
    assert.deepEqual(cluster.members[0]?.table().workers().map((w) => w.id), ["w1"]);
  });
});

describe("workers over the HTTP transport", () => {
  it("join, renew and serve routed requests", async () => {
    const cluster = await startCluster("http");
    const w1 = await echoWorker(cluster, "w1");
    try {
      await w1.ready(30_000);
      const answer = await get(cluster.gateway(2), "/files/report");
      assert.equal(answer.status, 200);
      assert.equal(answer.json.worker, "w1");
      assert.deepEqual(w1.owned().map((o) => o.key), ["/files/report"]);
    } finally {
      await w1.close({ leave: false });
      await cluster.close();
    }
  });
});
