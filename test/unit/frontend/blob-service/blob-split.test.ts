// Splits of the blob tables keep every blob's rows in one partition (docs/blob-schema.md,
// "Partition locality"; docs/partition-protocol.md, "Group boundaries"):
// - property (fast-check): over random sets of blob-table keys (names that prefix each other,
//   snapshots, staging, list pages, segments, uncommitted blocks, blobs with no own row, container
//   and service rows), chooseSplitKey with blobSplitBoundary never puts two rows of one blob on
//   both sides, leaves both sides non-empty, and answers null only when one blob holds every row;
// - a real stamp whose manager splits small partitions: every split key lies between blobs, and
//   after the splits every blob operation (Put Block / Put Block List, snapshots, appends, reads,
//   listing, deletes) still works through the SDK.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { blobSplitBoundary } from '../../../../src/frontend/blob-service/blob-table-schema.ts';
import { blobKey, blobPrefix, containerKey, listPageKey, segmentKey, servicePropertiesKey, snapshotKey, stagingKey, uncommittedKey } from '../../../../src/frontend/blob-service/keys.ts';
import { keyFromHex, readMap } from '../../../../src/partition/partition-map.ts';
import { chooseSplitKey } from '../../../../src/partition/partition-split.ts';
import { rowPerGroup } from '../../../../src/partition/table-schema.ts';
import { BlobStamp } from './blob-stamp.ts';

/** The blob a key belongs to (its own key), or the key itself for rows that are their own group. */
function groupOf(key: Buffer): string {
  if (key[0] !== 'B'.charCodeAt(0)) return key.toString('latin1');
  let at = 0;
  for (let separators = 0; separators < 3; separators++) at = key.indexOf(0, at + 1);
  const end = key.indexOf(0, at + 1);
  return (end === -1 ? key : key.subarray(0, end)).toString('latin1');
}

const nameArbitrary = fc.stringMatching(/^[a-c/é]{1,4}$/);
const auxArbitrary = fc.constantFrom('own', 'snapshot', 'staging', 'page', 'segment', 'uncommitted');

function rowKeys(blob: Buffer, kinds: readonly string[]): Buffer[] {
  return kinds.map((kind, i) => {
    switch (kind) {
      case 'own': return blob;
      case 'snapshot': return snapshotKey(blob, `2026-01-0${i % 9 + 1}T00:00:00.0000000Z`);
      case 'staging': return stagingKey(blob);
      case 'page': return listPageKey(blob, 'abcdef0123456789', i);
      case 'segment': return segmentKey(blob, '0123456789abcdef', i);
      default: return uncommittedKey(blob, 'feedfacefeedface', Buffer.from([i, 0xff]));
    }
  });
}

async function* each(keys: readonly Buffer[]): AsyncGenerator<Buffer> {
  for (const key of keys) yield await Promise.resolve(key);
}

test('property: a blob-table split key never falls inside a blob, and both children get rows', async (t) => {
  let splits = 0;
  let refused = 0;
  await fc.assert(fc.asyncProperty(
    fc.array(fc.record({ container: fc.constantFrom('c1', 'c2'), name: nameArbitrary, kinds: fc.array(auxArbitrary, { minLength: 1, maxLength: 6 }) }), { minLength: 1, maxLength: 12 }),
    fc.boolean(),
    async (blobs, withOthers) => {
      const keys = new Map<string, Buffer>();
      for (const blob of blobs) for (const key of rowKeys(blobKey(blobPrefix('acct', blob.container, '0000000000000001'), blob.name), blob.kinds)) keys.set(key.toString('latin1'), key);
      if (withOthers) for (const key of [servicePropertiesKey('acct'), containerKey('acct', 'c1'), containerKey('acct', 'c2')]) keys.set(key.toString('latin1'), key);
      const sorted = [...keys.values()].sort((left, right) => Buffer.compare(left, right));
      const splitKey = await chooseSplitKey(each(sorted), sorted.length, blobSplitBoundary);
      const groups = new Set(sorted.map(groupOf));
      if (splitKey === null) {
        refused += 1;
        assert.equal(groups.size, 1, 'refused although rows of two groups exist');
        return;
      }
      splits += 1;
      const left = sorted.filter((key) => Buffer.compare(key, splitKey) < 0);
      const right = sorted.filter((key) => Buffer.compare(key, splitKey) >= 0);
      assert.ok(left.length > 0 && right.length > 0, 'both children get rows');
      const leftGroups = new Set(left.map(groupOf));
      for (const key of right) assert.ok(!leftGroups.has(groupOf(key)), `group ${JSON.stringify(groupOf(key))} is cut by ${JSON.stringify(splitKey.toString('latin1'))}`);
    },
  ), { numRuns: 2000, seed: 20_261_122 });
  t.diagnostic(`2000 random key sets: ${splits} split keys checked, ${refused} refused (a single blob); 0 cut blobs`);
  const plain = [Buffer.from('a'), Buffer.from('b'), Buffer.from('c'), Buffer.from('d')];
  assert.deepEqual(await chooseSplitKey(each(plain), 4, rowPerGroup), Buffer.from('c'), 'without groups: the median row, as before');
});

