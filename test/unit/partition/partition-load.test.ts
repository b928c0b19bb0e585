// Hot-range splits and load-balancing moves (docs/partition-protocol.md, "Load", "Moves") on a
// simulated stamp with the real stream layer:
// - pure decisions (planMaintenance): which partition moves where, and when nothing should move;
// - a cluster of two servers whose one partition gets skewed reads (80 % on the top eighth of its
//   rows) plus writes: the manager splits it for load at the hot range, not at the row median, and
//   moves one child to the idle server; writes go on through the move: 0 lost, 0 acknowledged by a
//   partition after the map moved it, moves within the rate bound.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { planMaintenance } from '../../../src/partition/partition-balance.ts';
import type { MaintenancePolicy, Reported } from '../../../src/partition/partition-balance.ts';
import type { LiveServer, PartitionEntry, PartitionMap } from '../../../src/partition/partition-map.ts';
import { keyFromHex } from '../../../src/partition/partition-map.ts';
import { key, MapWatch, PartitionCluster, text } from '../../helpers/partition-cluster.ts';

const policy: MaintenancePolicy = {
  splitBytes: 1 << 30, mergeBytes: 0, coldRequestsPerSecond: 1, mergeServedMsMin: 0, hotRequestsPerSecond: 1_000, loadWindowMs: 1_000,
  balanceRatio: 1.5, balanceRequestsPerSecondMin: 50, inheritedDataMax: 64,
};

function server(serverId: string): LiveServer {
  return { record: { serverId, address: `${serverId}:1`, lease: 7 }, modRevision: 1 };
}

function entry(partitionId: number, low: string, high: string | null, owner: string): PartitionEntry {
  return { partitionId, low, high, streams: { meta: 1, log: 2, checkpoint: 3, data: 4 }, inheritedData: [], ownerEpoch: 1, owner: { serverId: owner, lease: 7 } };
}

function plan(map: PartitionMap, rates: readonly number[], servers: readonly string[]): ReturnType<typeof planMaintenance> {
  const live = new Map(servers.map((serverId) => [serverId, server(serverId)]));
  const reports = new Map<number, Reported>();
  for (const [index, partition] of map.partitions.entries()) {
    const owner = live.get(partition.owner?.serverId ?? '');
    if (owner === undefined) continue;
    reports.set(partition.partitionId, {
      entry: partition, server: owner,
      status: { partitionId: partition.partitionId, ownerEpoch: 1, state: 'serving', approximateBytes: 1000, lastSequence: 5, requestsPerSecond: rates[index] ?? 0, servedMs: 5_000, inheritedFree: false },
    });
  }
  return planMaintenance({ map, servers: live, reports, answered: new Set(servers), policy, splitRefused: new Set(), moveAllowed: true });
}

