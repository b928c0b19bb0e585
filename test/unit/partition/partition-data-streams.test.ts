// The writer's stream check (Partition.checkDataStreams; docs/partition-gc.md, "References"): a
// committed row may name data extents of its partition's own data stream or of one it inherits,
// nothing else. On a simulated stamp with the real stream layer, one partition server, a partition
// of 12 rows with data refs is split in two. Then, on the same server (one StreamClient, whose
// cache knows every extent either child appended to, so a read through it would succeed):
// - the right child commits a row naming a ref into the parent's data stream: accepted (inherited);
// - the left child appends data to its own stream and the right child is given that ref: refused
//   (extent.not_found naming the right child, the extent and the left child's stream), nothing
//   written, counted in commitsRefusedForeignData; a row with its own ref is accepted next;
// - the left child commits its own ref: accepted.
// Figures: the counters, the virtual time of the split.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isStorageError } from '../../../src/util/errors.ts';
import type { Column, DataRef } from '../../../src/wire/partition-row.ts';
import { routeKey } from '../../../src/partition/partition-map.ts';
import { key, PartitionCluster } from '../../helpers/partition-cluster.ts';

const row = (ref: DataRef): Column[] => [{ name: 'data', value: { kind: 'dataRefs', value: [ref] } }, { name: 'pad', value: { kind: 'string', value: 'p'.repeat(600) } }];

describe('partition commit: data refs stay in the partition’s data streams', () => {
  const clusters: PartitionCluster[] = [];
  after(async () => {
    for (const cluster of clusters) await cluster.close();
  });

  it('refuses a ref into another partition’s data stream, accepts own and inherited ones', async (t) => {
    const cluster = await PartitionCluster.start({ seed: 77, servers: ['ps-a'], splitBytes: Number.MAX_SAFE_INTEGER });
    clusters.push(cluster);
    const { stamp, client } = cluster;
    await cluster.until(() => cluster.allServed());
    const names = Array.from({ length: 12 }, (_, i) => `row-${String(i).padStart(2, '0')}`);
    const parentRefs = new Map<string, DataRef>();
    for (const name of names) {
      const ref = await stamp.drive(client.appendData(key(name), Buffer.from(`bytes of ${name}`)));
      parentRefs.set(name, ref);
      await stamp.drive(client.put(key(name), row(ref)));
    }
    const parent = (await cluster.map()).partitions[0];
    assert.ok(parent !== undefined);
    await cluster.replaceManager({ splitBytes: 4 * 1024 });
    const splitMs = await cluster.until(async () => (await cluster.map()).partitions.length >= 2 && (await cluster.allServed()), 60_000);
    await cluster.replaceManager({ splitBytes: Number.MAX_SAFE_INTEGER });
    const map = await cluster.map();
    const left = routeKey(map, key('row-00'));
    const right = routeKey(map, key('row-11'));
    assert.notEqual(left.partitionId, right.partitionId, 'the split put the first and last rows apart');
    assert.ok(right.inheritedData.includes(parent.streams.data), 'the right child inherits the parent’s data stream');
    t.diagnostic(`split after ${splitMs} virtual ms: partition ${parent.partitionId} → ${left.partitionId} (data stream ${left.streams.data}) and ${right.partitionId} (data stream ${right.streams.data}, inherits ${right.inheritedData.join(', ')})`);

    // Inherited: a ref the parent appended, committed in the right child.
    const inherited = parentRefs.get('row-00');
    assert.ok(inherited !== undefined);
    await stamp.drive(client.put(key('row-11-copy'), row(inherited)));

    // Foreign: the left child's own data, named by a row of the right child.
    const leftRef = await stamp.drive(client.appendData(key('row-00'), Buffer.from('left child bytes')));
    const server = cluster.server('ps-a');
    const rightPartition = server.servedPartition(right.partitionId);
    assert.ok(rightPartition !== null);
    const before = rightPartition.stats();
    const refused = await stamp.drive(client.put(key('row-11-foreign'), row(leftRef))).then(() => null, (error: unknown) => error);
    assert.ok(isStorageError(refused, 'extent.not_found'), `refused with extent.not_found: ${String(refused)}`);
    t.diagnostic(`refused: ${refused.message}`);
    assert.match(refused.message, new RegExp(`partition ${right.partitionId}\\b`));
    assert.match(refused.message, new RegExp(`data extent ${leftRef.extentId} of stream ${left.streams.data}\\b`));
    assert.match(refused.message, new RegExp(`own ${right.streams.data}; inherited ${right.inheritedData.join(', ')}`));
    const after = rightPartition.stats();
    assert.equal(after.commitsRefusedForeignData, before.commitsRefusedForeignData + 1);
    assert.equal(after.lastSequence, before.lastSequence, 'nothing was written');
    assert.equal(await stamp.drive(client.get(key('row-11-foreign'))), null);

    // The right child goes on: its own data commits; so does the left child's own ref in the left child.
    const rightRef = await stamp.drive(client.appendData(key('row-11'), Buffer.from('right child bytes')));
    await stamp.drive(client.put(key('row-11-own'), row(rightRef)));
    await stamp.drive(client.put(key('row-00-own'), row(leftRef)));
    assert.equal((await stamp.drive(client.readData(key('row-00-own'), leftRef))).toString(), 'left child bytes');
    const leftPartition = server.servedPartition(left.partitionId);
    t.diagnostic(`right child: ${rightPartition.stats().batchesCommitted} batches committed, ${rightPartition.stats().commitsRefusedForeignData} refused for a foreign ref; left child: ${leftPartition?.stats().commitsRefusedForeignData ?? '?'} refused`);
    assert.equal(leftPartition?.stats().commitsRefusedForeignData, 0);
  });
});
