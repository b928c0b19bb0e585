// Prometheus metrics of the stream manager (docs/metrics.md): gauges read from it at scrape time
// through collect callbacks (its last repair pass, its epoch, whether a newer manager fenced it,
// the extents flagged sealed over damage), and counters fed by the manager's diagnostics channels
// (src/util/stream-events.ts): what each repair pass found and fixed, and every seal it recorded.
//
// Invariants: gauges cache nothing, so a scrape shows the manager's state at that moment; the
// counters exist at 0 from the start (an alert on increase() fires on the first event); channel
// listeners only add to counters and never throw; observability imports no stream code (STYLE.md
// principle 6): the manager is seen through the structural StreamManagerSource interface below.
// Fault model: a scrape may race a repair pass or a fencing; it then shows either side of it.
// Events of every manager in the process count (one leads per process in practice).
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import { streamEvents } from '../util/stream-events.ts';
import type { RepairPassEvent, StreamSealEvent } from '../util/stream-events.ts';

/** What metrics read from a stream manager (StreamManager satisfies it). */
export interface StreamManagerSource {
  readonly epoch: number;
  readonly fenced: boolean;
  extentsBelowTarget(): number;
  extentsSealedOverDamage(): number;
}

interface RepairCounters {
  readonly passes: Counter;
  readonly found: Counter;
  readonly fixed: Counter;
  readonly withoutTarget: Counter;
  readonly sealed: Counter;
  readonly seals: Counter<'damage'>;
}

export class StreamManagerMetrics {
  private readonly counters: RepairCounters;
  private readonly unsubscribes: (() => void)[];

  constructor(options: { readonly registry: Registry; readonly manager: StreamManagerSource }) {
    createGauges(options.registry, options.manager);
    this.counters = createCounters(options.registry);
    this.unsubscribes = [
      streamEvents.repairPass.subscribe((event) => this.onRepairPass(event)),
      streamEvents.streamSeal.subscribe((event) => this.onSeal(event)),
    ];
  }

  /** Stops listening to the channels (the registry keeps the last values). */
  close(): void {
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
  }

  private onRepairPass(event: RepairPassEvent): void {
    this.counters.passes.inc();
    this.counters.found.inc(event.extentsFound);
    this.counters.fixed.inc(event.extentsFixed);
    this.counters.withoutTarget.inc(event.extentsWithoutTarget);
    this.counters.sealed.inc(event.extentsSealed);
  }

  private onSeal(event: StreamSealEvent): void {
    this.counters.seals.inc({ damage: event.damage });
  }
}

function createGauges(registry: Registry, manager: StreamManagerSource): void {
  const registers = [registry];
  const gauge = (name: string, help: string, value: () => number): void => {
    new Gauge({
      name, help, registers,
      collect() {
        this.set(value());
      },
    });
  };
  gauge('kura_extents_below_target', 'Extents with fewer live replicas than their target after the last repair pass (replicas on lost, draining or corrupt-reported nodes do not count).', () => manager.extentsBelowTarget());
  gauge('kura_extents_sealed_over_damage', 'Extents flagged sealedOverDamage in the replica map at the last repair pass: every answering replica was damaged, so P1 cannot be proven for them.', () => manager.extentsSealedOverDamage());
  gauge('kura_stream_manager_epoch', 'Epoch this manager leads with (0 before it has taken one).', () => manager.epoch);
  gauge('kura_stream_manager_fenced', '1 once a newer manager took a higher epoch: this one refuses every call and must be stopped.', () => (manager.fenced ? 1 : 0));
}

function createCounters(registry: Registry): RepairCounters {
  const registers = [registry];
  const counters: RepairCounters = {
    passes: new Counter({ name: 'kura_repair_passes_total', help: 'Repair passes the stream manager finished.', registers }),
    found: new Counter({ name: 'kura_repair_extents_found_total', help: 'Extents found below their replica target, summed over repair passes (an extent still short counts again in the next pass).', registers }),
    fixed: new Counter({ name: 'kura_repair_extents_fixed_total', help: 'Extents brought back to their replica target by repair passes.', registers }),
    withoutTarget: new Counter({ name: 'kura_repair_extents_without_target_total', help: 'Extents a repair pass found below target with no eligible node to copy to (too few fault domains), summed over passes.', registers }),
    sealed: new Counter({ name: 'kura_repair_extents_sealed_total', help: 'Open extents sealed by repair passes (a replica was lost, or a better placement appeared); each also extends its stream.', registers }),
    seals: new Counter({ name: 'kura_stream_seal_total', help: 'Seals the stream manager recorded, by damage: none, excluded (damaged replicas left out of the length), over_damage (every answer damaged).', labelNames: ['damage'], registers }),
  };
  for (const damage of ['none', 'excluded', 'over_damage']) counters.seals.inc({ damage }, 0);
  return counters;
}
