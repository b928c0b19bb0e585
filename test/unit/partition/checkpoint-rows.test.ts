// What a checkpoint writes from a memtable's slabs: the runs and spilled data a decode, spill and
// encode of every row wrote (byte for byte, against a digest recorded from that code), and runs
// that hold bytes of their own (no view of a slab stays reachable from a run once the frozen
// memtable is dropped).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { memtableSlabBytes } from '../../../src/constants.ts';
import { blobInlineData } from '../../../src/frontend/blob-service/blob-table-schema.ts';
import { Partition } from '../../../src/partition/partition.ts';
import type { PartitionOp } from '../../../src/partition/partition.ts';
import type { Column } from '../../../src/wire/partition-row.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { MemoryStreamStore } from '../../helpers/memory-partition-streams.ts';

interface RunInternals { readonly index: ReadonlyArray<{ readonly firstKey: Buffer }> }

/** Blob-like rows: most with an inline body (1..4,201 bytes), some without one or with an empty one. */
function blobColumns(index: number, generation: number): Column[] {
  const columns: Column[] = [
    { name: 'type', value: { kind: 'string', value: 'BlockBlob' } },
    { name: 'created', value: { kind: 'int64', value: 1_790_000_000_000n + BigInt(index) } },
    { name: 'contentMd5', value: { kind: 'bytes', value: createHash('md5').update(`${index}/${generation}`).digest() } },
  ];
  if (index % 10 === 0) return [...columns, { name: 'tier', value: { kind: 'string', value: 'Hot' } }];
  const body = Buffer.alloc(index % 13 === 0 ? 0 : 1 + ((index * 601 + generation) % 4201), (index + generation) & 0xff);
  return [...columns, { name: 'body', value: { kind: 'bytes', value: body } }, { name: 'size', value: { kind: 'int64', value: BigInt(body.length) } }];
}

/** Written by the checkpoints and compaction that decoded, spilled and encoded each row (main at
 * 2fcd1ba, this test run there). A change of the row or run format changes them: record new ones
 * only for a deliberate format change (docs/formats/partition-checkpoint.md). */
const goldenDigests = {
  checkpoint: '70960a811624695d17d99da10b53c5de3109155dca41ef479a0ec48c7c21fdc0',
  data: '363fbef21a33a1e7383b09d2f4da6f8a79bdf633da4e0881b020d8f6fb6e700b',
};

function blobKey(index: number): Buffer {
  return Buffer.from(`Bacc\0photos\0inc1\0img-${String((index * 7919) % 3000).padStart(5, '0')}.jpg`, 'latin1');
}

/** SHA-256 of every extent of a stream, in order (its tail sealed first, so every length is known). */
function streamDigest(store: MemoryStreamStore, streamId: number): string {
  store.sealTail(streamId);
  const hash = createHash('sha256');
  for (const extent of store.extents(streamId)) {
    if (extent.state.kind === 'sealed') hash.update(store.read(streamId, extent.extentId, 0, extent.state.length));
  }
  return hash.digest('hex');
}

describe('checkpoint rows', () => {
  it('writes the runs and spilled bytes that decoding, spilling and encoding each row wrote', async () => {
    const store = new MemoryStreamStore({ extentBytesMax: 1 << 20 });
    const ids = store.createPartitionStreams();
    const partition = await Partition.open({
      partitionId: 3, streams: store.session(), streamIds: ids, clock: new ManualClock(), ownerEpoch: 1, autoMaintenance: false,
      inlineData: blobInlineData, limits: { blockBytesTarget: 8192, runBytesMax: 131_072 },
    });
    const batch: PartitionOp[] = [];
    const commit = async (): Promise<void> => {
      if (batch.length > 0) await partition.transact(batch.splice(0));
    };
    for (let index = 0; index < 3000; index++) {
      batch.push({ kind: 'put', key: blobKey(index), columns: blobColumns(index, 0) });
      if (batch.length === 8) await commit();
    }
    await commit();
    for (let index = 0; index < 3000; index += 11) await partition.transact([{ kind: 'put', key: blobKey(index), columns: blobColumns(index, 1) }]);
    for (let index = 5; index < 3000; index += 17) await partition.transact([{ kind: 'delete', key: blobKey(index) }]);
    await partition.checkpoint();
    const first = partition.stats();
    for (let index = 3; index < 3000; index += 7) await partition.transact([{ kind: 'put', key: blobKey(index), columns: blobColumns(index, 2) }]);
    await partition.checkpoint();
    await partition.compact();
    const stats = partition.stats();
    const digests = { checkpoint: streamDigest(store, ids.checkpoint), data: streamDigest(store, ids.data) };
    console.log(`checkpoint of ${first.lastSequence} commits: ${first.runCount} runs, ${first.inlineRowsSpilled} rows spilled (${first.inlineBytesSpilled} B in ${first.inlineSpillAppends} appends); then a checkpoint of ${stats.lastSequence - first.lastSequence} commits and a compaction: ${stats.runCount} runs, ${stats.inlineRowsSpilled} rows spilled in all; ${JSON.stringify(digests)}`);
    assert.deepEqual(digests, goldenDigests);
  });

  it('a run\u2019s index keys are copies, not views of the memtable\u2019s slabs', async () => {
    const store = new MemoryStreamStore({ extentBytesMax: 1 << 24 });
    const partition = await Partition.open({
      partitionId: 1, streams: store.session(), streamIds: store.createPartitionStreams(), clock: new ManualClock(), ownerEpoch: 1,
      autoMaintenance: false, limits: { blockBytesTarget: 4096 },
    });
    const value = 'x'.repeat(1000);
    for (let i = 0; i < 2000; i++) {
      await partition.transact([{ kind: 'put', key: Buffer.from(`row-${String(i).padStart(5, '0')}`), columns: [{ name: 'v', value: { kind: 'string', value } }] }]);
    }
    await partition.checkpoint();
    const runs = (partition as unknown as { runs: readonly RunInternals[] }).runs;
    const keys = runs.flatMap((run) => run.index.map((entry) => entry.firstKey));
    const slabViews = keys.filter((firstKey) => firstKey.buffer.byteLength >= memtableSlabBytes).length;
    console.log(`checkpoint of 2,000 rows: ${keys.length} index keys, ${slabViews} of them views of a ${memtableSlabBytes >> 20} MiB slab`);
    assert.ok(keys.length > 100);
    assert.equal(slabViews, 0);
  });
});
