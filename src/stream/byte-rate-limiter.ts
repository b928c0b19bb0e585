// A byte-rate bound on the injected clock: re-replication copies at most `bytesPerSecond`
// per node, so repair never starves foreground traffic (rereplicationBytesPerSecondMax).
//
// Invariant: over any run of take() calls that starts at time T, the bytes granted by time
// T + t are at most bytesPerSecond * t + (the largest single take). Callers share one limiter
// per node, so concurrent copies split the budget rather than multiply it.
// Fault model: none of its own; it only delays. The clock may be virtual (ManualClock).
import type { Clock } from '../util/clock.ts';
import { assert, assertByteCount } from '../util/assert.ts';

export interface ByteRateLimiterOptions {
  readonly clock: Clock;
  readonly bytesPerSecond: number;
}

export class ByteRateLimiter {
  private readonly clock: Clock;
  private readonly bytesPerSecond: number;
  /** Monotonic time at which the budget is free again. */
  private freeAtMs: number;

  constructor(options: ByteRateLimiterOptions) {
    assert(Number.isFinite(options.bytesPerSecond) && options.bytesPerSecond > 0, 'bytesPerSecond must be positive');
    this.clock = options.clock;
    this.bytesPerSecond = options.bytesPerSecond;
    this.freeAtMs = options.clock.monotonicMs();
  }

  /** Waits until `bytes` may be sent; reserves them before waiting, so callers queue fairly. */
  async take(bytes: number): Promise<void> {
    assertByteCount(bytes, 'bytes');
    const nowMs = this.clock.monotonicMs();
    const startAtMs = Math.max(nowMs, this.freeAtMs);
    this.freeAtMs = startAtMs + (bytes * 1000) / this.bytesPerSecond;
    // Whole milliseconds (rounded up, so the bound holds): a virtual clock stays integral.
    if (startAtMs > nowMs) await this.clock.sleep(Math.ceil(startAtMs - nowMs));
  }
}
