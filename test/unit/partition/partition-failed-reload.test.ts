// A partition that fails with no request waiting (docs/partition-protocol.md, "Fault model"): a log
// append of unknown outcome by a commit the server did not send (a data GC rewrite, here a put on
// the Partition object itself, the same single-writer path) leaves the Partition failed. The server
// must notice on its own and reload it, so reads are served again. Before the fix only a write's
// partition.unavailable answer marked the held partition failed: a partition that got only reads
// afterwards answered partition.unavailable forever (simulator seed 205474164786: the final checks'
// reads of one partition never succeeded, 3,900 s of virtual time).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isStorageError } from '../../../src/util/errors.ts';
import { key, PartitionCluster, text, valueOf } from '../../helpers/partition-cluster.ts';

describe('PartitionServer: a partition failed by a commit no request waited for', () => {
  const clusters: PartitionCluster[] = [];
  after(async () => {
    for (const cluster of clusters) await cluster.close();
  });

  it('is reloaded by the server; reads alone get every acknowledged row back', async (t) => {
    const cluster = await PartitionCluster.start({ seed: 31, servers: ['ps-a'] });
    clusters.push(cluster);
    await cluster.until(() => cluster.allServed());
    const { stamp, client } = cluster;
    const server = cluster.server('ps-a');
    for (let i = 0; i < 20; i++) await stamp.drive(client.put(key(`k/${i}`), text(`v${i}`)));
    const partitionId = server.servingPartitions()[0];
    assert.ok(partitionId !== undefined);
    const failing = server.servedPartition(partitionId);
    assert.ok(failing !== null);
    const loadsBefore = server.stats().loads;

    // The server's host is cut off from the stream layer: the commit's log append fails.
    const streamHosts = ['sm:1', 'en0:1', 'en1:1', 'en2:1'];
    stamp.network.partition(['ps-a:1'], streamHosts);
    await assert.rejects(stamp.drive(failing.put(key('k/internal'), text('unknown outcome'))), (error) => isStorageError(error, 'partition.unavailable'));
    assert.ok(failing.failure !== null, 'the Partition is failed');
    stamp.network.heal();

    // Only reads from now on: each must come back (the client retries not_owner and unavailable reads).
    const waitedMs = await cluster.until(() => {
      const served = server.servedPartition(partitionId);
      return served !== null && served !== failing && served.failure === null;
    });
    for (let i = 0; i < 20; i++) assert.equal(valueOf(await stamp.drive(client.get(key(`k/${i}`)))), `v${i}`);
    const internal = valueOf(await stamp.drive(client.get(key('k/internal'))));
    assert.ok(internal === null || internal === 'unknown outcome', 'the unknown append is decided by the reload: applied or not');
    assert.equal(server.stats().loads, loadsBefore + 1, 'reloaded once');
    t.diagnostic(`failed partition ${partitionId} reloaded ${waitedMs} virtual ms after the network healed; 20 of 20 acknowledged rows read back; the unknown append ${internal === null ? 'was not' : 'was'} applied; loads ${loadsBefore} -> ${server.stats().loads}`);
  });
});
