// ControllerMetrics follows the controller's terms: the partition manager gauges read the current
// term's manager (0 while standing by) and its counters add every term's counts, never going back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { ControllerMetrics, type ControllerSource } from '../../../src/observability/controller-metrics.ts';
import type { PartitionManagerSource } from '../../../src/observability/partition-metrics.ts';

function manager(epoch: number, counts: { ticks: number; merges: number; mapPartitions: number }): PartitionManagerSource & { counts: typeof counts } {
  return {
    counts,
    leading: true,
    epoch,
    stats() {
      return { ticks: counts.ticks, assignments: 0, splits: 0, hotSplits: 0, merges: counts.merges, moves: 0, reEpochs: 0, dataStreamsReleased: 0, tickFailures: 0, mapPartitions: counts.mapPartitions, mapVersion: 1 };
    },
  };
}

async function value(registry: Registry, name: string): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((entry) => entry.name === name);
  return (metric?.values ?? []).reduce((sum, sample) => sum + sample.value, 0);
}

test('a controller\'s partition manager metrics follow its terms: gauges 0 while standing by, counters summed over terms', async (t) => {
  let current: PartitionManagerSource | null = null;
  const controller: ControllerSource = {
    role: () => (current === null ? { kind: 'standby' } : { kind: 'leading', term: 7 }),
    terms: 0,
    currentStreamManager: () => null,
    currentPartitionManager: () => current,
  };
  const registry = new Registry();
  const metrics = new ControllerMetrics({ registry, controller: () => controller });
  assert.equal(await value(registry, 'kura_partition_manager_leading'), 0, 'standby: not leading');
  const first = manager(3, { ticks: 5, merges: 1, mapPartitions: 4 });
  current = first;
  assert.equal(await value(registry, 'kura_partition_manager_leading'), 1);
  assert.equal(await value(registry, 'kura_partition_map_partitions'), 4);
  first.counts.ticks = 9; // ticks after the last scrape, then the term ends
  current = null;
  assert.equal(await value(registry, 'kura_partition_manager_ticks_total'), 9, 'the ended term\'s final count is kept');
  assert.equal(await value(registry, 'kura_partition_map_partitions'), 0, 'standby: no map read');
  current = manager(4, { ticks: 2, merges: 1, mapPartitions: 5 });
  assert.equal(await value(registry, 'kura_partition_manager_ticks_total'), 11, 'a new term adds to the count');
  assert.equal(await value(registry, 'kura_partition_merges_total'), 2);
  assert.equal(await value(registry, 'kura_partition_manager_epoch'), 4);
  metrics.close();
  t.diagnostic('two terms: ticks 9 + 2 = 11, merges 1 + 1 = 2, gauges 0 while standing by');
});
