/**
 * The transport conformance suite: what every {@link Transport} must do (DESIGN.md §5), run against
 * each implementation (memory, TCP, HTTP) by calling {@link describeTransportConformance} from its
 * test file. Test support; not exported from the package.
 *
 * Every wait is on a condition and bounded ({@link WAIT_MS_MAX}); factories should use short
 * reconnect backoffs. The few fixed sleeps left are deliberate gaps, after which a test checks
 * that something did *not* happen.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { TransportError } from "../lib/errors.ts";
import type { LogFields, Logger } from "../lib/logger.ts";
import type { Message, NodeId } from "../lib/raft/messages.ts";
import { FRAME_HEADER_BYTES, FRAME_KIND, encodeFrame, makeHello, withHeader, type Hello } from "./frame.ts";
import type { Transport, TransportHandler, TransportStats, TransportTlsOptions } from "./transport.ts";

/** What the suite asks a factory to build. */
export interface ConformanceOptions {
  readonly id: NodeId;
  readonly clusterId: string;
  readonly secret?: string;
  readonly frameBytesMax?: number;
  readonly sendBufferBytesMax?: number;
  readonly tls?: TransportTlsOptions;
  readonly peers?: Readonly<Record<NodeId, string>>;
  readonly logger?: Logger;
  /** Where to listen; a restart passes the previous instance's address. Absent: any free local port. */
  readonly listen?: string;
  /** Which authenticated peers to talk to. */
  readonly admit?: (peer: NodeId) => boolean;
}

/** Raw input, as a misbehaving peer would send it. */
export interface RawInput {
  /** A hello to open with, or `null` to send the bytes alone. */
  readonly hello: Hello | null;
  readonly bytes: Uint8Array;
}

/** A peer that completes the handshake with whoever reaches it, then never reads or answers. */
export interface StalledPeer {
  readonly address: string;
  close(): Promise<void>;
}

/** How the suite builds and pokes one implementation. */
export interface TransportFactory {
  /** Whether the implementation speaks TLS; the TLS cases are skipped when not. */
  readonly tls: boolean;
  /** Creates a transport, not yet started. */
  create(options: ConformanceOptions): Transport;
  /** Sends `input` to the started `target` on a new connection; resolves once it answered or closed it. */
  sendRaw(target: Transport, input: RawInput): Promise<void>;
  /**
   * Whether a message's size is its exact encoded frame size (false for the memory transport
   * passing messages by reference, which estimates); the message half of the size-limit case is
   * skipped when false.
   * @defaultValue true
   */
  readonly exactSizes?: boolean;
  /** Starts a stalled peer `id` (greater than the suite's member ids); absent: those cases are skipped. */
  stalledPeer?(options: { readonly id: NodeId; readonly clusterId: string; readonly secret?: string }): Promise<StalledPeer>;
}

/**
 * The longest any case waits for a condition, in milliseconds. Generous, because the suite must
 * pass on a machine whose cores are busy with other work; a case that passes waits far less.
 */
export const WAIT_MS_MAX = 30_000;

/**
 * The longest the suite of one implementation may run, in milliseconds: a hang fails with a
 * message naming the suite instead of holding the run until the runner's own timeout.
 */
export const SUITE_MS_MAX = 300_000;

/** The test certificate and key for `localhost`/127.0.0.1 (transports/testdata; for tests only). */
export function testTls(): TransportTlsOptions {
  const cert = readFileSync(new URL("./testdata/localhost.cert.pem", import.meta.url), "utf8");
  const key = readFileSync(new URL("./testdata/localhost.key.pem", import.meta.url), "utf8");
  return { cert, key, ca: cert };
}

const CLUSTER = "conformance";
const MiB = 1024 * 1024;

/**
 * Registers the conformance tests for one implementation. `makeFactory` is called once per test,
 * so that a factory may hold per-test state (the memory transport's network).
 */
