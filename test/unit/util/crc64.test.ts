// CRC-64/NVME (src/util/crc64.ts): the catalogue's check value, a bit-at-a-time BigInt reference on
// random inputs split at random points (fast-check), Azure's little-endian byte order, and the
// throughput on this machine (a figure, not an assertion).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { Crc64, crc64 } from '../../../src/util/crc64.ts';

const poly = 0x9a6c9329ac4bc9b5n;
const mask = (1n << 64n) - 1n;

function reference(bytes: Uint8Array): bigint {
  let crc = mask;
  for (const byte of bytes) {
    crc ^= BigInt(byte);
    for (let bit = 0; bit < 8; bit++) crc = (crc & 1n) === 1n ? (crc >> 1n) ^ poly : crc >> 1n;
  }
  return crc ^ mask;
}

test('CRC-64/NVME: check value, empty input, Azure byte order', () => {
  const check = new Crc64().update(Buffer.from('123456789'));
  assert.equal(check.value(), 0xae8b14860a799888n);
  assert.equal(check.digest().toString('hex'), '8898790a86148bae', 'little-endian on the wire');
  assert.equal(new Crc64().value(), 0n);
  assert.equal(crc64(new Uint8Array(0)).toString('hex'), '0000000000000000');
});

test('CRC-64/NVME equals the bit-at-a-time reference for any input and any split', (t) => {
  let runs = 0;
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(300), { maxLength: 4 }), (bytes, cuts) => {
    runs += 1;
    const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
    const hash = new Crc64();
    let from = 0;
    for (const point of [...points, bytes.length]) {
      hash.update(bytes.subarray(from, point));
      from = point;
    }
    assert.equal(hash.value(), reference(bytes));
  }), { numRuns: 300, seed: 20261122 });
  const big = randomBytes(1 << 20);
  const started = performance.now();
  crc64(big);
  const ms = performance.now() - started;
  t.diagnostic(`${runs} random inputs (0-300 bytes, up to 5 pieces) equal the reference; 1 MiB hashed in ${ms.toFixed(1)} ms (${(1 / (ms / 1000)).toFixed(0)} MiB/s, machine load varies)`);
});
