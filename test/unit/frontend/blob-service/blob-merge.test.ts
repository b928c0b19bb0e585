// The blob tables through merges (docs/partition-protocol.md, "Merges"): a real stamp whose
// manager splits partitions past 24 KiB and merges neighbours two seconds after they were created
// (every partition counts as cold), so pieces split and merge back again and again while the
// official SDK keeps working on the blobs: staged blocks and block lists, snapshots, append
// blobs, downloads and paged listings. Every blob reads back byte-exact, every listing is exact,
// no SDK call fails (the SDK does not retry here: retries are off).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { readMap } from '../../../../src/partition/partition-map.ts';
import { BlobStamp } from './blob-stamp.ts';

let stamp: BlobStamp;
before(async () => {
  stamp = await BlobStamp.start({ splitBytes: 24 * 1024, managerPolicy: { mergeBytes: 1 << 20, coldRequestsPerSecond: 1e9, mergeServedMsMin: 2_000 } });
});
after(async () => { await stamp.stop(); });

test('blob operations keep working while the blob table splits and merges back', async (t) => {
  const container = stamp.client.getContainerClient('merges');
  await container.create();
  const content = new Map<string, Buffer>();
  const listingsChecked = { count: 0, spanningMapChanges: 0 };
  const checkListing = async (): Promise<void> => {
    const before = (await readMap(stamp.metaStore))?.map.version;
    const names: string[] = [];
    // Pages of 5, 100 ms apart: a listing is often in progress while a piece splits or merges.
    for await (const page of container.listBlobsFlat().byPage({ maxPageSize: 5 })) {
      for (const item of page.segment.blobItems) names.push(item.name);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual(names, [...content.keys()].sort(), 'a paged listing names every blob once');
    listingsChecked.count += 1;
    if ((await readMap(stamp.metaStore))?.map.version !== before) listingsChecked.spanningMapChanges += 1;
  };
  let round = 0;
  for (; round < 400 && (stamp.manager.stats().merges < 3 || stamp.manager.stats().splits < 2 || round < 24); round++) {
    const name = `blob-${String(round % 40).padStart(2, '0')}`;
    const blob = container.getBlockBlobClient(name);
    const ids = [0, 1].map((i) => Buffer.from(`${name}-r${round}-block-${i}-`.padEnd(48, 'x')).toString('base64'));
    for (const id of ids) await blob.stageBlock(id, Buffer.from(`${id}|`), id.length + 1);
    await blob.commitBlockList(ids, { metadata: { note: 'x'.repeat(300) } });
    content.set(name, Buffer.concat(ids.map((id) => Buffer.from(`${id}|`))));
    if (round % 3 === 0) await blob.createSnapshot();
    const other = `blob-${String((round * 7) % Math.min(40, round + 1)).padStart(2, '0')}`;
    const expected = content.get(other);
    if (expected !== undefined) assert.ok((await container.getBlockBlobClient(other).downloadToBuffer()).equals(expected), `${other} reads back`);
    if (round % 8 === 7) await checkListing();
    if (round >= 24) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const append = container.getAppendBlobClient('append-log');
  await append.create();
  for (let i = 0; i < 5; i++) await append.appendBlock(Buffer.from(`part-${i};`), 7);
  content.set('append-log', Buffer.from('part-0;part-1;part-2;part-3;part-4;'));
  for (const [name, bytes] of content) assert.ok((await container.getBlockBlobClient(name).downloadToBuffer()).equals(bytes), `${name} reads back byte-exact`);
  await checkListing();
  const stats = stamp.manager.stats();
  const partitions = (await readMap(stamp.metaStore))?.map.partitions.length ?? 0;
  t.diagnostic(
    `${round} rounds of stage/commit/snapshot/download over ${content.size} blobs: ${stats.splits} splits, ${stats.merges} merges, ${stats.reEpochs} re-epochs, ${partitions} partitions at the end; ` +
    `${listingsChecked.count} paged listings exact (${listingsChecked.spanningMapChanges} spanning a split or merge); partition client ${JSON.stringify(stamp.tables.stats())}`,
  );
  assert.ok(stats.merges >= 3, 'the manager merged pieces of the blob table');
  assert.ok(stats.splits >= 2);
});
