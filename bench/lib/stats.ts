// Latency and throughput statistics for benchmarks. Exact percentiles over a bounded sample:
// at most `capacity` latencies are kept (reservoir sampling past that, seeded so runs repeat),
// which keeps memory bounded for long runs and the numbers exact for short ones.
import { SeededRandom } from '../../src/util/random.ts';

export interface LatencySummary {
  readonly count: number;
  readonly minMs: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
}

export class LatencyRecorder {
  private readonly samples: Float64Array;
  private stored = 0;
  private seen = 0;
  private sum = 0;
  private min = Number.POSITIVE_INFINITY;
  private max = 0;
  private readonly random = new SeededRandom(1);

  constructor(capacity = 1_000_000) {
    this.samples = new Float64Array(capacity);
  }

  record(latencyMs: number): void {
    this.seen += 1;
    this.sum += latencyMs;
    this.min = Math.min(this.min, latencyMs);
    this.max = Math.max(this.max, latencyMs);
    if (this.stored < this.samples.length) {
      this.samples[this.stored++] = latencyMs;
      return;
    }
    const slot = this.random.int(this.seen);
    if (slot < this.samples.length) this.samples[slot] = latencyMs;
  }

  summary(): LatencySummary {
    const sorted = this.samples.slice(0, this.stored).sort();
    return {
      count: this.seen,
      minMs: this.seen === 0 ? 0 : this.min,
      meanMs: this.seen === 0 ? 0 : this.sum / this.seen,
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
      p999Ms: percentile(sorted, 0.999),
      maxMs: this.max,
    };
  }
}

/** Nearest-rank percentile of an ascending array; 0 for an empty one. */
export function percentile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil(fraction * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? 0;
}

export interface ThroughputResult {
  readonly operations: number;
  readonly bytes: number;
  readonly seconds: number;
  readonly opsPerSecond: number;
  readonly mibPerSecond: number;
  readonly latency: LatencySummary;
}

/**
 * Runs `operation` from `concurrency` workers until `durationMs` passes or `operationsMax`
 * complete, recording each latency. Bounded in both count and time.
 */
export async function runClosedLoop(options: {
  readonly concurrency: number;
  readonly durationMs: number;
  readonly operationsMax: number;
  readonly bytesPerOperation: number;
  readonly operation: (worker: number, sequence: number) => Promise<void>;
}): Promise<ThroughputResult> {
  const recorder = new LatencyRecorder();
  const startMs = performance.now();
  let started = 0;
  const worker = async (index: number): Promise<void> => {
    while (started < options.operationsMax && performance.now() - startMs < options.durationMs) {
      const sequence = started++;
      const t0 = performance.now();
      await options.operation(index, sequence);
      recorder.record(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, (_, index) => worker(index)));
  const seconds = (performance.now() - startMs) / 1000;
  const latency = recorder.summary();
  const bytes = latency.count * options.bytesPerOperation;
  return {
    operations: latency.count,
    bytes,
    seconds,
    opsPerSecond: latency.count / seconds,
    mibPerSecond: bytes / (1024 * 1024) / seconds,
    latency,
  };
}
