// copyJsonHeader (LocalNetwork's header copy) against JSON itself, fast-check: whenever it answers,
// the copy is what JSON.parse(JSON.stringify(header)) gives, shares no object with the header, and
// the byte count is the JSON text's; it declines what it cannot copy exactly.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { copyJsonHeader } from '../../../src/rpc/header-copy.ts';
import type { RpcHeader } from '../../../src/rpc/network.ts';

function sharesObject(a: unknown, b: unknown): boolean {
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return false;
  if (a === b) return true;
  return Object.keys(a).some((key) => sharesObject((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]));
}

/** What the partition and extent-node calls send: flat, nested ops lists, replicas. */
const typical: RpcHeader[] = [
  { key: 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIj' },
  { key: 'AAEC', ops: [{ kind: 'put', ifMatch: '"0x8DA1234567890AB"' }, { kind: 'delete' }] },
  { sequence: 123_456, lastModifiedMs: 1_763_820_000_000, etags: ['"0x8DA1"', null] },
  { epoch: 3, extentId: 17, appendId: 'a1b2-000123', replicas: [{ nodeId: 'node-1', address: 'local:30001' }] },
  { found: false },
  { crc32c: 0xffff_ffff, ratio: 0.125, tiny: 1e-7, huge: 1e21 },
];

describe('copyJsonHeader', () => {
  it('copies the headers the partition and extent-node calls send, with their exact JSON size', () => {
    for (const header of typical) {
      const copied = copyJsonHeader(header);
      assert.ok(copied !== null, JSON.stringify(header));
      assert.deepEqual(copied.header, JSON.parse(JSON.stringify(header)));
      assert.equal(copied.bytes, Buffer.byteLength(JSON.stringify(header)));
      assert.ok(!sharesObject(copied.header, header));
    }
  });

  it('agrees with a JSON round trip on any value (fast-check)', () => {
    let answered = 0;
    const value = fc.oneof(fc.jsonValue(), fc.anything({ withNullPrototype: true, withBoxedValues: true, withSparseArray: true, withObjectString: true }));
    fc.assert(fc.property(fc.dictionary(fc.string(), value), (header) => {
      let json: string;
      try {
        json = JSON.stringify(header);
      } catch {
        return; // bigint: the caller's JSON round trip throws as before
      }
      const copied = copyJsonHeader(header as RpcHeader);
      if (copied === null) return;
      answered += 1;
      assert.deepEqual(copied.header, JSON.parse(json));
      assert.ok(!sharesObject(copied.header, header));
      assert.equal(copied.bytes, Buffer.byteLength(json, 'utf8'));
    }), { numRuns: 2_000, seed: 20261122 });
    assert.ok(answered > 200, `answered ${answered} of 2,000`);
  });

  it('declines what JSON would change or drop, and measures escapes and non-ASCII exactly', () => {
    const declined: unknown[] = [
      { a: [1, undefined] }, { a: Number.NaN }, { a: -0 }, { a: new Date(0) }, { a: () => 1 },
      JSON.parse('{"__proto__": {"x": 1}}'), Object.create(null), { a: new Uint8Array(2) }, { a: 1n },
    ];
    for (const header of declined) assert.equal(copyJsonHeader(header as RpcHeader), null);
    for (const text of ['quote"', 'back\\slash', 'line\nfeed', 'café', '\u{1F600}']) {
      const copied = copyJsonHeader({ text });
      assert.ok(copied !== null);
      assert.equal(copied.bytes, Buffer.byteLength(JSON.stringify({ text })));
      assert.deepEqual(copied.header, { text });
    }
    assert.deepEqual(copyJsonHeader({ a: undefined, b: 1 } as unknown as RpcHeader)?.header, { b: 1 });
  });
});
