// md5(parts) equals a Hash object over the parts' concatenation: one part (the one-shot call),
// several, none, empty parts.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { md5 } from '../../../src/util/md5.ts';

test('md5 of parts equals the MD5 of their concatenation (one part by the one-shot call)', (t) => {
  let runs = 0;
  fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 5000 }), { maxLength: 4 }), (parts) => {
    runs += 1;
    assert.deepEqual(md5(parts), createHash('md5').update(Buffer.concat(parts)).digest());
  }), { numRuns: 300, seed: 6 });
  assert.equal(md5([]).toString('hex'), 'd41d8cd98f00b204e9800998ecf8427e', 'no parts: the MD5 of nothing');
  const view = Buffer.from('xxhello worldxx').subarray(2, 13);
  assert.equal(md5([view]).toString('hex'), '5eb63bbbe01eeed093cb22bb8f5acdc3', 'a view hashes only its bytes');
  t.diagnostic(`md5 property runs: ${runs}`);
});
