// Payloads are unique per name and regenerable; the stream verifier accepts exactly the bytes
// written, whatever the chunking, and rejects other bytes, short reads and extra bytes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BlockPayloads, expectedCrc32c, payloadFor, StreamChecksum, StreamVerifier, type LedgerEntry } from '../../../bench/blob/payload.ts';

function pushInChunks(verifier: StreamVerifier, body: Buffer, chunkBytes: number): void {
  for (let offset = 0; offset < body.length; offset += chunkBytes) verifier.push(body.subarray(offset, offset + chunkBytes));
}

describe('blob benchmark payloads', () => {
  it('differ between names and repeat for the same name', () => {
    assert.ok(payloadFor('p/1', 4096).equals(payloadFor('p/1', 4096)));
    assert.ok(!payloadFor('p/1', 4096).equals(payloadFor('p/2', 4096)));
    assert.equal(payloadFor('a-long-name', 3).length, 3);
    assert.throws(() => payloadFor('x', (8 << 20) + 1));
  });

  it('block bodies from reused buffers are exactly payloadFor, whatever name came before', async () => {
    const payloads = new BlockPayloads(70_000, 2);
    const names = ['big-0#12345', 'big-0#1', 'big-10#3', 'b'];
    let checked = 0;
    for (const name of names) {
      await payloads.with(name, (body) => {
        assert.ok(body.equals(payloadFor(name, 70_000)), name);
        checked += 1;
        return Promise.resolve();
      });
    }
    // Two in flight get two buffers, each with its own name.
    await Promise.all(['x#1', 'x#22'].map((name) => payloads.with(name, async (body) => {
      await Promise.resolve();
      assert.ok(body.equals(payloadFor(name, 70_000)), name);
      checked += 1;
    })));
    assert.equal(checked, 6);
  });

  it('verifies a single-block blob in any chunking and rejects a changed byte or a short read', () => {
    const entry: LedgerEntry = { container: 'c', name: 'p/7', sizeBytes: 70_000, blockCount: 1 };
    const body = payloadFor(entry.name, entry.sizeBytes);
    for (const chunkBytes of [1000, 65_536, 70_000]) {
      const verifier = new StreamVerifier(entry);
      pushInChunks(verifier, body, chunkBytes);
      assert.ok(verifier.matches(), `chunks of ${chunkBytes}`);
    }
    const changed = Buffer.from(body);
    changed[69_999] = (changed[69_999] ?? 0) ^ 1;
    const bad = new StreamVerifier(entry);
    pushInChunks(bad, changed, 4096);
    assert.ok(!bad.matches());
    const short = new StreamVerifier(entry);
    short.push(body.subarray(0, 100));
    assert.ok(!short.matches());
    const long = new StreamVerifier(entry);
    long.push(Buffer.concat([body, Buffer.alloc(1)]));
    assert.ok(!long.matches());
  });

  it('verifies a blob made of blocks named name#i, across block boundaries', () => {
    const entry: LedgerEntry = { container: 'c', name: 'big-0', sizeBytes: 3 * 1000, blockCount: 3 };
    const body = Buffer.concat([0, 1, 2].map((index) => payloadFor(`big-0#${index}`, 1000)));
    const verifier = new StreamVerifier(entry);
    pushInChunks(verifier, body, 700);
    assert.ok(verifier.matches());
    const swapped = new StreamVerifier(entry);
    swapped.push(Buffer.concat([payloadFor('big-0#1', 1000), payloadFor('big-0#0', 1000), payloadFor('big-0#2', 1000)]));
    assert.ok(!swapped.matches());
  });
  it('checks a timed download by CRC32C: the blocks in order, in any chunking; not a changed byte, a swap or a short read', () => {
    const entry: LedgerEntry = { container: 'c', name: 'big', sizeBytes: 3 * 50_000, blockCount: 3 };
    const blocks = [0, 1, 2].map((index) => payloadFor(`big#${index}`, 50_000));
    const body = Buffer.concat(blocks);
    const crc = expectedCrc32c(entry);
    const sum = (bytes: Buffer, chunkBytes: number): StreamChecksum => {
      const checksum = new StreamChecksum();
      for (let offset = 0; offset < bytes.length; offset += chunkBytes) checksum.push(bytes.subarray(offset, offset + chunkBytes));
      return checksum;
    };
    for (const chunkBytes of [999, 65_536, body.length]) assert.ok(sum(body, chunkBytes).matches(entry.sizeBytes, crc), `chunks of ${chunkBytes}`);
    const changed = Buffer.from(body);
    changed[123_456] = (changed[123_456] ?? 0) ^ 1;
    assert.ok(!sum(changed, 4096).matches(entry.sizeBytes, crc));
    assert.ok(!sum(Buffer.concat([blocks[1] ?? Buffer.alloc(0), blocks[0] ?? Buffer.alloc(0), blocks[2] ?? Buffer.alloc(0)]), 4096).matches(entry.sizeBytes, crc));
    const short = sum(body.subarray(0, body.length - 1), 4096);
    assert.equal(short.bytes, body.length - 1);
    assert.ok(!short.matches(entry.sizeBytes, crc));
  });
});
