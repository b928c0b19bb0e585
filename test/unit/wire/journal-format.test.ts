// Journal codec (docs/formats/journal.md): round trips, every single-bit flip and truncation
// detected, a scan stops at the first bad record, and the frozen v1 fixture.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { appendBytesMax } from '../../../src/constants.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import {
  decodeJournalHeader, decodeJournalRecord, encodeJournalAppend, encodeJournalAppendHeader, encodeJournalRemove, journalFileName,
  journalRecordHeaderBytes, parseJournalFileName, scanJournalBytes, stampJournalBatch,
} from '../../../src/wire/journal-format.ts';
import type { JournalRecord } from '../../../src/wire/journal-format.ts';
import { encodeRecordHeader } from '../../../src/wire/record-header.ts';
import { buildJournalFixture, fixtureV1, journalFixtureV2Batches } from '../../fixtures/generate-format-fixtures.ts';
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

  it('v2: a stamped batch round-trips; batch 0 or an unknown flag is corrupt even under a valid header CRC', () => {
    const header = encodeJournalAppendHeader({ extentId: 3, offset: 5, body: Buffer.from('abc') });
    assert.deepEqual(decodeJournalHeader(header).batch, { batch: 1, lastOfBatch: true }, 'unstamped: the whole of batch 1');
    stampJournalBatch(header, { batch: 70_000, lastOfBatch: false });
    assert.deepEqual(decodeJournalHeader(header).batch, { batch: 70_000, lastOfBatch: false });
    const format = { magic: Buffer.from('KJNL', 'ascii'), version: 2, what: 'test', usesFlagsAndTag: true };
    const fields = { kindCode: 1, bodyBytes: 3, bodyCrc: 0, extentId: 1, offset: 0 };
    for (const [flags, tag] of [[1, 0], [2, 1], [0x8000, 4]] as const) {
      assert.throws(() => decodeJournalHeader(encodeRecordHeader(format, { ...fields, flags, tag })), (error) => isStorageError(error, 'wire.corrupt'), `flags ${flags} batch ${tag}`);
    }
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

for (const version of [1, 2] as const) {
  describe(`format v${version} fixture (test/fixtures/journal-v${version}.jnl)`, () => {
    it('still decodes to the same records, with their batches (v2) or none (v1)', () => {
      const bytes = readFileSync(new URL(`../../fixtures/journal-v${version}.jnl`, import.meta.url));
      assert.deepEqual(bytes, buildJournalFixture(version), 'the encoder still writes the frozen bytes');
      const scan = scanJournalBytes(bytes);
      assert.equal(scan.validBytes, bytes.length);
      assert.equal(scan.records.length, fixtureV1.journal.length);
      let position = 0;
      fixtureV1.journal.forEach((expected, index) => {
        const record = scan.records[index]!;
        assert.equal(record.kind, expected.kind);
        assert.equal(record.extentId, expected.extentId);
        if (record.kind === 'append' && expected.kind === 'append') {
          assert.equal(record.offset, expected.offset);
          assert.equal(record.body.toString('latin1'), expected.text);
        }
        const header = decodeJournalHeader(bytes.subarray(position));
        assert.deepEqual(header.batch, version === 1 ? null : journalFixtureV2Batches[index]);
        position += journalRecordHeaderBytes + header.bodyBytes;
      });
    });
  });
}
