import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NotLeaderError } from "../errors.ts";
import type { PlacementResult } from "../placement/table.ts";
import { MemoryStorage } from "../storage/memory.ts";
import { MemoryNetwork } from "../../transports/memory/memory.ts";
import { createNode, type OrreryNode } from "./node.ts";
import { PlacementLeader, type RouteAnswer } from "./placement-leader.ts";
import { PlacementMachine } from "./placement-machine.ts";

const LEASE_MS = 300;

async function cluster() {
  const network = new MemoryNetwork();
  const ids = ["n1", "n2", "n3"];
  const members = Object.fromEntries(ids.map((id) => [id, id]));
  const parts: { node: OrreryNode<PlacementResult>; leader: PlacementLeader }[] = [];
  for (const id of ids) {
    const machine = new PlacementMachine();
    const node = await createNode<PlacementResult>({
      id,
      members,
      transport: network.transport({ id, encode: false }),
      storage: new MemoryStorage(),
      stateMachine: machine,
      tickMs: 5,
      raft: { electionTicks: 10, heartbeatTicks: 1 },
    });
    const leader = new PlacementLeader({ node, machine, lease: { leaseMs: LEASE_MS }, tickMs: 10 });
    leader.start();
    parts.push({ node, leader });
  }
  const leaderId = await (parts[0] as (typeof parts)[number]).node.waitForLeader(5000);
  const lead = parts.find((p) => p.node.id === leaderId) as (typeof parts)[number];
  const close = async () => {
    for (const p of parts) p.leader.close();
    await Promise.all(parts.map((p) => p.node.close()));
  };
  return { parts, lead, close };
}

describe("PlacementLeader", () => {
  it("routes a key to an owner, lists it in the owner's renewals, and fails it over once the owner stops renewing", async () => {
    const { parts, lead, close } = await cluster();
    try {
      await lead.leader.join("w1", "127.0.0.1:9001", 1, "a");
      await lead.leader.join("w2", "127.0.0.1:9002", 1, "b");
      const first = await lead.leader.route("/db/users");
      assert.equal(first.status, "ok");
      if (first.status !== "ok") return;
      const again = await lead.leader.route("/db/users");
      assert.deepEqual(again, first, "sticky: the same owner and epoch while it lives");
      const answer = await lead.leader.renew(first.owner);
      assert.deepEqual(answer.keys, [{ key: "/db/users", epoch: first.epoch, draining: false }]);
      assert.equal(answer.member, true);

      // The owner falls silent; the other worker keeps renewing.
      const other = first.owner === "w1" ? "w2" : "w1";
      const started = performance.now();
      let moved: RouteAnswer = first;
      while (performance.now() - started < 10 * LEASE_MS) {
        await lead.leader.renew(other);
        moved = await lead.leader.route("/db/users");
        if (moved.status === "ok" && moved.owner === other) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const tookMs = performance.now() - started;
      assert.equal(moved.status === "ok" && moved.owner, other, "the key failed over");
      assert.ok(moved.status === "ok" && moved.epoch > first.epoch, "with a higher epoch");
      assert.ok(tookMs >= lead.leader.expiryDelayMs() - 50, `not before L(1+rho) (${tookMs} ms)`);
      const silent = await lead.leader.renew(first.owner);
      assert.deepEqual(silent.keys, [], "the expired worker is told it holds nothing");

      const follower = parts.find((p) => p !== lead) as (typeof parts)[number];
      await assert.rejects(follower.leader.renew(other), (e: unknown) => NotLeaderError.is(e));
    } finally {
      await close();
    }
  });

  it("drains a leaving worker's keys to another once it confirms the release", async () => {
    const { lead, close } = await cluster();
    try {
      await lead.leader.join("w1", "127.0.0.1:9001", 1, "a");
      const route = await lead.leader.route("k");
      assert.ok(route.status === "ok" && route.owner === "w1");
      await lead.leader.join("w2", "127.0.0.1:9002", 1, "a");
      await lead.leader.leave("w1");
      const during = await lead.leader.renew("w1");
      assert.deepEqual(during.keys, [{ key: "k", epoch: route.epoch, draining: true }]);
      await lead.leader.release("w1", "k", route.epoch);
      const after = await lead.leader.route("k");
      assert.ok(after.status === "ok" && after.owner === "w2" && after.epoch > route.epoch);
    } finally {
      await close();
    }
  });
});
