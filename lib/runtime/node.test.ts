/**
 * The Node runtime's `createNode`: the host on the real clock (the default), with the memory
 * transport and the file WAL. The host's behaviour is tested in simulated time
 * (lib/host/node.test.ts); these show the runtime drives it: real timers fire, real fsyncs
 * complete, and a member restarts from its files. Waits are on conditions with generous bounds.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { MemoryNetwork } from "../../transports/memory/memory.ts";
import type { OrreryNode } from "../host/node.ts";
import { ListMachine, text } from "../host/testing.ts";
import type { Storage } from "../ports/storage.ts";
import { FileStorage } from "../storage/file.ts";
import { MemoryStorage } from "../storage/memory.ts";
import { createNode } from "./node.ts";

const IDS = ["n1", "n2", "n3"];
const MEMBERS = Object.fromEntries(IDS.map((id) => [id, id]));

async function eventually(check: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

interface Member {
  readonly node: OrreryNode<number>;
  readonly machine: ListMachine;
}

async function start(network: MemoryNetwork, id: string, storage: Storage): Promise<Member> {
  const machine = new ListMachine();
  const node = await createNode<number>({ id, members: MEMBERS, transport: network.transport({ id }), storage, stateMachine: machine });
  return { node, machine };
}

async function leaderOf(members: readonly Member[]): Promise<Member> {
  let leader: Member | undefined;
  await eventually(() => {
    leader = members.find((m) => m.node.status().role === "leader");
    return leader !== undefined;
  }, "a leader");
  return leader as Member;
}

describe("createNode on the Node clock", () => {
  it("elects a leader, applies proposals and serves reads with its default clock and randomness", async () => {
    const network = new MemoryNetwork();
    const members: Member[] = [];
    try {
      for (const id of IDS) members.push(await start(network, id, new MemoryStorage()));
      const leader = await leaderOf(members);
      const follower = members.find((m) => m !== leader) as Member;
      assert.equal(await follower.node.propose(text("a")), 1);
      assert.equal(await leader.node.propose(text("b")), 2);
      assert.equal(await follower.node.read(() => follower.machine.items.length), 2);
    } finally {
      await Promise.all(members.map((m) => m.node.close()));
    }
  });

  it("restarts a member from its file WAL, and it catches up", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "orrery-node-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const network = new MemoryNetwork();
    const members = new Map<string, Member>();
    try {
      for (const id of IDS) members.set(id, await start(network, id, await FileStorage.open(join(dir, id))));
      const leader = await leaderOf([...members.values()]);
      for (let i = 0; i < 10; i += 1) await leader.node.propose(text(`a${i}`));
      const victim = [...members.values()].find((m) => m !== leader) as Member;
      await victim.node.close();
      for (let i = 0; i < 10; i += 1) await leader.node.propose(text(`b${i}`));
      const back = await start(network, victim.node.id, await FileStorage.open(join(dir, victim.node.id)));
      members.set(victim.node.id, back);
      await eventually(() => back.machine.items.length === leader.machine.items.length, "catch-up");
      assert.deepEqual(back.machine.items, leader.machine.items);
    } finally {
      await Promise.all([...members.values()].map((m) => m.node.close()));
    }
  });
});
