// Memtable.get()'s decoded rows: kept by slab position, so a row read again is the same object,
// and a newer version of the key (another position) is never answered from the old one.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Memtable } from '../../../src/partition/memtable.ts';
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
  it('decodes a row once, answers a newer version after an apply, and hands out bytes of its own', () => {
    const memtable = new Memtable();
    apply(memtable, liveRow('c', 1, Buffer.alloc(64, 1)));
    const first = memtable.get('c');
    assert.equal(memtable.get('c'), first, 'a row read again is the decoded one');
    apply(memtable, liveRow('c', 2, Buffer.alloc(64, 2)));
    const second = memtable.get('c');
    assert.notEqual(second, first);
    assert.equal(second?.sequence, 2);
    assert.deepEqual(bodyOf(second), Buffer.alloc(64, 2));
    assert.equal(bodyOf(first).buffer.byteLength < 1024 * 1024, true, 'the decoded body is a copy, not a view of a 1 MiB slab');
    assert.equal(memtable.get('absent'), undefined);
  });

  it('keeps a bounded number of decoded rows: every one read is still right after many', () => {
    const memtable = new Memtable();
    for (let index = 0; index < 2000; index++) apply(memtable, liveRow(`k${String(index).padStart(5, '0')}`, index + 1, Buffer.alloc(512, index & 0xff)));
    for (let pass = 0; pass < 2; pass++) {
      for (let index = 0; index < 2000; index += 7) assert.deepEqual(bodyOf(memtable.get(`k${String(index).padStart(5, '0')}`)), Buffer.alloc(512, index & 0xff));
    }
  });
});
