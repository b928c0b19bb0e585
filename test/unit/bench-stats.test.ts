import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LatencyRecorder, percentile, runClosedLoop } from '../../bench/lib/stats.ts';

describe('benchmark statistics', () => {
  it('computes nearest-rank percentiles exactly', () => {
    const values = Float64Array.from({ length: 1000 }, (_, i) => i + 1);
    assert.equal(percentile(values, 0.5), 500);
    assert.equal(percentile(values, 0.99), 990);
    assert.equal(percentile(values, 0.999), 999);
    assert.equal(percentile(values, 1), 1000);
    assert.equal(percentile(new Float64Array(0), 0.5), 0);
  });

  it('summarises recorded latencies, keeping a bounded sample', () => {
    const recorder = new LatencyRecorder(100);
    for (let i = 1; i <= 10_000; i++) recorder.record(i % 100 === 0 ? 1000 : 1);
    const summary = recorder.summary();
    assert.equal(summary.count, 10_000);
    assert.equal(summary.minMs, 1);
    assert.equal(summary.maxMs, 1000);
    assert.ok(Math.abs(summary.meanMs - (9_900 + 100_000) / 10_000) < 1e-9);
    assert.equal(summary.p50Ms, 1);
  });

  it('stops a closed loop at its operation bound and counts bytes', async () => {
    let calls = 0;
    const result = await runClosedLoop({
      concurrency: 4,
      durationMs: 10_000,
      operationsMax: 50,
      bytesPerOperation: 10,
      operation: async () => {
        calls += 1;
        await Promise.resolve();
      },
    });
    assert.equal(calls, 50);
    assert.equal(result.operations, 50);
    assert.equal(result.bytes, 500);
  });
});
