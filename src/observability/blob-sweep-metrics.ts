// Prometheus metrics of a front end's background sweep (docs/metrics.md, "Front end: sweeps"):
// the deleted-container sweep (container-sweep.ts) and the sweep intents (sweep-intents.ts,
// docs/blob-schema.md "Sweep intents"): intents this front end's writers put, how each left
// (deleted by its writer, resolved by the sweeper's sweep of the blob, or by a fence rewrite that
// keeps its commit from ever applying), and how many the sweeper's last full pass left in place.
//
// Invariants: every value is read from the sweeper at scrape time (nothing cached here); counters
// mirror counts that only grow, so they never go backwards; observability imports no front-end
// code: the sweep is seen through BlobSweepCounts. Before the front end serves, every series is 0.
// Fault model: none of its own; a scrape may race a tick and show either side of it.
import { Counter, Gauge, type Registry } from 'prom-client';
import { mirroredCounter } from './partition-metrics.ts';

/** What the metrics read (ContainerSweeper.counts() satisfies it). */
export interface BlobSweepCounts {
  readonly ticks: number;
  readonly tickFailures: number;
  readonly rowsDeleted: number;
  readonly incarnationsFinished: number;
  readonly intentsWritten: number;
  readonly intentsDischarged: number;
  readonly intentsSwept: number;
  readonly intentsFenced: number;
  readonly intentsPending: number;
  readonly cursorsDropped: number;
}

const resolvedBy = { writer: 'intentsDischarged', sweep: 'intentsSwept', fence_rewrite: 'intentsFenced' } as const;

/** Registers the sweep's metrics; `source` answers null while no front end runs (every series 0). */
export function registerBlobSweepMetrics(registry: Registry, source: () => BlobSweepCounts | null): void {
  const read = (field: keyof BlobSweepCounts) => (): number => source()?.[field] ?? 0;
  mirroredCounter(registry, 'kura_container_sweep_ticks_total', 'Background sweep ticks run by this front end (deleted containers, then sweep intents).', read('ticks'));
  mirroredCounter(registry, 'kura_container_sweep_tick_failures_total', 'Background sweep ticks that failed (a partition call failed; the next tick starts over).', read('tickFailures'));
  mirroredCounter(registry, 'kura_container_sweep_rows_deleted_total', 'Rows of deleted containers the sweep removed.', read('rowsDeleted'));
  mirroredCounter(registry, 'kura_container_sweep_incarnations_finished_total', 'Deleted containers whose rows are all gone (graveyard row removed).', read('incarnationsFinished'));
  mirroredCounter(registry, 'kura_container_sweep_cursors_dropped_total', 'Scan cursors of the sweep the partition refused (partition.bad_continuation): dropped, that scan\'s pass started over.', read('cursorsDropped'));
  mirroredCounter(registry, 'kura_sweep_intents_written_total', 'Sweep intents put by this front end\'s writers before a commit that discards more rows than it deletes.', read('intentsWritten'));
  const seen = new Map<string, number>();
  new Counter({
    name: 'kura_sweep_intents_resolved_total',
    help: 'Sweep intents deleted, by who: writer (its own cleanup finished, or its commit was refused), sweep (this sweeper swept the blob after the commit applied), fence_rewrite (this sweeper fenced out a commit that had not applied).',
    labelNames: ['by'], registers: [registry],
    collect() {
      for (const [by, field] of Object.entries(resolvedBy)) {
        const now = read(field)();
        const before = seen.get(by) ?? 0;
        this.inc({ by }, Math.max(0, now - before));
        seen.set(by, Math.max(before, now));
      }
    },
  });
  new Gauge({
    name: 'kura_sweep_intents_pending', registers: [registry],
    help: 'Sweep intents the sweeper\'s last full pass over the intent rows left in place (in their grace period, sweep unfinished, or past the tick\'s row budget): sweeps still owed, stamp-wide.',
    collect() { this.set(read('intentsPending')()); },
  });
}
