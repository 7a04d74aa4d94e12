/**
 * The simulator's seams (event queue, disk, network, state machine) and whole runs: determinism,
 * explicit fault schedules, and that a run with faults actually exercises them.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { entriesWithTerms } from "../lib/raft/testing.ts";
import { SimDisk } from "./disk.ts";
import { EventQueue } from "./event-queue.ts";
import { KvStore, encodeCommand } from "./kv.ts";
import { SimNetwork } from "./network.ts";
import { drawOptions } from "./options.ts";
import { Random } from "./random.ts";
import { livenessBoundUs, runSimulation } from "./simulator.ts";

describe("event queue", () => {
  it("pops by time, and by insertion order at equal times", () => {
    const queue = new EventQueue<string>();
    queue.push(5, "c");
    queue.push(1, "a");
    queue.push(5, "d");
    queue.push(3, "b");
    queue.push(1, "a2");
    const order: string[] = [];
    for (let next = queue.pop(); next !== undefined; next = queue.pop()) order.push(next.event);
    assert.deepEqual(order, ["a", "a2", "b", "c", "d"]);
  });
});

describe("simulated disk", () => {
  const hs = (term: number, commit = 0) => ({ term, vote: null, commit });

  it("keeps synced writes and loses unsynced ones in a crash", () => {
    const disk = new SimDisk();
    disk.write(hs(1), entriesWithTerms([1, 1]));
    disk.sync();
    disk.write(hs(2), entriesWithTerms([1, 1, 2]).slice(2));
    disk.crash(new Random("t"), false);
    const restored = disk.load();
    assert.equal(restored.hardState.term, 1);
    assert.equal(restored.entries.length, 2);
  });

  it("cuts a torn record at the tail by its checksum", () => {
    let torn = 0;
    for (let i = 0; i < 20; i += 1) {
      const disk = new SimDisk();
      disk.write(hs(1), entriesWithTerms([1]));
      disk.sync();
      disk.write(undefined, entriesWithTerms([1, 1, 1]).slice(1));
      if (disk.crash(new Random(`torn-${i}`), true).torn) torn += 1;
      const restored = disk.load();
      assert.equal(restored.entries.length, 1, "the torn record never surfaces");
    }
    assert.ok(torn > 0, "some crashes left a torn record");
  });

  it("replays a truncation of a conflicting suffix", () => {
    const disk = new SimDisk();
    disk.write(hs(1), entriesWithTerms([1, 1, 1]));
    disk.write(hs(2), entriesWithTerms([1, 2]).slice(1));
    disk.sync();
    assert.deepEqual(disk.load().entries.map((e) => e.term), [1, 2]);
  });
});

describe("network", () => {
  const options = { latencyUsMin: 100, latencyUsMax: 200, jitterUs: 0, lossRate: 0, duplicateRate: 0, reorderRate: 0, reorderDelayUsMax: 0 };

  it("cuts exactly the links of each partition kind", () => {
    const members = ["n1", "n2", "n3", "n4", "n5"];
    const network = new SimNetwork(new Random("net"), options);
    const isolate = network.partition("isolate", members, "n3");
    assert.equal(isolate.blocked.length, 8);
    assert.ok(network.isBlocked("n3", "n1") && network.isBlocked("n1", "n3") && !network.isBlocked("n1", "n2"));
    const oneWay = network.partition("one-way", members, null);
    assert.equal(oneWay.blocked.length, 1);
    const [from, to] = oneWay.blocked[0]!;
    assert.ok(network.isBlocked(from, to) && !network.isBlocked(to, from));
    const bridge = network.partition("bridge", members, null);
    const bridgeMember = /bridge (\S+)/.exec(bridge.description)![1]!;
    for (const other of members) assert.ok(!network.isBlocked(bridgeMember, other) && !network.isBlocked(other, bridgeMember));
    network.heal();
    assert.ok(!network.partitioned);
  });

  it("loses, duplicates and delays messages at the configured rates", () => {
    const network = new SimNetwork(new Random("rates"), { ...options, lossRate: 0.2, duplicateRate: 0.1 });
    let lost = 0;
    let doubled = 0;
    for (let i = 0; i < 10_000; i += 1) {
      const delays = network.route("n1", "n2");
      if (delays.length === 0) lost += 1;
      if (delays.length === 2) doubled += 1;
      for (const d of delays) assert.ok(d >= 100 && d <= 200);
    }
    assert.ok(lost > 1700 && lost < 2300, `lost ${lost}`);
    assert.ok(doubled > 600 && doubled < 1000, `doubled ${doubled}`);
  });
});

describe("key-value state machine", () => {
  const command = (client: number, seq: number, input: Parameters<typeof encodeCommand>[0]["input"]) => encodeCommand({ client, seq, input });

  it("applies a retried command once and answers the retry with the first result", () => {
    const kv = new KvStore();
    assert.deepEqual(kv.apply(command(1, 1, { kind: "cas", key: "k", expected: null, value: "a" })), { kind: "cas", ok: true });
    kv.apply(command(2, 1, { kind: "put", key: "k", value: "b" }));
    // Client 1's retry of seq 1 must not swap again, and must report the original success.
    assert.deepEqual(kv.apply(command(1, 1, { kind: "cas", key: "k", expected: null, value: "a" })), { kind: "cas", ok: true });
    assert.deepEqual(kv.apply(command(3, 1, { kind: "get", key: "k" })), { kind: "get", value: "b" });
  });

  it("ignores a command superseded by a later one from the same client", () => {
    const kv = new KvStore();
    kv.apply(command(1, 2, { kind: "put", key: "k", value: "new" }));
    assert.equal(kv.apply(command(1, 1, { kind: "put", key: "k", value: "old" })), null);
    assert.equal(kv.fingerprint(), "k=new");
  });

  it("restores what it snapshotted", () => {
    const kv = new KvStore();
    kv.apply(command(1, 1, { kind: "put", key: "a", value: "1" }));
    const copy = new KvStore();
    copy.restore(kv.snapshot());
    assert.equal(copy.fingerprint(), "a=1");
    assert.deepEqual(copy.apply(command(1, 1, { kind: "put", key: "a", value: "1" })), { kind: "put" }, "sessions survive the snapshot");
  });
});

describe("runs", () => {
  it("gives the same trace hash for the same seed, and another for another seed", async () => {
    const a = await runSimulation(5, { overrides: { safetyTicks: 400 } });
    const b = await runSimulation(5, { overrides: { safetyTicks: 400 } });
    const c = await runSimulation(6, { overrides: { safetyTicks: 400 } });
    assert.equal(a.traceHash, b.traceHash);
    assert.notEqual(a.traceHash, c.traceHash);
    assert.deepEqual(a.stats.events, b.stats.events);
  });

  it("applies an explicit fault schedule and recovers from it", async () => {
    const options = drawOptions(9, { members: 5, safetyTicks: 600 });
    const result = await runSimulation(9, {
      options,
      schedule: [
        { atMs: 1000, kind: "cut", links: [["n1", "n2"], ["n2", "n1"], ["n1", "n3"], ["n3", "n1"]] },
        { atMs: 1500, kind: "crash", member: "n4" },
        { atMs: 2500, kind: "heal" },
        { atMs: 3000, kind: "restart", member: "n4" },
      ],
      keepTraceEventsMax: 100_000,
    });
    assert.deepEqual(result.violations, []);
    assert.equal(result.stats.partitions, 1);
    assert.equal(result.stats.crashes, 1);
    assert.ok(result.trace.some((e) => e.kind === "restart" && e.member === "n4"));
    assert.ok(result.stats.commits > 0);
  });

  it("asks leaders to transfer leadership when the seed draws it, and stays safe", async () => {
    const options = { ...drawOptions(3, { safetyTicks: 800 }), transferMeanIntervalMs: 300 };
    const result = await runSimulation(3, { options });
    assert.deepEqual(result.violations, []);
    assert.ok(result.stats.leaderTransfers > 3, `${result.stats.leaderTransfers} transfers`);
    assert.ok(result.stats.elections > 3, "transfers lead to new terms");
  });

  it("records every client operation with its invocation and response in true time", async () => {
    const result = await runSimulation(3, { overrides: { safetyTicks: 500, workers: false } });
    assert.ok(result.history.length > 0);
    for (const op of result.history) {
      if (op.returnedUs !== null) assert.ok(op.returnedUs >= op.invokedUs);
      else assert.equal(op.output, null);
    }
  });
});

describe("the liveness bound", () => {
  it("is 20 election timeouts plus 4 request timeouts, plus catch-up time for a lagging member", () => {
    const options = drawOptions(1);
    const base = 20 * 2 * options.electionTicks * options.tickMs * 1000 + 4 * options.workload.requestTimeoutMs * 1000;
    assert.equal(livenessBoundUs(options), base);
    const roundTrip = 2 * (options.network.latencyUsMax + options.network.jitterUs) + options.disk.fsyncUsMax;
    const window = options.inflightMessagesMax * Math.max(1, Math.floor(options.messageBytesMax / 128));
    assert.equal(livenessBoundUs(options, 10 * window), base + 10 * roundTrip);
    assert.ok(livenessBoundUs(options, 10 * window + 1) > livenessBoundUs(options, 10 * window));
  });
});
