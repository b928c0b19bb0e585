// Issue 5's goal verdicts and kill -9 loss totals over hand-made rated results: which rows a goal
// reads, its ratio against the target, its extra conditions (0 lost, p99), and a missing figure.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateGoals, goalRows, lossTotals, type RatedResult } from '../../../bench/blob/goals.ts';
import type { RatioSet } from '../../../bench/blob/ratios.ts';
import type { DurabilityResult, WorkloadKind } from '../../../bench/blob/results.ts';

const noRatios: RatioSet = { toNullServer: null, toMachineLimit: null, machineLimit: null, kuraToAzurite: null, clusterToEmbedded: null, toOneFrontend: null };

function checked(acknowledged: number, missing: number): DurabilityResult {
  return { kind: 'checked', acknowledged, missing, different: 0, unreadable: 0, method: 'read-back', restartMs: 1 };
}

function row(options: { peer: string; kind: WorkloadKind; sizeBytes: number; concurrency: number; ratios?: Partial<RatioSet>; p99Ms?: number; durability?: DurabilityResult | null; client?: 'sdk' | 'raw' }): RatedResult {
  const p99Ms = options.p99Ms ?? 1;
  return {
    peer: options.peer, workload: `${options.kind} ${options.sizeBytes} ×${options.concurrency}`, kind: options.kind, client: options.client ?? 'sdk',
    sizeBytes: options.sizeBytes, concurrency: options.concurrency, errors: 0, itemsPerSecond: null,
    throughput: { operations: 10, bytes: 0, seconds: 1, opsPerSecond: 10, mibPerSecond: 0, latency: { count: 10, minMs: 1, meanMs: 1, p50Ms: 1, p99Ms, p999Ms: p99Ms, maxMs: p99Ms } },
    server: { cpuSeconds: 0, cpuSecondsPerOperation: 0, peakRssBytes: 0 },
    durability: options.durability ?? null,
    ratios: { ...noRatios, ...options.ratios },
  };
}

