// Prometheus metrics of a `kura controller` process (docs/metrics.md, "Controller"): whether it
// leads, the term it leads, the terms it has won, and the stream and partition manager metrics of
// its terms (StreamManagerMetrics and PartitionManagerMetrics, read through sources that follow
// the term: a standby reads 0 on gauges; partition manager counters sum every term it led).
//
// Invariants: gauges are read at scrape time and cache nothing; one StreamManagerMetrics per
// process, however many terms it leads (a registry takes each metric name once); observability
// imports no stamp or stream code: the controller is seen through ControllerSource.
// Fault model: a scrape may race a step-down; it then shows either side of it.
import { Gauge, type Registry } from 'prom-client';
import { PartitionManagerMetrics, type PartitionManagerSource } from './partition-metrics.ts';
import { StreamManagerMetrics, type StreamManagerSource } from './stream-manager-metrics.ts';

type PartitionManagerStats = ReturnType<PartitionManagerSource['stats']>;

/** What metrics read from a controller (ClusterController satisfies it). */
export interface ControllerSource {
  role(): { readonly kind: string; readonly term?: number };
  readonly terms: number;
  currentStreamManager(): StreamManagerSource | null;
  currentPartitionManager(): PartitionManagerSource | null;
}

export class ControllerMetrics {
  private readonly streamManager: StreamManagerMetrics;

  constructor(options: { readonly registry: Registry; readonly controller: () => ControllerSource | null }) {
    const registers = [options.registry];
    const current = (): StreamManagerSource | null => options.controller()?.currentStreamManager() ?? null;
    const source: StreamManagerSource = {
      get epoch() { return current()?.epoch ?? 0; },
      get fenced() { return current()?.fenced ?? false; },
      extentsBelowTarget: () => current()?.extentsBelowTarget() ?? 0,
      extentsSealedOverDamage: () => current()?.extentsSealedOverDamage() ?? 0,
    };
    this.streamManager = new StreamManagerMetrics({ registry: options.registry, manager: source });
    new PartitionManagerMetrics({ registry: options.registry, manager: followTerms(() => options.controller()?.currentPartitionManager() ?? null) });
    const gauge = (name: string, help: string, value: () => number): void => {
      new Gauge({ name, help, registers, collect() { this.set(value()); } });
    };
    gauge('kura_controller_leader', '1 while this controller leads (its lease confirmed valid and its stream manager not fenced), 0 while it stands by.', () => (options.controller()?.role().kind === 'leading' ? 1 : 0));
    gauge('kura_controller_term', 'The term this controller leads (the etcd revision that won it); 0 while standing by.', () => options.controller()?.role().term ?? 0);
    gauge('kura_controller_terms_won', 'Terms this controller process has won since it started.', () => options.controller()?.terms ?? 0);
  }

  close(): void {
    this.streamManager.close();
  }
}

const countedStats = ['ticks', 'assignments', 'splits', 'hotSplits', 'merges', 'moves', 'reEpochs', 'dataStreamsReleased', 'tickFailures'] as const;

/**
 * A partition manager source over the controller's terms: gauges read the current term's
 * manager (not leading, epoch null, 0 partitions while standing by); counters add every earlier
 * term's final counts (a stopped manager's stats stay readable), so they never go backwards.
 */
function followTerms(current: () => PartitionManagerSource | null): PartitionManagerSource {
  let followed: PartitionManagerSource | null = null;
  const earlier: Record<(typeof countedStats)[number], number> = { ticks: 0, assignments: 0, splits: 0, hotSplits: 0, merges: 0, moves: 0, reEpochs: 0, dataStreamsReleased: 0, tickFailures: 0 };
  const follow = (): PartitionManagerSource | null => {
    const manager = current();
    if (manager !== followed) {
      if (followed !== null) {
        const ended = followed.stats();
        for (const name of countedStats) earlier[name] += ended[name];
      }
      followed = manager;
    }
    return manager;
  };
  return {
    get leading() { return follow()?.leading ?? false; },
    get epoch() { return follow()?.epoch ?? null; },
    stats(): PartitionManagerStats {
      const now = follow()?.stats();
      const counts = Object.fromEntries(countedStats.map((name) => [name, earlier[name] + (now?.[name] ?? 0)])) as Record<(typeof countedStats)[number], number>;
      return { ...counts, mapPartitions: now?.mapPartitions ?? 0, mapVersion: now?.mapVersion ?? 0 };
    },
  };
}
