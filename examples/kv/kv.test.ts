import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodePlain } from "../../lib/codec/codec.ts";
import { CodecError } from "../../lib/errors.ts";
import { createNode } from "../../lib/index.ts";
import { MemoryStorage } from "../../lib/storage/memory.ts";
import { MemoryNetwork } from "../../transports/memory/memory.ts";
import { BODY_BYTES_MAX, startKvService, splitHostPort } from "./service.ts";
import { KvStore, decodeKvCommand, encodeKvCommand, type KvResult } from "./store.ts";
import { parseMemberArgs } from "./member.ts";

const at = { index: 1, term: 1 };

/** How long a test waits for a leader: generous, because the machine may be busy with other work. */
const LEADER_WAIT_MS_MAX = 30_000;

/** Real timers and sockets: a hang fails with the suite's name well before the run's own timeout. */
const SUITE_MS_MAX = 120_000;

describe("KvStore", () => {
  it("puts, deletes and compares-and-sets", () => {
    const store = new KvStore();
    assert.deepEqual(store.apply(encodeKvCommand({ kind: "put", key: "k", value: "1" }), at), { kind: "put" });
    assert.equal(store.get("k"), "1");
    const miss = store.apply(encodeKvCommand({ kind: "cas", key: "k", expected: "0", value: "2" }), at);
    assert.deepEqual(miss, { kind: "cas", ok: false, value: "1" });
    const hit = store.apply(encodeKvCommand({ kind: "cas", key: "k", expected: "1", value: "2" }), at);
    assert.deepEqual(hit, { kind: "cas", ok: true, value: "2" });
    const create = store.apply(encodeKvCommand({ kind: "cas", key: "new", expected: null, value: "x" }), at);
    assert.deepEqual(create, { kind: "cas", ok: true, value: "x" });
    assert.deepEqual(store.apply(encodeKvCommand({ kind: "delete", key: "k" }), at), { kind: "delete", deleted: true });
    assert.deepEqual(store.apply(encodeKvCommand({ kind: "delete", key: "k" }), at), { kind: "delete", deleted: false });
    assert.equal(store.get("k"), null);
  });

  it("answers a malformed command with an error value instead of throwing", () => {
    const store = new KvStore();
    for (const bad of [new Uint8Array([0xc1]), encodePlain(["put", "", "v"]), encodePlain(["drop", "k"])]) {
      const result = store.apply(bad, at);
      assert.equal(result.kind, "error");
    }
    assert.throws(() => decodeKvCommand(encodePlain(["put", "k"])), (e: unknown) => CodecError.is(e));
  });

  it("restores exactly what it snapshotted", () => {
    const a = new KvStore();
    for (let i = 0; i < 50; i += 1) a.apply(encodeKvCommand({ kind: "put", key: `k${i}`, value: `v${i}` }), at);
    const b = new KvStore();
    b.restore(a.snapshot());
    assert.equal(b.size, 50);
    assert.equal(b.get("k7"), "v7");
    assert.deepEqual(b.snapshot(), a.snapshot());
    assert.throws(() => b.restore(encodePlain([2, []])), (e: unknown) => CodecError.is(e));
  });
});

describe("the key-value HTTP API", { timeout: SUITE_MS_MAX }, () => {
  it("serves writes, linearizable reads, cas, status, metrics and health, and refuses bad requests", async () => {
    const network = new MemoryNetwork();
    const store = new KvStore();
    const node = await createNode<KvResult>({
      id: "n1",
      members: { n1: "n1" },
      transport: network.transport({ id: "n1" }),
      storage: new MemoryStorage(),
      stateMachine: store,
      tickMs: 5,
    });
    let service: Awaited<ReturnType<typeof startKvService>> | undefined;
    try {
      await node.waitForLeader(LEADER_WAIT_MS_MAX);
      service = await startKvService({ node, store, listen: "127.0.0.1:0" });
      const u = service.url;
      assert.equal((await fetch(`${u}/kv/a%2Fb`, { method: "PUT", body: "v1" })).status, 204);
      const got = await fetch(`${u}/kv/a%2Fb`);
      assert.equal(got.status, 200);
      assert.equal(await got.text(), "v1");
      assert.equal((await fetch(`${u}/kv/none`)).status, 404);
      const cas = await fetch(`${u}/kv/a%2Fb?cas`, { method: "POST", body: JSON.stringify({ expected: "v1", value: "v2" }) });
      assert.deepEqual(await cas.json(), { ok: true, value: "v2" });
      const del = await fetch(`${u}/kv/a%2Fb`, { method: "DELETE" });
      assert.deepEqual(await del.json(), { deleted: true });
      const status = (await (await fetch(`${u}/status`)).json()) as { role: string };
      assert.equal(status.role, "leader");
      assert.match(await (await fetch(`${u}/metrics`)).text(), /orrery_raft_commit_index/);
      assert.equal((await fetch(`${u}/health/live`)).status, 200);
      assert.equal((await fetch(`${u}/health/ready`)).status, 200);
      assert.equal((await fetch(`${u}/kv/x?cas`, { method: "POST", body: "not json" })).status, 400);
      assert.equal((await fetch(`${u}/kv/`, { method: "PUT", body: "x" })).status, 400);
      assert.equal((await fetch(`${u}/kv/x`, { method: "PATCH" })).status, 405);
      const big = await fetch(`${u}/kv/big`, { method: "PUT", body: "x".repeat(BODY_BYTES_MAX + 1) });
      assert.equal(big.status, 413);
    } finally {
      await service?.close();
      await node.close();
    }
  });
});

