// Extent file codec (docs/formats/extent-file.md): round trips, every single-bit flip and every
// truncation detected, limits checked before trusting lengths, and the frozen v1 fixture.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { dataAppendBytesMax } from '../../../src/constants.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import { crc32c } from '../../../src/util/crc32c.ts';
import {
  blockHeaderBytes, decodeBlockHeader, decodeBlockRecord, decodeExtentHeader, encodeDataBlock, encodeExtentHeader,
  encodeSealTrailer, extentFileName, extentHeaderBytes, identityCrc, parseExtentFileName,
} from '../../../src/wire/extent-format.ts';
import { encodeRecordHeader } from '../../../src/wire/record-header.ts';
import { fixtureV1 } from '../../fixtures/generate-format-fixtures.ts';
import { flipBit, throwsWire } from '../../helpers/wire-corruption.ts';

const safeId = fc.nat({ max: Number.MAX_SAFE_INTEGER });
const headerArbitrary = fc.record({ streamId: safeId, extentId: safeId, epoch: safeId, createdAtMs: safeId });
const bodyArbitrary = fc.uint8Array({ minLength: 1, maxLength: 64 });

describe('extent header', () => {
  it('round-trips any safe-integer identity', () => {
    fc.assert(fc.property(headerArbitrary, (header) => {
      const bytes = encodeExtentHeader(header);
      assert.equal(bytes.length, extentHeaderBytes);
      assert.deepEqual(decodeExtentHeader(bytes), { ...header, formatVersion: 2 });
    }));
  });

  it('detects every single-bit flip and every truncation', (t) => {
    let checks = 0;
    fc.assert(fc.property(headerArbitrary, (header) => {
      const bytes = encodeExtentHeader(header);
      for (let bit = 0; bit < bytes.length * 8; bit++, checks++) assert.ok(throwsWire(() => decodeExtentHeader(flipBit(bytes, bit))), `bit ${bit}`);
      for (let length = 0; length < bytes.length; length++, checks++) assert.ok(throwsWire(() => decodeExtentHeader(bytes.subarray(0, length))));
    }), { numRuns: 20 });
    t.diagnostic(`header damage cases detected: ${checks}`);
  });

  it('rejects an unknown version even with a valid CRC', () => {
    const bytes = encodeExtentHeader(fixtureV1.header);
    bytes.writeUInt16BE(3, 8);
    bytes.writeUInt32BE(crc32c(bytes.subarray(0, 60)), 60);
    assert.throws(() => decodeExtentHeader(bytes), (error) => isStorageError(error, 'wire.unsupported_version'));
  });

  it('writes version 2 and still reads a version 1 header', () => {
    const bytes = encodeExtentHeader(fixtureV1.header);
    assert.equal(bytes.readUInt16BE(8), 2);
    bytes.writeUInt16BE(1, 8);
    bytes.writeUInt32BE(crc32c(bytes.subarray(0, 60)), 60);
    assert.deepEqual(decodeExtentHeader(bytes), { ...fixtureV1.header, formatVersion: 1 });
  });

  it('rejects a u64 id beyond 2^53 - 1 even with a valid CRC', () => {
    const bytes = encodeExtentHeader(fixtureV1.header);
    bytes.writeBigUInt64BE(2n ** 53n, 24);
    bytes.writeUInt32BE(crc32c(bytes.subarray(0, 60)), 60);
    assert.throws(() => decodeExtentHeader(bytes), (error) => isStorageError(error, 'wire.corrupt'));
  });
});