export function describeTransportConformance(name: string, makeFactory: () => TransportFactory): void {
  describe(`Transport conformance: ${name}`, { timeout: SUITE_MS_MAX }, () => {
    describeDelivery(makeFactory);
    describeLifecycle(makeFactory);
    describeLimits(makeFactory);
    describeMalformedInput(makeFactory);
    describeHandshake(makeFactory);
    describeTls(makeFactory);
    describeBackpressure(makeFactory);
  });
}

// --- Cases ----------------------------------------------------------------------------------------

function describeDelivery(makeFactory: () => TransportFactory): void {
  it("delivers 1000 messages in order in both directions", async () => {
    await withHarness(makeFactory, async (h) => {
      const a = await h.member({ id: "a" });
      const b = await h.member({ id: "b", peers: { a: a.address } });
      link(a, b);
      for (let turn = 0; turn < 10; turn += 1) {
        a.transport.send(range(turn * 100, turn * 100 + 100).map((seq) => heartbeat("a", "b", seq)));
        b.transport.send(range(turn * 100, turn * 100 + 100).map((seq) => heartbeat("b", "a", seq)));
        await nextTurn();
      }
      await waitFor("1000 messages each way", () => a.inbox.messages.length >= 1000 && b.inbox.messages.length >= 1000);
      await settle();
      assert.deepEqual(b.inbox.messages.map(seqOf), range(0, 1000));
      assert.deepEqual(a.inbox.messages.map(seqOf), range(0, 1000));
      assert.ok(b.inbox.messages.every((m) => m.from === "a" && m.to === "b"));
      for (const member of [a, b]) {
        const stats = member.transport.stats();
        assert.equal(stats.framesReceived, 1000);
        assert.equal(stats.framesDropped, 0);
        assert.ok(stats.framesSent >= 1000 && stats.bytesSent > 0 && stats.bytesReceived > 0);
      }
    });
  });

  it("keeps payloads in order with messages", async () => {
    await withHarness(makeFactory, async (h) => {
      const [a, b] = await h.pair({});
      for (let seq = 0; seq < 300; seq += 1) {
        for (const [from, to] of [[a, b], [b, a]] as const) {
          if (seq % 3 === 0) assert.equal(from.transport.sendPayload(to.transport.id, seqPayload(seq)), true);
          else from.transport.send([heartbeat(from.transport.id, to.transport.id, seq)]);
        }
        if (seq % 50 === 49) await nextTurn();
      }
      await waitFor("300 frames each way", () => a.inbox.sequence.length >= 300 && b.inbox.sequence.length >= 300);
      assert.deepEqual(b.inbox.sequence, range(0, 300));
      assert.deepEqual(a.inbox.sequence, range(0, 300));
      assert.ok(b.inbox.payloads.every((p) => p.from === "a"));
      assert.equal(b.inbox.payloads.length, 100);
    });
  });

  it("reconnects after either peer closes and restarts on the same address", async () => {
    await withHarness(makeFactory, async (h) => {
      let [a, b] = await h.pair({});
      await exchange(a, b, 0);
      b = await h.restart(b, a);
      await exchange(a, b, 1000);
      a = await h.restart(a, b);
      await exchange(a, b, 2000);
      assert.ok(a.transport.stats().framesReceived >= 1 && b.transport.stats().framesReceived >= 1);
    });
  });

}

function describeLifecycle(makeFactory: () => TransportFactory): void {
  it("drops sends to unknown peers and after close, and refuses a second start", async () => {
    await withHarness(makeFactory, async (h) => {
      const a = await h.member({ id: "a" });
      a.transport.send([heartbeat("a", "nobody", 1)]);
      assert.equal(a.transport.sendPayload("nobody", seqPayload(1)), false);
      assert.equal(a.transport.stats().framesDropped, 2);
      await assert.rejects(a.transport.start(a.inbox), (error) => TransportError.is(error) && error.reason === "config");
      await a.transport.close();
      await a.transport.close();
      assert.equal(a.transport.sendPayload("b", seqPayload(1)), false);
    });
  });
}

