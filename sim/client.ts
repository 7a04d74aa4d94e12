/**
 * A simulated client: one operation at a time against the cluster, with timeouts, retries and
 * redirects; the member it asks serves each request through its own `propose` or `read`, recording each operation's invocation and response in true time for the
 * linearizability checker. Retries reuse the operation's sequence number, so the state machine's
 * sessions apply it at most once.
 */
import type { KvInput, KvOutput, Operation } from "./history.ts";
import type { Random } from "./random.ts";
import type { SimOptions } from "./options.ts";

/** A client's request to a member, which serves it through the member's `propose` or `read`. */
export interface ClientRequest {
  readonly requestId: number;
  readonly client: number;
  readonly seq: number;
  readonly input: KvInput;
}

/** A member's answer to a client. `retry`: the outcome is unknown; send the same request again. */
export type ClientReply =
  | { readonly requestId: number; readonly seq: number; readonly status: "ok"; readonly output: KvOutput }
  | { readonly requestId: number; readonly seq: number; readonly status: "notLeader"; readonly leaderHint: string | null }
  | { readonly requestId: number; readonly seq: number; readonly status: "retry" };

/** What a client needs from the simulator. */
export interface ClientHost {
  now(): number;
  /** Sends a request; the host routes it through the network to `member`. */
  send(client: SimClient, member: string, request: ClientRequest): void;
  /** Calls `fn` after `delayUs` (true time). */
  after(delayUs: number, fn: () => void): void;
  /** A new, unique request id. */
  nextRequestId(): number;
  /** Records a finished (or abandoned) operation, with the sequence number it was sent under. */
  record(operation: Operation, seq: number): void;
}

interface Current {
  readonly id: number;
  readonly seq: number;
  readonly input: KvInput;
  readonly invokedUs: number;
  attempts: number;
  /** The request id of the latest attempt; timeouts of older attempts are ignored. */
  requestId: number;
}

/** One client. */
export class SimClient {
  private seq = 0;
  private target: string;
  private current: Current | null = null;
  /** False once the liveness phase starts: finish what is pending, start nothing new. */
  accepting = true;
  /** In the liveness phase a client never gives up on a pending operation. */
  patient = false;

  constructor(
    readonly id: number,
    private readonly members: readonly string[],
    private readonly random: Random,
    private readonly workload: SimOptions["workload"],
    private readonly host: ClientHost,
    private readonly nextOperationId: () => number,
  ) {
    this.target = random.pick(members);
  }

  /** Whether an operation is in progress. */
  get busy(): boolean {
    return this.current !== null;
  }

  /** Starts the next operation, if the client is accepting work and idle. */
  wake(): void {
    if (!this.accepting || this.current !== null) return;
    this.seq += 1;
    this.current = {
      id: this.nextOperationId(),
      seq: this.seq,
      input: this.drawInput(),
      invokedUs: this.host.now(),
      attempts: 0,
      requestId: 0,
    };
    this.attempt();
  }

  private drawInput(): KvInput {
    const w = this.workload;
    const key = `k${this.random.int(1, w.keys)}`;
    const value = `c${this.id}-${this.seq}`;
    const roll = this.random.next() * (w.putWeight + w.getWeight + w.casWeight);
    if (roll < w.putWeight) return { kind: "put", key, value };
    if (roll < w.putWeight + w.getWeight) return { kind: "get", key };
    // Expect absence, or a value some client may have written lately: both succeed and fail.
    const writer = this.random.int(1, w.clients);
    const expected = this.random.chance(0.3) ? null : `c${writer}-${Math.max(1, this.seq - this.random.int(0, 3))}`;
    return { kind: "cas", key, expected, value };
  }

  private attempt(): void {
    const current = this.current;
    if (current === null) return;
    current.attempts += 1;
    current.requestId = this.host.nextRequestId();
    const requestId = current.requestId;
    this.host.send(this, this.target, { requestId, client: this.id, seq: current.seq, input: current.input });
    this.host.after(this.workload.requestTimeoutMs * 1000, () => this.onTimeout(requestId));
  }

  private onTimeout(requestId: number): void {
    const current = this.current;
    if (current === null || current.requestId !== requestId) return;
    this.target = this.otherMember(this.target);
    this.retryOrGiveUp(current);
  }

  /** Handles a member's answer. */
  onReply(reply: ClientReply): void {
    const current = this.current;
    // Any answer for this operation's sequence number counts, whichever attempt it answers.
    if (current === null || reply.seq !== current.seq) return;
    switch (reply.status) {
      case "ok":
        this.complete(current, reply.output);
        return;
      case "notLeader":
        if (reply.requestId !== current.requestId) return;
        this.target = reply.leaderHint ?? this.otherMember(this.target);
        this.retryOrGiveUp(current);
        return;
      case "retry":
        if (reply.requestId !== current.requestId) return;
        this.retryOrGiveUp(current);
        return;
    }
  }

  private retryOrGiveUp(current: Current): void {
    if (!this.patient && current.attempts >= this.workload.attemptsMax) {
      this.host.record({ id: current.id, client: this.id, input: current.input, output: null, invokedUs: current.invokedUs, returnedUs: null }, current.seq);
      this.current = null;
      this.scheduleNext();
      return;
    }
    // Back off a little so that a cluster without a leader is not flooded.
    const attempt = this.current?.requestId;
    this.host.after(1000 + Math.floor(this.random.next() * 5000), () => {
      if (this.current === current && current.requestId === attempt) this.attempt();
    });
  }

  private complete(current: Current, output: KvOutput): void {
    this.host.record({ id: current.id, client: this.id, input: current.input, output, invokedUs: current.invokedUs, returnedUs: this.host.now() }, current.seq);
    this.current = null;
    this.scheduleNext();
  }

  private scheduleNext(): void {
    this.host.after(Math.max(1, Math.floor(this.random.exponential(this.workload.thinkMs * 1000))), () => this.wake());
  }

  private otherMember(member: string): string {
    const others = this.members.filter((m) => m !== member);
    return others.length > 0 ? this.random.pick(others) : member;
  }

  /** The operation in progress, for the end-of-run record. */
  pending(): { id: number; input: KvInput; invokedUs: number } | null {
    return this.current === null ? null : { id: this.current.id, input: this.current.input, invokedUs: this.current.invokedUs };
  }
}
