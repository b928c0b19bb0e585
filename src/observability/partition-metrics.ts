// Prometheus metrics of the partition layer (docs/metrics.md, "Partition server", "Partition
// manager"): for a partition server, gauges read at scrape time (partitions served; per partition
// memtable bytes, log records a load would replay, request rate) plus request counters and a
// latency histogram fed by the server's diagnostics channel (src/util/partition-events.ts); for a
// partition manager, its decisions (splits by reason, merges, moves, re-epochs, assignments,
// released data streams) and whether it leads.
//
// Invariants: observability imports no partition code (STYLE.md principle 6): servers and
// managers are seen through the structural interfaces below; per-partition series carry the
// partition id, bounded by partitionMapPartitionsMax, and are rebuilt at each scrape (a partition
// that moved away leaves no stale series); counters mirrored from a component's cumulative stats
// only ever add the difference since the last scrape (a restarted component restarts from 0 with
// a new process, as Prometheus expects).
// Fault model: a scrape may race a load, split or merge; it then shows either side of it.
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import { partitionEvents } from '../util/partition-events.ts';
import type { PartitionRequestEvent } from '../util/partition-events.ts';

/** What metrics read from a partition server (PartitionServer satisfies it). */
export interface PartitionServerSource {
  readonly serverId: string;
  servingStats(): readonly {
    readonly partitionId: number;
    readonly requestsPerSecond: number;
    readonly stats: { readonly memtableBytes: number; readonly lastSequence: number; readonly coveredSequence: number; readonly runCount: number };
  }[];
  stats(): { readonly loads: number; readonly loadFailures: number; readonly drops: number; readonly leasesLost: number };
  readonly leaseId: number | null;
}

/** What metrics read from a partition manager (PartitionManager satisfies it). */
export interface PartitionManagerSource {
  readonly leading: boolean;
  readonly epoch: number | null;
  stats(): {
    readonly ticks: number; readonly assignments: number; readonly splits: number; readonly hotSplits: number; readonly merges: number; readonly moves: number;
    readonly reEpochs: number; readonly dataStreamsReleased: number; readonly tickFailures: number; readonly mapPartitions: number; readonly mapVersion: number;
  };
}

export class PartitionServerMetrics {
  private readonly requests: Counter<'method' | 'status'>;
  private readonly latency: Histogram<'method' | 'status'>;
  private readonly unsubscribe: () => void;
  private readonly serverId: string;

  constructor(options: { readonly registry: Registry; readonly server: PartitionServerSource }) {
    const { registry, server } = options;
    this.serverId = server.serverId;
    const registers = [registry];
    this.requests = new Counter({ name: 'kura_partition_requests_total', help: 'partition.* requests answered by this server, by method and status (ok or the StorageError code).', labelNames: ['method', 'status'], registers });
    this.latency = new Histogram({
      name: 'kura_partition_request_seconds', help: 'partition.* request latency at the server, request to answer.', labelNames: ['method', 'status'], registers,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    });
    createServerGauges(registry, server);
    this.unsubscribe = partitionEvents.request.subscribe((event) => this.onRequest(event));
  }

  close(): void {
    this.unsubscribe();
  }

  private onRequest(event: PartitionRequestEvent): void {
    if (event.serverId !== this.serverId) return;
    this.requests.inc({ method: event.method, status: event.status });
    this.latency.observe({ method: event.method, status: event.status }, event.durationMs / 1000);
  }
}