function describeLimits(makeFactory: () => TransportFactory): void {
  it("delivers a frame at the size limit and drops a larger one", async () => {
    const frameBytesMax = 64 * 1024;
    await withHarness(makeFactory, async (h) => {
      const [a, b] = await h.pair({ frameBytesMax, sendBufferBytesMax: 4 * frameBytesMax });
      const fits = new Uint8Array(frameBytesMax - FRAME_HEADER_BYTES).fill(7);
      assert.equal(a.transport.sendPayload("b", fits), true);
      assert.equal(a.transport.sendPayload("b", new Uint8Array(frameBytesMax - FRAME_HEADER_BYTES + 1)), false);
      if (h.factory.exactSizes === false) {
        await waitFor("the payload that fits", () => b.inbox.payloads.length === 1);
        assert.equal(a.transport.stats().framesOversized, 1);
        return;
      }
      const dataBytes = largestAppendData(frameBytesMax);
      a.transport.send([append("a", "b", 1, dataBytes), append("a", "b", 2, dataBytes + 1), heartbeat("a", "b", 3)]);
      await waitFor("the frames that fit", () => b.inbox.payloads.length === 1 && b.inbox.messages.length === 2);
      assert.deepEqual(b.inbox.payloads[0]?.payload, fits);
      assert.deepEqual(b.inbox.messages.map(seqOf), [1, 3]);
      const first = b.inbox.messages[0];
      assert.equal(first?.type === "append" ? first.entries[0]?.data.length : -1, dataBytes);
      const stats = a.transport.stats();
      assert.equal(stats.framesOversized, 2);
      assert.equal(stats.framesDropped, 2);
      assert.equal(b.transport.stats().connectionsRefused, 0);
    });
  });
}

/** Raw input from an authenticated intruder "evil" (it knows the secret) that then misbehaves. */
function malformedCases(frameBytesMax: number, hello: Hello): ReadonlyArray<readonly [string, RawInput]> {
  const encoder = new TextEncoder();
  const announce = new Uint8Array(FRAME_HEADER_BYTES);
  new DataView(announce.buffer).setUint32(0, frameBytesMax);
  announce[4] = FRAME_KIND.message;
  return [
    ["garbage instead of a hello", { hello: null, bytes: encoder.encode("GET / HTTP/1.1\r\nhost: x\r\n\r\n") }],
    ["a frame of an unknown kind", { hello, bytes: Uint8Array.of(0, 0, 0, 3, 9, 1, 2) }],
    ["a frame of length zero", { hello, bytes: Uint8Array.of(0, 0, 0, 0, 0, 0) }],
    ["a header announcing more than the frame limit", { hello, bytes: announce }],
    ["a message frame whose body is not a message", { hello, bytes: withHeader(FRAME_KIND.message, Uint8Array.of(0xc1, 0xc1)) }],
    ["a second hello", { hello, bytes: encodeFrame({ kind: "hello", hello }) }],
    ["a message whose sender lies", { hello, bytes: encodeFrame({ kind: "message", message: heartbeat("a", "b", 666) }) }],
    ["a message for another member", { hello, bytes: encodeFrame({ kind: "message", message: heartbeat("evil", "a", 667) }) }],
  ];
}

