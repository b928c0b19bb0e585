// Releasing a split parent's data stream (docs/partition-gc.md, "Children of a split"; the
// manager's forgetData / releaseData, docs/partition-protocol.md) on a simulated stamp with the
// real stream layer and data GC on: blobs (≥ 256 KiB appends, so their bytes bypass the extent
// nodes' journals and disk use follows extents) are written to one partition, which then splits.
// The children copy their refs out of the parent's data stream into their own (GC passes), prove
// they no longer need it (fenced), and the manager drops the parent stream's extents. Figures:
// disk ÷ (live × 3) before the split, after the children copied forward, after the release;
// every blob reads back byte-exact at the end.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DataRef } from '../../../src/wire/partition-row.ts';
import { key, PartitionCluster } from '../../helpers/partition-cluster.ts';

const chunkBytes = 300 * 1024;

function payload(name: string, chunk: number): Buffer {
  const bytes = Buffer.alloc(chunkBytes);
  for (let offset = 0; offset < bytes.length; offset += 64) bytes.write(`${name}/${chunk}/${offset};`.padEnd(64, '.'), offset, 'latin1');
  return bytes;
}

describe('releasing inherited data streams', () => {
  const clusters: PartitionCluster[] = [];
  after(async () => {
    for (const cluster of clusters) await cluster.close();
  });

  it('after a split the children stop needing the parent’s data stream, and its extents are dropped: disk returns to live × 3', async () => {
    const cluster = await PartitionCluster.start({
      seed: 51, servers: ['ps-a'], splitBytes: Number.MAX_SAFE_INTEGER,
      serverSettings: { dataGc: true, partitionLimits: { dataGcGraceMs: 0, dataGcIntervalMs: 500, maintenanceTickMs: 100, dataGcTailSealBytes: 256 * 1024 } },
    });
    clusters.push(cluster);
    const { stamp, client } = cluster;
    await cluster.until(() => cluster.allServed());
    const names = Array.from({ length: 12 }, (_, i) => `blob-${String(i).padStart(2, '0')}`);
    for (const name of names) {
      const refs: DataRef[] = [];
      for (let chunk = 0; chunk < 3; chunk++) refs.push(await stamp.drive(client.appendData(key(name), payload(name, chunk))));
      await stamp.drive(client.put(key(name), [{ name: 'data', value: { kind: 'dataRefs', value: refs } }, { name: 'pad', value: { kind: 'string', value: 'p'.repeat(600) } }]));
    }
    const liveBytes = names.length * 3 * chunkBytes;
    const parent = (await cluster.map()).partitions[0];
    assert.ok(parent !== undefined);
    const ratio = async (): Promise<number> => (await stamp.diskBytesUsed()) / (liveBytes * 3);
    const beforeSplit = await ratio();
    await cluster.replaceManager({ splitBytes: 4 * 1024 });
    await cluster.until(async () => (await cluster.map()).partitions.length >= 2 && (await cluster.allServed()), 60_000);
    await cluster.replaceManager({ splitBytes: Number.MAX_SAFE_INTEGER });
    const children = (await cluster.map()).partitions.length;
    let copiedPeak = 0;
    const releaseMs = await cluster.until(async () => {
      copiedPeak = Math.max(copiedPeak, await ratio());
      const map = await cluster.map();
      return cluster.manager.stats().dataStreamsReleased >= 1 && map.partitions.every((entry) => entry.inheritedData.length === 0) && (map.releasingData ?? []).length === 0;
    }, 120_000);
    await stamp.step(2_000); // extent.remove reaches every replica
    const afterRelease = await ratio();
    const parentExtents = (await stamp.drive(stamp.manager.getStream(parent.streams.data))).extents;
    let wrong = 0;
    for (const name of names) {
      const row = await stamp.drive(client.get(key(name)));
      const refs = row?.columns.find((column) => column.name === 'data')?.value;
      if (refs?.kind !== 'dataRefs') {
        wrong += 1;
        continue;
      }
      for (const [chunk, ref] of refs.value.entries()) if (!(await stamp.drive(client.readData(key(name), ref))).equals(payload(name, chunk))) wrong += 1;
    }
    const stats = cluster.manager.stats();
    console.log(
      `${names.length} blobs, ${(liveBytes / 2 ** 20).toFixed(1)} MiB live; split into ${children}; disk ÷ (live × 3): ${beforeSplit.toFixed(2)} before the split, ` +
      `${copiedPeak.toFixed(2)} at the peak (children copied forward), ${afterRelease.toFixed(2)} after the release ${releaseMs} virtual ms later; ` +
      `${stats.dataStreamsReleased} streams released, ${stats.dataExtentsReleased} extents dropped; parent data stream now ${parentExtents.length} extent(s); ${wrong} chunks wrong`,
    );
    assert.equal(wrong, 0);
    assert.ok(stats.dataExtentsReleased >= 1);
    assert.ok(copiedPeak > 1.6, 'the children copied the parent’s data forward (two copies on disk for a while)');
    assert.ok(afterRelease < 1.3, 'the parent stream’s extents are gone from the disks');
  });
});
