// What a checkpoint writes from a memtable's slabs: runs that hold bytes of their own (no view of
// a slab stays reachable from a run once the frozen memtable is dropped).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { memtableSlabBytes } from '../../../src/constants.ts';
import { Partition } from '../../../src/partition/partition.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { MemoryStreamStore } from '../../helpers/memory-partition-streams.ts';

interface RunInternals { readonly index: ReadonlyArray<{ readonly firstKey: Buffer }> }

describe('checkpoint rows', () => {
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
