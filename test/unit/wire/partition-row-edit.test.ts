// Encoded rows edited without decoding (findEncodedColumn, replaceEncodedColumn): the bytes are
// exactly encodeRow's for the edited row, whatever the row, so a checkpoint that splices a
// memtable row's bytes writes the run a decode, edit and encode would have written.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeRow, encodedRowKey, encodedRowSequence, findEncodedColumn, replaceEncodedColumn } from '../../../src/wire/partition-row.ts';
import type { Column, RowRecord } from '../../../src/wire/partition-row.ts';
import { keyArbitrary, safeIntegerArbitrary, valueArbitrary } from '../../helpers/row-arbitraries.ts';

/** Names from a small set (so the edited column is often present) and any names (non-ASCII too). */
const nameArbitrary = fc.oneof(fc.constantFrom('body', 'bod', 'bodyx', 'blockIndex', 'é'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }));
const columnsArbitrary = (maxLength: number): fc.Arbitrary<Column[]> =>
  fc.uniqueArray(fc.record({ name: nameArbitrary, value: valueArbitrary }), { maxLength, selector: (column) => column.name });
const liveRowArbitrary = fc.record({
  kind: fc.constant('live' as const), key: keyArbitrary, sequence: safeIntegerArbitrary,
  lastModifiedMs: safeIntegerArbitrary, etag: fc.stringMatching(/^[!-~]{1,64}$/), columns: columnsArbitrary(12),
});

function decodedEdit(row: RowRecord & { kind: 'live' }, name: string, columns: readonly Column[]): Buffer {
  return encodeRow({ ...row, columns: [...row.columns.filter((column) => column.name !== name), ...columns] });
}

describe('encoded row edits', () => {
  it('replaceEncodedColumn gives encodeRow\u2019s bytes of the edited row; findEncodedColumn finds exactly the column', () => {
    let replaced = 0;
    fc.assert(fc.property(liveRowArbitrary, nameArbitrary, columnsArbitrary(3), (row, name, added) => {
      const encoded = encodeRow(row);
      assert.deepEqual(encodedRowKey(encoded), row.key);
      assert.equal(encodedRowSequence(encoded), row.sequence);
      const column = row.columns.find((candidate) => candidate.name === name);
      const found = findEncodedColumn(encoded, name);
      assert.equal(found === null, column === undefined);
      if (found === null || column === undefined) return;
      assert.deepEqual(found.bytes, column.value.kind === 'bytes' ? column.value.value : null);
      const clash = added.some((other) => other.name !== name && row.columns.some((kept) => kept.name === other.name));
      if (clash || added.some((other) => other.name === name)) {
        assert.throws(() => replaceEncodedColumn(encoded, found, added), /duplicate column/);
        return;
      }
      assert.deepEqual(replaceEncodedColumn(encoded, found, added), decodedEdit(row, name, added));
      replaced += 1;
    }), { numRuns: 3000 });
    console.log(`3,000 rows: ${replaced} edited byte-identical to decode, edit, encode`);
    assert.ok(replaced > 300);
  });

  it('a tombstone has no columns', () => {
    const tombstone = encodeRow({ kind: 'tombstone', key: Buffer.from('k'), sequence: 9, lastModifiedMs: 1 });
    assert.equal(findEncodedColumn(tombstone, 'body'), null);
    assert.equal(encodedRowSequence(tombstone), 9);
  });
});