function describeMalformedInput(makeFactory: () => TransportFactory): void {
  const frameBytesMax = 64 * 1024;
  const secret = "conformance-secret";
  const hello = makeHello(CLUSTER, secret, "evil", "b");
  for (const [what, input] of malformedCases(frameBytesMax, hello)) {
    it(`closes a connection that sends ${what}, logs it, and keeps serving good peers`, async () => {
      await withHarness(makeFactory, async (h) => {
        const logger = new CapturingLogger();
        const a = await h.member({ id: "a", secret, frameBytesMax });
        const b = await h.member({ id: "b", secret, frameBytesMax, logger });
        link(a, b);
        await exchange(a, b, 0);
        await h.factory.sendRaw(b.transport, input);
        await waitFor("the refusal", () => b.transport.stats().connectionsRefused >= 1);
        const logged = logger.errors();
        assert.ok(logged.length >= 1, "an error was logged");
        assert.ok(logged.some((fields) => "peer" in fields && TransportError.is(fields.error)), "the error names the peer and the error");
        a.transport.send([heartbeat("a", "b", 1)]);
        await waitFor("a message from the good peer", () => b.inbox.messages.some((m) => seqOf(m) === 1));
        assert.ok(b.inbox.messages.every((m) => m.from === "a" && seqOf(m) < 600), "nothing from the intruder was delivered");
        assert.equal(b.inbox.payloads.length, 0);
      });
    });
  }
}

function describeHandshake(makeFactory: () => TransportFactory): void {
  it("refuses a peer that names another cluster", async () => {
    await withHarness(makeFactory, async (h) => {
      const logger = new CapturingLogger();
      const b = await h.member({ id: "b", logger });
      const stranger = await h.member({ id: "a0", clusterId: "another-cluster" });
      stranger.transport.setPeer("b", b.address);
      await expectRefused(stranger, b);
      assert.ok(logger.errors().length >= 1);
    });
  });

  it("refuses peers without the shared secret or with another, and accepts the right one", async () => {
    await withHarness(makeFactory, async (h) => {
      const b = await h.member({ id: "b", secret: "right" });
      const without = await h.member({ id: "a0" });
      const wrong = await h.member({ id: "a1", secret: "wrong" });
      const right = await h.member({ id: "a2", secret: "right" });
      for (const member of [without, wrong, right]) member.transport.setPeer("b", b.address);
      await expectRefused(without, b);
      await expectRefused(wrong, b);
      right.transport.send([heartbeat("a2", "b", 5)]);
      await waitFor("the message from the member with the secret", () => b.inbox.messages.length === 1);
      assert.equal(b.inbox.messages[0]?.from, "a2");
    });
  });

  it("refuses an authenticated peer it does not admit, and talks to the ones it does", async () => {
    await withHarness(makeFactory, async (h) => {
      const b = await h.member({ id: "b", secret: "s", admit: (peer) => peer === "a2" });
      const stranger = await h.member({ id: "a0", secret: "s" });
      const known = await h.member({ id: "a2", secret: "s" });
      for (const member of [stranger, known]) member.transport.setPeer("b", b.address);
      await expectRefused(stranger, b);
      known.transport.send([heartbeat("a2", "b", 5)]);
      await waitFor("the message from the admitted peer", () => b.inbox.messages.length === 1);
      assert.equal(b.inbox.messages[0]?.from, "a2");
      assert.ok(b.transport.stats().connectionsRefused >= 1);
    });
  });
}

function describeTls(makeFactory: () => TransportFactory): void {
  it("delivers in order over TLS with a self-signed certificate", async (t) => {
    const factory = makeFactory();
    if (!factory.tls) return t.skip("no TLS");
    await withHarness(() => factory, async (h) => {
      const [a, b] = await h.pair({ tls: testTls(), secret: "tls-secret" });
      a.transport.send(range(0, 200).map((seq) => heartbeat("a", "b", seq)));
      b.transport.send(range(0, 200).map((seq) => heartbeat("b", "a", seq)));
      await waitFor("200 messages each way over TLS", () => a.inbox.messages.length >= 200 && b.inbox.messages.length >= 200);
      assert.deepEqual(b.inbox.messages.map(seqOf), range(0, 200));
      assert.deepEqual(a.inbox.messages.map(seqOf), range(0, 200));
    });
  });

  it("refuses a plaintext peer at a TLS member", async (t) => {
    const factory = makeFactory();
    if (!factory.tls) return t.skip("no TLS");
    await withHarness(() => factory, async (h) => {
      const b = await h.member({ id: "b", tls: testTls() });
      const plain = await h.member({ id: "a0" });
      plain.transport.setPeer("b", b.address);
      await expectRefused(plain, b);
    });
  });
}

