/**
 * The metrics a member exports (`/metrics`): Raft state as gauges, counts of proposals, reads,
 * messages by type and applied entries, and the storage's append (write + fsync) latency.
 */
import type { RaftStatus } from "../raft/raw-node.ts";
import type { NodeId } from "../raft/messages.ts";
import type { TransportStats } from "../ports/transport.ts";
import { MetricsRegistry, type Counter, type Gauge, type Histogram } from "./metrics.ts";

/** The host's metrics for one member. */
export class NodeMetrics {
  private readonly registry: MetricsRegistry;
  /** Labels of the unlabeled series: the node label is added to every series by the registry. */
  private readonly labels = {};
  readonly proposals: Counter;
  readonly forwarded: Counter;
  readonly reads: Counter;
  readonly applied: Counter;
  readonly snapshots: Counter;
  readonly leaderChanges: Counter;
  private readonly failures: Counter;
  private readonly messagesSent: Counter;
  private readonly messagesReceived: Counter;
  private readonly appendSeconds: Histogram;
  private readonly entriesPersisted: Counter;
  private readonly gauges: Record<string, Gauge>;
  private readonly transportCounters: Record<string, Counter>;
  private readonly sentByType = new Map<string, number>();
  private readonly receivedByType = new Map<string, number>();

  constructor(node: NodeId) {
    this.registry = new MetricsRegistry({ node });
    const r = this.registry;
    this.proposals = r.counter("orrery_proposals_total", "Proposals appended by this member as leader.");
    this.forwarded = r.counter("orrery_proposals_forwarded_total", "Proposals this follower forwarded to the leader.");
    this.reads = r.counter("orrery_reads_total", "Linearizable reads requested.");
    this.applied = r.counter("orrery_entries_applied_total", "Log entries applied to the state machine.");
    this.snapshots = r.counter("orrery_snapshots_taken_total", "Snapshots this member took of its state.");
    this.leaderChanges = r.counter("orrery_leader_changes_total", "Changes of leader or role seen by this member.");
    this.failures = r.counter("orrery_operations_failed_total", "Proposals and reads that failed, by error code.");
    this.messagesSent = r.counter("orrery_messages_sent_total", "Raft messages sent, by type.");
    this.messagesReceived = r.counter("orrery_messages_received_total", "Raft messages received, by type.");
    this.appendSeconds = r.histogram("orrery_storage_append_seconds", "Latency of one persist (write + fsync) per Ready.");
    this.entriesPersisted = r.counter("orrery_entries_persisted_total", "Log entries made durable.");
    this.gauges = {
      term: r.gauge("orrery_raft_term", "The current term."),
      commit: r.gauge("orrery_raft_commit_index", "The highest committed index known."),
      applied: r.gauge("orrery_raft_applied_index", "The highest applied index."),
      lag: r.gauge("orrery_raft_apply_lag", "Committed entries not yet applied."),
      leader: r.gauge("orrery_raft_is_leader", "1 while this member leads."),
      voters: r.gauge("orrery_raft_voters", "Voters in the configuration in effect."),
      snapshotIndex: r.gauge("orrery_raft_snapshot_index", "The log's compaction point."),
      pendingProposals: r.gauge("orrery_pending_proposals", "Proposals awaiting their outcome."),
      pendingReads: r.gauge("orrery_pending_reads", "Reads awaiting their outcome."),
      sendBuffer: r.gauge("orrery_transport_send_buffer_bytes", "Bytes queued for peers."),
    };
    this.transportCounters = {
      framesSent: r.counter("orrery_transport_frames_sent_total", "Frames handed to connections."),
      framesReceived: r.counter("orrery_transport_frames_received_total", "Frames received."),
      framesDropped: r.counter("orrery_transport_frames_dropped_total", "Frames dropped (full buffer, no peer)."),
      connectionsRefused: r.counter("orrery_transport_connections_refused_total", "Connections closed for bad input."),
      bytesSent: r.counter("orrery_transport_bytes_sent_total", "Bytes written to peers."),
      bytesReceived: r.counter("orrery_transport_bytes_received_total", "Bytes read from peers."),
    };
  }

  /** Counts a sent message. */
  sent(type: string): void {
    this.sentByType.set(type, (this.sentByType.get(type) ?? 0) + 1);
  }

  /** Counts a received message. */
  received(type: string): void {
    this.receivedByType.set(type, (this.receivedByType.get(type) ?? 0) + 1);
  }

  /** Counts a failed operation by error code. */
  failed(code: string): void {
    this.failures.inc(1, { ...this.labels, code });
  }

  /** Records one persist of `entries` entries that took `seconds`. */
  persisted(entries: number, seconds: number): void {
    this.appendSeconds.observe(seconds, this.labels);
    this.entriesPersisted.inc(entries, this.labels);
  }

  /** Renders every metric, refreshing the gauges from `status`. */
  render(status: RaftStatus, transport: TransportStats, pending: { proposals: number; reads: number }): string {
    const l = this.labels;
    const g = this.gauges;
    g.term?.set(status.term, l);
    g.commit?.set(status.commit, l);
    g.applied?.set(status.applied, l);
    g.lag?.set(status.commit - status.applied, l);
    g.leader?.set(status.role === "leader" ? 1 : 0, l);
    g.voters?.set(status.config.voters.length, l);
    g.snapshotIndex?.set(status.snapshotIndex, l);
    g.pendingProposals?.set(pending.proposals, l);
    g.pendingReads?.set(pending.reads, l);
    g.sendBuffer?.set(transport.sendBufferBytes, l);
    for (const [name, counter] of Object.entries(this.transportCounters)) {
      counter.set(transport[name as keyof TransportStats], l);
    }
    for (const [type, n] of this.sentByType) this.messagesSent.set(n, { ...l, type });
    for (const [type, n] of this.receivedByType) this.messagesReceived.set(n, { ...l, type });
    return this.registry.render();
  }
}