describe('load: hot-range splits and balancing moves', () => {
  const clusters: PartitionCluster[] = [];
  after(async () => {
    for (const cluster of clusters) await cluster.close();
  });

  it('decisions: split the hot partition only with somewhere to move it; move what narrows the gap; leave cold and balanced servers alone', () => {
    const one: PartitionMap = { version: 1, managerEpoch: 1, nextPartitionId: 1, partitions: [entry(0, '', null, 'a')] };
    assert.equal(plan(one, [5_000], ['a']), null, 'one server: a split for load gains nothing');
    assert.deepEqual(plan(one, [5_000], ['a', 'b'])?.kind, 'split');
    const two: PartitionMap = { version: 1, managerEpoch: 1, nextPartitionId: 3, partitions: [entry(1, '', '80', 'a'), entry(2, '80', null, 'a')] };
    const move = plan(two, [600, 300], ['a', 'b']);
    assert.ok(move?.kind === 'move' && move.entry.partitionId === 2 && move.to.record.serverId === 'b', 'of 600/300 (gap 900) either move leaves a gap of 300: the less busy one moves');
    assert.equal(plan(two, [0.5, 0.2], ['a', 'b']), null, 'cold partitions do not move: nothing to balance');
    const spread: PartitionMap = { ...two, partitions: [entry(1, '', '80', 'a'), entry(2, '80', null, 'b')] };
    assert.equal(plan(spread, [400, 380], ['a', 'b']), null, 'balanced');
    assert.equal(plan(two, [900, 0.5], ['a', 'b']), null, 'moving the only warm partition would just move the hotspot (900 is not below the gap)');
    const three: PartitionMap = { ...two, partitions: [entry(1, '', '40', 'a'), entry(2, '40', '80', 'a'), entry(3, '80', null, 'a')] };
    const best = plan(three, [500, 350, 100], ['a', 'b']);
    assert.ok(best?.kind === 'move' && best.entry.partitionId === 1, 'of 500/350/100 (gap 950), moving 500 leaves the smallest gap (50; 350 would leave 250)');
  });

  it('a partition hot at one end is split at the hot range and one child moves to the idle server; writes go on: 0 lost', async () => {
    const cluster = await PartitionCluster.start({
      seed: 41, servers: ['ps-a'], loadWindowMs: 1_000, moveIntervalMs: 2_000,
      policy: { hotRequestsPerSecond: 250, loadWindowMs: 1_000, balanceRequestsPerSecondMin: 50, mergeBytes: 0 },
    });
    clusters.push(cluster);
    const { stamp, client } = cluster;
    await cluster.until(() => cluster.allServed());
    const names = Array.from({ length: 64 }, (_, i) => `row-${String(i).padStart(3, '0')}`);
    for (const name of names) await stamp.drive(client.put(key(name), text(name)));
    await cluster.addServer('ps-b');
    let stop = false;
    let reads = 0;
    const acknowledged = new Map<string, string>();
    const reader = async (readerId: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        // 4 of 5 reads hit the top eighth of the rows (row-056..063).
        const index = i % 5 === 4 ? (i * 7 + readerId) % 56 : 56 + ((i + readerId) % 8);
        await client.get(key(names[index] ?? 'row-000'));
        reads += 1;
        await stamp.clock.sleep(10);
      }
    };
    const writer = async (): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const name = names[(i * 13) % names.length] ?? 'row-000';
        const value = `${name}#${i}`;
        await client.put(key(name), text(value));
        acknowledged.set(name, value);
        await stamp.clock.sleep(20);
      }
    };
    const load = [0, 1, 2, 3].map((readerId) => reader(readerId)).concat(writer());
    const startMs = stamp.clock.monotonicMs();
    const watch = new MapWatch(cluster);
    const spreadMs = await cluster.until(async () => {
      await watch.observe();
      const map = await cluster.map();
      return new Set(map.partitions.map((partition) => partition.owner?.serverId)).size === 2 && (await cluster.allServed());
    }, 60_000);
    for (let i = 0; i < 3_000; i++) {
      await watch.observe();
      await stamp.step(1);
    }
    stop = true;
    await stamp.drive(Promise.all(load));
    const map = await cluster.map();
    const splitKeys = map.partitions.slice(1).map((partition) => keyFromHex(partition.low).toString());
    let lost = 0;
    for (const [name, value] of acknowledged) {
      const column = (await stamp.drive(client.get(key(name))))?.columns[0]?.value;
      if (column?.kind !== 'string' || column.value !== value) lost += 1;
    }
    const late = watch.lateAcknowledgements();
    const stats = cluster.manager.stats();
    const elapsedMs = stamp.clock.monotonicMs() - startMs;
    console.log(
      `${reads} reads (80 % on row-056..063) + ${acknowledged.size} keys written: ${stats.hotSplits} hot splits at ${splitKeys.join(', ')} (row median: row-032), ` +
      `${stats.moves} moves in ${elapsedMs} virtual ms (bound: 1 per 2000 ms); both servers serving ${spreadMs} virtual ms after the load began; ` +
      `owners ${map.partitions.map((partition) => `${partition.partitionId}:${partition.owner?.serverId}`).join(' ')}; ${lost} lost, ${late} acknowledged by a partition after the map retired it`,
    );
    assert.ok(stats.hotSplits >= 1);
    assert.ok(splitKeys.some((splitKey) => splitKey >= 'row-048'), 'the hot split cut near the hot range, not at the row median');
    assert.ok(stats.moves >= 1 && stats.moves <= 1 + Math.floor(elapsedMs / 2_000));
    assert.equal(lost, 0);
    assert.equal(late, 0);
  });
});
