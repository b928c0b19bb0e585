// The partition manager's maintenance pace (maintenanceIntervalMs, set by the cluster controller to
// partitionMaintenanceIntervalMs): ticks keep assigning at the tick's pace, but the round of
// server.status calls and the split/merge/move planning runs at most every maintenanceIntervalMs
// while nothing needs doing, and at the next tick again after a pass that acted. On a simulated
// stamp (real stream layer, virtual time): idle ticks vs maintenance passes, then a partition
// written past splitBytes still splits, and a dead server's partition is still reassigned at the
// tick's pace. Figures: passes per tick idle, virtual ms to the split and to the reassignment.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { clusterLeaseTtlMs, key, PartitionCluster, text } from '../../helpers/partition-cluster.ts';

const tickMs = 100;
const maintenanceIntervalMs = 1_000;
const idleMs = 10_000;

describe('partition manager: maintenance at most every maintenanceIntervalMs while idle', () => {
  const clusters: PartitionCluster[] = [];
  after(async () => {
    for (const cluster of clusters) await cluster.close();
  });

  it('idle: one status round per interval, not per tick; a split and a failover still happen', async (t) => {
    const cluster = await PartitionCluster.start({ seed: 12, servers: ['ps-a', 'ps-b'], splitBytes: 8 * 1024, maintenanceIntervalMs, policy: { mergeBytes: 0 } });
    clusters.push(cluster);
    const { stamp, client, manager } = cluster;
    await cluster.until(() => cluster.allServed());
    const before = manager.stats();
    await stamp.step(idleMs);
    const idle = { ticks: manager.stats().ticks - before.ticks, passes: manager.stats().maintenancePasses - before.maintenancePasses };
    t.diagnostic(`idle ${idleMs / 1000} s (virtual), tick ${tickMs} ms, maintenance interval ${maintenanceIntervalMs} ms: ${idle.ticks} ticks, ${idle.passes} maintenance passes (status rounds)`);
    assert.ok(idle.ticks >= idleMs / tickMs / 2, `the tick keeps its pace: ${idle.ticks}`);
    assert.ok(idle.passes <= idleMs / maintenanceIntervalMs + 1, `at most one status round per interval: ${idle.passes}`);

    const rows = Array.from({ length: 48 }, (_, index) => `row-${String(index).padStart(3, '0')}`);
    for (const row of rows) await stamp.drive(client.put(key(row), text(`${row} ${'x'.repeat(400)}`)));
    const splitMs = await cluster.until(() => manager.stats().splits > 0, 30_000);
    t.diagnostic(`${rows.length} rows of ~420 bytes (splitBytes 8 KiB): split ${splitMs} ms (virtual) after the last write`);

    // ps-a dies: its lease lapses, its key goes, and the next tick gives its partitions to ps-b.
    const orphaned = (await cluster.map()).partitions.filter((entry) => entry.owner?.serverId === 'ps-a').length;
    await stamp.drive(cluster.server('ps-a').crash());
    const failoverMs = await cluster.until(async () => (await cluster.map()).partitions.every((entry) => entry.owner?.serverId === 'ps-b') && cluster.allServed(), 30_000);
    t.diagnostic(`ps-a killed (lease TTL ${clusterLeaseTtlMs} ms): its ${orphaned} partition(s) served by ps-b ${failoverMs} ms (virtual) later`);
    assert.ok(failoverMs <= clusterLeaseTtlMs + maintenanceIntervalMs, `failover waits for the lease and a tick, not for maintenance: ${failoverMs} ms`);
  });
});
