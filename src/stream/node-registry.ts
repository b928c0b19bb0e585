// The stream manager's in-memory view of node liveness (docs/stream-protocol.md, "Placement"
// and "Node protection"). Durable facts about a node (address, domains, disk, lifecycle,
// placementVersion) are NodeRecords in the MetaStore; what is only in memory is when each node
// last heartbeated, whether it reported a failed disk, and whether this manager has seen it lost.
//
// Invariants:
// - liveness is measured on the injected clock's monotonic time, never the wall clock;
// - a node this manager has never heard from since it started gets one full timeout of grace
//   (a new leader must not declare the whole stamp lost and start copying everything);
// - once a node is seen lost it stays lost in memory until it re-registers; a heartbeat from a
//   lost node does not make it alive again (its replicas may have been replaced meanwhile: it
//   must re-register and be reconciled as `returned`);
// - a node that failed to take a new extent (extent.create) is *unreachable* until its next
//   heartbeat or registration: new extents go to other nodes when that places as many replicas
//   (so a dead node costs one failed create, not one per new extent until the heartbeat timeout),
//   and to it otherwise (a slow but live node in a small stamp is never left out when that would
//   cost a replica or the placement). Not a liveness verdict: its replicas still count.
//
// Fault model: heartbeats may be late, lost or duplicated; the clock only moves forward.
import type { Clock } from '../util/clock.ts';
import type { NodeLifecycle, NodeRecord } from './protocol.ts';

interface Liveness {
  lastSeenMs: number;
  failed: boolean;
  lost: boolean;
  /** extent.create failed on it since its last heartbeat: not placed on. */
  unreachable: boolean;
  reportedExtentCount: number;
}

export type HeartbeatOutcome = 'alive' | 'lost';

export class NodeRegistry {
  private readonly clock: Clock;
  private readonly heartbeatTimeoutMs: number;
  private readonly startedAtMs: number;
  private readonly liveness = new Map<string, Liveness>();

  constructor(options: { readonly clock: Clock; readonly heartbeatTimeoutMs: number }) {
    this.clock = options.clock;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs;
    this.startedAtMs = options.clock.monotonicMs();
  }

  /** A (re-)registration: the node is alive now and no longer lost. */
  registered(nodeId: string): void {
    this.liveness.set(nodeId, { lastSeenMs: this.clock.monotonicMs(), failed: false, lost: false, unreachable: false, reportedExtentCount: 0 });
  }

  /** Records a heartbeat; a node already lost stays lost until it re-registers. */
  heartbeat(nodeId: string, beat: { readonly extentCount: number; readonly failed: boolean }): HeartbeatOutcome {
    const entry = this.liveness.get(nodeId) ?? this.graceEntry();
    this.liveness.set(nodeId, entry);
    if (this.expired(entry)) entry.lost = true;
    if (entry.lost) return 'lost';
    entry.lastSeenMs = this.clock.monotonicMs();
    entry.unreachable = false;
    entry.failed = beat.failed;
    entry.reportedExtentCount = beat.extentCount;
    return 'alive';
  }

  /** Alive: heard from within the timeout, not seen lost, not reporting a failed disk. */
  isAlive(nodeId: string): boolean {
    const entry = this.entry(nodeId);
    if (this.expired(entry)) entry.lost = true;
    return !entry.lost && !entry.failed;
  }

  /** True once the node missed its heartbeats (or is marked lost) since it last registered. */
  isLost(nodeId: string): boolean {
    const entry = this.entry(nodeId);
    if (this.expired(entry)) entry.lost = true;
    return entry.lost;
  }

  /** Marks a node lost now (e.g. it answered that it has failed, or a test kills it). */
  markLost(nodeId: string): void {
    this.entry(nodeId).lost = true;
  }

  /** Its replicas count toward an extent's target: alive and in service. */
  isServing(node: NodeRecord): boolean {
    return node.lifecycle === 'in_service' && this.isAlive(node.nodeId);
  }

  /** It may be copied from: alive and in service or draining (a draining node still has data). */
  isSource(node: NodeRecord): boolean {
    return sourceLifecycles.has(node.lifecycle) && this.isAlive(node.nodeId);
  }

  /** extent.create failed on it: leave it out of placement until it heartbeats again. */
  markUnreachable(nodeId: string): void {
    this.entry(nodeId).unreachable = true;
  }

  /** It may receive new replicas. */
  isPlacementEligible(node: NodeRecord): boolean {
    return this.isServing(node);
  }

  /** extent.create failed on it since its last heartbeat: new extents prefer other nodes. */
  isUnreachable(nodeId: string): boolean {
    return this.entry(nodeId).unreachable;
  }

  private entry(nodeId: string): Liveness {
    let entry = this.liveness.get(nodeId);
    if (entry === undefined) {
      entry = this.graceEntry();
      this.liveness.set(nodeId, entry);
    }
    return entry;
  }

  private graceEntry(): Liveness {
    return { lastSeenMs: this.startedAtMs, failed: false, lost: false, unreachable: false, reportedExtentCount: 0 };
  }

  private expired(entry: Liveness): boolean {
    return this.clock.monotonicMs() - entry.lastSeenMs > this.heartbeatTimeoutMs;
  }
}

const sourceLifecycles: ReadonlySet<NodeLifecycle> = new Set<NodeLifecycle>(['in_service', 'draining']);