describe("writes on a follower", { timeout: SUITE_MS_MAX }, () => {
  it("are redirected with 307 to the leader's API under redirect, and forwarded otherwise", async () => {
    const network = new MemoryNetwork();
    const ids = ["n1", "n2", "n3"];
    const members = Object.fromEntries(ids.map((id) => [id, id]));
    const stores = new Map<string, KvStore>();
    // The host's default timings (an election timeout of 500–1000 ms): the three members share one
    // event loop with the HTTP services, and shorter timeouts let a busy machine's stalls depose
    // the leader in the middle of the test.
    const nodes = await Promise.all(
      ids.map((id) => {
        const store = new KvStore();
        stores.set(id, store);
        return createNode<KvResult>({
          id,
          members,
          transport: network.transport({ id }),
          storage: new MemoryStorage(),
          stateMachine: store,
        });
      }),
    );
    const services: Array<Awaited<ReturnType<typeof startKvService>>> = [];
    try {
      const leaderId = await (nodes[0] as (typeof nodes)[number]).waitForLeader(LEADER_WAIT_MS_MAX);
      const follower = nodes.find((n) => n.id !== leaderId && n.status().leader === leaderId) ?? nodes.find((n) => n.id !== leaderId);
      assert.ok(follower !== undefined);
      const clientUrls = { [leaderId]: "http://leader.example:8001" };
      const store = stores.get(follower.id) as KvStore;
      const redirecting = await startKvService({ node: follower, store, listen: "127.0.0.1:0", redirect: true, clientUrls });
      services.push(redirecting);
      const forwarding = await startKvService({ node: follower, store, listen: "127.0.0.1:0" });
      services.push(forwarding);
      await follower.waitForLeader(LEADER_WAIT_MS_MAX);
      const res = await fetch(`${redirecting.url}/kv/k`, { method: "PUT", body: "v", redirect: "manual" });
      assert.equal(res.status, 307);
      assert.equal(res.headers.get("location"), "http://leader.example:8001/kv/k");
      const forwarded = await fetch(`${forwarding.url}/kv/k`, { method: "PUT", body: "v" });
      assert.equal(forwarded.status, 204);
      assert.equal(await (await fetch(`${forwarding.url}/kv/k`)).text(), "v");
    } finally {
      for (const service of services) await service.close();
      await Promise.all(nodes.map((n) => n.close()));
    }
  });
});

describe("orrery node's arguments", () => {
  it("parses a member's command line and refuses a bad one naming the option", () => {
    const args = parseMemberArgs(["--id", "n1", "--members", "n1=127.0.0.1:7001,n2=127.0.0.1:7002", "--data", "/tmp/x"]);
    assert.equal(args.client, "127.0.0.1:8001");
    assert.equal(args.transport, "tcp");
    assert.deepEqual(Object.keys(args.members), ["n1", "n2"]);
    assert.throws(() => parseMemberArgs(["--id", "n3", "--members", "n1=127.0.0.1:7001", "--data", "d"]), /--members/);
    assert.throws(() => parseMemberArgs(["--id", "n1", "--members", "n1=nope", "--data", "d"]), /HOST:PORT/);
    assert.throws(() => parseMemberArgs(["--id", "n1", "--members", "n1=h:1", "--data", "d", "--transport", "udp"]), /tcp or http/);
    assert.deepEqual(splitHostPort("[::1]:80"), ["::1", 80]);
  });
});
