// Prometheus metrics of a `kura controller` process (docs/metrics.md, "Controller"): whether it
// leads, the term it leads, the terms it has won, and the stream manager metrics of its current
// term (StreamManagerMetrics, read through a source that follows the term: a standby reads 0).
//
// Invariants: gauges are read at scrape time and cache nothing; one StreamManagerMetrics per
// process, however many terms it leads (a registry takes each metric name once); observability
// imports no stamp or stream code: the controller is seen through ControllerSource.
// Fault model: a scrape may race a step-down; it then shows either side of it.
import { Gauge, type Registry } from 'prom-client';
import { StreamManagerMetrics, type StreamManagerSource } from './stream-manager-metrics.ts';

/** What metrics read from a controller (ClusterController satisfies it). */
export interface ControllerSource {
  role(): { readonly kind: string; readonly term?: number };
  readonly terms: number;
  currentStreamManager(): StreamManagerSource | null;
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