let stamp: BlobStamp;
before(async () => { stamp = await BlobStamp.start({ splitBytes: 24 * 1024 }); });
after(async () => { await stamp.stop(); });

test('a blob stamp that splits: split keys lie between blobs, and every blob operation still works after the splits', async (t) => {
  const container = stamp.client.getContainerClient('splits');
  await container.create();
  // Rows keep coming until the manager has split twice (at least 24 blobs, at most 96): when its
  // ticks run late on a loaded machine, the first split can come after the writes, and children of
  // a table just over twice the threshold would then never split again.
  const names: string[] = [];
  const content = new Map<string, Buffer>();
  while (names.length < 24 || (stamp.manager.stats().splits < 2 && names.length < 96)) {
    const name = `blob-${String(names.length).padStart(2, '0')}`;
    names.push(name);
    const blob = container.getBlockBlobClient(name);
    const ids = [0, 1, 2].map((i) => Buffer.from(`${name}-block-${i}-`.padEnd(48, 'x')).toString('base64'));
    for (const id of ids.slice(0, 2)) await blob.stageBlock(id, Buffer.from(`${id}|`), id.length + 1);
    await blob.commitBlockList(ids.slice(0, 2), { metadata: { note: 'x'.repeat(400) } });
    await blob.createSnapshot();
    await blob.stageBlock(ids[2] ?? '', Buffer.from(`${ids[2] ?? ''}|`), (ids[2] ?? '').length + 1);
    content.set(name, Buffer.concat(ids.slice(0, 2).map((id) => Buffer.from(`${id}|`))));
  }
  for (let waited = 0; stamp.manager.stats().splits < 2 && waited < 120_000; waited += 100) await new Promise((resolve) => setTimeout(resolve, 100));
  const map = await readMap(stamp.metaStore);
  const partitions = map?.map.partitions ?? [];
  t.diagnostic(`${stamp.manager.stats().splits} splits: ${partitions.length} partitions`);
  assert.ok(partitions.length >= 3, 'the manager split the blob table');
  for (const entry of partitions) {
    const low = keyFromHex(entry.low);
    if (low.length > 0) assert.deepEqual(blobSplitBoundary(low), low, `split key ${JSON.stringify(low.toString('latin1'))} starts a group`);
  }
  for (let waited = 0; stamp.server.servingPartitions().length < partitions.length && waited < 30_000; waited += 100) await new Promise((resolve) => setTimeout(resolve, 100));
  for (const name of names) {
    const blob = container.getBlockBlobClient(name);
    assert.ok((await blob.downloadToBuffer()).equals(content.get(name) ?? Buffer.alloc(0)), `${name} reads back after the splits`);
    const list = await blob.getBlockList('all');
    assert.equal(list.uncommittedBlocks?.length, 1, `${name}: its uncommitted block is still staged`);
    const lastId = list.uncommittedBlocks?.[0]?.name ?? '';
    await blob.commitBlockList([...(list.committedBlocks ?? []).map((block) => block.name), lastId]);
    const snapshot = await blob.createSnapshot();
    assert.ok((await blob.withSnapshot(snapshot.snapshot ?? '').downloadToBuffer()).length > 0);
    await blob.delete({ deleteSnapshots: 'include' });
  }
  const append = container.getAppendBlobClient('blob-05a');
  await append.create();
  for (let i = 0; i < 3; i++) await append.appendBlock(Buffer.from(`part-${i};`), 7);
  assert.equal((await append.downloadToBuffer()).toString(), 'part-0;part-1;part-2;');
  const listed = [];
  for await (const item of container.listBlobsFlat({ includeSnapshots: true })) listed.push(item.name);
  assert.deepEqual(listed, ['blob-05a'], 'every other blob and snapshot is gone');
  t.diagnostic(`${names.length} blobs: read, re-committed with their staged block, snapshotted and deleted across ${partitions.length} partitions; partition client ${JSON.stringify(stamp.tables.stats())}`);
});