function describeBackpressure(makeFactory: () => TransportFactory): void {
  it("drops what does not fit the send buffer within one turn, and delivers the rest in order", async () => {
    const sendBufferBytesMax = 256 * 1024;
    await withHarness(makeFactory, async (h) => {
      const [a, b] = await h.pair({ frameBytesMax: 16 * 1024, sendBufferBytesMax });
      const accepted: number[] = [];
      for (let seq = 0; seq < 1000; seq += 1) {
        if (a.transport.sendPayload("b", seqPayload(seq, 1024))) accepted.push(seq);
      }
      const stats = a.transport.stats();
      assert.ok(stats.sendBufferBytes <= sendBufferBytesMax + 16 * 1024, `${stats.sendBufferBytes} bytes buffered`);
      assert.ok(accepted.length > 0 && accepted.length < 1000);
      assert.equal(stats.framesDropped, 1000 - accepted.length);
      await waitFor("every accepted frame", () => b.inbox.payloads.length >= accepted.length);
      assert.deepEqual(b.inbox.sequence, accepted);
    });
  });

  it("keeps memory bounded when a peer stops reading", async (t) => {
    const factory = makeFactory();
    const startStalled = factory.stalledPeer;
    if (startStalled === undefined) return t.skip("no stalled peer for this transport");
    await withHarness(() => factory, async (h) => {
      const frameBytesMax = 256 * 1024;
      const sendBufferBytesMax = 2 * MiB;
      const a = await h.member({ id: "a", secret: "s", frameBytesMax, sendBufferBytesMax });
      const stalled = await startStalled.call(factory, { id: "z", clusterId: CLUSTER, secret: "s" });
      h.onClose(() => stalled.close());
      a.transport.setPeer("z", stalled.address);
      const result = await flood(a.transport, "z", 50 * MiB);
      const stats = a.transport.stats();
      assert.ok(result.bufferedBytesMax <= sendBufferBytesMax + frameBytesMax, `at most ${result.bufferedBytesMax} bytes buffered`);
      assert.ok(stats.framesDropped > 0, "frames were dropped");
      // The buffer and a little more; far from the 50 MiB sent.
      assert.ok(result.heapGrowthBytes < 12 * MiB, `the heap grew by ${result.heapGrowthBytes} bytes`);
    });
  });
}

// --- Harness --------------------------------------------------------------------------------------

/** A started transport and what it received. */
interface Member {
  readonly transport: Transport;
  readonly inbox: Inbox;
  readonly address: string;
  readonly options: ConformanceOptions;
}

/** Builds members for one test and closes them all at its end. */
class Harness {
  private readonly closers: Array<() => Promise<void>> = [];

  constructor(readonly factory: TransportFactory) {}

  async member(options: Partial<ConformanceOptions> & { readonly id: NodeId }): Promise<Member> {
    const full: ConformanceOptions = { clusterId: CLUSTER, ...options };
    const transport = this.factory.create(full);
    this.onClose(() => transport.close());
    const inbox = new Inbox();
    await transport.start(inbox);
    const address = transport.address();
    assert.ok(address !== null, "a started transport has an address");
    return { transport, inbox, address, options: full };
  }

  /** Members "a" and "b", each knowing the other. */
  async pair(options: Partial<ConformanceOptions>): Promise<[Member, Member]> {
    const a = await this.member({ ...options, id: "a" });
    const b = await this.member({ ...options, id: "b" });
    link(a, b);
    return [a, b];
  }

