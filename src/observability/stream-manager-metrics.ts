// Prometheus gauges of the stream manager (docs/metrics.md), read from it at scrape time through
// collect callbacks: the manager keeps the figures (its last repair pass, its epoch, whether a
// newer manager fenced it) and this module only exposes them.
//
// Invariants: nothing is cached here, so a scrape shows the manager's state at that moment;
// observability imports no stream code (STYLE.md principle 6): the manager is seen through the
// structural StreamManagerSource interface below.
// Fault model: a scrape may race a repair pass or a fencing; it then shows either side of it.
import { Gauge } from 'prom-client';
import type { Registry } from 'prom-client';

/** What metrics read from a stream manager (StreamManager satisfies it). */
export interface StreamManagerSource {
  readonly epoch: number;
  readonly fenced: boolean;
  extentsBelowTarget(): number;
}

export class StreamManagerMetrics {
  constructor(options: { readonly registry: Registry; readonly manager: StreamManagerSource }) {
    const { manager } = options;
    const registers = [options.registry];
    const gauge = (name: string, help: string, value: () => number): void => {
      new Gauge({
        name, help, registers,
        collect() {
          this.set(value());
        },
      });
    };
    gauge('kura_extents_below_target', 'Extents with fewer live replicas than their target after the last repair pass (replicas on lost, draining or corrupt-reported nodes do not count).', () => manager.extentsBelowTarget());
    gauge('kura_stream_manager_epoch', 'Epoch this manager leads with (0 before it has taken one).', () => manager.epoch);
    gauge('kura_stream_manager_fenced', '1 once a newer manager took a higher epoch: this one refuses every call and must be stopped.', () => (manager.fenced ? 1 : 0));
  }
}
