// RealDisk's large writevSynced through O_DIRECT (docs/formats/extent-file.md, "Writing"): head and
// tail through the O_DSYNC descriptor, the 4 KiB-aligned middle through O_DIRECT from a staging
// buffer. What must hold: the file holds exactly the bytes one pwritev would have written, at any
// position and with parts of any sizes, coherent with the buffered descriptor's reads and writes;
// no staging buffer free means the buffered way, same bytes.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { directWriteBytesMin } from '../../../src/constants.ts';
import { AlignedBuffers } from '../../../src/io/aligned-buffers.ts';
import { RealDisk } from '../../../src/io/real-disk.ts';
import { SeededRandom } from '../../../src/util/random.ts';

const MiB = 1024 * 1024;
const roots: string[] = [];

async function diskWith(buffers: AlignedBuffers): Promise<RealDisk> {
  const root = await mkdtemp(join(tmpdir(), 'kura-direct-'));
  roots.push(root);
  return new RealDisk({ root, directWrites: buffers });
}

/** `length` random bytes cut into parts of 1 byte to 128 KiB (a socket's chunks and odd ones). */
function randomParts(random: SeededRandom, length: number): Buffer[] {
  const parts: Buffer[] = [];
  for (let left = length; left > 0;) {
    const size = Math.min(left, random.int(4) === 0 ? 1 + random.int(100) : 1 + random.int(128 * 1024));
    parts.push(random.bytes(size));
    left -= size;
  }
  return parts;
}

describe('RealDisk: large writevSynced through O_DIRECT', () => {
  after(async () => {
    for (const root of roots) await rm(root, { recursive: true, force: true });
  });

  it('writes the same bytes as one pwritev at unaligned positions, coherent with buffered reads and writes', async () => {
    const random = new SeededRandom(10);
    const buffers = new AlignedBuffers({ bufferBytes: 8 * MiB + 4096, buffersMax: 1 });
    const file = await (await diskWith(buffers)).open('d.ext', { create: true });
    const model = Buffer.alloc(40 * MiB);
    let end = 0;
    for (let round = 0; round < 8; round++) {
      // A small buffered write first (a record header, journaled blocks): the page the next large write's head shares.
      const small = randomParts(random, 1 + random.int(5000));
      await file.writev(end, small);
      end = Buffer.concat(small).copy(model, end) + end;
      const parts = randomParts(random, directWriteBytesMin + random.int(7 * MiB));
      await file.writevSynced(end, parts);
      end = Buffer.concat(parts).copy(model, end) + end;
      assert.equal(await file.size(), end, `round ${round}: the size is the write's end`);
    }
    assert.ok((await file.read(0, end)).equals(model.subarray(0, end)), 'every byte as written');
    console.log(`# ${buffers.lent} of 8 large writes went through O_DIRECT, ${(end / MiB).toFixed(1)} MiB`);
    assert.equal(buffers.lent, 8, 'each large write took the staging buffer');
    // Over written bytes, then read back through the buffered descriptor.
    const over = randomParts(random, 3 * MiB);
    await file.writevSynced(5000, over);
    Buffer.concat(over).copy(model, 5000);
    assert.ok((await file.read(0, end)).equals(model.subarray(0, end)), 'an overwrite through O_DIRECT is read back');
    await file.close();
  });

  it('without a free staging buffer writes the buffered way, same bytes', async () => {
    const random = new SeededRandom(11);
    const buffers = new AlignedBuffers({ bufferBytes: 8 * MiB, buffersMax: 0 });
    const file = await (await diskWith(buffers)).open('b.ext', { create: true });
    const parts = randomParts(random, 2 * MiB + 77);
    await file.writevSynced(123, parts);
    assert.equal(buffers.lent, 0);
    assert.ok((await file.read(123, 2 * MiB + 77)).equals(Buffer.concat(parts)));
    await file.close();
  });

  it('a write whose aligned middle is shorter than directWriteBytesMin stays buffered', async () => {
    const buffers = new AlignedBuffers({ bufferBytes: 8 * MiB, buffersMax: 1 });
    const file = await (await diskWith(buffers)).open('s.ext', { create: true });
    const data = Buffer.alloc(directWriteBytesMin + 3000, 9);
    await file.writevSynced(100, [data]); // middle: directWriteBytesMin minus a page
    assert.equal(buffers.lent, 0);
    await file.writevSynced(0, [Buffer.alloc(directWriteBytesMin, 8)]);
    assert.equal(buffers.lent, 1, 'an aligned write of exactly directWriteBytesMin goes direct');
    await file.close();
  });
});
