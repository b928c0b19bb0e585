// Ratio math of the blob benchmark: peer ÷ null server, peer ÷ machine limit, Kura ÷ Azurite,
// and the durability label, over hand-made results.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ThroughputResult } from '../../../bench/lib/stats.ts';
import type { MachineLimits } from '../../../bench/blob/limits.ts';
import { computeRatios, lostLabel, primaryRate, ratio } from '../../../bench/blob/ratios.ts';
import type { DurabilityResult, WorkloadKind, WorkloadResult } from '../../../bench/blob/results.ts';

function throughput(opsPerSecond: number, mibPerSecond = 0): ThroughputResult {
  return { operations: 100, bytes: 0, seconds: 1, opsPerSecond, mibPerSecond, latency: { count: 100, minMs: 1, meanMs: 1, p50Ms: 1, p99Ms: 1, p999Ms: 1, maxMs: 1 } };
}

function result(options: { peer: string; workload: string; kind: WorkloadKind; ops: number; mib?: number; sizeBytes?: number; durability?: DurabilityResult | null; items?: number }): WorkloadResult {
  return {
    peer: options.peer, workload: options.workload, kind: options.kind, client: 'sdk', sizeBytes: options.sizeBytes ?? 4096, concurrency: 1,
    throughput: throughput(options.ops, options.mib ?? 0), errors: 0, itemsPerSecond: options.items ?? null,
    server: { cpuSeconds: 1, cpuSecondsPerOperation: 0.01, peakRssBytes: 1 << 20 }, durability: options.durability ?? null,
  };
}

const limits: MachineLimits = {
  fsyncAppend: [{ sizeBytes: 4096, result: throughput(1000) }, { sizeBytes: 8 << 20, result: throughput(50, 400) }],
  sequentialRead: [{ sizeBytes: 4096, result: throughput(40_000) }, { sizeBytes: 8 << 20, result: throughput(300, 2400) }],
};

describe('blob benchmark ratios', () => {
  it('divides only finite numbers by a positive divisor', () => {
    assert.equal(ratio(10, 4), 2.5);
    assert.equal(ratio(10, 0), null);
    assert.equal(ratio(10, -1), null);
    assert.equal(ratio(null, 4), null);
    assert.equal(ratio(10, null), null);
    assert.equal(ratio(Number.NaN, 4), null);
    assert.equal(ratio(10, Number.POSITIVE_INFINITY), null);
  });

  it('judges large blobs by MiB/s, listings by blobs/s, the rest by ops/s', () => {
    assert.equal(primaryRate(result({ peer: 'p', workload: 'w', kind: 'big-upload', ops: 0.1, mib: 30 })), 30);
    assert.equal(primaryRate(result({ peer: 'p', workload: 'w', kind: 'list', ops: 1, items: 5000 })), 5000);
    assert.equal(primaryRate(result({ peer: 'p', workload: 'w', kind: 'put', ops: 123 })), 123);
  });

  it('compares Kura with Azurite on disk, the null server and the fsync limit of the same size', () => {
    const all = [
      result({ peer: 'kura-1disk', workload: 'put 4 KiB ×16', kind: 'put', ops: 800 }),
      result({ peer: 'azurite-disk', workload: 'put 4 KiB ×16', kind: 'put', ops: 200 }),
      result({ peer: 'null-server', workload: 'put 4 KiB ×16', kind: 'put', ops: 1600 }),
      result({ peer: 'azurite-disk', workload: 'put 4 KiB ×1', kind: 'put', ops: 1 }),
    ];
    const [kura, azurite, nullServer] = all.map((row) => computeRatios(row, all, limits, 8 << 20));
    assert.deepEqual(kura, { toNullServer: 0.5, toMachineLimit: 0.8, machineLimit: 'fsync-append', kuraToAzurite: 4, clusterToEmbedded: null, toOneFrontend: null });
    assert.deepEqual(azurite, { toNullServer: 0.125, toMachineLimit: 0.2, machineLimit: 'fsync-append', kuraToAzurite: null, clusterToEmbedded: null, toOneFrontend: null });
    assert.deepEqual(nullServer, { toNullServer: null, toMachineLimit: 1.6, machineLimit: 'fsync-append', kuraToAzurite: null, clusterToEmbedded: null, toOneFrontend: null });
  });

  it('compares a dev cluster with the embedded default (3 disks) and with the 1-front-end cluster', () => {
    const all = [
      result({ peer: 'kura-3disk', workload: 'put 64 KiB ×16', kind: 'put', ops: 400 }),
      result({ peer: 'kura-cluster-1fe', workload: 'put 64 KiB ×16', kind: 'put', ops: 200 }),
      result({ peer: 'kura-cluster-2fe', workload: 'put 64 KiB ×16', kind: 'put', ops: 300 }),
    ];
    const [embedded, one, two] = all.map((row) => computeRatios(row, all, limits, 8 << 20));
    assert.equal(embedded?.clusterToEmbedded, null);
    assert.equal(one?.clusterToEmbedded, 0.5);
    assert.equal(one?.toOneFrontend, null);
    assert.equal(two?.clusterToEmbedded, 0.75);
    assert.equal(two?.toOneFrontend, 1.5);
  });

  it('compares large downloads with the sequential read of one block, and leaves listings without a limit', () => {
    const download = result({ peer: 'azurite-disk', workload: 'download', kind: 'big-download', ops: 0.2, mib: 600 });
    assert.deepEqual(computeRatios(download, [download], limits, 8 << 20), { toNullServer: null, toMachineLimit: 0.25, machineLimit: 'sequential-read', kuraToAzurite: null, clusterToEmbedded: null, toOneFrontend: null });
    const list = result({ peer: 'azurite-disk', workload: 'list', kind: 'list', ops: 1, items: 3000 });
    assert.equal(computeRatios(list, [list], limits, 8 << 20).toMachineLimit, null);
  });

  it('labels durability as lost/acknowledged, n/a, or empty for reads', () => {
    const checked = (missing: number, different: number, unreadable: number): DurabilityResult => ({ kind: 'checked', acknowledged: 100, missing, different, unreadable, method: 'read-back', restartMs: 5 });
    assert.equal(lostLabel(result({ peer: 'p', workload: 'w', kind: 'put', ops: 1, durability: checked(3, 2, 0) })), '5/100');
    assert.equal(lostLabel(result({ peer: 'p', workload: 'w', kind: 'put', ops: 1, durability: checked(0, 0, 4) })), '0/100 (4 unreadable)');
    assert.equal(lostLabel(result({ peer: 'p', workload: 'w', kind: 'put', ops: 1, durability: { kind: 'not-applicable', why: 'memory' } })), 'n/a');
    assert.equal(lostLabel(result({ peer: 'p', workload: 'w', kind: 'get', ops: 1 })), '');
  });
});