  /** Closes `member` and starts it again on the same address, linked to `other`. */
  async restart(member: Member, other: Member): Promise<Member> {
    await member.transport.close();
    const restarted = await this.member({ ...member.options, listen: member.address });
    assert.equal(restarted.address, member.address);
    link(restarted, other);
    return restarted;
  }

  onClose(closer: () => Promise<void>): void {
    this.closers.push(closer);
  }

  /** Runs every closer, newest first, even when one fails; then throws the first failure. */
  async close(): Promise<void> {
    const failures: unknown[] = [];
    for (const closer of this.closers.reverse()) {
      try {
        await closer();
      } catch (error) {
        failures.push(error);
      }
    }
    if (failures.length > 0) throw failures[0];
  }
}

async function withHarness(makeFactory: () => TransportFactory, body: (h: Harness) => Promise<void>): Promise<void> {
  const h = new Harness(makeFactory());
  try {
    await body(h);
  } catch (error) {
    // Close everything, but report the test's own failure rather than a failure to close.
    await h.close().catch(() => {});
    throw error;
  }
  await h.close();
}

/** Records what a transport delivers. `sequence` lists message seqs and payload seqs in arrival order. */
class Inbox implements TransportHandler {
  readonly messages: Message[] = [];
  readonly payloads: Array<{ readonly from: NodeId; readonly payload: Uint8Array }> = [];
  readonly sequence: number[] = [];

  onMessage(message: Message): void {
    this.messages.push(message);
    this.sequence.push(seqOf(message));
  }

  onPayload(from: NodeId, payload: Uint8Array): void {
    this.payloads.push({ from, payload });
    this.sequence.push(payload.length >= 4 ? new DataView(payload.buffer, payload.byteOffset).getUint32(0) : -1);
  }
}

/** A logger that keeps what it is given. */
class CapturingLogger implements Logger {
  readonly lines: Array<{ readonly level: string; readonly message: string; readonly fields: LogFields }> = [];
  debug(message: string, fields: LogFields = {}): void {
    this.lines.push({ level: "debug", message, fields });
  }
  info(message: string, fields: LogFields = {}): void {
    this.lines.push({ level: "info", message, fields });
  }
  warn(message: string, fields: LogFields = {}): void {
    this.lines.push({ level: "warn", message, fields });
  }
  error(message: string, fields: LogFields = {}): void {
    this.lines.push({ level: "error", message, fields });
  }
  errors(): LogFields[] {
    return this.lines.filter((line) => line.level === "error").map((line) => line.fields);
  }
}

function link(a: Member, b: Member): void {
  a.transport.setPeer(b.transport.id, b.address);
  b.transport.setPeer(a.transport.id, a.address);
}

/** Sends from each side until the other received a message at or above `base`. */
async function exchange(a: Member, b: Member, base: number): Promise<void> {
  let seq = base;
  const arrived = (m: Member) => m.inbox.messages.some((message) => seqOf(message) >= base);
  await waitFor(`messages from ${base} on, both ways`, () => arrived(a) && arrived(b), () => {
    a.transport.send([heartbeat(a.transport.id, b.transport.id, seq)]);
    b.transport.send([heartbeat(b.transport.id, a.transport.id, seq)]);
    seq += 1;
  });
}

/** Has `from` send to `to` until `to` refused it; asserts that nothing got through. */
async function expectRefused(from: Member, to: Member): Promise<void> {
  const refused = to.transport.stats().connectionsRefused;
  let seq = 0;
  await waitFor(`${to.transport.id} refusing ${from.transport.id}`, () => to.transport.stats().connectionsRefused > refused, () => {
    from.transport.send([heartbeat(from.transport.id, to.transport.id, seq)]);
    seq += 1;
  });
  // A deliberate gap: anything the refused peer managed to slip through would arrive within it.
  await sleep(50);
  assert.ok(!to.inbox.messages.some((m) => m.from === from.transport.id), "nothing from the refused peer was delivered");
}

