// Journal codec (docs/formats/journal.md): round trips, every single-bit flip and truncation
// detected, a scan stops at the first bad record, and the frozen v1 fixture.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { appendBytesMax } from '../../../src/constants.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import {
  decodeJournalHeader, decodeJournalRecord, encodeJournalAppend, encodeJournalRemove, journalFileName,
  parseJournalFileName, scanJournalBytes,
} from '../../../src/wire/journal-format.ts';
import type { JournalRecord } from '../../../src/wire/journal-format.ts';
import { encodeRecordHeader } from '../../../src/wire/record-header.ts';
import { fixtureV1 } from '../../fixtures/generate-format-fixtures.ts';
import { flipBit, throwsWire } from '../../helpers/wire-corruption.ts';

const safeId = fc.nat({ max: Number.MAX_SAFE_INTEGER });
type Spec = { kind: 'append'; extentId: number; offset: number; body: Uint8Array } | { kind: 'remove'; extentId: number };
const specArbitrary: fc.Arbitrary<Spec> = fc.oneof(
  fc.record({ kind: fc.constant('append' as const), extentId: safeId, offset: safeId, body: fc.uint8Array({ minLength: 1, maxLength: 48 }) }),
  fc.record({ kind: fc.constant('remove' as const), extentId: safeId }),
);

function encode(spec: Spec): Buffer {
  return spec.kind === 'remove' ? encodeJournalRemove(spec.extentId) : encodeJournalAppend(spec);
}

function same(record: JournalRecord, spec: Spec): void {
  assert.equal(record.kind, spec.kind);
  assert.equal(record.extentId, spec.extentId);
  if (record.kind === 'append' && spec.kind === 'append') {
    assert.equal(record.offset, spec.offset);
    assert.deepEqual(new Uint8Array(record.body), spec.body);
  }
}

describe('journal records', () => {
  it('round-trip appends and tombstones', () => {
    fc.assert(fc.property(specArbitrary, (spec) => same(decodeJournalRecord(encode(spec)), spec)));
  });

  it('detect every single-bit flip and every truncation', (t) => {
    let checks = 0;
    fc.assert(fc.property(specArbitrary, (spec) => {
      const record = encode(spec);
      for (let bit = 0; bit < record.length * 8; bit++, checks++) assert.ok(throwsWire(() => decodeJournalRecord(flipBit(record, bit))), `bit ${bit}`);
      for (let length = 0; length < record.length; length++, checks++) assert.ok(throwsWire(() => decodeJournalRecord(record.subarray(0, length))));
    }), { numRuns: 30 });
    t.diagnostic(`journal damage cases detected: ${checks}`);
  });

  it('never trusts a length over appendBytesMax, even with a valid header CRC', () => {
    const format = { magic: Buffer.from('KJNL', 'ascii'), version: 1, what: 'test' };
    const big = encodeRecordHeader(format, { kindCode: 1, bodyBytes: appendBytesMax + 1, bodyCrc: 0, extentId: 1, offset: 0 });
    assert.throws(() => decodeJournalHeader(big), (error) => isStorageError(error, 'wire.too_large'));
    const tombstoneWithBody = encodeRecordHeader(format, { kindCode: 2, bodyBytes: 1, bodyCrc: 0, extentId: 1, offset: 0 });
    assert.throws(() => decodeJournalHeader(tombstoneWithBody), (error) => isStorageError(error, 'wire.corrupt'));
  });
});

describe('scanJournalBytes', () => {
  it('returns exactly the records before the first damaged one, for every truncation and flip', (t) => {
    let scans = 0;
    fc.assert(fc.property(fc.array(specArbitrary, { minLength: 1, maxLength: 6 }), fc.nat(), (specs, pick) => {
      const records = specs.map(encode);
      const file = Buffer.concat(records);
      const ends: number[] = [];
      records.reduce((end, record) => { ends.push(end + record.length); return end + record.length; }, 0);
      const wholeBefore = (limit: number): number => ends.filter((end) => end <= limit).length;
      for (let length = 0; length <= file.length; length++, scans++) {
        const scan = scanJournalBytes(file.subarray(0, length));
        assert.equal(scan.records.length, wholeBefore(length));
      }
      const bit = pick % (file.length * 8);
      const scan = scanJournalBytes(flipBit(file, bit));
      assert.equal(scan.records.length, wholeBefore(bit >> 3), `flip of bit ${bit}`);
      scan.records.forEach((record, index) => same(record, specs[index]!));
    }), { numRuns: 60 });
    t.diagnostic(`truncated scans checked: ${scans}`);
  });
});

describe('journal file names', () => {
  it('round-trip sequences and reject other names', () => {
    fc.assert(fc.property(safeId, (sequence) => assert.equal(parseJournalFileName(journalFileName(sequence)), sequence)));
    for (const name of ['1.jnl', '000000000000000g.jnl', '0000000000000001.jnl.tmp']) assert.equal(parseJournalFileName(name), null);
  });
});

describe('format v1 fixture (test/fixtures/journal-v1.jnl)', () => {
  it('still decodes to the same records', () => {
    const bytes = readFileSync(new URL('../../fixtures/journal-v1.jnl', import.meta.url));
    const scan = scanJournalBytes(bytes);
    assert.equal(scan.validBytes, bytes.length);
    assert.equal(scan.records.length, fixtureV1.journal.length);
    fixtureV1.journal.forEach((expected, index) => {
      const record = scan.records[index]!;
      assert.equal(record.kind, expected.kind);
      assert.equal(record.extentId, expected.extentId);
      if (record.kind === 'append' && expected.kind === 'append') {
        assert.equal(record.offset, expected.offset);
        assert.equal(record.body.toString('latin1'), expected.text);
      }
    });
  });
});
