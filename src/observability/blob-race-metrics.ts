// Prometheus metrics of the Blob service's condition races (docs/metrics.md, "Front end: condition
// races"): a blob write reads its rows, then commits with a partition condition on what it read
// (docs/blob-schema.md, "Conditions, ETags and atomicity"); a commit refused because another write
// got there first applied nothing and is attempted again, at most blobWriteAttemptsMax times, then
// answered 503 ServerBusy. These counters show how often that happens.
//
// Invariants: values are read from the backend at scrape time (nothing cached here); they mirror
// counts that only grow, so the counters never go backwards; observability imports no front-end
// code: the backend is seen through BlobRaceCounts. Before the front end serves, every series is 0.
// Fault model: none of its own; a scrape may race a request and show either side of it.
import type { Registry } from 'prom-client';
import { mirroredCounter } from './partition-metrics.ts';

/** What the metrics read (PartitionBlobBackend.stats() satisfies it). */
export interface BlobRaceCounts {
  /** Attempts repeated because a partition condition lost a race (nothing was applied). */
  readonly raceRetries: number;
  /** Operations that lost every attempt in a row (answered 503 ServerBusy). */
  readonly raceExhausted: number;
}

/** Registers the race counters; `source` answers null while no front end runs (every series 0). */
export function registerBlobRaceMetrics(registry: Registry, source: () => BlobRaceCounts | null): void {
  mirroredCounter(registry, 'kura_blob_race_retries_total', 'Blob operation attempts repeated because their partition condition lost a race with another write (nothing was applied; the attempt re-read and tried again).', () => source()?.raceRetries ?? 0);
  mirroredCounter(registry, 'kura_blob_race_exhausted_total', 'Blob operations that lost every one of their bounded attempts to concurrent writes and were answered 503 ServerBusy.', () => source()?.raceExhausted ?? 0);
}
