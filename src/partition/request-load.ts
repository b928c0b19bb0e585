// A partition's request load on its server (docs/partition-protocol.md, "Load: request rates and
// hot-range splits"): the request rate over a sliding window, and a bounded sample of the keys
// requests routed by, from which a hot partition's split target is taken.
//
//   rate = previous bucket × (share of it still inside the window) + current bucket, ÷ window
//   sample: every n-th key; when the sample is full, every other kept key goes and n doubles
//
// Invariants: memory is bounded (keySamplesMax keys, each ≤ partitionKeyBytesMax); no randomness
// (the simulator replays it); time comes from the injected clock's monotonic reading.
// Fault model: none (in-memory counters); a clock that stands still gives rate 0 before one window.
import type { Clock } from '../util/clock.ts';

export interface RequestLoadOptions {
  readonly clock: Clock;
  readonly windowMs: number;
  readonly keySamplesMax: number;
}

export class RequestLoad {
  private readonly clock: Clock;
  private readonly windowMs: number;
  private readonly keySamplesMax: number;
  private readonly startedMs: number;
  private bucketStartMs: number;
  private current = 0;
  private previous = 0;
  private samples: Buffer[] = [];
  private stride = 1;
  private seen = 0;

  constructor(options: RequestLoadOptions) {
    this.clock = options.clock;
    this.windowMs = options.windowMs;
    this.keySamplesMax = options.keySamplesMax;
    this.startedMs = options.clock.monotonicMs();
    this.bucketStartMs = this.startedMs;
  }

  /** One request routed by `key`. */
  record(key: Buffer): void {
    this.roll();
    this.current += 1;
    this.seen += 1;
    if (this.seen % this.stride !== 0) return;
    this.samples.push(key);
    if (this.samples.length >= this.keySamplesMax) {
      this.samples = this.samples.filter((_, index) => index % 2 === 1);
      this.stride *= 2;
    }
  }

  /** Requests per second over the last window (0 until something was counted). */
  requestsPerSecond(): number {
    this.roll();
    const nowMs = this.clock.monotonicMs();
    const intoBucket = nowMs - this.bucketStartMs;
    const previousShare = Math.max(0, (this.windowMs - intoBucket) / this.windowMs);
    const spanMs = Math.min(this.windowMs, Math.max(1, nowMs - this.startedMs));
    return ((this.previous * previousShare + this.current) * 1000) / spanMs;
  }

  /** How long the rate has been measured (a hot split needs a full window). */
  measuredMs(): number {
    return Math.floor(this.clock.monotonicMs() - this.startedMs);
  }

  /** The median of the sampled keys (the split target of a hot partition), or null. */
  medianKey(): Buffer | null {
    if (this.samples.length === 0) return null;
    const sorted = [...this.samples].sort((left, right) => Buffer.compare(left, right));
    return sorted[Math.floor(sorted.length / 2)] ?? null;
  }

  private roll(): void {
    const nowMs = this.clock.monotonicMs();
    const elapsed = nowMs - this.bucketStartMs;
    if (elapsed < this.windowMs) return;
    this.previous = elapsed < 2 * this.windowMs ? this.current : 0;
    this.current = 0;
    this.bucketStartMs = nowMs - (elapsed % this.windowMs);
  }
}