describe('blob benchmark goals', () => {
  it('holds Put Blob 64 KiB ×16 to 4× Azurite and to 0 acknowledged writes lost', () => {
    const verdicts = evaluateGoals([
      row({ peer: 'kura-1disk', kind: 'put', sizeBytes: 65536, concurrency: 16, ratios: { kuraToAzurite: 5 }, durability: checked(100, 0) }),
      row({ peer: 'kura-3disk', kind: 'put', sizeBytes: 65536, concurrency: 16, ratios: { kuraToAzurite: 5 }, durability: checked(100, 1) }),
      row({ peer: 'azurite-disk', kind: 'put', sizeBytes: 65536, concurrency: 16, durability: checked(100, 100) }),
    ]);
    assert.deepEqual(verdicts.map((verdict) => [verdict.peer, verdict.met]), [['kura-1disk', true], ['kura-3disk', false]]);
    assert.match(goalRows(verdicts)[1]?.conditions ?? '', /1\/100 ✗/);
  });

  it('holds Get Blob 64 KiB ×16 to 80% of the null server and p99 ≤ 15 ms, per client', () => {
    const verdicts = evaluateGoals([
      row({ peer: 'kura-1disk', kind: 'get', sizeBytes: 65536, concurrency: 16, ratios: { toNullServer: 0.9 }, p99Ms: 20 }),
      row({ peer: 'kura-1disk', kind: 'get', sizeBytes: 65536, concurrency: 16, ratios: { toNullServer: 0.85 }, p99Ms: 10, client: 'raw' }),
    ]);
    assert.deepEqual(verdicts.map((verdict) => [verdict.client, verdict.met]), [['sdk', false], ['raw', true]]);
  });

  it('judges Put Blob 4 KiB ×64 on one disk only, and says when a figure is missing', () => {
    const verdicts = evaluateGoals([
      row({ peer: 'kura-1disk', kind: 'put', sizeBytes: 4096, concurrency: 64 }),
      row({ peer: 'kura-3disk', kind: 'put', sizeBytes: 4096, concurrency: 64, ratios: { kuraToAzurite: 9 } }),
    ]);
    assert.equal(verdicts.length, 1);
    assert.equal(verdicts[0]?.met, null);
    assert.equal(goalRows(verdicts)[0]?.met, '?');
  });

  it('holds the large upload to the fsync limit and the download to the null server', () => {
    const verdicts = evaluateGoals([
      row({ peer: 'kura-1disk', kind: 'big-upload', sizeBytes: 1 << 28, concurrency: 1, ratios: { toMachineLimit: 0.81 }, durability: checked(1, 0) }),
      row({ peer: 'kura-1disk', kind: 'big-download', sizeBytes: 1 << 28, concurrency: 1, ratios: { toNullServer: 0.5 } }),
    ]);
    assert.deepEqual(verdicts.map((verdict) => verdict.met), [true, false]);
  });

  it('holds the dev cluster Put to half the embedded default with 0 lost, and its Get to 1.5× with 2 front ends', () => {
    const verdicts = evaluateGoals([
      row({ peer: 'kura-cluster-1fe', kind: 'put', sizeBytes: 65536, concurrency: 16, ratios: { clusterToEmbedded: 0.6 }, durability: checked(50, 0) }),
      row({ peer: 'kura-cluster-2fe', kind: 'put', sizeBytes: 65536, concurrency: 16, ratios: { clusterToEmbedded: 0.4 }, durability: checked(50, 0) }),
      row({ peer: 'kura-cluster-1fe', kind: 'get', sizeBytes: 65536, concurrency: 16 }),
      row({ peer: 'kura-cluster-2fe', kind: 'get', sizeBytes: 65536, concurrency: 16, ratios: { toOneFrontend: 1.6 } }),
    ]);
    assert.deepEqual(verdicts.map((verdict) => [verdict.peer, verdict.measure, verdict.met]), [
      ['kura-cluster-1fe', 'ops/s ÷ kura-3disk', true],
      ['kura-cluster-2fe', 'ops/s ÷ kura-3disk', false],
      ['kura-cluster-2fe', 'ops/s ÷ kura-cluster-1fe', true],
    ]);
  });

  it('scores each goal for the null server too, and says when even it misses the target', () => {
    const rated = (peer: string, opsPerSecond: number, p99Ms: number, ratios: Partial<RatioSet> = {}): RatedResult => {
      const base = row({ peer, kind: 'put', sizeBytes: 65536, concurrency: 16, p99Ms, ratios });
      return { ...base, throughput: { ...base.throughput, opsPerSecond } };
    };
    const put = evaluateGoals([rated('kura-1disk', 400, 50, { kuraToAzurite: 400 / 370 }), rated('azurite-disk', 370, 80), rated('null-server', 1190, 40)]);
    assert.equal(put.length, 1);
    assert.ok(Math.abs((put[0]?.ceiling?.ratio ?? 0) - 1190 / 370) < 1e-9);
    assert.equal(put[0]?.reachable, false);
    assert.match(goalRows(put)[0]?.met ?? '', /out of reach here/);
    assert.equal(goalRows(put)[0]?.['null server (ceiling)'], '3.22');

    const get = (nullP99Ms: number) => evaluateGoals([
      { ...row({ peer: 'kura-1disk', kind: 'get', sizeBytes: 65536, concurrency: 16, ratios: { toNullServer: 0.6 }, p99Ms: 30 }) },
      row({ peer: 'null-server', kind: 'get', sizeBytes: 65536, concurrency: 16, p99Ms: nullP99Ms }),
    ])[0];
    assert.equal(get(40)?.reachable, false, "the null server's own p99 misses 15 ms");
    assert.equal(get(10)?.reachable, true);
    assert.equal(get(10)?.met, false);
    assert.equal(goalRows([get(10)!])[0]?.met, 'NOT met');
    assert.equal(goalRows([get(40)!])[0]?.['null server (ceiling)'], '1.00; p99 40.0 ms ≤ 15 ms ✗');

    const cluster = evaluateGoals([row({ peer: 'kura-cluster-1fe', kind: 'put', sizeBytes: 65536, concurrency: 16, ratios: { clusterToEmbedded: 0.6 } }), rated('null-server', 1190, 40)]);
    assert.equal(cluster[0]?.ceiling, null, 'a goal between Kura peers has no null-server ceiling');
  });

  it('totals acknowledged writes lost after kill -9 per durable peer', () => {
    const totals = lossTotals([
      row({ peer: 'azurite-disk', kind: 'put', sizeBytes: 4096, concurrency: 1, durability: checked(10, 10) }),
      row({ peer: 'azurite-disk', kind: 'mixed', sizeBytes: 4096, concurrency: 1, durability: checked(5, 0) }),
      row({ peer: 'kura-1disk', kind: 'put', sizeBytes: 4096, concurrency: 1, durability: checked(7, 0) }),
      row({ peer: 'null-server', kind: 'put', sizeBytes: 4096, concurrency: 1, durability: { kind: 'not-applicable', why: 'discards' } }),
    ]);
    assert.deepEqual(totals, [
      { peer: 'azurite-disk', acknowledged: 15, lost: 10, unreadable: 0, workloadsChecked: 2, workloadsWithLoss: 1 },
      { peer: 'kura-1disk', acknowledged: 7, lost: 0, unreadable: 0, workloadsChecked: 1, workloadsWithLoss: 0 },
    ]);
  });
});