function createServerGauges(registry: Registry, server: PartitionServerSource): void {
  const registers = [registry];
  new Gauge({
    name: 'kura_partition_served', help: 'Partitions this server serves now.', registers,
    collect() {
      this.set(server.servingStats().length);
    },
  });
  new Gauge({
    name: 'kura_partition_lease_valid', help: '1 while the server holds a lease it has registered with (0: it serves nothing).', registers,
    collect() {
      this.set(server.leaseId === null ? 0 : 1);
    },
  });
  const perPartition = (name: string, help: string, value: (served: ReturnType<PartitionServerSource['servingStats']>[number]) => number): void => {
    new Gauge({
      name, help, labelNames: ['partition'], registers,
      collect() {
        this.reset();
        for (const served of server.servingStats()) this.set({ partition: String(served.partitionId) }, value(served));
      },
    });
  };
  perPartition('kura_partition_memtable_bytes', 'Bytes in the partition\'s memtables (active + frozen): what the next checkpoint writes.', (served) => served.stats.memtableBytes);
  perPartition('kura_partition_log_records', 'Commit-log records after the current checkpoint: what a load (failover, move) replays.', (served) => served.stats.lastSequence - served.stats.coveredSequence);
  perPartition('kura_partition_runs', 'Checkpoint runs the partition reads (compaction keeps it near log_F of its size).', (served) => served.stats.runCount);
  perPartition('kura_partition_requests_per_second', 'Requests per second over the load window (what hot splits and balancing moves read).', (served) => served.requestsPerSecond);
  mirroredCounter(registry, 'kura_partition_loads_total', 'Partition loads (assignment, failover, move, split or merge child) that finished.', () => server.stats().loads);
  mirroredCounter(registry, 'kura_partition_load_failures_total', 'Partition loads that failed (retried at the next map re-read).', () => server.stats().loadFailures);
  mirroredCounter(registry, 'kura_partition_drops_total', 'Partitions this server stopped serving (moved, split, merged, lease lost).', () => server.stats().drops);
  mirroredCounter(registry, 'kura_partition_leases_lost_total', 'Times the server could not confirm its lease and dropped every partition.', () => server.stats().leasesLost);
}

export class PartitionManagerMetrics {
  constructor(options: { readonly registry: Registry; readonly manager: PartitionManagerSource }) {
    const { registry, manager } = options;
    const registers = [registry];
    new Gauge({
      name: 'kura_partition_manager_leading', help: '1 while this manager leads (holds pm/leader under a valid lease).', registers,
      collect() {
        this.set(manager.leading ? 1 : 0);
      },
    });
    new Gauge({
      name: 'kura_partition_manager_epoch', help: 'Epoch this manager leads with (0 when not leading).', registers,
      collect() {
        this.set(manager.epoch ?? 0);
      },
    });
    new Gauge({
      name: 'kura_partition_map_partitions', help: 'Partitions in the map as the last tick read it.', registers,
      collect() {
        this.set(manager.stats().mapPartitions);
      },
    });
    const seen = { size: 0, load: 0 };
    new Counter({
      name: 'kura_partition_splits_total', help: 'Splits committed, by reason: size (past splitBytes) or load (hot range).', labelNames: ['reason'], registers,
      collect() {
        const stats = manager.stats();
        const bySize = stats.splits - stats.hotSplits;
        if (bySize > seen.size) this.inc({ reason: 'size' }, bySize - seen.size);
        if (stats.hotSplits > seen.load) this.inc({ reason: 'load' }, stats.hotSplits - seen.load);
        seen.size = Math.max(seen.size, bySize);
        seen.load = Math.max(seen.load, stats.hotSplits);
      },
    });
    mirroredCounter(registry, 'kura_partition_manager_ticks_total', 'Ticks run by this manager while leading.', () => manager.stats().ticks);
    mirroredCounter(registry, 'kura_partition_merges_total', 'Merges of two cold neighbours committed.', () => manager.stats().merges);
    mirroredCounter(registry, 'kura_partition_moves_total', 'Live partitions moved between servers (merge co-location and load balancing).', () => manager.stats().moves);
    mirroredCounter(registry, 'kura_partition_assignments_total', 'Partitions assigned to a server because they had no live owner (bootstrap, failover).', () => manager.stats().assignments);
    mirroredCounter(registry, 'kura_partition_reepochs_total', 'Splits, merges or moves prepared but never committed: the partition reopened at a new epoch.', () => manager.stats().reEpochs);
    mirroredCounter(registry, 'kura_partition_data_streams_released_total', 'Inherited data streams released (their extents dropped) once no partition needed them.', () => manager.stats().dataStreamsReleased);
    mirroredCounter(registry, 'kura_partition_manager_tick_failures_total', 'Ticks that failed (MetaStore, stream manager or a server unreachable); retried next tick.', () => manager.stats().tickFailures);
  }
}

/** A counter that follows a component's cumulative count, adding what it grew by since the last scrape. */
export function mirroredCounter(registry: Registry, name: string, help: string, value: () => number): void {
  let seen = 0;
  new Counter({
    name, help, registers: [registry],
    collect() {
      const now = value();
      if (now > seen) this.inc(now - seen);
      seen = Math.max(seen, now);
    },
  });
}
