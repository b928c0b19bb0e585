// utf8Bytes (src/wire/partition-row.ts), the row codec's count of UTF-8 bytes, against
// Buffer.byteLength itself (fast-check): equal for any string, ASCII or not, short or long, lone
// surrogates included (the count takes only short ASCII text; everything else is Buffer's).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { utf8Bytes } from '../../../src/wire/partition-row.ts';

describe('utf8Bytes', () => {
  it('equals Buffer.byteLength for any string', () => {
    let counted = 0;
    const text = fc.oneof(fc.string({ maxLength: 80 }), fc.string({ unit: 'binary', maxLength: 80 }), fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code)), maxLength: 80 }));
    fc.assert(fc.property(text, (value) => {
      if (value.length <= 64 && /^[\x00-\x7f]*$/.test(value)) counted += 1;
      assert.equal(utf8Bytes(value), Buffer.byteLength(value, 'utf8'));
    }), { numRuns: 2000 });
    console.log(`# 2000 strings, ${counted} short ASCII ones counted without Buffer`);
    assert.ok(counted > 100);
  });
});