describe('block records', () => {
  it('round-trip data blocks and seal trailers', () => {
    fc.assert(fc.property(safeId, safeId, bodyArbitrary, (extentId, offset, body) => {
      const record = encodeDataBlock({ extentId, offset, body });
      const decoded = decodeBlockRecord(record);
      assert.deepEqual(decoded.header, { kind: 'data', extentId, offset, bodyBytes: body.length, bodyCrc: crc32c(body) });
      assert.deepEqual(new Uint8Array(decoded.body), body);
      const seal = decodeBlockRecord(encodeSealTrailer(extentId, offset));
      assert.equal(seal.header.kind, 'seal');
      assert.equal(seal.header.offset, offset);
    }));
  });

  it('detects every single-bit flip and every truncation of a record', (t) => {
    let checks = 0;
    fc.assert(fc.property(safeId, safeId, bodyArbitrary, fc.boolean(), (extentId, offset, body, seal) => {
      const record = seal ? encodeSealTrailer(extentId, offset) : encodeDataBlock({ extentId, offset, body });
      for (let bit = 0; bit < record.length * 8; bit++, checks++) assert.ok(throwsWire(() => decodeBlockRecord(flipBit(record, bit))), `bit ${bit}`);
      for (let length = 0; length < record.length; length++, checks++) assert.ok(throwsWire(() => decodeBlockRecord(record.subarray(0, length))));
      assert.ok(throwsWire(() => decodeBlockRecord(Buffer.concat([record, Buffer.alloc(1)]))), 'trailing byte');
    }), { numRuns: 30 });
    t.diagnostic(`record damage cases detected: ${checks}`);
  });

  it('takes a data block of dataAppendBytesMax (8 MiB, v2), the limit included', () => {
    const body = Buffer.alloc(dataAppendBytesMax, 0x5a);
    const decoded = decodeBlockRecord(encodeDataBlock({ extentId: 3, offset: 8, body }));
    assert.equal(decoded.header.bodyBytes, 8 * 1024 * 1024);
    assert.throws(() => encodeDataBlock({ extentId: 3, offset: 8, body: Buffer.alloc(dataAppendBytesMax + 1) }));
  });

  it('never trusts a body length over dataAppendBytesMax, even with a valid header CRC', () => {
    const magic = Buffer.from('KBLK', 'ascii');
    const header = encodeRecordHeader({ magic, version: 1, what: 'test' }, { kindCode: 1, bodyBytes: dataAppendBytesMax + 1, bodyCrc: 0, extentId: 1, offset: 0 });
    assert.throws(() => decodeBlockHeader(header), (error) => isStorageError(error, 'wire.too_large'));
    const empty = encodeRecordHeader({ magic, version: 1, what: 'test' }, { kindCode: 1, bodyBytes: 0, bodyCrc: 0, extentId: 1, offset: 0 });
    assert.throws(() => decodeBlockHeader(empty), (error) => isStorageError(error, 'wire.too_large'));
    const unknownKind = encodeRecordHeader({ magic, version: 1, what: 'test' }, { kindCode: 9, bodyBytes: 1, bodyCrc: 0, extentId: 1, offset: 0 });
    assert.throws(() => decodeBlockHeader(unknownKind), (error) => isStorageError(error, 'wire.corrupt'));
  });

  it('has a 40-byte header', () => {
    assert.equal(encodeDataBlock({ extentId: 1, offset: 0, body: Buffer.from('x') }).length, blockHeaderBytes + 1);
  });
});

describe('extent file names', () => {
  it('embed the extent id and the identity checksum, and parse back', () => {
    fc.assert(fc.property(safeId, safeId, safeId, (streamId, extentId, epoch) => {
      const name = extentFileName({ streamId, extentId, epoch });
      assert.deepEqual(parseExtentFileName(name), { extentId, identityCrc: identityCrc({ streamId, extentId, epoch }) });
    }));
  });

  it('rejects names that are not extent files', () => {
    for (const name of ['x.ext', '00000000000000ab-0000000g.ext', '00000000000000ab-00000000.ext.tmp', 'ffffffffffffffff-00000000.ext']) {
      assert.equal(parseExtentFileName(name), null, name);
    }
  });
});

for (const fixture of ['extent-v1.ext', 'extent-v2.ext']) describe(`format fixture (test/fixtures/${fixture})`, () => {
  it('still decodes to the same header, blocks and seal', () => {
    const bytes = readFileSync(new URL(`../../fixtures/${fixture}`, import.meta.url));
    assert.equal(bytes.readUInt16BE(8), fixture === 'extent-v1.ext' ? 1 : 2);
    assert.deepEqual(decodeExtentHeader(bytes), { ...fixtureV1.header, formatVersion: fixture === 'extent-v1.ext' ? 1 : 2 });
    let position = extentHeaderBytes;
    let offset = 0;
    for (const text of fixtureV1.blocks) {
      const header = decodeBlockHeader(bytes.subarray(position));
      const { body } = decodeBlockRecord(bytes.subarray(position, position + blockHeaderBytes + header.bodyBytes));
      assert.equal(header.offset, offset);
      assert.equal(body.toString('latin1'), text);
      position += blockHeaderBytes + header.bodyBytes;
      offset += body.length;
    }
    const seal = decodeBlockRecord(bytes.subarray(position));
    assert.equal(seal.header.kind, 'seal');
    assert.equal(seal.header.offset, offset);
  });
});