/** Sends `bytesTotal` of 64 KiB appends to `to` over many turns, sampling the send buffer. */
async function flood(transport: Transport, to: NodeId, bytesTotal: number): Promise<{ bufferedBytesMax: number; heapGrowthBytes: number }> {
  const gc = collectGarbage();
  const data = new Uint8Array(64 * 1024).fill(1);
  const before = await settledHeapBytes(gc);
  let bufferedBytesMax = 0;
  const sample = (stats: TransportStats) => (bufferedBytesMax = Math.max(bufferedBytesMax, stats.sendBufferBytes));
  for (let sent = 0, seq = 0; sent < bytesTotal; sent += 8 * data.length) {
    transport.send(range(0, 8).map(() => append(transport.id, to, (seq += 1), data.length, data)));
    sample(transport.stats());
    await nextTurn();
    sample(transport.stats());
  }
  // A deliberate gap: the transport keeps writing what it buffered, and the sample after it
  // would see the buffer grow if nothing bounded it.
  await sleep(100);
  sample(transport.stats());
  return { bufferedBytesMax, heapGrowthBytes: (await settledHeapBytes(gc)) - before };
}

// --- Helpers --------------------------------------------------------------------------------------

function heartbeat(from: NodeId, to: NodeId, seq: number): Message {
  return { type: "heartbeat", from, to, term: 1, commit: seq, round: 0 };
}

function append(from: NodeId, to: NodeId, seq: number, dataBytes: number, data?: Uint8Array): Message {
  const bytes = data ?? new Uint8Array(dataBytes).fill(seq & 0xff);
  return { type: "append", from, to, term: 1, prevIndex: seq, prevTerm: 1, entries: [{ term: 1, index: seq + 1, type: "normal", data: bytes }], commit: 0 };
}

/** The data size of the largest append from "a" to "b" whose frame fits `frameBytesMax`. */
function largestAppendData(frameBytesMax: number): number {
  const frameBytes = (dataBytes: number) => encodeFrame({ kind: "message", message: append("a", "b", 1, dataBytes) }).length;
  let dataBytes = frameBytesMax - frameBytes(0);
  while (frameBytes(dataBytes) > frameBytesMax) dataBytes -= 1;
  assert.ok(frameBytes(dataBytes) >= frameBytesMax - 8, "the frame is within a few bytes of the limit");
  return dataBytes;
}

/** The sequence number a test message carries. */
function seqOf(message: Message): number {
  if (message.type === "heartbeat") return message.commit;
  if (message.type === "append") return message.prevIndex;
  return -1;
}

/** A payload whose first four bytes carry `seq`. */
function seqPayload(seq: number, bytes = 8): Uint8Array {
  const payload = new Uint8Array(bytes);
  new DataView(payload.buffer).setUint32(0, seq);
  return payload;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

/** Polls `done` every few milliseconds (calling `act` each time) until it holds or {@link WAIT_MS_MAX} passes. */
async function waitFor(what: string, done: () => boolean, act?: () => void): Promise<void> {
  const deadline = Date.now() + WAIT_MS_MAX;
  while (!done()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${WAIT_MS_MAX} ms waiting for ${what}`);
    act?.();
    await sleep(act === undefined ? 5 : 20);
  }
}

/** Lets a few more turns pass, so that anything extra would have arrived. */
async function settle(): Promise<void> {
  await sleep(30);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function heapBytes(): number {
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

/**
 * The heap and array buffer bytes in use after full collections. Freed array buffers are released
 * on a later turn, so it collects a few times, a turn apart, and takes the least.
 */
async function settledHeapBytes(gc: () => void): Promise<number> {
  let least = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 3; round += 1) {
    gc();
    await sleep(10);
    least = Math.min(least, heapBytes());
  }
  return least;
}

/** A full garbage collection, available without `--expose-gc`. */
function collectGarbage(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}
