import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodePlacementCommand } from "../placement/commands.ts";
import { createNode } from "../runtime/node.ts";
import { PlacementMachine } from "./placement-machine.ts";
import { MemoryStorage } from "../storage/memory.ts";
import { MemoryNetwork } from "../../transports/memory/memory.ts";
import type { PlacementResult } from "../placement/table.ts";

describe("PlacementMachine", () => {
  it("replicates the placement table: a grant's epoch is its log index on every member", async () => {
    const network = new MemoryNetwork();
    const ids = ["n1", "n2", "n3"];
    const members = Object.fromEntries(ids.map((id) => [id, id]));
    const machines = ids.map(() => new PlacementMachine());
    const nodes = await Promise.all(
      ids.map((id, i) =>
        createNode<PlacementResult>({
          id,
          members,
          transport: network.transport({ id, encode: false }),
          storage: new MemoryStorage(),
          stateMachine: machines[i] as PlacementMachine,
          tickMs: 5,
          raft: { electionTicks: 10, heartbeatTicks: 1 },
        }),
      ),
    );
    try {
      const leader = nodes.find((n) => n.id === "n1") as (typeof nodes)[number];
      const leaderId = await leader.waitForLeader(5000);
      const node = nodes.find((n) => n.id === leaderId) as (typeof nodes)[number];
      await node.propose(encodePlacementCommand({ type: "join", worker: "w1", address: "127.0.0.1:9001", capacity: 1, zone: "a" }));
      const granted = await node.propose(encodePlacementCommand({ type: "acquire", key: "/db/users" }));
      assert.equal(granted.refused, null);
      const epoch = granted.changed[0]?.epoch;
      assert.ok(epoch !== undefined && epoch > 0);
      for (const [i, n] of nodes.entries()) {
        const owner = await n.read(() => (machines[i] as PlacementMachine).table.assignment("/db/users"));
        assert.deepEqual(owner, { key: "/db/users", owner: "w1", epoch, state: "active", next: null });
      }
      const bad = await node.propose(Uint8Array.of(0xc1));
      assert.match(bad.refused ?? "", /malformed/);
    } finally {
      await Promise.all(nodes.map((n) => n.close()));
    }
  });

  it("restores what it snapshotted", () => {
    const a = new PlacementMachine();
    a.apply(encodePlacementCommand({ type: "join", worker: "w1", address: "x:1", capacity: 1, zone: "a" }), { index: 1, term: 1 });
    a.apply(encodePlacementCommand({ type: "acquire", key: "k" }), { index: 2, term: 1 });
    const b = new PlacementMachine();
    b.restore(a.snapshot());
    assert.deepEqual(b.table.assignment("k"), a.table.assignment("k"));
    assert.deepEqual(b.snapshot(), a.snapshot());
  });
});
