/**
 * The simulated network as the `Transport` port: each member and worker gets a transport whose
 * messages and payloads cross the simulated links (latency, jitter, loss, duplication, reordering,
 * partitions) as events of the world. Messages pass by reference (they are immutable); payloads are
 * the host's own encoded bytes. A message to a process that is down is lost; one to a paused process
 * waits until it resumes, as it would in a socket buffer.
 */
import type { Transport, TransportHandler, TransportStats } from "../lib/ports/transport.ts";
import type { Message, NodeId } from "../lib/raft/messages.ts";
import type { SimNetwork } from "./network.ts";
import type { Scheduler, SimProcess } from "./world.ts";

/**
 * What crosses a link: a Raft message, a payload, or a call (a client's request to a member, a
 * gateway's request to a worker, and their answers: run at the receiving process on arrival).
 */
export type Parcel =
  | { readonly kind: "message"; readonly message: Message }
  | { readonly kind: "payload"; readonly from: NodeId; readonly payload: Uint8Array }
  | {
      readonly kind: "call";
      /** What it is, for the trace. */
      readonly label: string;
      readonly run: () => void;
      /** Sent back when the receiver is down (a refused connection); otherwise the call is simply lost. */
      readonly refused?: () => void;
    };

/** Why a parcel was not delivered. */
export type DropReason = "loss" | "partition" | "crashed";

/** What the simulator hears from the wire (the trace, the checkers, the narrow-window faults). */
export interface WireHooks {
  /** A parcel left `from` for `to` as message `id` (before its fate is decided). */
  sent(id: number, from: string, to: string, parcel: Parcel): void;
  delivered(id: number, to: string, parcel: Parcel): void;
  dropped(id: number, reason: DropReason): void;
  /** The parcel has left `from` (its fate is decided): the moment a narrow-window crash strikes. */
  left(from: string, parcel: Parcel): void;
}

/** The links between the world's processes. */
export class SimWire {
  private readonly handlers = new Map<string, { readonly generation: number; readonly handler: TransportHandler }>();
  private readonly processes = new Map<string, SimProcess>();
  private parcels = 0;

  constructor(
    private readonly scheduler: Scheduler,
    readonly network: SimNetwork,
    private readonly hooks: WireHooks,
  ) {}

  /** Makes process `process` reachable as `id`. */
  register(id: string, process: SimProcess): void {
    this.processes.set(id, process);
  }

  /** A transport for the current incarnation of the process registered as `id`. */
  transport(id: string): Transport {
    const process = this.processes.get(id);
    if (process === undefined) throw new RangeError(`no process ${id} on the wire`);
    return new SimTransport(id, process, process.generation, this);
  }

  /** @internal */
  attach(id: string, generation: number, handler: TransportHandler): void {
    this.handlers.set(id, { generation, handler });
  }

  /** @internal */
  detach(id: string, generation: number): void {
    if (this.handlers.get(id)?.generation === generation) this.handlers.delete(id);
  }

  /** Sends `parcel` from `from` to `to` through the network; returns false when it was not sent at all. */
  send(from: string, to: string, parcel: Parcel): void {
    const id = ++this.parcels;
    this.hooks.sent(id, from, to, parcel);
    if (this.network.isBlocked(from, to)) {
      this.hooks.dropped(id, "partition");
      this.hooks.left(from, parcel);
      return;
    }
    const delays = this.network.route(from, to);
    if (delays.length === 0) this.hooks.dropped(id, "loss");
    for (const delay of delays) this.scheduler.at(this.scheduler.now + delay, () => this.arrive(id, from, to, parcel));
    this.hooks.left(from, parcel);
  }

  /** Sends a call: `run` runs at `to`'s current incarnation on arrival. */
  call(from: string, to: string, label: string, run: () => void, refused?: () => void): void {
    this.send(from, to, refused === undefined ? { kind: "call", label, run } : { kind: "call", label, run, refused });
  }

  /** Delivers a parcel that reached `to`; returns whether any code of a process ran. */
  private arrive(id: number, from: string, to: string, parcel: Parcel): boolean {
    if (this.network.isBlocked(from, to)) {
      this.hooks.dropped(id, "partition");
      return false;
    }
    const process = this.processes.get(to);
    if (parcel.kind === "call") {
      if (process === undefined || !process.up) {
        this.hooks.dropped(id, "crashed");
        const refused = parcel.refused;
        if (refused !== undefined) this.call(to, from, "refused", refused);
        return false;
      }
      return process.run(process.generation, () => {
        this.hooks.delivered(id, to, parcel);
        parcel.run();
      });
    }
    const target = this.handlers.get(to);
    if (process === undefined || !process.up || target === undefined || target.generation !== process.generation) {
      this.hooks.dropped(id, "crashed");
      return false;
    }
    return process.run(target.generation, () => {
      // The incarnation may have ended, or detached, while the parcel waited out a pause.
      if (this.handlers.get(to) !== target) return this.hooks.dropped(id, "crashed");
      this.hooks.delivered(id, to, parcel);
      if (parcel.kind === "message") target.handler.onMessage(parcel.message);
      else target.handler.onPayload(parcel.from, parcel.payload);
    });
  }
}

/** One incarnation's transport. */
class SimTransport implements Transport {
  private started = false;
  private closed = false;
  private readonly counters = { framesSent: 0, framesReceived: 0, bytesSent: 0, bytesReceived: 0, framesDropped: 0 };

  constructor(
    readonly id: NodeId,
    private readonly process: SimProcess,
    private readonly generation: number,
    private readonly wire: SimWire,
  ) {}

  start(handler: TransportHandler): Promise<void> {
    if (this.started) return Promise.reject(new Error("started twice"));
    this.started = true;
    const counted: TransportHandler = {
      onMessage: (message) => {
        this.counters.framesReceived += 1;
        handler.onMessage(message);
      },
      onPayload: (from, payload) => {
        this.counters.framesReceived += 1;
        this.counters.bytesReceived += payload.byteLength;
        handler.onPayload(from, payload);
      },
    };
    this.wire.attach(this.id, this.generation, counted);
    return Promise.resolve();
  }

  send(messages: readonly Message[]): void {
    if (!this.live()) {
      this.counters.framesDropped += messages.length;
      return;
    }
    for (const message of messages) {
      // A send can end the incarnation (a narrow-window crash): what follows is never sent.
      if (!this.live()) {
        this.counters.framesDropped += 1;
        continue;
      }
      this.counters.framesSent += 1;
      this.wire.send(this.id, message.to, { kind: "message", message });
    }
  }

  sendPayload(to: NodeId, payload: Uint8Array): boolean {
    if (!this.live()) {
      this.counters.framesDropped += 1;
      return false;
    }
    this.counters.framesSent += 1;
    this.counters.bytesSent += payload.byteLength;
    this.wire.send(this.id, to, { kind: "payload", from: this.id, payload });
    return true;
  }

  setPeer(): void {}

  removePeer(): void {}

  address(): string | null {
    return this.started ? this.id : null;
  }

  replyAddress(): null {
    return null;
  }

  stats(): TransportStats {
    return { ...this.counters, framesOversized: 0, connectionsRefused: 0, connects: 0, sendBufferBytes: 0 };
  }

  close(): Promise<void> {
    this.closed = true;
    this.wire.detach(this.id, this.generation);
    return Promise.resolve();
  }

  /** Sends are possible only from a live, started, unclosed incarnation. */
  private live(): boolean {
    return this.started && !this.closed && this.process.up && this.process.generation === this.generation;
  }
}
