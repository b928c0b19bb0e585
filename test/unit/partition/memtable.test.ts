// Memtable.get(): the newest version, decoded into bytes of its own (never a view of a slab), and
// the partition's row cache in front of it: a memtable row read again is decoded once, and a
// write or a checkpoint never leaves an older version answered.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rowCacheEntriesMax } from '../../../src/constants.ts';
import { Memtable } from '../../../src/partition/memtable.ts';
import { Partition } from '../../../src/partition/partition.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { MemoryStreamStore } from '../../helpers/memory-partition-streams.ts';
import { encodeRow, type RowRecord } from '../../../src/wire/partition-row.ts';

function liveRow(key: string, sequence: number, body: Buffer): RowRecord {
  return { kind: 'live', key: Buffer.from(key, 'latin1'), sequence, lastModifiedMs: 1, etag: `"${sequence}"`, columns: [{ name: 'body', value: { kind: 'bytes', value: body } }] };
}

function apply(memtable: Memtable, row: RowRecord): void {
  const encoded = encodeRow(row);
  const framed = Buffer.alloc(4 + encoded.length);
  framed.writeUInt32BE(encoded.length, 0);
  encoded.copy(framed, 4);
  memtable.apply(row.key.toString('latin1'), row, framed, 0);
}

function bodyOf(row: RowRecord | undefined): Buffer {
  assert(row?.kind === 'live');
  const value = row.columns[0]?.value;
  assert(value?.kind === 'bytes');
  return value.value;
}

describe('Memtable.get', () => {
  it('answers the newest version after an apply, with bytes of its own', () => {
    const memtable = new Memtable();
    apply(memtable, liveRow('c', 1, Buffer.alloc(64, 1)));
    const first = memtable.get('c');
    apply(memtable, liveRow('c', 2, Buffer.alloc(64, 2)));
    const second = memtable.get('c');
    assert.equal(second?.sequence, 2);
    assert.deepEqual(bodyOf(second), Buffer.alloc(64, 2));
    assert.deepEqual(bodyOf(first), Buffer.alloc(64, 1));
    assert.equal(bodyOf(first).buffer.byteLength < 1024 * 1024, true, 'the decoded body is a copy, not a view of a 1 MiB slab');
    assert.equal(memtable.get('absent'), undefined);
  });

  it('answers every row right after many', () => {
    const memtable = new Memtable();
    for (let index = 0; index < 2000; index++) apply(memtable, liveRow(`k${String(index).padStart(5, '0')}`, index + 1, Buffer.alloc(512, index & 0xff)));
    for (let pass = 0; pass < 2; pass++) {
      for (let index = 0; index < 2000; index += 7) assert.deepEqual(bodyOf(memtable.get(`k${String(index).padStart(5, '0')}`)), Buffer.alloc(512, index & 0xff));
    }
  });
});

describe('the row cache in front of the memtable', () => {
  const containerKey = Buffer.from('Cacc\0photos');

  async function open(): Promise<Partition> {
    const store = new MemoryStreamStore();
    return Partition.open({ partitionId: 1, streams: store.session(), streamIds: store.createPartitionStreams(), clock: new ManualClock(), ownerEpoch: 1, autoMaintenance: false });
  }

  it('decodes a memtable row once, and answers the newest version after a write, a delete and a checkpoint', async () => {
    const partition = await open();
    await partition.put(containerKey, [{ name: 'v', value: { kind: 'string', value: 'one' } }]);
    const first = await partition.get(containerKey);
    const hitsBefore = partition.stats().rowCacheHits;
    for (let read = 0; read < 100; read++) assert.equal(await partition.get(containerKey), first, 'read again: the cached row');
    const hits = partition.stats().rowCacheHits - hitsBefore;
    await partition.put(containerKey, [{ name: 'v', value: { kind: 'string', value: 'two' } }], { ifMatch: first?.etag ?? '' });
    const second = await partition.get(containerKey);
    assert.deepEqual(second?.columns, [{ name: 'v', value: { kind: 'string', value: 'two' } }]);
    await partition.checkpoint();
    assert.equal(await partition.get(containerKey), second, 'a checkpoint changes no version');
    await partition.delete(containerKey);
    assert.equal(await partition.get(containerKey), null);
    await partition.put(containerKey, [{ name: 'v', value: { kind: 'string', value: 'three' } }]);
    assert.equal((await partition.get(containerKey))?.columns[0]?.value.kind, 'string');
    console.log(`100 reads of a memtable row: ${hits} row cache hits`);
    assert.equal(hits, 100);
  });

  it('weighs rows by their size: large inline rows do not fill it past its bound', async () => {
    const partition = await open();
    const body = Buffer.alloc(16 * 1024, 7);
    for (let index = 0; index < 1200; index++) await partition.put(Buffer.from(`B${String(index).padStart(5, '0')}`), [{ name: 'body', value: { kind: 'bytes', value: body } }]);
    for (let index = 0; index < 1200; index++) assert.deepEqual(bodyOf(await partition.get(Buffer.from(`B${String(index).padStart(5, '0')}`)) ?? undefined), body);
    const cache = (partition as unknown as { rowCache: { size: number; totalWeight: number } }).rowCache;
    console.log(`1,200 rows of 16 KiB read: ${cache.size} cached, weight ${cache.totalWeight} of ${rowCacheEntriesMax}`);
    assert.ok(cache.size < 700 && cache.totalWeight <= rowCacheEntriesMax);
  });
});
