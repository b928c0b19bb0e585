// Partition metrics (docs/metrics.md, "Partition server", "Partition manager") on a simulated
// cluster (real stream layer, SimNetwork, virtual clock): after puts, gets and a size split, every
// series reads what the components report: requests by method and status (a refused condition
// counted with its code), partitions served, per-partition memtable bytes, log records and
// request rates, and the manager's splits by reason, assignments and leadership.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { PartitionManagerMetrics, PartitionServerMetrics } from '../../../src/observability/partition-metrics.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import { key, PartitionCluster, text } from '../../helpers/partition-cluster.ts';

async function value(registry: Registry, name: string, labels: Readonly<Record<string, string>> = {}): Promise<number> {
  const metric = await registry.getSingleMetric(name)?.get();
  const matching = metric?.values.filter((sample) => Object.entries(labels).every(([label, wanted]) => String(sample.labels[label]) === wanted)) ?? [];
  return matching.reduce((sum, sample) => sum + sample.value, 0);
}

describe('partition metrics', () => {
  const clusters: PartitionCluster[] = [];
  after(async () => {
    for (const cluster of clusters) await cluster.close();
  });

  it('server and manager series follow requests, partitions and a split', async (t) => {
    const cluster = await PartitionCluster.start({ seed: 61, servers: ['ps-a'], splitBytes: 4 * 1024 });
    clusters.push(cluster);
    const { stamp, client } = cluster;
    const serverRegistry = new Registry();
    const managerRegistry = new Registry();
    const serverMetrics = new PartitionServerMetrics({ registry: serverRegistry, server: cluster.server('ps-a') });
    new PartitionManagerMetrics({ registry: managerRegistry, manager: cluster.manager });
    await cluster.until(() => cluster.allServed());
    for (let i = 0; i < 60; i++) await stamp.drive(client.put(key(`row-${String(i).padStart(3, '0')}`), text('x'.repeat(100))));
    for (let i = 0; i < 20; i++) await stamp.drive(client.get(key(`row-${String(i).padStart(3, '0')}`)));
    await assert.rejects(stamp.drive(client.put(key('row-000'), text('y'), { ifMatch: '0xBAD' })), (error) => isStorageError(error, 'partition.condition_failed'));
    await cluster.until(async () => (await cluster.map()).partitions.length >= 2 && (await cluster.allServed()), 120_000);
    for (let i = 0; i < 10; i++) await stamp.drive(client.put(key(`row-${String(i * 6).padStart(3, '0')}`), text('after the split')));
    const served = cluster.server('ps-a').servingStats();
    const figures = {
      puts: await value(serverRegistry, 'kura_partition_requests_total', { method: 'partition.put', status: 'ok' }),
      gets: await value(serverRegistry, 'kura_partition_requests_total', { method: 'partition.get', status: 'ok' }),
      conditionFailed: await value(serverRegistry, 'kura_partition_requests_total', { status: 'partition.condition_failed' }),
      served: await value(serverRegistry, 'kura_partition_served'),
      memtableBytes: await value(serverRegistry, 'kura_partition_memtable_bytes'),
      logRecords: await value(serverRegistry, 'kura_partition_log_records'),
      loads: await value(serverRegistry, 'kura_partition_loads_total'),
      splits: await value(managerRegistry, 'kura_partition_splits_total', { reason: 'size' }),
      hotSplits: await value(managerRegistry, 'kura_partition_splits_total', { reason: 'load' }),
      assignments: await value(managerRegistry, 'kura_partition_assignments_total'),
      leading: await value(managerRegistry, 'kura_partition_manager_leading'),
      mapPartitions: await value(managerRegistry, 'kura_partition_map_partitions'),
    };
    t.diagnostic(JSON.stringify(figures));
    assert.equal(figures.puts, 70);
    assert.ok(figures.memtableBytes > 0 && figures.logRecords >= 10, 'writes after the split sit in memtables and the log');
    assert.equal(figures.gets, 20);
    assert.equal(figures.conditionFailed, 1);
    assert.equal(figures.served, served.length);
    assert.equal(figures.memtableBytes, served.reduce((sum, partition) => sum + partition.stats.memtableBytes, 0));
    assert.equal(figures.logRecords, served.reduce((sum, partition) => sum + partition.stats.lastSequence - partition.stats.coveredSequence, 0));
    assert.equal(figures.loads, cluster.server('ps-a').stats().loads);
    assert.equal(figures.splits, cluster.manager.stats().splits);
    assert.ok(figures.splits >= 1);
    assert.equal(figures.hotSplits, 0);
    assert.equal(figures.assignments, 1);
    assert.equal(figures.leading, 1);
    assert.equal(figures.mapPartitions, (await cluster.map()).partitions.length);
    serverMetrics.close();
  });
});
